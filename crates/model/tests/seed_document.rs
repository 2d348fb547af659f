//! Every example of the seed document (shared/seed/vfio-ap-dynamic-configuration.doc.patch
//! and the parts of vfio-ap.txt it keeps, summarised in shared/spec/seed-system.md),
//! with the document's own numbers, run against the model.

use apmatrix_model::topology::BootParameters;
use apmatrix_model::{
    ApError, Apqn, CpuModel, Driver, Errno, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED,
};
use uuid::Uuid;

const UUID1: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
const UUID2: &str = "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0";
const UUID3: &str = "d1a4b0a5-9c2e-4f2c-8f6a-5f3b2c1d0e9f";

fn apqns(list: &[&str]) -> Vec<Apqn> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn vfio_queues(host: &Host) -> Vec<String> {
    host.queues_bound_to(Driver::VfioAp)
        .iter()
        .map(|q| q.to_string())
        .collect()
}

/// `uuidgen > create`, as the document does it (with echo's newline).
fn create(host: &mut Host, uuid: &str) -> Uuid {
    host.write_create(format!("{uuid}\n").as_bytes())
        .unwrap()
        .unwrap()
}

/// `echo VALUE > assign_<axis>`.
fn echo_assign(host: &mut Host, mdev: &Uuid, axis: MatrixAxis, value: &str) -> Result<(), ApError> {
    host.write_assign(mdev, axis, format!("{value}\n").as_bytes())
        .map(|_| ())
}

fn errno<T: std::fmt::Debug>(r: Result<T, ApError>) -> Errno {
    r.unwrap_err().errno()
}

// ---------------------------------------------------------------------------
// Mask formats
// ---------------------------------------------------------------------------

#[test]
fn apmask_0x7dff_leaves_adapters_0_and_6_to_vfio_ap() {
    let mut host = Host::new(Topology::synthetic(8, 2), &SEED);
    let value = format!("0x7dff{}\n", "f".repeat(60));
    host.write_mask(MaskKind::Apmask, value.as_bytes()).unwrap();
    let cleared: Vec<u8> = host.apmask().complement().iter().collect();
    assert_eq!(cleared, vec![0, 6]);
    assert_eq!(
        vfio_queues(&host),
        vec!["00.0000", "00.0001", "06.0000", "06.0001"]
    );
}

#[test]
fn absolute_0x41_means_bits_1_and_7() {
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Aqmask, b"0x41\n").unwrap();
    assert_eq!(host.aqmask().iter().collect::<Vec<_>>(), vec![1, 7]);
    // none of the host's domains (4, 5, 6, 0x47, 0xab, 0xff) stays with zcrypt
    assert_eq!(host.queues_bound_to(Driver::VfioAp).len(), 18);
}

#[test]
fn relative_plus0_minus6_plus0x47_minus0xf0() {
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Aqmask, b"+0,-6,+0x47,-0xf0\n")
        .unwrap();
    // from the default all-ones mask only 6 and 0xf0 are cleared
    let cleared: Vec<u8> = host.aqmask().complement().iter().collect();
    assert_eq!(cleared, vec![6, 0xf0]);
    assert_eq!(vfio_queues(&host), vec!["04.0006", "05.0006", "06.0006"]);
}

#[test]
fn boot_parameters_apmask_0xffff_aqmask_0x40() {
    // "ap.apmask=0xffff ap.aqmask=0x40" -- default drivers pool: adapter
    // 0-15, domain 1; alternate drivers pool: adapter 16-255, domains 0, 2-255.
    let mut t = Topology::synthetic(20, 3);
    t.boot = BootParameters {
        apmask: Some("0xffff".into()),
        aqmask: Some("0x40".into()),
    };
    let (host, warnings) = Host::boot(t, &SEED);
    assert!(warnings.is_empty());
    assert_eq!(host.apmask(), Mask256::range(0, 15));
    assert_eq!(host.aqmask(), Mask256::single(1));
    for a in 0..20u8 {
        for d in 0..3u8 {
            let q = Apqn::new(a, d);
            let expect = if a <= 15 && d == 1 {
                Driver::Cex4Queue
            } else {
                Driver::VfioAp
            };
            assert_eq!(host.queue_driver(q), Some(Some(expect)), "{q}");
        }
    }
}

