//! The two engines behind one internal trait: what the index needs of a Qdrant collection.

use std::sync::Arc;

use ndarray::ArrayView2;
use patchcore_core::{Error, Result};
use patchcore_nn::{QdrantLocation, QdrantSettings};

/// What a collection holds, as far as the index cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Points in the collection.
    pub points: usize,
    /// Points whose payload names the bank being built.
    pub of_this_bank: usize,
    /// Vector width of the collection.
    pub dim: usize,
}

/// One engine: a server through gRPC or the in-process engine.
pub(crate) trait Backend: Send + Sync {
    /// `qdrant http://host:6334` or `qdrant embedded /path`, for messages.
    fn describe(&self) -> String;
    /// The collection's content (`None`: it does not exist).
    fn stored(&self, collection: &str, hash: &str) -> Result<Option<Stored>>;
    /// Creates an empty collection of `dim`-wide Euclidean vectors (`hnsw`: `(m, ef)`,
    /// `None`: exact search only, no graph built).
    fn create(&self, collection: &str, dim: usize, hnsw: Option<(usize, usize)>) -> Result<()>;
    /// Upserts `rows` as points `first_id..`, payload `PAYLOAD_KEY = hash`.
    fn upload(&self, collection: &str, first_id: u64, rows: ArrayView2<'_, f32>, hash: &str)
    -> Result<()>;
    /// After the last upload: make the points durable and searchable (flush, build HNSW).
    fn finish(&self, collection: &str, hnsw: Option<(usize, usize)>) -> Result<()>;
    /// The `k` best `(id, Euclidean distance)` per query, all queries in one request.
    fn search(
        &self,
        collection: &str,
        queries: ArrayView2<'_, f32>,
        k: usize,
        hnsw: Option<(usize, usize)>,
    ) -> Result<Vec<Vec<(u64, f32)>>>;
}

/// The engine the settings name, if this build has it.
pub(crate) fn open(settings: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    match settings.location() {
        QdrantLocation::Embedded(path) => open_embedded(path, settings),
        QdrantLocation::Server(url) => open_server(url, settings),
    }
}

#[cfg(feature = "embedded")]
fn open_embedded(path: &std::path::Path, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::embedded::Embedded::new(path)))
}

#[cfg(not(feature = "embedded"))]
fn open_embedded(path: &std::path::Path, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Err(Error::config(
        "nn.embedded_path",
        format!(
            "{}: this build has no in-process Qdrant engine; build with the cargo feature \
             `qdrant` (patchcore) or `embedded` (patchcore-qdrant)",
            path.display()
        ),
    ))
}

#[cfg(feature = "server")]
fn open_server(url: &str, s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::server::Server::connect(url, s)?))
}

#[cfg(not(feature = "server"))]
fn open_server(url: &str, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Err(Error::config(
        "nn.url",
        format!(
            "{url}: this build has no Qdrant client; build with the cargo feature `qdrant` \
             (patchcore) or `server` (patchcore-qdrant)"
        ),
    ))
}
