//! A Qdrant server or cluster through qdrant-client (gRPC): one client and one small tokio
//! runtime per builder, every call bounded by `nn.timeout_ms`.

use std::time::Duration;

use ndarray::ArrayView2;
use patchcore_core::{Error, Result};
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, Distance, Filter,
    HnswConfigDiffBuilder, PointStruct, SearchBatchPointsBuilder, SearchParamsBuilder,
    SearchPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};

use crate::PAYLOAD_KEY;
use crate::backend::{Backend, Stored};
use patchcore_nn::QdrantSettings;

pub(crate) struct Server {
    url: String,
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
}

impl Server {
    /// Makes the client; nothing is sent until the first call.
    pub(crate) fn connect(url: &str, s: &QdrantSettings) -> Result<Self> {
        let mut config = Qdrant::from_url(url)
            .timeout(s.timeout())
            .connect_timeout(s.timeout().min(Duration::from_secs(10)))
            .skip_compatibility_check();
        if let Some(key) = s.api_key()? {
            config = config.api_key(key);
        }
        let client = config
            .build()
            .map_err(|e| Error::config("nn.url", format!("{url}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("patchcore-qdrant")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::External(format!("cannot start the Qdrant client's runtime: {e}"))
            })?;
        Ok(Self {
            url: url.to_string(),
            client,
            runtime,
            timeout: s.timeout(),
        })
    }

    /// Runs one request to completion within the deadline.
    fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = std::result::Result<T, QdrantError>>,
    ) -> Result<T> {
        let deadline = self.timeout + Duration::from_secs(1);
        match self
            .runtime
            .block_on(async { tokio::time::timeout(deadline, f).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(&self.describe(), what, e)),
            Err(_) => Err(Error::Unavailable {
                service: self.describe(),
                message: format!(
                    "{what}: no answer within {} ms (nn.timeout_ms)",
                    deadline.as_millis()
                ),
            }),
        }
    }
}

/// gRPC codes that say "not now" become [`Error::Unavailable`]; the rest say what was wrong.
pub(crate) fn map_error(service: &str, what: &str, e: QdrantError) -> Error {
    use tonic::Code;
    let status = match &e {
        // qdrant-client reports a failed connection as `Internal` "Failed to connect to ...".
        QdrantError::ResponseError { status }
            if status.code() == Code::Internal
                && status.message().starts_with("Failed to connect") =>
        {
            Some(Code::Unavailable)
        }
        QdrantError::ResponseError { status } => Some(status.code()),
        QdrantError::ResourceExhaustedError { .. } => Some(Code::ResourceExhausted),
        _ => None,
    };
    match status {
        Some(
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Aborted,
        ) => Error::Unavailable {
            service: service.to_string(),
            message: format!("{what}: {e}"),
        },
        Some(Code::Unauthenticated | Code::PermissionDenied) => Error::config(
            "nn.api_key_env",
            format!(
                "{service} refused the API key ({what}: {e}): set the variable named by \
                 nn.api_key_env, or nn.api_key_file"
            ),
        ),
        _ => Error::External(format!("{service}: {what}: {e}")),
    }
}

impl Backend for Server {
    fn describe(&self) -> String {
        format!("qdrant {}", self.url)
    }

