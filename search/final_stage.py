"""``pneumo-search final`` on a run folder: the search's experiment handed to the final stage.

``results`` never parses an experiment file (that is the search's format); this module
reads the run's ``experiment.yaml`` with :func:`search.config.load_experiment` and hands
:func:`results.final.final_stage` the :class:`~results.run_folder.SearchRecord` it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pneumo_core.errors import PneumoError
from results.final import FinalOptions, FinalOutcome, final_stage
from results.run_folder import EXPERIMENT_FILE
from search.config import load_experiment

__all__ = ["run_final"]


def run_final(
    run_dir: str | Path,
    options: FinalOptions | None = None,
    *,
    log: Callable[[str], None] = print,
) -> FinalOutcome:
    """Runs the final stage on the search in ``run_dir``.

    Args:
        run_dir: The search's run folder (``runs/NAME``).
        options: Top K, seeds, target sensitivity, epochs, ensemble, TTA.
        log: Where progress lines go.

    Returns:
        Where the results are, and the report's content.

    Raises:
        PneumoError: No search in ``run_dir``, no ranked trial, more than two classes, or
            every retraining diverged.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    experiment_file = run_dir / EXPERIMENT_FILE
    if not experiment_file.is_file():
        raise PneumoError(f"{run_dir}: no search here (no {EXPERIMENT_FILE})")
    record = load_experiment(experiment_file).record()
    return final_stage(run_dir, record, options, log=log)
