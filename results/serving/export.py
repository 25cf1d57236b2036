"""The exported model: ``model.keras``, a TensorFlow SavedModel and ``model_card.json``.

Loading checks the file's sha256 against the card, then uses Keras safe mode (no pickled or
arbitrary code is ever run); the project's custom layers are registered on import.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from pneumo_contracts.run_folder import FINAL_DIR
from pneumo_core.train.checkpoint_files import sha256_file
from pneumo_errors import PneumoError
from results.serving.pixel_scope import PIXEL_SCOPE_FILE, PixelScope
from results.serving.saved_model import (
    BYTES_SIGNATURE,
    SIGNATURES,
    serving_examples,
    write_saved_model,
)

__all__ = [
    "CARD_FILE",
    "MODEL_FILE",
    "SAVED_MODEL_DIR",
    "copy_export",
    "export_model",
    "load_exported",
    "load_pixel_scope",
    "read_card",
    "sha256_of",
    "tree_sha256",
]

MODEL_FILE = "model.keras"
SAVED_MODEL_DIR = "saved_model"
CARD_FILE = "model_card.json"
CARD_VERSION = 1


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's contents."""
    return sha256_file(Path(path))


def export_model(
    model: Any, folder: str | Path, card: dict[str, Any], pixel_scope: PixelScope | None = None
) -> Path:
    """Writes ``model.keras``, ``saved_model/`` and ``model_card.json`` into ``folder``.

    Args:
        model: The trained Keras model (inputs: float images in ``[0, 255]``).
        folder: Destination (created; existing files of an earlier export are replaced).
        card: What the card says besides files and hashes (classes, input, threshold...).
        pixel_scope: The pixel scope detector ``predict`` checks inputs with (written as
            ``pixel_scope.npz``, its sha256 in the card), or None.

    Returns:
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    model.save(model_path)
    saved = folder / SAVED_MODEL_DIR
    if saved.exists():
        shutil.rmtree(saved)
    write_saved_model(model, saved, card["input"])
    full = {
        "card_version": CARD_VERSION,
        **card,
        "serving": serving_examples(),
        "files": {
            MODEL_FILE: {"sha256": sha256_of(model_path), "bytes": model_path.stat().st_size},
            SAVED_MODEL_DIR: {
                "signatures": dict(SIGNATURES),
                "default_signature": "serve",
                "sha256": tree_sha256(saved),
                "files": {
                    str(p.relative_to(saved)): sha256_of(p)
                    for p in sorted(saved.rglob("*"))
                    if p.is_file()
                },
            },
        },
    }
    if pixel_scope is not None:
        path = pixel_scope.save(folder)
        full["files"][PIXEL_SCOPE_FILE] = {"sha256": sha256_of(path)}
    (folder / CARD_FILE).write_text(json.dumps(full, indent=2, default=str))
    return folder


def tree_sha256(folder: str | Path) -> str:
    """One sha256 for a folder: over each file's relative path and sha256, sorted."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_of(path)}\n".encode())
    return digest.hexdigest()


def read_card(folder: str | Path) -> dict[str, Any]:
    """Reads ``model_card.json`` of an exported model.

    Raises:
        PneumoError: The folder or card is missing or unreadable.
    """
    folder = Path(folder)
    path = folder / CARD_FILE
    if not folder.is_dir():
        raise PneumoError(f"{folder}: no such model folder")
    if not path.is_file():
        raise PneumoError(f"{path}: missing (not a model exported by `pneumo-search final`)")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PneumoError(f"{path}: unreadable model card ({exc})") from None
    for key in ("class_names", "input", "threshold", "files"):
        if key not in card:
            raise PneumoError(f"{path}: model card lacks {key!r}")
    return card


def load_exported(folder: str | Path) -> tuple[Any, dict[str, Any]]:
    """Loads an exported model after checking its sha256 against the card.

    Returns:
        ``(keras model, card)``.

    Raises:
        PneumoError: The card is missing, the model file differs from the card's hash, or
            Keras refuses the file (safe mode).
    """
    folder = Path(folder)
    card = read_card(folder)
    path = folder / MODEL_FILE
    if not path.is_file():
        raise PneumoError(f"{path}: missing")
    expected = card["files"].get(MODEL_FILE, {}).get("sha256")
    actual = sha256_of(path)
    if expected != actual:
        raise PneumoError(
            f"{path}: sha256 {actual[:12]}... does not match the model card's "
            f"{str(expected)[:12]}...; refusing to load a model file that changed"
        )
    from pneumo_core.runtime import import_tensorflow

    import_tensorflow()
    import keras

    import pneumo_core.models.layers  # noqa: F401  (registers the custom layers)

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise PneumoError(f"{path}: cannot load in safe mode: {exc}") from None
    return model, card


def load_pixel_scope(folder: str | Path, card: dict[str, Any]) -> PixelScope | None:
    """The export's pixel scope detector after checking its sha256 against the card, or
    None when the export has none (made before the detector existed).

    Raises:
        PneumoError: The file is missing though the card lists it, or its sha256 differs.
    """
    expected = card.get("files", {}).get(PIXEL_SCOPE_FILE, {}).get("sha256")
    if expected is None:
        return None
    path = Path(folder) / PIXEL_SCOPE_FILE
    if not path.is_file():
        raise PneumoError(f"{path}: missing (the model card lists it); export the model again")
    actual = sha256_of(path)
    if actual != expected:
        raise PneumoError(
            f"{path}: sha256 {actual[:12]}... does not match the model card's {expected[:12]}..."
        )
    return PixelScope.load(folder)


def copy_export(run_dir: str | Path, to: str | Path) -> Path:
    """Copies ``RUN_DIR/final/model`` to ``to`` (which must not exist or be empty).

    A model exported before the ``serve_bytes`` signature existed is written again from its
    ``model.keras`` (hash checked), so every export has both signatures.

    Raises:
        PneumoError: No exported model in the run, or ``to`` holds files.
    """
    source = Path(run_dir) / FINAL_DIR / "model"
    card = read_card(source)
    target = Path(to)
    if target.exists() and any(target.iterdir()):
        raise PneumoError(f"{target}: exists and is not empty")
    if has_bytes_signature(card):
        if target.exists():
            target.rmdir()
        shutil.copytree(source, target)
        return target
    # An export from before the serve_bytes signature: written again from model.keras.
    model, card = load_exported(source)
    kept = {k: v for k, v in card.items() if k not in ("card_version", "serving", "files")}
    return export_model(model, target, kept, load_pixel_scope(source, card))


def has_bytes_signature(card: dict[str, Any]) -> bool:
    """Whether an exported model's SavedModel has the ``serve_bytes`` signature."""
    saved = card.get("files", {}).get(SAVED_MODEL_DIR, {})
    return BYTES_SIGNATURE in saved.get("signatures", {})
