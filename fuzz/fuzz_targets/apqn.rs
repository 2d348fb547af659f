//! APQN text (`05.00ab`, leniently `5.ab`): `Apqn::from_str` and its serde
//! form.
//!
//! Input: the text (UTF-8).
#![no_main]

use apmatrix_fuzz::{deserialize_str, ref_apqn};
use apmatrix_model::Apqn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = text.parse::<Apqn>();
    assert_eq!(
        result.as_ref().ok().map(|q| (q.adapter.0, q.domain.0)),
        ref_apqn(text),
        "{text:?}"
    );
    // serde agrees with FromStr.
    assert_eq!(deserialize_str::<Apqn>(text).ok(), result.clone().ok());
    match result {
        Ok(q) => {
            // The kernel's own name: %02x.%04x, which reads back.
            let name = q.to_string();
            assert_eq!(name, format!("{:02x}.{:04x}", q.adapter.0, q.domain.0));
            assert_eq!(name.parse::<Apqn>(), Ok(q));
            assert_eq!(name.to_uppercase().parse::<Apqn>(), Ok(q));
        }
        Err(e) => assert_eq!(e.0, text),
    }
});
