//! The framework-free components: samplers, the exact k-NN index, eq. 7 scoring, anomaly
//! maps and the metrics.

use ndarray::{Array2, ArrayD, Axis, CowArray, Ix2, IxDyn};
use numpy::{PyArrayDyn, PyReadonlyArrayDyn};
use patchcore_core::{Error, NoProgress, PatchFeatures};
use patchcore_nn::{ExactIndex, NearestNeighborIndex};
use patchcore_sampler::{
    ApproximateGreedyParams, GreedyAlgorithm, GreedyParams, ProjectionKind, RandomSampler,
    SampleSize, Sampler,
};
use patchcore_score::{Scorer, ScorerParams, Upsample};
use pyo3::prelude::*;

use crate::arrays::{check, out, view};
use crate::to_py;

/// A 2-D float32 array (a view when contiguous), refusing other ranks, empty arrays and
/// non-finite values with the argument's name.
fn matrix<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<CowArray<'a, f32, Ix2>> {
    let v = view(a);
    check(&v.view(), what)?;
    let n = v.ndim();
    v.into_dimensionality::<Ix2>().map_err(|_| {
        to_py(Error::Shape(format!(
            "{what} must be a 2-D array [rows, dim], got {n} dimensions"
        )))
    })
}

/// The sample size from `ratio` / `count` (exactly one).
fn size(ratio: Option<f64>, count: Option<usize>) -> PyResult<SampleSize> {
    patchcore_sampler::SizeParams { ratio, count }
        .check()
        .map_err(to_py)
}

fn indices_out(py: Python<'_>, idx: Vec<usize>) -> Bound<'_, PyArrayDyn<i64>> {
    let n = idx.len();
    let v: Vec<i64> = idx.into_iter().map(|i| i as i64).collect();
    out(py, ArrayD::from_shape_vec(IxDyn(&[n]), v).expect("1-D"))
}

/// Greedy k-center coreset (PatchCore §3.2) of the rows of `features`.
#[pyfunction]
#[pyo3(signature = (features, ratio=None, count=None, projection="gaussian", projection_dim=128, seed=0, algorithm="pruned", start=None))]
#[allow(clippy::too_many_arguments)]
fn greedy_coreset<'py>(
    py: Python<'py>,
    features: PyReadonlyArrayDyn<'py, f32>,
    ratio: Option<f64>,
    count: Option<usize>,
    projection: &str,
    projection_dim: usize,
    seed: u64,
    algorithm: &str,
    start: Option<usize>,
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let x = matrix(&features, "features")?;
    if let Some(s) = start
        && s >= x.nrows()
    {
        return Err(to_py(Error::InvalidArgument(format!(
            "start row {s} is out of range for {} rows",
            x.nrows()
        ))));
    }
    let projection = match projection {
        "gaussian" => ProjectionKind::Gaussian,
        "sparse" => ProjectionKind::Sparse,
        "none" => ProjectionKind::None,
        other => {
            return Err(to_py(Error::config(
                "projection",
                format!("unknown projection `{other}`; allowed: gaussian, sparse, none"),
            )));
        }
    };
    // The config's parameter types and defaults (the approximate greedy's starts, the
    // partitioned greedy's block size, the JL eps for projection_dim = 0), checked by them.
    let greedy = |greedy| GreedyParams {
        ratio,
        count,
        greedy,
        projection,
        projection_dim,
        ..GreedyParams::default()
    };
    let sampler = match algorithm {
        "pruned" => greedy(GreedyAlgorithm::Pruned).check(),
        "plain" => greedy(GreedyAlgorithm::Plain).check(),
        "partitioned" => greedy(GreedyAlgorithm::Partitioned).check(),
        "approximate" => ApproximateGreedyParams {
            ratio,
            count,
            projection,
            projection_dim,
            ..ApproximateGreedyParams::default()
        }
        .check(),
        other => {
            return Err(to_py(Error::config(
                "algorithm",
                format!(
                    "unknown algorithm `{other}`; allowed: pruned, plain, partitioned, approximate"
                ),
            )));
        }
    }
    .map_err(to_py)?
    .with_seed(seed)
    .with_start(start);
    let idx = py
        .detach(|| sampler.select(x.view(), &NoProgress))
        .map_err(to_py)?;
    Ok(indices_out(py, idx))
}

