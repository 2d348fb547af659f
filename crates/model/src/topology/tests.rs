use super::*;

#[test]
fn seed_host_is_the_documents_host() {
    let t = Topology::seed_example();
    assert_eq!(t.cards.len(), 3);
    assert_eq!(t.queue_count(), 18);
    assert_eq!(
        t.usage_domains.iter().collect::<Vec<_>>(),
        vec![4, 5, 6, 0x47, 0xab, 0xff]
    );
    assert_eq!(t.control_domains, t.usage_domains);
    assert_eq!(t.card(AdapterId(4)).unwrap().type_name(), "CEX5P");
    assert_eq!(t.card(AdapterId(5)).unwrap().type_name(), "CEX5C");
    assert_eq!(t.card(AdapterId(6)).unwrap().type_name(), "CEX5A");
    assert_eq!(t.card(AdapterId(5)).unwrap().hwtype, 11);
    assert_eq!((t.max_adapter_id(), t.max_domain_id()), (255, 255));
}

#[test]
fn round_trips_through_toml() {
    let t = Topology::seed_example();
    let again = Topology::from_toml(&t.to_toml()).unwrap();
    assert_eq!(again, t);
}

#[test]
fn card_types() {
    assert_eq!(parse_card_type("CEX4A"), Ok((10, CardMode::Accelerator)));
    assert_eq!(parse_card_type("cex8p"), Ok((14, CardMode::Ep11Coproc)));
    assert_eq!(parse_card_type("CEX3C"), Ok((9, CardMode::CcaCoproc)));
    assert_eq!(card_type_name(6, CardMode::Accelerator), "CEX2A");
    assert_eq!(card_type_name(13, CardMode::CcaCoproc), "CEX7C");
    for bad in ["CEX9A", "CEX5X", "CEX2P", "CEX", "X5A", "CEX55A"] {
        assert!(parse_card_type(bad).is_err(), "{bad}");
    }
}

#[test]
fn max_ids_without_apxa() {
    let mut t = Topology::seed_example();
    t.apxa = false;
    assert_eq!((t.max_adapter_id(), t.max_domain_id()), (63, 15));
    t.apxa = true;
    t.qci_max_domain_id = 0;
    assert_eq!(t.max_domain_id(), 15);
}

#[test]
fn validation_names_the_bad_value() {
    let cases = [
        ("usage_domains = \"1\"\napxa = false\n[[card]]\nid = 64\ntype = \"CEX5C\"\n", "card 40 (adapter 64) is above the host's maximum adapter number 63 (without APXA"),
        ("usage_domains = \"16\"\napxa = false\n", "usage domain 16 (0x10) is above the host's maximum domain number 15"),
        ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX9C\"\n", "card 01: \"CEX9C\" is not a card type"),
        ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX5C\"\n[[card]]\nid = \"0x01\"\ntype = \"CEX5A\"\n", "card 01 is described twice"),
        ("usage_domains = \"1-\"\n", "usage_domains:"),
        ("usage_domains = \"1\"\nmax_domain_id = 300\n", "max_domain_id = 300"),
        ("usage_domains = \"1\"\nbogus = 1\n", "unknown field `bogus`"),
        ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX5C\"\nfunctions = \"zz\"\n", "functions = \"zz\""),
        ("usage_domains = \"1\"\n[[card]]\nid = -1\ntype = \"CEX5C\"\n", "-1 is not an id: ids are whole numbers from 0 to 255"),
        ("usage_domains = \"1\"\n[[card]]\nid = 5.0\ntype = \"CEX5C\"\n", "5.0 is not an id: ids are whole numbers from 0 to 255 (write 5, not 5.0)"),
        ("usage_domains = [4, -2]\n", "-2 is not an id"),
        ("usage_domains = true\n", "expected ids: a whole number 0-255"),
        ("usage_domains = \"1\"\n[[card]]\nid = [1, 2]\ntype = \"CEX5C\"\n", "a list is not one id"),
    ];
    for (text, expect) in cases {
        let err = Topology::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(expect), "{text}\n=> {err}");
    }
}

#[test]
fn boot_parameters_give_masks_and_warnings() {
    let b = BootParameters {
        apmask: Some("0xffff".into()),
        aqmask: Some("0x40".into()),
    };
    let (ap, aq, w) = b.masks();
    assert_eq!(ap, Mask256::range(0, 15));
    assert_eq!(aq.iter().collect::<Vec<_>>(), vec![1]);
    assert!(w.is_empty());
    assert_eq!(b.cmdline(), "ap.apmask=0xffff ap.aqmask=0x40");
    let bad = BootParameters {
        apmask: Some("0xzz".into()),
        aqmask: None,
    };
    let (ap, aq, w) = bad.masks();
    assert_eq!(ap, Mask256::EMPTY);
    assert_eq!(aq, Mask256::FULL);
    assert_eq!(w.len(), 1);
    assert!(w[0]
        .to_string()
        .starts_with("ap.apmask=0xzz is not a valid mask"));
}

#[test]
fn synthetic_full_scale() {
    let t = Topology::synthetic(256, 256);
    assert_eq!(t.queue_count(), 65536);
    assert_eq!(t.configured_adapters(), Mask256::FULL);
}
