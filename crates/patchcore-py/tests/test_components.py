"""The components through Python: equal to the Rust results on the shared fixtures (coreset
indices exact, metrics to 1e-6), to numpy references, and strict about bad input."""

import numpy as np
import pytest
from safetensors.numpy import load_file

import patchcore_rs as pc

# sklearn.metrics.average_precision_score (scikit-learn 1.9.1) on the metrics fixture, the
# same constants the Rust test compares with (crates/patchcore-metrics/tests).
IMAGE_AP_SKLEARN = 0.7229950205071515
PIXEL_AP_SKLEARN = 0.1403648981006569


@pytest.fixture(scope="module")
def coreset(shared):
    return load_file(str(shared / "fixtures" / "coreset.safetensors"))


@pytest.mark.parametrize("prefix,points", [("proj", "XP"), ("noproj", "X")])
@pytest.mark.parametrize("algorithm", ["plain", "pruned"])
def test_greedy_coreset_matches_the_reference_selection(coreset, prefix, points, algorithm):
    expect = coreset[f"{prefix}.indices"]
    got = pc.greedy_coreset(
        coreset[points], count=len(expect), projection="none", start=0, algorithm=algorithm
    )
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expect)


def test_fortran_order_and_strided_views_select_the_same_rows(coreset):
    x = coreset["X"]
    c = pc.greedy_coreset(x, ratio=0.05, seed=3)
    np.testing.assert_array_equal(pc.greedy_coreset(np.asfortranarray(x), ratio=0.05, seed=3), c)
    strided = np.ascontiguousarray(np.repeat(x, 2, axis=1))[:, ::2]
    assert not strided.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(pc.greedy_coreset(strided, ratio=0.05, seed=3), c)


def test_coreset_sizes_seeds_and_covering(coreset):
    x = coreset["X"]
    sel = pc.greedy_coreset(x, count=50, seed=1)
    assert len(set(sel.tolist())) == 50 and sel.min() >= 0 and sel.max() < len(x)
    np.testing.assert_array_equal(sel, pc.greedy_coreset(x, count=50, seed=1))
    assert len(pc.greedy_coreset(x, ratio=0.1)) == int(np.ceil(0.1 * len(x)))
    rand = pc.random_sample(x, count=30, seed=0)
    assert len(set(rand.tolist())) == 30


def test_greedy_covers_clustered_rows_better_than_random():
    # Eight tight clusters of unequal size: greedy k-center with k = 8 keeps one row of each,
    # a random subset of 8 rows misses some (the invariant the Rust proptest checks too).
    rng = np.random.default_rng(4)
    centres = rng.uniform(-100, 100, (8, 3))
    sizes = [200, 100, 50, 20, 10, 5, 3, 2]
    x = np.concatenate(
        [c + rng.uniform(-1, 1, (n, 3)) for c, n in zip(centres, sizes)]
    ).astype(np.float32)

    def radius(idx):
        d = ((x[:, None, :] - x[idx][None, :, :]) ** 2).sum(-1)
        return float(np.sqrt(d.min(1).max()))

    greedy = radius(pc.greedy_coreset(x, count=8, projection="none", seed=0))
    assert greedy < 4.0
    random = [radius(pc.random_sample(x, count=8, seed=s)) for s in range(10)]
    assert greedy < min(random)


