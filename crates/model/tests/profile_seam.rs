//! The kernel-generation seam: each rule the seed profile fixes has an
//! alternative (kernel.md tags OLD, DYN/NEW). These tests run the model under
//! a profile that flips the rules, to show every branch behind the seam works
//! and that the seed profile is what picks the seed behaviour.

use apmatrix_model::profile::{MaskReclaim, PollThreadInput, OLD};
use apmatrix_model::{
    Apqn, CpuModel, Driver, Errno, Host, KernelProfile, MaskKind, MatrixAxis, Topology, SEED,
};
use uuid::Uuid;

/// The OLD generation's rules (kernel.md §3, §6 "OLD"), with two instances
/// and the NEW poll parsers, so that those branches are crossed too.
static OLD_RULES: KernelProfile = KernelProfile {
    name: "old-rules-for-tests",
    summary: "test profile",
    max_instances: 2,
    poll_thread_input: PollThreadInput::KstrToBool,
    poll_timeout_min: 0,
    ..OLD
};

/// The mainline errnos (kernel.md §3: EBUSY for mask reclaim; §5: EUSERS).
static MAINLINE_ERRNOS: KernelProfile = KernelProfile {
    name: "mainline-errnos-for-tests",
    mask_reclaim: MaskReclaim::Refuse(Errno::EBUSY),
    instances_exhausted: Errno::EUSERS,
    max_instances: 1,
    ..SEED
};

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn old_rules_require_binding_to_vfio_ap() {
    let mut host = Host::new(Topology::seed_example(), &OLD_RULES);
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    // No queue of adapter 5 is bound to vfio_ap yet.
    let err = host.assign(&m, MatrixAxis::Adapter, 5).unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRNOTAVAIL);
    assert!(
        err.to_string()
            .contains("no queue of adapter 0x05 is bound to the vfio_ap driver"),
        "{err}"
    );
    host.write_mask(MaskKind::Aqmask, b"-4").unwrap();
    host.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    // Now every APQN of the product must be bound: 05.0005 is not.
    let err = host.assign(&m, MatrixAxis::Domain, 5).unwrap_err();
    assert!(
        err.to_string()
            .contains("APQN 05.0005 is not bound to the vfio_ap driver"),
        "{err}"
    );
    host.assign(&m, MatrixAxis::Domain, 4).unwrap();
    // An APQN that does not exist is not bound, so no over-provisioning.
    assert_eq!(
        host.assign(&m, MatrixAxis::Adapter, 0x20)
            .unwrap_err()
            .errno(),
        Errno::EADDRNOTAVAIL
    );
}

#[test]
fn old_rules_allow_mask_reclaim_and_revalidate_on_reassign() {
    let mut host = Host::new(Topology::seed_example(), &OLD_RULES);
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    host.write_mask(MaskKind::Apmask, b"-5").unwrap();
    host.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    host.assign(&m, MatrixAxis::Domain, 4).unwrap();
    // The mask change is accepted and the queue goes back to zcrypt.
    let effects = host.write_mask(MaskKind::Apmask, b"+5").unwrap();
    assert!(effects.reprobed);
    assert_eq!(
        host.queue_driver(Apqn::new(5, 4)),
        Some(Some(Driver::Cex4Queue))
    );
    // Re-assigning the adapter re-runs the checks, which now fail.
    assert_eq!(
        host.assign(&m, MatrixAxis::Adapter, 5).unwrap_err().errno(),
        Errno::EADDRNOTAVAIL
    );
    // Every mask write re-probes, changed or not.
    let effects = host.write_mask(MaskKind::Apmask, b"+5").unwrap();
    assert!(effects.reprobed);
    assert!(effects.rebinds.is_empty());
}

#[test]
fn old_rules_lock_the_matrix_while_a_guest_runs() {
    let mut host = Host::new(Topology::seed_example(), &OLD_RULES);
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    host.write_mask(MaskKind::Apmask, b"-5").unwrap();
    host.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    host.assign(&m, MatrixAxis::Domain, 4).unwrap();
    host.assign(&m, MatrixAxis::Domain, 0x20).unwrap_err();
    host.start_guest("g", Some(m), CpuModel::default()).unwrap();
    // EBUSY comes before parsing: even garbage gets EBUSY.
    let err = host
        .write_assign(&m, MatrixAxis::Domain, b"garbage")
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EBUSY);
    assert_eq!(
        host.write_unassign(&m, MatrixAxis::Adapter, b"5")
            .unwrap_err()
            .errno(),
        Errno::EBUSY
    );
    // Unfiltered: the CRYCB is the raw matrix.
    assert_eq!(
        host.guest("g")
            .unwrap()
            .crycb
            .apm
            .iter()
            .collect::<Vec<_>>(),
        vec![5]
    );
    // The instance limit of this profile is 2.
    host.create_mdev(uuid(2)).unwrap();
    assert_eq!(host.create_mdev(uuid(3)).unwrap_err().errno(), Errno::EPERM);
}

#[test]
fn mainline_errnos_come_from_the_profile() {
    let mut host = Host::new(Topology::seed_example(), &MAINLINE_ERRNOS);
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    assert_eq!(
        host.create_mdev(uuid(2)).unwrap_err().errno(),
        Errno::EUSERS
    );
    host.write_mask(MaskKind::Apmask, b"-5").unwrap();
    host.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    host.assign(&m, MatrixAxis::Domain, 4).unwrap();
    assert_eq!(
        host.write_mask(MaskKind::Apmask, b"+5")
            .unwrap_err()
            .errno(),
        Errno::EBUSY
    );
}

#[test]
fn seed_filters_whole_adapters() {
    // Seed: an adapter whose assigned queue is not bound to vfio_ap is
    // dropped from the CRYCB as a whole (the architecture cannot drop one APQN).
    let mut t = Topology::seed_example();
    t.cards
        .get_mut(&apmatrix_model::AdapterId(6))
        .unwrap()
        .hwtype = 9; // CEX3C
    let mut host = Host::new(t, &SEED);
    host.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let m = uuid(1);
    host.create_mdev(m).unwrap();
    for (axis, id) in [
        (MatrixAxis::Adapter, 5),
        (MatrixAxis::Adapter, 6),
        (MatrixAxis::Domain, 4),
    ] {
        host.assign(&m, axis, id).unwrap();
    }
    host.start_guest("g", Some(m), CpuModel::default()).unwrap();
    let g = host.guest("g").unwrap();
    assert_eq!(g.crycb.apm.iter().collect::<Vec<_>>(), vec![5]);
    assert_eq!(g.crycb.aqm.iter().collect::<Vec<_>>(), vec![4]);
}
