//! Placement never breaks isolation: on random hosts (card modes and
//! generations, masks, existing mdevs) and random demands, every placed
//! guest gets only APQNs that were free, of its modes and generation, with
//! its pins, no two guests (or a guest and an existing mdev) share an APQN,
//! a guest that shares nothing has its adapters alone, and the
//! configuration applies through the emulated sysfs without a refusal
//! (the model is the oracle for the kernel's rules). Placing is
//! deterministic.

use apmatrix_admin::place::{field_of, place, DemandsFile, Strategy as Search};
use apmatrix_admin::{apply, observe, Config, EmulatedRoot};
use apmatrix_model::{Apqn, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED};
use proptest::prelude::*;

const TYPES: [&str; 6] = ["CEX8C", "CEX8P", "CEX8A", "CEX6C", "CEX7P", "CEX4A"];

/// A guest's demand: domains, adapters, mode (index), minimum generation,
/// whether it shares adapters, and a pin (adapter, domain).
type GuestCase = (u8, u8, usize, u8, bool, Option<(u8, u8)>);

#[derive(Debug, Clone)]
struct Case {
    cards: Vec<usize>,
    domains: u8,
    apmask_host: Vec<bool>,
    mdev: Option<(u8, u8)>,
    guests: Vec<GuestCase>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(0..TYPES.len(), 1..6),
        2u8..6,
        prop::collection::vec(prop::bool::weighted(0.2), 6),
        prop::option::of((0u8..6, 0u8..6)),
        prop::collection::vec(
            (
                1u8..5,
                1u8..3,
                0usize..3,
                4u8..9,
                prop::bool::weighted(0.8),
                prop::option::weighted(0.2, (0u8..6, 0u8..6)),
            ),
            1..7,
        ),
    )
        .prop_map(|(cards, domains, apmask_host, mdev, guests)| Case {
            cards,
            domains,
            apmask_host,
            mdev,
            guests,
        })
}

fn host_of(c: &Case) -> Host {
    let mut t = format!(
        "name = \"p\"\nmax_adapter_id = 255\nmax_domain_id = 255\nusage_domains = \"0-{}\"\n",
        c.domains - 1
    );
    for (id, ty) in c.cards.iter().enumerate() {
        t.push_str(&format!(
            "\n[[card]]\nid = {id}\ntype = \"{}\"\n",
            TYPES[*ty]
        ));
    }
    let (mut host, _) = Host::boot(Topology::from_toml(&t).unwrap(), &SEED);
    let apmask: Mask256 = (0..6u8).filter(|&a| c.apmask_host[a as usize]).collect();
    host.set_mask(MaskKind::Apmask, apmask).unwrap();
    if let Some((a, d)) = c.mdev {
        let u = uuid::Uuid::from_u128(1);
        host.create_mdev(u).unwrap();
        let _ = host.assign(&u, MatrixAxis::Adapter, a as u64);
        let _ = host.assign(&u, MatrixAxis::Domain, d as u64);
    }
    host
}

fn demands_of(c: &Case) -> String {
    let modes = ["cca", "ep11", "accelerator"];
    let mut t = String::new();
    for (i, (domains, adapters, mode, generation, share, pin)) in c.guests.iter().enumerate() {
        let adapters = (*adapters).min(*domains);
        t.push_str(&format!(
            "\n[[guest]]\nname = \"g{i}\"\ndomains = {domains}\nadapters = {adapters}\nmode = \"{}\"\nmin_generation = {generation}\nshare_adapters = {share}\n",
            modes[*mode]
        ));
        if let Some((a, d)) = pin {
            t.push_str(&format!("pin = [\"{a:02x}.{d:04x}\"]\n"));
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn placements_keep_isolation_and_apply(c in case()) {
        let host = host_of(&c);
        let seen = observe(&EmulatedRoot { host: host.clone() }).unwrap();
        let Ok(demands) = DemandsFile::from_toml(&demands_of(&c)).unwrap().resolve() else {
            // Pins that ask for more than the demand: refused, fine.
            return Ok(());
        };
        for strategy in [Search::Balanced, Search::FirstFit] {
            let p = place(&seen, demands.clone(), strategy);
            let field = field_of(&seen);
            let mut taken: Vec<(Apqn, String)> = Vec::new();
            let mut adapters_of: Vec<(Mask256, bool, String)> = Vec::new();
            for (d, pl) in p.demands.iter().zip(&p.placed) {
                let Some(pl) = pl else { continue };
                prop_assert!(pl.adapters.count() >= d.adapters, "{}: too few adapters", d.name);
                prop_assert!(pl.adapters.count() * pl.domains.count() >= d.domains);
                prop_assert!(d.pin_adapters.is_subset_of(&pl.adapters));
                prop_assert!(d.pin_domains.is_subset_of(&pl.domains));
                for a in pl.adapters.iter() {
                    let k = field.cards.iter().position(|s| s.adapter == a);
                    prop_assert!(k.is_some(), "{}: adapter {a} is no usable card", d.name);
                    let slot = &field.cards[k.unwrap()];
                    prop_assert!(d.modes.contains(&slot.mode), "{}: mode", d.name);
                    prop_assert!(slot.generation >= d.min_generation, "{}: generation", d.name);
                    prop_assert!(pl.domains.is_subset_of(&field.free[k.unwrap()]), "{}: not free", d.name);
                    for dom in pl.domains.iter() {
                        let q = Apqn::new(a, dom);
                        if let Some((_, other)) = taken.iter().find(|(t, _)| *t == q) {
                            prop_assert!(false, "{q} given to {} and {other}", d.name);
                        }
                        taken.push((q, d.name.clone()));
                    }
                }
                adapters_of.push((pl.adapters, d.share_adapters, d.name.clone()));
            }
            for (i, (a, share, name)) in adapters_of.iter().enumerate() {
                if *share {
                    continue;
                }
                prop_assert!(!a.intersects(&field.used), "{name} shares with an existing mdev");
                for (j, (b, _, other)) in adapters_of.iter().enumerate() {
                    prop_assert!(i == j || !a.intersects(b), "{name} shares adapters with {other}");
                }
            }
            // The model applies it: no write refused.
            let config = Config::from_toml(&p.config_toml()).unwrap().resolve().unwrap();
            let mut root = EmulatedRoot { host: host.clone() };
            let applied = apply(&mut root, &config, false);
            prop_assert!(applied.is_ok(), "{:?}\n{}", applied.err(), p.config_toml());
            prop_assert_eq!(place(&seen, demands.clone(), strategy).config_toml(), p.config_toml());
        }
    }
}
