//! The full scale, functionally (the timings are in `benches/`): a
//! host of 256 adapters x 256 domains (65,536 queues) whose queues all go to
//! vfio_ap and are all held, in disjoint 1-adapter x 16-domain blocks, by
//! 4,096 mdevs. Sharing and mask reclaim must still be refused exactly, and
//! naming the right holder, with everything occupied; guests must see their
//! blocks; removing the mdevs must free everything again.

use apmatrix_model::{
    AdapterId, ApError, Apqn, CpuModel, Driver, Errno, Host, MaskKind, MatrixAxis, Mdev, Topology,
    SEED,
};
use uuid::Uuid;

const ADAPTERS: u16 = 256;
const DOMAINS: u16 = 256;
const QUEUES: usize = ADAPTERS as usize * DOMAINS as usize;
/// Domains per mdev; 256 / 16 = 16 blocks per adapter.
const BLOCK: u8 = 16;
const MDEVS: usize = QUEUES / BLOCK as usize;

/// The UUID of block mdev `i`; ascending with `i`.
fn block_uuid(i: usize) -> Uuid {
    Uuid::from_u128(0x5ca1_e000_0000_4000_8000_0000_0000_0000 + i as u128)
}

/// Mdev `i` holds adapter `i / 16` x domains `16 * (i % 16) ..= 16 * (i % 16) + 15`.
fn block_of(i: usize) -> (u8, std::ops::RangeInclusive<u8>) {
    let adapter = (i / 16) as u8;
    let first = (i % 16) as u8 * BLOCK;
    (adapter, first..=first + (BLOCK - 1))
}

/// The index of the block mdev that holds an APQN.
fn holder_index(apqn: Apqn) -> usize {
    apqn.adapter.0 as usize * 16 + (apqn.domain.0 / BLOCK) as usize
}

/// Extra mdevs used for conflicts; their UUIDs sort after all block mdevs,
/// so a linear holder search must go past every block to find them.
fn extra_uuid(n: u128) -> Uuid {
    Uuid::from_u128(0xffff_0000_0000_4000_8000_0000_0000_0000 + n)
}

/// Creates and fills block mdev `i`, varying the path (typed or sysfs bytes,
/// adapter first or domains first) so every entry point works at scale.
fn build_block_mdev(host: &mut Host, i: usize) {
    let uuid = block_uuid(i);
    if i.is_multiple_of(2) {
        host.create_mdev(uuid)
            .unwrap_or_else(|e| panic!("create mdev {i}: {e}"));
    } else {
        let created = host
            .write_create(format!("{uuid}\n").as_bytes())
            .unwrap_or_else(|e| panic!("write_create mdev {i}: {e}"));
        assert_eq!(created, Some(uuid));
    }
    let (adapter, domains) = block_of(i);
    let ok = |r: Result<apmatrix_model::Effects, ApError>, what: &str| {
        let effects = r.unwrap_or_else(|e| panic!("mdev {i}: {what}: {e}"));
        assert_eq!(
            effects,
            apmatrix_model::Effects::default(),
            "mdev {i}: {what}: no guest runs, so nothing else may happen"
        );
    };
    match i % 4 {
        0 => {
            ok(
                host.assign(&uuid, MatrixAxis::Adapter, adapter as u64),
                "assign adapter",
            );
            for d in domains {
                ok(
                    host.assign(&uuid, MatrixAxis::Domain, d as u64),
                    "assign domain",
                );
            }
        }
        1 => {
            for d in domains {
                ok(
                    host.assign(&uuid, MatrixAxis::Domain, d as u64),
                    "assign domain",
                );
            }
            ok(
                host.assign(&uuid, MatrixAxis::Adapter, adapter as u64),
                "assign adapter",
            );
        }
        2 => {
            ok(
                host.write_assign(
                    &uuid,
                    MatrixAxis::Adapter,
                    format!("{adapter:#x}\n").as_bytes(),
                ),
                "write assign_adapter",
            );
            for d in domains {
                ok(
                    host.write_assign(&uuid, MatrixAxis::Domain, format!("{d:#x}\n").as_bytes()),
                    "write assign_domain",
                );
            }
        }
        _ => {
            for d in domains {
                ok(
                    host.write_assign(&uuid, MatrixAxis::Domain, d.to_string().as_bytes()),
                    "write assign_domain",
                );
            }
            ok(
                host.write_assign(&uuid, MatrixAxis::Adapter, adapter.to_string().as_bytes()),
                "write assign_adapter",
            );
        }
    }
}

