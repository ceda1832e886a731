use std::path::PathBuf;

/// Result alias used throughout patchcore-rs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure patchcore-rs reports. Messages name the file, key or shape at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// An image or mask could not be decoded or has unusable content.
    #[error("image {path}: {message}")]
    Image {
        /// The image or mask file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A weights file is missing, corrupt, or does not match the architecture.
    #[error("weights {path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A fitted-model file is corrupt, truncated, of another format version, or does not match
    /// what it is used with.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration value is invalid. `key` is the dotted config key.
    #[error("config key `{key}`: {message}")]
    Config {
        /// The dotted config key, e.g. `sampler.ratio`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A data set does not have the expected layout or content.
    #[error("data set {path}: {message}")]
    Dataset {
        /// The data set folder or file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Tensor shapes passed between components do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Non-finite values (NaN/Inf) where finite numbers are required.
    #[error("non-finite values: {0}")]
    NonFinite(String),
    /// Invalid argument to a component (empty input, k = 0, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An external tool (pip) failed.
    #[error("{0}")]
    External(String),
    /// A service the model needs (a remote index such as a Qdrant server) cannot be reached,
    /// refused the request, or did not answer in time. Retrying later may succeed; the
    /// inspection service answers 503 for it.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        /// What was called, with its address (`qdrant http://host:6334`).
        service: String,
        /// What failed and what to check.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Convenience constructor for [`Error::Config`].
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}
