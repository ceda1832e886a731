"""PatchCore (Roth et al., CVPR 2022) from patchcore-rs, compiled from Rust.

Components, numpy in and out (float32 arrays, C- or Fortran-ordered; the GIL is released
while they work):

* :func:`greedy_coreset`, :func:`random_sample`: memory-bank subsampling (row indices);
* :class:`ExactIndex`: exact k-nearest-neighbour search over a bank;
* :func:`anomaly_scores`: image scores by the paper's eq. 7; :func:`anomaly_map`: upsampled,
  Gaussian-smoothed maps;
* :mod:`patchcore_rs.metrics`: AUROC, AUPR, F1-max, AUPRO (sklearn / anomalib definitions).

The model: :class:`PatchCore` (``from_config``, ``fit``, ``predict``, ``save``, ``load``) and
:func:`evaluate` (the MVTec AD protocol; returns report.json as a dict).

Errors raise :class:`PatchcoreError` (a ``ValueError``) with the library's message, or
``OSError`` for files, ``TypeError`` for arrays of the wrong dtype.
"""

from . import metrics
from ._native import (
    ExactIndex,
    PatchCore,
    PatchcoreError,
    anomaly_map,
    anomaly_scores,
    greedy_coreset,
    load_image,
    random_sample,
)

try:
    from ._native import evaluate
except ImportError:  # a model-only wheel, built without the `evaluate` feature

    def evaluate(*args, **kwargs):
        """Not in this build: rebuild the wheel with the cargo feature ``evaluate``."""
        raise ImportError(
            "patchcore_rs.evaluate is not in this build: the wheel was built without the "
            "cargo feature `evaluate` (maturin build -F evaluate)"
        )

__all__ = [
    "ExactIndex",
    "PatchCore",
    "PatchcoreError",
    "anomaly_map",
    "anomaly_scores",
    "evaluate",
    "greedy_coreset",
    "load_image",
    "metrics",
    "random_sample",
]
