//! The `[sampler]` config section: one parameter type per sampler kind, unchecked and
//! serializable, each with a `check()` that returns the sampler with its fields private
//! (linfa's `ParamGuard` pattern). One definition of every parameter, with its default and
//! range, next to the samplers it builds; the config loader, the model builder and the Python
//! binding all go through it.

use patchcore_core::{Error, Result};

use crate::greedy::{GreedyCoreset, GreedyVariant};
use crate::projection::{ProjDim, Projection};
use crate::{IdentitySampler, RandomSampler, SampleSize, Sampler};

/// How many rows to keep, as config keys: exactly one of `ratio` and `count`. Also the
/// parameters of the `random` sampler.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct SizeParams {
    /// Fraction of the bank to keep, in (0, 1].
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep (>= 1).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub count: Option<usize>,
}

impl SizeParams {
    /// The checked size; errors name `sampler.ratio`, `sampler.count` or `sampler`.
    pub fn check(&self) -> Result<SampleSize> {
        match (self.ratio, self.count) {
            (Some(_), Some(_)) => Err(Error::config(
                "sampler",
                "set either `ratio` or `count`, not both",
            )),
            (None, None) => Err(Error::config(
                "sampler",
                "set `ratio` (in (0, 1]) or `count` (>= 1)",
            )),
            (Some(r), None) => SampleSize::ratio(r),
            (None, Some(c)) => SampleSize::count(c),
        }
    }

    fn set(&mut self, size: SampleSize) {
        (self.ratio, self.count) = match size {
            SampleSize::Ratio(r) => (Some(r), None),
            SampleSize::Count(c) => (None, Some(c)),
        };
    }
}

/// Exact greedy algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum GreedyAlgorithm {
    /// Triangle-inequality pruning: identical selections, fewer distance evaluations.
    #[default]
    Pruned,
    /// One full pass over the bank per pick.
    Plain,
    /// Exact greedy inside blocks of nearby rows (about `block_picks` picks each), merged:
    /// not the exact selection (covering radius measured in docs/BENCHMARKS.md), cost linear
    /// in the rows at a fixed ratio. For banks of millions of rows.
    Partitioned,
}

/// Random projection kind for the greedy distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ProjectionKind {
    /// Dense Gaussian entries.
    #[default]
    Gaussian,
    /// Sparse entries (Achlioptas / Li).
    Sparse,
    /// Distances on the raw features.
    None,
}

/// The projection keys shared by both greedy kinds, as one [`Projection`].
fn projection_of(kind: ProjectionKind, dim: usize, eps: f64, sparse_density: f64) -> Projection {
    let dim = if dim == 0 {
        ProjDim::JohnsonLindenstrauss { eps }
    } else {
        ProjDim::Fixed(dim)
    };
    match kind {
        ProjectionKind::None => Projection::None,
        ProjectionKind::Gaussian => Projection::Gaussian(dim),
        ProjectionKind::Sparse => Projection::Sparse {
            dim,
            density: (sparse_density > 0.0).then_some(sparse_density),
        },
    }
}

/// A sparse density of 0 means `1/sqrt(d)`; otherwise it lies in (0, 1].
fn check_density(d: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&d) {
        return Err(Error::config(
            "sampler.sparse_density",
            format!("must be in [0, 1] (0 = 1/sqrt(d)), got {d}"),
        ));
    }
    Ok(())
}

