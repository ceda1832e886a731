//! Routes, authentication, request checks and the metrics of every answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::conn::ConflictingFraming;
use crate::error::{ApiError, ErrorKind};
use crate::predict::predict;
use crate::registry::Served;
use crate::state::AppState;

/// The web page, compiled in.
const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Equality whose time depends on neither where the inputs differ nor whether their lengths
/// do: the SHA-256 digests (fixed length) are compared byte by byte without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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

/// 400 for requests the HTTP spec says to refuse: HTTP/1.1 without `Host` (RFC 9112 §3.2),
/// and both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3; a smuggling shape).
async fn framing(req: Request, next: Next) -> Response {
    if req.extensions().get::<ConflictingFraming>().is_some() {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_framing",
            "the request has both Content-Length and Transfer-Encoding: send one",
        )
        .into_response();
    }
    if req.version() == Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_framing",
            "an HTTP/1.1 request needs a Host header",
        )
        .into_response();
    }
    next.run(req).await
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
        .layer(middleware::from_fn(framing))
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
        "tiling": m.model.tiling().map(|t| json!({
            "mode": t.mode(),
            "tile": t.tile(),
            "stride": t.stride(),
            "blend": t.blend(),
            "image_size": h.tiled.as_ref().and_then(|b| b.image_size),
            "banks": h.tiled.as_ref().map(|b| b.bank_rows.len()),
        })),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
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
