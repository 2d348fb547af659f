//! Writes to `/sys/bus/ap/apmask` / `aqmask` (kernel.md §2): `parse_mask`
//! with both forms, `parse_absolute_mask`, `apply_relative_mask`, and the
//! serde form of `Mask256`.
//!
//! Input: see `apmatrix_fuzz::split_base` (`E`/`F`/`R` + 32 bytes picks the
//! current mask, the rest is the written bytes).
#![no_main]

use apmatrix_fuzz::{
    bits_of, deserialize_str, mask_of, ref_mask, ref_mask_text_ok, split_base, until_nul,
};
use apmatrix_model::parse::{apply_relative_mask, c_str, parse_absolute_mask, parse_mask};
use apmatrix_model::Mask256;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (base, input) = split_base(data);
    let before = base;
    let result = parse_mask(input, &base);

    // Pure and deterministic; the caller's mask is never touched.
    assert_eq!(result, parse_mask(input, &base), "not deterministic");
    assert_eq!(base, before, "the current mask changed");

    // Only the bytes before NUL count.
    let seen = c_str(input);
    assert_eq!(seen, until_nul(input));
    assert_eq!(result, parse_mask(seen, &base));

    // Dispatch on the first byte.
    let relative = matches!(seen.first(), Some(b'+' | b'-'));
    if relative {
        assert_eq!(result, apply_relative_mask(input, &base));
    } else {
        assert_eq!(result, parse_absolute_mask(input));
        // The absolute form starts from zero whatever the current mask is.
        assert_eq!(result, parse_mask(input, &base.complement()));
    }

    // Agrees with the reference written from kernel.md §2.
    let expected = ref_mask(input, &bits_of(&base)).map(|b| mask_of(&b));
    match (&result, &expected) {
        (Ok(m), Some(e)) => assert_eq!(m, e, "value differs from kernel.md §2"),
        (Err(_), None) => {}
        (r, e) => panic!("model {r:?}, kernel.md §2 reference {e:?} for {input:?}"),
    }

    match &result {
        Ok(m) => {
            // The kernel's printout writes back to the same mask, in either
            // shape, from any current mask.
            let text = m.to_string();
            assert_eq!(text.len(), 66);
            assert!(ref_mask_text_ok(&text));
            assert!(!text.bytes().any(|b| b.is_ascii_uppercase()));
            assert_eq!(parse_absolute_mask(text.as_bytes()).as_ref(), Ok(m));
            assert_eq!(parse_mask(m.to_sysfs().as_bytes(), &base).as_ref(), Ok(m));
            assert_eq!(parse_mask(text.as_bytes(), &Mask256::FULL).as_ref(), Ok(m));
            // ... and through serde.
            assert_eq!(deserialize_str::<Mask256>(&text).ok().as_ref(), Some(m));
        }
        Err(e) => {
            // The offset points into (or just past) what the kernel saw.
            assert!(e.offset <= seen.len(), "offset {} past the input", e.offset);
            if !relative {
                // An absolute-form error always names an offending byte.
                assert!(e.offset < seen.len(), "offset {} not at a byte", e.offset);
            }
            assert!(!e.rule.is_empty());
        }
    }

    // serde: exactly `0x` + 64 hex digits, same value as the sysfs form.
    if let Ok(text) = std::str::from_utf8(input) {
        let de = deserialize_str::<Mask256>(text);
        assert_eq!(
            de.is_ok(),
            ref_mask_text_ok(text),
            "serde accepts {text:?}?"
        );
        if let Ok(m) = de {
            assert_eq!(parse_absolute_mask(text.as_bytes()), Ok(m));
            assert_eq!(m.to_string(), text.to_ascii_lowercase());
        }
    }
});
