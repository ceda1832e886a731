from . import metrics as metrics
from ._native import (
    ExactIndex as ExactIndex,
    PatchCore as PatchCore,
    PatchcoreError as PatchcoreError,
    anomaly_map as anomaly_map,
    anomaly_scores as anomaly_scores,
    evaluate as evaluate,
    greedy_coreset as greedy_coreset,
    load_image as load_image,
    random_sample as random_sample,
)
