//! The persistent layers, the next boot and the status picture, without I/O
//! beyond a temporary /etc.

use std::fs;
use std::path::PathBuf;

use apmatrix_model::{Apqn, Host, Mask256, SEED};
use uuid::Uuid;

use crate::boot::next_boot;
use crate::definitions::{read_definitions, Definition};
use crate::persistent::{boot_masks, cmdline_parameters, BootMasks};
use crate::running::RunningGuest;
use crate::status::{status, Layers};
use crate::{observe, EmulatedRoot, Observed, WantedMdev};

fn seen(host: Host) -> Observed {
    observe(&EmulatedRoot { host }).unwrap()
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x1111_1111_1111_4111_8111_0000_0000_0000 | n)
}

/// An autostart definition writing `attrs` in order.
fn definition(n: u128, autostart: bool, attrs: &[(&str, &str)]) -> Definition {
    let mut mdev = WantedMdev {
        autostart,
        ..WantedMdev::empty(uuid(n))
    };
    for (name, value) in attrs {
        let id: u8 = apmatrix_model::parse::parse_kstrtoul(value.as_bytes()).unwrap() as u8;
        match *name {
            "assign_adapter" => mdev.adapters.set(id),
            "assign_domain" => mdev.domains.set(id),
            "assign_control_domain" => mdev.control_domains.set(id),
            other => panic!("{other}"),
        }
    }
    Definition {
        uuid: mdev.uuid,
        path: PathBuf::from(format!("/etc/mdevctl.d/matrix/{}", mdev.uuid)),
        nodedev: crate::export::libvirt_nodedev_name(&mdev),
        mdev,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn default_boot() -> BootMasks {
    boot_masks(None, &cmdline_parameters(""))
}

#[test]
fn the_rule_beats_the_command_line_which_beats_the_default_mask_by_mask() {
    let cmdline =
        cmdline_parameters("root=/dev/dasda1 ap.apmask=0x0f ap.aqmask=+0-3 ap.apmask=0xf0 quiet");
    assert_eq!(
        cmdline.apmask.as_deref(),
        Some("0xf0"),
        "the last one counts"
    );
    let rule = "ACTION==\"add\", SUBSYSTEM==\"ap\", ATTR{../../bus/ap/apmask}=\"0x8000\"\n";
    let b = boot_masks(Some(rule), &cmdline);
    assert_eq!(b.apmask, Mask256::single(0));
    assert_eq!(b.apmask_from, "41-ap.rules");
    assert_eq!(b.aqmask, Mask256::range(0, 3));
    assert_eq!(b.aqmask_from, "kernel command line");
    let none = default_boot();
    assert_eq!((none.apmask, none.aqmask), (Mask256::FULL, Mask256::FULL));
    assert_eq!(none.apmask_from, "kernel default");
    // A value the kernel cannot parse leaves that mask empty, and is said.
    let bad = boot_masks(None, &cmdline_parameters("ap.aqmask=0xzz"));
    assert_eq!(bad.aqmask, Mask256::EMPTY);
    assert!(
        bad.warnings[0].contains("ap.aqmask=\"0xzz\""),
        "{:?}",
        bad.warnings
    );
}

#[test]
fn the_next_boot_starts_autostart_definitions_in_order_and_the_second_of_a_conflict_loses() {
    let seen = seen(Host::seed_example());
    let boot = boot_masks(None, &cmdline_parameters("ap.apmask=0xf8"));
    let a = definition(
        1,
        true,
        &[("assign_adapter", "6"), ("assign_domain", "0x47")],
    );
    let b = definition(
        2,
        true,
        &[
            ("assign_adapter", "6"),
            ("assign_domain", "0xab"),
            ("assign_domain", "0x47"),
        ],
    );
    let manual = definition(
        3,
        false,
        &[("assign_adapter", "6"), ("assign_domain", "0x47")],
    );
    let host_owned = definition(4, true, &[("assign_adapter", "4"), ("assign_domain", "4")]);
    let defs = [a.clone(), b.clone(), manual, host_owned];
    let (host, starts) = next_boot(&seen, &boot, &defs, false);
    let verdicts: Vec<(Uuid, bool)> = starts.iter().map(|s| (s.uuid, s.started)).collect();
    assert_eq!(
        verdicts,
        [(a.uuid, true), (b.uuid, false), (uuid(4), false)]
    );
    let refused = starts[1].kernel.as_ref().unwrap();
    assert_eq!(
        (
            refused.attribute.as_str(),
            refused.value.as_str(),
            refused.errno.as_str()
        ),
        ("assign_domain", "0x47", "EADDRINUSE")
    );
    assert_eq!(
        starts[1].ap_check,
        [format!("APQN 6.71 already in use by {}", a.uuid)]
    );
    assert_eq!(starts[2].kernel.as_ref().unwrap().errno, "EADDRNOTAVAIL");
    assert!(
        starts[2].ap_check[0].contains("APQN 4.4 is not allowed"),
        "{:?}",
        starts[2].ap_check
    );
    // mdevctl removes what it could not finish.
    assert_eq!(host.mdevs().map(|m| m.uuid).collect::<Vec<_>>(), [a.uuid]);
    // The other order: the other one wins.
    let (_, swapped) = next_boot(&seen, &boot, &[b.clone(), a.clone()], false);
    assert_eq!((swapped[0].started, swapped[1].started), (true, false));
    // With ap-check installed, its refusal stops the start before any write.
    let (_, checked) = next_boot(&seen, &boot, &defs, true);
    assert!(checked[1].kernel.is_none() && !checked[1].started);
}

#[test]
fn an_mdev_with_control_domains_only_passes_the_kernel_but_not_ap_check() {
    let seen = seen(Host::seed_example());
    let boot = default_boot();
    let d = definition(1, true, &[("assign_control_domain", "4")]);
    let (_, without) = next_boot(&seen, &boot, std::slice::from_ref(&d), false);
    assert!(without[0].started);
    assert_eq!(
        without[0].ap_check,
        ["At least one usage domain must be specified"]
    );
    let (_, with) = next_boot(&seen, &boot, &[d], true);
    assert!(!with[0].started);
}

#[test]
fn status_puts_every_layer_of_an_apqn_in_one_row_and_names_the_drift() {
    let mut host = Host::new(apmatrix_model::Topology::seed_example(), &SEED);
    host.write_mask(apmatrix_model::MaskKind::Apmask, b"-5")
        .unwrap();
    let (active, lost) = (uuid(1), uuid(2));
    for (u, domain) in [(active, 4u64), (lost, 5)] {
        host.create_mdev(u).unwrap();
        host.assign(&u, apmatrix_model::MatrixAxis::Adapter, 5)
            .unwrap();
        host.assign(&u, apmatrix_model::MatrixAxis::Domain, domain)
            .unwrap();
    }
    let seen = seen(host);
    let guests = [RunningGuest {
        name: "g1".into(),
        mdev: Some(active),
        cpu: None,
        source: "test".into(),
    }];
    let etc = tempfile::tempdir().unwrap();
    let dir = etc.path().join("mdevctl.d/matrix");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(active.to_string()),
        r#"{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[{"assign_adapter":"5"},{"assign_domain":"4"},{"assign_domain":"6"}]}"#,
    )
    .unwrap();
    let definitions = read_definitions(etc.path());
    let boot = default_boot();
    let s = status(&Layers {
        seen: &seen,
        guests: &guests,
        boot: &boot,
        definitions: &definitions,
        ap_check: false,
    });
    let row = |q: &str| {
        let q: Apqn = q.parse().unwrap();
        s.apqns.iter().find(|r| r.apqn == q).unwrap().clone()
    };
    let r = row("05.0004");
    assert_eq!(
        (r.owner, r.mdev, r.guest.as_deref(), r.in_guest),
        ("mdev", Some(active), Some("g1"), true)
    );
    assert_eq!((r.at_boot, r.after_boot), ("host", "host"));
    assert_eq!(r.definitions[0].start, "auto");
    assert!(r.drift);
    let plain = row("04.0004");
    assert_eq!(
        (plain.owner, plain.at_boot, plain.after_boot, plain.drift),
        ("host", "host", "host", false)
    );
    let kinds: Vec<(&str, Option<Uuid>)> = s.drift.iter().map(|d| (d.kind, d.mdev)).collect();
    assert_eq!(
        kinds,
        [
            ("masks", None),
            ("differs", Some(active)),
            ("undefined", Some(lost)),
            ("boot_failure", Some(active)),
        ]
    );
    let differs = &s.drift[1];
    let touched: Vec<String> = differs.apqns.iter().map(|q| q.to_string()).collect();
    assert_eq!(
        touched,
        ["05.0006"],
        "only what the two matrices disagree on"
    );
    assert!(
        s.drift[3].message.contains("guest g1, which uses it now"),
        "{}",
        s.drift[3].message
    );
    assert!(!s.definitions[0].matches_active && s.definitions[0].active);
}
