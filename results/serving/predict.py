"""``pneumo-search predict`` and ``explain``: an exported model applied to image files.

Images go through exactly the training preprocessing (the same Pillow decoding, color mode,
aspect handling and size as the decoded-image cache, recorded in the model card). A file
that cannot be decoded gets an error row; the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.data.decode import BadImageError, decode_image
from pneumo_core.data.dicom import DICOM_FIELDS
from pneumo_errors import PneumoError
from results.board.leaderboard import csv_text, write_csv_atomic
from results.serving.export import load_exported, load_pixel_scope
from results.serving.pixel_scope import PixelScope
from results.serving.scope import ScopeRules, ScopeVerdict, check_scope

#: The CSV's scope columns (every row, when the export has a pixel scope detector or any
#: input is a DICOM file).
SCOPE_FIELDS = ("in_scope", "scope_reason")

__all__ = ["collect_files", "explain_image", "predict_files", "predictions_csv", "walk_inputs"]


def collect_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Every non-hidden file of the given files and folders (folders walked, sorted).

    A path that does not exist is kept, so it gets its own error row.

    Raises:
        PneumoError: No file at all was found.
    """
    return walk_inputs(inputs)[0]


def walk_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], int]:
    """:func:`collect_files`'s files, and how many hidden files and folders inside the given
    folders were skipped (a hidden file named on its own is kept)."""
    files: list[Path] = []
    hidden = 0
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for folder, dirs, names in os.walk(path):
                hidden += sum(d.startswith(".") for d in dirs)
                hidden += sum(n.startswith(".") for n in names)
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
        else:
            files.append(path)
    if not files:
        raise PneumoError(f"no files in {', '.join(str(i) for i in inputs)}")
    return files, hidden


def _decode(path: Path, card: dict[str, Any]) -> np.ndarray:
    return _decode_with_info(path, card)[0]


def _decode_with_info(path: Path, card: dict[str, Any]):
    spec = card["input"]
    if not path.exists():
        raise BadImageError("no such file")
    if not path.is_file():
        raise BadImageError("not a file")
    return decode_image(path, spec["size"], spec["color_mode"], spec["aspect"])


def predict_files(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    *,
    batch_size: int = 32,
    strict: bool = False,
    rules: ScopeRules | None = None,
) -> list[dict[str, Any]]:
    """Probabilities and labels for image files (JPEG, PNG, DICOM...) with an exported model.

    Args:
        model_dir: Folder written by ``pneumo-search final`` (``final/model``) or ``export``.
        inputs: Image files and folders.
        batch_size: Images per forward pass.
        strict: Give no probability for a file its DICOM tags put out of scope (its row's
            ``status`` is ``out_of_scope``).
        rules: The scope rules (default :class:`ScopeRules`).

    Returns:
        One row per file: ``path``, ``status`` (``ok``, ``error`` or ``out_of_scope``),
        ``error``, ``prob_<class>`` per class, ``label`` and ``threshold``; when any input
        is a DICOM file, also :data:`pneumo_core.data.dicom.DICOM_FIELDS`, ``in_scope`` and
        ``scope_reason`` (empty for the other files). No identifying DICOM field is ever
        read out.
    """
    model, card = load_exported(model_dir)
    detector = load_pixel_scope(model_dir, card)
    from pneumo_core.data.pipeline import predict_batches

    classes = list(card["class_names"])
    threshold = float(card["threshold"]["value"])
    files = collect_files(inputs)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        probs = predict_batches(model, np.stack([p for _, p in pending]), batch_size)
        for (row_index, _), prob in zip(pending, probs):
            rows[row_index].update(_probability_columns(classes, prob, threshold))
        pending.clear()

    for path in files:
        row: dict[str, Any] = {"path": str(path), "status": "ok", "error": ""}
        rows.append(row)
        pixels = _checked_pixels(path, card, row, strict, rules, detector)
        if pixels is not None:
            pending.append((len(rows) - 1, pixels))
        if len(pending) >= batch_size:
            flush()
    flush()
    dicom = any("modality" in row for row in rows)
    scoped = detector is not None or any("in_scope" in row for row in rows)
    for row in rows:
        for name in classes:
            row.setdefault(f"prob_{name}", "")
        row.setdefault("label", "")
        row["threshold"] = threshold
        for name in (*(DICOM_FIELDS if dicom else ()), *(SCOPE_FIELDS if scoped else ())):
            row.setdefault(name, "")
    return rows


