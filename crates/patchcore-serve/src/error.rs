//! Error answers: a status, a kind counted in the metrics and a reason for the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use patchcore_data::ImageRejection;
use serde_json::json;

/// An error response: a status, a kind for the metrics and a reason for the client.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
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
pub(crate) struct ErrorKind(pub(crate) &'static str);

/// The status and kind of an image the decoder refused.
pub(crate) fn rejection(r: ImageRejection) -> ApiError {
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

/// An error reading a body or a multipart field: 413 stays `body_too_large`, anything else
/// is `kind`.
pub(crate) fn read_error(status: StatusCode, kind: &'static str, message: String) -> ApiError {
    let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        kind
    };
    ApiError::new(status, kind, message)
}

/// 503 with Retry-After.
pub(crate) fn unavailable(message: String) -> ApiError {
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message);
    e.retry_after = Some(1);
    e
}

/// 503 `index_unavailable` with Retry-After: the model's remote index (a Qdrant server) did
/// not answer; the other models are not affected.
pub(crate) fn index_unavailable(message: String) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "index_unavailable",
        message,
    );
    e.retry_after = Some(5);
    e
}

pub(crate) fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}
