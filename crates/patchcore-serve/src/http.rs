//! Routes, authentication and error responses.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use patchcore_data::{ImageRejection, decode_rgb_bytes};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::registry::{Job, Refused, Registry, Scored, Served};

/// Shared state of the routes.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub token: Option<String>,
    /// Decodes at once, at most one per core: more only adds threads and memory.
    pub decoders: Arc<tokio::sync::Semaphore>,
}

/// The web page, compiled in.
const INDEX_HTML: &str = include_str!("../assets/index.html");

/// An error response: a status, a kind for the metrics and a reason for the client.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.kind, "message": self.message})),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r.extensions_mut().insert(ErrorKind(self.kind));
        r
    }
}

/// The error kind of a response, read back by the metrics layer.
#[derive(Clone, Copy)]
struct ErrorKind(&'static str);

/// The status and kind of an image the decoder refused.
fn rejection(r: ImageRejection) -> ApiError {
    let status = match r {
        ImageRejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ImageRejection::UnknownFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageRejection::TooSmall { .. } | ImageRejection::Corrupt(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ImageRejection::Empty | ImageRejection::BadHeader(_) => StatusCode::BAD_REQUEST,
    };
    let kind = match r {
        ImageRejection::TooLarge { .. } => "image_too_large",
        _ => "bad_image",
    };
    ApiError::new(status, kind, r.to_string())
}

/// Byte-wise comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request carries the token: `Authorization: Bearer <token>`, or (for browsers,
/// which prompt for it) HTTP Basic with the token as the password.
fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(t) = v.strip_prefix("Bearer ") {
        return constant_time_eq(t.trim().as_bytes(), token.as_bytes());
    }
    if let Some(b) = v.strip_prefix("Basic ")
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim())
        && let Some(i) = raw.iter().position(|c| *c == b':')
    {
        return constant_time_eq(&raw[i + 1..], token.as_bytes());
    }
    false
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let open = matches!(req.uri().path(), "/healthz" | "/readyz");
    match &state.token {
        Some(t) if !open && !authorised(req.headers(), t) => {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send `Authorization: Bearer <token>` (the token of --token-file)",
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"patchcore\", charset=\"UTF-8\""),
            );
            r
        }
        _ => next.run(req).await,
    }
}

/// Counts every response by route and status, errors by kind.
async fn count(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let t = Instant::now();
    let path = req.uri().path().to_string();
    let route = if path.starts_with("/v1/models/") && path.ends_with("/predict") {
        "predict".to_string()
    } else {
        match path.as_str() {
            "/" | "/healthz" | "/readyz" | "/metrics" | "/v1/models" => path.clone(),
            _ => "other".to_string(),
        }
    };
    let r = next.run(req).await;
    state
        .metrics
        .request(&route, r.status().as_u16(), t.elapsed().as_secs_f64());
    if let Some(ErrorKind(k)) = r.extensions().get::<ErrorKind>() {
        state.metrics.error(k);
    } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state.metrics.error("body_too_large");
    } else if r.status().is_client_error() || r.status().is_server_error() {
        state.metrics.error("other");
    }
    r
}

/// The router over a state; `max_body` bounds every request body.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/models/{name}/predict", post(predict))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let n = state.registry.all().len();
    if n > 0 {
        (StatusCode::OK, format!("ready: {n} model(s)\n")).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no model loaded\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let queues: Vec<(String, usize)> = state
        .registry
        .all()
        .iter()
        .map(|m| (m.name.clone(), m.depth()))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&queues),
    )
        .into_response()
}