def _checked_pixels(
    path: Path,
    card: dict[str, Any],
    row: dict[str, Any],
    strict: bool,
    rules,
    detector: PixelScope | None = None,
) -> np.ndarray | None:
    """The file's pixels, or None when it gives no probability (unreadable, or out of
    scope with ``strict``); ``row`` gets the error, the DICOM fields and the verdict of
    the tags and of the pixels (every reason, ``; ``-joined)."""
    try:
        pixels, info = _decode_with_info(path, card)
    except BadImageError as exc:
        row.update({"status": "error", "error": exc.reason})
        return None
    verdicts = []
    if info.dicom is not None:
        verdicts.append(check_scope(info.dicom, rules))
        row.update(info.dicom.as_row())
    if detector is not None:
        verdicts.append(pixel_verdict(detector, pixels))
    if verdicts:
        row["in_scope"] = all(v.in_scope for v in verdicts)
        row["scope_reason"] = "; ".join(v.reason for v in verdicts if v.reason)
    if strict and row.get("in_scope") is False:
        row.update({"status": "out_of_scope", "error": row["scope_reason"]})
        return None
    return pixels


def pixel_verdict(detector: PixelScope, pixels: np.ndarray) -> ScopeVerdict:
    """The pixel scope detector's verdict on one decoded image."""
    (score,), (flagged,) = detector.out_of_scope(pixels[None])
    return ScopeVerdict(not flagged, detector.reason(score) if flagged else "")


def _probability_columns(classes: list[str], prob: Any, threshold: float) -> dict[str, Any]:
    if np.ndim(prob) == 0:  # sigmoid: probability of classes[1]
        p = float(prob)
        return {
            f"prob_{classes[0]}": 1.0 - p,
            f"prob_{classes[1]}": p,
            "label": classes[1] if p >= threshold else classes[0],
        }
    values = np.asarray(prob, dtype=float)
    columns = {f"prob_{name}": float(v) for name, v in zip(classes, values)}
    columns["label"] = classes[int(values.argmax())]
    return columns


def predictions_csv(rows: Iterable[dict[str, Any]], out: str | Path | None = None) -> str:
    """Prediction rows as CSV text, also written to ``out`` (atomically) when given."""
    rows = list(rows)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_csv_atomic(out, rows)
    return csv_text(rows)


#: A Grad-CAM map whose weights span less than this is reported as flat.
FLAT_MAP_SPAN = 1e-3


def explain_image(
    model_dir: str | Path, image: str | Path, out: str | Path, *, explain_class: str | None = None
) -> dict[str, Any]:
    """Writes a Grad-CAM figure of one image and returns its prediction and explanation.

    The map explains the predicted class by default (what made the model call the image
    normal, or pneumonia), with the same Grad-CAM code as the report's gallery. The figure
    shows the image as the model sees it beside the map, with a colour bar.

    Args:
        model_dir: An exported model's folder.
        image: The image file.
        out: The PNG figure to write.
        explain_class: A class name to explain instead of the predicted one.

    Returns:
        The prediction row (``prob_<class>``, ``label``; ``in_scope`` and
        ``scope_reason`` when the export has a pixel scope detector) with ``threshold``,
        ``explained`` (the class mapped), ``flat`` (whether the map is flat: it then says
        nothing about where the model looked) and ``overlay`` (the figure's path).

    Raises:
        PneumoError: The image cannot be decoded, or ``explain_class`` is not a class.
    """
    model, card = load_exported(model_dir)
    detector = load_pixel_scope(model_dir, card)
    from pneumo_core.data.pipeline import predict_batches
    from pneumo_core.explain import grad_cam
    from results.report.plots import gradcam_figure

    classes = list(card["class_names"])
    if explain_class is not None and explain_class not in classes:
        raise PneumoError(
            f"--class {explain_class!r}: not a class of this model ({', '.join(classes)})"
        )
    try:
        pixels = _decode(Path(image), card)
    except BadImageError as exc:
        raise PneumoError(f"{image}: {exc.reason}") from None
    batch = pixels[None]
    threshold = float(card["threshold"]["value"])
    prob = predict_batches(model, batch)[0]
    row = {"path": str(image), **_probability_columns(classes, prob, threshold)}
    if detector is not None:
        verdict = pixel_verdict(detector, pixels)
        row.update({"in_scope": verdict.in_scope, "scope_reason": verdict.reason})
    explained = explain_class or row["label"]
    try:
        heat = grad_cam(model, batch, class_index=classes.index(explained))[0]
    except ValueError as exc:  # no convolutional feature map to explain
        raise PneumoError(f"{model_dir}: cannot explain this model: {exc}") from None
    flat = bool(float(heat.max()) - float(heat.min()) < FLAT_MAP_SPAN)
    probability = row[f"prob_{classes[-1]}"]
    title = (
        f"predicted {row['label']}: P({classes[-1]}) = {probability:.3f}, threshold {threshold:.3f}"
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(gradcam_figure(pixels, heat, title, explained))
    row.update({"threshold": threshold, "explained": explained, "flat": flat, "overlay": str(out)})
    return row
