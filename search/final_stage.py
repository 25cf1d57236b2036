"""``pneumo-search final`` on a run folder: the search's experiment handed to the final stage.

``results`` never parses an experiment file (that is the search's format); this module
reads the run's ``experiment.yaml`` with :func:`search.config.load_experiment` and hands
:func:`results.final.stage.final_stage` the :class:`~results.final.record.SearchRecord` it needs,
with the experiment's ``final`` section as the options (flags replace its keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import EXPERIMENT_FILE, FINAL_LOG_FILE
from pneumo_errors import ConfigError, PneumoError
from results.final.stage import FinalOptions, FinalOutcome, final_stage
from search.config import ExperimentConfig, load_experiment

__all__ = ["final_options", "run_final"]


def final_options(run_dir: str | Path, flags: Mapping[str, Any] | None = None) -> FinalOptions:
    """The final stage's options for the search in ``run_dir``.

    The experiment's ``final`` section (defaults where it has none), with each flag given
    on the command line replacing its key.

    Args:
        run_dir: The search's run folder (``runs/NAME``).
        flags: ``FinalOptions`` field -> value, only for the flags given (None: not given).

    Raises:
        PneumoError: No search in ``run_dir``.
        ConfigError: The run's ``experiment.yaml`` is invalid (naming it and the key), or a
            flag's value is (naming the flag).
    """
    section = _experiment(Path(run_dir).expanduser().resolve()).final
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    try:
        return dataclasses.replace(section, **given)
    except ConfigError as exc:  # the section was valid: a flag is at fault
        raise ConfigError("--" + exc.key.replace("_", "-"), exc.message) from None


def run_final(
    run_dir: str | Path,
    options: FinalOptions | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> FinalOutcome:
    """Runs the final stage on the search in ``run_dir``.

    Args:
        run_dir: The search's run folder (``runs/NAME``).
        options: Top K, seeds, target sensitivity, epochs, ensemble, TTA (default: the
            experiment's ``final`` section, :func:`final_options`).
        log: Where progress lines go (default: standard output, flushed line by line, and
            ``RUN_DIR/final.log``, so a file or a Ray job log follows the run as it goes).

    Returns:
        Where the results are, and the report's content.

    Raises:
        PneumoError: No search in ``run_dir``, no ranked trial, more than two classes, or
            every retraining diverged.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    experiment = _experiment(run_dir)
    if log is not None:
        return final_stage(run_dir, experiment.record(), options or experiment.final, log=log)
    with (run_dir / FINAL_LOG_FILE).open("w", buffering=1) as progress:

        def log_line(line: str) -> None:
            print(line, flush=True)
            progress.write(line + "\n")

        return final_stage(run_dir, experiment.record(), options or experiment.final, log=log_line)


def _experiment(run_dir: Path) -> ExperimentConfig:
    experiment_file = run_dir / EXPERIMENT_FILE
    if not experiment_file.is_file():
        raise PneumoError(f"{run_dir}: no search here (no {EXPERIMENT_FILE})")
    return load_experiment(experiment_file)
