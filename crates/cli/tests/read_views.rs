//! Every read view with `--sysfs` on the mounted emulator prints what it
//! prints from the state file, byte for byte, text and JSON: the tree
//! carries everything the views show, and the guests come from libvirt's
//! live XML as they would on a real host.

mod common;

use std::path::Path;

use common::*;

/// libvirt's live XML for a running guest: its name, its vfio-ap mdev and
/// the CPU's AP features.
fn domstatus(name: &str, mdev: Option<&str>, cpu: &str) -> String {
    let features: String = cpu
        .split(',')
        .map(|f| {
            let (name, value) = f.split_once('=').unwrap();
            let policy = if value == "on" { "require" } else { "disable" };
            format!("<feature policy='{policy}' name='{name}'/>")
        })
        .collect();
    let hostdev = mdev.map_or(String::new(), |u| {
        format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\
             <source><address uuid='{u}'/></source></hostdev>"
        )
    });
    format!(
        "<domstatus state='running' reason='booted' pid='4242'>\n<domain type='kvm' id='7'>\
         <name>{name}</name><cpu mode='host-model'>{features}</cpu>\
         <devices>{hostdev}</devices></domain>\n</domstatus>\n"
    )
}

/// Writes `run/libvirt/qemu/<guest>.xml` for every guest the host runs.
fn libvirt_run_dir(host: &Path, run: &Path) {
    let qemu = run.join("libvirt/qemu");
    std::fs::create_dir_all(&qemu).unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&succeeded(apmatrix(host, &["--json", "guest", "list"]))).unwrap();
    for g in list.as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        std::fs::write(
            qemu.join(format!("{name}.xml")),
            domstatus(name, g["mdev"].as_str(), g["cpu"].as_str().unwrap()),
        )
        .unwrap();
    }
}

