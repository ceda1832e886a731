//! The `[sampler]` config section: one definition of every sampler parameter, with its
//! default and range, next to the samplers it builds.

use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{
    GreedyCoreset, GreedyVariant, IdentitySampler, ProjDim, Projection, RandomSampler, SampleSize,
    Sampler, jl_min_dim,
};

/// How many rows to keep, as config keys: exactly one of `ratio` and `count`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SizeParams {
    /// Fraction of the bank to keep, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep (>= 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

impl SizeParams {
    /// The checked size; errors name `sampler.ratio`, `sampler.count` or `sampler`.
    pub fn size(&self) -> Result<SampleSize> {
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
}

/// Exact greedy algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionKind {
    /// Dense Gaussian entries.
    #[default]
    Gaussian,
    /// Sparse entries (Achlioptas / Li).
    Sparse,
    /// Distances on the raw features.
    None,
}

/// Parameters of the greedy coreset samplers (exact and approximate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreedyParams {
    /// Fraction of the bank to keep, in (0, 1]. Exactly one of `ratio` and `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Absolute number of rows to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// `greedy_coreset`: "pruned" (default) or "plain", which select the same rows, or
    /// "partitioned" (blocks of about `block_picks` picks; not the exact selection).
    #[serde(default)]
    pub greedy: GreedyAlgorithm,
    /// `greedy = "partitioned"`: picks per block (default 512).
    #[serde(default = "d_block_picks")]
    pub block_picks: usize,
    /// `approximate_greedy_coreset`: number of random start rows (official default 10).
    #[serde(default = "d_starts")]
    pub approx_starts: usize,
    /// Projection for the greedy distances: "gaussian" (default), "sparse" or "none".
    #[serde(default)]
    pub projection: ProjectionKind,
    /// Projection width; 0 = the Johnson-Lindenstrauss bound for `projection_eps`.
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
    /// Distortion for the JL width (used when `projection_dim = 0`; anomalib uses 0.9).
    #[serde(default = "d_eps_jl")]
    pub projection_eps: f64,
    /// `sparse`: fraction of non-zero entries; 0 = `1/sqrt(d)` (Li et al.), 1/3 = Achlioptas.
    #[serde(default)]
    pub sparse_density: f64,
    /// Project even when the width is not below the feature width (anomalib 2.7 does: the JL
    /// width at eps 0.9 for 164k rows is 296 dims, above 152-d features). Default false: such
    /// a projection is skipped and distances use the raw features.
    #[serde(default)]
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
            approx_starts: d_starts(),
            block_picks: d_block_picks(),
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

    /// Range checks; errors name the `sampler.*` key.
    pub fn validate(&self) -> Result<()> {
        self.size_params().size()?;
        if self.approx_starts == 0 {
            return Err(Error::config("sampler.approx_starts", "must be at least 1"));
        }
        if self.block_picks == 0 {
            return Err(Error::config("sampler.block_picks", "must be at least 1"));
        }
        if self.projection_dim == 0 {
            jl_min_dim(2, self.projection_eps)?;
        }
        if !(0.0..=1.0).contains(&self.sparse_density) {
            return Err(Error::config(
                "sampler.sparse_density",
                format!(
                    "must be in [0, 1] (0 = 1/sqrt(d)), got {}",
                    self.sparse_density
                ),
            ));
        }
        Ok(())
    }

    /// The projection these keys describe.
    pub fn projection(&self) -> Projection {
        let dim = if self.projection_dim == 0 {
            ProjDim::JohnsonLindenstrauss {
                eps: self.projection_eps,
            }
        } else {
            ProjDim::Fixed(self.projection_dim)
        };
        match self.projection {
            ProjectionKind::None => Projection::None,
            ProjectionKind::Gaussian => Projection::Gaussian(dim),
            ProjectionKind::Sparse => Projection::Sparse {
                dim,
                density: (self.sparse_density > 0.0).then_some(self.sparse_density),
            },
        }
    }

    fn build(&self, variant: GreedyVariant, seed: u64) -> Result<GreedyCoreset> {
        self.validate()?;
        Ok(GreedyCoreset {
            size: self.size_params().size()?,
            projection: self.projection(),
            seed,
            start: None,
            variant,
            always_project: self.projection_always,
        })
    }
}

