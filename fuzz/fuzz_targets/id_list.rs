//! apmatrix's own id lists (`4-6, 0x47,0xab`): `parse_id_list` and
//! `parse_id_set`.
//!
//! Input: the list text (UTF-8).
#![no_main]

use apmatrix_model::parse::{parse_id_list, parse_id_set};
use apmatrix_model::Mask256;
use libfuzzer_sys::fuzz_target;

fn join(ids: &[u64], f: impl Fn(u64) -> String, sep: &str) -> String {
    ids.iter().map(|&id| f(id)).collect::<Vec<_>>().join(sep)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = parse_id_list(text);
    assert_eq!(result, parse_id_list(text), "not deterministic");

    match &result {
        Ok(ids) => {
            assert_eq!(ids.is_empty(), text.trim().is_empty());
            // The list re-parses from its own printouts.
            for printed in [
                join(ids, |id| id.to_string(), ","),
                join(ids, |id| id.to_string(), " , "),
                join(ids, |id| format!("{id:#x}"), ","),
                join(ids, |id| format!("{id:#X}"), ","),
            ] {
                assert_eq!(parse_id_list(&printed).as_ref(), Ok(ids), "{printed:?}");
            }
            // Items are independent: the list is the concatenation of its items.
            if !ids.is_empty() {
                let mut concat = Vec::new();
                for item in text.split(',') {
                    concat.extend(parse_id_list(item).expect("an item of an accepted list"));
                }
                assert_eq!(&concat, ids);
            }
            // The set form: the same ids when all are 0-255, else an error.
            match parse_id_set(text) {
                Ok(set) => {
                    assert!(ids.iter().all(|&id| id <= 255));
                    let want: Mask256 = ids.iter().map(|&id| id as u8).collect();
                    assert_eq!(set, want);
                }
                Err(e) => {
                    assert!(ids.iter().any(|&id| id > 255), "{e}");
                    assert_eq!(e.list, text);
                }
            }
        }
        Err(e) => {
            assert_eq!(e.list, text);
            assert_eq!(parse_id_set(text).as_ref(), Err(e));
        }
    }
});