// ---------------------------------------------------------------------------
// Securing the APQNs (step 2 of the walkthrough)
// ---------------------------------------------------------------------------

const ADAPTERS_05_06: [&str; 12] = [
    "05.0004", "05.0005", "05.0006", "05.0047", "05.00ab", "05.00ff", "06.0004", "06.0005",
    "06.0006", "06.0047", "06.00ab", "06.00ff",
];

const DOMAINS_4_47_AB_FF: [&str; 12] = [
    "04.0004", "04.0047", "04.00ab", "04.00ff", "05.0004", "05.0047", "05.00ab", "05.00ff",
    "06.0004", "06.0047", "06.00ab", "06.00ff",
];

#[test]
fn the_example_host_has_the_documents_devices() {
    let host = Host::seed_example();
    let mut devices: Vec<String> = host
        .queues_bound_to(Driver::Cex4Queue)
        .iter()
        .map(|q| q.to_string())
        .collect();
    devices.extend(host.topology().cards.keys().map(|a| format!("card{a}")));
    assert_eq!(
        devices,
        vec![
            "04.0004", "04.0005", "04.0006", "04.0047", "04.00ab", "04.00ff", "05.0004", "05.0005",
            "05.0006", "05.0047", "05.00ab", "05.00ff", "06.0004", "06.0005", "06.0006", "06.0047",
            "06.00ab", "06.00ff", "card04", "card05", "card06"
        ]
    );
}

#[test]
fn apmask_minus5_minus6_binds_the_12_queues_of_05_and_06() {
    let mut host = Host::seed_example();
    let effects = host.write_mask(MaskKind::Apmask, b"-5,-6\n").unwrap();
    assert_eq!(vfio_queues(&host), ADAPTERS_05_06);
    assert_eq!(effects.rebound_queues(), 12);
    assert!(effects
        .rebinds
        .iter()
        .all(|r| r.from == Some(Driver::Cex4Queue) && r.to == Some(Driver::VfioAp)));
    assert_eq!(host.queues_bound_to(Driver::Cex4Queue).len(), 6);
}

#[test]
fn apmask_absolute_form_gives_the_same_binding() {
    let mut host = Host::seed_example();
    host.write_mask(
        MaskKind::Apmask,
        b"0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n",
    )
    .unwrap();
    assert_eq!(vfio_queues(&host), ADAPTERS_05_06);
    let mut relative = Host::seed_example();
    relative.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    assert_eq!(host, relative);
}

#[test]
fn aqmask_minus_4_47_ab_ff_binds_those_domains_on_all_three_adapters() {
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Aqmask, b"-4,-0x47,-0xab,-0xff\n")
        .unwrap();
    assert_eq!(vfio_queues(&host), DOMAINS_4_47_AB_FF);
    let mut absolute = Host::seed_example();
    absolute
        .write_mask(
            MaskKind::Aqmask,
            b"0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe\n",
        )
        .unwrap();
    assert_eq!(absolute, host);
}

// ---------------------------------------------------------------------------
// The three guests (steps 3 to 5)
// ---------------------------------------------------------------------------

/// The walkthrough up to configured matrices, with either way of securing.
fn three_mdevs(secure: (MaskKind, &str)) -> (Host, [Uuid; 3]) {
    let mut host = Host::seed_example();
    host.write_mask(secure.0, secure.1.as_bytes()).unwrap();
    let m = [
        create(&mut host, UUID1),
        create(&mut host, UUID2),
        create(&mut host, UUID3),
    ];
    use MatrixAxis::{Adapter, Domain};
    for (mdev, steps) in [
        (
            &m[0],
            &[
                (Adapter, "5"),
                (Adapter, "6"),
                (Domain, "4"),
                (Domain, "0xab"),
            ][..],
        ),
        (
            &m[1],
            &[(Adapter, "5"), (Domain, "0x47"), (Domain, "0xff")][..],
        ),
        (
            &m[2],
            &[(Adapter, "6"), (Domain, "0x47"), (Domain, "0xff")][..],
        ),
    ] {
        for (axis, value) in steps {
            echo_assign(&mut host, mdev, *axis, value).unwrap();
        }
    }
    (host, m)
}

fn start_three_guests(host: &mut Host, m: &[Uuid; 3]) {
    for (name, mdev) in ["Guest1", "Guest2", "Guest3"].iter().zip(m) {
        host.start_guest(name, Some(*mdev), CpuModel::default())
            .unwrap();
    }
}