/// Parameters of the exact greedy coreset (`kind = "greedy_coreset"`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct GreedyParams {
    /// Fraction of the bank to keep, in (0, 1]. Exactly one of `ratio` and `count`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub count: Option<usize>,
    /// "pruned" (default) or "plain", which select the same rows, or "partitioned" (blocks of
    /// about `block_picks` picks; not the exact selection).
    #[cfg_attr(feature = "serde", serde(default))]
    pub greedy: GreedyAlgorithm,
    /// `greedy = "partitioned"`: picks per block (default 512).
    #[cfg_attr(feature = "serde", serde(default = "d_block_picks"))]
    pub block_picks: usize,
    /// Projection for the greedy distances: "gaussian" (default), "sparse" or "none".
    #[cfg_attr(feature = "serde", serde(default))]
    pub projection: ProjectionKind,
    /// Projection width; 0 = the Johnson-Lindenstrauss bound for `projection_eps`.
    #[cfg_attr(feature = "serde", serde(default = "d_proj"))]
    pub projection_dim: usize,
    /// Distortion for the JL width (used when `projection_dim = 0`; anomalib uses 0.9).
    #[cfg_attr(feature = "serde", serde(default = "d_eps_jl"))]
    pub projection_eps: f64,
    /// `sparse`: fraction of non-zero entries; 0 = `1/sqrt(d)` (Li et al.), 1/3 = Achlioptas.
    #[cfg_attr(feature = "serde", serde(default))]
    pub sparse_density: f64,
    /// Project even when the width is not below the feature width (anomalib 2.7 does: the JL
    /// width at eps 0.9 for 164k rows is 296 dims, above 152-d features). Default false: such
    /// a projection is skipped and distances use the raw features.
    #[cfg_attr(feature = "serde", serde(default))]
    pub projection_always: bool,
}

/// Parameters of the official approximate greedy coreset
/// (`kind = "approximate_greedy_coreset"`).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ApproximateGreedyParams {
    /// Fraction of the bank to keep, in (0, 1]. Exactly one of `ratio` and `count`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub count: Option<usize>,
    /// Number of random start rows (official default 10).
    #[cfg_attr(feature = "serde", serde(default = "d_starts"))]
    pub approx_starts: usize,
    /// As [`GreedyParams::projection`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub projection: ProjectionKind,
    /// As [`GreedyParams::projection_dim`].
    #[cfg_attr(feature = "serde", serde(default = "d_proj"))]
    pub projection_dim: usize,
    /// As [`GreedyParams::projection_eps`].
    #[cfg_attr(feature = "serde", serde(default = "d_eps_jl"))]
    pub projection_eps: f64,
    /// As [`GreedyParams::sparse_density`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub sparse_density: f64,
    /// As [`GreedyParams::projection_always`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub projection_always: bool,
}

fn d_proj() -> usize {
    128
}
fn d_block_picks() -> usize {
    512
}
fn d_starts() -> usize {
    10
}
fn d_eps_jl() -> f64 {
    0.9
}

impl Default for GreedyParams {
    fn default() -> Self {
        Self {
            ratio: Some(0.01),
            count: None,
            greedy: GreedyAlgorithm::default(),
            block_picks: d_block_picks(),
            projection: ProjectionKind::default(),
            projection_dim: d_proj(),
            projection_eps: d_eps_jl(),
            sparse_density: 0.0,
            projection_always: false,
        }
    }
}

impl Default for ApproximateGreedyParams {
    fn default() -> Self {
        Self {
            ratio: Some(0.01),
            count: None,
            approx_starts: d_starts(),
            projection: ProjectionKind::default(),
            projection_dim: d_proj(),
            projection_eps: d_eps_jl(),
            sparse_density: 0.0,
            projection_always: false,
        }
    }
}

impl GreedyParams {
    /// The size keys as [`SizeParams`].
    pub fn size_params(&self) -> SizeParams {
        SizeParams {
            ratio: self.ratio,
            count: self.count,
        }
    }

    /// The projection these keys describe.
    pub fn projection(&self) -> Projection {
        projection_of(
            self.projection,
            self.projection_dim,
            self.projection_eps,
            self.sparse_density,
        )
    }

    /// The algorithm these keys describe.
    pub fn variant(&self) -> GreedyVariant {
        match self.greedy {
            GreedyAlgorithm::Pruned => GreedyVariant::Pruned,
            GreedyAlgorithm::Plain => GreedyVariant::Plain,
            GreedyAlgorithm::Partitioned => GreedyVariant::Partitioned {
                block_picks: self.block_picks,
            },
        }
    }

    /// The sampler (seed 0: see [`GreedyCoreset::with_seed`]); errors name the `sampler.*`
    /// key.
    pub fn check(&self) -> Result<GreedyCoreset> {
        if self.block_picks == 0 {
            return Err(Error::config("sampler.block_picks", "must be at least 1"));
        }
        check_density(self.sparse_density)?;
        Ok(
            GreedyCoreset::new(self.size_params().check()?, self.variant())?
                .with_projection(self.projection())?
                .with_always_project(self.projection_always),
        )
    }
}

