"""The report of a site-calibrated copy (``pneumo-search calibrate --report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from results.report.html_parts import CSS, esc, fmt, img, table

__all__ = ["write_calibration_report"]

REPORT_FILE = "calibration_report.html"


def _figures(block: dict[str, Any], y: np.ndarray, p: np.ndarray) -> dict[str, bytes]:
    from results.report import plots
    from results.report.evaluation import curves

    before, after = block["before"], block["after"]
    roc = curves(y, p)["roc"]
    points = {
        f"validation threshold {before['threshold']:.3f} (uncalibrated)": (
            1 - before["specificity"], before["sensitivity"]),
        f"site threshold {after['threshold']:.3f} (calibrated)": (
            1 - after["specificity"], after["sensitivity"]),
    }  # fmt: skip
    return {
        "roc": plots.operating_points_plot(roc, points, before["auc"]),
        "reliability": plots.calibration_plot(
            before["bins"],
            before["brier"],
            before["ece"],
            after=(after["bins"], after["ece"], 1.0),
            label="site, as exported",
            after_label="after Platt scaling on the site",
        ),
    }


def render_calibration_report(block: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The page: the sample, before and after, both operating points, PPV/NPV, cross-fit."""
    from results.report.model_card import ppv_npv

    site, before, after = block["site_sample"], block["before"], block["after"]
    rows = [
        [name, before[key], after[key]]
        for name, key in (("AUC", "auc"), ("threshold", "threshold"),
                          ("sensitivity", "sensitivity"), ("specificity", "specificity"),
                          ("accuracy", "accuracy"), ("ECE", "ece"), ("Brier", "brier"))
    ]  # fmt: skip
    prevalence = site["prevalence"]
    values = [
        [label, *ppv_npv(point["sensitivity"], point["specificity"], prevalence).values()]
        for label, point in (("validation threshold", before), ("site threshold", after))
    ]
    point = block["operating_points"]["site"]
    cross = block["cross_fitted"]
    cross_rows = [
        [method, *(f"{fmt(cross[method][k]['median'], 3)} [{fmt(cross[method][k]['low'], 3)}"
                   f" – {fmt(cross[method][k]['high'], 3)}]"
                   for k in ("sensitivity", "specificity", "accuracy", "ece"))]
        for method in ("platt", "isotonic")
    ]  # fmt: skip
    body = [
        "<h1>Site calibration</h1>",
        f"<p>{site['images']} labelled images from {esc(site['folder'])} "
        f"({', '.join(f'{n} {c}' for c, n in site['counts'].items())}; prevalence "
        f"{fmt(prevalence, 3)}; sha256 of the sorted files and labels "
        f"<code>{esc(site['sha256_of_sorted_files_and_labels'][:16])}</code>), "
        f"{esc(block['date'])}. Platt scaling (slope {fmt(block['slope'], 3)}, intercept "
        f"{fmt(block['intercept'], 3)}) fitted on them; the threshold is the highest with "
        f"sensitivity >= {block['target_sensitivity']:g} on the calibrated probabilities "
        f"(interval {fmt(point['threshold_interval'][0])} – "
        f"{fmt(point['threshold_interval'][1])}; its specificity "
        f"{fmt(point['specificity_interval'][0], 3)} – "
        f"{fmt(point['specificity_interval'][1], 3)}; {esc(point['method'])}).</p>",
        *(f'<p class="note">Warning: {esc(w)}.</p>' for w in block["warnings"]),
        table(["on the site sample", "as exported (validation threshold)", "calibrated"], rows),
        '<div class="figures">',
        img(figures["roc"], "ROC with both operating points", "ROC with both operating points"),
        img(figures["reliability"], "reliability before and after", "reliability"),
        "</div>",
        f"<h2>PPV and NPV at the site's prevalence ({fmt(prevalence, 3)})</h2>",
        table(["operating point", "prevalence", "PPV", "NPV"], values),
        "<h2>Cross-fitted: calibrated on one half, scored on the other</h2>",
        f"<p>{cross['halves']} held-out halves; median [2.5% – 97.5%]. The numbers above "
        "are measured on the images the calibration was fitted on; these are not.</p>",
        table(["method", "sensitivity", "specificity", "accuracy", "ECE"], cross_rows),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Site calibration</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_calibration_report(
    block: dict[str, Any], y: np.ndarray, p: np.ndarray, folder: str | Path
) -> Path:
    """Writes ``folder/calibration_report.html`` (figures inline)."""
    path = Path(folder) / REPORT_FILE
    path.write_text(render_calibration_report(block, _figures(block, y, p)), encoding="utf-8")
    return path
