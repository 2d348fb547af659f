//! The kernel generations side by side: each test is one rule of
//! shared/spec/kernel.md that differs between OLD (4.20-5.19; `old-5.15`
//! from 5.15 differs in `remove` only), DYN
//! (6.0-6.9), NEW (6.10+) and the seed series, named after the rule and
//! citing its section, and run on every profile with its answer per profile.

use apmatrix_model::profile::{DYN, NEW, OLD, PROFILES};
use apmatrix_model::{
    AdapterId, Apqn, CpuModel, Driver, Errno, Host, KernelProfile, MaskKind, MatrixAxis, Topology,
    WriteTarget, SEED,
};
use uuid::Uuid;

const GUEST1: u128 = 0x669d9b23_fe1b_4ecd_be08_e42dc3f5d3c4;
const GUEST2: u128 = 0x8da4a3cb_2b3a_4c52_9b8d_1f09e1ee38c0;
const GUEST3: u128 = 0x3b5ae7b1_a3a3_4d4d_8c5c_6e4b4e1a6c01;

/// The generation a profile belongs to: `old-5.15` is OLD but for `remove`.
fn era(profile: &KernelProfile) -> &'static str {
    match profile.name {
        "old-5.15" => "old",
        name => name,
    }
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn errno<T: std::fmt::Debug>(r: Result<T, apmatrix_model::ApError>) -> Errno {
    r.unwrap_err().errno()
}

/// The seed document's walkthrough up to its three configured mdevs,
/// through the same writes the document's `echo` commands make.
fn walkthrough(profile: &'static KernelProfile) -> Host {
    let mut host = Host::new(Topology::seed_example(), profile);
    host.write_mask(MaskKind::Apmask, b"-5,-6\n").unwrap();
    // (mdev, the `echo`ed adapters, the `echo`ed domains)
    let matrices = [
        (GUEST1, "5 6", "4 0xab"),
        (GUEST2, "5", "0x47 0xff"),
        (GUEST3, "6", "0x47 0xff"),
    ];
    for (n, adapters, domains) in matrices {
        let m = host
            .write_create(format!("{}\n", uuid(n)).as_bytes())
            .unwrap()
            .unwrap();
        for a in adapters.split(' ') {
            host.write_assign(&m, MatrixAxis::Adapter, format!("{a}\n").as_bytes())
                .unwrap();
        }
        for d in domains.split(' ') {
            host.write_assign(&m, MatrixAxis::Domain, format!("{d}\n").as_bytes())
                .unwrap();
        }
    }
    host
}

/// The walkthrough with Guest1 running on its mdev, and Guest1's CRYCB.
fn guest1_running(profile: &'static KernelProfile) -> (Host, apmatrix_model::Crycb) {
    let mut host = walkthrough(profile);
    start(&mut host, "Guest1", GUEST1);
    let crycb = host.guest("Guest1").unwrap().crycb;
    (host, crycb)
}

fn start(host: &mut Host, name: &str, mdev: u128) {
    host.start_guest(name, Some(uuid(mdev)), CpuModel::default())
        .unwrap();
}

/// §3 "Errno by era": a mask write that would give the host an assigned
/// APQN. The document's `echo +5 > apmask`.
#[test]
fn mask_write_taking_an_assigned_apqn_is_refused_by_era() {
    for profile in PROFILES {
        let mut host = walkthrough(profile);
        start(&mut host, "Guest2", GUEST2);
        let result = host.write_mask(MaskKind::Apmask, b"+5");
        let q = Apqn::new(5, 0x47);
        match era(profile) {
            "seed" => assert_eq!(errno(result), Errno::EADDRINUSE),
            "dyn" | "new" => assert_eq!(errno(result), Errno::EBUSY),
            "old" => {
                // Accepted: the queue goes back to zcrypt, the mdev keeps it
                // in its matrix and the running guest in its CRYCB (the leak
                // the old document's "Limitations" admits).
                result.unwrap();
                assert_eq!(host.queue_driver(q), Some(Some(Driver::Cex4Queue)));
                assert!(host.mdev(&uuid(GUEST2)).unwrap().contains(q));
                assert!(host.guest("Guest2").unwrap().crycb.contains(q));
                continue;
            }
            other => panic!("no expectation for profile {other}"),
        }
        assert_eq!(
            host.queue_driver(q),
            Some(Some(Driver::VfioAp)),
            "{}",
            profile.name
        );
        assert!(
            !host.apmask().contains(5),
            "{}: refused writes change nothing",
            profile.name
        );
    }
}