    fn stored(&self, collection: &str, hash: &str) -> Result<Option<Stored>> {
        if !self.call(
            "collection_exists",
            self.client.collection_exists(collection),
        )? {
            return Ok(None);
        }
        let info = self.call("collection_info", self.client.collection_info(collection))?;
        let dim = info
            .result
            .and_then(|r| r.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .and_then(|c| match c {
                VectorsConfigKind::Params(p) => Some(p.size as usize),
                VectorsConfigKind::ParamsMap(_) => None,
            })
            .ok_or_else(|| {
                Error::config(
                    "nn.collection",
                    format!(
                        "collection `{collection}` on {} has named vectors: it was not made \
                         by patchcore",
                        self.describe()
                    ),
                )
            })?;
        let count = |filter: Option<Filter>| {
            let mut req = CountPointsBuilder::new(collection).exact(true);
            if let Some(f) = filter {
                req = req.filter(f);
            }
            self.call("count", self.client.count(req))
                .map(|r| r.result.map_or(0, |c| c.count as usize))
        };
        Ok(Some(Stored {
            points: count(None)?,
            of_this_bank: count(Some(Filter::must([Condition::matches(
                PAYLOAD_KEY,
                hash.to_string(),
            )])))?,
            dim,
        }))
    }

    fn create(&self, collection: &str, dim: usize, hnsw: Option<(usize, usize)>) -> Result<()> {
        // Exact search needs no graph: m = 0 builds none.
        let m = hnsw.map_or(0, |(m, _)| m as u64);
        let req = CreateCollectionBuilder::new(collection)
            .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Euclid))
            .hnsw_config(HnswConfigDiffBuilder::default().m(m));
        self.call("create_collection", self.client.create_collection(req))
            .map(|_| ())
    }

    fn upload(
        &self,
        collection: &str,
        first_id: u64,
        rows: ArrayView2<'_, f32>,
        hash: &str,
    ) -> Result<()> {
        let points: Vec<PointStruct> = rows
            .rows()
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let mut payload = Payload::new();
                payload.insert(PAYLOAD_KEY, hash.to_string());
                PointStruct::new(first_id + i as u64, r.to_vec(), payload)
            })
            .collect();
        let req = UpsertPointsBuilder::new(collection, points).wait(true);
        self.call("upsert", self.client.upsert_points(req))
            .map(|_| ())
    }

    fn finish(&self, _collection: &str, _hnsw: Option<(usize, usize)>) -> Result<()> {
        // Upserts waited for; the server builds HNSW in the background.
        Ok(())
    }

    fn search(
        &self,
        collection: &str,
        queries: ArrayView2<'_, f32>,
        k: usize,
        hnsw: Option<(usize, usize)>,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let mut params = SearchParamsBuilder::default().exact(hnsw.is_none());
        if let Some((_, ef)) = hnsw {
            params = params.hnsw_ef(ef as u64);
        }
        let params = params.build();
        let mut out = Vec::with_capacity(queries.nrows());
        // One request per image while its queries fit gRPC's common 4 MiB message limit
        // (784 patches up to d = 1100); wider ones in as few requests as fit.
        let per_request = (REQUEST_BYTES / (queries.ncols() * 4 + 64)).max(1);
        for chunk in queries.axis_chunks_iter(ndarray::Axis(0), per_request) {
            out.extend(self.search_once(collection, chunk, k, &params)?);
        }
        Ok(out)
    }
}

/// Query bytes per search request: under the 4 MiB default message limit of gRPC servers.
const REQUEST_BYTES: usize = 3_500_000;

impl Server {
    fn search_once(
        &self,
        collection: &str,
        queries: ArrayView2<'_, f32>,
        k: usize,
        params: &qdrant_client::qdrant::SearchParams,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let searches = queries
            .rows()
            .into_iter()
            .map(|q| {
                SearchPointsBuilder::new(collection, q.to_vec(), k as u64)
                    .params(params.clone())
                    .build()
            })
            .collect::<Vec<_>>();
        let req = SearchBatchPointsBuilder::new(collection, searches)
            .timeout(self.timeout.as_secs().max(1));
        let resp = self.call("search_batch", self.client.search_batch_points(req))?;
        resp.result
            .into_iter()
            .map(|batch| {
                batch
                    .result
                    .into_iter()
                    .map(|p| match p.id.and_then(|i| i.point_id_options) {
                        Some(PointIdOptions::Num(id)) => Ok((id, p.score)),
                        other => Err(Error::External(format!(
                            "{}: unexpected point id {other:?}",
                            self.describe()
                        ))),
                    })
                    .collect()
            })
            .collect()
    }
}
