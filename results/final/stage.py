"""``pneumo-search final``: retrain the best, pick the threshold, test once, report, export.

:func:`final_stage` is a short sequence of named steps, each in a module with one job:

1. **Retrain** (:mod:`results.final.candidates`): the top K ranked configurations of the run's
   leaderboard, each with N seeds on the train split, early stopping on validation exactly
   as a trial trains (seed ``search.seed + i``, so seed 0 repeats the trial); the run best
   on validation is chosen.
2. **Ensemble and TTA** (:mod:`results.final.ensemble`): with ``--ensemble``/``--tta`` the
   exported model averages members and views; the candidates are compared side by side.
3. **Evaluate** (:mod:`results.final.assemble`): the operating threshold is chosen on the
   **validation** split (the highest whose sensitivity reaches the target; 0.5 and Youden
   beside it); the test split is predicted once, at the end: nothing is chosen on it.
4. **Report and export** (:mod:`results.final.assemble`, :mod:`results.report.html`,
   :mod:`results.report.model_card`, :mod:`results.serving.export`): ``final/report.json``,
   ``final/report.html``, both splits' predictions, plots, a Grad-CAM gallery of the worst
   errors, and the model in ``final/model``.

The search hands this stage a :class:`~results.final.record.SearchRecord` (``results`` never
parses the experiment file); ``search.final_stage.run_final`` does that for a run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import FINAL_DIR, LEADERBOARD_FILE
from results.board.format import format_interval, format_value
from results.board.leaderboard import read_csv_rows
from results.final.assemble import (
    PREDICTION_FILES,
    assemble_report,
    gallery,
    plain,
    score_exported,
    write_predictions,
)
from results.final.candidates import (
    Retrained,
    ranked_candidates,
    retrain,
)
from results.final.ensemble import (
    TTA_VIEWS,
    build_ensemble,
    candidate_models,
    ensemble_members,
    side_by_side,
)
from results.final.family_check import families_on_test, held_out_families
from results.final.label_audit import label_audit
from results.final.options import FinalOptions
from results.final.record import SearchRecord
from results.final.selection import SITE_RULE, ranked_runs, select_run

__all__ = [
    "FINAL_DIR",
    "TTA_VIEWS",
    "FinalOptions",
    "FinalOutcome",
    "Retrained",
    "build_ensemble",
    "final_stage",
    "ranked_candidates",
    "retrain",
    "side_by_side",
]

REPORT_JSON, REPORT_HTML = "report.json", "report.html"


@dataclass
class FinalOutcome:
    """Where the final stage wrote its results, and the headline numbers.

    Attributes:
        folder: ``RUN_DIR/final``.
        report: The content of ``report.json``.
    """

    folder: Path
    report: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        """The exported model's folder."""
        return self.folder / "model"

    def summary_lines(self) -> list[str]:
        """The headline numbers as ``pneumo-search final`` prints them."""
        report = self.report
        test = report["test"]["metrics"]

        lines = [
            f"test ({report['test']['n']} images, threshold "
            f"{format_value(report['test']['threshold'])}):"
        ]
        for name in ("auc", "rw_auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"):
            lines.append(f"  {name} {format_interval(test[name])}")
        for row in (report.get("ensemble") or {}).get("comparison", []):
            lines.append(
                f"  {row['model']:<16} test auc {row['test_auc']:.4f} "
                f"rw_auc {row['test_rw_auc']:.4f} sensitivity {row['test_sensitivity']:.4f} "
                f"specificity {row['test_specificity']:.4f}"
            )
        if "external" in report:
            external = report["external"]["metrics"]
            lines.append(f"external ({report['external']['n']} images, same threshold):")
            for name in ("auc", "rw_auc", "sensitivity", "specificity"):
                lines.append(f"  {name} {format_value(external[name]['value'])}")
        if "robustness" in report:
            summary = report["robustness"]["summary"]
            lines.append(
                f"  under shifts: mean rw_auc {summary['mean_rw_auc']:.4f}, "
                f"worst {summary['worst_rw_auc']:.4f} ({summary['worst']})"
            )
        if "site" in report:
            lines.append(_site_line(report["site"]))
        held_out = (report.get("families") or {}).get("held_out")
        if held_out:
            lines.append(
                f"families held out of training: worst rw_auc {held_out['worst_rw_auc']:.4f}, "
                f"mean {held_out['mean_rw_auc']:.4f}"
            )
        lines.append(f"report: {self.folder / REPORT_HTML} (and {REPORT_JSON})")
        lines.append(f"model: {self.model_dir}")
        return lines