/// §6 "OLD (≤5.19) semantics", §8: every assign/unassign store returns
/// EBUSY while a guest uses the mdev, before its input is parsed.
#[test]
fn stores_while_a_guest_runs_are_ebusy_on_old_and_hot_plug_after() {
    for profile in PROFILES {
        let mut host = walkthrough(profile);
        start(&mut host, "Guest1", GUEST1);
        let m = uuid(GUEST1);
        let garbage = host.write_assign(&m, MatrixAxis::Domain, b"not a number");
        let unplug = host.write_unassign(&m, MatrixAxis::Adapter, b"6");
        if era(profile) == "old" {
            assert_eq!(errno(garbage), Errno::EBUSY, "before parsing");
            assert_eq!(errno(unplug), Errno::EBUSY);
            assert!(host.guest("Guest1").unwrap().crycb.apm.contains(6));
        } else {
            assert_eq!(errno(garbage), Errno::EINVAL, "{}", profile.name);
            let effects = unplug.unwrap();
            assert_eq!(
                effects.guest_updates.len(),
                1,
                "{}: hot unplug",
                profile.name
            );
            assert!(!host.guest("Guest1").unwrap().crycb.apm.contains(6));
        }
    }
}

/// §6 OLD: availability means bound to vfio_ap, with the "at least one
/// queue of the id" rule while nothing is crossed yet.
#[test]
fn availability_is_binding_on_old_and_the_masks_after() {
    for profile in PROFILES {
        let mut host = Host::new(Topology::seed_example(), profile);
        let m = uuid(1);
        host.create_mdev(m).unwrap();
        // Nothing is crossed: any in-range adapter is accepted after OLD,
        // even one the masks give the host.
        let first = host.assign(&m, MatrixAxis::Adapter, 5);
        host.write_mask(MaskKind::Apmask, b"-5").unwrap();
        if era(profile) == "old" {
            assert_eq!(
                errno(first),
                Errno::EADDRNOTAVAIL,
                "no queue of 05 on vfio_ap"
            );
            host.assign(&m, MatrixAxis::Adapter, 5).unwrap();
        } else {
            first.unwrap();
        }
        // Crossing a host-owned queue: EADDRNOTAVAIL on every generation.
        host.assign(&m, MatrixAxis::Domain, 4)
            .unwrap_or_else(|e| panic!("{}: 05.0004 is free for vfio_ap: {e}", profile.name));
        assert_eq!(
            errno(host.assign(&m, MatrixAxis::Adapter, 4)),
            Errno::EADDRNOTAVAIL,
            "{}",
            profile.name
        );
    }
}

/// §7: assigning an assigned id is a success without checks after OLD, a
/// success only if the checks pass again on OLD.
#[test]
fn reassigning_revalidates_only_on_old() {
    for profile in PROFILES {
        let mut host = walkthrough(profile);
        let m = uuid(GUEST2);
        // OLD lets apmask take adapter 5 back; its queues are then
        // zcrypt's, and re-assigning adapter 5 fails the check it re-runs.
        // Later kernels refuse the mask write, and a re-assign is a no-op.
        if era(profile) != "old" {
            host.write_assign(&m, MatrixAxis::Adapter, b"5").unwrap();
            continue;
        }
        host.write_mask(MaskKind::Apmask, b"+5").unwrap();
        assert_eq!(
            errno(host.write_assign(&m, MatrixAxis::Adapter, b"5")),
            Errno::EADDRNOTAVAIL,
            "re-validated against binding"
        );
    }
}

/// §8: OLD gives the guest the raw matrix; later kernels filter it to the
/// host's configuration and drop adapters with a queue not on vfio_ap.
#[test]
fn the_guest_gets_the_raw_matrix_on_old_and_a_filtered_one_after() {
    for profile in PROFILES {
        let mut host = walkthrough(profile);
        let m = uuid(GUEST3);
        if era(profile) != "old" {
            // 0x20 has no card: not in the host's configuration.
            host.write_mask(MaskKind::Apmask, b"-0x20").unwrap();
            host.write_assign(&m, MatrixAxis::Adapter, b"0x20").unwrap();
        }
        start(&mut host, "Guest3", GUEST3);
        let crycb = host.guest("Guest3").unwrap().crycb;
        if era(profile) == "old" {
            assert_eq!(crycb.apm, host.mdev(&m).unwrap().adapters);
        } else {
            assert!(!crycb.apm.contains(0x20), "{}", profile.name);
            assert!(crycb.apm.contains(6), "{}", profile.name);
        }
    }
}

