use super::*;
use crate::error::Errno;

fn errno(r: Result<Written, ApError>) -> Errno {
    r.unwrap_err().errno()
}

#[test]
fn bus_attributes_check_like_the_kernel() {
    let mut h = Host::seed_example();
    assert_eq!(h.bus().default_domain, Some(4));
    h.write(WriteTarget::ApDomain, b"0x47\n").unwrap();
    assert_eq!(h.bus().default_domain, Some(0x47));
    assert_eq!(errno(h.write(WriteTarget::ApDomain, b"-1")), Errno::EINVAL);
    assert_eq!(errno(h.write(WriteTarget::ApDomain, b"256")), Errno::EINVAL);
    h.write_mask(MaskKind::Aqmask, b"-0xab").unwrap();
    let e = h.write(WriteTarget::ApDomain, b"0xab").unwrap_err();
    assert!(e.to_string().contains("aqmask"), "{e}");
    assert_eq!(h.bus().default_domain, Some(0x47));

    h.write(WriteTarget::ConfigTime, b"60").unwrap();
    assert_eq!(h.bus().config_time, 60);
    for bad in [&b"4"[..], b"121", b"x"] {
        assert_eq!(errno(h.write(WriteTarget::ConfigTime, bad)), Errno::EINVAL);
    }
    assert_eq!(h.bus().config_time, 60);

    h.write(WriteTarget::PollThread, b"2\n").unwrap();
    assert!(h.bus().poll_thread);
    h.write(WriteTarget::PollThread, b"0").unwrap();
    assert!(!h.bus().poll_thread);
    assert_eq!(errno(h.write(WriteTarget::PollThread, b"y")), Errno::EINVAL);

    h.write(WriteTarget::PollTimeout, b"100000").unwrap();
    assert_eq!(h.bus().poll_timeout, 100_000);
    assert_eq!(
        errno(h.write(WriteTarget::PollTimeout, b"0")),
        Errno::EINVAL
    );
    assert_eq!(
        errno(h.write(WriteTarget::PollTimeout, b"120000000001")),
        Errno::EINVAL
    );

    let scans = h.scans();
    let w = h.write(WriteTarget::Scans, b"1").unwrap();
    assert_eq!(w.op, Some(Op::Rescan));
    assert_eq!(h.scans(), scans + 1);
}

#[test]
fn card_and_queue_online() {
    let mut h = Host::seed_example();
    let q = Apqn::new(5, 4);
    assert!(h.queue_online(q));
    h.write(WriteTarget::QueueOnline(q), b"0").unwrap();
    assert!(!h.queue_online(q));
    h.write(WriteTarget::CardOnline(AdapterId(5)), b"0")
        .unwrap();
    assert!(!h.topology().cards[&AdapterId(5)].online);
    // a queue cannot go online while its card is offline
    assert_eq!(
        errno(h.write(WriteTarget::QueueOnline(q), b"1")),
        Errno::EINVAL
    );
    h.write(WriteTarget::CardOnline(AdapterId(5)), b"1")
        .unwrap();
    assert!(h.queue_online(q), "card online propagates to its queues");
    assert_eq!(
        errno(h.write(WriteTarget::CardOnline(AdapterId(5)), b"2")),
        Errno::EINVAL
    );
    // a deconfigured card cannot go online
    h.write(WriteTarget::CardConfig(AdapterId(5)), b"0")
        .unwrap();
    assert!(!h.queue_online(q));
    assert_eq!(
        errno(h.write(WriteTarget::CardOnline(AdapterId(5)), b"1")),
        Errno::ENODEV
    );
    assert_eq!(
        errno(h.write(WriteTarget::QueueOnline(q), b"1")),
        Errno::ENODEV
    );
    // queues of vfio_ap have no zcrypt online
    h.write_mask(MaskKind::Apmask, b"-6").unwrap();
    assert_eq!(
        errno(h.write(WriteTarget::QueueOnline(Apqn::new(6, 4)), b"1")),
        Errno::ENODEV
    );
}

#[test]
fn deconfiguring_a_card_takes_it_from_the_guest() {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let m = Uuid::from_u128(7);
    h.create_mdev(m).unwrap();
    h.assign(&m, MatrixAxis::Adapter, 5).unwrap();
    h.assign(&m, MatrixAxis::Adapter, 6).unwrap();
    h.assign(&m, MatrixAxis::Domain, 4).unwrap();
    h.start_guest("g", Some(m), CpuModel::default()).unwrap();
    let e = h
        .write(WriteTarget::CardConfig(AdapterId(6)), b"0\n")
        .unwrap();
    assert_eq!(e.effects.guest_updates.len(), 1);
    assert_eq!(
        e.effects.guest_updates[0].unplugged(),
        vec![Apqn::new(6, 4)]
    );
    h.write(WriteTarget::CardConfig(AdapterId(6)), b"1")
        .unwrap();
    assert!(h.guest("g").unwrap().crycb.contains(Apqn::new(6, 4)));
}

