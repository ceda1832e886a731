//! The builder, the index and the collection life cycle (create, reuse, complete, refuse).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{Array2, ArrayView1, ArrayView2, s};
use patchcore_core::{Error, Result};
use patchcore_nn::{
    IndexBuilder, NearestNeighborIndex, Neighbors, QdrantParams, QdrantSettings, check_query,
};

use crate::backend::{Backend, Stored};
use crate::engines;
use crate::mapping::{bank_hash, default_collection, neighbors_from_hits};

/// Builds [`QdrantIndex`]es: `nn.kind = "qdrant"`.
pub struct QdrantBuilder {
    settings: QdrantSettings,
    /// One client (or engine handle) for every bank this builder builds.
    backend: Mutex<Option<Arc<dyn Backend>>>,
}

impl std::fmt::Debug for QdrantBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantBuilder")
            .field("settings", &self.settings)
            .finish()
    }
}

/// What a collection holds compared with a bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectionState {
    /// No such collection: building the index creates it.
    Missing,
    /// Exactly this bank: building the index uploads nothing.
    Complete,
    /// Some of this bank's rows (an interrupted upload): building the index completes it.
    Partial {
        /// Points present.
        points: usize,
    },
    /// Something else (another bank, another width): building the index refuses it.
    Conflict(String),
    /// The server could not be reached.
    Unreachable(String),
}

/// `patchcore bank status`: where a bank's index lives and what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankStatus {
    /// `qdrant http://host:6334` or `qdrant embedded /path`.
    pub location: String,
    /// The collection.
    pub collection: String,
    /// Bank rows.
    pub rows: usize,
    /// Bank width.
    pub dim: usize,
    /// The bank's SHA-256.
    pub hash: String,
    /// What the collection holds.
    pub state: CollectionState,
}

impl QdrantBuilder {
    /// A builder with checked settings; connects at the first build.
    pub fn new(settings: QdrantSettings) -> Self {
        Self {
            settings,
            backend: Mutex::new(None),
        }
    }

    /// Checks the keys and makes the builder.
    pub fn from_params(params: &QdrantParams) -> Result<Self> {
        Ok(Self::new(params.check()?))
    }

    /// The settings.
    pub fn settings(&self) -> &QdrantSettings {
        &self.settings
    }

    fn backend(&self) -> Result<Arc<dyn Backend>> {
        let mut b = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = b.as_ref() {
            return Ok(b.clone());
        }
        let made = engines::open(&self.settings)?;
        *b = Some(made.clone());
        Ok(made)
    }

    /// The collection `bank` goes to.
    pub fn collection_for(&self, hash: &str) -> String {
        self.settings
            .collection()
            .map(str::to_owned)
            .unwrap_or_else(|| default_collection(hash))
    }

    /// What the collection of `bank` holds; creates and uploads nothing.
    pub fn status(&self, bank: ArrayView2<'_, f32>) -> Result<BankStatus> {
        let hash = bank_hash(bank);
        let collection = self.collection_for(&hash);
        let backend = self.backend()?;
        let state = match backend.stored(&collection, &hash) {
            Ok(s) => classify(s, bank.nrows(), bank.ncols()),
            Err(Error::Unavailable { message, .. }) => CollectionState::Unreachable(message),
            Err(e) => return Err(e),
        };
        Ok(BankStatus {
            location: backend.describe(),
            collection,
            rows: bank.nrows(),
            dim: bank.ncols(),
            hash,
            state,
        })
    }

    /// Builds the index and makes sure the collection holds the bank now (unlike
    /// [`IndexBuilder::build`], an unreachable server is an error): `patchcore bank push`.
    pub fn push(&self, bank: Array2<f32>) -> Result<(QdrantIndex, CollectionState)> {
        let index = self.index(bank)?;
        let before = index.connect()?;
        Ok((index, before))
    }

    fn index(&self, bank: Array2<f32>) -> Result<QdrantIndex> {
        if bank.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "memory bank of shape {:?} is empty",
                bank.dim()
            )));
        }
        if bank.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "memory bank holds NaN or infinite values".into(),
            ));
        }
        let hash = bank_hash(bank.view());
        Ok(QdrantIndex {
            collection: self.collection_for(&hash),
            backend: self.backend()?,
            hnsw: self.settings.hnsw(),
            upload_batch: self.settings.upload_batch(),
            hash,
            bank,
            ready: AtomicBool::new(false),
            connecting: Mutex::new(()),
        })
    }
}

impl IndexBuilder for QdrantBuilder {
    fn name(&self) -> &str {
        "qdrant"
    }

    /// Builds the index; creates, completes or reuses the collection now if the server
    /// answers, else at the first search (an unreachable server is logged, not an error).
    fn build(&self, bank: Array2<f32>) -> Result<Box<dyn NearestNeighborIndex>> {
        let index = self.index(bank)?;
        match index.connect() {
            Ok(_) => {}
            Err(Error::Unavailable { service, message }) => tracing::warn!(
                "{service} is unavailable ({message}); the index of collection `{}` connects \
                 at its first search",
                index.collection
            ),
            Err(e) => return Err(e),
        }
        Ok(Box::new(index))
    }
}

fn classify(s: Option<Stored>, rows: usize, dim: usize) -> CollectionState {
    match s {
        None => CollectionState::Missing,
        Some(s) if s.dim != dim => CollectionState::Conflict(format!(
            "it holds vectors of width {}, the bank's are {dim} wide",
            s.dim
        )),
        Some(s) if s.of_this_bank != s.points => CollectionState::Conflict(format!(
            "{} of its {} points belong to another bank",
            s.points - s.of_this_bank,
            s.points
        )),
        Some(s) if s.points == rows => CollectionState::Complete,
        Some(s) if s.points < rows => CollectionState::Partial { points: s.points },
        Some(s) => CollectionState::Conflict(format!(
            "it holds {} points, the bank {rows} rows",
            s.points
        )),
    }
}