/// §3: vfio_ap's device list ends at CEX7 (hwtype 13) on OLD and at CEX8
/// (14) after.
#[test]
fn vfio_ap_drives_cex8_only_after_old() {
    let text = "name = \"cex8\"\nusage_domains = \"1\"\ncontrol_domains = \"1\"\n\n[[card]]\nid = 1\ntype = \"CEX8C\"\n";
    for profile in PROFILES {
        let mut host = Host::new(Topology::from_toml(text).unwrap(), profile);
        host.write_mask(MaskKind::Apmask, b"-1").unwrap();
        let driver = host.queue_driver(Apqn::new(1, 1)).unwrap();
        let expected = if era(profile) == "old" {
            None
        } else {
            Some(Driver::VfioAp)
        };
        assert_eq!(driver, expected, "{}", profile.name);
    }
    assert!(OLD.vfio_ap_drives(13) && !OLD.vfio_ap_drives(14));
    assert!(NEW.vfio_ap_drives(14) && !NEW.vfio_ap_drives(9));
}

/// §3 and §10.2: an unchanged mask write re-probes on OLD (and, as far as
/// kernel.md tells, DYN); NEW and the seed series return at once.
#[test]
fn an_unchanged_mask_write_reprobes_before_new() {
    for profile in PROFILES {
        let mut host = Host::new(Topology::seed_example(), profile);
        let effects = host.write_mask(MaskKind::Aqmask, b"+4").unwrap();
        let reprobed = matches!(era(profile), "old" | "dyn");
        assert_eq!(effects.reprobed, reprobed, "{}", profile.name);
        assert!(
            effects.rebinds.is_empty(),
            "{}: nothing moves",
            profile.name
        );
    }
}

/// §5: with `available_instances` exhausted, create is EPERM where vfio_ap
/// counts (OLD, seed) and EUSERS where the mdev core does (DYN, NEW).
#[test]
fn exhausted_instances_are_eperm_before_the_mdev_core_and_eusers_after() {
    for profile in PROFILES {
        // The profile's own errno, with a limit of one instance.
        let one: &'static KernelProfile = Box::leak(Box::new(KernelProfile {
            max_instances: 1,
            ..**profile
        }));
        let mut host = Host::new(Topology::seed_example(), one);
        host.create_mdev(uuid(1)).unwrap();
        let expected = match era(profile) {
            "old" | "seed" => Errno::EPERM,
            _ => Errno::EUSERS,
        };
        assert_eq!(
            errno(host.create_mdev(uuid(2))),
            expected,
            "{}",
            profile.name
        );
        assert_eq!(profile.max_instances, 65536);
    }
}

/// §1: `poll_thread` is sscanf("%d") on OLD's bus (and the seed series'),
/// kstrtobool after; `poll_timeout` 0 is refused only on OLD's.
#[test]
fn poll_attributes_parse_by_era() {
    for profile in PROFILES {
        let mut host = Host::new(Topology::seed_example(), profile);
        let scanf = matches!(era(profile), "old" | "seed");
        let two = host.write(WriteTarget::PollThread, b"2\n");
        let yes = host.write(WriteTarget::PollThread, b"yes\n");
        let zero = host.write(WriteTarget::PollTimeout, b"0\n");
        if scanf {
            two.unwrap();
            assert!(host.bus().poll_thread, "{}: 2 is non-zero", profile.name);
            assert_eq!(errno(yes), Errno::EINVAL, "{}", profile.name);
            assert_eq!(errno(zero), Errno::EINVAL, "{}", profile.name);
        } else {
            assert_eq!(errno(two), Errno::EINVAL, "{}", profile.name);
            yes.unwrap();
            assert!(host.bus().poll_thread);
            zero.unwrap();
            assert_eq!(host.bus().poll_timeout, 0);
        }
    }
}

