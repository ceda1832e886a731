//! Which engine a config names: the in-process one or a server, if this build has it.

use std::sync::Arc;

use patchcore_core::Result;
use patchcore_nn::{QdrantLocation, QdrantSettings};

use crate::backend::Backend;

/// The engine the settings name, if this build has it.
pub(crate) fn open(settings: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    match settings.location() {
        QdrantLocation::Embedded(path) => open_embedded(path, settings),
        QdrantLocation::Server(url) => open_server(url, settings),
    }
}

#[cfg(feature = "embedded")]
fn open_embedded(path: &std::path::Path, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::embedded::Embedded::new(path)))
}

#[cfg(not(feature = "embedded"))]
fn open_embedded(path: &std::path::Path, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Err(patchcore_core::Error::config(
        "nn.embedded_path",
        format!(
            "{}: this build has no in-process Qdrant engine; build with the cargo feature \
             `qdrant` (patchcore) or `embedded` (patchcore-qdrant)",
            path.display()
        ),
    ))
}

#[cfg(feature = "server")]
fn open_server(url: &str, s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(crate::server::Server::connect(url, s)?))
}

#[cfg(not(feature = "server"))]
fn open_server(url: &str, _s: &QdrantSettings) -> Result<Arc<dyn Backend>> {
    Err(patchcore_core::Error::config(
        "nn.url",
        format!(
            "{url}: this build has no Qdrant client; build with the cargo feature `qdrant` \
             (patchcore) or `server` (patchcore-qdrant)"
        ),
    ))
}