/// A memory bank searched in a Qdrant collection; see the crate docs.
pub struct QdrantIndex {
    bank: Array2<f32>,
    hash: String,
    collection: String,
    backend: Arc<dyn Backend>,
    hnsw: Option<(usize, usize)>,
    upload_batch: usize,
    ready: AtomicBool,
    connecting: Mutex<()>,
}

impl QdrantIndex {
    /// The collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The bank's SHA-256.
    pub fn bank_hash(&self) -> &str {
        &self.hash
    }

    /// Makes sure the collection holds the bank; returns what it held before.
    fn connect(&self) -> Result<CollectionState> {
        let _one = self.connecting.lock().unwrap_or_else(|p| p.into_inner());
        if self.ready.load(Ordering::Acquire) {
            return Ok(CollectionState::Complete);
        }
        let (rows, dim) = self.bank.dim();
        let before = classify(
            self.backend.stored(&self.collection, &self.hash)?,
            rows,
            dim,
        );
        match &before {
            CollectionState::Complete => {}
            CollectionState::Missing | CollectionState::Partial { .. } => {
                if before == CollectionState::Missing {
                    self.backend.create(&self.collection, dim, self.hnsw)?;
                }
                self.upload()?;
                let after = classify(
                    self.backend.stored(&self.collection, &self.hash)?,
                    rows,
                    dim,
                );
                if after != CollectionState::Complete {
                    return Err(self.conflict(&format!(
                        "after uploading the bank it is {after:?} (written to by someone else \
                         at the same time?)"
                    )));
                }
            }
            CollectionState::Conflict(why) => return Err(self.conflict(why)),
            CollectionState::Unreachable(m) => {
                return Err(Error::Unavailable {
                    service: self.backend.describe(),
                    message: m.clone(),
                });
            }
        }
        self.ready.store(true, Ordering::Release);
        Ok(before)
    }

    fn upload(&self) -> Result<()> {
        let rows = self.bank.nrows();
        let mut start = 0;
        while start < rows {
            let end = (start + self.upload_batch).min(rows);
            self.backend.upload(
                &self.collection,
                start as u64,
                self.bank.slice(s![start..end, ..]),
                &self.hash,
            )?;
            start = end;
        }
        self.backend.finish(&self.collection, self.hnsw)?;
        tracing::info!(
            "uploaded {rows} bank rows to collection `{}` ({})",
            self.collection,
            self.backend.describe()
        );
        Ok(())
    }

    fn conflict(&self, why: &str) -> Error {
        Error::config(
            "nn.collection",
            format!(
                "collection `{}` ({}) does not hold this bank ({} rows, SHA-256 {}): {why}. \
                 It is left as it is: name another collection (nn.collection) or delete it",
                self.collection,
                self.backend.describe(),
                self.bank.nrows(),
                &self.hash[..16]
            ),
        )
    }
}

impl NearestNeighborIndex for QdrantIndex {
    fn name(&self) -> &str {
        "qdrant"
    }

    fn len(&self) -> usize {
        self.bank.nrows()
    }

    fn dim(&self) -> usize {
        self.bank.ncols()
    }

    fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.bank.row(i)
    }

    fn search(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Neighbors> {
        let k = check_query(self, &queries, k)?;
        if queries.nrows() == 0 {
            return neighbors_from_hits(Vec::new(), k, self.len());
        }
        if !self.ready.load(Ordering::Acquire) {
            self.connect()?;
        }
        let hits = self
            .backend
            .search(&self.collection, queries, k, self.hnsw)?;
        if hits.len() != queries.nrows() {
            return Err(Error::External(format!(
                "{} answered {} result lists for {} queries",
                self.backend.describe(),
                hits.len(),
                queries.nrows()
            )));
        }
        neighbors_from_hits(hits, k, self.len())
    }

    fn location(&self) -> Option<String> {
        Some(format!(
            "{} collection {}",
            self.backend.describe(),
            self.collection
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_classified_against_the_bank() {
        let st = |points, of_this_bank, dim| {
            Some(Stored {
                points,
                of_this_bank,
                dim,
            })
        };
        assert_eq!(classify(None, 10, 4), CollectionState::Missing);
        assert_eq!(classify(st(10, 10, 4), 10, 4), CollectionState::Complete);
        assert_eq!(
            classify(st(3, 3, 4), 10, 4),
            CollectionState::Partial { points: 3 }
        );
        assert_eq!(
            classify(st(0, 0, 4), 10, 4),
            CollectionState::Partial { points: 0 }
        );
        for s in [st(10, 9, 4), st(10, 10, 8), st(0, 0, 8), st(12, 12, 4)] {
            assert!(
                matches!(classify(s, 10, 4), CollectionState::Conflict(_)),
                "{s:?}"
            );
        }
    }

    #[cfg(not(feature = "embedded"))]
    #[test]
    fn without_an_engine_the_error_names_the_feature() {
        let b = QdrantBuilder::from_params(&QdrantParams {
            embedded_path: Some(std::env::temp_dir().join("pc-q-none")),
            ..Default::default()
        })
        .unwrap();
        let bank = Array2::from_shape_fn((4, 2), |(i, j)| (i + j) as f32);
        let e = b.build(bank).err().unwrap().to_string();
        assert!(e.contains("feature `qdrant`"), "{e}");
        assert!(
            b.build(Array2::zeros((0, 2))).is_err(),
            "an empty bank is refused"
        );
    }
}
