//! `POST /v1/models/{name}/predict`: body, admission, decode budget, queue, answer.
//!
//! The order bounds what a client can hold:
//! 1. the body is read whole under the size limit and the minimum rate ([`crate::body`]),
//!    holding only the connection;
//! 2. the request takes one of the model's admission slots (503 when none is free);
//! 3. the image header is read and the decode's peak memory reserved from the server-wide
//!    decode budget (413 when it exceeds the whole budget, else it waits its turn);
//! 4. on the blocking pool, the image is decoded, resized to the model's `resize x resize`
//!    (all the model needs: the crop follows) and the full-size decode dropped, releasing
//!    the reservation;
//! 5. the small image waits in the model's queue for the batcher.
//!
//! So memory is bounded by the decode budget plus `queue_capacity` resized images per model,
//! whatever the images' sizes. Heatmaps are rendered and encoded on the blocking pool too.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use base64::Engine as _;
use patchcore_data::{decode_rgb_bytes, probe_bytes};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::body::image_bytes;
use crate::error::{ApiError, index_unavailable, internal, rejection, unavailable};
use crate::registry::{Job, Refused, Scored, Served};
use crate::state::AppState;

/// `?heatmap=png|overlay`.
#[derive(Debug, Deserialize, Default)]
pub struct PredictQuery {
    heatmap: Option<String>,
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

/// Runs image work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(format!("image task failed: {e}")))
}

/// The decoded image resized for the model (as decoded for a tiled model), the network input
/// for an overlay, and for a tiled model the budget reservation of its full-size image, held
/// until it is scored.
type Prepared = (
    image::RgbImage,
    Option<image::RgbImage>,
    Option<tokio::sync::OwnedSemaphorePermit>,
);

/// Reserves the decode's peak memory from the budget, then decodes and resizes on the
/// blocking pool (one decode per core at a time): `(prepared, decode seconds)`.
async fn decode_within_budget(
    served: &Served,
    state: &Arc<AppState>,
    bytes: Vec<u8>,
    overlay: bool,
) -> Result<(Prepared, f64), ApiError> {
    let limits = served.model.limits();
    let bytes = Arc::new(bytes);
    let probe = {
        let bytes = bytes.clone();
        blocking(move || probe_bytes(&bytes, &limits))
            .await?
            .map_err(rejection)?
    };
    let kib = probe.peak_rgb_bytes.div_ceil(1024);
    if kib > state.budget_kib as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
            format!(
                "{}x{} needs {} MiB to decode, more than the service's decode budget of {} MiB \
                 (--decode-budget-mb); refused before decoding",
                probe.width,
                probe.height,
                kib.div_ceil(1024),
                state.budget_kib / 1024
            ),
        ));
    }
    let reserved = state
        .budget
        .clone()
        .acquire_many_owned(kib as u32)
        .await
        .map_err(|e| internal(e.to_string()))?;
    let decoder = state
        .decoders
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| internal(e.to_string()))?;
    let geometry = served.model.geometry();
    let tiled = served.model.tiling().is_some();
    if tiled {
        served
            .model
            .check_image_size(probe.width, probe.height)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "image_size",
                    e.to_string(),
                )
            })?;
    }
    let td = Instant::now();
    let prepared = blocking(move || {
        let _decoder = decoder;
        let full = decode_rgb_bytes(&bytes, &limits)?;
        if tiled {
            // Tiles are cut from the image as decoded: it stays whole, and so does its share
            // of the decode budget until the model has scored it.
            let input = overlay.then(|| full.clone());
            return Ok((full, input, Some(reserved)));
        }
        drop(reserved);
        let held = geometry.resize_rgb(&full);
        drop(full);
        let input = overlay.then(|| geometry.apply_rgb(&held));
        Ok((held, input, None))
    })
    .await?
    .map_err(rejection)?;
    Ok((prepared, td.elapsed().as_secs_f64()))
}

/// Admits the request, decodes it within the budget, queues it for the model's batcher and
/// waits for its answer: `(scored, decode seconds, the network input for an overlay)`.
async fn admit_decode_and_score(
    served: &Served,
    state: &Arc<AppState>,
    bytes: Vec<u8>,
    heatmap: Option<&str>,
) -> Result<(Scored, f64, Option<image::RgbImage>), ApiError> {
    let Some(_permit) = served.admit() else {
        return Err(unavailable(format!(
            "`{}` holds its limit of {} waiting requests: retry later",
            served.name, served.serve.queue_capacity
        )));
    };
    let on_the_way = served.incoming();
    let ((image, input, _held_budget), decode_seconds) =
        decode_within_budget(served, state, bytes, heatmap == Some("overlay")).await?;
    let (tx, rx) = oneshot::channel();
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
        .map_err(|e| {
            if e.unavailable {
                index_unavailable(e.message)
            } else {
                internal(e.message)
            }
        })?;
    Ok((scored, decode_seconds, input))
}

/// The heatmap of a scored image as a base64 PNG (rendered on the blocking pool).
async fn heatmap_json(
    served: &Served,
    kind: &str,
    map: ndarray::Array2<f32>,
    input: Option<image::RgbImage>,
) -> Result<serde_json::Value, ApiError> {
    let range = served.model.score_range().unwrap_or_else(|| {
        map.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            })
    });
    let overlay = kind == "overlay";
    let (w, h, png) = blocking(move || {
        let img = match (overlay, input) {
            (true, Some(input)) => patchcore_model::render::heatmap_overlay(&input, &map, range),
            _ => patchcore_model::render::heatmap_image(&map, range),
        };
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)
            .map(|_| (img.width(), img.height(), buf.into_inner()))
    })
    .await?
    .map_err(|e| internal(format!("cannot encode the heatmap: {e}")))?;
    Ok(json!({
        "kind": kind,
        "format": "png",
        "encoding": "base64",
        "width": w,
        "height": h,
        "range": [range.0, range.1],
        "data": base64::engine::general_purpose::STANDARD.encode(png),
    }))
}

/// The route.
pub(crate) async fn predict(
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
    // The body first, under its own rate deadline: a slow upload holds no slot of the model.
    let bytes = image_bytes(req, &state.body).await?;
    let timeout = Duration::from_millis(served.serve.request_timeout_ms);
    let work = admit_decode_and_score(&served, &state, bytes, heatmap.as_deref());
    let (scored, decode_seconds, input) =
        tokio::time::timeout(timeout, work).await.map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "no answer within {} ms of the body's arrival (serve.request_timeout_ms)",
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
    if let (Some(kind), Some(map)) = (heatmap.as_deref(), scored.map) {
        out["heatmap"] = heatmap_json(&served, kind, map, input).await?;
    }
    Ok(Json(out))
}
