//! The model-file reader on arbitrary bytes: `Ok` or a typed error, never a panic; a file it
//! accepts re-encodes to a file it accepts again with the same content.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((json, bank)) = patchcore_model_format::decode(data) {
        let again = patchcore_model_format::encode(&json, &bank).expect("re-encodes");
        let (json2, bank2) = patchcore_model_format::decode(&again).expect("re-decodes");
        assert_eq!((json, bank), (json2, bank2));
    }
});
