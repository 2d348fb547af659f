//! Numbers written to `assign_*`, `unassign_*` and `remove` (kernel.md §6:
//! `kstrtoul(buf, 0)`), checked against an independent reference.
//!
//! Input: the written bytes.
#![no_main]

use apmatrix_fuzz::{ref_kstrtoul, until_nul, RefNumber};
use apmatrix_model::parse::{parse_kstrtoul, NumberError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let result = parse_kstrtoul(data);
    assert_eq!(result, parse_kstrtoul(data), "not deterministic");

    match (&result, ref_kstrtoul(data)) {
        (Ok(v), RefNumber::Value(w)) => assert_eq!(*v, w, "value"),
        (Err(NumberError::Overflow), RefNumber::Overflow) => {}
        (Err(NumberError::Invalid(e)), RefNumber::Invalid) => {
            assert!(e.offset <= until_nul(data).len(), "offset {}", e.offset);
            assert!(!e.rule.is_empty());
        }
        (r, w) => panic!("model {r:?}, reference {w:?} for {data:?}"),
    }

    if let Ok(v) = result {
        // Every spelling of the value reads back.
        for text in [
            format!("{v}"),
            format!("{v}\n"),
            format!("+{v}"),
            format!("{v:#x}"),
            format!("0X{v:X}\n"),
            format!("0{v:o}"),
        ] {
            assert_eq!(parse_kstrtoul(text.as_bytes()), Ok(v), "{text:?}");
        }
    }
});
