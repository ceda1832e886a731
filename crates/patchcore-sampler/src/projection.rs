//! Random projections for the coreset distances (Johnson-Lindenstrauss).

use ndarray::{Array2, ArrayView2};
use patchcore_core::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The output width of a projection.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ProjDim {
    /// A fixed width.
    Fixed(usize),
    /// The Johnson-Lindenstrauss bound for `n` points and distortion `eps`
    /// ([`jl_min_dim`], sklearn's `johnson_lindenstrauss_min_dim`).
    JohnsonLindenstrauss {
        /// Distortion bound in (0, 1).
        eps: f64,
    },
}

/// How the features are projected before greedy distances are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Projection {
    /// Distances on the raw features.
    None,
    /// Dense Gaussian entries `N(0, 1/d_out)`.
    Gaussian(ProjDim),
    /// Sparse entries `±sqrt(1/(density d_out))` with probability `density/2` each, else 0
    /// (Achlioptas 2003 with `density = 1/3`; Li, Hastie & Church 2006 "very sparse" with
    /// `density = 1/sqrt(d_in)`, the default when `density` is `None`; sklearn's scaling).
    Sparse {
        /// Output width.
        dim: ProjDim,
        /// Fraction of non-zero entries; `None` = `1/sqrt(d_in)`.
        density: Option<f64>,
    },
}

impl Projection {
    /// Range checks: a fixed width of at least 1, a JL `eps` in (0, 1), a sparse density in
    /// (0, 1]; errors name the `sampler.*` key.
    pub fn validate(&self) -> Result<()> {
        let dim = match self {
            Projection::None => return Ok(()),
            Projection::Gaussian(d) => d,
            Projection::Sparse { dim, density } => {
                if let Some(p) = density
                    && !(*p > 0.0 && *p <= 1.0)
                {
                    return Err(Error::config(
                        "sampler.sparse_density",
                        format!("must be in (0, 1] (0 in config files = 1/sqrt(d)), got {p}"),
                    ));
                }
                dim
            }
        };
        match dim {
            ProjDim::Fixed(0) => Err(Error::config(
                "sampler.projection_dim",
                "must be at least 1 (0 in config files = the JL width)",
            )),
            ProjDim::Fixed(_) => Ok(()),
            ProjDim::JohnsonLindenstrauss { eps } => jl_min_dim(2, *eps).map(|_| ()),
        }
    }
}

/// Minimum JL width keeping all pairwise distances of `n` points within `1 ± eps`:
/// `4 ln(n) / (eps^2/2 - eps^3/3)`.
pub fn jl_min_dim(n: usize, eps: f64) -> Result<usize> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(Error::config(
            "sampler.projection_eps",
            format!("must be in (0, 1), got {eps}"),
        ));
    }
    let denom = eps * eps / 2.0 - eps * eps * eps / 3.0;
    Ok((4.0 * (n.max(2) as f64).ln() / denom) as usize)
}

/// A dense Gaussian random projection `[d_in, d_out]` with entries `N(0, 1/d_out)`, from a
/// ChaCha8 stream seeded with `seed`.
pub fn gaussian_projection(d_in: usize, d_out: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (d_out as f32).sqrt();
    Array2::from_shape_fn((d_in, d_out), |_| {
        let v: f32 = rng.sample(StandardNormal);
        v * scale
    })
}

/// A sparse random projection `[d_in, d_out]` (see [`Projection::Sparse`]).
pub fn sparse_projection(d_in: usize, d_out: usize, density: f64, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v = (1.0 / (density * d_out as f64)).sqrt() as f32;
    Array2::from_shape_fn((d_in, d_out), |_| {
        let u: f64 = rng.random();
        if u < density / 2.0 {
            -v
        } else if u < density {
            v
        } else {
            0.0
        }
    })
}

impl Projection {
    /// The output width for `n` points of width `d_in`, or `None` when no projection applies
    /// (`Projection::None`, or a width not below `d_in`).
    pub fn output_dim(&self, n: usize, d_in: usize) -> Result<Option<usize>> {
        self.output_dim_with(n, d_in, false)
    }

