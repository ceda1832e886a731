//! The config parser (TOML, serde, validation) on arbitrary text: `Ok` or a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = patchcore_model::Config::from_toml_str(text, None) {
            let _ = cfg.validate();
        }
    }
});
