//! The two engines behind one internal trait: what the index needs of a Qdrant collection.

use ndarray::ArrayView2;
use patchcore_core::Result;

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
    fn upload(
        &self,
        collection: &str,
        first_id: u64,
        rows: ArrayView2<'_, f32>,
        hash: &str,
    ) -> Result<()>;
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
