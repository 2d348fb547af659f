//! Writes to an mdev's `ap_config` (kernel.md §6, NEW): `parse_ap_config`,
//! against a reference written from the section's words: the first 201
//! bytes up to a NUL, split at every `,` and newline; at least three
//! pieces, each an absolute mask (§2) from zero; further pieces ignored.
#![no_main]

use apmatrix_fuzz::{mask_of, ref_absolute_mask, until_nul};
use apmatrix_model::parse::{parse_ap_config, AP_CONFIG_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = parse_ap_config(data);
    assert_eq!(result, parse_ap_config(data), "not deterministic");

    // The reference.
    let seen = until_nul(&data[..data.len().min(AP_CONFIG_LEN)]);
    let pieces: Vec<&[u8]> = seen.split(|&b| b == b',' || b == b'\n').collect();
    let expected = if pieces.len() < 3 {
        None
    } else {
        let masks: Option<Vec<_>> = pieces[..3]
            .iter()
            .map(|p| ref_absolute_mask(p).map(|b| mask_of(&b)))
            .collect();
        masks.map(|m| [m[0], m[1], m[2]])
    };
    match (&result, &expected) {
        (Ok(m), Some(e)) => assert_eq!(m, e, "value differs from kernel.md §6"),
        (Err(reason), None) => assert!(!reason.is_empty()),
        (r, e) => panic!("model {r:?}, kernel.md §6 reference {e:?} for {data:?}"),
    }

    // What the attribute prints (ap-check's form) reads back the same, and
    // is exactly 201 bytes.
    if let Ok(masks) = &result {
        let text = format!("{},{},{}\n", masks[0], masks[1], masks[2]);
        assert_eq!(text.len(), AP_CONFIG_LEN);
        assert_eq!(parse_ap_config(text.as_bytes()).as_ref(), Ok(masks));
    }
});
