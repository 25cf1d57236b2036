"""The ``pneumo-search`` command line: parse, dispatch, return an exit code.

Errors meant for users (:class:`~pneumo_errors.PneumoError`) print as one line on
stderr with exit code 2; Ctrl-C exits with 130. Logic lives in importable functions.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from pneumo_contracts.status import TrialStatus
from pneumo_errors import PneumoError
from results.final.options import SELECTION_RULES

#: ``final``'s flags that replace keys of the experiment's ``final`` section (same names).
FINAL_FLAGS = (
    "top",
    "seeds",
    "target_sensitivity",
    "epochs",
    "image_size",
    "max_epoch_s",
    "ensemble",
    "tta",
    "label_audit",
    "greedy",
    "select",
    "family_check",
    "robustness",
    "site",
    "select_on_site",
    "shortcut_audit",
    "crop_scale",
)

__all__ = ["main"]


def _quiet_tensorflow() -> None:
    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()


def parse_overrides(items: Sequence[str]) -> dict:
    """Turns ``["data.image_size=64", "seed=3"]`` into a nested mapping.

    Values are read as YAML scalars (``64`` is an int, ``true`` a bool, ``[1, 2]`` a list).

    Raises:
        ConfigError: An item has no ``=`` or no key.
    """
    import yaml

    from pneumo_errors import ConfigError

    nested: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        parts = key.strip().split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(key, "sets a value inside a non-mapping key")
        node[parts[-1]] = value
    return nested


def _cmd_train(args: argparse.Namespace) -> int:
    from pneumo_core.train.config import load_train_config

    overrides = parse_overrides(args.set or [])
    if args.data:
        overrides.setdefault("data", {})["root"] = args.data
    if args.epochs:
        overrides.setdefault("training", {})["epochs"] = args.epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    config = load_train_config(args.config, overrides)
    _quiet_tensorflow()
    from pneumo_core.train.standalone import train_and_report

    result = train_and_report(config, out=args.out)
    return 0 if result.status != TrialStatus.NAN_LOSS else 1


def _experiment_overrides(args: argparse.Namespace) -> dict:
    overrides = parse_overrides(args.set or [])
    if args.data:
        overrides.setdefault("data", {})["root"] = args.data
    if args.name:
        overrides["name"] = args.name
    if getattr(args, "warm_start", None):
        overrides.setdefault("search", {})["warm_start"] = args.warm_start
    return overrides


def _print_summary(summary) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    print(f"trials: {counts or 'none'}")
    if summary.best:
        best = summary.best
        print(
            f"best: trial {best['trial_id']} objective {float(best['objective']):.4f} "
            f"(auc {float(best['auc']):.4f}, sensitivity {float(best['sensitivity']):.4f}, "
            f"specificity {float(best['specificity']):.4f}) model {best.get('model.name', '?')}"
        )
    where = summary.where or str(summary.run_dir)
    print(f"leaderboard: {summary.run_dir / 'leaderboard.csv'}")
    if where != str(summary.run_dir):
        print(f"run stored at {where} (leaderboard.csv there too)")
    if summary.interrupted:
        print(f"interrupted: `pneumo-search resume {shlex.quote(where)}` finishes it")


def _cmd_run(args: argparse.Namespace) -> int:
    from search.config import load_experiment
    from search.runner import run_experiment

    config = load_experiment(args.experiment, _experiment_overrides(args))
    summary = run_experiment(config, address=args.address, log=print)
    _print_summary(summary)
    return 130 if summary.interrupted else 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from search.runner import resume_experiment

    summary = resume_experiment(args.run_dir, address=args.address)
    _print_summary(summary)
    return 130 if summary.interrupted else 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from results.board.view import render_leaderboard

    print(
        render_leaderboard(
            args.run_dir, top=args.top, sort=args.sort, fmt=args.format, where=args.where
        )
    )
    return 0


def final_flags(args: argparse.Namespace) -> dict:
    """``final``'s parsed flags by key (None: not given, the section's value stays)."""
    return {name: getattr(args, name) for name in FINAL_FLAGS}


def _cmd_final(args: argparse.Namespace) -> int:
    from search.final_stage import final_options, run_final

    options = final_options(args.run_dir, final_flags(args))
    _quiet_tensorflow()
    outcome = run_final(args.run_dir, options)
    print("\n".join(outcome.summary_lines()))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from results.serving.export import copy_export

    target = copy_export(args.run_dir, args.to)
    print(f"exported the final model of {args.run_dir} to {target}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from results.serving.predict import predict_files, predictions_csv, walk_inputs

    files, hidden = walk_inputs(args.inputs)  # walked once: the files and the hidden count
    rows = predict_files(args.model_dir, files, batch_size=args.batch_size, strict=args.strict)
    text = predictions_csv(rows, args.csv)
    errors = sum(row["status"] == "error" for row in rows)
    checked = [row for row in rows if row.get("in_scope") in (True, False)]
    if checked:
        out = sum(row["in_scope"] is False for row in checked)
        warned = sum(row["in_scope"] is True and bool(row["scope_reason"]) for row in checked)
        what = "refused (--strict)" if args.strict else "flagged (probability given)"
        print(
            f"pneumo-search: scope: {len(checked)} file(s) checked, {out} out of scope "
            f"{what}, {warned} with a warning (the in_scope and scope_reason columns)",
            file=sys.stderr,
        )
    if args.csv:
        print(f"{len(rows)} files, {errors} errors: {args.csv}")
    else:
        print(text, end="")
    if hidden:
        print(f"pneumo-search: skipped {hidden} hidden file(s) or folder(s)", file=sys.stderr)
    if errors == len(rows):
        print(
            f"pneumo-search: error: none of the {len(rows)} files could be read as an image "
            "(the rows say why)",
            file=sys.stderr,
        )
        return 2
    if errors:
        print(f"pneumo-search: {errors} of {len(rows)} files could not be read", file=sys.stderr)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from results.serving.calibrate import calibrate_export

    outcome = calibrate_export(
        args.model_dir,
        args.site_dir,
        target_sensitivity=args.target_sensitivity,
        out=args.out,
        seed=args.seed,
        report=args.report,
        log=lambda line: print(line, flush=True),
    )
    print(f"calibrated copy: {outcome.folder} (the original export is unchanged)")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from results.serving.predict import explain_image

    row = explain_image(args.model_dir, args.image, args.out, explain_class=args.explain_class)
    probs = ", ".join(f"{k[5:]} {v:.4f}" for k, v in row.items() if k.startswith("prob_"))
    print(
        f"{row['path']}: predicted {row['label']} ({probs}; threshold {row['threshold']:.4f}); "
        f"Grad-CAM of {row['explained']}: {row['overlay']}"
    )
    if row["flat"]:
        print(
            f"pneumo-search: warning: the Grad-CAM map of {row['explained']} is flat (the "
            "model's score barely depends on where in the image it looks); it shows nothing",
            file=sys.stderr,
        )
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from spaces import list_spaces

    for name, description in list_spaces().items():
        print(f"{name:<10} {description}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from pneumo_core.models import get_model_spec, list_models

    for name in list_models():
        print(f"{name:<16} {get_model_spec(name).family}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from pneumo_core.metrics import METRICS

    for spec in METRICS.values():
        direction = "max" if spec.higher_is_better else "min"
        print(f"{spec.name:<12} {direction}  {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``pneumo-search``."""
    parser = argparse.ArgumentParser(
        prog="pneumo-search",
        description="Hyperparameter search for pneumonia detection on chest X-rays.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train one configuration and print its validation metrics")
    train.add_argument("config", help="training configuration (YAML)")
    train.add_argument("--data", help="dataset folder (overrides data.root)")
    train.add_argument("--epochs", type=int, help="overrides training.epochs")
    train.add_argument("--seed", type=int, help="overrides seed")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any key, e.g. --set data.image_size=64 (repeatable)",
    )
    train.add_argument("--out", help="folder to write train_result.json and model.keras into")
    train.set_defaults(func=_cmd_train)
    run = sub.add_parser("run", help="run a search (Ray Tune + Optuna) from an experiment file")
    run.add_argument("experiment", help="experiment configuration (YAML)")
    run.add_argument("--data", help="dataset folder (overrides data.root)")
    run.add_argument("--name", help="experiment name (the run folder is runs/NAME)")
    run.add_argument("--address", help="Ray address (auto, HOST:PORT, ray://...); none = local")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any key")
    run.add_argument(
        "--warm-start",
        metavar="RUN_DIR",
        help="start from an earlier run's study: its observations and best configurations "
        "(search.warm_start)",
    )
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser("resume", help="finish a search whose driver stopped")
    resume.add_argument("run_dir", help="the run folder (runs/NAME)")
    resume.add_argument("--address", help="Ray address; none = local")
    resume.set_defaults(func=_cmd_resume)
    board = sub.add_parser("leaderboard", help="show a run's leaderboard")
    board.add_argument("run_dir", help="the run folder (runs/NAME)")
    board.add_argument("--top", type=int, default=10, help="rows to show (0 = all)")
    board.add_argument("--sort", help="column to sort by (default: the ranking)")
    board.add_argument("--format", choices=["table", "csv", "json"], default="table")
    board.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="keep the rows whose COLUMN is VALUE (repeatable: all must match), e.g. "
        "--where status=completed --where model.name=mobilenet",
    )
    board.set_defaults(func=_cmd_leaderboard)
    final = sub.add_parser(
        "final",
        help="retrain the best, choose the threshold, test once, report and export",
        description="Options come from the experiment's final section (search/kermany.yaml "
        "keeps the recipe's); each flag given replaces its key there. The defaults named "
        "below apply where neither sets one.",
    )
    final.add_argument("run_dir", help="the run folder (runs/NAME)")
    final.add_argument("--top", type=int, help="configurations retrained (top K; default 1)")
    final.add_argument("--seeds", type=int, help="seeds per configuration (default 1)")
    final.add_argument(
        "--target-sensitivity",
        type=float,
        help="sensitivity the threshold must reach on validation (default 0.95)",
    )
    final.add_argument("--epochs", type=int, help="epochs per retraining (default: the trials')")
    final.add_argument(
        "--image-size",
        type=int,
        help="resolution of the retrainings (default: the search's; e.g. search at 64-128 "
        "px, retrain at 160-224)",
    )
    final.add_argument(
        "--max-epoch-s",
        type=float,
        metavar="S",
        help="retrain only trials whose median epoch took at most S seconds and that the "
        "search's time limit did not stop (default: the search's search.max_epoch_s; 0 = all)",
    )
    final.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="export the mean of the K best differing configurations (K >= 2; default: one)",
    )
    final.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="test-time augmentation: also average over the image shifted 4%% each way "
        "(--no-tta turns off what the final section sets)",
    )
    final.add_argument(
        "--label-audit",
        type=int,
        metavar="K",
        help="flag train images whose label K out-of-fold models doubt (cleanlab); writes "
        "final/label_issues.csv (train without them: data.train_exclude)",
    )
    final.add_argument(
        "--greedy",
        action=argparse.BooleanOptionalAction,
        help="with --ensemble K: choose members by greedy selection on validation (Caruana; "
        "with replacement, up to K picks from the --top retrained candidates)",
    )
    final.add_argument(
        "--select",
        choices=SELECTION_RULES,
        help="among retrained candidates tied with the best within its validation interval, "
        "keep the best on validation (default), the fewest parameters, the best worst "
        "held-out family (retrains each tied one per family), or the best robustness-suite "
        "mean on the validation images",
    )
    final.add_argument(
        "--site",
        metavar="DIR",
        help="a labelled folder from another site (NORMAL/, PNEUMONIA/): the exported model "
        "is scored there in its own report section, after every choice is made (it chooses "
        "nothing)",
    )
    final.add_argument(
        "--crop-scale",
        type=float,
        metavar="S",
        help="retrain the finalists with random resized crops down to area S (0.05-1; the "
        "lever bench/site_levers.py measures on the test-site sample; default: the search's "
        "augmentation)",
    )
    final.add_argument(
        "--select-on-site",
        action=argparse.BooleanOptionalAction,
        help="opt in: rank the candidates tied on validation (and the ensemble's members) by "
        "their rw_auc on the --site sample; the model is reported as site-selected and the "
        "site's figures as optimistic (never the default; the threshold stays validation's)",
    )
    final.add_argument(
        "--shortcut-audit",
        action=argparse.BooleanOptionalAction,
        help="report border and centre probes and the model with its border bands masked "
        "(default: on; a few seconds)",
    )
    final.add_argument(
        "--family-check",
        action=argparse.BooleanOptionalAction,
        help="also retrain the chosen configuration once per acquisition family held out "
        "of training and score it on that family (about 3 more retrainings)",
    )
    final.add_argument(
        "--robustness",
        action=argparse.BooleanOptionalAction,
        help="re-score the test split under the robustness suite's shifts (default: on; "
        "--no-robustness skips it)",
    )
    final.set_defaults(func=_cmd_final)
    export = sub.add_parser("export", help="copy a run's exported final model to a folder")
    export.add_argument("run_dir", help="the run folder (runs/NAME)")
    export.add_argument("--to", required=True, help="destination folder (new or empty)")
    export.set_defaults(func=_cmd_export)
    predict = sub.add_parser("predict", help="apply an exported model to images")
    predict.add_argument("model_dir", help="exported model folder (RUN_DIR/final/model)")
    predict.add_argument("inputs", nargs="+", help="image files and folders")
    predict.add_argument("--csv", help="write the rows to this CSV file (default: stdout)")
    predict.add_argument("--batch-size", type=int, default=32, help="images per batch")
    predict.add_argument(
        "--strict",
        action="store_true",
        help="give no probability for a file out of the model's scope (pixels unlike the "
        "training images; DICOM tags: not CR/DX, "
        "not the chest, lateral)",
    )
    predict.set_defaults(func=_cmd_predict)
    calibrate = sub.add_parser(
        "calibrate",
        help="fit the operating point on a site's own labelled sample into a calibrated copy",
    )
    calibrate.add_argument("model_dir", help="exported model folder (RUN_DIR/final/model)")
    calibrate.add_argument("site_dir", help="the site's labelled sample: SITE_DIR/<class>/*")
    calibrate.add_argument(
        "--target-sensitivity", type=float, default=0.95, help="on the site (default 0.95)"
    )
    calibrate.add_argument("--out", help="the calibrated copy (default: MODEL_DIR-calibrated)")
    calibrate.add_argument("--seed", type=int, default=0, help="bootstrap and cross-fit seed")
    calibrate.add_argument(
        "--report", action="store_true", help="also write calibration_report.html in the copy"
    )
    calibrate.set_defaults(func=_cmd_calibrate)
    explain = sub.add_parser(
        "explain", help="write a Grad-CAM figure of one image (the predicted class by default)"
    )
    explain.add_argument("model_dir", help="exported model folder")
    explain.add_argument("image", help="the image file")
    explain.add_argument("--out", required=True, help="PNG figure to write")
    explain.add_argument(
        "--class",
        dest="explain_class",
        metavar="CLASS",
        help="the class to explain (e.g. NORMAL or PNEUMONIA; default: the predicted one)",
    )
    explain.set_defaults(func=_cmd_explain)
    sub.add_parser("spaces", help="list shipped search spaces").set_defaults(func=_cmd_spaces)
    sub.add_parser("models", help="list registered models").set_defaults(func=_cmd_models)
    sub.add_parser("metrics", help="list metrics").set_defaults(func=_cmd_metrics)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI and returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PneumoError as exc:
        print(f"pneumo-search: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pneumo-search: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get("PNEUMO_DEBUG"):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pneumo-search: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("PNEUMO_DEBUG"):
            raise
        print(
            f"pneumo-search: unexpected error: {type(exc).__name__}: {exc} "
            "(set PNEUMO_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