/// Each view, from the state file and from the tree, must agree.
fn views_agree(host: &Path, dir: &Path, run: &Path, kernel: Option<&str>) {
    let mdevs: serde_json::Value =
        serde_json::from_str(&succeeded(apmatrix(host, &["--json", "mdev", "list"]))).unwrap();
    let guests: serde_json::Value =
        serde_json::from_str(&succeeded(apmatrix(host, &["--json", "guest", "list"]))).unwrap();
    let mut views: Vec<Vec<String>> = [
        &["host", "show"][..],
        &["matrix"],
        &["mask", "show"],
        &["mask", "cmdline"],
        &["mdev", "list"],
        &["guest", "list"],
        &["status"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    for m in mdevs.as_array().unwrap() {
        views.push(vec![
            "mdev".into(),
            "show".into(),
            m["uuid"].as_str().unwrap().into(),
        ]);
    }
    for g in guests.as_array().unwrap() {
        views.push(vec![
            "guest".into(),
            "lszcrypt".into(),
            g["name"].as_str().unwrap().into(),
        ]);
    }
    assert!(views.len() > 8, "the state has mdevs and guests to show");
    let mut tree = vec![
        "--sysfs".to_string(),
        dir.display().to_string(),
        "--run".into(),
        run.display().to_string(),
    ];
    if let Some(k) = kernel {
        tree.extend(["--kernel".to_string(), k.to_string()]);
    }
    for view in &views {
        for json in [false, true] {
            let mut args: Vec<String> = vec!["--color".into(), "never".into()];
            if json {
                args.push("--json".into());
            }
            args.extend(view.iter().cloned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let from_file = succeeded(apmatrix(host, &refs));
            args.extend(tree.iter().cloned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let from_tree = succeeded(apmatrix(host, &refs));
            assert!(!from_file.is_empty(), "{view:?} printed nothing");
            assert_eq!(
                from_file, from_tree,
                "{view:?} (json {json}) differs on the tree"
            );
        }
    }
}

#[test]
fn every_read_view_on_the_mounted_emulator_equals_its_state_file_output() {
    if !can_run("read views on the tree", &fuse_missing()) {
        return;
    }
    // The seed document's host: three guests on three mdevs.
    let (tmp, host) = seed_guests_host();
    // Beyond it: a guest without AP, an mdev without a guest, a CPU
    // without apft, and a card the HMC deconfigured.
    for args in [
        &[
            "mdev",
            "create",
            "--uuid",
            "0b1c2d3e-4f5a-4b6c-9d8e-7f6a5b4c3d2e",
        ][..],
        &["mdev", "assign", "0b1c", "-d", "0x05", "-c", "0x05"],
        &["guest", "start", "plain"],
        &["guest", "stop", "Guest3"],
        &[
            "guest",
            "start",
            "Guest3",
            "--mdev",
            "d1a4",
            "--cpu",
            "ap=on,apqci=on,apft=off",
        ],
        &["host", "card", "4", "config", "off", "--scan"],
    ] {
        succeeded(apmatrix(&host, args));
    }
    let (dir, run) = (tmp.path().join("sys"), tmp.path().join("run"));
    std::fs::create_dir(&dir).unwrap();
    libvirt_run_dir(&host, &run);
    let _served = Served::start_with(&host, &dir, &["--no-periodic-scans"]);
    views_agree(&host, &dir, &run, None);
}

#[test]
fn read_views_agree_under_every_kernel_generation() {
    if !can_run("read views on the tree", &fuse_missing()) {
        return;
    }
    for kernel in ["old", "dyn", "new"] {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host.json");
        let u = "669d9b23-fe1b-4ecb-be08-a2fabca99b71";
        for args in [
            &["host", "init", "--kernel", kernel][..],
            &["mask", "set", "apmask", "-5"],
            &["mask", "set", "aqmask", "-4,-0x47"],
            &["mdev", "create", "--uuid", u],
            &[
                "mdev", "assign", u, "-a", "5", "-d", "4", "-d", "0x47", "-c", "4",
            ],
            &["guest", "start", "g1", "--mdev", u],
        ] {
            succeeded(apmatrix(&host, args));
        }
        let (dir, run) = (tmp.path().join("sys"), tmp.path().join("run"));
        std::fs::create_dir(&dir).unwrap();
        libvirt_run_dir(&host, &run);
        let served = Served::start_with(&host, &dir, &["--no-periodic-scans"]);
        // DYN and the seed series show the same attributes: the tree
        // cannot tell them apart, so that one is named.
        views_agree(&host, &dir, &run, (kernel == "dyn").then_some("dyn"));
        drop(served);
    }
}

#[test]
fn a_guest_naming_a_missing_mdev_is_a_note_and_the_view_still_prints() {
    if !can_run("read views on the tree", &fuse_missing()) {
        return;
    }
    let (tmp, host, dir) = fresh_host();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("libvirt/qemu")).unwrap();
    std::fs::write(
        run.join("libvirt/qemu/ghost.xml"),
        domstatus(
            "ghost",
            Some("11111111-2222-4333-8444-555555555555"),
            "ap=on,apqci=on,apft=on",
        ),
    )
    .unwrap();
    let _served = Served::start(&host, &dir);
    let out = apmatrix(
        &host,
        &[
            "guest",
            "list",
            "--sysfs",
            dir.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("guest ghost") && stderr.contains("11111111-2222-4333-8444-555555555555"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no guests\n");
}

#[test]
fn a_host_read_through_its_tree_is_described_as_the_state_file_describes_it() {
    if !can_run("host topology on the tree", &fuse_missing()) {
        return;
    }
    let (tmp, host, dir) = fresh_host();
    for args in [
        &["host", "card", "5", "checkstop", "on"][..],
        &["host", "card", "6", "online", "off"],
    ] {
        succeeded(apmatrix(&host, args));
    }
    let _served = Served::start(&host, &dir);
    let from_file = succeeded(apmatrix(&host, &["host", "topology"]));
    let from_tree = succeeded(apmatrix(
        &host,
        &["host", "topology", "--sysfs", dir.to_str().unwrap()],
    ));
    let (file_name, file_rest) = from_file.split_once('\n').unwrap();
    let (tree_name, tree_rest) = from_tree.split_once('\n').unwrap();
    assert_eq!(file_name, "name = \"seed example\"");
    assert_eq!(
        tree_name,
        format!("name = \"observed at {}\"", dir.display())
    );
    assert_eq!(
        file_rest, tree_rest,
        "only the name differs: sysfs carries none"
    );
    // The capture emulates: a host made from it shows the same tree.
    let captured = tmp.path().join("captured.toml");
    std::fs::write(&captured, &from_tree).unwrap();
    let copy = tmp.path().join("copy.json");
    succeeded(apmatrix(
        &copy,
        &["host", "init", "--from", captured.to_str().unwrap()],
    ));
    assert_eq!(
        succeeded(apmatrix(&copy, &["lszcrypt", "-V"])),
        succeeded(apmatrix(&host, &["lszcrypt", "-V"]))
    );
}
