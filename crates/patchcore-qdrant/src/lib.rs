//! The memory bank in a Qdrant collection: a [`NearestNeighborIndex`] for banks that outgrow
//! one machine or are shared by many stations.
//!
//! [`QdrantBuilder`] (an [`IndexBuilder`], made from the `[nn]` keys of `kind = "qdrant"`,
//! [`QdrantSettings`]) builds a [`QdrantIndex`] over a bank:
//!
//! * **Where.** A server or cluster by gRPC URL (feature `server`, qdrant-client), or the same
//!   engine in-process under a folder (feature `embedded`, qdrant-edge, one shard per
//!   collection). Without either feature the crate is the logic below, and building an index
//!   says which feature is missing.
//! * **Which collection.** `nn.collection`, else `patchcore-` and the first 16 hex digits of
//!   the bank's SHA-256 ([`bank_hash`]), so each bank (each seed, each tile position) has its
//!   own and twenty stations loading one model file share one collection.
//! * **Upload once.** [`IndexBuilder::build`] creates the collection (Euclidean distance,
//!   point id = bank row, payload `patchcore_bank` = the bank's hash) and uploads the rows in
//!   batches of `nn.upload_batch`, unless it already holds exactly this bank (as many points
//!   as rows, all with this hash): then it is reused and nothing is uploaded. A collection
//!   holding fewer points of this bank (an interrupted upload) is completed; one holding
//!   anything else is refused, never overwritten.
//! * **Search.** All queries of one call (one image's patches) go as one batched request;
//!   answers are mapped to the index contract (Euclidean distances, not squared, ascending;
//!   ids checked against the bank) by [`neighbors_from_hits`].
//! * **Rows stay local.** The index keeps the bank it was built from, so
//!   [`NearestNeighborIndex::row`] (eq. 7 of the paper needs the neighbours of the nearest
//!   bank row) costs no round trip; the model file holds the bank anyway.
//! * **Unreachable.** A server that cannot be reached or does not answer within
//!   `nn.timeout_ms` gives [`Error::Unavailable`]. If it is down when a model is loaded, the
//!   index is still built and connects (creating or checking the collection) at its first
//!   search, so a service starts and answers 503 until the cluster is back.

#![warn(missing_docs)]

mod backend;
mod engines;
mod index;
mod mapping;

#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "server")]
mod server;

pub use backend::Stored;
pub use index::{BankStatus, CollectionState, QdrantBuilder, QdrantIndex};
pub use mapping::{bank_hash, default_collection, neighbors_from_hits};
pub use patchcore_nn::{QdrantLocation, QdrantParams, QdrantSettings};

#[cfg(doc)]
use patchcore_core::Error;
#[cfg(doc)]
use patchcore_nn::{IndexBuilder, NearestNeighborIndex};

/// The payload key every point carries: the hash of the bank it belongs to.
pub const PAYLOAD_KEY: &str = "patchcore_bank";
