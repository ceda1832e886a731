//! Reading a request body under a size limit and a minimum transfer rate.
//!
//! The body is read before the request takes a queue slot or any decode memory, so a slow
//! upload can hold nothing but its connection; and it must keep arriving: after a grace
//! period, at least `min_rate` bytes per second on average since the first byte was
//! expected. A client that stops sending is answered 408 and closed.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use http_body_util::BodyExt as _;

use crate::error::{ApiError, read_error};

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPolicy {
    /// Largest body in bytes (413 above, from `Content-Length` before reading when given).
    pub max_bytes: usize,
    /// Time a body may take regardless of its rate.
    pub grace: Duration,
    /// Bytes per second the body must average after `grace` (0 = no rate limit).
    pub min_rate: u64,
}

impl BodyPolicy {
    /// When the body must have delivered more than `received` bytes.
    fn deadline(&self, start: tokio::time::Instant, received: u64) -> tokio::time::Instant {
        let earned = if self.min_rate == 0 {
            Duration::from_secs(24 * 3600)
        } else {
            Duration::from_secs_f64(received as f64 / self.min_rate as f64)
        };
        start + self.grace + earned
    }
}

fn too_large(max: usize) -> ApiError {
    read_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body exceeds {max} bytes (--max-body-bytes)"),
    )
}

/// Reads the whole body under `policy`.
pub(crate) async fn read_body(body: Body, policy: &BodyPolicy) -> Result<Bytes, ApiError> {
    let mut body = body;
    let start = tokio::time::Instant::now();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let deadline = policy.deadline(start, buf.len() as u64);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "slow_body",
                    format!(
                        "the body arrived at less than {} bytes/s after {} ms ({} bytes in {:.1} s; \
                         --body-min-rate, --body-grace-ms)",
                        policy.min_rate,
                        policy.grace.as_millis(),
                        buf.len(),
                        start.elapsed().as_secs_f64()
                    ),
                ));
            }
            Ok(None) => return Ok(Bytes::from(buf)),
            Ok(Some(Err(e))) => {
                return Err(read_error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("cannot read the request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > policy.max_bytes {
                return Err(too_large(policy.max_bytes));
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// The image bytes of a request: the raw body, or the first file field of a multipart form
/// (read whole under `policy` first, then parsed from memory).
pub(crate) async fn image_bytes(req: Request, policy: &BodyPolicy) -> Result<Vec<u8>, ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > policy.max_bytes as u64) {
        return Err(too_large(policy.max_bytes));
    }
    let multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let bytes = read_body(body, policy).await?;
    if !multipart {
        return Ok(bytes.to_vec());
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BodyPolicy {
        BodyPolicy {
            max_bytes: 1000,
            grace: Duration::from_millis(100),
            min_rate: 1000,
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_under_its_limit() {
        let b = read_body(Body::from(vec![7u8; 1000]), &policy())
            .await
            .unwrap();
        assert_eq!(b.len(), 1000);
        let e = read_body(Body::from(vec![7u8; 1001]), &policy())
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
        );
    }

    #[tokio::test]
    async fn a_stalled_body_is_cut_after_the_grace_period_and_its_earned_time() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        tx.send(Bytes::from(vec![1u8; 100])).await.unwrap();
        let t = std::time::Instant::now();
        let e = read_body(Body::new(Channel(rx)), &policy())
            .await
            .unwrap_err();
        // 100 ms of grace plus 100 bytes at 1000 bytes/s, then the cut.
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
        assert_eq!(
            (e.status, e.kind),
            (StatusCode::REQUEST_TIMEOUT, "slow_body")
        );
        drop(tx);
    }

    /// A body fed through a channel: it stalls while the sender sends nothing.
    struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

    impl hyper::body::Body for Channel {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }
}
