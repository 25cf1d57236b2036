"""Scope from the pixels: is this image like the training images at all?

The DICOM tags (:mod:`results.serving.scope`) say nothing about a JPEG, and a photograph, a
CT slice, an inverted radiograph or a blank frame would still get a confident probability.
:class:`PixelScope` is an out-of-distribution check for every format, fitted by ``final``
on the training split and stored in the export (``pixel_scope.npz``):

- each image, as the model sees it, becomes a 32x32 grey thumbnail (box-filtered),
  standardized on its own (its mean and contrast removed: structure is what is compared);
- a probabilistic PCA of the training thumbnails (scikit-learn's :class:`~sklearn.
  decomposition.PCA`, 32 components) gives a Gaussian model of them; an image's score is its
  squared Mahalanobis distance under that model (inside the components' span, each
  direction by its variance; outside it, by the residual noise variance): the same ranking
  as ``-PCA.score_samples``, kept as four arrays rather than a pickled estimator;
- the threshold is the validation scores' ``1 - false_alarm`` quantile, so that a stated
  share (1% by default) of in-scope images is flagged;
- a frame whose thumbnail has less contrast (standard deviation) than half the least
  contrasted training image is flagged as blank, whatever its score.

An image above the threshold is out of scope (``predict`` says why; ``predict --strict``
gives it no probability). The report measures the false-alarm rate on the test split (and
the site) and the detection rate on out-of-scope images (:mod:`results.final.scope_check`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

__all__ = ["PIXEL_SCOPE_FILE", "PixelScope", "fit_pixel_scope", "thumbnails"]

#: The detector's file in an exported model folder.
PIXEL_SCOPE_FILE = "pixel_scope.npz"
#: Side of the grey thumbnails the detector sees.
THUMBNAIL = 32


def thumbnails(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` uint8 images -> ``(N, 32 * 32)`` grey thumbnails in ``[0, 1]``.

    Channels are averaged (the training images are grey or grey repeated), then Pillow's
    box filter resizes each image: the same thumbnail whatever the model's resolution.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    grey = images.astype(np.float32).mean(axis=-1)
    out = np.empty((len(grey), THUMBNAIL * THUMBNAIL), np.float32)
    for i, image in enumerate(grey):
        small = Image.fromarray(image, mode="F").resize((THUMBNAIL, THUMBNAIL), Image.BOX)
        out[i] = np.asarray(small, np.float32).ravel() / 255.0
    return out


def _standardized(thumbs: np.ndarray) -> np.ndarray:
    """Each thumbnail minus its mean, over its standard deviation (plus 0.02): structure,
    not brightness or contrast, is compared; an inverted radiograph becomes the negative
    of a radiograph."""
    centred = thumbs - thumbs.mean(axis=1, keepdims=True)
    return centred / (thumbs.std(axis=1, keepdims=True) + 0.02)


@dataclasses.dataclass(frozen=True)
class PixelScope:
    """A fitted pixel-space out-of-distribution check.

    Attributes:
        mean: The training thumbnails' mean, ``(1024,)``.
        components: The principal directions, ``(k, 1024)``, orthonormal rows.
        variances: Their variances, ``(k,)``.
        noise_variance: The variance of the residual outside the components' span.
        threshold: Scores above it are out of scope.
        false_alarm: The share of validation images above the threshold it was set for.
        min_contrast: Thumbnails with a lower standard deviation are blank frames.
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    noise_variance: float
    threshold: float
    false_alarm: float
    min_contrast: float

    def scores(self, images: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances of uint8 images under the PPCA model."""
        return self._distances(_standardized(thumbnails(images)))

    def _distances(self, standardized: np.ndarray) -> np.ndarray:
        centred = standardized - self.mean
        projected = centred @ self.components.T
        residual = np.sum(centred**2, axis=1) - np.sum(projected**2, axis=1)
        inside = np.sum(projected**2 / self.variances, axis=1)
        return inside + np.maximum(residual, 0.0) / self.noise_variance

    def out_of_scope(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, flags)``: flagged where the score is above the threshold or the
        frame is blank (a blank frame's score is ``inf``)."""
        thumbs = thumbnails(images)
        scores = self._distances(_standardized(thumbs))
        scores = np.where(thumbs.std(axis=1) < self.min_contrast, np.inf, scores)
        return scores, scores > self.threshold

    def reason(self, score: float) -> str:
        """The CSV's ``scope_reason`` for a flagged image (its score from
        :meth:`out_of_scope`)."""
        if not np.isfinite(score):
            return "a blank or near-uniform frame"
        return (
            f"pixels unlike the training images (score {score:.0f} > {self.threshold:.0f}, "
            f"a threshold {self.false_alarm:.0%} of validation images exceed)"
        )

    def save(self, folder: str | Path) -> Path:
        """Writes ``pixel_scope.npz`` into ``folder``."""
        path = Path(folder) / PIXEL_SCOPE_FILE
        np.savez(
            path,
            mean=self.mean,
            components=self.components,
            variances=self.variances,
            noise_variance=np.float64(self.noise_variance),
            threshold=np.float64(self.threshold),
            false_alarm=np.float64(self.false_alarm),
            min_contrast=np.float64(self.min_contrast),
        )
        return path

    @classmethod
    def load(cls, folder: str | Path) -> PixelScope | None:
        """The detector of an exported model folder, or None (exported before it existed)."""
        path = Path(folder) / PIXEL_SCOPE_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as saved:
            return cls(
                mean=saved["mean"],
                components=saved["components"],
                variances=saved["variances"],
                noise_variance=float(saved["noise_variance"]),
                threshold=float(saved["threshold"]),
                false_alarm=float(saved["false_alarm"]),
                min_contrast=float(saved["min_contrast"]),
            )


def fit_pixel_scope(
    train_images: np.ndarray,
    val_images: np.ndarray,
    *,
    false_alarm: float = 0.01,
    components: int = 32,
    seed: int = 0,
) -> PixelScope:
    """Fits the PPCA on the training images; thresholds on validation.

    Args:
        train_images: ``(N, H, W, C)`` uint8 training images.
        val_images: Validation images (in scope by definition): the threshold is their
            scores' ``1 - false_alarm`` quantile.
        false_alarm: Share of in-scope images the threshold flags.
        components: Principal components kept (fewer when there are fewer images).
        seed: Seed of the randomized SVD.
    """
    from sklearn.decomposition import PCA

    thumbs = thumbnails(train_images)
    train = _standardized(thumbs)
    k = max(1, min(components, len(train) - 1, train.shape[1] - 1))
    pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(train)
    fitted = PixelScope(
        mean=pca.mean_.astype(np.float32),
        components=pca.components_.astype(np.float32),
        variances=np.maximum(pca.explained_variance_, 1e-12).astype(np.float32),
        noise_variance=float(max(pca.noise_variance_, 1e-12)),
        threshold=np.inf,
        false_alarm=false_alarm,
        min_contrast=float(thumbs.std(axis=1).min()) / 2.0,
    )
    threshold = float(np.quantile(fitted.scores(val_images), 1.0 - false_alarm))
    return dataclasses.replace(fitted, threshold=threshold)
