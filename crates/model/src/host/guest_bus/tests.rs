use super::*;
use crate::error::MaskKind;
use crate::host::Driver;
use crate::ids::{Apqn, MatrixAxis};
use crate::vfio::CpuModel;
use uuid::Uuid;

const M: Uuid = Uuid::from_u128(0x51);

/// The seed host with adapter 5 and domains 4, 5 free for vfio_ap, an mdev
/// of adapter 5 and domain 4, and guest g using it.
fn host_with_guest(cpu: CpuModel) -> Host {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    h.write_mask(MaskKind::Aqmask, b"-4,-5").unwrap();
    h.create_mdev(M).unwrap();
    h.assign(&M, MatrixAxis::Adapter, 5).unwrap();
    h.assign(&M, MatrixAxis::Domain, 4).unwrap();
    h.assign(&M, MatrixAxis::ControlDomain, 0x47).unwrap();
    h.start_guest("g", Some(M), cpu).unwrap();
    h
}

fn in_guest(h: &mut Host, change: Op) -> Result<crate::host::Effects, ApError> {
    h.apply(&Op::InGuest {
        guest: "g".into(),
        change: Box::new(change),
    })
}

#[test]
fn a_guests_bus_has_its_crycbs_queues_bound_to_zcrypt_and_no_vfio_ap() {
    let h = host_with_guest(CpuModel::default());
    let bus = h.guest_bus("g").unwrap();
    assert!(!bus.has_vfio_ap());
    assert_eq!(
        bus.card_devices()
            .map(|c| c.type_name())
            .collect::<Vec<_>>(),
        ["CEX5C"]
    );
    assert_eq!(bus.queues_bound_to(Driver::Cex4Queue), [Apqn::new(5, 4)]);
    assert_eq!(bus.topology().control_domains.to_list(), "71");
    assert_eq!(bus.scans(), 1, "its boot scan");
}

#[test]
fn a_hot_plug_reaches_the_guests_bus_at_its_next_scan() {
    let mut h = host_with_guest(CpuModel::default());
    h.assign(&M, MatrixAxis::Domain, 5).unwrap();
    assert_eq!(h.guest("g").unwrap().crycb.aqm.to_list(), "4-5");
    let bus = h.guest_bus("g").unwrap();
    assert!(
        !bus.queue_exists(Apqn::new(5, 5)),
        "not before the guest scans"
    );
    // A write to something else in the guest does not scan either.
    in_guest(&mut h, Op::SetConfigTime { seconds: 60 }).unwrap();
    assert!(!h.guest_bus("g").unwrap().queue_exists(Apqn::new(5, 5)));
    in_guest(&mut h, Op::Rescan).unwrap();
    let bus = h.guest_bus("g").unwrap();
    assert_eq!(
        bus.queues_bound_to(Driver::Cex4Queue),
        [Apqn::new(5, 4), Apqn::new(5, 5)]
    );
    assert_eq!(bus.scans(), 2);
    assert_eq!(bus.bus().config_time, 60);
    // Hot unplug: gone at the scan after.
    h.unassign(&M, MatrixAxis::Adapter, 5).unwrap();
    assert_eq!(h.guest_bus("g").unwrap().card_devices().count(), 1);
    in_guest(&mut h, Op::Rescan).unwrap();
    assert_eq!(h.guest_bus("g").unwrap().card_devices().count(), 0);
}

#[test]
fn the_guests_own_masks_unbind_its_queues_without_touching_the_host() {
    let mut h = host_with_guest(CpuModel::default());
    let host_before = h.queues_bound_to(Driver::VfioAp);
    in_guest(
        &mut h,
        Op::SetMask {
            mask: MaskKind::Aqmask,
            value: crate::mask::Mask256::EMPTY,
        },
    )
    .unwrap();
    let bus = h.guest_bus("g").unwrap();
    assert_eq!(
        bus.queue_driver(Apqn::new(5, 4)),
        Some(None),
        "no vfio_ap to take it"
    );
    assert_eq!(h.queues_bound_to(Driver::VfioAp), host_before);
    assert!(h.guest("g").unwrap().crycb.contains(Apqn::new(5, 4)));
}

#[test]
fn a_guest_kernel_cannot_do_host_operations() {
    let mut h = host_with_guest(CpuModel::default());
    let refused = [
        Op::CreateMdev {
            uuid: Uuid::from_u128(9),
        },
        Op::StopGuest { name: "g".into() },
        Op::SetLparDomain {
            domain: 7,
            present: true,
        },
        Op::InGuest {
            guest: "g".into(),
            change: Box::new(Op::Rescan),
        },
    ];
    for op in refused {
        let before = h.clone();
        assert!(in_guest(&mut h, op.clone()).is_err(), "{op:?}");
        assert_eq!(h, before, "{op:?} changed nothing");
    }
    assert!(matches!(
        h.apply(&Op::InGuest {
            guest: "nobody".into(),
            change: Box::new(Op::Rescan)
        }),
        Err(ApError::NoSuchGuest(_))
    ));
}

#[test]
fn the_cpu_model_limits_what_the_guests_bus_finds() {
    let no_apft = CpuModel {
        apft: false,
        ..CpuModel::default()
    };
    let h = host_with_guest(no_apft);
    assert_eq!(h.guest_bus("g").unwrap().card_devices().count(), 0);

    let no_qci = CpuModel {
        apqci: false,
        ..CpuModel::default()
    };
    let mut h = host_with_guest(no_qci);
    let bus = h.guest_bus("g").unwrap();
    assert_eq!(
        (
            bus.max_id(MatrixAxis::Adapter),
            bus.max_id(MatrixAxis::Domain)
        ),
        (63, 15)
    );
    // Domain 0x47 (71) is above 15: the guest never sees it.
    h.write_mask(MaskKind::Aqmask, b"-0x47").unwrap();
    h.assign(&M, MatrixAxis::Domain, 0x47).unwrap();
    in_guest(&mut h, Op::Rescan).unwrap();
    assert!(!h.guest_bus("g").unwrap().queue_exists(Apqn::new(5, 0x47)));
}

#[test]
fn a_guests_bus_survives_saving_and_loading() {
    let mut h = host_with_guest(CpuModel::default());
    in_guest(&mut h, Op::SetConfigTime { seconds: 90 }).unwrap();
    h.assign(&M, MatrixAxis::Domain, 5).unwrap();
    let loaded = Host::from_state(h.to_state()).unwrap();
    assert_eq!(loaded, h);
    assert_eq!(loaded.guest_bus("g").unwrap().bus().config_time, 90);
    assert!(!loaded.guest_bus("g").unwrap().has_vfio_ap());
}