/// A seeded uniform subset of the rows of `features`, without replacement.
#[pyfunction]
#[pyo3(signature = (features, ratio=None, count=None, seed=0))]
fn random_sample<'py>(
    py: Python<'py>,
    features: PyReadonlyArrayDyn<'py, f32>,
    ratio: Option<f64>,
    count: Option<usize>,
    seed: u64,
) -> PyResult<Bound<'py, PyArrayDyn<i64>>> {
    let x = matrix(&features, "features")?;
    let sampler = RandomSampler::new(size(ratio, count)?, seed);
    let idx = py
        .detach(|| sampler.select(x.view(), &NoProgress))
        .map_err(to_py)?;
    Ok(indices_out(py, idx))
}

/// `(distances, indices)` of a search.
type Neighbours<'py> = (Bound<'py, PyArrayDyn<f32>>, Bound<'py, PyArrayDyn<i64>>);

/// Exact k-nearest-neighbour index over a memory bank (blocked GEMM, float32).
#[pyclass(name = "ExactIndex", module = "patchcore_rs", frozen)]
pub(crate) struct PyExactIndex {
    pub(crate) inner: ExactIndex,
}

#[pymethods]
impl PyExactIndex {
    #[new]
    fn new(py: Python<'_>, bank: PyReadonlyArrayDyn<'_, f32>) -> PyResult<Self> {
        let b = matrix(&bank, "bank")?;
        let inner = py
            .detach(|| ExactIndex::new(b.into_owned()))
            .map_err(to_py)?;
        Ok(Self { inner })
    }

    /// The `k` nearest bank rows of every query row: `(distances, indices)`, both
    /// `[queries, k]`, distances Euclidean and ascending.
    #[pyo3(signature = (queries, k=1))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArrayDyn<'py, f32>,
        k: usize,
    ) -> PyResult<Neighbours<'py>> {
        let q = matrix(&queries, "queries")?;
        let nn = py
            .detach(|| self.inner.search(q.view(), k))
            .map_err(to_py)?;
        let idx = nn.indices.mapv(|i| i as i64);
        Ok((out(py, nn.distances.into_dyn()), out(py, idx.into_dyn())))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Feature width.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn __repr__(&self) -> String {
        format!(
            "ExactIndex(rows={}, dim={})",
            self.inner.len(),
            self.inner.dim()
        )
    }
}

/// Patch features `[images, patches, dim]` or `[images, h, w, dim]` as [`PatchFeatures`].
fn features_of(a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<PatchFeatures> {
    let v = view(a);
    check(&v.view(), "patch_features")?;
    let (b, h, w, d) = match *v.shape() {
        [b, p, d] => (b, p, 1, d),
        [b, h, w, d] => (b, h, w, d),
        _ => {
            return Err(to_py(Error::Shape(format!(
                "patch_features must be [images, patches, dim] or [images, h, w, dim], got \
                 shape {:?}",
                v.shape()
            ))));
        }
    };
    let rows = v
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((b * h * w, d))
        .map_err(|e| to_py(Error::Shape(e.to_string())))?;
    PatchFeatures::new(rows, b, h, w).map_err(to_py)
}

/// The index to score against: an `ExactIndex`, or a bank array to build one from.
fn index_of(py: Python<'_>, bank: &Bound<'_, PyAny>) -> PyResult<Py<PyExactIndex>> {
    if let Ok(index) = bank.cast::<PyExactIndex>() {
        return Ok(index.clone().unbind());
    }
    let array: PyReadonlyArrayDyn<'_, f32> = bank.extract()?;
    Py::new(py, PyExactIndex::new(py, array)?)
}

/// Image scores by the paper's eq. 7: the largest patch distance to the bank, re-weighted over
/// the `k` bank neighbours of its nearest bank row (`k = 1`: the plain maximum). With
/// `return_patch_scores`, also the patch scores `[images, patches]` or `[images, h, w]`.
#[pyfunction]
#[pyo3(signature = (patch_features, bank, k=9, return_patch_scores=false))]
fn anomaly_scores<'py>(
    py: Python<'py>,
    patch_features: PyReadonlyArrayDyn<'py, f32>,
    bank: &Bound<'py, PyAny>,
    k: usize,
    return_patch_scores: bool,
) -> PyResult<Py<PyAny>> {
    let feats = features_of(&patch_features)?;
    let index = index_of(py, bank)?;
    let index = index.get();
    let scorer = ScorerParams {
        num_neighbors: k,
        ..ScorerParams::default()
    }
    .check()
    .map_err(to_py)?;
    let scores = py
        .detach(|| scorer.score(&feats, &index.inner))
        .map_err(to_py)?;
    let image: Vec<f32> = scores.iter().map(|s| s.score).collect();
    let image = out(
        py,
        ArrayD::from_shape_vec(IxDyn(&[image.len()]), image).expect("1-D"),
    )
    .into_any()
    .unbind();
    if !return_patch_scores {
        return Ok(image);
    }
    let views: Vec<_> = scores.iter().map(|s| s.patch_scores.view()).collect();
    let stacked =
        ndarray::stack(Axis(0), &views).map_err(|e| to_py(Error::Shape(e.to_string())))?;
    let patches = if feats.grid_w == 1 && patch_features.as_array().ndim() == 3 {
        let (b, p) = (stacked.shape()[0], stacked.shape()[1]);
        stacked
            .into_shape_with_order(vec![b, p])
            .map_err(|e| to_py(Error::Shape(e.to_string())))?
    } else {
        stacked.into_dyn()
    };
    Ok((image, out(py, patches))
        .into_pyobject(py)?
        .into_any()
        .unbind())
}

