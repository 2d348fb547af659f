//! A write to a device's `uevent` (`kobject_synth_uevent`, docs/research/
//! uevents.md): `parse_synthetic_uevent` never panics, an input it takes
//! reads back the same when spelled out again (with or without the
//! newline, with extra spaces), and the event it stands for carries the
//! action, `SYNTH_UUID` and one `SYNTH_ARG_` per argument.
//!
//! Input: the written bytes.
#![no_main]

use apmatrix_model::parse::parse_synthetic_uevent;
use apmatrix_model::uevent::{synthetic, Device};
use apmatrix_model::Host;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(parsed) = parse_synthetic_uevent(data) else {
        return;
    };
    let mut words = vec![parsed.action.name().to_string()];
    words.extend(parsed.uuid.clone());
    words.extend(parsed.args.iter().map(|(k, v)| format!("{k}={v}")));
    // A newline inside a word is kept (only the last one is dropped), so a
    // word that ends in one cannot be spelled without a newline after it.
    let spellings = if words.iter().any(|w| w.ends_with('\n')) {
        vec![format!("{}\n", words.join("  "))]
    } else {
        vec![words.join(" "), format!("{}\n", words.join("  "))]
    };
    for spelled in spellings {
        assert_eq!(
            parse_synthetic_uevent(spelled.as_bytes()).as_ref(),
            Some(&parsed),
            "{spelled:?} from {data:?}"
        );
    }
    assert!(
        parsed.uuid.is_some() || parsed.args.is_empty(),
        "arguments need a UUID"
    );
    let host = Host::seed_example();
    let event = synthetic(&host, &Device::Matrix, data).expect("taken input, announced device");
    assert_eq!(event.action, parsed.action);
    assert_eq!(
        event.env[0],
        (
            "SYNTH_UUID".to_string(),
            parsed.uuid.clone().unwrap_or_else(|| "0".into())
        )
    );
    let args = event
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("SYNTH_ARG_"))
        .count();
    assert_eq!(args, parsed.args.len());
});