const GUEST1: &str = "\
CARD.DOMAIN TYPE  MODE
------------------------------
05          CEX5C CCA-Coproc
05.0004     CEX5C CCA-Coproc
05.00ab     CEX5C CCA-Coproc
06          CEX5A Accelerator
06.0004     CEX5A Accelerator
06.00ab     CEX5A Accelerator
";

// The document shows card 05 as CEX5A here; a card has one type, and Guest1
// shares it as CEX5C (seed-system.md, "Known inconsistency").
const GUEST2: &str = "\
CARD.DOMAIN TYPE  MODE
------------------------------
05          CEX5C CCA-Coproc
05.0047     CEX5C CCA-Coproc
05.00ff     CEX5C CCA-Coproc
";

const GUEST3: &str = "\
CARD.DOMAIN TYPE  MODE
------------------------------
06          CEX5A Accelerator
06.0047     CEX5A Accelerator
06.00ff     CEX5A Accelerator
";

#[test]
fn the_three_matrices() {
    for secure in [
        (MaskKind::Apmask, "-5,-6\n"),
        (MaskKind::Aqmask, "-4,-0x47,-0xab,-0xff\n"),
    ] {
        let (host, m) = three_mdevs(secure);
        let text = |u: &Uuid| host.mdev(u).unwrap().matrix_text();
        assert_eq!(text(&m[0]), "05.0004\n05.00ab\n06.0004\n06.00ab\n");
        assert_eq!(text(&m[1]), "05.0047\n05.00ff\n");
        assert_eq!(text(&m[2]), "06.0047\n06.00ff\n");
        assert_eq!(host.available_instances(), 65536 - 3);
    }
}

#[test]
fn what_each_guest_sees() {
    for secure in [
        (MaskKind::Apmask, "-5,-6\n"),
        (MaskKind::Aqmask, "-4,-0x47,-0xab,-0xff\n"),
    ] {
        let (mut host, m) = three_mdevs(secure);
        start_three_guests(&mut host, &m);
        for (name, expect) in [("Guest1", GUEST1), ("Guest2", GUEST2), ("Guest3", GUEST3)] {
            let view = host.guest_view(name).unwrap();
            assert_eq!(view.lszcrypt(), expect, "{name}");
            assert!(view.notes.is_empty(), "{name}: {:?}", view.notes);
        }
        // every APQN of the mdev is in the guest, in use
        for q in apqns(&["05.0004", "05.00ab", "06.0004", "06.00ab"]) {
            assert_eq!(host.vfio_queue_status(q), Some("in use"));
            assert_eq!(host.apqn_state(q).guest.as_deref(), Some("Guest1"));
        }
    }
}