/// The `[sampler]` config section: which sampler reduces the memory bank.
///
/// Tagged by `kind`; each variant holds its sampler's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerParams {
    /// Exact greedy k-center (paper §3.2); `greedy` picks the algorithm.
    GreedyCoreset(GreedyParams),
    /// The official approximate greedy (`approx_starts` random start rows).
    ApproximateGreedyCoreset(GreedyParams),
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
            SamplerParams::GreedyCoreset(p) | SamplerParams::ApproximateGreedyCoreset(p) => {
                p.validate()
            }
            SamplerParams::Random(p) => p.size().map(|_| ()),
            SamplerParams::Identity {} | SamplerParams::Custom { .. } => Ok(()),
        }
    }

    /// How many rows the sampler keeps (the whole bank for `identity`; `None` for `custom`).
    pub fn size(&self) -> Option<SampleSize> {
        match self {
            SamplerParams::GreedyCoreset(p) | SamplerParams::ApproximateGreedyCoreset(p) => {
                p.size_params().size().ok()
            }
            SamplerParams::Random(p) => p.size().ok(),
            SamplerParams::Identity {} => Some(SampleSize::Ratio(1.0)),
            SamplerParams::Custom { .. } => None,
        }
    }

    /// Sets how many rows the sampler keeps (`ratio` or `count`, the other cleared). An error
    /// for `identity` and `custom`, which have no size keys.
    pub fn set_size(&mut self, size: SampleSize) -> Result<()> {
        let (ratio, count) = match size {
            SampleSize::Ratio(r) => (Some(r), None),
            SampleSize::Count(c) => (None, Some(c)),
        };
        match self {
            SamplerParams::GreedyCoreset(p) | SamplerParams::ApproximateGreedyCoreset(p) => {
                (p.ratio, p.count) = (ratio, count);
            }
            SamplerParams::Random(p) => (p.ratio, p.count) = (ratio, count),
            other => {
                return Err(Error::config(
                    "sampler",
                    format!("`{}` has no `ratio` / `count`", other.kind()),
                ));
            }
        }
        self.validate()
    }

    /// Builds the sampler, with `seed` for every random choice. `custom` is an error.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Sampler>> {
        Ok(match self {
            SamplerParams::GreedyCoreset(p) => Box::new(p.build(
                match p.greedy {
                    GreedyAlgorithm::Pruned => GreedyVariant::Pruned,
                    GreedyAlgorithm::Plain => GreedyVariant::Plain,
                    GreedyAlgorithm::Partitioned => GreedyVariant::Partitioned {
                        block_picks: p.block_picks,
                    },
                },
                seed,
            )?),
            SamplerParams::ApproximateGreedyCoreset(p) => Box::new(p.build(
                GreedyVariant::Approximate {
                    starts: p.approx_starts,
                },
                seed,
            )?),
            SamplerParams::Random(p) => Box::new(RandomSampler {
                size: p.size()?,
                seed,
            }),
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
        let g = GreedyParams::default();
        for (p, name) in [
            (
                SamplerParams::GreedyCoreset(g.clone()),
                "greedy_coreset_pruned",
            ),
            (
                SamplerParams::ApproximateGreedyCoreset(g),
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
        p.validate().unwrap();
        let s = SamplerParams::GreedyCoreset(p.clone()).build(3).unwrap();
        assert_eq!(s.name(), "greedy_coreset_partitioned");
        let bad = GreedyParams {
            block_picks: 0,
            ..p
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("sampler.block_picks")
        );
    }

    #[test]
    fn size_keys_are_checked_with_their_names() {
        let e = |r, c| {
            SizeParams { ratio: r, count: c }
                .size()
                .unwrap_err()
                .to_string()
        };
        assert!(e(Some(0.1), Some(3)).contains("`sampler`"));
        assert!(e(None, None).contains("`sampler`"));
        assert!(e(Some(0.0), None).contains("sampler.ratio"));
        assert!(e(None, Some(0)).contains("sampler.count"));
    }
}
