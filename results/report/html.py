"""``report.html``: one self-contained page (inline CSS, images as data URIs, no script).

It opens offline and makes no network request: every figure is embedded, and no external
font, style sheet or script is referenced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from results.report import plots
from results.report.audit import section_label_audit
from results.report.calibration import after_scaling, calibration_note
from results.report.card_html import definitions, section_card
from results.report.families import section_families, section_selection
from results.report.html_parts import CSS, esc, fmt, img, interval, table
from results.report.pixel_scope import section_pixel_scope
from results.report.shortcut import section_shortcut
from results.report.site import section_site

__all__ = ["render_html", "write_report"]


def make_figures(report: dict[str, Any]) -> dict[str, bytes]:
    """Draws every figure of the report; name -> PNG bytes."""
    test = report["test"]
    metrics = test["metrics"]
    sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
    ppv = metrics["ppv"]["value"]  # null when nothing was called positive
    ppv = 1.0 if ppv is None else ppv
    figures = {
        "confusion": plots.confusion_plot(
            test["confusion_matrix"]["matrix"], test["confusion_matrix"]["labels"]
        ),
        "roc": plots.roc_plot(
            test["curves"]["roc"], (1 - spec, sens), test["metrics"]["auc"]["value"]
        ),
        "pr": plots.pr_plot(test["curves"]["pr"], (sens, ppv)),
        "calibration": plots.calibration_plot(
            test["calibration"]["bins"],
            test["calibration"]["brier"],
            test["calibration"].get("ece"),
            after=after_scaling(test["calibration"]),
        ),
        "training": plots.training_plot(report["final"]["history"], report["final"]["objective"]),
    }
    mode = report["final"]["mode"]
    search = report["search"]
    if any(t["value"] is not None for t in search["timeline"]):
        figures["timeline"] = plots.timeline_plot(search["timeline"], mode)
    if report.get("robustness", {}).get("rows"):
        figures["robustness"] = plots.robustness_plot(report["robustness"])
    if search["importance"].get("values"):
        figures["importance"] = plots.importance_plot(search["importance"]["values"])
    return figures


def _section_test(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    """The test split at the operating threshold: metrics, per class, thresholds, figures,
    calibration and subgroups."""
    test = report["test"]
    thresholds = report["thresholds"]
    rows = [
        [name, metric["value"], interval(metric), metric["method"], metric.get("count", "")]
        for name, metric in test["metrics"].items()
    ]
    parts = [
        "<h2>Test split</h2>",
        f"<p>At the operating threshold {test['threshold']:.4f}, chosen on validation to reach "
        f"sensitivity {thresholds['target_sensitivity']:g}; the test split was used once, "
        f"here. {test['n']} images.</p>",
        table(["metric", "value", "95% interval", "method", "count"], rows),
        "<h3>Per class</h3>",
        _per_class_table(test),
        "<h3>Thresholds (chosen on validation)</h3>",
        _threshold_table(thresholds),
        '<div class="figures">',
        img(figures["confusion"], "confusion matrix", "Confusion matrix (test)"),
        img(figures["roc"], "ROC curve", "ROC curve with the operating point"),
        img(figures["pr"], "precision-recall curve", "Precision-recall curve"),
        img(
            figures["calibration"],
            "calibration curve",
            "Calibration (reliability, n per bin; dashed: after temperature scaling)",
        ),
        "</div>",
        calibration_note(test["calibration"]),
        _subgroups_part(test),
    ]
    return "\n".join(part for part in parts if part)


def _per_class_table(test: dict[str, Any]) -> str:
    rows = [
        [name, info["precision"]["value"], interval(info["precision"]),
         info["recall"]["value"], interval(info["recall"]), info["f1"], info["support"]]
        for name, info in test["per_class"].items()
    ]  # fmt: skip
    headers = ["class", "precision", "95% interval", "recall", "95% interval", "F1", "support"]
    return table(headers, rows)


def _threshold_table(thresholds: dict[str, Any]) -> str:
    rows = []
    for name, val in thresholds["validation"].items():
        tst = thresholds["test"][name]
        label = name + (" (chosen)" if name == thresholds["chosen"] else "")
        rows.append(
            [label, val["threshold"], val["sensitivity"], val["specificity"],
             tst["sensitivity"], tst["specificity"]]
        )  # fmt: skip
    headers = [
        "threshold",
        "value",
        "val sensitivity",
        "val specificity",
        "test sensitivity",
        "test specificity",
    ]
    return table(headers, rows)


def _subgroups_part(test: dict[str, Any]) -> str:
    rows = [
        [name, info["images"], info["sensitivity"]["value"], interval(info["sensitivity"]),
         info["auc_vs_negatives"]]
        for name, info in test["subgroups"].items()
    ]  # fmt: skip
    if not rows:
        return ""
    headers = ["subgroup", "images", "sensitivity", "95% interval", "AUC vs all negatives"]
    return "<h3>Subgroups (from file names)</h3>\n" + table(headers, rows)


def _section_ensemble(report: dict[str, Any]) -> str:
    ensemble = report.get("ensemble")
    if not ensemble:
        return ""
    if not ensemble.get("comparison"):
        return f"<h2>Ensemble and test-time augmentation</h2><p>{esc(ensemble.get('note', ''))}</p>"
    first = ensemble["comparison"][0]
    keys = [k for k in first if k not in ("model", "trial_id", "seed")]
    rows = [
        [row["model"], row["trial_id"], row["seed"] if row["seed"] is not None else ""]
        + [row[k] for k in keys]
        for row in ensemble["comparison"]
    ]
    views = len(ensemble.get("tta_views") or []) or 1
    what = f"{len(ensemble['members'])} retrained configuration(s)" + (
        f" over {views} test-time views (the image and 4% shifts)" if views > 1 else ""
    )
    return "\n".join(
        [
            "<h2>Ensemble and test-time augmentation</h2>",
            f"<p>The exported model (last row) averages the probabilities of {what}. Each row "
            "is thresholded on its own validation predictions (same sensitivity target); the "
            "test split above is the exported model's. external_: the external check; "
            "suite_: rw_auc over the robustness suite's shifts at severity 2.</p>",
            table(["model", "trial", "seed", *keys], rows),
        ]
    )


def _section_external(report: dict[str, Any]) -> str:
    external = report.get("external")
    if not external:
        return ""
    test = report["test"]["metrics"]
    names = ("auc", "rw_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy")
    rows = [
        [
            name,
            test[name]["value"],
            interval(test[name]),
            external["metrics"][name]["value"],
            interval(external["metrics"][name]),
        ]
        for name in names
    ]
    where = external["root"] + (f" ({external['split']}/)" if external["split"] else "")
    excluded = report["data"].get("external", {})
    return "\n".join(
        [
            "<h2>External check</h2>",
            f"<p>{external['n']} images from {esc(where)}, decoded like the training data, "
            f"scored at the operating threshold {external['threshold']:.4f} chosen on "
            f"validation. {excluded.get('patients_excluded', 0)} of its patients "
            f"({excluded.get('images_excluded', 0)} images) were removed from the dataset "
            "before it was split.</p>",
            table(["metric", "test", "95% interval", "external", "95% interval"], rows),
        ]
    )


def _section_robustness(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    robustness = report.get("robustness")
    if not robustness:
        return ""
    clean, summary = robustness["clean"], robustness["summary"]
    rows = [["as is", "", "", clean["auc"], clean["rw_auc"], clean["sensitivity"],
             clean["specificity"], "", ""]]  # fmt: skip
    rows += [
        [
            row["shift"],
            row["severity"],
            f"{row['level']:g}",
            row["auc"],
            row["rw_auc"],
            row["sensitivity"],
            row["specificity"],
            f"{row['delta_sensitivity']:+.4f}",
            f"{row['delta_specificity']:+.4f}",
        ]
        for row in robustness["rows"]
    ]
    described = "; ".join(
        f"{name}: {text}"
        for name, text in dict((r["shift"], r["description"]) for r in robustness["rows"]).items()
    )
    return "\n".join(
        [
            "<h2>Robustness</h2>",
            "<p>The test split re-scored under image shifts that images from other sites "
            "show, at three severities (deterministic, seed "
            f"{robustness['seed']}); sensitivity and specificity at the operating threshold "
            f"{robustness['threshold']:.4f}. Mean rw_auc over the suite "
            f"{fmt(summary['mean_rw_auc'])}, worst {fmt(summary['worst_rw_auc'])} "
            f"({esc(summary['worst'])}).</p>",
            table(
                [
                    "shift",
                    "severity",
                    "level",
                    "AUC",
                    "rw_auc",
                    "sensitivity",
                    "specificity",
                    "Δ sensitivity",
                    "Δ specificity",
                ],
                rows,
            ),
            f'<p class="note">{esc(described)}.</p>',
            '<div class="figures">',
            img(figures["robustness"], "robustness plot", "rw_auc and specificity by severity"),
            "</div>",
        ]
    )


def _section_gallery(report: dict[str, Any], folder: Path) -> str:
    items = report.get("gallery", [])
    if not items:
        return "<h2>Errors</h2><p>No false negative or false positive on the test split.</p>"
    parts = ["<h2>Worst errors, with Grad-CAM</h2>"]
    parts.append(
        '<p class="note">Lowest-probability positives missed and highest-probability '
        "negatives flagged. Grad-CAM of the predicted class: warm colours mark the regions "
        "that drove the wrong call (toward normal for a false negative, toward pneumonia "
        "for a false positive).</p>"
    )
    for kind in ("false negative", "false positive"):
        chosen = [g for g in items if g["kind"] == kind]
        if not chosen:
            continue
        parts.append(f"<h3>{esc(kind.capitalize())}s</h3><div class=gallery>")
        for item in chosen:
            png = (folder / item["image"]).read_bytes()
            caption = f"{item['path']} — p = {item['probability']:.3f}"
            parts.append(img(png, f"{kind}: {item['path']}", caption))
        parts.append("</div>")
    return "\n".join(parts)


def _section_model(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    final = report["final"]
    runs = [
        [
            r["trial_id"],
            r["seed"],
            r["status"],
            r["best_epoch"],
            r["epochs_run"],
            r["validation_objective"],
            r["seconds"],
            "yes" if r["chosen"] else "",
        ]
        for r in final["runs"]
    ]
    return "\n".join(
        [
            "<h2>Final model</h2>",
            table(
                [
                    "trial",
                    "seed",
                    "status",
                    "best epoch",
                    "epochs",
                    f"val {final['objective']}",
                    "seconds",
                    "chosen",
                ],
                runs,
            ),
            f"<p>{final['param_count']:,} parameters. Kept: the retraining best on validation.</p>",
            _retrain_levers(final.get("options", {})),
            '<div class="figures">',
            img(figures["training"], "training curves", "Training curves of the final model"),
            "</div>",
        ]
    )


def _retrain_levers(options: dict[str, Any]) -> str:
    """What the retraining changed from the search's trials (resolution, crops, epochs)."""
    changes = []
    if options.get("image_size"):
        changes.append(f"at {options['image_size']} px")
    if options.get("crop_scale") is not None:
        changes.append(
            f"with random resized crops down to {options['crop_scale']:g} of the area (the "
            "lever that raised the test-site sample's AUC in bench/site_levers.py)"
        )
    if options.get("epochs"):
        changes.append(f"for {options['epochs']} epochs")
    if not changes:
        return ""
    return f"<p>Retrained {', '.join(changes)}.</p>"


