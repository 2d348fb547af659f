//! `ap.apmask=` / `ap.aqmask=` boot parameters (kernel.md §2, "Boot/module
//! params"): the mask is cleared, then parsed; a bad value leaves it empty.
//!
//! Input: the parameter value (UTF-8).
#![no_main]

use apmatrix_fuzz::{mask_of, ref_mask, toml_string};
use apmatrix_model::parse::{parse_boot_mask, parse_mask};
use apmatrix_model::topology::BootParameters;
use apmatrix_model::{Mask256, Topology};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let result = parse_boot_mask(value);

    // Same parser as a sysfs write, onto the cleared mask.
    assert_eq!(result, parse_mask(value.as_bytes(), &Mask256::EMPTY));
    let expected = ref_mask(value.as_bytes(), &[false; 256]).map(|b| mask_of(&b));
    assert_eq!(result.as_ref().ok(), expected.as_ref(), "kernel.md §2");

    // What the host boots with: the value's mask, or empty plus a warning;
    // the other mask keeps its all-ones default.
    let want = result.clone().unwrap_or(Mask256::EMPTY);
    let warned = usize::from(result.is_err());
    let ap = BootParameters {
        apmask: Some(value.to_string()),
        aqmask: None,
    };
    let (apmask, aqmask, warnings) = ap.masks();
    assert_eq!(
        (apmask, aqmask, warnings.len()),
        (want, Mask256::FULL, warned)
    );
    assert_eq!(ap.cmdline(), format!("ap.apmask={value}"));
    let aq = BootParameters {
        apmask: None,
        aqmask: Some(value.to_string()),
    };
    let (apmask, aqmask, warnings) = aq.masks();
    assert_eq!(
        (apmask, aqmask, warnings.len()),
        (Mask256::FULL, want, warned)
    );
    if let Some(w) = warnings.first() {
        assert_eq!(w.param, "ap.aqmask");
        assert_eq!(w.value, value);
    }

    // Any value survives a host description's [boot] table unchanged.
    let text = format!(
        "usage_domains = 1\n[boot]\napmask = {}\n",
        toml_string(value)
    );
    let topology = Topology::from_toml(&text).expect("a [boot] string is always accepted");
    assert_eq!(topology.boot.apmask.as_deref(), Some(value));
    assert_eq!(topology.boot.masks().0, want);
});
