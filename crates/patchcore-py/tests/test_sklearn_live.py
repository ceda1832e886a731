"""The metrics against scikit-learn itself, computed live (not stored constants): on the
shared metrics fixture and on random data with ties. scikit-learn is a test dependency
(`.ci/run` installs it in the test venv); without it this module fails to import, loudly."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

import patchcore_rs as pc


def sklearn_f1_max(scores, labels):
    precision, recall, _ = precision_recall_curve(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.max())


def cases():
    rng = np.random.default_rng(11)
    out = []
    for n, rounding in [(40, None), (200, 1), (1000, 2), (7, 0)]:
        labels = rng.random(n) < 0.4
        labels[0], labels[1] = True, False
        scores = rng.standard_normal(n) + 1.2 * labels
        if rounding is not None:
            scores = np.round(scores, rounding)  # ties, which sklearn counts as one step
        out.append((scores.astype(np.float32), labels.astype(np.int64)))
    return out


@pytest.mark.parametrize("scores,labels", cases())
def test_image_metrics_equal_sklearn_on_random_scores_with_ties(scores, labels):
    m = pc.metrics.image_metrics(scores, labels)
    s64 = scores.astype(np.float64)
    assert abs(m.auroc - roc_auc_score(labels, s64)) <= 1e-9
    assert abs(m.aupr - average_precision_score(labels, s64)) <= 1e-9
    assert abs(m.f1_max - sklearn_f1_max(labels=labels, scores=s64)) <= 1e-9
    # The threshold achieves the F1 it reports (scores >= threshold are anomalous).
    pred = scores >= m.f1_threshold
    tp = float((pred & (labels == 1)).sum())
    f1 = 2 * tp / (pred.sum() + labels.sum())
    assert abs(f1 - m.f1_max) <= 1e-9


def test_image_metrics_equal_sklearn_on_the_fixture(metrics):
    s, labels = metrics["image.scores"], metrics["image.labels"]
    m = pc.metrics.image_metrics(s, labels)
    s64 = s.astype(np.float64)
    assert abs(m.auroc - roc_auc_score(labels, s64)) <= 1e-9
    assert abs(m.aupr - average_precision_score(labels, s64)) <= 1e-9
    assert abs(m.f1_max - sklearn_f1_max(s64, labels)) <= 1e-9


def test_pixel_metrics_equal_sklearn_on_the_fixture(metrics):
    maps, masks = metrics["pixel.maps"], metrics["pixel.masks"]
    m = pc.metrics.pixel_metrics(maps, masks)
    flat, truth = maps.reshape(-1).astype(np.float64), (masks.reshape(-1) > 0)
    assert abs(m.auroc - roc_auc_score(truth, flat)) <= 1e-9
    assert abs(m.aupr - average_precision_score(truth, flat)) <= 1e-9
    assert abs(m.f1_max - sklearn_f1_max(flat, truth)) <= 1e-9