/// §4 "Queue via vfio_ap": `in use` while the mdev has a guest (DYN, seed),
/// and on NEW only for APQNs also in the guest's matrix.
#[test]
fn queue_status_in_use_follows_the_guest_matrix_on_new() {
    for profile in [&SEED, &DYN, &NEW] {
        let mut host = walkthrough(profile);
        start(&mut host, "Guest1", GUEST1);
        // Card 6 deconfigured from the HMC: its queues stay bound to
        // vfio_ap, but adapter 6 leaves the guest's matrix.
        host.write(WriteTarget::CardConfig(AdapterId(6)), b"0")
            .unwrap();
        let q = Apqn::new(6, 4);
        assert!(!host.guest("Guest1").unwrap().crycb.contains(q));
        let expected = if profile.name == "new" {
            "assigned"
        } else {
            "in use"
        };
        assert_eq!(
            host.vfio_queue_status(q),
            Some(expected),
            "{}",
            profile.name
        );
        assert_eq!(host.vfio_queue_status(Apqn::new(5, 4)), Some("in use"));
    }
}

/// §6 "ap_config write" (NEW): the whole matrix in one write, as ap-check
/// writes it; checked as a whole, ENODEV only after the other checks, and
/// nothing changed on a refusal; a running guest follows at once.
#[test]
fn ap_config_replaces_the_whole_matrix_at_once_on_new() {
    let mut host = walkthrough(&NEW);
    start(&mut host, "Guest1", GUEST1);
    let m = uuid(GUEST1);
    let hex = |ids: &[u8]| {
        let mut mask = apmatrix_model::Mask256::EMPTY;
        for id in ids {
            mask.set(*id);
        }
        mask.to_sysfs().trim_end().to_string()
    };
    let write = |host: &mut Host, a: &[u8], d: &[u8], c: &[u8]| {
        let text = format!("{},{},{}\n", hex(a), hex(d), hex(c));
        host.write(WriteTarget::ApConfig(m), text.as_bytes())
    };
    let before = host.clone();
    // 05.0047 is Guest2's: EADDRINUSE, nothing changes.
    assert_eq!(
        errno(write(&mut host, &[5], &[4, 0x47], &[4])),
        Errno::EADDRINUSE
    );
    // 04.0004 is the host's: EADDRNOTAVAIL.
    assert_eq!(
        errno(write(&mut host, &[4, 5], &[4], &[])),
        Errno::EADDRNOTAVAIL
    );
    assert_eq!(host, before, "refused writes change nothing");
    // Fewer than three masks: EINVAL. (The kernel splits at newlines too,
    // so "0x04,0x08\n" is three pieces, the last one empty.)
    assert_eq!(
        errno(host.write(WriteTarget::ApConfig(m), b"0x04,0x08")),
        Errno::EINVAL
    );
    assert_eq!(host, before, "refused writes change nothing");
    // Adapter 6 out, domain 5 in, control domain 0xab in: one write, one
    // update of the running guest.
    let w = write(&mut host, &[5], &[4, 5, 0xab], &[0xab]).unwrap();
    assert_eq!(w.effects.guest_updates.len(), 1);
    let mdev = host.mdev(&m).unwrap();
    assert_eq!(mdev.matrix_text(), "05.0004\n05.0005\n05.00ab\n");
    assert_eq!(mdev.control_domains_text(), "00ab\n");
    let crycb = host.guest("Guest1").unwrap().crycb;
    assert!(crycb.contains(Apqn::new(5, 5)) && !crycb.apm.contains(6));
    // The holder index follows: Guest3's mdev may now have 06.0004.
    host.write_assign(&uuid(GUEST3), MatrixAxis::Domain, b"4")
        .unwrap();
    // Extra pieces are ignored, empty pieces are empty masks.
    write(&mut host, &[], &[], &[]).unwrap();
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "");
    host.write(WriteTarget::ApConfig(m), b"0x04,,,ignored\n")
        .unwrap();
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "05.\n");
}

