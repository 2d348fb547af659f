//! Host descriptions: `Topology::from_toml`, validated on load, and its
//! round trip through `to_toml()`.
//!
//! Input: the TOML text.
#![no_main]

use apmatrix_model::topology::parse_card_type;
use apmatrix_model::{Mask256, Topology};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = Topology::from_toml(text);
    // The serde route gives the same host.
    let via_serde = toml::from_str::<Topology>(text);
    assert_eq!(result.as_ref().ok(), via_serde.as_ref().ok());

    let t = match result {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.0.is_empty());
            return;
        }
    };

    // What validation promises to everything downstream.
    let (max_a, max_d) = (t.max_adapter_id(), t.max_domain_id());
    let domains = Mask256::range(0, max_d);
    assert!(
        t.usage_domains.is_subset_of(&domains),
        "usage domain above {max_d}"
    );
    assert!(
        t.control_domains.is_subset_of(&domains),
        "control domain above {max_d}"
    );
    for (id, card) in &t.cards {
        assert_eq!(*id, card.id);
        assert!(id.0 <= max_a, "card {id} above {max_a}");
        assert_eq!(
            parse_card_type(&card.type_name()),
            Ok((card.hwtype, card.mode))
        );
    }
    assert!(t.configured_adapters().is_subset_of(&t.adapters()));
    let _ = t.boot.masks();

    // to_toml() reads back as the same host, and is a fixed point.
    let printed = t.to_toml();
    let again = Topology::from_toml(&printed)
        .unwrap_or_else(|e| panic!("to_toml() output refused: {e}\n{printed}"));
    assert_eq!(again, t, "round trip changed the host:\n{printed}");
    assert_eq!(again.to_toml(), printed);
});