    /// As [`Projection::output_dim`]; with `always`, a width at or above `d_in` is kept
    /// (anomalib 2.7 projects to the JL width whatever the feature width).
    pub fn output_dim_with(&self, n: usize, d_in: usize, always: bool) -> Result<Option<usize>> {
        let dim = match self {
            Projection::None => return Ok(None),
            Projection::Gaussian(d) | Projection::Sparse { dim: d, .. } => match *d {
                ProjDim::Fixed(k) => k,
                ProjDim::JohnsonLindenstrauss { eps } => jl_min_dim(n, eps)?,
            },
        };
        if dim == 0 {
            return Err(Error::config("sampler.projection_dim", "must be positive"));
        }
        Ok((always || dim < d_in).then_some(dim))
    }

    /// Projects `features` (a copy when no projection applies).
    pub fn apply(&self, features: ArrayView2<'_, f32>, seed: u64) -> Result<Array2<f32>> {
        self.apply_with(features, seed, false)
    }

    /// As [`Projection::apply`]; with `always`, projects even to a width at or above the
    /// feature width ([`Projection::output_dim_with`]).
    pub fn apply_with(
        &self,
        features: ArrayView2<'_, f32>,
        seed: u64,
        always: bool,
    ) -> Result<Array2<f32>> {
        let (n, d_in) = features.dim();
        let Some(d_out) = self.output_dim_with(n, d_in, always)? else {
            return Ok(features.to_owned());
        };
        let matrix = match self {
            Projection::Gaussian(_) => gaussian_projection(d_in, d_out, seed),
            Projection::Sparse { density, .. } => {
                let density = density.unwrap_or(1.0 / (d_in as f64).sqrt());
                if !(density > 0.0 && density <= 1.0) {
                    return Err(Error::config(
                        "sampler.sparse_density",
                        format!("must be in (0, 1], got {density}"),
                    ));
                }
                sparse_projection(d_in, d_out, density, seed)
            }
            Projection::None => unreachable!("handled above"),
        };
        Ok(features.dot(&matrix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_keeps_a_projection_wider_than_the_features() {
        let p = Projection::Sparse {
            dim: ProjDim::JohnsonLindenstrauss { eps: 0.9 },
            density: None,
        };
        // anomalib on bottle: 163856 rows of 152-d features -> 296 dims.
        assert_eq!(p.output_dim(163_856, 152).unwrap(), None);
        assert_eq!(p.output_dim_with(163_856, 152, true).unwrap(), Some(296));
        let x = Array2::from_shape_fn((40, 3), |(i, j)| (i * 3 + j) as f32);
        assert_eq!(p.apply(x.view(), 0).unwrap(), x);
        assert_eq!(
            p.apply_with(x.view(), 0, true).unwrap().dim(),
            (40, jl_min_dim(40, 0.9).unwrap())
        );
    }

    #[test]
    fn jl_bound_matches_sklearn() {
        // sklearn.random_projection.johnson_lindenstrauss_min_dim(1e6, eps=0.5) == 663
        assert_eq!(jl_min_dim(1_000_000, 0.5).unwrap(), 663);
        // ... (163856, eps=0.9) == 296
        assert_eq!(jl_min_dim(163_856, 0.9).unwrap(), 296);
        assert!(jl_min_dim(10, 1.5).is_err());
    }

    #[test]
    fn sparse_projection_has_the_requested_density_and_scale() {
        let m = sparse_projection(400, 100, 1.0 / 3.0, 1);
        let nz = m.iter().filter(|v| **v != 0.0).count() as f64 / m.len() as f64;
        assert!((nz - 1.0 / 3.0).abs() < 0.01, "density {nz}");
        let v = (3.0f32 / 100.0).sqrt();
        assert!(m.iter().all(|x| *x == 0.0 || (x.abs() - v).abs() < 1e-6));
    }

    #[test]
    fn projections_roughly_preserve_distances() {
        let x = gaussian_projection(64, 2000, 3).t().to_owned(); // 2000 points in 64-d
        for proj in [
            Projection::Gaussian(ProjDim::Fixed(48)),
            Projection::Sparse {
                dim: ProjDim::Fixed(48),
                density: None,
            },
        ] {
            let y = proj.apply(x.view(), 9).unwrap();
            assert_eq!(y.ncols(), 48);
            let d = |a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>| {
                a.iter()
                    .zip(b)
                    .map(|(p, q)| (p - q) * (p - q))
                    .sum::<f32>()
                    .sqrt()
            };
            let ratio: f32 = (0..200)
                .map(|i| d(y.row(i), y.row(i + 1)) / d(x.row(i), x.row(i + 1)))
                .sum::<f32>()
                / 200.0;
            assert!(
                (ratio - 1.0).abs() < 0.1,
                "{proj:?}: mean distance ratio {ratio}"
            );
        }
    }
}