fn expect_shared(err: ApError, mdev: Uuid, axis: MatrixAxis, id: u8, apqns: &[Apqn], other: Uuid) {
    assert_eq!(err.errno(), Errno::EADDRINUSE, "{err}");
    match &err {
        ApError::AssignedToOtherMdev {
            mdev: m,
            axis: a,
            id: i,
            apqns: list,
            other: o,
            ..
        } => {
            assert_eq!((*m, *a, *i), (mdev, axis, id), "{err}");
            assert_eq!(list.0, apqns, "{err}");
            assert_eq!(*o, other, "{err}");
        }
        other => panic!("expected a sharing refusal, got {other:?}"),
    }
}

#[test]
fn full_scale_host_with_4096_mdevs() {
    let mut host = Host::new(Topology::synthetic(ADAPTERS, DOMAINS), &SEED);
    assert_eq!(host.topology().queue_count(), QUEUES);
    assert_eq!(host.queues_bound_to(Driver::Cex4Queue).len(), QUEUES);
    assert!(host.queues_bound_to(Driver::VfioAp).is_empty());

    // --- Give every queue to vfio_ap: one mask write re-binds all 65,536.
    let effects = host.write_mask(MaskKind::Apmask, b"0x\n").unwrap();
    assert!(effects.reprobed);
    assert_eq!(effects.rebound_queues(), QUEUES as u32);
    assert_eq!(effects.rebinds.len(), ADAPTERS as usize);
    for r in &effects.rebinds {
        assert_eq!(
            (r.from, r.to, r.domains.count()),
            (
                Some(Driver::Cex4Queue),
                Some(Driver::VfioAp),
                DOMAINS as u32
            ),
            "{r}"
        );
    }
    assert!(effects.guest_updates.is_empty());
    assert!(host.apmask().is_empty());
    assert_eq!(host.queues_bound_to(Driver::VfioAp).len(), QUEUES);
    assert!(host.queues_bound_to(Driver::Cex4Queue).is_empty());
    assert_eq!(host.bindings_count(), (QUEUES as u32, QUEUES as u32));

    // --- 4,096 mdevs, each a disjoint 1 x 16 block: all 65,536 APQNs held.
    for i in 0..MDEVS {
        build_block_mdev(&mut host, i);
    }
    assert_eq!(host.mdev_count(), MDEVS);
    assert_eq!(host.available_instances(), 65536 - MDEVS as u32);
    let mut held = vec![0u8; QUEUES];
    for m in host.mdevs() {
        assert_eq!(
            (m.adapters.count(), m.domains.count()),
            (1, BLOCK as u32),
            "{m:?}"
        );
        assert!(m.control_domains.is_empty(), "{m:?}");
        for q in m.apqns() {
            held[q.adapter.0 as usize * 256 + q.domain.0 as usize] += 1;
        }
    }
    assert!(
        held.iter().all(|&n| n == 1),
        "every APQN must be held exactly once; first bad: {:?}",
        held.iter().position(|&n| n != 1)
    );
    // The model's own view agrees, for one APQN per adapter (the holder
    // lookup is a linear search, so not for all 65,536 in a debug build).
    for a in 0..=255u8 {
        let q = Apqn::new(a, a.wrapping_mul(37));
        let state = host.apqn_state(q);
        assert_eq!(state.mdev, Some(block_uuid(holder_index(q))), "{q}");
        assert_eq!(state.driver, Some(Driver::VfioAp), "{q}");
        assert!(
            state.exists && !state.host_owned && state.guest.is_none(),
            "{q}"
        );
        assert_eq!(host.vfio_queue_status(q), Some("assigned"), "{q}");
    }
    let mdev_1000 = host.mdev(&block_uuid(1000)).unwrap();
    let expected_1000: String = (0x80..=0x8fu8).map(|d| format!("3e.{d:04x}\n")).collect();
    assert_eq!(mdev_1000.matrix_text(), expected_1000);

    // --- Guests: plain ones, one with a control domain hot plugged, one
    // whose CPU model hides domains above 15.
    for (name, i) in [("g0000", 0), ("g1000", 1000), ("g4095", 4095)] {
        let effects = host
            .start_guest(name, Some(block_uuid(i)), CpuModel::default())
            .unwrap();
        assert_eq!(effects.guest_updates.len(), 1, "{name}");
        let (adapter, domains) = block_of(i);
        let view = host.guest_view(name).unwrap();
        assert!(view.notes.is_empty(), "{name}: {:?}", view.notes);
        assert_eq!(view.mdev, Some(block_uuid(i)));
        assert_eq!(view.crycb.apm, apmatrix_model::Mask256::single(adapter));
        assert_eq!(
            view.crycb.aqm,
            apmatrix_model::Mask256::range(*domains.start(), *domains.end())
        );
        assert_eq!(view.cards.len(), 1, "{name}");
        assert_eq!(view.cards[0].adapter, AdapterId(adapter));
        assert_eq!(view.cards[0].type_name, "CEX8C");
        let expected: Vec<Apqn> = domains.map(|d| Apqn::new(adapter, d)).collect();
        assert_eq!(view.apqns(), expected, "{name}");
        assert_eq!(host.guest_of(&block_uuid(i)), Some(name));
    }
    let effects = host
        .write_assign(&block_uuid(1000), MatrixAxis::ControlDomain, b"0x80\n")
        .unwrap();
    assert_eq!(effects.guest_updates.len(), 1);
    assert_eq!(effects.guest_updates[0].guest, "g1000");
    assert!(effects.guest_updates[0].after.adm.contains(0x80));
    assert!(host.guest("g1000").unwrap().crycb.adm.contains(0x80));
    let lszcrypt = host.guest_view("g1000").unwrap().lszcrypt();
    assert!(
        lszcrypt.contains("\n3e.0080     CEX8C CCA-Coproc\n"),
        "{lszcrypt}"
    );
    assert!(
        lszcrypt.contains("\n3e.008f     CEX8C CCA-Coproc\n"),
        "{lszcrypt}"
    );
    let q = Apqn::new(0x3e, 0x85);
    let state = host.apqn_state(q);
    assert_eq!(state.guest.as_deref(), Some("g1000"));
    assert!(state.in_guest);
    assert_eq!(host.vfio_queue_status(q), Some("in use"));

    let no_qci = CpuModel {
        apqci: false,
        ..CpuModel::default()
    };
    // mdev 17: adapter 01 x domains 0x10-0x1f, all above 15.
    host.start_guest("g-noqci", Some(block_uuid(17)), no_qci)
        .unwrap();
    let view = host.guest_view("g-noqci").unwrap();
    assert!(view.cards.is_empty(), "{:?}", view.cards);
    assert_eq!(view.crycb.aqm.count(), 16);
    assert!(
        view.notes.len() == 1 && view.notes[0].contains("apqci=off"),
        "{:?}",
        view.notes
    );

    // --- Sharing is refused with everything occupied, naming the holder.
    // A block mdev reaching into its neighbour's adapter: 16 APQNs of mdev 16.
    let err = host
        .assign(&block_uuid(0), MatrixAxis::Adapter, 1)
        .unwrap_err();
    let neighbour: Vec<Apqn> = (0..16).map(|d| Apqn::new(1, d)).collect();
    expect_shared(
        err,
        block_uuid(0),
        MatrixAxis::Adapter,
        1,
        &neighbour,
        block_uuid(16),
    );
    // A new mdev: domain 5 alone holds nothing; adapter 200 then crosses 200.0005.
    let x = extra_uuid(1);
    host.create_mdev(x).unwrap();
    host.assign(&x, MatrixAxis::Domain, 5).unwrap();
    let err = host.assign(&x, MatrixAxis::Adapter, 200).unwrap_err();
    expect_shared(
        err,
        x,
        MatrixAxis::Adapter,
        200,
        &[Apqn::new(200, 5)],
        block_uuid(200 * 16),
    );
    // The byte path, domain axis: adapter 7 first, then domain 0x47.
    let y = extra_uuid(2);
    host.write_create(format!("{y}").as_bytes())
        .unwrap()
        .unwrap();
    host.write_assign(&y, MatrixAxis::Adapter, b"7\n").unwrap();
    let err = host
        .write_assign(&y, MatrixAxis::Domain, b"0x47\n")
        .unwrap_err();
    expect_shared(
        err,
        y,
        MatrixAxis::Domain,
        0x47,
        &[Apqn::new(7, 0x47)],
        block_uuid(7 * 16 + 4),
    );
    // A holder in use by a guest is named with its guest.
    let z = extra_uuid(3);
    host.create_mdev(z).unwrap();
    host.assign(&z, MatrixAxis::Domain, 0xf0).unwrap();
    let err = host.assign(&z, MatrixAxis::Adapter, 255).unwrap_err();
    assert!(err.to_string().contains(", used by guest g4095;"), "{err}");
    expect_shared(
        err,
        z,
        MatrixAxis::Adapter,
        255,
        &[Apqn::new(255, 0xf0)],
        block_uuid(4095),
    );
    for (uuid, adapters, domains) in [(x, 0, 1), (y, 1, 0), (z, 0, 1)] {
        let m = host.mdev(&uuid).unwrap();
        assert_eq!(
            (m.adapters.count(), m.domains.count()),
            (adapters, domains),
            "a refused assignment must not change mdev {uuid}"
        );
    }

    // --- Giving any adapter back to the host is refused and changes nothing.
    let before_masks = host.clone();
    for a in 0..=255u8 {
        let err = host
            .write_mask(MaskKind::Apmask, format!("+{a}\n").as_bytes())
            .unwrap_err();
        assert_eq!(err.errno(), Errno::EADDRINUSE, "adapter {a}: {err}");
        match &err {
            ApError::MaskReclaimsAssigned {
                mask,
                apqns,
                mdev,
                guest,
                ..
            } => {
                assert_eq!(*mask, MaskKind::Apmask);
                let expected: Vec<Apqn> = (0..=255).map(|d| Apqn::new(a, d)).collect();
                assert_eq!(apqns.0, expected, "adapter {a}");
                assert_eq!(*mdev, block_uuid(a as usize * 16), "adapter {a}");
                let expected_guest = match a {
                    0 => Some("g0000"),
                    _ => None,
                };
                assert_eq!(guest.as_deref(), expected_guest, "adapter {a}");
            }
            other => panic!("adapter {a}: expected a mask refusal, got {other:?}"),
        }
        assert!(host.apmask().is_empty(), "adapter {a}");
    }
    let everything = format!("0x{}\n", "f".repeat(64));
    let err = host
        .write_mask(MaskKind::Apmask, everything.as_bytes())
        .unwrap_err();
    match &err {
        ApError::MaskReclaimsAssigned { apqns, mdev, .. } => {
            assert_eq!(apqns.0.len(), QUEUES);
            assert_eq!(*mdev, block_uuid(0));
        }
        other => panic!("expected a mask refusal, got {other:?}"),
    }
    assert!(host == before_masks, "refused mask writes changed the host");
    assert_eq!(host.queues_bound_to(Driver::VfioAp).len(), QUEUES);

    // --- Remove everything; a running guest's mdev first refuses.
    let err = host.remove_mdev(&block_uuid(1000)).unwrap_err();
    assert_eq!(err.errno(), Errno::EBUSY, "{err}");
    assert!(host.mdev(&block_uuid(1000)).is_some());
    for name in ["g0000", "g1000", "g4095", "g-noqci"] {
        let effects = host.stop_guest(name).unwrap();
        assert_eq!(effects.guest_updates.len(), 1, "{name}");
        assert!(host.guest(name).is_none());
    }
    for i in 0..MDEVS {
        let uuid = block_uuid(i);
        if i.is_multiple_of(2) {
            host.remove_mdev(&uuid)
        } else {
            host.write_remove(&uuid, b"1\n")
        }
        .unwrap_or_else(|e| panic!("remove mdev {i}: {e}"));
    }
    for uuid in [x, y, z] {
        host.remove_mdev(&uuid).unwrap();
    }
    assert_eq!(host.mdev_count(), 0);
    assert_eq!(host.available_instances(), 65536);
    for a in 0..=255u8 {
        for d in 0..=255u8 {
            let q = Apqn::new(a, d);
            assert_eq!(host.mdev_holding(q).map(|m: &Mdev| m.uuid), None, "{q}");
            assert_eq!(host.vfio_queue_status(q), Some("unassigned"), "{q}");
        }
    }

    // The assignment refused above now succeeds ...
    host.create_mdev(x).unwrap();
    host.assign(&x, MatrixAxis::Domain, 5).unwrap();
    host.assign(&x, MatrixAxis::Adapter, 200).unwrap();
    assert_eq!(host.mdev(&x).unwrap().matrix_text(), "c8.0005\n");
    // ... and so does giving adapter 17 back, re-binding its 256 queues,
    let effects = host.write_mask(MaskKind::Apmask, b"+17\n").unwrap();
    assert_eq!(effects.rebound_queues(), 256);
    assert!(effects
        .rebinds
        .iter()
        .all(|r| r.from == Some(Driver::VfioAp) && r.to == Some(Driver::Cex4Queue)));
    assert_eq!(host.queues_bound_to(Driver::Cex4Queue).len(), 256);
    // while adapter 200, held by the new mdev at 200.0005, stays refused.
    let err = host.write_mask(MaskKind::Apmask, b"+200\n").unwrap_err();
    match &err {
        ApError::MaskReclaimsAssigned { apqns, mdev, .. } => {
            assert_eq!(apqns.0, vec![Apqn::new(200, 5)]);
            assert_eq!(*mdev, x);
        }
        other => panic!("expected a mask refusal, got {other:?}"),
    }
}
