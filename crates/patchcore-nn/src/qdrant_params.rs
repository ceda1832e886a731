//! The `[nn]` keys of `kind = "qdrant"`: a memory bank searched in a Qdrant collection, on a
//! server (`url`) or in-process (`embedded_path`).
//!
//! Only the parameters live here, so that a config naming the index can be read, checked and
//! saved by any build; the index itself is in the `patchcore-qdrant` crate (cargo feature
//! `qdrant` of the model, CLI and facade crates), which takes the [`QdrantSettings`] these
//! keys check into. The API key is never a key: only the name of the environment variable or
//! the file it is read from is, so a model file never holds a secret.

use std::path::PathBuf;

use patchcore_core::{Error, Result};

/// `[nn]` with `kind = "qdrant"`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct QdrantParams {
    /// gRPC address of a Qdrant server or cluster (`http://host:6334`). Exactly one of
    /// `url` and `embedded_path`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub url: Option<String>,
    /// Folder of the in-process engine (qdrant-edge): one shard per collection below it.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub embedded_path: Option<PathBuf>,
    /// Collection name; default `patchcore-<first 16 hex digits of the bank's SHA-256>`, so
    /// that every bank (each seed, each tile position) has its own and stations loading the
    /// same model share one.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub collection: Option<String>,
    /// Exact search (`SearchParams { exact: true }`, the default): the same neighbours as the
    /// in-process exact index. `false` searches the collection's HNSW graph.
    #[cfg_attr(feature = "serde", serde(default = "d_exact"))]
    pub exact: bool,
    /// HNSW: edges per node when the collection is created (`exact = false` only).
    #[cfg_attr(feature = "serde", serde(default = "d_m"))]
    pub m: usize,
    /// HNSW: candidate list of the search (`hnsw_ef`, `exact = false` only).
    #[cfg_attr(feature = "serde", serde(default = "d_ef"))]
    pub ef: usize,
    /// Deadline of one request (upload batch, search of one image's patches), milliseconds.
    #[cfg_attr(feature = "serde", serde(default = "d_timeout_ms"))]
    pub timeout_ms: u64,
    /// Bank rows per upload request.
    #[cfg_attr(feature = "serde", serde(default = "d_upload_batch"))]
    pub upload_batch: usize,
    /// Environment variable holding the API key (read when the index connects; unset: none).
    #[cfg_attr(feature = "serde", serde(default = "d_api_key_env"))]
    pub api_key_env: String,
    /// File holding the API key (first line), read when the index connects; wins over
    /// `api_key_env`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub api_key_file: Option<PathBuf>,
}

fn d_exact() -> bool {
    true
}
fn d_m() -> usize {
    16
}
fn d_ef() -> usize {
    128
}
fn d_timeout_ms() -> u64 {
    30_000
}
fn d_upload_batch() -> usize {
    256
}
fn d_api_key_env() -> String {
    "PATCHCORE_QDRANT_API_KEY".into()
}

impl Default for QdrantParams {
    fn default() -> Self {
        Self {
            url: None,
            embedded_path: None,
            collection: None,
            exact: d_exact(),
            m: d_m(),
            ef: d_ef(),
            timeout_ms: d_timeout_ms(),
            upload_batch: d_upload_batch(),
            api_key_env: d_api_key_env(),
            api_key_file: None,
        }
    }
}

/// Where a Qdrant index lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QdrantLocation {
    /// A server or cluster, by its gRPC URL.
    Server(String),
    /// The in-process engine, under this folder.
    Embedded(PathBuf),
}

impl std::fmt::Display for QdrantLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QdrantLocation::Server(u) => write!(f, "{u}"),
            QdrantLocation::Embedded(p) => write!(f, "embedded {}", p.display()),
        }
    }
}

/// Checked [`QdrantParams`]: what a Qdrant index builder is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdrantSettings {
    location: QdrantLocation,
    collection: Option<String>,
    hnsw: Option<(usize, usize)>,
    timeout_ms: u64,
    upload_batch: usize,
    api_key_env: String,
    api_key_file: Option<PathBuf>,
}

impl QdrantParams {
    /// The settings these keys describe; errors name the `nn.*` key.
    pub fn check(&self) -> Result<QdrantSettings> {
        let location = match (&self.url, &self.embedded_path) {
            (Some(u), None) => QdrantLocation::Server(check_url(u)?),
            (None, Some(p)) if !p.as_os_str().is_empty() => QdrantLocation::Embedded(p.clone()),
            (None, Some(_)) => return Err(Error::config("nn.embedded_path", "is empty")),
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "nn.url",
                    "give either `url` (a Qdrant server) or `embedded_path` (the in-process \
                     engine), not both",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    "nn.url",
                    "kind = \"qdrant\" needs `url` (a Qdrant server, e.g. \
                     \"http://localhost:6334\") or `embedded_path` (a folder for the \
                     in-process engine)",
                ));
            }
        };
        if let Some(c) = &self.collection {
            check_collection(c)?;
        }
        if !self.exact && (self.m < 2 || self.ef == 0) {
            return Err(Error::config(
                "nn.m",
                format!(
                    "HNSW needs m >= 2 and ef >= 1 (m = {}, ef = {})",
                    self.m, self.ef
                ),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(Error::config("nn.timeout_ms", "must be at least 1"));
        }
        if self.upload_batch == 0 {
            return Err(Error::config("nn.upload_batch", "must be at least 1"));
        }
        if self.api_key_env.is_empty() {
            return Err(Error::config("nn.api_key_env", "is empty"));
        }
        Ok(QdrantSettings {
            location,
            collection: self.collection.clone(),
            hnsw: (!self.exact).then_some((self.m, self.ef)),
            timeout_ms: self.timeout_ms,
            upload_batch: self.upload_batch,
            api_key_env: self.api_key_env.clone(),
            api_key_file: self.api_key_file.clone(),
        })
    }
}

