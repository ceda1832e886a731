use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The burn backend that runs tensor work (backbone and aggregation).
///
/// Chosen in the config as `device = "flex" | "ndarray"`. Both are CPU backends compiled into
/// every build; `flex` lowers convolutions to GEMM and is several times faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    /// burn-flex, the default CPU backend.
    #[default]
    Flex,
    /// burn-ndarray (deprecated upstream, kept because users asked for it).
    Ndarray,
}

impl ComputeDevice {
    /// All devices compiled into this build.
    pub const ALL: [ComputeDevice; 2] = [ComputeDevice::Flex, ComputeDevice::Ndarray];

    /// The burn device for this backend.
    #[allow(deprecated)]
    pub fn burn_device(self) -> burn::tensor::Device {
        match self {
            ComputeDevice::Flex => burn::tensor::Device::flex(),
            ComputeDevice::Ndarray => burn::tensor::Device::ndarray(),
        }
    }

    /// Name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ComputeDevice::Flex => "flex",
            ComputeDevice::Ndarray => "ndarray",
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComputeDevice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "flex" => Ok(ComputeDevice::Flex),
            "ndarray" => Ok(ComputeDevice::Ndarray),
            other => Err(Error::config(
                "device",
                format!("unknown device `{other}`; allowed: \"flex\", \"ndarray\""),
            )),
        }
    }
}
