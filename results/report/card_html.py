"""The report's model-card section and its definitions (what rw_auc and the board's
sensitivity mean), rendered from the exported card itself."""

from __future__ import annotations

from typing import Any

from results.report.html_parts import esc, fmt, interval, table

__all__ = ["RW_AUC_DEFINITION", "definitions", "section_card"]

RW_AUC_DEFINITION = (
    "rw_auc (recall-weighted AUC) = (1 - w) x ROC AUC + w x the standardized partial AUC over "
    "the region where sensitivity is at least tau (w = {w:g}, tau = {tau:g} here): it rewards "
    "ranking well overall and, above all, where missed pneumonia is rare."
)


def definitions(report: dict[str, Any]) -> str:
    """One paragraph: what rw_auc is, and at which threshold each table's rates are."""
    objective = report.get("config", {}).get("final_model", {}).get("objective", {})
    text = RW_AUC_DEFINITION.format(w=objective.get("w", 0.5), tau=objective.get("tau", 0.9))
    return (
        f'<p class="note"><b>Definitions.</b> {esc(text)} The search\'s leaderboard (and its '
        "sensitivity and specificity columns) scores each trial on validation at threshold "
        "0.5; this report's test figures are at the operating threshold chosen on "
        "validation.</p>"
    )


def section_card(report: dict[str, Any]) -> str:
    """The exported model card for a clinical reader: use, data, prevalence, limitations."""
    card = report.get("model_card")
    if not card:
        return ""
    data = card.get("training_data", {})
    parts = [
        '<h2 id="model-card">Model card</h2>',
        '<p class="note">As exported in <code>model/model_card.json</code> '
        f"({esc(card.get('name'))}).</p>",
        f"<p><b>Intended use.</b> {esc(card.get('intended_use', ''))}</p>",
        "<p><b>Out of scope.</b></p>" + _bullets(card.get("out_of_scope", [])),
        f"<p><b>Training data.</b> {esc(data.get('provenance', ''))}. Split "
        f"{esc(data.get('files', {}).get('split', ''))}; fingerprint "
        f"<code>{esc(str(data.get('fingerprint', ''))[:16])}</code>.</p>",
        *_card_test(card),
        _card_robustness(card.get("robustness") or {}),
        _card_site(card.get("site_check") or {}),
        "<p><b>Known limitations.</b></p>" + _bullets(card.get("limitations", [])),
        *_card_serving(card),
    ]
    return "\n".join(part for part in parts if part)


def _bullets(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"


def _card_test(card: dict[str, Any]) -> list[str]:
    """The card's test results, PPV/NPV by prevalence and calibration."""
    test = card.get("test", {})
    threshold = card.get("threshold", {})
    results = [
        [name, m.get("value"), interval(m)]
        for name, m in test.get("metrics_with_95_intervals", {}).items()
        if name in ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy")
    ]
    prevalence = [
        [f"{row['prevalence']:.0%}", row["ppv"], row["npv"]]
        for row in test.get("ppv_npv_by_prevalence", [])
    ]
    calibration = test.get("calibration", {})
    brier = calibration.get("brier_interval") or {}
    return [
        f"<p><b>Test split.</b> {test.get('images')} images, {test.get('positives')} positive "
        f"(prevalence {fmt(test.get('prevalence'))}); threshold {fmt(threshold.get('value'))} "
        f"({esc(threshold.get('chosen_by', ''))}).</p>",
        table(["metric", "value", "95% interval"], results),
        f"<p>{esc(test.get('ppv_npv_note', ''))}.</p>",
        table(["prevalence", "PPV", "NPV"], prevalence),
        f"<p><b>Calibration.</b> ECE {fmt(calibration.get('ece'))}, Brier "
        f"{fmt(calibration.get('brier'))} "
        f"[{fmt(brier.get('low'))} – {fmt(brier.get('high'))}].</p>",
    ]


def _card_robustness(robustness: dict[str, Any]) -> str:
    if not robustness:
        return ""
    return (
        f"<p><b>Robustness.</b> Under the shift suite: mean rw_auc "
        f"{fmt(robustness.get('mean_rw_auc'))}, worst {fmt(robustness.get('worst_rw_auc'))} "
        f"({esc(robustness.get('worst', ''))}).</p>"
    )


def _card_site(site: dict[str, Any]) -> str:
    if not site:
        return ""
    at = site.get("at_validation_threshold", {})
    own = site.get("site_threshold", {})
    role = (
        "<b>site-selected</b>: it ranked the candidates, so these are optimistic"
        if site.get("used_for_choices")
        else "chose nothing"
    )
    return (
        f"<p><b>Test-site check.</b> {site.get('images')} images from "
        f"{esc(site.get('folder', ''))} ({role}): AUC "
        f"{fmt(at.get('auc', {}).get('value'))}, at this threshold sensitivity "
        f"{fmt(at.get('sensitivity', {}).get('value'))} and specificity "
        f"{fmt(at.get('specificity', {}).get('value'))}; specificity "
        f"{fmt(own.get('specificity'))} with the site's own threshold.</p>"
    )


def _card_serving(card: dict[str, Any]) -> list[str]:
    """Input, preprocessing, serving examples and the files' hashes."""
    serving = card.get("serving", {})
    files = card.get("files", {})
    hashes = [
        ["model.keras", files.get("model.keras", {}).get("sha256", "")],
        ["saved_model/ (all files)", files.get("saved_model", {}).get("sha256", "")],
    ]
    if "pixel_scope.npz" in files:
        hashes.append(["pixel_scope.npz", files["pixel_scope.npz"].get("sha256", "")])
    return [
        "<p><b>Input and preprocessing.</b> "
        f"{esc(card.get('input', {}).get('preprocessing', ''))} "
        f"Normalization: {esc(card.get('normalization', ''))}.</p>",
        "<p><b>Serving</b> (the <code>serve_bytes</code> signature takes encoded files):</p>",
        f"<pre>{esc(serving.get('python', ''))}</pre>",
        f"<pre>{esc(serving.get('tf_serving', ''))}\n{esc(serving.get('curl', ''))}</pre>",
        table(["artifact", "sha256"], hashes),
    ]
