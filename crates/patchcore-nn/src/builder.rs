//! Building an index over a memory bank: the [`IndexBuilder`] seam and the `[nn]` config
//! section ([`IndexParams`]), one definition of every parameter with its default and range.

use ndarray::Array2;
use patchcore_core::{Error, Result};

use crate::NearestNeighborIndex;
use crate::exact::ExactIndex;
use crate::ivf::IvfIndex;
use crate::linfa_adapter::{LinfaAlgorithm, LinfaIndex};
use crate::qdrant_params::QdrantParams;

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

/// Parameters of the approximate inverted-file index ([`IvfIndex`]) as config keys;
/// [`IvfParams::check`] returns its [`IvfBuilder`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct IvfParams {
    /// Number of k-means cells; 0 = `round(sqrt(bank rows))`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub nlist: usize,
    /// Cells scanned per query (>= 1; `nlist` makes the search exact).
    #[cfg_attr(feature = "serde", serde(default = "d_nprobe"))]
    pub nprobe: usize,
    /// Lloyd iterations of the coarse quantiser.
    #[cfg_attr(feature = "serde", serde(default = "d_iterations"))]
    pub iterations: usize,
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
        }
    }
}

impl IvfParams {
    /// The builder these keys describe (k-means seed 0: see [`IvfBuilder::with_seed`]);
    /// errors name the `nn.*` key.
    pub fn check(&self) -> Result<IvfBuilder> {
        if self.nprobe == 0 {
            return Err(Error::config("nn.nprobe", "must be at least 1"));
        }
        Ok(IvfBuilder {
            nlist: self.nlist,
            nprobe: self.nprobe,
            iterations: self.iterations,
            seed: 0,
        })
    }
}

/// Builds [`IvfIndex`]es with checked parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvfBuilder {
    nlist: usize,
    nprobe: usize,
    iterations: usize,
    seed: u64,
}

impl IvfBuilder {
    /// Draws the k-means start rows from `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// `(nlist, nprobe, iterations, seed)`.
    pub fn settings(&self) -> (usize, usize, usize, u64) {
        (self.nlist, self.nprobe, self.iterations, self.seed)
    }
}

impl IndexBuilder for IvfBuilder {
    fn name(&self) -> &str {
        "ivf"
    }

    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        Ok(Box::new(IvfIndex::new(
            bank,
            self.nlist,
            self.nprobe,
            self.iterations,
            self.seed,
        )?))
    }
}

/// Builds [`ExactIndex`]es (no parameters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactBuilder;

impl IndexBuilder for ExactBuilder {
    fn name(&self) -> &str {
        "exact"
    }

    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        Ok(Box::new(ExactIndex::new(bank)?))
    }
}

/// Builds [`LinfaIndex`]es with one of linfa-nn's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinfaBuilder(pub LinfaAlgorithm);

impl IndexBuilder for LinfaBuilder {
    fn name(&self) -> &str {
        match self.0 {
            LinfaAlgorithm::LinearSearch => "linfa_linear",
            LinfaAlgorithm::KdTree => "linfa_kdtree",
            LinfaAlgorithm::BallTree => "linfa_balltree",
        }
    }

    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        Ok(Box::new(LinfaIndex::new(bank, self.0)?))
    }
}

/// The `[nn]` config section: which index the memory bank is searched with.
///
/// Tagged by `kind`; each variant holds the parameters of its index. [`IndexParams::check`]
/// turns it into the [`IndexBuilder`] it describes.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
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
    /// A Qdrant collection, on a server or in-process ([`QdrantParams`]). Built by the
    /// `patchcore-qdrant` crate (cargo feature `qdrant`); [`IndexParams::check`] refuses it.
    Qdrant(QdrantParams),
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
    /// The `kind` key's value (the name of the builder it checks into; the custom index's
    /// own name for `custom`).
    pub fn name(&self) -> &str {
        match self {
            IndexParams::Exact {} => "exact",
            IndexParams::Ivf(_) => "ivf",
            IndexParams::LinfaLinear {} => "linfa_linear",
            IndexParams::LinfaKdtree {} => "linfa_kdtree",
            IndexParams::LinfaBalltree {} => "linfa_balltree",
            IndexParams::Qdrant(_) => "qdrant",
            IndexParams::Custom { name } => name,
        }
    }

    /// Range checks; errors name the `nn.*` key.
    pub fn validate(&self) -> Result<()> {
        match self {
            IndexParams::Ivf(p) => p.check().map(|_| ()),
            IndexParams::Qdrant(p) => p.check().map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The checked builder, its random choices (IVF's k-means start) drawn from `seed`.
    /// `custom` is an error: its builder must be given; so is `qdrant`, whose builder lives
    /// in `patchcore-qdrant` (the model crate builds it when compiled with `qdrant`).
    pub fn check(&self, seed: u64) -> Result<Box<dyn IndexBuilder>> {
        Ok(match self {
            IndexParams::Exact {} => Box::new(ExactBuilder),
            IndexParams::Ivf(p) => Box::new(p.check()?.with_seed(seed)),
            IndexParams::LinfaLinear {} => Box::new(LinfaBuilder(LinfaAlgorithm::LinearSearch)),
            IndexParams::LinfaKdtree {} => Box::new(LinfaBuilder(LinfaAlgorithm::KdTree)),
            IndexParams::LinfaBalltree {} => Box::new(LinfaBuilder(LinfaAlgorithm::BallTree)),
            IndexParams::Qdrant(p) => {
                p.check()?;
                return Err(Error::config(
                    "nn.kind",
                    "\"qdrant\" needs a build with Qdrant support: build patchcore with \
                     `--features qdrant` (the Python wheel and the default binary have none)",
                ));
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
            let builder = p.check(0).unwrap();
            assert_eq!(builder.name(), p.name());
            let index = builder.build(bank.clone()).unwrap();
            assert_eq!((index.len(), index.dim()), (50, 4));
            let nn = index.search(bank.slice(ndarray::s![3..4, ..]), 1).unwrap();
            assert_eq!(nn.indices[[0, 0]], 3, "{}", p.name());
        }
        let custom = IndexParams::Custom {
            name: "mine".into(),
        };
        assert_eq!(custom.name(), "mine");
        assert!(custom.check(0).is_err());
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
