"""The report's "Inputs outside the model's scope" section (:mod:`results.final.scope_check`)."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import esc, fmt, table

__all__ = ["section_pixel_scope"]


def section_pixel_scope(report: dict[str, Any]) -> str:
    """The pixel scope detector: its false alarms on in-scope images and what it catches."""
    scope = report.get("pixel_scope")
    if not scope:
        return ""
    alarms = [
        [where, v["images"], v["flagged"], fmt(v["rate"], 3)]
        for where, v in scope["false_alarm"].items()
    ]
    caught = [
        [kind, v["images"], v["flagged"], fmt(v["rate"], 3)]
        for kind, v in scope["detection"].items()
    ]
    return "\n".join(
        [
            '<h2 id="pixel-scope">Inputs outside the model\'s scope</h2>',
            f"<p>Exported with the model (<code>pixel_scope.npz</code>): {esc(scope['method'])} "
            f"(threshold {fmt(scope['threshold'], 1)}; target false-alarm rate "
            f"{fmt(scope['false_alarm_target'], 3)}). <code>predict</code> marks an image "
            "above it out of scope with its reason; <code>predict --strict</code> gives it "
            "no probability.</p>",
            "<h3>False alarms: in-scope images flagged</h3>",
            table(["images of", "images", "flagged", "rate"], alarms),
            "<h3>Detection: out-of-scope images flagged</h3>",
            table(["kind", "images", "flagged", "rate"], caught),
            f"<p>All kinds together: {fmt(scope['detection_rate'], 3)} flagged.</p>",
        ]
    )
