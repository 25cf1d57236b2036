"""The search section of the final report: counts, timeline, importances, the top trials."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from results.board.leaderboard import is_finite, parse_cell, row_params

__all__ = ["TOP_COLUMNS", "summarize_search"]

#: Leaderboard columns the report's top-10 table shows (hyperparameters follow).
TOP_COLUMNS = (
    "rank",
    "trial_id",
    "status",
    "objective",
    "auc",
    "sensitivity",
    "specificity",
    "best_epoch",
    "epochs_run",
    "wall_time_s",
)


def _timeline(study) -> list[dict[str, Any]]:
    """Each finished Optuna trial: minutes from the study's start, state, value."""
    trials = [t for t in study.trials if t.datetime_start is not None]
    if not trials:
        return []
    start = min(t.datetime_start for t in trials)
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        end = trial.datetime_complete
        value = trial.value if trial.state.name == "COMPLETE" else None
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": float(value) if value is not None else None,
                "minutes": (end - start).total_seconds() / 60 if end else None,
            }
        )
    return rows


def _importances(study) -> dict[str, Any]:
    import optuna

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {"error": f"needs at least 2 completed trials, has {len(complete)}"}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as exc:  # Optuna refuses some studies (e.g. no common parameter)
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"method": "fANOVA (Optuna), completed trials", "values": dict(values)}


def summarize_search(run_dir: Path, study_name: str, rows: list[dict[str, str]]) -> dict:
    """Summarizes a finished search from its leaderboard rows and Optuna study.

    Args:
        run_dir: The run folder (holds ``optuna.db``).
        study_name: The Optuna study's name (the experiment name).
        rows: ``leaderboard.csv`` rows, best first.

    Returns:
        ``trials`` (count per status), ``wall_time_s`` (first trial start to last end),
        ``best`` (the best row's configuration), ``top`` (10 rows), ``timeline`` and
        ``importance``.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counts = Counter(row["status"] for row in rows)
    summary: dict[str, Any] = {
        "trials": {"total": len(rows), **dict(sorted(counts.items()))},
        "best": None,
        "top": [],
        "timeline": [],
        "importance": {"error": "no Optuna study found"},
        "wall_time_s": None,
    }
    ranked = [row for row in rows if row.get("rank")]
    if ranked:
        best = ranked[0]
        summary["best"] = {
            "trial_id": best["trial_id"],
            "objective": float(best["objective"]),
            "params": row_params(best),
        }
    for row in rows[:10]:
        shown = {k: parse_cell(row[k]) for k in TOP_COLUMNS if k in row}
        shown["params"] = row_params(row)
        summary["top"].append(shown)
    storage = run_dir / "optuna.db"
    if storage.is_file():
        study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage}")
        summary["timeline"] = _timeline(study)
        summary["importance"] = _importances(study)
        ends = [t["minutes"] for t in summary["timeline"] if t["minutes"] is not None]
        if ends:
            summary["wall_time_s"] = round(max(ends) * 60, 1)
    summary["sum_of_trial_times_s"] = round(
        sum(float(r["wall_time_s"]) for r in rows if is_finite(r.get("wall_time_s"))), 1
    )
    return summary
