//! QEMU-style CPU feature settings: `CpuModel::from_features`.
//!
//! Input: the feature text (UTF-8).
#![no_main]

use apmatrix_model::CpuModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = CpuModel::from_features(text);
    assert_eq!(result, CpuModel::from_features(text), "not deterministic");
    let cpu = match result {
        Ok(cpu) => cpu,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };

    // The printout reads back, with or without a model name in front.
    let printed = cpu.features();
    assert_eq!(CpuModel::from_features(&printed), Ok(cpu), "{printed:?}");
    assert_eq!(CpuModel::from_features(&format!("host,{printed}")), Ok(cpu));

    // A later setting wins and leaves the other features alone.
    let later = |suffix: &str| CpuModel::from_features(&format!("{text},{suffix}"));
    assert_eq!(later("ap=off"), Ok(CpuModel { ap: false, ..cpu }));
    assert_eq!(later("apqci=on"), Ok(CpuModel { apqci: true, ..cpu }));
    assert_eq!(later(" apft=off "), Ok(CpuModel { apft: false, ..cpu }));
    assert_eq!(later("apft=no"), Ok(CpuModel { apft: false, ..cpu }));
    // A setting that is not a feature is refused whatever came before.
    assert!(later("apxx=on").is_err());
    assert!(later("ap").is_err());
});
