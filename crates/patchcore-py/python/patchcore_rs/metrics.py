"""Anomaly-detection metrics with sklearn's and anomalib's definitions (exact, ties as one
threshold step)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _native


class ImageMetrics(NamedTuple):
    auroc: float
    aupr: float
    f1_max: float
    f1_threshold: float


class PixelMetrics(NamedTuple):
    auroc: float
    aupr: float
    f1_max: float
    f1_threshold: float
    aupro: float
    regions: int


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, as ``sklearn.metrics.roc_auc_score``."""
    return _native.auroc(scores, labels)


def image_metrics(scores: np.ndarray, labels: np.ndarray) -> ImageMetrics:
    """AUROC, AUPR (``average_precision_score``), F1-max and the threshold achieving it."""
    return ImageMetrics(*_native.image_metrics(scores, labels))


def aupr(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision, as ``sklearn.metrics.average_precision_score``."""
    return image_metrics(scores, labels).aupr


def f1_max(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The largest F1 over all thresholds and the threshold (scores >= it are anomalous)."""
    m = image_metrics(scores, labels)
    return m.f1_max, m.f1_threshold


def pixel_metrics(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> PixelMetrics:
    """Pixel AUROC, AUPR, F1-max and AUPRO (8-connected regions, up to ``fpr_limit``) of
    float32 maps ``[n, h, w]`` against masks ``[n, h, w]`` (uint8 or bool)."""
    return PixelMetrics(*_native.pixel_metrics(maps, masks, fpr_limit))


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """The per-region overlap curve's area up to ``fpr_limit``, normalised to [0, 1]
    (MVTec's and anomalib's AUPRO)."""
    return pixel_metrics(maps, masks, fpr_limit).aupro
