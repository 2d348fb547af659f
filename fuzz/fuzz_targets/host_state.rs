//! Saved host states: `HostState` from TOML, then `Host::from_state`, which
//! must refuse every state that breaks isolation (seed-system.md rules 2-4,
//! kernel.md §3, §6): no APQN in two mdevs, no assigned APQN that apmask and
//! aqmask give to the host, no guest seeing a queue vfio_ap does not hold.
//!
//! Input: the state file (UTF-8 TOML).
#![no_main]

use apmatrix_model::vfio::cross;
use apmatrix_model::{Driver, Host, HostState, Mask256, MatrixAxis};
use libfuzzer_sys::fuzz_target;

fn check_isolation(host: &Host) {
    let (apmask, aqmask) = (host.apmask(), host.aqmask());
    let mdevs: Vec<_> = host.mdevs().collect();
    for (i, m) in mdevs.iter().enumerate() {
        // Assigned APQNs are never the host's (apmask x aqmask).
        let (owned_a, owned_d) = (m.adapters.and(&apmask), m.domains.and(&aqmask));
        let owned = cross(&owned_a, &owned_d).next();
        if let Some(q) = owned {
            panic!("APQN {q} of mdev {} is host-owned", m.uuid);
        }
        // No APQN in two mdevs.
        for other in &mdevs[i + 1..] {
            let shared_a = m.adapters.and(&other.adapters);
            let shared_d = m.domains.and(&other.domains);
            let shared = cross(&shared_a, &shared_d).next();
            if let Some(q) = shared {
                panic!("APQN {q} is in mdevs {} and {}", m.uuid, other.uuid);
            }
        }
        for axis in MatrixAxis::ALL {
            if let Some(id) = m.axis(axis).last() {
                assert!(id <= host.max_id(axis), "{axis} {id} above the maximum");
            }
        }
    }
}

fn check_guests(host: &Host) {
    let mut users = std::collections::BTreeMap::new();
    for g in host.guests() {
        let Some(uuid) = g.mdev else {
            assert_eq!(g.crycb, Default::default(), "guest {} without mdev", g.name);
            continue;
        };
        if let Some(first) = users.insert(uuid, &g.name) {
            panic!("mdev {uuid} used by guests {first} and {}", g.name);
        }
        assert_eq!(host.guest_of(&uuid), Some(g.name.as_str()));
        let m = host.mdev(&uuid).expect("a guest's mdev exists");
        // The CRYCB never exceeds the mdev's matrix ...
        assert!(g.crycb.apm.is_subset_of(&m.adapters));
        assert!(g.crycb.aqm.is_subset_of(&m.domains));
        assert!(g.crycb.adm.is_subset_of(&m.control_domains));
        // ... and every queue in it is held by vfio_ap.
        for q in g.crycb.apqns() {
            assert_eq!(
                host.queue_driver(q),
                Some(Some(Driver::VfioAp)),
                "guest {} has {q}",
                g.name
            );
        }
    }
}

fn check_bindings(host: &Host) {
    let usage = host.topology().usage_domains;
    for card in host.topology().cards.values() {
        let a = card.id;
        let zcrypt = host.bound_domains(a, Driver::Cex4Queue);
        let vfio = host.bound_domains(a, Driver::VfioAp);
        assert!(!zcrypt.intersects(&vfio));
        let owned = if host.apmask().contains(a.0) {
            host.aqmask().and(&usage)
        } else {
            Mask256::EMPTY
        };
        assert_eq!(
            zcrypt, owned,
            "card {a}: cex4queue must hold exactly the host's queues"
        );
        assert!(vfio.is_subset_of(&usage.and_not(&owned)));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(state) = toml::from_str::<HostState>(text) else {
        return;
    };
    // The file form round-trips on its own.
    let printed = toml::to_string(&state).expect("a state serialises");
    let reread: HostState =
        toml::from_str(&printed).unwrap_or_else(|e| panic!("own output refused: {e}\n{printed}"));
    assert_eq!(reread, state);

    let Ok(host) = Host::from_state(state.clone()) else {
        return;
    };
    assert_eq!((host.apmask(), host.aqmask()), (state.apmask, state.aqmask));
    assert_eq!(host.mdev_count(), state.mdevs.len());
    assert_eq!(host.bus(), &state.bus);
    if let Some(d) = host.bus().default_domain {
        assert!(d <= host.max_id(MatrixAxis::Domain), "ap_domain {d}");
    }
    check_isolation(&host);
    check_guests(&host);
    check_bindings(&host);

    // Saving and loading again gives the same host.
    let saved = host.to_state();
    let again = Host::from_state(saved.clone()).expect("a host's own state loads");
    assert_eq!(again, host);
    assert_eq!(again.to_state(), saved);
});
