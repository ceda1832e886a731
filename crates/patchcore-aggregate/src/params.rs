//! The aggregators' parameters as config keys: unchecked, serializable, each with a
//! `check()` that returns the aggregator (linfa's `ParamGuard` pattern).

use patchcore_core::{Error, Result};

use crate::{FeatureAggregator, LocallyAware, Official};

/// `p` must be odd and positive.
pub(crate) fn check_neighbourhood(key: &str, p: usize) -> Result<()> {
    if p == 0 || p.is_multiple_of(2) {
        return Err(Error::config(
            key,
            format!("must be an odd positive integer (1, 3, 5, ...), got {p}"),
        ));
    }
    Ok(())
}

/// Parameters of [`LocallyAware`] as config keys.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LocallyAwareParams {
    /// Neighbourhood (patch) size p: 1, 3, 5, ... (odd).
    #[cfg_attr(feature = "serde", serde(default = "d_neigh"))]
    pub neighbourhood: usize,
    /// Project rows to this width by adaptive average pooling; 0 keeps the concatenation.
    #[cfg_attr(feature = "serde", serde(default))]
    pub target_dim: usize,
}

impl Default for LocallyAwareParams {
    fn default() -> Self {
        Self {
            neighbourhood: d_neigh(),
            target_dim: 0,
        }
    }
}

impl LocallyAwareParams {
    /// The aggregator these keys describe; errors name the `aggregator.*` key.
    pub fn check(&self) -> Result<LocallyAware> {
        LocallyAware::new(
            self.neighbourhood,
            (self.target_dim > 0).then_some(self.target_dim),
        )
    }
}

/// Parameters of [`Official`] as config keys.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct OfficialParams {
    /// Patch size p: 1, 3, 5, ... (odd).
    #[cfg_attr(feature = "serde", serde(default = "d_neigh"))]
    pub neighbourhood: usize,
    /// Per-layer width (default 1024).
    #[cfg_attr(feature = "serde", serde(default = "d_embed"))]
    pub pretrain_embed_dim: usize,
    /// Final width (default 1024).
    #[cfg_attr(feature = "serde", serde(default = "d_embed"))]
    pub target_embed_dim: usize,
}

impl Default for OfficialParams {
    fn default() -> Self {
        Self {
            neighbourhood: d_neigh(),
            pretrain_embed_dim: d_embed(),
            target_embed_dim: d_embed(),
        }
    }
}

impl OfficialParams {
    /// The aggregator these keys describe; errors name the `aggregator.*` key.
    pub fn check(&self) -> Result<Official> {
        check_neighbourhood("aggregator.neighbourhood", self.neighbourhood)?;
        if self.pretrain_embed_dim == 0 {
            return Err(Error::config(
                "aggregator.pretrain_embed_dim",
                "must be positive",
            ));
        }
        if self.target_embed_dim == 0 {
            return Err(Error::config(
                "aggregator.target_embed_dim",
                "must be positive",
            ));
        }
        Ok(Official {
            patchsize: self.neighbourhood,
            pretrain_embed_dim: self.pretrain_embed_dim,
            target_embed_dim: self.target_embed_dim,
        })
    }
}

fn d_neigh() -> usize {
    3
}
fn d_embed() -> usize {
    1024
}

/// The `[aggregator]` config section: how backbone maps become patch-feature rows.
///
/// Tagged by `kind` (default `locally_aware`); each variant holds its aggregator's parameters.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum AggregatorParams {
    /// Neighbourhood average of each map, deeper maps upsampled, concatenated (anomalib).
    LocallyAware(LocallyAwareParams),
    /// Unfolded patches, interpolated, adaptive-average-pooled per layer and overall (the
    /// official implementation).
    Official(OfficialParams),
}

impl Default for AggregatorParams {
    fn default() -> Self {
        AggregatorParams::LocallyAware(LocallyAwareParams::default())
    }
}

impl AggregatorParams {
    /// The `kind` key's value (the built aggregator's [`FeatureAggregator::name`]).
    pub fn kind(&self) -> &'static str {
        match self {
            AggregatorParams::LocallyAware(_) => "locally_aware",
            AggregatorParams::Official(_) => "official",
        }
    }

    /// The neighbourhood (patch) size.
    pub fn neighbourhood(&self) -> usize {
        match self {
            AggregatorParams::LocallyAware(p) => p.neighbourhood,
            AggregatorParams::Official(p) => p.neighbourhood,
        }
    }

    /// Range checks; errors name the `aggregator.*` key.
    pub fn validate(&self) -> Result<()> {
        self.check().map(|_| ())
    }

    /// The checked aggregator.
    pub fn check(&self) -> Result<Box<dyn FeatureAggregator>> {
        Ok(match self {
            AggregatorParams::LocallyAware(p) => Box::new(p.check()?),
            AggregatorParams::Official(p) => Box::new(p.check()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_key() {
        let e = |p: LocallyAwareParams| p.check().unwrap_err().to_string();
        assert!(
            e(LocallyAwareParams {
                neighbourhood: 2,
                target_dim: 0
            })
            .contains("aggregator.neighbourhood")
        );
        let o = OfficialParams {
            target_embed_dim: 0,
            ..OfficialParams::default()
        };
        assert!(
            o.check()
                .unwrap_err()
                .to_string()
                .contains("aggregator.target_embed_dim")
        );
        for p in [
            AggregatorParams::default(),
            AggregatorParams::Official(OfficialParams::default()),
        ] {
            assert_eq!(p.check().unwrap().name(), p.kind());
        }
    }
}