impl ApproximateGreedyParams {
    /// The size keys as [`SizeParams`].
    pub fn size_params(&self) -> SizeParams {
        SizeParams {
            ratio: self.ratio,
            count: self.count,
        }
    }

    /// The projection these keys describe.
    pub fn projection(&self) -> Projection {
        projection_of(
            self.projection,
            self.projection_dim,
            self.projection_eps,
            self.sparse_density,
        )
    }

    /// The sampler (seed 0: see [`GreedyCoreset::with_seed`]); errors name the `sampler.*`
    /// key.
    pub fn check(&self) -> Result<GreedyCoreset> {
        check_density(self.sparse_density)?;
        let variant = GreedyVariant::Approximate {
            starts: self.approx_starts,
        };
        Ok(GreedyCoreset::new(self.size_params().check()?, variant)?
            .with_projection(self.projection())?
            .with_always_project(self.projection_always))
    }
}

/// The `[sampler]` config section: which sampler reduces the memory bank.
///
/// Tagged by `kind`; each variant holds its own sampler's parameters, so a key of another
/// kind (`approx_starts` under `greedy_coreset`) is an error.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum SamplerParams {
    /// Exact greedy k-center (paper §3.2); `greedy` picks the algorithm.
    GreedyCoreset(GreedyParams),
    /// The official approximate greedy (`approx_starts` random start rows).
    ApproximateGreedyCoreset(ApproximateGreedyParams),
    /// Seeded uniform subset.
    Random(SizeParams),
    /// No subsampling (the full memory bank).
    Identity {},
    /// A sampler supplied as a trait object through the model builder; `name` is its
    /// [`Sampler::name`]. A config naming it cannot build it: the sampler must be given.
    Custom {
        /// The custom sampler's name.
        name: String,
    },
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams::GreedyCoreset(GreedyParams::default())
    }
}

impl SamplerParams {
    /// The `kind` key's value.
    pub fn kind(&self) -> &str {
        match self {
            SamplerParams::GreedyCoreset(_) => "greedy_coreset",
            SamplerParams::ApproximateGreedyCoreset(_) => "approximate_greedy_coreset",
            SamplerParams::Random(_) => "random",
            SamplerParams::Identity {} => "identity",
            SamplerParams::Custom { name } => name,
        }
    }

    /// Range checks; errors name the `sampler.*` key.
    pub fn validate(&self) -> Result<()> {
        match self {
            SamplerParams::Custom { .. } => Ok(()),
            p => p.build(0).map(|_| ()),
        }
    }

    /// How many rows the sampler keeps (the whole bank for `identity`; `None` for `custom`).
    pub fn size(&self) -> Option<SampleSize> {
        match self {
            SamplerParams::GreedyCoreset(p) => p.size_params().check().ok(),
            SamplerParams::ApproximateGreedyCoreset(p) => p.size_params().check().ok(),
            SamplerParams::Random(p) => p.check().ok(),
            SamplerParams::Identity {} => Some(SampleSize::Ratio(1.0)),
            SamplerParams::Custom { .. } => None,
        }
    }

    /// The projection of the greedy kinds' distances, and whether it applies even when not
    /// narrower than the features; `None` for the other kinds.
    pub fn projection(&self) -> Option<(Projection, bool)> {
        match self {
            SamplerParams::GreedyCoreset(p) => Some((p.projection(), p.projection_always)),
            SamplerParams::ApproximateGreedyCoreset(p) => {
                Some((p.projection(), p.projection_always))
            }
            _ => None,
        }
    }

    /// Sets how many rows the sampler keeps (`ratio` or `count`, the other cleared). An error
    /// for `identity` and `custom`, which have no size keys.
    pub fn set_size(&mut self, size: SampleSize) -> Result<()> {
        let mut keys = SizeParams::default();
        keys.set(size);
        match self {
            SamplerParams::GreedyCoreset(p) => (p.ratio, p.count) = (keys.ratio, keys.count),
            SamplerParams::ApproximateGreedyCoreset(p) => {
                (p.ratio, p.count) = (keys.ratio, keys.count);
            }
            SamplerParams::Random(p) => *p = keys,
            other => {
                return Err(Error::config(
                    "sampler",
                    format!("`{}` has no `ratio` / `count`", other.kind()),
                ));
            }
        }
        self.validate()
    }

