use apmatrix_model::{Host, MaskKind, Topology, SEED};

use super::*;
use crate::{check, observe, Config, EmulatedRoot, Severity};

fn demands(text: &str) -> Vec<Demand> {
    DemandsFile::from_toml(text).unwrap().resolve().unwrap()
}

fn seen(host: Host) -> Observed {
    observe(&EmulatedRoot { host }).unwrap()
}

/// The placement's configuration, and `check`'s errors on it.
fn checked(seen: &Observed, p: &Placement) -> Vec<String> {
    let config = Config::from_toml(&p.config_toml())
        .unwrap()
        .resolve()
        .unwrap();
    check(&config, seen)
        .into_iter()
        .filter(|pr| pr.severity == Severity::Error)
        .map(|pr| pr.message)
        .collect()
}

fn host_of(toml: &str) -> Host {
    let (host, warnings) = Host::boot(Topology::from_toml(toml).unwrap(), &SEED);
    assert!(warnings.is_empty());
    host
}

/// `cards` CEX8 cards of `types` in turn, usage domains 0 to `domains - 1`,
/// every adapter given to vfio_ap.
fn lpar(cards: u8, domains: u8, types: &[&str]) -> Host {
    let mut t = format!(
        "name = \"test\"\nmax_adapter_id = 255\nmax_domain_id = 255\nusage_domains = \"0-{}\"\n",
        domains - 1
    );
    for id in 0..cards {
        t.push_str(&format!(
            "\n[[card]]\nid = {id}\ntype = \"{}\"\n",
            types[id as usize % types.len()]
        ));
    }
    let mut host = host_of(&t);
    host.write_mask(MaskKind::Apmask, b"0x0").unwrap();
    host
}

fn placed(p: &Placement, name: &str) -> Option<(String, String)> {
    let i = p.demands.iter().position(|d| d.name == name).unwrap();
    p.placed[i]
        .as_ref()
        .map(|pl| (pl.adapters.to_hex_list(), pl.domains.to_hex_list()))
}

#[test]
fn the_seed_documents_guests_are_placed_from_demands_and_check_accepts_them() {
    let mut host = Host::seed_example();
    // As the document does first: adapters 05 and 06 leave the host.
    host.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let seen = seen(host);
    let p = place(
        &seen,
        demands(
            r#"
[[guest]]
name = "Guest1"
domains = 4
adapters = 2
mode = ["cca", "accelerator"]

[[guest]]
name = "Guest2"
domains = 2
mode = "cca"

[[guest]]
name = "Guest3"
domains = 2
mode = "accelerator"
"#,
        ),
        Strategy::Balanced,
    );
    assert_eq!(p.met(), 3, "{:?}", p.reasons);
    assert_eq!(
        checked(&seen, &p),
        Vec::<String>::new(),
        "{}",
        p.config_toml()
    );
    let (a1, d1) = placed(&p, "Guest1").unwrap();
    assert_eq!(a1, "0x05-0x06");
    assert_eq!(
        d1.split(',').count(),
        2,
        "two domains on each of two adapters"
    );
    // Deterministic: the same input places the same way.
    let again = place(&seen, p.demands.clone(), Strategy::Balanced);
    assert_eq!(again.config_toml(), p.config_toml());
}

#[test]
fn a_set_with_exactly_one_feasible_layout_is_found_where_greedy_alone_misses_it() {
    // Two CCA adapters, domains 0 to 2. c is pinned to domain 2 on both
    // adapters; a needs domain 1 and one more APQN; b one domain on both
    // adapters. a on one adapter ({00} x {0,1}, the fewest adapters, first
    // in a's options) leaves b no domain free on both: the one layout is
    // a = {00,01} x {1}, b = {00,01} x {0}, c = {00,01} x {2}.
    let host = lpar(2, 3, &["CEX8C"]);
    let seen = seen(host);
    let p = place(
        &seen,
        demands(
            r#"
[defaults]
mode = "cca"
domains = 2

[[guest]]
name = "a"
pin_domains = "1"

[[guest]]
name = "b"
adapters = 2

[[guest]]
name = "c"
adapters = 2
pin_domains = "2"
"#,
        ),
        Strategy::Balanced,
    );
    assert_eq!(p.met(), 3, "{:?}", p.reasons);
    assert_eq!(
        placed(&p, "a").unwrap(),
        ("0x00-0x01".into(), "0x01".into())
    );
    assert_eq!(
        placed(&p, "b").unwrap(),
        ("0x00-0x01".into(), "0x00".into())
    );
    assert_eq!(
        placed(&p, "c").unwrap(),
        ("0x00-0x01".into(), "0x02".into())
    );
    assert!(p.nodes > 4, "found by going back, not by the first descent");
    assert_eq!(checked(&seen, &p), Vec::<String>::new());
    // First-fit, in file order, gives a both domains 0 and 1 of adapter 00
    // and then cannot place all three.
    let naive = place(&seen, p.demands.clone(), Strategy::FirstFit);
    assert_eq!(naive.met(), 2, "{}", naive.config_toml());
}

