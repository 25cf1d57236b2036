"""The report's "Shortcut audit" section (:mod:`results.final.shortcut`'s numbers)."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import esc, fmt, table

__all__ = ["section_shortcut"]


def section_shortcut(report: dict[str, Any]) -> str:
    """Border and centre probes, and the exported model with its border bands masked."""
    audit = report.get("shortcut_audit")
    if not audit:
        return ""
    probes = audit["probes"]
    columns = [k for k in probes[0] if k.endswith("_auc")] if probes else []
    rows = [[p["region"].replace("_", " "), *(p[c] for c in columns)] for p in probes]
    masking = audit["masking"]
    return "\n".join(
        [
            '<h2 id="shortcut-audit">Shortcut audit</h2>',
            "<p>Where the class signal sits. Each probe is a "
            f"{esc(audit['probe'])} that sees one region only; a border region that ranks "
            "validation well is signal outside the lungs (framing, neck, clavicles), which "
            "another site need not share. With a site sample, its column shows whether it "
            "does.</p>",
            table(["region", *(c.replace("_auc", " AUC") for c in columns)], rows),
            f"<p>The exported model on the {masking['images']} test images with its border "
            f"bands ({masking['band_fraction']:.1%} of each side) blanked: the probability "
            f"moves by {fmt(masking['mean_abs_change'])} on average, "
            f"{fmt(masking['decisions_flipped'], 3)} of the decisions at the operating "
            f"threshold flip, AUC {fmt(masking['auc_before'])} -> "
            f"{fmt(masking['auc_masked'])}.</p>",
        ]
    )
