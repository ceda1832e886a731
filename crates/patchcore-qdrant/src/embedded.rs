//! The in-process engine: qdrant-edge, one shard per collection under `nn.embedded_path`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use ndarray::{ArrayView2, Axis};
use patchcore_core::{Error, Result};
use qdrant_edge::{
    Condition, CountRequest, DEFAULT_VECTOR_NAME, Distance, EdgeConfig, EdgeShard,
    EdgeVectorParams, FieldCondition, Filter, HnswIndexConfig, JsonPath, Match, NamedQuery,
    Payload, PointId, PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum,
    SearchParams, SearchRequest, UpdateOperation, VectorInternal, VectorStructPersisted,
};
use rayon::prelude::*;

use crate::PAYLOAD_KEY;
use crate::backend::{Backend, Stored};

/// The file qdrant-edge writes beside a shard's segments.
const CONFIG_FILE: &str = "edge_config.json";

/// Shards open in this process, by folder: a shard holds its write-ahead log locked, so a
/// model loaded twice (or fitted, saved and loaded in one run) shares one handle.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<EdgeShard>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

pub(crate) struct Embedded {
    root: PathBuf,
    /// The shards this engine handle has opened, kept open while it lives.
    held: Mutex<HashMap<String, Arc<EdgeShard>>>,
}

impl Embedded {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn hold(&self, collection: &str, shard: Arc<EdgeShard>) -> Arc<EdgeShard> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(collection.to_string(), shard.clone());
        shard
    }

    fn folder(&self, collection: &str) -> PathBuf {
        self.root.join(collection)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::External(format!("{}: {what}: {e}", self.describe()))
    }

    /// The open shard of `collection`, opening it if it exists (`None` if it does not).
    fn shard(&self, collection: &str) -> Result<Option<Arc<EdgeShard>>> {
        if let Some(s) = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
        {
            return Ok(Some(s.clone()));
        }
        let dir = self.folder(collection);
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(&dir).and_then(Weak::upgrade) {
            return Ok(Some(self.hold(collection, s)));
        }
        if !dir.join(CONFIG_FILE).is_file() {
            return Ok(None);
        }
        let shard = Arc::new(
            EdgeShard::load(&dir, None)
                .map_err(|e| self.err(&format!("cannot open {}", dir.display()), e))?,
        );
        open.insert(dir, Arc::downgrade(&shard));
        Ok(Some(self.hold(collection, shard)))
    }

    fn existing(&self, collection: &str) -> Result<Arc<EdgeShard>> {
        self.shard(collection)?.ok_or_else(|| {
            Error::External(format!(
                "{}: collection `{collection}` does not exist (deleted while in use?)",
                self.describe()
            ))
        })
    }
}

fn hash_filter(hash: &str) -> Result<Filter> {
    let key = JsonPath::try_from(PAYLOAD_KEY)
        .map_err(|()| Error::External(format!("`{PAYLOAD_KEY}` is not a payload path")))?;
    Ok(Filter::new_must(Condition::Field(
        FieldCondition::new_match(key, Match::from(hash.to_string())),
    )))
}

fn search_params(hnsw: Option<(usize, usize)>) -> SearchParams {
    SearchParams {
        hnsw_ef: hnsw.map(|(_, ef)| ef),
        exact: hnsw.is_none(),
        ..Default::default()
    }
}

impl Backend for Embedded {
    fn describe(&self) -> String {
        format!("qdrant embedded {}", self.root.display())
    }

    fn stored(&self, collection: &str, hash: &str) -> Result<Option<Stored>> {
        let Some(shard) = self.shard(collection)? else {
            return Ok(None);
        };
        let count = |filter: Option<Filter>| {
            shard
                .count(CountRequest {
                    filter,
                    exact: true,
                })
                .map_err(|e| self.err("count", e))
        };
        let dim = shard
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map_or(0, |v| v.size);
        Ok(Some(Stored {
            points: count(None)?,
            of_this_bank: count(Some(hash_filter(hash)?))?,
            dim,
        }))
    }

    fn create(&self, collection: &str, dim: usize, hnsw: Option<(usize, usize)>) -> Result<()> {
        let dir = self.folder(collection);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut vector = EdgeVectorParams::builder(dim, Distance::Euclid).build();
        // Exact search needs no graph: m = 0 builds none.
        vector.hnsw_config = Some(HnswIndexConfig {
            m: hnsw.map_or(0, |(m, _)| m),
            ..Default::default()
        });
        let config = EdgeConfig {
            vectors: HashMap::from([(DEFAULT_VECTOR_NAME.to_string(), vector)]),
            ..Default::default()
        };
        let shard = Arc::new(
            EdgeShard::new(&dir, config)
                .map_err(|e| self.err(&format!("cannot create {}", dir.display()), e))?,
        );
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.insert(dir, Arc::downgrade(&shard));
        self.hold(collection, shard);
        Ok(())
    }

    fn upload(
        &self,
        collection: &str,
        first_id: u64,
        rows: ArrayView2<'_, f32>,
        hash: &str,
    ) -> Result<()> {
        let shard = self.existing(collection)?;
        let mut payload = serde_json::Map::new();
        payload.insert(PAYLOAD_KEY.into(), serde_json::Value::String(hash.into()));
        let payload = Payload::from(payload);
        let points = rows
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, r)| PointStructPersisted {
                id: PointId::NumId(first_id + i as u64),
                vector: VectorStructPersisted::Single(r.to_vec()),
                payload: Some(payload.clone()),
            })
            .collect();
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(points)),
            ))
            .map_err(|e| self.err("upload", e))
    }

    fn finish(&self, collection: &str, hnsw: Option<(usize, usize)>) -> Result<()> {
        let shard = self.existing(collection)?;
        if hnsw.is_some() {
            shard.optimize().map_err(|e| self.err("building HNSW", e))?;
        }
        shard.flush();
        Ok(())
    }

    fn search(
        &self,
        collection: &str,
        queries: ArrayView2<'_, f32>,
        k: usize,
        hnsw: Option<(usize, usize)>,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let shard = self.existing(collection)?;
        let params = search_params(hnsw);
        queries
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|q| {
                let request = SearchRequest {
                    query: QueryEnum::Nearest(NamedQuery::new(
                        VectorInternal::from(q.to_vec()),
                        DEFAULT_VECTOR_NAME,
                    )),
                    filter: None,
                    params: Some(params),
                    limit: k,
                    offset: 0,
                    with_payload: None,
                    with_vector: None,
                    score_threshold: None,
                };
                #[allow(deprecated)]
                let hits = shard.search(request).map_err(|e| self.err("search", e))?;
                hits.into_iter()
                    .map(|p| match p.id {
                        PointId::NumId(id) => Ok((id, p.score)),
                        other => Err(self.err("search", format!("unexpected point id {other}"))),
                    })
                    .collect()
            })
            .collect()
    }
}
