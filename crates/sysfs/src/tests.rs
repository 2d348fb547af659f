use super::*;
use apmatrix_model::{Errno, MaskKind, MatrixAxis, Topology, SEED};

const UUID1: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";

fn walkthrough_host() -> Host {
    walkthrough_host_on(&SEED)
}

/// The first steps of the document's walkthrough on a host of `profile`:
/// adapters 5 and 6 to vfio_ap, one mdev with 05.0004 and control domain 0xab.
fn walkthrough_host_on(profile: &'static apmatrix_model::KernelProfile) -> Host {
    let mut host = Host::new(Topology::seed_example(), profile);
    host.write_mask(MaskKind::Apmask, b"-5,-6\n").unwrap();
    let u = host.write_create(UUID1.as_bytes()).unwrap().unwrap();
    host.write_assign(&u, MatrixAxis::Adapter, b"5\n").unwrap();
    host.write_assign(&u, MatrixAxis::Domain, b"4\n").unwrap();
    host.write_assign(&u, MatrixAxis::ControlDomain, b"0xab\n")
        .unwrap();
    host
}

/// Every directory reachable from the root, with its path.
fn all_dirs(host: &Host) -> Vec<(String, Dir)> {
    let mut out = vec![(String::new(), Dir::Root)];
    let mut i = 0;
    while i < out.len() {
        let (path, dir) = out[i].clone();
        for (name, kind) in children(host, dir) {
            if kind == Kind::Dir {
                let Some(Node::Dir(d)) = child(host, dir, &name) else {
                    panic!("{path}/{name} listed as a directory but does not resolve to one");
                };
                let p = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                out.push((p, d));
            }
        }
        i += 1;
    }
    out
}

#[test]
fn listings_and_lookups_agree() {
    for host in [Host::seed_example(), walkthrough_host()] {
        let dirs = all_dirs(&host);
        assert!(dirs.len() > 30, "{}", dirs.len());
        for (path, dir) in &dirs {
            for (name, kind) in children(&host, *dir) {
                let node = child(&host, *dir, &name)
                    .unwrap_or_else(|| panic!("{path}/{name} is listed but not found"));
                assert_eq!(node.kind(), kind, "{path}/{name}");
            }
            // names that are not listed are not found
            for bogus in ["", "x", "CARD05", "card5", "05.4", "05.00AB", "0x5"] {
                assert!(
                    children(&host, *dir).iter().all(|(n, _)| n != bogus)
                        && child(&host, *dir, bogus).is_none(),
                    "{path}/{bogus}"
                );
            }
        }
    }
}

#[test]
fn every_link_resolves_inside_the_tree() {
    let host = walkthrough_host();
    let mut links = 0;
    for (path, dir) in all_dirs(&host) {
        for (name, kind) in children(&host, dir) {
            if kind != Kind::Link {
                continue;
            }
            let full = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let Some(Node::Link(target)) = lookup(&host, &full) else {
                panic!("{full}");
            };
            assert!(target.starts_with("../"), "{full} -> {target}");
            let resolved = format!("{path}/{target}");
            assert!(
                matches!(resolve_path(&host, &resolved), Some(Node::Dir(_))),
                "{full} -> {target} does not lead to a directory"
            );
            links += 1;
        }
    }
    // 3 cards + 18 queues in bus/ap/devices, driver links, mdev links ...
    assert!(links > 60, "{links}");
}

