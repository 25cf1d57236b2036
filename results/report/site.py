"""The report's "Test-site check" section (``final --site``; :mod:`results.final.site`)."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import esc, fmt, interval, table

__all__ = ["section_site"]


def section_site(report: dict[str, Any]) -> str:
    """The exported model on another site's labelled sample, beside carved test."""
    site = report.get("site")
    if not site:
        return ""
    test = report["test"]["metrics"]
    metrics = site["at_validation_threshold"]["metrics"]
    names = ("auc", "rw_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy")
    rows = [
        [name, test[name]["value"], interval(test[name]), metrics[name]["value"],
         interval(metrics[name])]
        for name in names
    ]  # fmt: skip
    own = site["site_threshold"]
    counts = ", ".join(f"{n} {name}" for name, n in site["counts"].items())
    family_rows = [
        [r["family"], r["class"], r["images"], r["metric"], r["value"],
         f"[{fmt(r['low'])} – {fmt(r['high'])}]", r["count"]]
        for r in site["families"]
    ]  # fmt: skip
    overlap = site["patients_in_training"]
    return "\n".join(
        [
            '<h2 id="site-check">Test-site check</h2>',
            f"<p>{site['images']} labelled images from {esc(site['folder'])} ({counts}; "
            f"prevalence {fmt(site['prevalence'], 3)}), " + _role(site) + "</p>",
            "<h3>At the operating threshold chosen on validation</h3>",
            table(["metric", "carved test", "95% interval", "site", "95% interval"], rows),
            "<h3>With the site's own threshold</h3>",
            f"<p>At sensitivity >= {site['target_sensitivity']:g} on the site itself "
            f"(threshold {fmt(own['threshold'])}): specificity {fmt(own['specificity'])} "
            f"[{fmt(own['specificity_low'])} – {fmt(own['specificity_high'])}] "
            f"({esc(own['method'])}). What the model's ranking allows there; the gap to the "
            "row above is the threshold's share.</p>",
            "<h3>By acquisition family, at the operating threshold</h3>",
            table(
                ["family", "class", "images", "metric", "value", "95% interval", "correct"],
                family_rows,
            ),
            f"<p>{overlap} of the site's patients are also in the training split"
            + (" (their images make the site look easier than it is)." if overlap else ".")
            + "</p>",
        ]
    )


def _role(site: dict[str, Any]) -> str:
    """What the site sample did: only measured, or (opted in) ranked the candidates."""
    if site.get("used_for_choices"):
        return (
            "which <strong>ranked the tied candidates and the ensemble's members "
            "(--select-on-site): the model is site-selected and the figures below are "
            "optimistic for this site</strong>; the threshold is still validation's."
        )
    return (
        "scored once the model and its threshold were chosen: <strong>nothing here chose "
        "the model, its members or its threshold</strong>."
    )