def test_exact_index_matches_numpy():
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((3000, 40)).astype(np.float32)
    q = rng.standard_normal((300, 40)).astype(np.float32)
    index = pc.ExactIndex(bank)
    assert len(index) == 3000 and index.dim == 40
    d, i = index.search(q, k=5)
    ref = np.sqrt(((q[:, None, :].astype(np.float64) - bank[None]) ** 2).sum(-1))
    order = np.argsort(ref, axis=1)[:, :5]
    np.testing.assert_allclose(d, np.take_along_axis(ref, order, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(ref, i, 1), d, rtol=1e-4, atol=1e-4)


def eq7_numpy(feats, bank, k):
    """The paper's eq. 7 as anomalib computes it, in float64."""
    out = []
    for img in feats.reshape(feats.shape[0], -1, feats.shape[-1]).astype(np.float64):
        dist = np.sqrt(((img[:, None, :] - bank[None]) ** 2).sum(-1))
        nn = dist.min(1)
        worst = int(nn.argmax())
        s_star = nn[worst]
        m_star = int(dist[worst].argmin())
        if k == 1:
            out.append(s_star)
            continue
        support = np.argsort(np.sqrt(((bank - bank[m_star]) ** 2).sum(-1)))[:k]
        dists = np.sqrt(((bank[support] - img[worst]) ** 2).sum(-1))
        w = 1.0 - np.exp(dists[0] - dists.max()) / np.exp(dists - dists.max()).sum()
        out.append(w * s_star)
    return np.array(out)


@pytest.mark.parametrize("k", [1, 9])
def test_anomaly_scores_follow_eq7(k):
    rng = np.random.default_rng(2)
    bank = rng.standard_normal((400, 16)).astype(np.float32)
    feats = rng.standard_normal((3, 6, 6, 16)).astype(np.float32)
    scores, patches = pc.anomaly_scores(feats, bank, k=k, return_patch_scores=True)
    np.testing.assert_allclose(scores, eq7_numpy(feats, bank.astype(np.float64), k), rtol=1e-4)
    assert patches.shape == (3, 6, 6)
    flat = pc.anomaly_scores(feats.reshape(3, 36, 16), pc.ExactIndex(bank), k=k)
    np.testing.assert_array_equal(flat, scores)


def test_anomaly_map_upsamples_and_smooths():
    grid = np.zeros((28, 28), np.float32)
    grid[10:14, 10:14] = 1.0
    m = pc.anomaly_map(grid, 224, 224, sigma=4.0)
    assert m.shape == (224, 224) and m.dtype == np.float32
    assert m.argmax() // 224 in range(80, 112)
    flat = pc.anomaly_map(np.full((28, 28), 3.0, np.float32), 64, 64, sigma=0.0)
    np.testing.assert_allclose(flat, 3.0)
    batch = pc.anomaly_map(np.stack([grid, grid]), 224, 224)
    np.testing.assert_array_equal(batch[1], m)


def test_image_metrics_match_sklearn(metrics):
    s, labels = metrics["image.scores"], metrics["image.labels"]
    m = pc.metrics.image_metrics(s, labels)
    assert abs(m.auroc - metrics["image.auroc_sklearn"][0]) <= 1e-6
    assert abs(m.f1_max - metrics["image.f1max_sklearn"][0]) <= 1e-6
    assert abs(m.aupr - IMAGE_AP_SKLEARN) <= 1e-6
    assert abs(pc.metrics.auroc(s, labels.astype(bool)) - m.auroc) == 0.0
    assert pc.metrics.f1_max(s, labels) == (m.f1_max, m.f1_threshold)


def test_pixel_metrics_match_sklearn_and_anomalib(metrics):
    m = pc.metrics.pixel_metrics(metrics["pixel.maps"], metrics["pixel.masks"])
    assert m.regions == 30
    assert abs(m.auroc - metrics["pixel.auroc_sklearn"][0]) <= 1e-6
    assert abs(m.f1_max - metrics["pixel.f1max_sklearn"][0]) <= 1e-6
    assert abs(m.aupro - metrics["pixel.aupro_anomalib"][0]) <= 1e-6
    assert abs(m.aupr - PIXEL_AP_SKLEARN) <= 1e-6
    assert pc.metrics.aupro(metrics["pixel.maps"], metrics["pixel.masks"].astype(bool)) == m.aupro


GOOD = np.random.default_rng(5).standard_normal((50, 8)).astype(np.float32)


@pytest.mark.parametrize(
    "call,error",
    [
        (lambda: pc.greedy_coreset(GOOD.astype(np.float64), ratio=0.1), TypeError),
        (lambda: pc.greedy_coreset(GOOD[0], ratio=0.1), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD[None], ratio=0.1), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(np.where(GOOD > 2, np.nan, GOOD), ratio=0.1), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(np.where(GOOD > 2, np.inf, GOOD), ratio=0.1), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(np.zeros((0, 8), np.float32), ratio=0.1), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD, ratio=0.1, count=3), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD, ratio=1.5), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD, count=0), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD, count=3, projection="pca"), pc.PatchcoreError),
        (lambda: pc.greedy_coreset(GOOD, count=3, start=50), pc.PatchcoreError),
        (lambda: pc.random_sample(GOOD, count=0), pc.PatchcoreError),
        (lambda: pc.ExactIndex(np.zeros((0, 8), np.float32)), pc.PatchcoreError),
        (lambda: pc.ExactIndex(GOOD).search(GOOD, k=0), pc.PatchcoreError),
        (lambda: pc.ExactIndex(GOOD).search(GOOD[:, :4], k=1), pc.PatchcoreError),
        (lambda: pc.ExactIndex(GOOD).search(GOOD.astype(np.float16), k=1), TypeError),
        (lambda: pc.anomaly_scores(GOOD, GOOD), pc.PatchcoreError),
        (lambda: pc.anomaly_scores(GOOD[None], GOOD, k=0), pc.PatchcoreError),
        (lambda: pc.anomaly_map(GOOD, 0, 10), pc.PatchcoreError),
        (lambda: pc.anomaly_map(GOOD, 10, 10, sigma=-1.0), pc.PatchcoreError),
        (lambda: pc.metrics.auroc(GOOD[:, 0], np.ones(49, np.int64)), pc.PatchcoreError),
        (lambda: pc.metrics.auroc(GOOD[:, 0], np.ones(50, np.int64)), pc.PatchcoreError),
        (lambda: pc.metrics.auroc(GOOD[:, 0], np.ones(50, np.float32)), TypeError),
        (lambda: pc.metrics.pixel_metrics(GOOD[None], np.zeros((1, 50, 7), np.uint8)), pc.PatchcoreError),
    ],
)
def test_bad_input_raises_and_never_crashes(call, error):
    with pytest.raises(error):
        call()


def test_errors_are_value_errors_with_the_rust_message():
    with pytest.raises(ValueError, match="k-NN search with k = 0"):
        pc.ExactIndex(GOOD).search(GOOD, k=0)
    assert issubclass(pc.PatchcoreError, ValueError)