#[test]
fn the_patch_assigns_adapters_4_5_6_22_and_23() {
    // "to assign adapters 4, 5, 6, 22 and 23: echo 4 > assign_adapter ..."
    // With no domain assigned the cross product is empty, so even adapters
    // the host keeps (04) or lacks (0x16, 0x17) are accepted.
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let mdev = create(&mut host, UUID1);
    for a in ["4", "5", "6", "22", "23"] {
        echo_assign(&mut host, &mdev, MatrixAxis::Adapter, a).unwrap();
    }
    assert_eq!(
        host.mdev(&mdev).unwrap().matrix_text(),
        "04.\n05.\n06.\n16.\n17.\n"
    );
    // ...but now a domain would cross the host's adapter 04.
    let err = echo_assign(&mut host, &mdev, MatrixAxis::Domain, "4").unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRNOTAVAIL);
    assert!(
        err.to_string().starts_with(
            "EADDRNOTAVAIL: APQN 04.0004 (and 2 more) is reserved for the host (apmask bit 4 and aqmask bit 4 are set)"
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Sharing: Examples 1 to 3
// ---------------------------------------------------------------------------

/// Adapters 1-4 x domains 5-7, all free for vfio_ap.
fn sharing_host() -> Host {
    let t = Topology::from_toml(
        "usage_domains = \"5-7\"\n\
         [[card]]\nid = 1\ntype = \"CEX6C\"\n\
         [[card]]\nid = 2\ntype = \"CEX6C\"\n\
         [[card]]\nid = 3\ntype = \"CEX6A\"\n\
         [[card]]\nid = 4\ntype = \"CEX6P\"\n",
    )
    .unwrap();
    let mut host = Host::new(t, &SEED);
    host.write_mask(MaskKind::Apmask, b"0x").unwrap();
    host
}

fn configure(
    host: &mut Host,
    uuid: &str,
    adapters: &[u64],
    domains: &[u64],
) -> Result<Uuid, ApError> {
    let mdev = create(host, uuid);
    for a in adapters {
        host.assign(&mdev, MatrixAxis::Adapter, *a)?;
    }
    for d in domains {
        host.assign(&mdev, MatrixAxis::Domain, *d)?;
    }
    Ok(mdev)
}

#[test]
fn example_1_valid_guest2_adapters_1_2_domain_7() {
    let mut host = sharing_host();
    configure(&mut host, UUID1, &[1, 2], &[5, 6]).unwrap();
    let m2 = configure(&mut host, UUID2, &[1, 2], &[7]).unwrap();
    assert_eq!(host.mdev(&m2).unwrap().matrix_text(), "01.0007\n02.0007\n");
}

#[test]
fn example_2_valid_guest2_adapters_3_4_domains_5_6() {
    let mut host = sharing_host();
    configure(&mut host, UUID1, &[1, 2], &[5, 6]).unwrap();
    let m2 = configure(&mut host, UUID2, &[3, 4], &[5, 6]).unwrap();
    assert_eq!(
        host.mdev(&m2).unwrap().matrix_text(),
        "03.0005\n03.0006\n04.0005\n04.0006\n"
    );
}

#[test]
fn example_3_invalid_both_guests_would_have_apqn_1_6() {
    let mut host = sharing_host();
    let m1 = configure(&mut host, UUID1, &[1, 2], &[5, 6]).unwrap();
    // adapter first, then the domain that clashes
    let err = configure(&mut host, UUID2, &[1], &[6, 7]).unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRINUSE);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "EADDRINUSE: APQN 01.0006 is already assigned to mdev {m1}; assigning domain 0x06"
        )),
        "{text}"
    );
    // domains first, then the adapter: the same APQN is named
    let m3 = create(&mut host, UUID3);
    host.assign(&m3, MatrixAxis::Domain, 6).unwrap();
    host.assign(&m3, MatrixAxis::Domain, 7).unwrap();
    let before = host.clone();
    let err = host.assign(&m3, MatrixAxis::Adapter, 1).unwrap_err();
    match &err {
        ApError::AssignedToOtherMdev { apqns, other, .. } => {
            assert_eq!(apqns.0, apqns_list(&["01.0006"]));
            assert_eq!(*other, m1);
        }
        e => panic!("unexpected {e}"),
    }
    assert_eq!(host, before, "a refused assignment changes nothing");
}

fn apqns_list(list: &[&str]) -> Vec<Apqn> {
    apqns(list)
}

// ---------------------------------------------------------------------------
// ENODEV, EADDRNOTAVAIL, EADDRINUSE
// ---------------------------------------------------------------------------

#[test]
fn enodev_above_the_maximum_ids() {
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Apmask, b"0x").unwrap();
    let m = create(&mut host, UUID1);
    for axis in MatrixAxis::ALL {
        assert_eq!(errno(host.write_assign(&m, axis, b"256\n")), Errno::ENODEV);
        assert_eq!(
            errno(host.write_unassign(&m, axis, b"0x100")),
            Errno::ENODEV
        );
        host.write_assign(&m, axis, b"255\n").unwrap();
    }
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "ff.00ff\n");
    // Without APXA the limits are 63 and 15.
    let mut t = Topology::seed_example();
    t.apxa = false;
    t.usage_domains = Mask256::range(4, 6);
    t.control_domains = t.usage_domains;
    let mut host = Host::new(t, &SEED);
    let m = create(&mut host, UUID1);
    let err = host
        .write_assign(&m, MatrixAxis::Adapter, b"64")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ENODEV: adapter 64 (0x40) is above the host's maximum adapter number 63 (0x3f)"
    );
    assert_eq!(
        errno(host.write_assign(&m, MatrixAxis::Domain, b"16")),
        Errno::ENODEV
    );
    assert_eq!(
        errno(host.write_assign(&m, MatrixAxis::ControlDomain, b"0x10")),
        Errno::ENODEV
    );
    host.write_assign(&m, MatrixAxis::ControlDomain, b"15")
        .unwrap();
}

