//! Assembling a [`PatchCore`] from a config, with any component swapped for a trait object.

use patchcore_aggregate::FeatureAggregator;
use patchcore_backbone::{Backbone, EfficientNetLite, ResNet, ResNetSpec, TensorMap};
use patchcore_core::{Error, Result};
use patchcore_data::Geometry;
use patchcore_nn::{IndexBuilder, IndexParams};
use patchcore_sampler::{Sampler, SamplerParams};
use patchcore_score::Scorer;

use super::{PatchCore, WeightsInfo};
use crate::config::{BackboneConfig, Config};

/// Builds a [`PatchCore`] from a config, taking any of its components as a trait object
/// instead of from the config.
///
/// ```no_run
/// # use patchcore_model::{Config, PatchCoreBuilder};
/// # fn f(my_sampler: Box<dyn patchcore_sampler::Sampler>) -> patchcore_core::Result<()> {
/// let model = PatchCoreBuilder::new(Config::default_experiment()?)
///     .sampler(my_sampler)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// A sampler or index builder given here is recorded in the model's config as
/// `kind = "custom"` with its name: the model saves, and loading it asks for an index builder
/// of that name ([`super::LoadOptions::index`]). A backbone, aggregator or scorer given here
/// cannot be described by a model file: [`super::FittedPatchCore::save`] refuses such a model and names
/// the component.
pub struct PatchCoreBuilder {
    config: Config,
    backbone: Option<Box<dyn Backbone>>,
    aggregator: Option<Box<dyn FeatureAggregator>>,
    sampler: Option<Box<dyn Sampler>>,
    index: Option<Box<dyn IndexBuilder>>,
    scorer: Option<Box<dyn Scorer>>,
}