def _section_search(report: dict[str, Any], figures: dict[str, bytes]) -> str:
    search = report["search"]
    counts = ", ".join(f"{k}: {v}" for k, v in search["trials"].items())
    wall = search.get("wall_time_s")
    parts = [
        "<h2>Search</h2>",
        f"<p>Trials — {esc(counts)}. Wall time {fmt(wall, 1)} s "
        f"(sum of trial times {fmt(search.get('sum_of_trial_times_s'), 1)} s).</p>",
    ]
    if search["best"]:
        params = [[k, v] for k, v in sorted(search["best"]["params"].items())]
        parts += [
            f"<h3>Best configuration (trial {esc(search['best']['trial_id'])})</h3>",
            table(["key", "value"], params),
        ]
    top_rows = [
        [
            row.get("rank", ""),
            row.get("trial_id", ""),
            row.get("status", ""),
            row.get("objective"),
            row.get("auc"),
            row.get("sensitivity"),
            row.get("specificity"),
            row.get("epochs_run"),
            row.get("params", {}).get("model.name", ""),
        ]
        for row in search["top"]
    ]
    parts += [
        "<h3>Top of the leaderboard</h3>",
        table(
            [
                "rank",
                "trial",
                "status",
                "objective",
                "auc",
                "sensitivity",
                "specificity",
                "epochs",
                "model",
            ],
            top_rows,
        ),
    ]
    shown = [
        img(figures[name], name, caption)
        for name, caption in (
            ("timeline", "Validation objective per trial over time"),
            ("importance", "Hyperparameter importance (fANOVA)"),
        )
        if name in figures
    ]
    if "error" in search["importance"]:
        parts.append(
            f'<p class="note">Hyperparameter importance not available: '
            f"{esc(search['importance']['error'])}</p>"
        )
    parts += ['<div class="figures">', *shown, "</div>"]
    return "\n".join(parts)