fn summary(m: &Served) -> serde_json::Value {
    let h = &m.header;
    json!({
        "name": m.name,
        "file": m.path.file_name().map(|f| f.to_string_lossy().into_owned()),
        "dataset": h.dataset,
        "num_train": h.num_train,
        "backbone": h.backbone.arch,
        "layers": h.backbone.layers,
        "weights_sha256": h.backbone.weights_sha256,
        "bank_rows": h.bank_rows,
        "bank_rows_full": h.bank_rows_full,
        "feature_dim": h.feature_dim,
        "input": {"resize": h.geometry.resize, "crop": h.geometry.crop},
        "threshold": h.threshold.as_ref().map(|t| t.value),
        "threshold_source": h.threshold.as_ref().map(|t| t.source.clone()),
        "score_range": h.score_range,
        "created_by": h.created_by,
        "format_version": h.format_version,
        "batch_size": m.model.batch_size(),
        "serve": {
            "batch_window_ms": m.serve.batch_window_ms,
            "queue_capacity": m.serve.queue_capacity,
            "request_timeout_ms": m.serve.request_timeout_ms,
        },
        "queue_depth": m.depth(),
        "loaded_at_unix": m.loaded_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = state.registry.all().iter().map(|m| summary(m)).collect();
    Json(json!({ "models": list }))
}

/// `?heatmap=png|overlay`.
#[derive(Debug, Deserialize, Default)]
pub struct PredictQuery {
    heatmap: Option<String>,
}

/// An error reading a body or a multipart field: 413 stays `body_too_large`, anything else
/// is `kind`.
fn read_error(status: StatusCode, kind: &'static str, message: String) -> ApiError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        kind
    };
    ApiError::new(status, kind, message)
}

/// The image bytes of a request: the raw body, or the first file field of a multipart form.
async fn image_bytes(req: Request, state: &Arc<AppState>) -> Result<Vec<u8>, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(req, state).await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_multipart",
                format!("malformed multipart request: {e}"),
            )
        })?;
        loop {
            match form.next_field().await {
                Ok(Some(field)) => {
                    let is_file = field.file_name().is_some()
                        || matches!(field.name(), Some("image") | Some("file"));
                    let bytes = field.bytes().await.map_err(|e| {
                        read_error(
                            e.status(),
                            "bad_multipart",
                            format!("cannot read the multipart field: {}", e.body_text()),
                        )
                    })?;
                    if is_file {
                        return Ok(bytes.to_vec());
                    }
                }
                Ok(None) => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_multipart",
                        "the multipart form has no file field (send the image as a field \
                         named `image` or with a file name)",
                    ));
                }
                Err(e) => {
                    return Err(read_error(
                        e.status(),
                        "bad_multipart",
                        format!("malformed multipart request: {}", e.body_text()),
                    ));
                }
            }
        }
    }
    let body = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            read_error(
                e.status(),
                "bad_body",
                format!("cannot read the request body: {}", e.body_text()),
            )
        })?;
    Ok(body.to_vec())
}

fn png_base64(img: &image::RgbImage) -> Result<String, ApiError> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot encode the heatmap: {e}"),
            )
        })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf.into_inner()))
}

/// `?heatmap=`: none, `png` or `overlay`.
fn heatmap_kind(q: &PredictQuery) -> Result<Option<String>, ApiError> {
    match q.heatmap.as_deref() {
        None | Some("") | Some("none") => Ok(None),
        Some(h @ ("png" | "overlay")) => Ok(Some(h.to_string())),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("heatmap=`{other}`: use png or overlay"),
        )),
    }
}

/// 404 naming the served models.
fn unknown_model(state: &AppState, name: &str) -> ApiError {
    let names: Vec<String> = state
        .registry
        .all()
        .iter()
        .map(|m| m.name.clone())
        .collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!("no model `{name}`; served: {names:?}"),
    )
}

/// 503 with Retry-After.
fn unavailable(message: String) -> ApiError {
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message);
    e.retry_after = Some(1);
    e
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

