//! Building an index over a memory bank: the [`IndexBuilder`] seam and the `[nn]` config
//! section ([`IndexParams`]), one definition of every parameter with its default and range.

use ndarray::Array2;
use patchcore_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::{ExactIndex, IvfIndex, LinfaAlgorithm, LinfaIndex, NearestNeighborIndex};

/// Builds a [`NearestNeighborIndex`] over a memory bank.
///
/// This is the seam through which an assembled model takes any index, including one written
/// outside this workspace: the model hands the selected bank rows to [`IndexBuilder::build`]
/// after fitting and again after loading a model file. [`IndexBuilder::name`] is recorded in
/// model files, and a model is only loaded with a builder of the same name.
pub trait IndexBuilder: Send + Sync {
    /// Short name of the index this builds (`exact`, `ivf`, ...), recorded in model files.
    fn name(&self) -> &str;
    /// Builds the index over `bank` (`[rows, dim]`, non-empty and finite).
    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>>;
}

/// Parameters of the approximate inverted-file index ([`IvfIndex`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvfParams {
    /// Number of k-means cells; 0 = `round(sqrt(bank rows))`.
    #[serde(default)]
    pub nlist: usize,
    /// Cells scanned per query (>= 1; `nlist` makes the search exact).
    #[serde(default = "d_nprobe")]
    pub nprobe: usize,
    /// Lloyd iterations of the coarse quantiser.
    #[serde(default = "d_iterations")]
    pub iterations: usize,
    /// Seed of the k-means start rows; set from the experiment's `seed`, not a key.
    #[serde(skip)]
    pub seed: u64,
}
fn d_nprobe() -> usize {
    8
}
fn d_iterations() -> usize {
    10
}
impl Default for IvfParams {
    fn default() -> Self {
        Self {
            nlist: 0,
            nprobe: d_nprobe(),
            iterations: d_iterations(),
            seed: 0,
        }
    }
}

impl IvfParams {
    /// Range checks; errors name the `nn.*` key.
    pub fn validate(&self) -> Result<()> {
        if self.nprobe == 0 {
            return Err(Error::config("nn.nprobe", "must be at least 1"));
        }
        Ok(())
    }
}

/// The `[nn]` config section: which index the memory bank is searched with.
///
/// Tagged by `kind`; each variant holds the parameters of its index. It is itself an
/// [`IndexBuilder`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndexParams {
    /// Exact k-NN by blocked GEMM ([`ExactIndex`]), the default.
    Exact {},
    /// Approximate inverted-file index ([`IvfIndex`]).
    Ivf(IvfParams),
    /// linfa-nn's linear scan.
    LinfaLinear {},
    /// linfa-nn's k-d tree.
    LinfaKdtree {},
    /// linfa-nn's ball tree.
    LinfaBalltree {},
    /// An index supplied as a trait object through the model builder; `name` is its
    /// [`IndexBuilder::name`]. A config naming it cannot build it: the builder must be given.
    Custom {
        /// The custom builder's name.
        name: String,
    },
}

impl Default for IndexParams {
    fn default() -> Self {
        IndexParams::Exact {}
    }
}

impl IndexParams {
    /// Range checks; errors name the `nn.*` key.
    pub fn validate(&self) -> Result<()> {
        match self {
            IndexParams::Ivf(p) => p.validate(),
            _ => Ok(()),
        }
    }

    /// Sets the seed of the variants that use one (IVF's k-means start).
    pub fn with_seed(mut self, seed: u64) -> Self {
        if let IndexParams::Ivf(p) = &mut self {
            p.seed = seed;
        }
        self
    }
}

impl IndexBuilder for IndexParams {
    fn name(&self) -> &str {
        match self {
            IndexParams::Exact {} => "exact",
            IndexParams::Ivf(_) => "ivf",
            IndexParams::LinfaLinear {} => "linfa_linear",
            IndexParams::LinfaKdtree {} => "linfa_kdtree",
            IndexParams::LinfaBalltree {} => "linfa_balltree",
            IndexParams::Custom { name } => name,
        }
    }

    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        Ok(match self {
            IndexParams::Exact {} => Box::new(ExactIndex::new(bank)?),
            IndexParams::Ivf(p) => Box::new(IvfIndex::new(
                bank,
                p.nlist,
                p.nprobe,
                p.iterations,
                p.seed,
            )?),
            IndexParams::LinfaLinear {} => {
                Box::new(LinfaIndex::new(bank, LinfaAlgorithm::LinearSearch)?)
            }
            IndexParams::LinfaKdtree {} => Box::new(LinfaIndex::new(bank, LinfaAlgorithm::KdTree)?),
            IndexParams::LinfaBalltree {} => {
                Box::new(LinfaIndex::new(bank, LinfaAlgorithm::BallTree)?)
            }
            IndexParams::Custom { name } => {
                return Err(Error::config(
                    "nn.kind",
                    format!(
                        "\"custom\" index `{name}` cannot be built from a config: pass its \
                         IndexBuilder to the model builder (or to LoadOptions when loading)"
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
    fn params_build_the_named_index() {
        let bank = Array2::from_shape_fn((50, 4), |(i, j)| (i * 4 + j) as f32);
        for p in [
            IndexParams::Exact {},
            IndexParams::Ivf(IvfParams::default()),
            IndexParams::LinfaLinear {},
            IndexParams::LinfaKdtree {},
            IndexParams::LinfaBalltree {},
        ] {
            let index = p.build(bank.clone()).unwrap();
            assert_eq!((index.len(), index.dim()), (50, 4));
            let nn = index.search(bank.slice(ndarray::s![3..4, ..]), 1).unwrap();
            assert_eq!(nn.indices[[0, 0]], 3, "{}", p.name());
        }
        let custom = IndexParams::Custom {
            name: "mine".into(),
        };
        assert_eq!(custom.name(), "mine");
        assert!(custom.build(bank).is_err());
        assert!(
            IndexParams::Ivf(IvfParams {
                nprobe: 0,
                ..Default::default()
            })
            .validate()
            .is_err()
        );
    }
}