def _section_data(report: dict[str, Any]) -> str:
    data = report["data"]
    rows = []
    for split, info in data["splits"].items():
        per_class = "; ".join(
            f"{name}: {c['images']} images, {c['patients']} patients"
            for name, c in info["per_class"].items()
        )
        rows.append([split, info["images"], info["patients"], per_class, info["origin"]])
    leak = data["leakage"]
    problems = data["problems"]
    skipped = [[s["path"], s["reason"]] for s in problems["skipped_files"]]
    parts = [
        "<h2>Data</h2>",
        f"<p>{esc(data['root'])} — {data['files_found']} files, layout {esc(data['layout'])}, "
        f"{data['image_size']} px {esc(data['color_mode'])} ({esc(data['aspect'])}), "
        f"fingerprint <code>{esc(report['data_fingerprint'])}</code>.</p>",
        table(["split", "images", "patients", "per class", "origin"], rows),
        "<h3>Leakage checks</h3>",
        table(
            ["check", "result"],
            [
                ["patients in two given splits", leak["patients_in_two_given_splits"]],
                ["images dropped for patient overlap", leak["images_dropped_for_overlap"]],
                [
                    "byte-identical images across splits",
                    leak["identical_images_across_splits_count"],
                ],
            ],
        ),
        f"<h3>Skipped files ({problems['skipped_count']})</h3>",
    ]
    parts.append(table(["file", "reason"], skipped) if skipped else "<p>None.</p>")
    return "\n".join(parts)