#[test]
fn every_unmet_demand_is_reported_with_its_reason() {
    // Cards: 00 CEX8C, 01 CEX8P, 02 CEX8A, 03 CEX6C; domains 0-1.
    let host = lpar(4, 2, &["CEX8C", "CEX8P", "CEX8A", "CEX6C"]);
    let seen = seen(host);
    let p = place(
        &seen,
        demands(
            r#"
[defaults]
mode = "ep11"

[[guest]]
name = "Guest7"
domains = 2
adapters = 2

[[guest]]
name = "old"
mode = "cca"
min_generation = 8
domains = 4
adapters = 2

[[guest]]
name = "pinned"
mode = "cca"
pin = ["02.0000"]

[[guest]]
name = "fits"
mode = "accelerator"
"#,
        ),
        Strategy::Balanced,
    );
    assert_eq!(p.met(), 1);
    assert!(placed(&p, "fits").is_some());
    let reasons: Vec<String> = p.unmet_json().into_iter().map(|u| u.reason).collect();
    assert_eq!(
        reasons,
        [
            "Guest7 needs 2 EP11 domains on 2 adapters; only adapter 0x01 has EP11 domains free",
            "old needs 4 CCA domains on 2 adapters of CEX8 or later; only adapter 0x00 has CCA domains free",
            "pinned needs 1 CCA domain on 1 adapter; its pinned adapter 0x02 is in accelerator mode",
        ]
    );
    assert!(p
        .config_toml()
        .contains("# not placed: Guest7 needs 2 EP11 domains"));
}

#[test]
fn pins_are_honoured_and_a_guest_that_shares_nothing_gets_adapters_of_its_own() {
    let host = lpar(4, 4, &["CEX8C"]);
    let seen = seen(host);
    let p = place(
        &seen,
        demands(
            r#"
[defaults]
mode = "cca"

[[guest]]
name = "pinned"
domains = 2
adapters = 2
pin = ["03.0002"]

[[guest]]
name = "alone"
domains = 2
adapters = 2
share_adapters = false

[[guest]]
name = "crowd"
domains = 4
adapters = 2
"#,
        ),
        Strategy::Balanced,
    );
    assert_eq!(p.met(), 3, "{:?}", p.reasons);
    let (pa, pd) = placed(&p, "pinned").unwrap();
    assert!(pa.contains("0x03") && pd == "0x02", "{pa} {pd}");
    let (alone, _) = placed(&p, "alone").unwrap();
    for other in ["pinned", "crowd"] {
        let (a, _) = placed(&p, other).unwrap();
        let mine: Mask256 = apmatrix_model::parse::parse_id_set(&alone).unwrap();
        let theirs: Mask256 = apmatrix_model::parse::parse_id_set(&a).unwrap();
        assert!(
            !mine.intersects(&theirs),
            "alone {alone} shares with {other} {a}"
        );
    }
    assert_eq!(checked(&seen, &p), Vec::<String>::new());
}

#[test]
fn existing_mdevs_and_host_owned_apqns_are_left_alone() {
    let mut host = lpar(2, 2, &["CEX8C"]);
    // Domain 1 stays the host's on adapter 01; an mdev has 00.0000.
    host.write_mask(MaskKind::Apmask, b"+1").unwrap();
    let u = uuid::Uuid::from_u128(7);
    host.create_mdev(u).unwrap();
    host.assign(&u, apmatrix_model::MatrixAxis::Adapter, 0)
        .unwrap();
    host.assign(&u, apmatrix_model::MatrixAxis::Domain, 0)
        .unwrap();
    let seen = seen(host);
    let field = field_of(&seen);
    let free: Vec<String> = field.free.iter().map(|m| m.to_hex_list()).collect();
    assert_eq!(free, ["0x01", "-"]);
    assert!(field.used.contains(0));
    let p = place(
        &seen,
        demands("[[guest]]\nname = \"g\"\nmode = \"cca\"\ndomains = 2\n"),
        Strategy::Balanced,
    );
    assert_eq!(
        p.reasons[0].as_deref(),
        Some("g needs 2 CCA domains on 1 adapter; no 2 domains are free on 1 of the CCA adapter 0x00 at once (an mdev has each of its domains on each of its adapters)")
    );
}

#[test]
fn bad_demands_name_the_guest_and_the_rule() {
    for (text, says) in [
        (
            "[[guest]]\nmode = \"cca\"\n",
            "[[guest]] number 1: give it a name",
        ),
        ("[[guest]]\nname = \"g\"\n", "guest g: give its mode"),
        (
            "[[guest]]\nname = \"g\"\nmode = \"qkd\"\n",
            "guest g: mode \"qkd\" is not a card mode",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\ndomains = 1\nadapters = 2\n",
            "guest g: adapters = 2",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\nmin_generation = 3\n",
            "min_generation = 3",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\npin = [\"05:0004\"]\n",
            "guest g: pin: \"05:0004\" is not an APQN",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\n\n[[guest]]\nname = \"g\"\nmode = \"cca\"\n",
            "named twice",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\ndomains = 1\npin_adapters = \"1,2\"\n",
            "its pins",
        ),
        (
            "[[guest]]\nname = \"g\"\nmode = \"cca\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
    ] {
        let err = DemandsFile::from_toml(text)
            .and_then(|f| f.resolve())
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{text:?}: {err}");
    }
}

#[test]
fn balanced_spreads_the_load_where_first_fit_piles_it_up() {
    let host = lpar(8, 8, &["CEX8C"]);
    let seen = seen(host);
    let mut text = String::from("[defaults]\nmode = \"cca\"\ndomains = 1\n");
    for i in 0..8 {
        text.push_str(&format!("\n[[guest]]\nname = \"g{i}\"\n"));
    }
    let load = |p: &Placement| {
        let mut per = [0u32; 8];
        for pl in p.placed.iter().flatten() {
            for a in pl.adapters.iter() {
                per[a as usize] += pl.domains.count();
            }
        }
        per
    };
    let balanced = place(&seen, demands(&text), Strategy::Balanced);
    assert_eq!(load(&balanced), [1; 8]);
    let naive = place(&seen, demands(&text), Strategy::FirstFit);
    assert_eq!(load(&naive), [8, 0, 0, 0, 0, 0, 0, 0]);
}
