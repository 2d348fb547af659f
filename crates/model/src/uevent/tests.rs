use super::*;
use crate::error::MaskKind;
use crate::host::WriteTarget;
use crate::ids::MatrixAxis;
use crate::profile::{KernelProfile, DYN, NEW, OLD, SEED};
use crate::topology::{CardMode, Topology};

fn host(profile: &'static KernelProfile) -> Host {
    Host::new(Topology::seed_example(), profile)
}

fn u(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// Applies a write and returns the events as one summary line each.
fn announce(
    announcer: &mut Announcer,
    h: &mut Host,
    target: WriteTarget,
    input: &str,
) -> Vec<String> {
    let before = h.clone();
    h.write(target, input.as_bytes()).expect("accepted");
    announcer
        .between(&before, h)
        .iter()
        .map(Uevent::summary)
        .collect()
}

#[test]
fn uevent_files_print_the_keys_of_each_generation() {
    let seed = host(&SEED);
    let card = Device::Card(AdapterId(5));
    let queue = Device::Queue(Apqn::new(5, 4));
    assert_eq!(
        file_text(&seed, &card),
        "DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000B\nMODALIAS=ap:t0B\n"
    );
    assert_eq!(
        file_text(&seed, &queue),
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\nDEV_TYPE=000B\nMODALIAS=ap:t0B\n"
    );
    let new = host(&NEW);
    assert_eq!(
        file_text(&new, &card),
        "DEVTYPE=ap_card\nDRIVER=cex4card\nDEV_TYPE=000B\nMODALIAS=ap:t0B\nMODE=cca\n"
    );
    assert_eq!(
        file_text(&new, &queue),
        "DEVTYPE=ap_queue\nDRIVER=cex4queue\nMODE=cca\n"
    );
    assert_eq!(file_text(&new, &Device::Matrix), "DRIVER=vfio_ap\n");
    assert_eq!(file_text(&new, &Device::ApRoot), "");
    assert_eq!(file_text(&new, &Device::Mdev(u(1))), "", "no such mdev");
    assert_eq!(
        file_text(&new, &Device::Queue(Apqn::new(5, 7))),
        "",
        "no such queue"
    );
}

#[test]
fn an_mdev_is_added_then_bound_and_unbound_then_removed() {
    let mut h = host(&SEED);
    let mut a = Announcer::default();
    let id = "11111111-2222-3333-4444-555555555555";
    let path = format!("/devices/vfio_ap/matrix/{id}");
    assert_eq!(
        announce(&mut a, &mut h, WriteTarget::Create, id),
        [
            format!("add {path} (mdev)"),
            format!("bind {path} (mdev) DRIVER=vfio_mdev"),
        ]
    );
    let uuid = Uuid::parse_str(id).unwrap();
    assert_eq!(
        announce(&mut a, &mut h, WriteTarget::Remove(uuid), "1"),
        [
            format!("unbind {path} (mdev)"),
            format!("remove {path} (mdev)")
        ]
    );
    let mut h = host(&NEW);
    let events = announce(&mut a, &mut h, WriteTarget::Create, id);
    assert_eq!(events[1], format!("bind {path} (mdev) DRIVER=vfio_ap_mdev"));
}

#[test]
fn a_mask_write_on_6x_reprobes_in_device_order_then_announces_the_mask() {
    let mut h = host(&DYN);
    let mut a = Announcer::default();
    let events = announce(&mut a, &mut h, WriteTarget::Mask(MaskKind::Aqmask), "-4,-5");
    let mut expected = Vec::new();
    let mut count = 1;
    for (card, mode) in [("04", "ep11"), ("05", "cca"), ("06", "accel")] {
        for d in ["0004", "0005"] {
            let path = format!("/devices/ap/card{card}/{card}.{d}");
            expected.push(format!("unbind {path} (ap) DEVTYPE=ap_queue MODE={mode}"));
            expected.push(format!(
                "bind {path} (ap) DEVTYPE=ap_queue DRIVER=vfio_ap MODE={mode}"
            ));
            count += 1;
            expected.push(format!(
                "change /devices/ap (ap) BINDINGS=complete COMPLETECOUNT={count}"
            ));
        }
    }
    let mut mask = crate::Mask256::FULL;
    mask.clear(4);
    mask.clear(5);
    expected.push(format!(
        "change /devices/ap (ap) AQMASK={}",
        mask.to_sysfs().trim_end()
    ));
    assert_eq!(events, expected);
}

#[test]
fn the_5x_bus_announces_no_mask_and_counts_no_completions() {
    let mut h = host(&SEED);
    let mut a = Announcer::default();
    let events = announce(&mut a, &mut h, WriteTarget::Mask(MaskKind::Apmask), "-6");
    assert_eq!(
        events.len(),
        18,
        "6 queues: unbind, bind, bindings: {events:#?}"
    );
    assert!(events[1].starts_with(
        "bind /devices/ap/card06/06.0004 (ap) DEVTYPE=ap_queue DRIVER=vfio_ap DEV_TYPE=000B"
    ));
    assert!(
        !events[0].contains("MODALIAS"),
        "an unbind carries no MODALIAS: {}",
        events[0]
    );
    assert_eq!(events[2], "change /devices/ap (ap) BINDINGS=complete");
    assert!(events.iter().all(|e| !e.contains("APMASK")));
    // The same value again: nothing moves, nothing is said.
    assert!(announce(&mut a, &mut h, WriteTarget::Mask(MaskKind::Apmask), "-6").is_empty());
}

#[test]
fn new_announces_complete_bindings_once_at_the_next_scan() {
    let mut h = host(&NEW);
    let mut a = Announcer::default();
    let events = announce(&mut a, &mut h, WriteTarget::Mask(MaskKind::Apmask), "-4");
    assert_eq!(events.len(), 6 * 2 + 1, "{events:#?}");
    assert!(events.iter().all(|e| !e.contains("BINDINGS")));
    assert_eq!(
        announce(&mut a, &mut h, WriteTarget::Scans, "1"),
        ["change /devices/ap (ap) BINDINGS=complete COMPLETECOUNT=2"]
    );
    assert!(
        announce(&mut a, &mut h, WriteTarget::Scans, "1").is_empty(),
        "complete already announced"
    );
}

#[test]
fn a_card_leaving_at_the_scan_takes_its_queues_first() {
    let mut h = host(&DYN);
    let mut a = Announcer::default();
    h.remove_lpar_adapter(AdapterId(6)).unwrap();
    let events = announce(&mut a, &mut h, WriteTarget::Scans, "1");
    assert_eq!(events.len(), 6 * 2 + 2, "{events:#?}");
    assert_eq!(
        events[0],
        "unbind /devices/ap/card06/06.0004 (ap) DEVTYPE=ap_queue MODE=accel"
    );
    assert_eq!(
        events[1],
        "remove /devices/ap/card06/06.0004 (ap) DEVTYPE=ap_queue MODE=accel"
    );
    assert_eq!(
        events[12],
        "unbind /devices/ap/card06 (ap) DEVTYPE=ap_card DEV_TYPE=000B MODE=accel"
    );
    assert_eq!(
        events[13],
        "remove /devices/ap/card06 (ap) DEVTYPE=ap_card DEV_TYPE=000B MODALIAS=ap:t0B MODE=accel"
    );
}

#[test]
fn a_card_arriving_at_the_scan_is_added_and_bound_before_its_queues() {
    let mut h = host(&NEW);
    let mut a = Announcer::default();
    h.add_lpar_adapter(crate::topology::Card::new(
        AdapterId(7),
        14,
        CardMode::CcaCoproc,
    ))
    .unwrap();
    let events = announce(&mut a, &mut h, WriteTarget::Scans, "1");
    let card = "/devices/ap/card07 (ap) DEVTYPE=ap_card";
    assert_eq!(
        events[0],
        format!("add {card} DEV_TYPE=000E MODALIAS=ap:t0E MODE=cca")
    );
    assert_eq!(
        events[1],
        format!("bind {card} DRIVER=cex4card DEV_TYPE=000E MODALIAS=ap:t0E MODE=cca")
    );
    assert_eq!(
        events[2],
        "add /devices/ap/card07/07.0004 (ap) DEVTYPE=ap_queue MODE=cca"
    );
    assert_eq!(
        events[3],
        "bind /devices/ap/card07/07.0004 (ap) DEVTYPE=ap_queue DRIVER=cex4queue MODE=cca"
    );
    assert_eq!(events.len(), 2 + 6 * 2 + 1);
    assert_eq!(
        events.last().unwrap(),
        "change /devices/ap (ap) BINDINGS=complete COMPLETECOUNT=2"
    );
}

#[test]
fn config_and_online_changes_are_announced_on_6x_only() {
    let mut h = host(&DYN);
    let mut a = Announcer::default();
    let events = announce(&mut a, &mut h, WriteTarget::CardOnline(AdapterId(5)), "0");
    assert_eq!(events.len(), 1 + 6);
    assert!(events[0].starts_with("change /devices/ap/card05 (ap) ONLINE=0 DEVTYPE=ap_card"));
    assert!(
        events[1].starts_with("change /devices/ap/card05/05.0004 (ap) ONLINE=0 DEVTYPE=ap_queue")
    );
    let events = announce(&mut a, &mut h, WriteTarget::CardConfig(AdapterId(4)), "0");
    assert_eq!(events.len(), 1 + 6, "{events:#?}");
    assert!(events[0].starts_with("change /devices/ap/card04 (ap) CONFIG=0 DEVTYPE=ap_card"));
    assert!(events[6].starts_with("change /devices/ap/card04/04.00ff (ap) CONFIG=0"));

    let mut h = host(&OLD);
    assert!(announce(&mut a, &mut h, WriteTarget::CardOnline(AdapterId(5)), "0").is_empty());
}

#[test]
fn assignments_and_guests_are_not_device_events() {
    let mut h = host(&SEED);
    let mut a = Announcer::default();
    announce(&mut a, &mut h, WriteTarget::Mask(MaskKind::Apmask), "-5");
    h.create_mdev(u(7)).unwrap();
    let before = h.clone();
    h.assign(&u(7), MatrixAxis::Adapter, 5).unwrap();
    h.assign(&u(7), MatrixAxis::Domain, 4).unwrap();
    assert!(a.between(&before, &h).is_empty());
}

#[test]
fn a_uevent_write_is_announced_with_its_synth_keys() {
    let h = host(&NEW);
    let card = Device::Card(AdapterId(5));
    let e = synthetic(&h, &card, b"change\n").unwrap();
    assert_eq!(
        e.summary(),
        "change /devices/ap/card05 (ap) SYNTH_UUID=0 DEVTYPE=ap_card DRIVER=cex4card \
         DEV_TYPE=000B MODALIAS=ap:t0B MODE=cca"
    );
    let id = "fe4d7c9d-b8c6-4a70-9ef1-3d8a58d18eed";
    let e = synthetic(&h, &Device::Matrix, format!("add {id} A=1 b2=x").as_bytes()).unwrap();
    assert_eq!(
        e.summary(),
        format!("add /devices/vfio_ap/matrix (matrix) SYNTH_UUID={id} SYNTH_ARG_A=1 SYNTH_ARG_b2=x DRIVER=vfio_ap")
    );
    let cut = synthetic(&h, &card, b"change\0 frob").unwrap();
    assert_eq!(
        cut.env[0].1, "0",
        "the kernel's string functions stop at a NUL"
    );
    let unbind = synthetic(&h, &card, b"unbind").unwrap();
    assert!(!unbind.summary().contains("MODALIAS"));
    for bad in [
        &b"frob"[..],
        b"add not-a-uuid",
        b"add fe4d7c9d-b8c6-4a70-9ef1-3d8a58d18eed A",
        b"",
    ] {
        assert_eq!(
            synthetic(&h, &card, bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(
        synthetic(&h, &Device::VfioApRoot, b"add"),
        None,
        "no bus: never sent"
    );
}

#[test]
fn properties_put_seqnum_last() {
    let h = host(&SEED);
    let e = synthetic(&h, &Device::ApRoot, b"change").unwrap();
    let keys: Vec<String> = e
        .properties(9)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        keys,
        [
            "ACTION=change",
            "DEVPATH=/devices/ap",
            "SUBSYSTEM=ap",
            "SYNTH_UUID=0",
            "SEQNUM=9"
        ]
    );
}
