"""What a resumed search must keep: its experiment and the code that trains its trials.

``run`` records both in ``run_guard.json``; ``resume`` refuses to continue a search whose
``experiment.yaml`` or training code changed since, because finished and resumed trials
would then come from different searches (a leaderboard mixing two spaces, a checkpoint
loaded into a different model).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import EXPERIMENT_FILE, GUARD_FILE
from pneumo_errors import ConfigError, PneumoError
from search.config import ExperimentConfig

__all__ = ["GUARD_FILE", "check_guard", "trainable_fingerprint", "write_guard"]

_REPO = Path(__file__).resolve().parents[1]
#: The code a trial runs: the trial function, training loop, models, data and spaces.
TRAINABLE_SOURCES = (
    "search/trial.py",
    "pneumo_core/train",
    "pneumo_core/models",
    "pneumo_core/data",
    "spaces",
)
#: Keys that may differ on resume (where the cluster is and how the final stage runs, not
#: what is searched).
_MAY_CHANGE = frozenset({"address", "final"})


def trainable_fingerprint() -> str:
    """sha256 over the source files a trial runs (names and contents, sorted)."""
    digest = hashlib.sha256()
    for source in TRAINABLE_SOURCES:
        path = _REPO / source
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(_REPO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def write_guard(run_dir: Path, config: ExperimentConfig) -> None:
    """Records the experiment and the trainable's fingerprint at the start of a run."""
    guard = {"experiment": config.to_yaml_dict(), "trainable_sha256": trainable_fingerprint()}
    (run_dir / GUARD_FILE).write_text(json.dumps(guard, indent=2, sort_keys=True))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _defaults() -> dict[str, Any]:
    """Every experiment key's default value (flattened)."""
    from pneumo_core.configuration import from_dict

    config = from_dict(ExperimentConfig, {"name": "defaults"})
    return _flatten(json.loads(json.dumps(config.to_yaml_dict())))


def check_guard(run_dir: Path, config: ExperimentConfig) -> None:
    """Refuses a resume whose experiment or training code changed since the run started.

    Raises:
        ConfigError: ``experiment.yaml`` changed; the message names each changed key.
        PneumoError: The training code changed.
    """
    path = run_dir / GUARD_FILE
    if not path.is_file():
        return  # a run started before the guard existed
    try:
        guard = json.loads(path.read_text())
    except ValueError as exc:
        raise PneumoError(f"{path}: unreadable ({exc})") from None
    before = _flatten(json.loads(json.dumps(guard["experiment"])))
    now = _flatten(json.loads(json.dumps(config.to_yaml_dict())))
    defaults = _defaults()
    changed = sorted(
        k
        for k in before.keys() | now.keys()
        if before.get(k) != now.get(k)
        and k.split(".")[0] not in _MAY_CHANGE
        # a key added by a later version, at its default: the run behaves as before
        and not (k not in before and k in defaults and now.get(k) == defaults[k])
    )
    if changed:
        details = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:6])
        raise ConfigError(
            changed[0],
            f"{run_dir / EXPERIMENT_FILE} changed since this search started ({details}); "
            "a resumed search keeps its space and training: undo the change, or start a new "
            "search with `pneumo-search run EXPERIMENT.yaml --name NEW`",
        )
    if guard.get("trainable_sha256") != trainable_fingerprint():
        raise PneumoError(
            f"{run_dir}: the training code ({', '.join(TRAINABLE_SOURCES)}) changed since this "
            "search started; resuming would mix trials trained by two versions. Reinstall the "
            "version that started it, or start a new search with --name NEW"
        )
