"""The report's "Acquisition families" section (:mod:`results.final.family_check`'s numbers)."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import fmt, table

__all__ = ["section_families"]


def section_families(report: dict[str, Any]) -> str:
    """Per-family results on the test split and, with ``--family-check``, held out."""
    families = report.get("families")
    if not families:
        return ""
    parts = [
        "<h2>Acquisition families</h2>",
        "<p>The file names carry how an image came to the dataset (IM- and NORMAL2-IM- "
        "normals, bacteria and virus pneumonias). The public test split of this dataset has "
        "a different mix of them, and models trained here are known to lose specificity "
        "there; a family the model does worse on is where to look first.</p>",
    ]
    rows = [
        [r["family"], r["class"], r["images"], r["metric"], r["value"],
         f"[{fmt(r['low'])} – {fmt(r['high'])}]", r["count"]]
        for r in families.get("test", [])
    ]  # fmt: skip
    if rows:
        parts += [
            "<h3>Test split, at the operating threshold</h3>",
            table(
                ["family", "class", "images", "metric", "value", "95% interval", "correct"], rows
            ),
        ]
    held = families.get("held_out")
    if held:
        fold_rows = [
            [f["family"], f["images"], f["auc"], f["rw_auc"], f["sensitivity"], f["specificity"],
             f["best_epoch"]]
            for f in held["folds"]
        ]  # fmt: skip
        parts += [
            "<h3>Families held out of training</h3>",
            "<p>The chosen configuration retrained once per family, without that family"
            " and its patients, scored on the family it never saw (with the other class's "
            "validation images, so both classes are ranked). Worst rw_auc "
            f"{fmt(held['worst_rw_auc'])}, mean {fmt(held['mean_rw_auc'])} "
            f"({fmt(held['seconds'], 0)} s). Sensitivity and specificity at 0.5.</p>",
            table(
                ["held out", "images scored", "AUC", "rw_auc", "sensitivity", "specificity",
                 "best epoch"],
                fold_rows,
            ),
        ]  # fmt: skip
    else:
        parts.append(
            '<p class="note">Families held out of training: not run (pneumo-search final '
            "--family-check retrains the configuration once per family).</p>"
        )
    return "\n".join(parts)


def section_selection(report: dict[str, Any]) -> str:
    """How the kept model was chosen among the candidates tied within noise."""
    selection = report.get("selection")
    if not selection or selection.get("rule") == "objective":
        return ""
    interval = selection["interval"]
    compared = (
        "value",
        "param_count",
        "family_worst_rw_auc",
        "val_suite_mean_rw_auc",
        "site_rw_auc",
    )
    keys = [k for k in compared if k in selection["tied"][0]]
    rows = [
        [t["trial_id"], t["seed"], *[t[k] for k in keys],
         "kept" if t["run"] == selection["chosen"] else ""]
        for t in selection["tied"]
    ]  # fmt: skip
    return "\n".join(
        [
            "<h2>Choosing among ties</h2>",
            f"<p>{len(rows)} retrained candidate(s) lie inside the best one's 95% validation "
            f"interval of {interval['metric']} [{fmt(interval['low'])} – "
            f"{fmt(interval['high'])}]: within noise, they are ties. Among them the kept "
            f"model is chosen by <b>{selection['rule']}</b>.</p>",
            _site_selected_note(selection),
            table(["trial", "seed", *keys, ""], rows),
        ]
    )


def _site_selected_note(selection: dict[str, Any]) -> str:
    """The warning a site-selected model carries (``final --select-on-site``)."""
    if not selection.get("site_selected"):
        return ""
    return (
        '<p class="note"><strong>Site-selected</strong> (--select-on-site): the candidates '
        "and the ensemble's members were ranked on the site sample, so the test-site "
        "section's figures are optimistic for this site; the threshold is still "
        "validation's. Score the model on other images of the site before relying on "
        "them.</p>"
    )
