//! `patchcore bank status|push`: where a model's memory bank is searched, and moving it into
//! a Qdrant collection for many stations (docs/SCALE_OUT.md). Reads the model file only (no
//! backbone weights).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use patchcore_core::Result;
use patchcore_model::model_file;
use patchcore_nn::IndexParams;

#[derive(Subcommand, Debug)]
pub enum BankCommand {
    /// Print the model's banks (rows, width, SHA-256), its index and, for a Qdrant index,
    /// what each collection holds.
    Status {
        /// The model file.
        model: PathBuf,
    },
    /// Upload the model's banks to Qdrant (creating each collection, or reusing one that
    /// already holds the bank) and rewrite the model file with `nn.kind = "qdrant"`, so
    /// `predict` and `serve` search there. Needs a build with `--features qdrant`.
    Push {
        /// The model file.
        model: PathBuf,
        /// gRPC URL of the Qdrant server or cluster (http://host:6334).
        #[arg(long, conflicts_with = "embedded_path")]
        url: Option<String>,
        /// Folder of the in-process engine instead of a server.
        #[arg(long)]
        embedded_path: Option<PathBuf>,
        /// Collection name (default: patchcore-<bank hash>; one bank only).
        #[arg(long)]
        collection: Option<String>,
        /// Write the updated model here instead of replacing MODEL.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: &BankCommand) -> Result<()> {
    match cmd {
        BankCommand::Status { model } => status(model),
        BankCommand::Push {
            model,
            url,
            embedded_path,
            collection,
            out,
        } => push(
            model,
            url.clone(),
            embedded_path.clone(),
            collection.clone(),
            out.as_deref(),
        ),
    }
}

fn status(model: &Path) -> Result<()> {
    let (header, banks) = model_file::read_banks(model)?;
    println!("model     {}", model.display());
    println!("index     {}", header.config.nn.name());
    for (i, loc) in header.index_locations.iter().enumerate() {
        println!("recorded  bank {i}: {loc}");
    }
    for (i, bank) in banks.iter().enumerate() {
        println!(
            "bank {i}    {} rows x {} dims, {:.1} MB",
            bank.nrows(),
            bank.ncols(),
            (bank.len() * 4) as f64 / 1e6
        );
    }
    remote_status(&header.config.nn, &banks)
}

#[cfg(feature = "qdrant")]
fn remote_status(nn: &IndexParams, banks: &[ndarray::Array2<f32>]) -> Result<()> {
    let IndexParams::Qdrant(q) = nn else {
        println!("where     in this process (the bank is in the model file)");
        return Ok(());
    };
    let builder = patchcore_qdrant::QdrantBuilder::from_params(q)?;
    for (i, bank) in banks.iter().enumerate() {
        let s = builder.status(bank.view())?;
        println!(
            "bank {i}    {} collection {}: {:?} (SHA-256 {})",
            s.location, s.collection, s.state, s.hash
        );
    }
    Ok(())
}

#[cfg(not(feature = "qdrant"))]
fn remote_status(nn: &IndexParams, _banks: &[ndarray::Array2<f32>]) -> Result<()> {
    match nn {
        IndexParams::Qdrant(_) => println!(
            "where     Qdrant (this build has no Qdrant client: build with --features qdrant \
             to query the collections)"
        ),
        _ => println!("where     in this process (the bank is in the model file)"),
    }
    Ok(())
}

#[cfg(feature = "qdrant")]
fn push(
    model: &Path,
    url: Option<String>,
    embedded_path: Option<PathBuf>,
    collection: Option<String>,
    out: Option<&Path>,
) -> Result<()> {
    use patchcore_core::Error;
    use patchcore_qdrant::{QdrantBuilder, QdrantParams};
    let (mut header, banks) = model_file::read_banks(model)?;
    if collection.is_some() && banks.len() > 1 {
        return Err(Error::InvalidArgument(format!(
            "{} holds {} banks (one per tile position): each needs its own collection, so \
             leave --collection out (patchcore-<bank hash> each)",
            model.display(),
            banks.len()
        )));
    }
    let mut params = match &header.config.nn {
        IndexParams::Qdrant(q) => q.clone(),
        _ => QdrantParams::default(),
    };
    if url.is_some() || embedded_path.is_some() {
        params.url = url;
        params.embedded_path = embedded_path;
    }
    if collection.is_some() {
        params.collection = collection;
    }
    let builder = QdrantBuilder::from_params(&params)?;
    let mut locations = Vec::new();
    for (i, bank) in banks.iter().enumerate() {
        let (index, before) = builder.push(bank.clone())?;
        let loc = patchcore_nn::NearestNeighborIndex::location(&index).unwrap_or_default();
        println!(
            "bank {i}: {} rows -> {loc} ({})",
            bank.nrows(),
            match before {
                patchcore_qdrant::CollectionState::Complete => "already there, reused",
                patchcore_qdrant::CollectionState::Partial { .. } => "completed",
                _ => "created",
            }
        );
        locations.push(loc);
    }
    header.config.nn = IndexParams::Qdrant(params);
    header.index_locations = locations;
    let all = ndarray::concatenate(
        ndarray::Axis(0),
        &banks.iter().map(|b| b.view()).collect::<Vec<_>>(),
    )
    .map_err(|e| Error::Shape(e.to_string()))?;
    let target = out.unwrap_or(model);
    model_file::write(target, &header, &all)?;
    println!("wrote {} (nn.kind = \"qdrant\")", target.display());
    Ok(())
}

#[cfg(not(feature = "qdrant"))]
fn push(
    _model: &Path,
    _url: Option<String>,
    _embedded_path: Option<PathBuf>,
    _collection: Option<String>,
    _out: Option<&Path>,
) -> Result<()> {
    Err(patchcore_core::Error::InvalidArgument(
        "`patchcore bank push` needs a build with Qdrant support: cargo build --release \
         --features qdrant (docs/SCALE_OUT.md)"
            .into(),
    ))
}
