//! The model-file reader on arbitrary bytes: `Ok` or a typed error, never a panic, never an
//! unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchcore_pipeline::model_file::from_bytes(std::path::Path::new("fuzz.patchcore"), data);
});