#[test]
fn parse_errors_come_before_range_errors() {
    let mut host = Host::seed_example();
    let m = create(&mut host, UUID1);
    assert_eq!(
        errno(host.write_assign(&m, MatrixAxis::Adapter, b"-1")),
        Errno::EINVAL
    );
    assert_eq!(
        errno(host.write_assign(&m, MatrixAxis::Adapter, b"99999999999999999999")),
        Errno::ERANGE
    );
    assert_eq!(
        errno(host.write_assign(&m, MatrixAxis::Adapter, b"08")),
        Errno::EINVAL
    );
}

#[test]
fn eaddrnotavail_when_the_masks_keep_an_apqn_for_the_host() {
    // Secured by aqmask: adapters stay shared, domain 5 stays with the host.
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Aqmask, b"-4,-0x47,-0xab,-0xff")
        .unwrap();
    let m = create(&mut host, UUID1);
    echo_assign(&mut host, &m, MatrixAxis::Adapter, "5").unwrap();
    let before = host.clone();
    let err = echo_assign(&mut host, &m, MatrixAxis::Domain, "5").unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRNOTAVAIL);
    assert!(
        err.to_string().starts_with(
            "EADDRNOTAVAIL: APQN 05.0005 is reserved for the host (apmask bit 5 and aqmask bit 5 are set)"
        ),
        "{err}"
    );
    assert_eq!(host, before);
    echo_assign(&mut host, &m, MatrixAxis::Domain, "0x47").unwrap();
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "05.0047\n");
}

#[test]
fn apqns_free_per_the_masks_are_accepted_even_without_a_queue() {
    // Seed rule 1: availability is decided by the masks alone, so an APQN the
    // host does not have (no card 0x20) is accepted when the masks free it.
    let mut host = Host::seed_example();
    host.write_mask(MaskKind::Apmask, b"-5,-6,-0x20").unwrap();
    let m = create(&mut host, UUID1);
    echo_assign(&mut host, &m, MatrixAxis::Domain, "4").unwrap();
    echo_assign(&mut host, &m, MatrixAxis::Adapter, "0x20").unwrap();
    echo_assign(&mut host, &m, MatrixAxis::Adapter, "5").unwrap();
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), "05.0004\n20.0004\n");
    // The guest gets only what exists: adapter 0x20 is filtered out.
    host.start_guest("g", Some(m), CpuModel::default()).unwrap();
    let view = host.guest_view("g").unwrap();
    assert_eq!(view.apqns(), apqns(&["05.0004"]));
    assert_eq!(
        view.notes,
        vec!["adapter 20 is assigned but the host has no such card, so the guest does not get it"]
    );
    // Adapter 0x21 is still in apmask: reserved for the host, card or not.
    assert_eq!(
        errno(echo_assign(&mut host, &m, MatrixAxis::Adapter, "0x21")),
        Errno::EADDRNOTAVAIL
    );
}

#[test]
fn eaddrinuse_when_guest2_wants_adapter_6() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    start_three_guests(&mut host, &m);
    let err = echo_assign(&mut host, &m[1], MatrixAxis::Adapter, "6").unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRINUSE);
    assert!(
        err.to_string().starts_with(&format!(
            "EADDRINUSE: APQN 06.0047 (and 1 more) is already assigned to mdev {}, used by guest Guest3",
            m[2]
        )),
        "{err}"
    );
    // Control domains may be shared: only the range is checked.
    for mdev in &m {
        echo_assign(&mut host, mdev, MatrixAxis::ControlDomain, "0xab").unwrap();
        assert_eq!(host.mdev(mdev).unwrap().control_domains_text(), "00ab\n");
    }
    // Assigning what is assigned succeeds; unassigning what is not, too.
    echo_assign(&mut host, &m[0], MatrixAxis::Adapter, "5").unwrap();
    host.write_unassign(&m[0], MatrixAxis::Domain, b"0x47\n")
        .unwrap();
}