impl PatchCoreBuilder {
    /// Starts from `config`: every component not given otherwise is built from it.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            backbone: None,
            aggregator: None,
            sampler: None,
            index: None,
            scorer: None,
        }
    }

    /// Uses this feature extractor instead of the config's `[backbone]`.
    pub fn backbone(mut self, backbone: Box<dyn Backbone>) -> Self {
        self.backbone = Some(backbone);
        self
    }

    /// Uses this aggregator instead of the config's `[aggregator]`.
    pub fn aggregator(mut self, aggregator: Box<dyn FeatureAggregator>) -> Self {
        self.aggregator = Some(aggregator);
        self
    }

    /// Uses this sampler instead of the config's `[sampler]` (also for merge-and-reduce fits).
    pub fn sampler(mut self, sampler: Box<dyn Sampler>) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Builds the memory bank's index with this builder instead of the config's `[nn]`.
    pub fn index_builder(mut self, index: Box<dyn IndexBuilder>) -> Self {
        self.index = Some(index);
        self
    }

    /// Uses this scorer instead of the config's `[scorer]`.
    pub fn scorer(mut self, scorer: Box<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Validates the config and assembles the model (fetching and reading the backbone
    /// weights unless a backbone was given).
    pub fn build(self) -> Result<PatchCore> {
        let mut cfg = self.config;
        cfg.validate()?;
        let mut undescribed = Vec::new();
        let (backbone, weights) = match self.backbone {
            Some(b) => {
                undescribed.push(("backbone", b.name().to_string()));
                let w = WeightsInfo {
                    file: format!("custom backbone `{}`", b.name()),
                    sha256: "-".into(),
                    pretrained: true,
                };
                (b, w)
            }
            None => {
                let bcfg = single_backbone(&cfg)?;
                build_backbone(bcfg, &cfg)?
            }
        };
        let aggregator = match self.aggregator {
            Some(a) => {
                undescribed.push(("aggregator", a.name().to_string()));
                a
            }
            None => cfg.aggregator.check()?,
        };
        let sampler = match self.sampler {
            Some(s) => {
                cfg.sampler = SamplerParams::Custom {
                    name: s.name().to_string(),
                };
                Some(s)
            }
            None => match &cfg.sampler {
                // A model fitted with a custom sampler, loaded without it: the bank needs none.
                SamplerParams::Custom { .. } => None,
                p => Some(p.build(cfg.seed)?),
            },
        };
        let index_builder: Box<dyn IndexBuilder> = match self.index {
            Some(b) => {
                cfg.nn = IndexParams::Custom {
                    name: b.name().to_string(),
                };
                b
            }
            None => match &cfg.nn {
                IndexParams::Custom { name } => {
                    return Err(Error::config(
                        "nn.kind",
                        format!(
                            "\"custom\" index `{name}` cannot be built from a config: pass its \
                             IndexBuilder (PatchCoreBuilder::index_builder, or \
                             LoadOptions::index when loading)"
                        ),
                    ));
                }
                p => index_builder(p, cfg.seed)?,
            },
        };
        let scorer = match self.scorer {
            Some(s) => {
                undescribed.push(("scorer", s.name().to_string()));
                s
            }
            None => Box::new(cfg.scorer.check()?) as Box<dyn Scorer>,
        };
        let tiling = cfg.tiling.check()?;
        Ok(PatchCore {
            backbone,
            aggregator,
            sampler,
            index_builder,
            scorer,
            undescribed,
            geometry: match tiling {
                // A tile is the network input as it is: no resize, no crop.
                Some(t) => Geometry::new(t.tile(), t.tile())?,
                None => Geometry::new(cfg.data.resize, cfg.data.crop)?,
            },
            tiling,
            forward_batch: cfg.data.forward_batch_for(cfg.device),
            weights,
            limits: cfg.image_limits(),
            config: cfg,
            state: super::Unfitted,
        })
    }
}

/// The index builder `[nn]` describes; with the feature `qdrant`, `kind = "qdrant"` too.
pub(crate) fn index_builder(p: &IndexParams, seed: u64) -> Result<Box<dyn IndexBuilder>> {
    match p {
        #[cfg(feature = "qdrant")]
        IndexParams::Qdrant(q) => Ok(Box::new(patchcore_qdrant::QdrantBuilder::from_params(q)?)),
        p => p.check(seed),
    }
}

/// The one `[backbone]` of a single-backbone config.
fn single_backbone(cfg: &Config) -> Result<&BackboneConfig> {
    match (&cfg.backbone, cfg.ensemble.len()) {
        (Some(b), 0) => Ok(b),
        _ => Err(Error::config(
            "ensemble",
            "a PatchCore model has one backbone: build one per Config::member(i)",
        )),
    }
}

/// Reads the weights a backbone config names (`None` for random initialisation).
fn read_weights(bcfg: &BackboneConfig, seed: u64) -> Result<(Option<TensorMap>, WeightsInfo)> {
    Ok(match bcfg.weights_source() {
        Some(src) => {
            let path = src.resolve()?;
            let sha = patchcore_backbone::weights::sha256_file(&path)?;
            (
                Some(TensorMap::read(&path)?),
                WeightsInfo {
                    file: path.to_string_lossy().into_owned(),
                    sha256: sha,
                    pretrained: true,
                },
            )
        }
        None => (
            None,
            WeightsInfo {
                file: format!("random initialisation (seed {seed}), NOT pretrained"),
                sha256: "-".into(),
                pretrained: false,
            },
        ),
    })
}

/// The backbone a config names, on the config's device.
fn build_backbone(bcfg: &BackboneConfig, cfg: &Config) -> Result<(Box<dyn Backbone>, WeightsInfo)> {
    let device = cfg.device.burn_device()?;
    let (map, weights) = read_weights(bcfg, cfg.seed)?;
    let backbone: Box<dyn Backbone> = match bcfg.arch.lite_variant() {
        Some(variant) => Box::new(EfficientNetLite::from_tensors_variant(
            variant,
            map.ok_or_else(|| {
                Error::config(
                    "backbone.weights",
                    format!("{} has no random initialisation", variant.name()),
                )
            })?,
            &bcfg.layers,
            bcfg.padding.unwrap_or_default(),
            bcfg.bn_eps.unwrap_or(1e-3),
            &device,
        )?),
        None => {
            let arch = bcfg.arch;
            let spec = ResNetSpec::preset(arch.name())?;
            let map = map.unwrap_or_else(|| spec.random_weights(cfg.seed));
            Box::new(ResNet::from_tensors(spec, map, &bcfg.layers, &device)?)
        }
    };
    Ok((backbone, weights))
}