#[test]
fn seed_walkthrough_reads_as_the_document_shows() {
    let mut host = Host::seed_example();
    let mut sys = SysfsView { host: &mut host };
    sys.write("bus/ap/apmask", b"-5,-6\n").unwrap();
    assert_eq!(
        sys.read("bus/ap/apmask").unwrap(),
        format!("0xf9{}\n", "f".repeat(62))
    );
    assert_eq!(
        sys.list("bus/ap/drivers/vfio_ap").unwrap(),
        [
            "05.0004", "05.0005", "05.0006", "05.0047", "05.00ab", "05.00ff", "06.0004", "06.0005",
            "06.0006", "06.0047", "06.00ab", "06.00ff"
        ]
    );
    let create = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    sys.write(create, format!("{UUID1}\n").as_bytes()).unwrap();
    let dir = format!("devices/vfio_ap/matrix/{UUID1}");
    for (attr, value) in [
        ("assign_adapter", "5"),
        ("assign_adapter", "6"),
        ("assign_domain", "4"),
        ("assign_domain", "0xab"),
    ] {
        sys.write(&format!("{dir}/{attr}"), format!("{value}\n").as_bytes())
            .unwrap();
    }
    assert_eq!(
        sys.read(&format!("{dir}/matrix")).unwrap(),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    // The same file through the mdev bus link and the class link.
    assert_eq!(
        sys.read(&format!("bus/mdev/devices/{UUID1}/matrix"))
            .unwrap(),
        sys.read(&format!("class/mdev_bus/matrix/{UUID1}/matrix"))
            .unwrap()
    );
    let err = sys
        .write(&format!("{dir}/assign_adapter"), b"4\n")
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRNOTAVAIL);
    let err = sys.write("bus/ap/apmask", b"+5\n").unwrap_err();
    assert_eq!(err.errno(), Errno::EADDRINUSE);
    assert_eq!(
        sys.read(
            "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances"
        )
        .unwrap(),
        "65535\n"
    );
    sys.write(&format!("{dir}/remove"), b"1\n").unwrap();
    assert!(matches!(
        sys.read(&format!("{dir}/matrix")),
        Err(AccessError::NotFound(_))
    ));
    assert!(sys.list("bus/mdev/devices").unwrap().is_empty());
}

#[test]
fn attributes_by_driver() {
    let host = walkthrough_host();
    let names = |path: &str| -> Vec<String> {
        let Some(Node::Dir(d)) = lookup(&host, path) else {
            panic!("{path}")
        };
        children(&host, d).into_iter().map(|(n, _)| n).collect()
    };
    let zcrypt_queue = names("devices/ap/card04/04.0004");
    assert!(zcrypt_queue.contains(&"online".to_string()));
    assert!(!zcrypt_queue.contains(&"status".to_string()));
    let vfio_queue = names("devices/ap/card05/05.0004");
    assert!(!vfio_queue.contains(&"online".to_string()));
    assert!(vfio_queue.contains(&"status".to_string()));
    let read = |path: &str| {
        let Some(Node::File(f)) = lookup(&host, path) else {
            panic!("{path}")
        };
        attrs::read(&host, &f)
    };
    assert_eq!(read("devices/ap/card05/05.0004/status"), "assigned\n");
    assert_eq!(read("devices/ap/card05/05.0005/status"), "unassigned\n");
    assert_eq!(read("devices/ap/card05/05.0004/request_count"), "-\n");
    assert_eq!(read("devices/ap/card04/04.0004/request_count"), "0\n");
    assert_eq!(read("devices/ap/card05/type"), "CEX5C\n");
    assert_eq!(read("devices/ap/card05/hwtype"), "11\n");
    assert_eq!(read("devices/ap/card05/modalias"), "ap:t0B\n");
    assert_eq!(read("bus/ap/ap_domain"), "4\n");
    assert_eq!(read("bus/ap/bindings"), "18/18 (complete)\n");
    assert_eq!(
        read(&format!("devices/vfio_ap/matrix/{UUID1}/control_domains")),
        "00ab\n"
    );
    assert_eq!(
        read(&format!("devices/vfio_ap/matrix/{UUID1}/guest_matrix")),
        "05.0004\n"
    );
    assert_eq!(
        lookup(&host, "devices/ap/card05/05.0004/driver"),
        Some(Node::Link("../../../../bus/ap/drivers/vfio_ap".into()))
    );
    assert_eq!(
        lookup(
            &host,
            &format!("devices/vfio_ap/matrix/{UUID1}/iommu_group")
        ),
        Some(Node::Link("../../../../kernel/iommu_groups/0".into()))
    );
}

