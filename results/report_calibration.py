"""The report's calibration pieces: ECE and Brier in words, temperature scaling."""

from __future__ import annotations

from typing import Any

from results.html_parts import esc, fmt, table

__all__ = ["after_scaling", "calibration_note"]


def after_scaling(calibration: dict[str, Any]):
    """``(bins, ECE, temperature)`` after temperature scaling, or None (older reports)."""
    scaling = calibration.get("temperature_scaling") or {}
    test = scaling.get("test") or {}
    if "bins_after" not in test:
        return None
    return test["bins_after"], test["ece"]["after"], scaling["temperature"]


def calibration_note(calibration: dict[str, Any]) -> str:
    """ECE and Brier in words, and temperature scaling's table before/after (HTML)."""
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
    rows = [
        ["validation log loss", scaling["validation_log_loss"]["before"],
         scaling["validation_log_loss"]["after"]],
        ["test log loss", test["log_loss"]["before"], test["log_loss"]["after"]],
        ["test ECE", test["ece"]["before"], test["ece"]["after"]],
        ["test Brier", test["brier"]["before"], test["brier"]["after"]],
    ]  # fmt: skip
    return "\n".join(
        [
            note,
            f"<h3>Temperature scaling (T = {fmt(scaling['temperature'])}, fitted on "
            "validation; reported, not applied to the exported model)</h3>",
            table(["", "before", "after"], rows),
        ]
    )