#[test]
fn mask_change_that_would_take_an_assigned_apqn_is_refused() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    let before = host.clone();
    let err = host.write_mask(MaskKind::Apmask, b"+5\n").unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRINUSE);
    assert!(
        err.to_string().starts_with(&format!(
            "EADDRINUSE: setting apmask to 0xfdff{} would give the host APQN 05.0004 (and 3 more), which is assigned to mdev {}",
            "f".repeat(60),
            m[0]
        )),
        "{err}"
    );
    assert_eq!(host, before, "neither mask changes");
    let err = host
        .write_mask(MaskKind::Apmask, format!("0x{}", "f".repeat(64)).as_bytes())
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRINUSE);
    assert_eq!(host, before);
    // Clearing bits never fails.
    host.write_mask(MaskKind::Aqmask, b"-4").unwrap();

    // Secured by aqmask instead: giving domain 0x47 back is refused.
    let (mut host, m) = three_mdevs((MaskKind::Aqmask, "-4,-0x47,-0xab,-0xff\n"));
    let err = host.write_mask(MaskKind::Aqmask, b"+0x47").unwrap_err();
    match err {
        ApError::MaskReclaimsAssigned {
            errno,
            mask,
            apqns,
            mdev,
            ..
        } => {
            assert_eq!(errno, Errno::EADDRINUSE);
            assert_eq!(mask, MaskKind::Aqmask);
            assert_eq!(apqns.0, apqns_list(&["05.0047", "06.0047"]));
            assert_eq!(mdev, m[1]);
        }
        e => panic!("unexpected {e}"),
    }
    // Once the mdev lets go, the same write succeeds and rebinds.
    host.write_unassign(&m[1], MatrixAxis::Domain, b"0x47")
        .unwrap();
    host.write_unassign(&m[2], MatrixAxis::Domain, b"0x47")
        .unwrap();
    let effects = host.write_mask(MaskKind::Aqmask, b"+0x47").unwrap();
    assert_eq!(effects.rebound_queues(), 3);
}

// ---------------------------------------------------------------------------
// Hot plug and unplug; remove while running
// ---------------------------------------------------------------------------

#[test]
fn hot_unplug_of_an_adapter() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    start_three_guests(&mut host, &m);
    let effects = host
        .write_unassign(&m[0], MatrixAxis::Adapter, b"6\n")
        .unwrap();
    let update = &effects.guest_updates[0];
    assert_eq!(update.guest, "Guest1");
    assert_eq!(update.unplugged(), apqns(&["06.0004", "06.00ab"]));
    assert!(update.plugged().is_empty());
    assert_eq!(
        host.guest_view("Guest1").unwrap().lszcrypt(),
        GUEST1
            .lines()
            .take(5)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    assert_eq!(host.vfio_queue_status(Apqn::new(6, 4)), Some("unassigned"));
    // ...and plug it back.
    let effects = host.write_assign(&m[0], MatrixAxis::Adapter, b"6").unwrap();
    assert_eq!(
        effects.guest_updates[0].plugged(),
        apqns(&["06.0004", "06.00ab"])
    );
    assert_eq!(host.guest_view("Guest1").unwrap().lszcrypt(), GUEST1);
}

#[test]
fn unplug_adapters_0_to_15_before_live_migration() {
    // "if a guest is using adapters 0 through 15, they can be unplugged as
    // follows: echo 0 > unassign_adapter ... echo 15 > unassign_adapter"
    let mut host = Host::new(Topology::synthetic(16, 2), &SEED);
    host.write_mask(MaskKind::Apmask, b"-0-15").unwrap();
    let m = create(&mut host, UUID1);
    for a in 0..16 {
        host.assign(&m, MatrixAxis::Adapter, a).unwrap();
    }
    host.assign(&m, MatrixAxis::Domain, 1).unwrap();
    host.start_guest("migrant", Some(m), CpuModel::default())
        .unwrap();
    assert_eq!(host.guest_view("migrant").unwrap().apqns().len(), 16);
    for a in 0..16 {
        host.write_unassign(&m, MatrixAxis::Adapter, format!("{a}\n").as_bytes())
            .unwrap();
    }
    let view = host.guest_view("migrant").unwrap();
    assert!(view.apqns().is_empty(), "all domains became inaccessible");
    assert_eq!(host.mdev(&m).unwrap().matrix_text(), ".0001\n");
}