    /// Builds the checked sampler, with `seed` for every random choice. `custom` is an error.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Sampler>> {
        Ok(match self {
            SamplerParams::GreedyCoreset(p) => Box::new(p.check()?.with_seed(seed)),
            SamplerParams::ApproximateGreedyCoreset(p) => Box::new(p.check()?.with_seed(seed)),
            SamplerParams::Random(p) => Box::new(RandomSampler::new(p.check()?, seed)),
            SamplerParams::Identity {} => Box::new(IdentitySampler),
            SamplerParams::Custom { name } => {
                return Err(Error::config(
                    "sampler.kind",
                    format!(
                        "\"custom\" sampler `{name}` cannot be built from a config: pass the \
                         sampler to the model builder"
                    ),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_a_sampler_of_its_size() {
        for (p, name) in [
            (
                SamplerParams::GreedyCoreset(GreedyParams::default()),
                "greedy_coreset_pruned",
            ),
            (
                SamplerParams::ApproximateGreedyCoreset(ApproximateGreedyParams::default()),
                "approximate_greedy_coreset",
            ),
            (
                SamplerParams::Random(SizeParams {
                    ratio: None,
                    count: Some(3),
                }),
                "random",
            ),
            (SamplerParams::Identity {}, "identity"),
        ] {
            let s = p.build(7).unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(Some(s.size()), p.size());
        }
        let custom = SamplerParams::Custom {
            name: "mine".into(),
        };
        assert!(custom.build(0).is_err());
        assert_eq!(custom.size(), None);
    }

    #[test]
    fn partitioned_greedy_is_chosen_and_checked_by_its_keys() {
        let p = GreedyParams {
            greedy: GreedyAlgorithm::Partitioned,
            block_picks: 64,
            ..GreedyParams::default()
        };
        p.check().unwrap();
        let s = SamplerParams::GreedyCoreset(p.clone()).build(3).unwrap();
        assert_eq!(s.name(), "greedy_coreset_partitioned");
        let bad = GreedyParams {
            block_picks: 0,
            ..p
        };
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("sampler.block_picks")
        );
    }

    #[test]
    fn size_keys_are_checked_with_their_names() {
        let e = |r, c| {
            SizeParams { ratio: r, count: c }
                .check()
                .unwrap_err()
                .to_string()
        };
        assert!(e(Some(0.1), Some(3)).contains("`sampler`"));
        assert!(e(None, None).contains("`sampler`"));
        assert!(e(Some(0.0), None).contains("sampler.ratio"));
        assert!(e(None, Some(0)).contains("sampler.count"));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn keys_of_another_kind_are_refused() {
        let greedy: std::result::Result<SamplerParams, _> =
            serde_json::from_str(r#"{"kind": "greedy_coreset", "ratio": 0.1, "approx_starts": 3}"#);
        assert!(greedy.unwrap_err().to_string().contains("approx_starts"));
        let approx: std::result::Result<SamplerParams, _> = serde_json::from_str(
            r#"{"kind": "approximate_greedy_coreset", "ratio": 0.1, "greedy": "plain"}"#,
        );
        assert!(approx.unwrap_err().to_string().contains("greedy"));
    }

    #[test]
    fn checked_sampler_carries_the_keys() {
        let p = GreedyParams {
            projection_dim: 0,
            projection_eps: 0.5,
            projection_always: true,
            ..GreedyParams::default()
        };
        let g = p.check().unwrap().with_seed(9);
        assert_eq!(g.seed(), 9);
        assert!(g.always_project());
        assert_eq!(
            *g.projection(),
            Projection::Gaussian(ProjDim::JohnsonLindenstrauss { eps: 0.5 })
        );
        let bad_eps = GreedyParams {
            projection_dim: 0,
            projection_eps: 1.5,
            ..GreedyParams::default()
        };
        assert!(
            bad_eps
                .check()
                .unwrap_err()
                .to_string()
                .contains("sampler.projection_eps")
        );
    }
}