fn check_url(u: &str) -> Result<String> {
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.split("://").nth(1).is_some_and(|h| !h.is_empty());
    if ok {
        Ok(u.trim_end_matches('/').to_string())
    } else {
        Err(Error::config(
            "nn.url",
            format!(
                "`{u}` is not a gRPC URL: write http://HOST:6334 (or https:// with TLS); \
                 Qdrant's gRPC port is 6334, its REST port 6333 is not used"
            ),
        ))
    }
}

/// Qdrant collection names: a folder name in the embedded engine, so no separators.
fn check_collection(c: &str) -> Result<()> {
    let ok = !c.is_empty()
        && c.len() <= 255
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
        && !c.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            "nn.collection",
            format!(
                "`{c}` is not a usable collection name: 1-255 of A-Z a-z 0-9 - _ . (not \
                 starting with a dot)"
            ),
        ))
    }
}

impl QdrantSettings {
    /// Server URL or embedded folder.
    pub fn location(&self) -> &QdrantLocation {
        &self.location
    }
    /// The collection named in the config (`None`: derived from the bank's hash).
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }
    /// `Some((m, ef))` for HNSW search, `None` for exact search.
    pub fn hnsw(&self) -> Option<(usize, usize)> {
        self.hnsw
    }
    /// Deadline of one request.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
    /// Bank rows per upload request.
    pub fn upload_batch(&self) -> usize {
        self.upload_batch
    }
    /// The API key: the first line of `api_key_file` if set, else the variable
    /// `api_key_env` if set and not empty, else none.
    pub fn api_key(&self) -> Result<Option<String>> {
        if let Some(f) = &self.api_key_file {
            let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                return Err(Error::config(
                    "nn.api_key_file",
                    format!("{} is empty", f.display()),
                ));
            }
            return Ok(Some(key));
        }
        Ok(std::env::var(&self.api_key_env)
            .ok()
            .filter(|k| !k.trim().is_empty()))
    }
    /// The same settings with another location (`patchcore bank push --url`).
    pub fn with_location(self, location: QdrantLocation) -> Self {
        Self { location, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> QdrantParams {
        QdrantParams {
            embedded_path: Some("/tmp/q".into()),
            ..Default::default()
        }
    }

    #[test]
    fn check_names_the_key_at_fault() {
        let key = |p: QdrantParams| match p.check() {
            Err(Error::Config { key, .. }) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key(QdrantParams::default()), "nn.url");
        let both = QdrantParams {
            url: Some("http://h:6334".into()),
            ..embedded()
        };
        assert_eq!(key(both), "nn.url");
        let rest = QdrantParams {
            url: Some("localhost:6333".into()),
            ..Default::default()
        };
        assert_eq!(key(rest), "nn.url");
        for bad in ["", "a/b", "..", "x y"] {
            let p = QdrantParams {
                collection: Some(bad.into()),
                ..embedded()
            };
            assert_eq!(key(p), "nn.collection", "{bad:?}");
        }
        let hnsw = QdrantParams {
            exact: false,
            m: 1,
            ..embedded()
        };
        assert_eq!(key(hnsw), "nn.m");
        let t = QdrantParams {
            timeout_ms: 0,
            ..embedded()
        };
        assert_eq!(key(t), "nn.timeout_ms");
    }

    #[test]
    fn settings_keep_what_was_checked() {
        let s = QdrantParams {
            url: Some("https://q.example:6334/".into()),
            exact: false,
            ..Default::default()
        }
        .check()
        .unwrap();
        assert_eq!(
            s.location(),
            &QdrantLocation::Server("https://q.example:6334".into())
        );
        assert_eq!(s.hnsw(), Some((16, 128)));
        assert_eq!(embedded().check().unwrap().hnsw(), None);
    }

    #[test]
    fn api_key_comes_from_the_file_first() {
        let dir = std::env::temp_dir().join(format!("pc-qkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("key");
        std::fs::write(&f, "secret-1\nignored\n").unwrap();
        let s = QdrantParams {
            api_key_file: Some(f.clone()),
            api_key_env: "PATCHCORE_TEST_NO_SUCH_VARIABLE".into(),
            ..embedded()
        }
        .check()
        .unwrap();
        assert_eq!(s.api_key().unwrap().as_deref(), Some("secret-1"));
        std::fs::write(&f, "\n").unwrap();
        assert!(s.api_key().is_err());
        let s = QdrantParams {
            api_key_env: "PATCHCORE_TEST_NO_SUCH_VARIABLE".into(),
            ..embedded()
        }
        .check()
        .unwrap();
        assert_eq!(s.api_key().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