@dataclass
class ExportedModel:
    """The model the stage exports, and what was compared to choose it.

    Attributes:
        model: One Keras model (a single model, or the ensemble/TTA wrapper).
        members: The retrainings it is made of.
        comparison: :func:`results.final.ensemble.side_by_side`'s result, or None for a lone
            single model.
    """

    model: Any
    members: list[Retrained]
    comparison: dict[str, Any] | None


def final_stage(
    run_dir: str | Path,
    record: SearchRecord,
    options: FinalOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> FinalOutcome:
    """Runs the final stage on a finished search.

    Args:
        run_dir: The search's run folder (``runs/NAME``): its leaderboard is read, and
            ``final/`` is written there.
        record: What the search hands over (``ExperimentConfig.record()``).
        options: Top K, seeds, target sensitivity, epochs, ensemble, TTA.
        log: Where progress lines go.

    Returns:
        Where the results are, and the report's content.

    Raises:
        PneumoError: No ranked trial, more than two classes, or every retraining diverged.
    """
    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    from results.board.summary import summarize_search

    options = options or FinalOptions()
    start = time.perf_counter()
    run_dir = Path(run_dir).expanduser().resolve()
    board = read_csv_rows(run_dir / LEADERBOARD_FILE)
    options = _with_cost_limit(options, record)
    rows = ranked_candidates(
        run_dir, board, max(options.top, options.ensemble), options.max_epoch_s, log
    )
    runs = retrain(record, rows, options, log)
    chosen, selection = _select(runs, options, record.seed, log)
    external = _external_set(chosen, log)
    ranked = ranked_runs(runs, selection)
    exported = _exported_model(runs, chosen, ranked, external, options, record.seed, log)
    scores = _scored(exported, chosen, external, options.target_sensitivity, log)
    robustness = _robustness(exported.model, chosen, scores.operating, record.seed, options, log)
    report = assemble_report(
        run_dir=run_dir,
        record=record,
        search_summary=summarize_search(run_dir, record.name, board),
        options=options,
        runs=runs,
        chosen=chosen,
        members=exported.members,
        scores=scores,
        external=external,
        comparison=exported.comparison,
        robustness=robustness,
    )
    report["families"] = _families(chosen, scores, selection, options, log)
    report["selection"] = {k: v for k, v in selection.items() if k != "held_out"}
    measured, detector = _measured_only(exported.model, chosen, scores, options, record, log)
    report.update(measured)
    with _staged(run_dir / FINAL_DIR) as folder:
        _write_outputs(folder, exported, chosen, scores, report, record, options, detector)
        if options.label_audit:
            report["label_audit"] = label_audit(chosen, options.label_audit, folder, 12, log)
        report["seconds"] = round(time.perf_counter() - start, 1)
        report = _write_report(folder, report)
    return FinalOutcome(run_dir / FINAL_DIR, report)


def _scored(exported: ExportedModel, chosen: Retrained, external, target: float, log):
    """The exported model's probabilities and its operating threshold (from validation)."""
    scores = score_exported(
        exported.model,
        chosen.data,
        external,
        target,
        known=exported.comparison["probs"] if exported.comparison else None,
    )
    log(f"threshold {scores.operating:.4f} (validation sensitivity >= {target:g})")
    return scores


def _with_cost_limit(options: FinalOptions, record: SearchRecord) -> FinalOptions:
    """The options with the cost guard set: the flag's, else the search's own limit (the
    report then says which)."""
    if options.max_epoch_s is not None:
        return options
    limit = float((record.experiment.get("search") or {}).get("max_epoch_s") or 0.0)
    return dataclasses.replace(options, max_epoch_s=limit)


def _families(chosen: Retrained, scores, selection: dict, options: FinalOptions, log) -> dict:
    """Results by acquisition family on test, and held out of training when checked (the
    ``family`` selection rule's own, or ``--family-check``'s)."""
    return {
        "test": families_on_test(chosen.data, scores.test, scores.operating),
        "held_out": selection.get("held_out", {}).get(selection["chosen"])
        or (held_out_families(chosen, log) if options.family_check else None),
    }


def _select(runs: list[Retrained], options: FinalOptions, seed: int, log: Callable[[str], None]):
    """The kept run by ``options.select``, or by the site sample when opted in."""
    if not options.select_on_site:
        return select_run(runs, options.select, seed, log)
    from results.final.site import site_rw_aucs

    log(f"selecting on the site sample {options.site} (--select-on-site): site-selected")
    return select_run(
        runs, SITE_RULE, seed, log, site_scores=lambda tied: site_rw_aucs(tied, options.site, log)
    )


def _external_set(chosen: Retrained, log: Callable[[str], None]):
    """The experiment's external labelled set (``data.external_root``), or None."""
    if not chosen.config.data.external_root:
        return None
    from pneumo_core.data.external import prepare_external

    external = prepare_external(chosen.config.data, chosen.data.class_names)
    log(f"external check: {external.summary['images']} images from {external.root}")
    return external


def _measured_only(model, chosen: Retrained, scores, options, record, log):
    """The report sections that measure the exported model and choose nothing: the site
    check (``--site``), the shortcut audit and the pixel scope detector (fitted on the
    train split, thresholded on validation, exported with the model). They run after every
    choice is made.

    Returns:
        ``(sections, detector)``: the report's sections and the fitted
        :class:`results.serving.pixel_scope.PixelScope`.
    """
    from results.final.scope_check import fit_and_measure

    out: dict[str, Any] = {}
    site = _site_sample(chosen, options.site, log)
    if site is not None:
        out["site"] = _site_section(model, chosen, scores.operating, site, options, record)
        out["site"]["used_for_choices"] = options.select_on_site
        log(_site_line(out["site"]))
    config = chosen.data.config
    spec = {"size": config.image_size, "color_mode": config.color_mode, "aspect": config.aspect}
    detector, out["pixel_scope"] = fit_and_measure(
        chosen.data, spec, site.images.images if site else None, record.seed
    )
    log(_pixel_scope_line(out["pixel_scope"]))
    if options.shortcut_audit:
        from results.final.shortcut import shortcut_audit

        log("shortcut audit: border and centre probes, border bands masked")
        out["shortcut_audit"] = shortcut_audit(
            model, chosen.data, scores.test, scores.operating, site.images if site else None
        )
    return out, detector


def _pixel_scope_line(section: dict[str, Any]) -> str:
    """One line: the pixel scope detector's false alarms and detections."""
    alarms = ", ".join(f"{k} {v['rate']:.3f}" for k, v in section["false_alarm"].items())
    return (
        f"pixel scope: false alarms {alarms} (target {section['false_alarm_target']:g}); "
        f"out-of-scope images flagged {section['detection_rate']:.3f}"
    )


def _site_sample(chosen: Retrained, folder: str | None, log: Callable[[str], None]):
    """The ``--site`` sample decoded like the chosen model's data, or None."""
    if not folder:
        return None
    from results.final.site import load_site

    site = load_site(folder, chosen.data.config, chosen.data.class_names)
    log(f"site check: {len(site.images.labels)} images from {site.images.root}")
    return site


def _site_section(model, chosen: Retrained, threshold: float, site, options, record) -> dict:
    """The exported model on the ``--site`` sample (:func:`results.final.site.site_check`)."""
    from pneumo_core.data.pipeline import predict_batches
    from results.final.site import site_check

    data = chosen.data
    return site_check(
        site,
        predict_batches(model, site.images.images),
        threshold,
        target=options.target_sensitivity,
        train_patients={data.patients[i] for i in data.splits["train"]},
        class_names=data.class_names,
        seed=record.seed,
        n_boot=options.n_boot,
    )


def _site_line(site: dict[str, Any]) -> str:
    """One line: the site's AUC and specificity at both thresholds."""
    metrics = site["at_validation_threshold"]["metrics"]
    own = site["site_threshold"]
    return (
        f"site check ({site['images']} images): auc {metrics['auc']['value']:.4f} "
        f"[{metrics['auc']['low']:.4f}, {metrics['auc']['high']:.4f}], at the validation "
        f"threshold sensitivity {metrics['sensitivity']['value']:.4f} specificity "
        f"{metrics['specificity']['value']:.4f}; specificity {own['specificity']:.4f} at "
        f"sensitivity {site['target_sensitivity']:g} with the site's own threshold"
    )


def _exported_model(
    runs: list[Retrained],
    chosen: Retrained,
    ranked: list[Retrained] | None,
    external,
    options: FinalOptions,
    suite_seed: int,
    log: Callable[[str], None],
) -> ExportedModel:
    """The single model or the ensemble (with TTA), compared side by side when several."""
    members = ensemble_members(
        runs, chosen, options.ensemble, log, greedy=options.greedy, ranked=ranked
    )
    candidates = candidate_models(members, [m.result.model for m in members], options.tta)
    if len(members) > 1:
        log(f"ensemble of {len(members)}: " + ", ".join(m.trial_id for m in members))
    comparison = None
    if len(candidates) > 1:
        log(f"side by side: {', '.join(c[0] for c in candidates)}")
        comparison = side_by_side(
            candidates,
            chosen.data,
            options.target_sensitivity,
            chosen.config.objective,
            external=external,
            suite_seed=suite_seed if options.robustness else None,
        )
    return ExportedModel(candidates[-1][1], members, comparison)


def _robustness(model, chosen: Retrained, threshold: float, seed: int, options, log):
    """The robustness suite's table on the test split, or None when switched off."""
    if not options.robustness:
        return None
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.robustness import robustness_table

    log("robustness suite on the test split")
    test_images, test_labels = chosen.data.arrays("test")
    objective = chosen.config.objective
    return robustness_table(
        lambda images: predict_batches(model, images),
        test_images,
        test_labels,
        threshold=threshold,
        seed=seed,
        tau=objective.tau,
        w=objective.w,
    )


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A fresh ``final.partial/`` that replaces ``target`` when the block ends well.

    An interrupted stage leaves the previous ``final/`` as it was, and a new one leaves no
    stale file of the old one.
    """
    folder = target.with_name(f"{target.name}.partial")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    yield folder
    if target.exists():
        shutil.rmtree(target)
    folder.rename(target)


def _write_outputs(
    folder: Path,
    exported: ExportedModel,
    chosen: Retrained,
    scores,
    report: dict[str, Any],
    record: SearchRecord,
    options: FinalOptions,
    detector=None,
) -> None:
    """Predictions, the Grad-CAM gallery and the exported model with its card (and its
    pixel scope detector)."""
    from results.report.model_card import model_card
    from results.serving.export import export_model, read_card

    data = chosen.data
    for split, probs in (("val", scores.val), ("test", scores.test)):
        write_predictions(folder / PREDICTION_FILES[split], data, split, probs, scores.operating)
    report["gallery"] = gallery(
        exported.model, data, scores.test, scores.operating, options.gallery, folder / "gallery"
    )
    card = model_card(
        record.name,
        chosen,
        scores.thresholds,
        report,
        options.target_sensitivity,
        members=exported.members,
        tta_views=TTA_VIEWS if options.tta else (),
    )
    export_model(exported.model, folder / "model", card, detector)
    report["model"] = {"folder": "model", "card": "model/model_card.json"}
    report["model_card"] = read_card(folder / "model")  # as exported: hashes, serving


def _write_report(folder: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Writes ``report.json`` and ``report.html``; returns the report as written."""
    from results.report.html import write_report

    report = plain(report)
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=2, allow_nan=False))
    write_report(report, folder)
    return report