/// §6: ENODEV for an id above the maximum comes after the availability and
/// sharing checks of an ap_config write.
#[test]
fn ap_config_checks_the_range_last() {
    let small = "name = \"small\"\napxa = false\nusage_domains = \"1\"\ncontrol_domains = \"1\"\n\n[[card]]\nid = 1\ntype = \"CEX7C\"\n";
    let mut host = Host::new(Topology::from_toml(small).unwrap(), &NEW);
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    // Adapter 1 is the host's (apmask all ones) and adapter 0x40 is above
    // the maximum of 63: EADDRNOTAVAIL wins; once adapter 1 is free, ENODEV.
    let a = |ids: &[u8]| {
        let mut mask = apmatrix_model::Mask256::EMPTY;
        for id in ids {
            mask.set(*id);
        }
        mask.to_sysfs().trim_end().to_string()
    };
    let write =
        |host: &mut Host, text: String| host.write(WriteTarget::ApConfig(m), text.as_bytes());
    let d = a(&[1]);
    assert_eq!(
        errno(write(&mut host, format!("{},{d},\n", a(&[1, 0x40])))),
        Errno::EADDRNOTAVAIL
    );
    host.write_mask(MaskKind::Apmask, b"-1,-0x40").unwrap();
    assert_eq!(
        errno(write(&mut host, format!("{},{d},\n", a(&[1, 0x40])))),
        Errno::ENODEV
    );
    write(&mut host, format!("{},{d},{d}\n", a(&[1]))).unwrap();
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "01.0001\n");
}

/// §9 bus scan and §6 "Queue removed from host": a usage domain the LPAR
/// gains on the HMC shows at the next scan, its queues bound by the masks;
/// one it loses takes its queues away at the next scan, and the domain from
/// a running guest (the host configuration change strips it from the guest
/// matrix before the queues go, so the adapters stay), while the mdev's
/// matrix keeps it and the guest gets it back when the domain returns. On
/// every profile that filters (OLD gives the guest the raw matrix).
#[test]
fn lpar_domain_changes_show_at_the_next_scan() {
    for profile in [&SEED, &DYN, &NEW] {
        let mut host = walkthrough(profile);
        start(&mut host, "Guest1", GUEST1);
        // Domain 7 appears.
        host.set_lpar_domain(7, true).unwrap();
        assert!(!host.queue_exists(Apqn::new(4, 7)), "not before the scan");
        let effects = host.scan();
        assert!(host.queue_exists(Apqn::new(4, 7)));
        assert_eq!(
            host.queue_driver(Apqn::new(4, 7)),
            Some(Some(Driver::Cex4Queue))
        );
        assert_eq!(
            host.queue_driver(Apqn::new(5, 7)),
            Some(Some(Driver::VfioAp))
        );
        assert_eq!(
            effects.rebound_queues(),
            3,
            "{}: three new queues",
            profile.name
        );
        // Domain 0xab goes: 05.00ab and 06.00ab vanish; Guest1 (05, 06 x
        // 04, ab) loses the domain, its adapters stay.
        host.set_lpar_domain(0xab, false).unwrap();
        let before = host.guest("Guest1").unwrap().crycb;
        assert!(before.contains(Apqn::new(5, 0xab)));
        let effects = host.scan();
        assert!(!host.queue_exists(Apqn::new(5, 0xab)));
        let crycb = host.guest("Guest1").unwrap().crycb;
        assert!(!crycb.aqm.contains(0xab), "{}", profile.name);
        assert!(crycb.contains(Apqn::new(5, 4)));
        assert_eq!(effects.guest_updates.len(), 1);
        assert!(host
            .mdev(&uuid(GUEST1))
            .unwrap()
            .contains(Apqn::new(5, 0xab)));
        // It comes back: plugged in again.
        host.set_lpar_domain(0xab, true).unwrap();
        let saved = Host::from_state(host.to_state()).unwrap();
        assert_eq!(saved, host, "a pending change is saved");
        host.scan();
        assert_eq!(
            host.guest("Guest1").unwrap().crycb,
            before,
            "{}",
            profile.name
        );
        // Above the maximum: ENODEV, nothing pending.
        let small =
            "name = \"small\"\napxa = false\nusage_domains = \"1\"\ncontrol_domains = \"1\"\n";
        let mut h = Host::new(Topology::from_toml(small).unwrap(), profile);
        assert_eq!(errno(h.set_lpar_domain(16, true)), Errno::ENODEV);
        assert_eq!(h.lpar().usage_domains, h.topology().usage_domains);
    }
}