/// Anomaly maps from patch-score grids `[h, w]` or `[images, h, w]`: resized to
/// `height x width` (bilinear, `align_corners = false`, or nearest) and smoothed by a Gaussian
/// of `sigma` pixels (0 = none).
#[pyfunction]
#[pyo3(signature = (patch_scores, height, width, sigma=4.0, upsample="bilinear"))]
fn anomaly_map<'py>(
    py: Python<'py>,
    patch_scores: PyReadonlyArrayDyn<'py, f32>,
    height: usize,
    width: usize,
    sigma: f32,
    upsample: &str,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let upsample = match upsample {
        "bilinear" => Upsample::Bilinear,
        "nearest" => Upsample::Nearest,
        other => {
            return Err(to_py(Error::config(
                "upsample",
                format!("unknown upsampling `{other}`; allowed: bilinear, nearest"),
            )));
        }
    };
    let scorer = ScorerParams {
        sigma,
        upsample,
        ..ScorerParams::default()
    }
    .check()
    .map_err(to_py)?;
    if height == 0 || width == 0 {
        return Err(to_py(Error::InvalidArgument(format!(
            "map size {height} x {width} is empty"
        ))));
    }
    let v = view(&patch_scores);
    check(&v.view(), "patch_scores")?;
    let maps = py.detach(|| -> PyResult<ndarray::ArrayD<f32>> {
        match v.ndim() {
            2 => {
                let g = v.view().into_dimensionality::<Ix2>().expect("2-D");
                Ok(scorer.anomaly_map(g, height, width).into_dyn())
            }
            3 => {
                let maps: Vec<Array2<f32>> = v
                    .axis_iter(Axis(0))
                    .map(|g| {
                        let g = g.into_dimensionality::<Ix2>().expect("2-D");
                        scorer.anomaly_map(g, height, width)
                    })
                    .collect();
                let views: Vec<_> = maps.iter().map(|m| m.view()).collect();
                Ok(ndarray::stack(Axis(0), &views)
                    .map_err(|e| to_py(Error::Shape(e.to_string())))?
                    .into_dyn())
            }
            n => Err(to_py(Error::Shape(format!(
                "patch_scores must be [h, w] or [images, h, w], got {n} dimensions"
            )))),
        }
    })?;
    Ok(out(py, maps))
}

/// Scores and binary labels of the same length, labels as bool.
fn scores_labels(
    scores: &PyReadonlyArrayDyn<'_, f32>,
    labels: &Bound<'_, PyAny>,
) -> PyResult<(Vec<f32>, Vec<bool>)> {
    let s = view(scores);
    check(&s.view(), "scores")?;
    if s.ndim() != 1 {
        return Err(to_py(Error::Shape(format!(
            "scores must be 1-D, got {} dimensions",
            s.ndim()
        ))));
    }
    let l: Vec<bool> = match labels.extract::<PyReadonlyArrayDyn<'_, bool>>() {
        Ok(b) => view(&b).iter().copied().collect(),
        Err(_) => {
            let ints: PyReadonlyArrayDyn<'_, i64> = labels.extract().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(
                    "labels must be an array of bool or int64 (1 = anomalous)",
                )
            })?;
            view(&ints).iter().map(|&v| v != 0).collect()
        }
    };
    if l.len() != s.len() {
        return Err(to_py(Error::Shape(format!(
            "{} scores but {} labels",
            s.len(),
            l.len()
        ))));
    }
    Ok((s.iter().copied().collect(), l))
}

