use super::*;
use crate::error::Errno;

fn u(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn default_host_binds_every_queue_to_zcrypt() {
    let h = Host::seed_example();
    assert_eq!(h.queues_bound_to(Driver::Cex4Queue).len(), 18);
    assert!(h.queues_bound_to(Driver::VfioAp).is_empty());
    assert_eq!(h.bindings_count(), (18, 18));
    assert_eq!(h.available_instances(), 65536);
}

#[test]
fn unchanged_mask_write_does_not_reprobe() {
    let mut h = Host::seed_example();
    let e = h
        .write_mask(MaskKind::Apmask, format!("{}\n", Mask256::FULL).as_bytes())
        .unwrap();
    assert_eq!(e, Effects::default());
    let e = h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    assert!(e.reprobed);
    assert_eq!(e.rebound_queues(), 6);
    let e = h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    assert!(!e.reprobed, "clearing an already clear bit changes nothing");
}

#[test]
fn old_cards_stay_unbound_when_not_host_owned() {
    let mut t = Topology::seed_example();
    t.cards.get_mut(&AdapterId(4)).unwrap().hwtype = 9;
    let mut h = Host::new(t, &SEED);
    h.write_mask(MaskKind::Apmask, b"-4").unwrap();
    assert_eq!(h.queue_driver(Apqn::new(4, 4)), Some(None));
    assert_eq!(h.bindings_count(), (12, 18));
    // vfio_ap cannot use it, but the masks make it available: the seed
    // rule accepts the assignment (over-provisioning).
    let m = u(1);
    h.create_mdev(m).unwrap();
    h.assign(&m, MatrixAxis::Adapter, 4).unwrap();
    h.assign(&m, MatrixAxis::Domain, 4).unwrap();
    h.start_guest("g", Some(m), CpuModel::default()).unwrap();
    let view = h.guest_view("g").unwrap();
    assert!(view.cards.is_empty());
    assert!(
        view.notes[0].contains("queue 04.0004 is not bound to vfio_ap"),
        "{:?}",
        view.notes
    );
}

#[test]
fn state_round_trip_is_exact() {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    h.create_mdev(u(7)).unwrap();
    h.assign(&u(7), MatrixAxis::Adapter, 5).unwrap();
    h.assign(&u(7), MatrixAxis::Domain, 4).unwrap();
    h.assign(&u(7), MatrixAxis::ControlDomain, 4).unwrap();
    h.start_guest("Guest1", Some(u(7)), CpuModel::default())
        .unwrap();
    let again = Host::from_state(h.to_state()).unwrap();
    assert_eq!(again, h);
}

/// A guest whose CPU has no APQCI assumes no APXA (ids 63 and 15): its bus
/// keeps no control domain above 15, so the host it is part of saves and
/// loads (it once kept 0xab, and the state written could not be read).
#[test]
fn a_guest_without_apqci_round_trips_with_control_domains_above_its_limit() {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    h.create_mdev(u(7)).unwrap();
    for (axis, id) in [
        (MatrixAxis::Adapter, 5),
        (MatrixAxis::Domain, 4),
        (MatrixAxis::Domain, 0xab),
        (MatrixAxis::ControlDomain, 4),
        (MatrixAxis::ControlDomain, 0xab),
    ] {
        h.assign(&u(7), axis, id).unwrap();
    }
    let cpu = CpuModel::from_features("ap=on,apqci=off,apft=on").unwrap();
    h.start_guest("Guest1", Some(u(7)), cpu).unwrap();
    let bus = h.guest_bus("Guest1").unwrap();
    assert_eq!(bus.topology().control_domains, Mask256::single(4));
    assert_eq!(bus.topology().usage_domains, Mask256::single(4));
    let again = Host::from_state(h.to_state()).unwrap();
    assert_eq!(again, h);
}

/// A pending HMC change is saved and loaded with the host; one that could
/// not be this host's (other maximum ids) is refused; the form earlier
/// versions wrote (`lpar_usage_domains`) still loads.
#[test]
fn pending_lpar_changes_load_checked() {
    let mut h = Host::seed_example();
    h.add_lpar_adapter(crate::topology::Card::new(
        AdapterId(9),
        14,
        crate::topology::CardMode::CcaCoproc,
    ))
    .unwrap();
    let state = h.to_state();
    assert!(state.lpar.is_some());
    assert_eq!(Host::from_state(state.clone()).unwrap(), h);

    let mut other = state.clone();
    other.lpar.as_mut().unwrap().apxa = false;
    let e = Host::from_state(other).unwrap_err().to_string();
    assert!(e.contains("other maximum ids"), "{e}");

    let mut legacy = Host::seed_example().to_state();
    let mut usage = legacy.topology.usage_domains;
    usage.set(9);
    legacy.lpar_usage_domains = Some(usage);
    let loaded = Host::from_state(legacy).unwrap();
    assert!(loaded.lpar_changed());
    assert!(loaded.lpar().usage_domains.contains(9));
    assert!(
        loaded.to_state().lpar_usage_domains.is_none(),
        "written in the new form"
    );
}

#[test]
fn state_validation_refuses_insecure_files() {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    h.create_mdev(u(1)).unwrap();
    h.create_mdev(u(2)).unwrap();
    for m in [u(1), u(2)] {
        h.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    }
    h.assign(&u(1), MatrixAxis::Domain, 4).unwrap();
    let good = h.to_state();

    let mut shared = good.clone();
    shared.mdevs[1].domains.set(4);
    assert!(Host::from_state(shared)
        .unwrap_err()
        .to_string()
        .contains("APQN 05.0004 is assigned to mdev"));

    let mut owned = good.clone();
    owned.apmask = Mask256::FULL;
    assert!(Host::from_state(owned)
        .unwrap_err()
        .to_string()
        .contains("the masks give it to the host"));

    let mut two_guests = good.clone();
    for name in ["a", "b"] {
        two_guests.guests.push(GuestState {
            name: name.into(),
            mdev: Some(u(1)),
            cpu: CpuModel::default(),
            bus: None,
        });
    }
    assert!(Host::from_state(two_guests)
        .unwrap_err()
        .to_string()
        .contains("already used by guest a"));

    let mut ghost = good.clone();
    ghost.guests.push(GuestState {
        name: "x".into(),
        mdev: Some(u(9)),
        cpu: CpuModel::default(),
        bus: None,
    });
    assert!(Host::from_state(ghost).is_err());

    let mut future = good.clone();
    future.format = 2;
    assert!(Host::from_state(future)
        .unwrap_err()
        .to_string()
        .contains("format 2"));

    let mut big = good;
    big.mdevs[0].adapters.set(255);
    big.topology.qci_max_adapter_id = 63;
    assert!(Host::from_state(big)
        .unwrap_err()
        .to_string()
        .contains("above the host's maximum"));
}

#[test]
fn writes_of_zero_bytes_change_nothing() {
    let mut h = Host::seed_example();
    let m = h
        .write_create(b"669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4")
        .unwrap()
        .unwrap();
    let before = h.clone();
    assert_eq!(h.write_create(b""), Ok(None));
    assert_eq!(h.write_mask(MaskKind::Apmask, b""), Ok(Effects::default()));
    for axis in MatrixAxis::ALL {
        assert_eq!(h.write_assign(&m, axis, b""), Ok(Effects::default()));
        assert_eq!(h.write_unassign(&m, axis, b""), Ok(Effects::default()));
    }
    assert_eq!(h.write_remove(&m, b""), Ok(()));
    assert_eq!(h, before);
    // ...but one newline is a write: the empty absolute mask.
    h.write_mask(MaskKind::Apmask, b"\n").unwrap();
    assert_eq!(h.apmask(), Mask256::EMPTY);
}

#[test]
fn default_domain_is_chosen_by_the_first_scan() {
    assert_eq!(Host::seed_example().bus().default_domain, Some(4));
    // aqmask without domain 4 at boot: the next usage domain
    let mut t = Topology::seed_example();
    t.boot.aqmask = Some("-4".into()); // relative onto the cleared mask: empty
    let mut h = Host::new(t.clone(), &SEED);
    assert_eq!(h.bus().default_domain, None);
    h.write_mask(MaskKind::Aqmask, b"+5").unwrap();
    h.rescan();
    assert_eq!(h.bus().default_domain, Some(5));
    t.boot.aqmask = Some("0x07".into()); // bits 5, 6, 7
    assert_eq!(Host::new(t, &SEED).bus().default_domain, Some(5));
}

#[test]
fn guest_names_are_checked() {
    let mut h = Host::seed_example();
    for bad in ["", "a b", "a/b", &"x".repeat(65)] {
        assert_eq!(
            h.start_guest(bad, None, CpuModel::default())
                .unwrap_err()
                .errno(),
            Errno::EINVAL
        );
    }
    h.start_guest("vm-1", None, CpuModel::default()).unwrap();
    assert_eq!(
        h.start_guest("vm-1", None, CpuModel::default())
            .unwrap_err()
            .errno(),
        Errno::EEXIST
    );
}
