//! Which burn backend and device runs the tensor work of patchcore-rs.
//!
//! Only the crates that hold tensors (backbone, aggregation, the pipeline) need this crate; the
//! component crates after aggregation (sampler, index, scorer, metrics) never see burn.

#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;

use patchcore_core::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The burn backend (and device) that runs tensor work: backbone and aggregation.
///
/// Chosen in the config as `device = "flex" | "ndarray" | "libtorch" | "libtorch-cuda:N" |
/// "cuda:N"`. The two CPU backends are compiled into every build (`flex` lowers convolutions to
/// GEMM and is several times faster). LibTorch needs the cargo feature `tch` (burn-tch, with a
/// LibTorch from PyPI's `torch==2.9.0`, see `scripts/install-libtorch.sh`); CUDA through CubeCL
/// needs the feature `cuda` (burn-cuda). Every variant parses in every build, so a config file
/// is portable; asking for one that this build lacks is an error naming the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ComputeDevice {
    /// burn-flex, the default CPU backend.
    #[default]
    Flex,
    /// burn-ndarray (deprecated upstream, kept because users asked for it).
    Ndarray,
    /// LibTorch on the CPU through burn-tch (feature `tch`).
    LibTorch,
    /// LibTorch on CUDA GPU `N` through burn-tch (feature `tch`).
    LibTorchCuda(usize),
    /// CUDA GPU `N` through burn-cuda / CubeCL (feature `cuda`).
    Cuda(usize),
}

const ALLOWED: &str =
    "allowed: \"flex\", \"ndarray\", \"libtorch\", \"libtorch-cuda:N\", \"cuda:N\" (N = GPU index)";

impl ComputeDevice {
    /// The CPU backends compiled into every build.
    pub const ALL: [ComputeDevice; 2] = [ComputeDevice::Flex, ComputeDevice::Ndarray];

    /// Every CPU backend compiled into this build: `flex`, `ndarray`, and `libtorch` when built
    /// with the feature `tch`. GPU devices are not listed: whether one exists is known only at
    /// run time.
    pub fn compiled_cpu() -> Vec<ComputeDevice> {
        #[allow(unused_mut)]
        let mut v = Self::ALL.to_vec();
        #[cfg(feature = "tch")]
        v.push(ComputeDevice::LibTorch);
        v
    }

    /// The cargo feature this device needs, if any.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            ComputeDevice::Flex | ComputeDevice::Ndarray => None,
            ComputeDevice::LibTorch | ComputeDevice::LibTorchCuda(_) => Some("tch"),
            ComputeDevice::Cuda(_) => Some("cuda"),
        }
    }

    /// Whether this build can run the device (the feature is compiled in; a GPU device may
    /// still be absent at run time).
    pub fn is_compiled(self) -> bool {
        match self.feature() {
            None => true,
            Some("tch") => cfg!(feature = "tch"),
            Some(_) => cfg!(feature = "cuda"),
        }
    }

    /// Whether the device is a GPU.
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            ComputeDevice::LibTorchCuda(_) | ComputeDevice::Cuda(_)
        )
    }

    /// The burn device for this backend, or an error naming the cargo feature it needs.
    #[allow(deprecated)]
    pub fn burn_device(self) -> Result<burn::tensor::Device, Error> {
        match self {
            ComputeDevice::Flex => Ok(burn::tensor::Device::flex()),
            ComputeDevice::Ndarray => Ok(burn::tensor::Device::ndarray()),
            #[cfg(feature = "tch")]
            ComputeDevice::LibTorch => Ok(burn::tensor::Device::libtorch()),
            #[cfg(feature = "tch")]
            ComputeDevice::LibTorchCuda(i) => Ok(burn::tensor::Device::libtorch_cuda(i)),
            #[cfg(feature = "cuda")]
            ComputeDevice::Cuda(i) => Ok(burn::tensor::Device::cuda(i)),
            #[allow(unreachable_patterns)]
            other => Err(Error::config(
                "device",
                format!(
                    "device `{other}` is not compiled into this build: rebuild with \
                     `--features {}`{}",
                    other.feature().unwrap_or("?"),
                    if other.feature() == Some("tch") {
                        " after `scripts/install-libtorch.sh` (see docs/GPU.md)"
                    } else {
                        " (see docs/GPU.md)"
                    }
                ),
            )),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Flex => f.write_str("flex"),
            ComputeDevice::Ndarray => f.write_str("ndarray"),
            ComputeDevice::LibTorch => f.write_str("libtorch"),
            ComputeDevice::LibTorchCuda(i) => write!(f, "libtorch-cuda:{i}"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let index = |rest: &str| -> Result<usize, Error> {
            rest.parse::<usize>().map_err(|_| {
                Error::config(
                    "device",
                    format!("`{s}`: the GPU index after `:` must be a number; {ALLOWED}"),
                )
            })
        };
        match s.trim() {
            "flex" => Ok(ComputeDevice::Flex),
            "ndarray" => Ok(ComputeDevice::Ndarray),
            "libtorch" => Ok(ComputeDevice::LibTorch),
            "libtorch-cuda" => Ok(ComputeDevice::LibTorchCuda(0)),
            "cuda" => Ok(ComputeDevice::Cuda(0)),
            t => {
                if let Some(rest) = t.strip_prefix("libtorch-cuda:") {
                    Ok(ComputeDevice::LibTorchCuda(index(rest)?))
                } else if let Some(rest) = t.strip_prefix("cuda:") {
                    Ok(ComputeDevice::Cuda(index(rest)?))
                } else {
                    Err(Error::config(
                        "device",
                        format!("unknown device `{t}`; {ALLOWED}"),
                    ))
                }
            }
        }
    }
}

impl Serialize for ComputeDevice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ComputeDevice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: Error| match e {
            Error::Config { message, .. } => serde::de::Error::custom(message),
            other => serde::de::Error::custom(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_round_trips_through_its_name() {
        for d in [
            ComputeDevice::Flex,
            ComputeDevice::Ndarray,
            ComputeDevice::LibTorch,
            ComputeDevice::LibTorchCuda(1),
            ComputeDevice::Cuda(0),
        ] {
            assert_eq!(d.to_string().parse::<ComputeDevice>().unwrap(), d);
        }
        assert_eq!(
            "cuda".parse::<ComputeDevice>().unwrap(),
            ComputeDevice::Cuda(0)
        );
    }

    #[test]
    fn bad_names_and_indices_are_refused_with_the_allowed_values() {
        for bad in ["gpu", "cuda:x", "libtorch-cuda:-1", "cuda:"] {
            let e = bad.parse::<ComputeDevice>().unwrap_err().to_string();
            assert!(e.contains("allowed"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_device_missing_from_the_build_names_its_feature() {
        for d in [ComputeDevice::LibTorch, ComputeDevice::Cuda(0)] {
            if !d.is_compiled() {
                let e = d.burn_device().unwrap_err().to_string();
                assert!(
                    e.contains(&format!("--features {}", d.feature().unwrap())),
                    "{e}"
                );
            }
        }
        assert!(ComputeDevice::Flex.burn_device().is_ok());
    }
}