/// §9 bus scan and §6 "Queue removed from host": an adapter the LPAR
/// loses on the HMC keeps its devices until the next scan; then its card
/// and queues vanish and a running guest loses the whole adapter while the
/// mdev's matrix keeps it; added back, it appears at the next scan, bound
/// by the masks, and the guest gets it again. OLD gives the guest the raw
/// matrix, so only its devices change there.
#[test]
fn lpar_adapter_changes_show_at_the_next_scan() {
    for profile in PROFILES {
        let (name, filters) = (profile.name, era(profile) != "old");
        let (mut host, full) = guest1_running(profile);
        host.remove_lpar_adapter(AdapterId(5)).unwrap();
        assert!(host.lpar_changed());
        assert!(
            host.has_card_device(AdapterId(5)),
            "{name}: not before the scan"
        );
        assert_eq!(host.guest("Guest1").unwrap().crycb, full, "{name}");
        let effects = host.scan();
        assert!(!host.has_card_device(AdapterId(5)), "{name}");
        assert!(!host.queue_exists(Apqn::new(5, 4)), "{name}");
        assert_eq!(effects.rebound_queues(), 6, "{name}: 05.0004 .. 05.00ff go");
        let crycb = host.guest("Guest1").unwrap().crycb;
        assert_eq!(crycb.apm.contains(5), !filters, "{name}");
        assert!(crycb.contains(Apqn::new(6, 4)), "{name}");
        assert!(host.mdev(&uuid(GUEST1)).unwrap().contains(Apqn::new(5, 4)));
        // Back as the same card: plugged in again.
        host.add_lpar_adapter(apmatrix_model::Card::new(
            AdapterId(5),
            10 + 5 - 4,
            apmatrix_model::CardMode::CcaCoproc,
        ))
        .unwrap();
        assert!(!host.has_card_device(AdapterId(5)), "{name}");
        let saved = Host::from_state(host.to_state()).unwrap();
        assert_eq!(saved, host, "{name}: a pending change is saved");
        host.scan();
        assert_eq!(
            host.topology().card(AdapterId(5)).unwrap().type_name(),
            "CEX5C"
        );
        assert_eq!(
            host.queue_driver(Apqn::new(5, 4)),
            Some(Some(Driver::VfioAp))
        );
        assert_eq!(host.guest("Guest1").unwrap().crycb, full, "{name}");
        // A new adapter: bound by the masks (apmask still gives it the host).
        host.add_lpar_adapter(apmatrix_model::Card::new(
            AdapterId(7),
            13,
            apmatrix_model::CardMode::Ep11Coproc,
        ))
        .unwrap();
        host.rescan();
        assert_eq!(
            host.queue_driver(Apqn::new(7, 0x47)),
            Some(Some(Driver::Cex4Queue))
        );
        // Refusals change nothing.
        let before = host.clone();
        let card = |id| {
            apmatrix_model::Card::new(AdapterId(id), 12, apmatrix_model::CardMode::Accelerator)
        };
        assert_eq!(
            errno(host.add_lpar_adapter(card(7))),
            Errno::EINVAL,
            "{name}: twice"
        );
        assert_eq!(errno(host.remove_lpar_adapter(AdapterId(9))), Errno::ENODEV);
        assert_eq!(
            errno(host.set_lpar_card_config(AdapterId(9), false)),
            Errno::ENODEV
        );
        let small =
            "name = \"small\"\napxa = false\nusage_domains = \"1\"\ncontrol_domains = \"1\"\n";
        let mut h = Host::new(Topology::from_toml(small).unwrap(), profile);
        assert_eq!(errno(h.add_lpar_adapter(card(64))), Errno::ENODEV, "{name}");
        assert!(!h.lpar_changed());
        assert_eq!(host, before, "{name}");
        // Removed and added back before a scan: the scan sees no change.
        host.remove_lpar_adapter(AdapterId(7)).unwrap();
        host.add_lpar_adapter(apmatrix_model::Card::new(
            AdapterId(7),
            13,
            apmatrix_model::CardMode::Ep11Coproc,
        ))
        .unwrap();
        assert!(!host.lpar_changed(), "{name}");
    }
}

