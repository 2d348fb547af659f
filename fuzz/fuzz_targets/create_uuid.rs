//! Writes to `mdev_supported_types/vfio_ap-passthrough/create` (kernel.md
//! §5): 36 or 37 bytes, the first 36 an 8-4-4-4-12 hex UUID.
//!
//! Input: the written bytes.
#![no_main]

use apmatrix_fuzz::ref_create_uuid_ok;
use apmatrix_model::parse::parse_create_uuid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = parse_create_uuid(data);
    assert_eq!(
        result.is_ok(),
        ref_create_uuid_ok(data),
        "kernel.md §5 for {data:?}: {result:?}"
    );
    match result {
        Ok(uuid) => {
            // The directory name is the same UUID in lower case (%pUl).
            let text = std::str::from_utf8(&data[..36]).expect("hex and dashes");
            assert_eq!(uuid.to_string(), text.to_ascii_lowercase());
            assert_eq!(parse_create_uuid(format!("{uuid}\n").as_bytes()), Ok(uuid));
            assert_eq!(
                parse_create_uuid(uuid.to_string().to_uppercase().as_bytes()),
                Ok(uuid)
            );
        }
        Err(e) => {
            assert!(e.offset <= data.len().min(36), "offset {}", e.offset);
            assert!(!e.rule.is_empty());
        }
    }
});
