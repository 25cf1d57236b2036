"""The report's calibration pieces: ECE and Brier in words, temperature and Platt scaling."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import esc, fmt, table

__all__ = ["after_scaling", "calibration_note"]


def after_scaling(calibration: dict[str, Any]):
    """``(bins, ECE, temperature)`` after temperature scaling, or None (older reports)."""
    scaling = calibration.get("temperature_scaling") or {}
    test = scaling.get("test") or {}
    if "bins_after" not in test:
        return None
    return test["bins_after"], test["ece"]["after"], scaling["temperature"]


def calibration_note(calibration: dict[str, Any]) -> str:
    """ECE and Brier in words, and the table before/after temperature and Platt scaling."""
    ece, brier = calibration.get("ece"), calibration.get("brier")
    span = calibration.get("brier_interval") or {}
    text = (
        f"Expected calibration error (ECE, count-weighted gap over the bins) {fmt(ece)}; "
        f"Brier {fmt(brier)} [{fmt(span.get('low'))} – {fmt(span.get('high'))}]."
    )
    if ece is not None and ece > 0.05:
        text += (
            " The curve sits off the diagonal: read the probabilities as scores that rank "
            "images, not as risks; the operating threshold is what was validated."
        )
    note = f'<p class="note">{esc(text)}</p>'
    scaling = calibration.get("temperature_scaling")
    if not scaling:
        return note
    test = scaling["test"]
    platt = scaling.get("platt")  # older reports: temperature only
    names = ("validation log loss", "test log loss", "test ECE", "test Brier")
    rows = [
        [name, pair["before"], pair["after"]]
        for name, pair in zip(names, _pairs(scaling["validation_log_loss"], test))
    ]
    if platt:
        for row, pair in zip(rows, _pairs(platt["validation_log_loss"], platt["test"])):
            row.append(pair["after"])
    header = ["", "before", "after temperature", *(["after temperature + bias"] if platt else [])]
    title = (
        f"<h3>Temperature scaling (T = {fmt(scaling['temperature'])})"
        + (
            f" and Platt scaling (a temperature plus a bias: slope {fmt(platt['slope'])}, "
            f"intercept {fmt(platt['intercept'])})"
            if platt
            else ""
        )
        + ", fitted on validation; reported, not applied to the exported model</h3>"
    )
    return "\n".join([note, title, table(header, rows)])


def _pairs(validation_log_loss: dict[str, float], test: dict[str, Any]) -> list[dict[str, float]]:
    """Before/after pairs in the table's row order."""
    return [validation_log_loss, test["log_loss"], test["ece"], test["brier"]]
