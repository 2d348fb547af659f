//! `apmatrix place`'s demands file (`place::DemandsFile::from_toml`, then
//! `resolve`), and placing what it resolves to on the seed document's host
//! with adapters 05 and 06 given to vfio_ap.
//!
//! Checks: nothing panics; resolving is deterministic; a resolved demand
//! has 1 <= adapters <= domains, a CEX4-CEX8 minimum, at least one mode,
//! pins that fit in its domains, and the UUID given or the one derived from
//! its name; placing (up to 8 demands) is deterministic, puts each placed
//! guest on free APQNs of its modes, and prints a configuration that reads
//! back and that `check` finds no error in.
//!
//! Input: UTF-8 TOML.
#![no_main]

use apmatrix_admin::place::{field_of, place, DemandsFile, Strategy};
use apmatrix_admin::{check, observe, Config, EmulatedRoot, Severity, NAME_NAMESPACE};
use apmatrix_model::{Host, MaskKind};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = DemandsFile::from_toml(text) else {
        return;
    };
    let resolved = file.resolve();
    assert_eq!(resolved, file.resolve(), "resolve() twice differs");
    let Ok(demands) = resolved else {
        return;
    };
    for (d, g) in demands.iter().zip(&file.guests) {
        assert!(d.adapters >= 1 && d.adapters <= d.domains, "{d:?}");
        assert!((4..=8).contains(&d.min_generation));
        assert!(!d.modes.is_empty());
        assert!(d.pin_adapters.count() * d.pin_domains.count().max(1) <= d.domains);
        let uuid = g
            .uuid
            .unwrap_or_else(|| Uuid::new_v5(&NAME_NAMESPACE, d.name.as_bytes()));
        assert_eq!(d.uuid, uuid);
    }
    if demands.len() > 8 {
        return;
    }
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let seen = observe(&EmulatedRoot { host }).unwrap();
    let field = field_of(&seen);
    let p = place(&seen, demands.clone(), Strategy::Balanced);
    assert_eq!(
        place(&seen, demands, Strategy::Balanced).config_toml(),
        p.config_toml()
    );
    for (d, pl) in p.demands.iter().zip(&p.placed) {
        let Some(pl) = pl else { continue };
        for a in pl.adapters.iter() {
            let k = field.cards.iter().position(|c| c.adapter == a).expect("a usable card");
            assert!(d.modes.contains(&field.cards[k].mode));
            assert!(pl.domains.is_subset_of(&field.free[k]));
        }
    }
    let config = Config::from_toml(&p.config_toml())
        .and_then(|c| c.resolve())
        .unwrap_or_else(|e| panic!("the placement's configuration does not read back: {e}\n{}", p.config_toml()));
    let errors: Vec<String> = check(&config, &seen)
        .into_iter()
        .filter(|pr| pr.severity == Severity::Error)
        .map(|pr| pr.message)
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{}", p.config_toml());
});