/// Area under the ROC curve (sklearn's `roc_auc_score`, ties as one step).
#[pyfunction]
fn auroc(
    py: Python<'_>,
    scores: PyReadonlyArrayDyn<'_, f32>,
    labels: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let (s, l) = scores_labels(&scores, labels)?;
    py.detach(|| patchcore_metrics::auroc(&s, &l))
        .map_err(to_py)
}

/// Image metrics: `{"auroc", "aupr", "f1_max", "f1_threshold"}` (sklearn's definitions).
#[pyfunction]
fn image_metrics(
    py: Python<'_>,
    scores: PyReadonlyArrayDyn<'_, f32>,
    labels: &Bound<'_, PyAny>,
) -> PyResult<(f64, f64, f64, f32)> {
    let (s, l) = scores_labels(&scores, labels)?;
    let m = py
        .detach(|| patchcore_metrics::image_metrics(&s, &l))
        .map_err(to_py)?;
    Ok((m.auroc, m.aupr, m.f1_max, m.f1_threshold))
}

/// Pixel metrics of maps `[n, h, w]` float32 against masks `[n, h, w]` (uint8 or bool, non-zero
/// = anomalous): AUROC, AUPR, F1-max with its threshold, AUPRO up to `fpr_limit`
/// (8-connected regions, as MVTec and anomalib), and the number of regions.
#[pyfunction]
#[pyo3(signature = (maps, masks, fpr_limit=0.3))]
fn pixel_metrics(
    py: Python<'_>,
    maps: PyReadonlyArrayDyn<'_, f32>,
    masks: &Bound<'_, PyAny>,
    fpr_limit: f64,
) -> PyResult<(f64, f64, f64, f32, f64, usize)> {
    let m = view(&maps);
    check(&m.view(), "maps")?;
    let k: ArrayD<u8> = match masks.extract::<PyReadonlyArrayDyn<'_, u8>>() {
        Ok(u) => view(&u).into_owned(),
        Err(_) => {
            let b: PyReadonlyArrayDyn<'_, bool> = masks.extract().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err("masks must be an array of uint8 or bool")
            })?;
            view(&b).mapv(u8::from)
        }
    };
    if m.ndim() != 3 || m.shape() != k.shape() {
        return Err(to_py(Error::Shape(format!(
            "maps {:?} and masks {:?} must both be [n, h, w]",
            m.shape(),
            k.shape()
        ))));
    }
    if !(fpr_limit > 0.0 && fpr_limit <= 1.0) {
        return Err(to_py(Error::InvalidArgument(format!(
            "fpr_limit must be in (0, 1], got {fpr_limit}"
        ))));
    }
    let v = py
        .detach(|| -> patchcore_core::Result<_> {
            let (h, w) = (m.shape()[1], m.shape()[2]);
            let mut acc = patchcore_metrics::PixelMetrics::new();
            for (map, mask) in m.axis_iter(Axis(0)).zip(k.axis_iter(Axis(0))) {
                let map = map.as_standard_layout();
                let mask: Vec<u8> = mask.iter().map(|&v| u8::from(v != 0)).collect();
                acc.add(map.as_slice().expect("standard layout"), &mask, h, w)?;
            }
            acc.finish(fpr_limit)
        })
        .map_err(to_py)?;
    Ok((
        v.auroc,
        v.aupr,
        v.f1_max,
        v.f1_threshold,
        v.aupro,
        v.regions,
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(greedy_coreset, m)?)?;
    m.add_function(wrap_pyfunction!(random_sample, m)?)?;
    m.add_function(wrap_pyfunction!(anomaly_scores, m)?)?;
    m.add_function(wrap_pyfunction!(anomaly_map, m)?)?;
    m.add_function(wrap_pyfunction!(auroc, m)?)?;
    m.add_function(wrap_pyfunction!(image_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(pixel_metrics, m)?)?;
    m.add_class::<PyExactIndex>()?;
    Ok(())
}