/// Reads and decodes the body (one decode per core at a time), queues the image for the
/// model's batcher and waits for its answer: `(scored, decode seconds, the network input for
/// an overlay)`.
async fn decode_and_score(
    served: &Served,
    state: &Arc<AppState>,
    req: Request,
    heatmap: Option<&str>,
) -> Result<(Scored, f64, Option<image::RgbImage>), ApiError> {
    let on_the_way = served.incoming();
    let bytes = image_bytes(req, state).await?;
    let limits = served.model.limits();
    let decoder = state
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| internal(e.to_string()))?;
    let td = Instant::now();
    let image = tokio::task::spawn_blocking(move || {
        let _decoder = decoder;
        decode_rgb_bytes(&bytes, &limits)
    })
    .await
    .map_err(|e| internal(e.to_string()))?
    .map_err(rejection)?;
    let decode_seconds = td.elapsed().as_secs_f64();
    let (tx, rx) = oneshot::channel();
    let input = heatmap
        .filter(|h| *h == "overlay")
        .map(|_| served.model.geometry().apply_rgb(&image));
    served
        .submit(Job {
            image,
            want_map: heatmap.is_some(),
            enqueued: Instant::now(),
            reply: tx,
        })
        .map_err(|r| {
            unavailable(match r {
                Refused::Full => format!(
                    "the queue of `{}` is full ({} requests): retry later",
                    served.name, served.serve.queue_capacity
                ),
                Refused::Gone => "the model is being replaced: retry".to_string(),
            })
        })?;
    // Queued: the batcher sees the job itself now.
    drop(on_the_way);
    let scored = rx
        .await
        .map_err(|_| internal("the model task ended before answering"))?
        .map_err(internal)?;
    Ok((scored, decode_seconds, input))
}

/// The heatmap of a scored image as a PNG in the answer.
fn heatmap_json(
    served: &Served,
    kind: &str,
    map: &ndarray::Array2<f32>,
    input: Option<image::RgbImage>,
) -> Result<serde_json::Value, ApiError> {
    let range = served.model.score_range().unwrap_or_else(|| {
        map.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    });
    let img = match (kind, input) {
        ("overlay", Some(input)) => patchcore_model::render::heatmap_overlay(&input, map, range),
        _ => patchcore_model::render::heatmap_image(map, range),
    };
    Ok(json!({
        "kind": kind,
        "format": "png",
        "encoding": "base64",
        "width": img.width(),
        "height": img.height(),
        "range": [range.0, range.1],
        "data": png_base64(&img)?,
    }))
}

async fn predict(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<PredictQuery>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t0 = Instant::now();
    let served = state
        .registry
        .get(&name)
        .ok_or_else(|| unknown_model(&state, &name))?;
    let heatmap = heatmap_kind(&q)?;
    // Admission before the body is read: an overloaded model costs a refused request
    // nothing but its headers.
    let Some(_permit) = served.admit() else {
        return Err(unavailable(format!(
            "`{name}` holds its limit of {} waiting requests: retry later",
            served.serve.queue_capacity
        )));
    };
    let timeout = Duration::from_millis(served.serve.request_timeout_ms);
    let work = decode_and_score(&served, &state, req, heatmap.as_deref());
    let (scored, decode_seconds, input) =
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "no answer within {} ms (serve.request_timeout_ms)",
                    served.serve.request_timeout_ms
                ),
            )
        })??;
    let h = &served.header;
    let verdict = served
        .model
        .verdict(scored.score)
        .map(|v| if v { "anomalous" } else { "normal" });
    let mut out = json!({
        "model": served.name,
        "score": scored.score,
        "normalized_score": h.normalized(scored.score),
        "verdict": verdict,
        "threshold": h.threshold.as_ref().map(|t| t.value),
        "batch_size": scored.batch_size,
        "timings_ms": {
            "decode": decode_seconds * 1e3,
            "queue": scored.queue_seconds * 1e3,
            "inference": scored.inference_seconds * 1e3,
            "total": t0.elapsed().as_secs_f64() * 1e3,
        },
    });
    if let (Some(kind), Some(map)) = (heatmap.as_deref(), scored.map.as_ref()) {
        out["heatmap"] = heatmap_json(&served, kind, map, input)?;
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer s3cr3t".parse().unwrap());
        assert!(authorised(&h, "s3cr3t"));
        assert!(!authorised(&h, "s3cr3"));
        // Basic with the token as the password (what a browser sends after its prompt).
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cr3t");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert!(authorised(&h, "s3cr3t"));
        h.insert(header::AUTHORIZATION, "Token s3cr3t".parse().unwrap());
        assert!(!authorised(&h, "s3cr3t"));
    }
}
