//! Numbers and flags written to the bus and card attributes (kernel.md §1,
//! §4): `parse_scanf_int` (`sscanf("%i")` for `ap_domain`, `sscanf("%d")`
//! for `config_time`, `poll_thread` (OLD), the cards' and queues' `online`
//! and `config`) and `parse_kstrtobool` (`poll_thread`, NEW), checked
//! against independent references.
//!
//! Input: the written bytes.
#![no_main]

use apmatrix_fuzz::{ref_kstrtobool, ref_scanf_int, until_nul};
use apmatrix_model::parse::{parse_kstrtobool, parse_scanf_int};
use libfuzzer_sys::fuzz_target;

fn scanf(text: &str, any_base: bool) -> Option<i32> {
    parse_scanf_int(text.as_bytes(), any_base)
}

fuzz_target!(|data: &[u8]| {
    let seen = until_nul(data);
    for any_base in [true, false] {
        let conv = if any_base { "%i" } else { "%d" };
        let result = parse_scanf_int(data, any_base);
        assert_eq!(
            result,
            ref_scanf_int(data, any_base),
            "sscanf(\"{conv}\") of {data:?}"
        );
        assert_eq!(
            result,
            parse_scanf_int(seen, any_base),
            "NUL ends the input"
        );

        let Some(v) = result else {
            continue;
        };
        // Every spelling of the value reads back: decimal (also as the
        // unsigned 32-bit pattern, or negated), with white space in front
        // and junk behind.
        let u = v as u32;
        for text in [
            format!("{v}"),
            format!("{v}\n"),
            format!(" \t\n{v}junk"),
            format!("{u}"),
            format!("-{}", u.wrapping_neg()),
            format!("{u}\n\n"),
        ] {
            assert_eq!(scanf(&text, any_base), Some(v), "{conv} of {text:?}");
        }
        if any_base {
            for text in [
                format!("0x{u:x}"),
                format!("0X{u:X}\n"),
                format!("0{u:o}"),
                format!("-0x{:x}", u.wrapping_neg()),
            ] {
                assert_eq!(scanf(&text, true), Some(v), "%i of {text:?}");
            }
        } else {
            // %d reads a 0x prefix as the number 0, leading zeros as decimal.
            assert_eq!(scanf(&format!("0x{u:x}"), false), Some(0));
            assert_eq!(scanf(&format!("00{u}"), false), Some(v));
        }
    }

    let flag = parse_kstrtobool(data);
    assert_eq!(flag, ref_kstrtobool(data), "kstrtobool of {data:?}");
    // Only the first two bytes the kernel sees decide.
    assert_eq!(flag, parse_kstrtobool(&seen[..seen.len().min(2)]));
    if let Some(b) = flag {
        // What `poll_thread` prints reads back.
        let printed = format!("{}\n", u8::from(b));
        assert_eq!(parse_kstrtobool(printed.as_bytes()), Some(b));
        assert_eq!(scanf(&printed, false), Some(i32::from(b)));
    }
});