#[test]
fn remove_fails_while_the_guest_runs() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    start_three_guests(&mut host, &m);
    let before = host.clone();
    let err = host.write_remove(&m[0], b"1\n").unwrap_err();
    assert_eq!(err.errno(), Errno::EBUSY);
    assert_eq!(
        err.to_string(),
        format!(
            "EBUSY: mdev {} is in use by guest Guest1; stop the guest before removing it",
            m[0]
        )
    );
    assert_eq!(host, before);
    host.stop_guest("Guest1").unwrap();
    host.write_remove(&m[0], b"0\n").unwrap(); // 0 does nothing
    assert!(host.mdev(&m[0]).is_some());
    host.write_remove(&m[0], b"1\n").unwrap();
    assert!(host.mdev(&m[0]).is_none());
    assert_eq!(host.available_instances(), 65536 - 2);
    assert_eq!(errno(host.write_remove(&m[0], b"1")), Errno::ENOENT);
    // its APQNs are free for another mdev now
    let again = create(&mut host, UUID1);
    assert_eq!(again, m[0]);
    host.assign(&again, MatrixAxis::Adapter, 6).unwrap();
    host.assign(&again, MatrixAxis::Domain, 4).unwrap();
}

#[test]
fn create_refuses_a_duplicate_uuid() {
    let mut host = Host::seed_example();
    create(&mut host, UUID1);
    assert_eq!(
        errno(host.write_create(UUID1.to_uppercase().as_bytes())),
        Errno::EEXIST
    );
    assert_eq!(errno(host.write_create(b"not-a-uuid\n")), Errno::EINVAL);
    assert_eq!(host.mdev_count(), 1);
}

// ---------------------------------------------------------------------------
// The guest's CPU model and the one-mdev rules
// ---------------------------------------------------------------------------

#[test]
fn cpu_model_decides_what_the_guest_sees() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    let cpu = |f: &str| CpuModel::from_features(f).unwrap();
    host.start_guest("noapft", Some(m[0]), cpu("apft=off"))
        .unwrap();
    host.start_guest("noap", Some(m[1]), cpu("ap=off")).unwrap();
    host.start_guest("noqci", Some(m[2]), cpu("apqci=off"))
        .unwrap();
    for name in ["noapft", "noap"] {
        let view = host.guest_view(name).unwrap();
        assert!(view.cards.is_empty(), "{name}");
        assert_eq!(
            view.lszcrypt(),
            "CARD.DOMAIN TYPE  MODE\n------------------------------\n"
        );
        assert_eq!(view.notes.len(), 1, "{name}: {:?}", view.notes);
    }
    // Guest3's domains are 0x47 and 0xff: both above 15.
    let view = host.guest_view("noqci").unwrap();
    assert!(view.cards.is_empty());
    assert!(view.notes[0].contains("apqci=off"), "{:?}", view.notes);
    host.stop_guest("noapft").unwrap();
    host.start_guest("noqci1", Some(m[0]), cpu("apqci=off"))
        .unwrap();
    assert_eq!(
        host.guest_view("noqci1").unwrap().apqns(),
        apqns(&["05.0004", "06.0004"])
    );
}

#[test]
fn one_mdev_per_guest_and_one_guest_per_mdev() {
    let (mut host, m) = three_mdevs((MaskKind::Apmask, "-5,-6\n"));
    host.start_guest("Guest1", Some(m[0]), CpuModel::default())
        .unwrap();
    assert_eq!(
        errno(host.start_guest("other", Some(m[0]), CpuModel::default())),
        Errno::EBUSY
    );
    assert!(
        host.guest("other").is_none(),
        "the refused start left no guest"
    );
    assert_eq!(errno(host.attach_mdev("Guest1", &m[1])), Errno::EPERM);
    host.start_guest("Guest2", None, CpuModel::default())
        .unwrap();
    assert_eq!(errno(host.attach_mdev("Guest2", &m[0])), Errno::EBUSY);
    let effects = host.attach_mdev("Guest2", &m[1]).unwrap();
    assert_eq!(
        effects.guest_updates[0].plugged(),
        apqns(&["05.0047", "05.00ff"])
    );
    let effects = host.detach_mdev("Guest2").unwrap();
    assert_eq!(
        effects.guest_updates[0].unplugged(),
        apqns(&["05.0047", "05.00ff"])
    );
    assert_eq!(errno(host.detach_mdev("Guest2")), Errno::ENODEV);
    assert_eq!(errno(host.stop_guest("nobody")), Errno::ENOENT);
}