def _section_environment(report: dict[str, Any]) -> str:
    env = report["environment"]
    versions = [[k, v] for k, v in env["versions"].items()]
    hardware = [
        ["platform", env["platform"]],
        ["CPUs", env["cpus"]],
        ["memory (GiB)", env["memory_gib"]],
        ["GPUs", ", ".join(env["gpus"]) or "none"],
    ]
    seeds = [
        [k, ", ".join(map(str, v)) if isinstance(v, list) else v] for k, v in env["seeds"].items()
    ]
    config = yaml.safe_dump(report["config"]["final_model"], sort_keys=False)
    return "\n".join(
        [
            "<h2>Environment</h2>",
            '<div class="figures">',
            table(["package", "version"], versions),
            table(["hardware", ""], hardware),
            table(["seed", "value"], seeds),
            "</div>",
            "<h3>Configuration of the final model</h3>",
            f"<pre>{esc(config)}</pre>",
        ]
    )


def render_html(report: dict[str, Any], figures: dict[str, bytes], folder: Path) -> str:
    """The whole report page as one string."""
    test = report["test"]["metrics"]
    chosen = report["final"]["chosen"]
    headline = (
        f"Test AUC {fmt(test['auc']['value'])} [{interval(test['auc'])}], "
        f"sensitivity {fmt(test['sensitivity']['value'])} [{interval(test['sensitivity'])}], "
        f"specificity {fmt(test['specificity']['value'])} [{interval(test['specificity'])}] "
        f"at threshold {report['test']['threshold']:.4f}."
    )
    body = [
        f"<h1>pneumo-search report: {esc(report['experiment'])}</h1>",
        f'<p class="note">Created {esc(report["created"])} from {esc(report["run_dir"])}. '
        f"Final model: trial {esc(chosen['trial_id'])}, seed {chosen['seed']}; its "
        '<a href="#model-card">model card</a> is below.</p>',
        f'<p class="headline">{esc(headline)}</p>',
        definitions(report),
        _section_test(report, figures),
        _section_ensemble(report),
        _section_external(report),
        section_site(report),
        section_shortcut(report),
        section_pixel_scope(report),
        section_families(report),
        section_selection(report),
        _section_robustness(report, figures),
        _section_gallery(report, folder),
        section_label_audit(report, folder),
        _section_model(report, figures),
        _section_search(report, figures),
        section_card(report),
        _section_data(report),
        _section_environment(report),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pneumo-search report: {esc(report['experiment'])}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(report: dict[str, Any], folder: str | Path) -> Path:
    """Draws the figures into ``folder/plots`` and writes ``folder/report.html``."""
    folder = Path(folder)
    figures = make_figures(report)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        (folder / "plots" / f"{name}.png").write_bytes(png)
    path = folder / "report.html"
    path.write_text(render_html(report, figures, folder), encoding="utf-8")
    return path
