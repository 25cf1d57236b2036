"""The recipe's ``final`` options side by side on kept search boards (issue 16).

Each board is a search as kept in ``bench/figures`` (``experiment.yaml``,
``data_summary.json``, ``leaderboard.csv``): the budget curve's boards, for instance. For
each board and each variant of the recipe's final (``--ensemble 3 --target-sensitivity
0.95`` plus the variant's options), the board is copied to ``OUT/BOARD-VARIANT``, ``final``
runs there, and its report is read off as the budget curve's shift proxies (carved test,
the external set, the robustness suite) plus the carved test's specificity on
``NORMAL2-IM-`` normals (the family that failed most on the kept public split). Printed:
every row, the medians per variant over the boards, and each variant minus the baseline.

The baseline variant is the recipe's final at the search's own size (the recipe before
it adopted ``--image-size 160`` from this benchmark; ``size160`` is the recipe now);
where a board folder keeps the report of that final (``final_report.json``, same board,
same seed, same code), it is read instead of retrained (``--rerun-baseline`` retrains it).
``--baseline VARIANT`` compares with another variant; ``--reuse FILE`` reads the rows of an
earlier run's ``final_options.json`` (same board and variant) instead of retraining them.
``clean160`` is the label-noise lever: a 4-fold audit of the board's best configuration
(:mod:`results.final.label_audit`), then ``size160`` trained without the images it flags (its
``final_s`` counts both; a board's audit is kept in ``OUT/label_audits`` and reused). The
``single*_family`` variants are one model (no ensemble, no suite) and its family-out check
(``--family-check``: one retraining per acquisition family held out), at the search's size,
at 160 px, and at 160 px without the flagged images: each lever's family-out scores.
``size160_suite`` retrains the top 6 at 160 px and ranks those tied with the best by the
robustness suite's mean on validation (``--select suite``): the kept model and its two
ensemble partners are the rule's first three.

    python bench/final_options.py bench/figures/budget_guard_seed{1,2}/50min \\
        --variants baseline size160 size224
    python bench/final_options.py bench/figures/budget_guard_seed{1,2,0}/50min \\
        --variants size160 clean160 --baseline size160 \\
        --reuse bench/figures/final_options_resolution.json
    python bench/final_options.py ../shared/data/chest_xray_mini --quick \\
        --variants baseline clean160 single160_clean_family   # the test's mode
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.budget_curve import COLUMNS, proxies, recipe_search  # noqa: E402

#: Each variant's options on top of the recipe's final (``FinalOptions`` fields).
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "size160": {"image_size": 160},
    "size224": {"image_size": 224},
    "greedy": {"greedy": True, "top": 6},
    "tta": {"tta": True},
    "size160_greedy": {"image_size": 160, "greedy": True, "top": 6},
    "size160_suite": {"image_size": 160, "select": "suite", "top": 6},
    # the label-noise lever: a K-fold audit first, then the recipe without what it flags
    "clean160": {"image_size": 160, "exclude_label_issues": 4},
    # one model (no ensemble, no suite) and its family-out check: the levers on family-out
    "single_family": {"single_family": True},
    "single160_family": {"image_size": 160, "single_family": True},
    "single160_clean_family": {"image_size": 160, "single_family": True, "exclude_label_issues": 4},
}

#: The family whose specificity is reported beside the proxies.
FAMILY = "NORMAL2-IM"

#: What a board folder holds (copied to each variant's run folder).
BOARD_FILES = ("experiment.yaml", "data_summary.json", "leaderboard.csv")

COLUMNS_SHOWN = (*COLUMNS, "normal2_specificity", "final_s")


def read_row(report: dict[str, Any]) -> dict[str, Any]:
    """The proxies of one ``final`` report, its ``NORMAL2-IM`` specificity and its seconds.

    With a family-out check, also each held-out family's rw_auc and specificity.
    """
    row: dict[str, Any] = proxies(report)
    families = (report.get("families") or {}).get("test") or []
    row["normal2_specificity"] = next(
        (f["value"] for f in families if f["family"] == FAMILY and f["class"] == "NORMAL"), None
    )
    for fold in ((report.get("families") or {}).get("held_out") or {}).get("folds") or []:
        # the model trained without that family, on it (NORMAL2-IM-'s specificity there is
        # the closest proxy of the kept split's failure)
        row[f"held_out_{fold['family']}_rw_auc"] = fold["rw_auc"]
        row[f"held_out_{fold['family']}_specificity"] = fold["specificity"]
    row["final_s"] = report.get("seconds")
    row["image_size"] = (report.get("data") or {}).get("image_size")
    row["members"] = (report.get("ensemble") or {}).get("members")
    return row


def exclude_label_issues(run_dir: Path, folds: int, audited: Path) -> dict[str, Any]:
    """Audits ``run_dir``'s best configuration; its experiment then trains without the flagged.

    The audit is a single-model final with ``--label-audit folds`` (at the search's size, no
    robustness suite); its ``label_issues.csv`` is kept as ``audited`` (a board's audit is
    run once: later variants on it read that file) and named by the experiment's
    ``data.train_exclude``, so the final that follows trains without the images it lists.

    Returns:
        ``flagged``, ``flagged_by_class`` and ``audit_s`` (the audit final's seconds).
    """
    import yaml

    from results.final.label_audit import LABEL_ISSUES_FILE
    from results.final.options import FinalOptions
    from search.final_stage import run_final

    summary = audited.with_suffix(".json")
    if not (audited.is_file() and summary.is_file()):
        audit = FinalOptions(robustness=False, label_audit=folds, n_boot=50, gallery=0)
        log = lambda line: print("    audit: " + line, flush=True)  # noqa: E731
        outcome = run_final(run_dir, audit, log=log)
        audited.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(outcome.folder / LABEL_ISSUES_FILE, audited)
        report = outcome.report["label_audit"]
        found = {
            "flagged": report["flagged"],
            "flagged_by_class": report["flagged_by_class"],
            "audit_s": outcome.report["seconds"],
        }
        summary.write_text(json.dumps(found, indent=2))
    else:
        print(f"    the audit kept in {audited}", flush=True)
    experiment = yaml.safe_load((run_dir / "experiment.yaml").read_text())
    experiment["data"]["train_exclude"] = str(audited)
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
    return json.loads(summary.read_text())


def run_variant(board: Path, variant: str, out: Path, quick: bool) -> dict[str, Any]:
    """The recipe's final with ``variant``'s options on a copy of ``board``; its row."""
    from results.final.options import FinalOptions
    from search.final_stage import run_final

    options = dict(VARIANTS[variant])
    audit_folds = options.pop("exclude_label_issues", 0)
    single = options.pop("single_family", False)
    if quick:  # 32 px searches: the sizes scale down with them
        options.pop("top", None)
        if "image_size" in options:
            options["image_size"] = options["image_size"] // 4
    run_dir = out / f"{board.parent.name}-{board.name}-{variant}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    for name in BOARD_FILES:
        if (board / name).is_file():
            shutil.copy2(board / name, run_dir / name)
    audited = out / "label_audits" / f"{board.parent.name}-{board.name}.csv"
    audit = exclude_label_issues(run_dir, audit_folds, audited) if audit_folds else {}
    final = FinalOptions(
        ensemble=0 if quick or single else 3,
        target_sensitivity=0.95,
        robustness=not (quick or single),
        family_check=single,
        n_boot=50 if quick else 1000,
        **options,
    )
    outcome = run_final(run_dir, final, log=lambda line: print("    " + line, flush=True))
    row = read_row(outcome.report)
    row["train_images"] = outcome.report["data"]["splits"]["train"]["images"]
    if audit:  # the lever's cost is the audit and the final together
        row.update(audit, final_s=row["final_s"] + audit["audit_s"])
    return row


def medians(rows: list[dict[str, Any]], variants: list[str]) -> dict[str, dict[str, Any]]:
    """Per variant, the median of each shown column over the boards."""
    table = {}
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        entry: dict[str, Any] = {"boards": len(mine)}
        for column in COLUMNS_SHOWN:
            values = [r[column] for r in mine if r.get(column) is not None]
            entry[column] = statistics.median(values) if values else None
        table[variant] = entry
    return table


def deltas(
    table: dict[str, dict[str, Any]], baseline: str = "baseline"
) -> dict[str, dict[str, float | None]]:
    """Each variant's medians minus those of ``baseline``."""
    base = table.get(baseline)
    if base is None:
        return {}
    return {
        variant: {
            c: (entry[c] - base[c] if entry[c] is not None and base[c] is not None else None)
            for c in COLUMNS_SHOWN
        }
        for variant, entry in table.items()
        if variant != baseline
    }


def print_table(title: str, table: dict[str, dict[str, Any]], signed: bool = False) -> None:
    """One line per variant, one column per shown proxy."""
    short = [c.replace("_rw_auc", "").replace("external", "ext") for c in COLUMNS_SHOWN]
    print(f"\n{title}")
    print(f"{'variant':<10}" + "".join(f"{c:>16}" for c in short))
    for variant, entry in table.items():
        cells = "".join(
            f"{entry[c]:>+16.4f}"
            if signed and isinstance(entry[c], float)
            else f"{entry[c]:>16.4f}"
            if isinstance(entry[c], float)
            else f"{'-' if entry[c] is None else entry[c]:>16}"
            for c in COLUMNS_SHOWN
        )
        print(f"{variant:<10}{cells}")


def quick_board(data: str, out: Path) -> Path:
    """A two-trial search of the recipe on ``data`` (the budget curve's quick mode)."""
    args = types.SimpleNamespace(data=data, external=data, external_split="val", quick=True)
    args.reuse = False
    run_dir, _ = recipe_search(args, seed=0, minutes=0.5, out=out)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("boards", nargs="+", help="board folders (or, with --quick, a dataset)")
    parser.add_argument(
        "--variants", nargs="+", default=["baseline", "size160"], choices=sorted(VARIANTS)
    )
    parser.add_argument("--out", default=str(REPO / "runs" / "bench_final_options"))
    parser.add_argument(
        "--rerun-baseline", action="store_true", help="retrain the baseline even if kept"
    )
    parser.add_argument(
        "--baseline", default="baseline", help="the variant the others are compared with"
    )
    parser.add_argument(
        "--reuse",
        help="a final_options.json whose rows (same board and variant) are read, not rerun",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny search, no ensemble")
    args = parser.parse_args(argv)
    if args.baseline not in args.variants:
        parser.error(f"--baseline {args.baseline} is not one of --variants")

    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    boards = [Path(b).resolve() for b in args.boards]
    if args.quick:
        boards = [quick_board(args.boards[0], out / "search")]
    reused = {}
    if args.reuse:
        for row in json.loads(Path(args.reuse).read_text())["rows"]:
            reused[(row["board"], row["variant"])] = row
    rows = []
    for board in boards:
        for variant in args.variants:
            print(f"{board}: {variant}", flush=True)
            kept = board / "final_report.json"
            if (str(board), variant) in reused:
                print(f"    the row kept in {args.reuse}", flush=True)
                row = {k: v for k, v in reused[(str(board), variant)].items() if k != "board"}
                row.pop("variant")
            elif variant == "baseline" and kept.is_file() and not args.rerun_baseline:
                print(f"    the kept report: {kept}", flush=True)
                row = read_row(json.loads(kept.read_text()))
            else:
                row = run_variant(board, variant, out, args.quick)
            rows.append({"board": str(board), "variant": variant, **row})
            (out / "final_options.json").write_text(json.dumps({"rows": rows}, indent=2))
    for row in rows:
        print_table(f"{row['board']}: {row['variant']}", {row["variant"]: row})
    table = medians(rows, args.variants)
    print_table(f"medians over {len(boards)} board(s)", table)
    change = deltas(table, args.baseline)
    if change:
        print_table(f"each variant minus {args.baseline} (medians)", change, signed=True)
    result = {"args": vars(args), "rows": rows, "medians": table, "deltas": change}
    (out / "final_options.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"every number: {out / 'final_options.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