#[test]
fn modes_follow_sysfs() {
    let host = walkthrough_host();
    let mode = |path: &str| match lookup(&host, path) {
        Some(Node::File(f)) => f.mode(),
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(mode("bus/ap/apmask"), 0o644);
    assert_eq!(mode("bus/ap/bindings"), 0o444);
    assert_eq!(
        mode(&format!("devices/vfio_ap/matrix/{UUID1}/assign_adapter")),
        0o200
    );
    assert_eq!(
        mode(&format!("devices/vfio_ap/matrix/{UUID1}/matrix")),
        0o444
    );
    assert_eq!(
        mode("devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create"),
        0o200
    );
    // the in-process view refuses what sysfs refuses at open
    let mut host = host;
    let mut sys = SysfsView { host: &mut host };
    let err = sys
        .read(&format!("devices/vfio_ap/matrix/{UUID1}/assign_adapter"))
        .unwrap_err();
    assert_eq!(err.errno(), Errno::EACCES);
    let err = sys.write("bus/ap/bindings", b"1").unwrap_err();
    assert_eq!(err.errno(), Errno::EACCES);
    let err = sys.write("bus/ap", b"1").unwrap_err();
    assert_eq!(err.errno(), Errno::EACCES);
}

#[test]
fn old_profile_attributes_are_absent() {
    use apmatrix_model::profile::SysfsAttributes;
    static BARE: apmatrix_model::KernelProfile = apmatrix_model::KernelProfile {
        name: "bare-for-tests",
        sysfs: SysfsAttributes {
            bus_scans_and_bindings: false,
            bus_features: true,
            guest_matrix: false,
            queue_status: false,
            ap_config: false,
            matrix_features: false,
            mdev_driver: "vfio_mdev",
            uevent_mode: false,
        },
        ..SEED
    };
    let mut host = Host::new(Topology::seed_example(), &BARE);
    host.write_mask(MaskKind::Apmask, b"-5").unwrap();
    assert!(lookup(&host, "bus/ap/scans").is_none());
    assert!(lookup(&host, "bus/ap/features").is_some());
    assert!(lookup(&host, "devices/ap/card05/05.0004/status").is_none());
    let u = host.write_create(UUID1.as_bytes()).unwrap().unwrap();
    assert!(lookup(&host, &format!("devices/vfio_ap/matrix/{u}/guest_matrix")).is_none());
}

/// Every attribute the tree lists, on a host with queues under each driver
/// and a running guest: a readable one prints a newline-terminated line or
/// lines (never an accidental empty file), a write-only one prints nothing,
/// and exactly the writable ones are model writes. On every profile; each
/// attribute of every table is seen at least once on one of them.
#[test]
fn every_listed_attribute_prints_and_writes_as_its_table_says() {
    let mut seen = std::collections::HashSet::new();
    for profile in apmatrix_model::profile::PROFILES {
        let mut host = walkthrough_host_on(profile);
        let u = UUID1.parse().unwrap();
        host.start_guest("g", Some(u), Default::default()).unwrap();
        attributes_print_as_listed(&host, &mut seen);
    }
    let every = BusAttr::ALL
        .iter()
        .map(|a| a.name())
        .chain(CardAttr::ALL.iter().map(|a| a.name()))
        .chain(QueueAttr::ALL.iter().map(|a| a.name()))
        .chain(MatrixAttr::ALL.iter().map(|a| a.name()))
        .chain(TypeAttr::ALL.iter().map(|a| a.name()))
        .chain(MdevAttr::ALL.iter().map(|a| a.name()))
        .chain(RootAttr::ALL.iter().map(|a| a.name()));
    for name in every {
        assert!(seen.contains(name), "{name} is never listed");
    }
}

fn attributes_print_as_listed(host: &Host, seen: &mut std::collections::HashSet<&'static str>) {
    for (path, dir) in all_dirs(host) {
        for (name, kind) in children(host, dir) {
            if kind != Kind::File {
                continue;
            }
            let Some(Node::File(f)) = child(host, dir, &name) else {
                panic!("{path}/{name} is listed as a file but is none");
            };
            let text = read(host, &f);
            if matches!(f, File::Root(..)) {
                // A root device has no uevent keys: its `uevent` reads empty.
                assert_eq!(text, "", "{path}/{name}");
            } else if f.readable() {
                assert!(
                    text.len() > 1 && text.ends_with('\n'),
                    "{path}/{name} prints {text:?}"
                );
            } else {
                assert_eq!(text, "", "{path}/{name} is write-only");
            }
            assert_eq!(f.writable(), write_target(&f).is_some(), "{path}/{name}");
            seen.insert(f.name());
        }
    }
}

/// kernel.md §1, §5, §6: which attributes each generation has, and which
/// mdev driver binds its mdevs. OLD lacks
/// `scans`, `bindings`, `guest_matrix` and a vfio_ap queue's `status`; only
/// NEW has `bus/ap/features`, the matrix device's `features` and
/// `ap_config`, which prints the three masks as ap-check writes them.
#[test]
fn each_generation_has_its_attributes() {
    use apmatrix_model::profile::{DYN, NEW, OLD, OLD_5_15};
    for profile in [&OLD, &OLD_5_15, &SEED, &DYN, &NEW] {
        let mut host = Host::new(Topology::seed_example(), profile);
        host.write_mask(MaskKind::Apmask, b"-5").unwrap();
        let u = host.write_create(UUID1.as_bytes()).unwrap().unwrap();
        host.write_assign(&u, MatrixAxis::Adapter, b"5").unwrap();
        host.write_assign(&u, MatrixAxis::Domain, b"0xab").unwrap();
        let mdev = format!("devices/vfio_ap/matrix/{u}");
        let has = |path: &str| lookup(&host, path).is_some();
        let old = profile.name.starts_with("old");
        let new = profile.name == "new";
        assert_eq!(has("bus/ap/scans"), !old, "{}", profile.name);
        assert_eq!(has("bus/ap/bindings"), !old, "{}", profile.name);
        assert_eq!(
            has(&format!("{mdev}/guest_matrix")),
            !old,
            "{}",
            profile.name
        );
        assert_eq!(
            has("devices/ap/card05/05.0004/status"),
            !old,
            "{}",
            profile.name
        );
        assert_eq!(has("bus/ap/features"), new, "{}", profile.name);
        assert_eq!(
            has("devices/vfio_ap/matrix/features"),
            new,
            "{}",
            profile.name
        );
        assert_eq!(has(&format!("{mdev}/ap_config")), new, "{}", profile.name);
        // §5: the generic vfio_mdev driver until vfio_ap's own (≈5.15).
        let driver = if matches!(profile.name, "old" | "seed") {
            "vfio_mdev"
        } else {
            "vfio_ap_mdev"
        };
        assert_eq!(
            lookup(&host, &format!("{mdev}/driver")),
            Some(Node::Link(format!("../../../../bus/mdev/drivers/{driver}"))),
            "{}",
            profile.name
        );
        assert!(
            has(&format!("bus/mdev/drivers/{driver}/{u}")),
            "{}",
            profile.name
        );
        if new {
            // §1: the QCI facilities in the kernel's order; the host has
            // APXA (no QACT, RC8A or APSB described).
            assert_eq!(read_path(&host, "bus/ap/features").unwrap(), "APSC APXA\n");
            assert_eq!(
                read_path(&host, "devices/vfio_ap/matrix/features").unwrap(),
                "guest_matrix hotplug ap_config\n"
            );
            let text = read_path(&host, &format!("{mdev}/ap_config")).unwrap();
            let zero = "0".repeat(64);
            let apm = format!("0x04{}", "0".repeat(62));
            let aqm = format!("0x{}10{}", "0".repeat(42), "0".repeat(20));
            assert_eq!(text, format!("{apm},{aqm},0x{zero}\n"));
            assert_eq!(text.len(), 201);
            // Written back as read, it changes nothing; ap-check's form.
            write_path(&mut host, &format!("{mdev}/ap_config"), text.as_bytes()).unwrap();
            assert_eq!(
                read_path(&host, &format!("{mdev}/matrix")).unwrap(),
                "05.00ab\n"
            );
        }
    }
}