/// §4 `config`, §9: a card deconfigured on the HMC stays configured for the
/// host until the next scan updates its flag; then a running guest loses
/// the adapter (it is no longer in the host's configuration) while the
/// mdev's matrix keeps it; configured again, it returns after a scan. A
/// write to the card's own `config` from the host takes effect at once and
/// is not undone by an older HMC change the scan has not seen.
#[test]
fn hmc_card_config_shows_at_the_next_scan() {
    for profile in PROFILES {
        let (name, filters) = (profile.name, era(profile) != "old");
        let (mut host, full) = guest1_running(profile);
        host.set_lpar_card_config(AdapterId(6), false).unwrap();
        assert!(host.topology().card(AdapterId(6)).unwrap().config, "{name}");
        assert_eq!(host.guest("Guest1").unwrap().crycb, full);
        let effects = host.scan();
        assert!(
            !host.topology().card(AdapterId(6)).unwrap().config,
            "{name}"
        );
        assert!(
            host.has_card_device(AdapterId(6)),
            "{name}: the device stays"
        );
        assert_eq!(effects.guest_updates.len(), usize::from(filters), "{name}");
        let crycb = host.guest("Guest1").unwrap().crycb;
        assert_eq!(crycb.apm.contains(6), !filters, "{name}");
        assert!(host.mdev(&uuid(GUEST1)).unwrap().contains(Apqn::new(6, 4)));
        host.set_lpar_card_config(AdapterId(6), true).unwrap();
        assert_eq!(
            host.guest("Guest1").unwrap().crycb,
            crycb,
            "{name}: not before the scan"
        );
        host.scan();
        assert_eq!(host.guest("Guest1").unwrap().crycb, full, "{name}");
        // The host's own write is not undone by the scan of an HMC change
        // made before it (here: domain 7 added).
        host.set_lpar_domain(7, true).unwrap();
        host.write(WriteTarget::CardConfig(AdapterId(6)), b"0\n")
            .unwrap();
        assert!(
            !host.topology().card(AdapterId(6)).unwrap().config,
            "{name}"
        );
        host.scan();
        assert!(
            !host.topology().card(AdapterId(6)).unwrap().config,
            "{name}"
        );
        assert!(host.queue_exists(Apqn::new(6, 7)), "{name}");
    }
}

/// §3: NEW's bus makes no devices for cards older than CEX4; before it
/// such a card has its devices, bound to zcrypt or to nothing.
#[test]
fn new_makes_no_devices_below_cex4() {
    let text = "name = \"mixed\"\nusage_domains = \"1-2\"\ncontrol_domains = \"1-2\"\n\n[[card]]\nid = 1\ntype = \"CEX3C\"\n\n[[card]]\nid = 2\ntype = \"CEX7C\"\n";
    for profile in PROFILES {
        let host = Host::new(Topology::from_toml(text).unwrap(), profile);
        let devices: Vec<u8> = host.card_devices().map(|c| c.id.0).collect();
        let new = profile.name == "new";
        assert_eq!(
            devices,
            if new { vec![2] } else { vec![1, 2] },
            "{}",
            profile.name
        );
        assert_eq!(host.queue_exists(Apqn::new(1, 1)), !new, "{}", profile.name);
        // Without a device there is no `config` or `online` to write.
        let config = host
            .clone()
            .write(WriteTarget::CardConfig(AdapterId(1)), b"0\n");
        let online = host
            .clone()
            .write(WriteTarget::CardOnline(AdapterId(1)), b"0\n");
        if new {
            assert_eq!(errno(config), Errno::ENODEV);
            assert_eq!(errno(online), Errno::ENODEV);
        } else {
            config.unwrap();
            online.unwrap();
        }
        assert_eq!(
            host.bindings_count(),
            if new { (2, 2) } else { (4, 4) },
            "{}",
            profile.name
        );
    }
}

/// §5, §8: `remove` while the guest runs is EBUSY on OLD (and in the seed
/// document); since ≈5.15 (DYN, NEW) the write waits for the guest to let
/// go, which the model reports as a refusal to try again ([`ApError::waits`]),
/// EBUSY for a caller that cannot wait.
#[test]
fn remove_while_the_guest_runs_fails_on_old_and_waits_after() {
    for profile in PROFILES {
        let mut host = walkthrough(profile);
        start(&mut host, "Guest1", GUEST1);
        let e = host.write_remove(&uuid(GUEST1), b"1\n").unwrap_err();
        assert_eq!(e.errno(), Errno::EBUSY, "{}", profile.name);
        let waits = matches!(profile.name, "old-5.15" | "dyn" | "new");
        assert_eq!(e.waits(), waits, "{}: {e}", profile.name);
        host.stop_guest("Guest1").unwrap();
        host.write_remove(&uuid(GUEST1), b"1\n").unwrap();
    }
}