#[test]
fn writes_that_change_nothing_make_no_operation() {
    let mut h = Host::seed_example();
    let m = Uuid::from_u128(1);
    h.create_mdev(m).unwrap();
    assert_eq!(h.write(WriteTarget::Remove(m), b"0\n").unwrap().op, None);
    assert_eq!(
        h.write(WriteTarget::Assign(m, MatrixAxis::Domain), b"")
            .unwrap()
            .op,
        None
    );
    assert_eq!(h.write(WriteTarget::RequestCount, b"1").unwrap().op, None);
    // refusals still come first for a missing mdev
    let other = Uuid::from_u128(2);
    assert_eq!(
        errno(h.write(WriteTarget::Remove(other), b"")),
        Errno::ENOENT
    );
}

#[test]
fn idempotent_writes_are_no_operation() {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    let m = Uuid::from_u128(1);
    h.create_mdev(m).unwrap();
    let assign = WriteTarget::Assign(m, MatrixAxis::Adapter);
    assert!(h.write(assign, b"5").unwrap().op.is_some());
    assert_eq!(h.write(assign, b"5").unwrap().op, None);
    let unassign = WriteTarget::Unassign(m, MatrixAxis::Domain);
    assert_eq!(h.write(unassign, b"4").unwrap().op, None);
    let apmask = WriteTarget::Mask(MaskKind::Apmask);
    assert_eq!(h.write(apmask, b"-5").unwrap().op, None);
    assert!(h.write(apmask, b"-6").unwrap().op.is_some());
    // an out-of-range id is still refused
    assert_eq!(errno(h.write(unassign, b"256")), Errno::ENODEV);
}

#[test]
fn iommu_groups_are_the_smallest_free_numbers() {
    let mut h = Host::seed_example();
    for n in 1..=70u128 {
        h.create_mdev(Uuid::from_u128(n)).unwrap();
    }
    let group = |h: &Host, n: u128| h.mdev(&Uuid::from_u128(n)).unwrap().iommu_group;
    assert_eq!(group(&h, 1), 0);
    assert_eq!(group(&h, 70), 69);
    h.remove_mdev(&Uuid::from_u128(3)).unwrap();
    h.remove_mdev(&Uuid::from_u128(66)).unwrap();
    h.create_mdev(Uuid::from_u128(100)).unwrap();
    assert_eq!(group(&h, 100), 2);
    h.create_mdev(Uuid::from_u128(101)).unwrap();
    assert_eq!(group(&h, 101), 65);
    // numbers survive a save and load
    let back = Host::from_state(h.to_state()).unwrap();
    assert_eq!(group(&back, 101), 65);
    assert_eq!(back, h);
}

#[test]
fn operations_round_trip_through_json() {
    let ops = [
        Op::SetMask {
            mask: MaskKind::Apmask,
            value: Mask256::FULL,
        },
        Op::Assign {
            uuid: Uuid::from_u128(3),
            axis: MatrixAxis::ControlDomain,
            id: 0xab,
        },
        Op::StartGuest {
            name: "g".into(),
            mdev: None,
            cpu: CpuModel::default(),
        },
        Op::SetQueueOnline {
            apqn: Apqn::new(5, 0xab),
            online: 1,
        },
        Op::Rescan,
    ];
    for op in ops {
        let text = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<Op>(&text).unwrap(), op, "{text}");
    }
}

#[test]
fn a_queue_forgets_its_online_flag_when_it_leaves_zcrypt() {
    let mut h = Host::seed_example();
    let (q, other) = (Apqn::new(5, 4), Apqn::new(6, 4));
    h.write(WriteTarget::QueueOnline(q), b"0").unwrap();
    h.write(WriteTarget::QueueOnline(other), b"0").unwrap();
    // adapter 5's queues go to vfio_ap and come back: online as their card
    h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    h.write_mask(MaskKind::Apmask, b"+5").unwrap();
    assert!(h.queue_online(q));
    assert!(!h.queue_online(other), "adapter 6 was not re-probed");
    // a queue probed while its card is offline starts offline
    h.write_mask(MaskKind::Apmask, b"-5").unwrap();
    h.write(WriteTarget::CardOnline(AdapterId(5)), b"0")
        .unwrap();
    h.write_mask(MaskKind::Apmask, b"+5").unwrap();
    h.write(WriteTarget::CardOnline(AdapterId(5)), b"1")
        .unwrap();
    assert!(h.queue_online(q), "card online propagates to its queues");
    // and the saved state says the same as the operations
    let back = Host::from_state(h.to_state()).unwrap();
    assert_eq!(back, h);
}
