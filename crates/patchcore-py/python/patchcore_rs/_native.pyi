"""Type stubs of the native module (see the package docstring)."""

import os
from typing import Any, Literal, Optional, Union, overload

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
PathLike = Union[str, "os.PathLike[str]"]
Image = Union[PathLike, npt.NDArray[np.uint8]]

class PatchcoreError(ValueError):
    """An error from patchcore-rs; the message is the library's."""

def greedy_coreset(
    features: F32,
    ratio: Optional[float] = None,
    count: Optional[int] = None,
    projection: Literal["gaussian", "sparse", "none"] = "gaussian",
    projection_dim: int = 128,
    seed: int = 0,
    algorithm: Literal["pruned", "plain", "partitioned", "approximate"] = "pruned",
    start: Optional[int] = None,
) -> I64:
    """Greedy k-center coreset of the rows of ``features`` ``[n, d]``: row indices in
    selection order. Exactly one of ``ratio`` (in (0, 1]) and ``count`` (>= 1).
    ``projection_dim = 0`` takes the Johnson-Lindenstrauss width at eps 0.9. ``start`` fixes
    the first row (default: drawn from ``seed``); ``pruned`` and ``plain`` select the same
    rows, ``partitioned`` runs exact greedy in blocks of nearby rows, about 512 picks each (not
    the exact selection; for millions of rows), ``approximate`` is patchcore-inspection's variant with 10 random starts."""

def random_sample(
    features: F32, ratio: Optional[float] = None, count: Optional[int] = None, seed: int = 0
) -> I64:
    """A seeded uniform subset of the rows of ``features`` (indices)."""

class ExactIndex:
    """Exact k-NN over a float32 bank ``[rows, dim]`` (blocked GEMM)."""

    def __init__(self, bank: F32) -> None: ...
    def search(self, queries: F32, k: int = 1) -> tuple[F32, I64]:
        """``(distances, indices)``, both ``[queries, k]``; Euclidean, ascending."""
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...

@overload
def anomaly_scores(
    patch_features: F32,
    bank: Union[F32, ExactIndex],
    k: int = 9,
    return_patch_scores: Literal[False] = False,
) -> F32: ...
@overload
def anomaly_scores(
    patch_features: F32,
    bank: Union[F32, ExactIndex],
    k: int = 9,
    return_patch_scores: Literal[True] = ...,
) -> tuple[F32, F32]: ...
def anomaly_map(
    patch_scores: F32,
    height: int,
    width: int,
    sigma: float = 4.0,
    upsample: Literal["bilinear", "nearest"] = "bilinear",
) -> F32:
    """Patch-score grids ``[h, w]`` or ``[n, h, w]`` resized and smoothed."""

def auroc(scores: F32, labels: npt.NDArray[Any]) -> float: ...
def image_metrics(scores: F32, labels: npt.NDArray[Any]) -> tuple[float, float, float, float]: ...
def pixel_metrics(
    maps: F32, masks: npt.NDArray[Any], fpr_limit: float = 0.3
) -> tuple[float, float, float, float, float, int]: ...

class PatchCore:
    """An assembled PatchCore model."""

    @staticmethod
    def from_config(config: Union[PathLike, dict[str, Any]]) -> "PatchCore":
        """From a TOML file path, TOML text, or a dict of the config keys."""
    @staticmethod
    def load(path: PathLike) -> "PatchCore": ...
    def fit(self, images: list[Image]) -> dict[str, Any]:
        """Fits the memory bank on defect-free images (paths or ``[h, w, 3]`` uint8)."""
    def predict(self, image: Image) -> tuple[float, F32]:
        """``(score, anomaly_map)``; the map is ``[crop, crop]``."""
    def predict_batch(self, images: list[Image]) -> tuple[F32, F32]: ...
    def save(self, path: PathLike) -> None: ...
    def verdict(self, score: float) -> Optional[bool]: ...
    @property
    def threshold(self) -> Optional[float]: ...
    @property
    def memory_bank(self) -> Optional[F32]: ...
    @property
    def config(self) -> dict[str, Any]: ...

def load_image(path: PathLike) -> npt.NDArray[np.uint8]:
    """Decodes an image file to ``[h, w, 3]`` uint8 RGB, as the model reads it."""

def evaluate(
    config: Union[PathLike, dict[str, Any]],
    data_root: PathLike,
    category: Optional[str] = None,
    output: Optional[PathLike] = None,
) -> dict[str, Any]:
    """Fits and evaluates on MVTec AD categories; report.json as a dict."""
