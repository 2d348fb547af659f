//! Debian's s390x s390-tools (lszcrypt, chzcrypt, lszdev, chzdev; 2.35),
//! run unmodified under qemu-user against the emulated tree inside
//! `apmatrix exec` (tools.md Part A): their effect on the tree and the
//! state, and `apmatrix lszcrypt` compared with the real lszcrypt byte for
//! byte, where 2.35 and v2.43 differ by the documented rewrite
//! (docs/lszcrypt.md; tests/s390/compat.rs).
//!
//! Needs root, /dev/fuse, qemu-s390x-static and the unpacked tools
//! (scripts/install-test-deps; APMATRIX_S390_TOOLS names their root).
//! Without them the tests print "skipping: ..." and pass, unless
//! APMATRIX_REQUIRE_FUSE is set (CI), in which case they fail.

mod common;
mod s390;

use s390::compat::compare_lszcrypt;
use s390::{tools, Scenario};

const UUID: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";

/// Every lszcrypt option, its DEVICE_IDS forms and its errors.
const SEED_ARGS: &[&str] = &[
    "",
    "-V",
    "-b",
    "-d",
    "-s",
    "-c 4",
    "-c 5",
    "-c 6",
    "-c 0x5",
    "-c 10",
    "-c 09",
    "-c zz",
    "-c 5.47",
    "-c 04.0007",
    "5",
    "5.47",
    "5.0x47",
    ".0047",
    "x47",
    ".0007",
    "9",
    "zz 4",
    "5.1ff",
    "0x",
    "-- -1",
    "--cardonly",
    "--queueonly",
    "--queueonly -V",
    "--ccaonly",
    "--accelonly -V",
    "--ep11only --cardonly",
    "--ccaonly --accelonly",
    "--cardonly --queueonly",
    "-V 5",
    "-V .4",
    "-V 5.4 4.4",
    "--ccaonly --accelonly -b",
    "-d -b",
    "-s -V",
];

#[test]
fn lszcrypt_on_the_seed_host() {
    let Some(tools) = tools() else { return };
    // Adapters 5 and 6 for vfio_ap, an mdev with 05/06 x 0004/00ab in a
    // running guest, one zcrypt queue offline.
    let s = Scenario::new(
        &[],
        &[
            &["mask", "set", "apmask", "-5,-6"],
            &["mdev", "create", "--uuid", UUID],
            &[
                "mdev", "assign", UUID, "-a", "5,6", "-d", "4,0xab", "-c", "4",
            ],
            &["guest", "start", "Guest1", "--mdev", UUID],
        ],
    );
    let setup = "echo 0 > /sys/devices/ap/card04/04.0047/online\n";
    let differing = compare_lszcrypt(&tools, &s, setup, true, SEED_ARGS);
    if tools.version < (2, 41) {
        // QDEPTH in every -V table, ap_domain=0x4 in -b.
        assert_eq!(
            differing,
            [
                "-V",
                "-b",
                "--queueonly -V",
                "--accelonly -V",
                "-V 5",
                "-V .4",
                "-V 5.4 4.4",
                "--ccaonly --accelonly -b",
            ]
        );
    }
}

#[test]
fn lszcrypt_on_a_host_with_old_deconfigured_checkstopped_and_offline_cards() {
    let Some(tools) = tools() else { return };
    let topology = r#"
name = "mixed"
max_domain_id = 84
usage_domains = "1,5,0x54"
control_domains = "0-2,5,0x54"
[[card]]
id = 0x00
type = "CEX3C"
[[card]]
id = 0x01
type = "CEX2A"
[[card]]
id = 0x02
type = "CEX7C"
[[card]]
id = 0x03
type = "CEX6P"
[[card]]
id = 0x0a
type = "CEX8A"
[[card]]
id = 0x11
type = "CEX7C"
depth = 3
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.toml");
    std::fs::write(&file, topology).unwrap();
    let s = Scenario::new(
        &["--from", file.to_str().unwrap()],
        &[
            &["host", "card", "2", "config", "off", "--scan"],
            &["host", "card", "3", "checkstop", "on"],
            &["host", "card", "0xa", "online", "off"],
            &["mask", "set", "aqmask", "-5"],
        ],
    );
    // A default domain the LPAR does not have (aqmask allows it).
    let setup = "echo 7 > /sys/bus/ap/ap_domain\n";
    let args = [
        "",
        "-V",
        "-b",
        "-d",
        "-s",
        "-c 0",
        "-c 1",
        "-c 2",
        "-c 3",
        "-c 0xa",
        "-c 0x11",
        ".0054",
        ".0001",
        "--queueonly",
        "-V --ep11only",
        "2",
        "3.54",
        "-V 11",
    ];
    let differing = compare_lszcrypt(&tools, &s, setup, true, &args);
    if tools.version < (2, 42) {
        // The warning after the table and -d, (unavailable) in -b, QDEPTH.
        assert_eq!(
            differing,
            [
                "",
                "-V",
                "-b",
                "-d",
                "--queueonly",
                "-V --ep11only",
                "-V 11"
            ]
        );
    }
}

#[test]
fn lszcrypt_on_a_host_without_card_devices() {
    let Some(tools) = tools() else { return };
    // New kernels make no devices for cards older than CEX4.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old-cards.toml");
    std::fs::write(
        &file,
        "usage_domains = \"4\"\n[[card]]\nid = 3\ntype = \"CEX3C\"\n",
    )
    .unwrap();
    let s = Scenario::new(&["--from", file.to_str().unwrap(), "--kernel", "new"], &[]);
    let args = ["", "-V", "-b", "-d", "-s", ".0004", "3", "-c 3"];
    let differing = compare_lszcrypt(&tools, &s, "", false, &args);
    if tools.version < (2, 42) {
        // "No crypto card devices found." for the table; ap_domain=0x4.
        assert_eq!(differing, ["", "-V", "-b"]);
    }
}

/// `real chzcrypt ARGS`, then what the tree and the state file say.
fn chzcrypt_case(args: &str, effect: &str) -> String {
    format!("real chzcrypt {args}; rc=$?; {effect}; exit $rc")
}

#[test]
fn chzcrypt_changes_the_tree_and_the_state() {
    let Some(tools) = tools() else { return };
    let s = Scenario::new(&[], &[&["mask", "set", "apmask", "-5"]]);
    // STATUS of a card and one of its queues in `apmatrix lszcrypt` (the
    // state file, through the server).
    let status = |ids: &str| {
        let test: Vec<String> = ids.split(' ').map(|i| format!("$1 == \"{i}\"")).collect();
        format!(
            "apmatrix lszcrypt -V | awk '{} {{ print $1, $4 }}'",
            test.join(" || ")
        )
    };
    let online = "cat /sys/devices/ap/card04/online /sys/devices/ap/card04/04.0047/online";
    let bus = "cat /sys/bus/ap/config_time /sys/bus/ap/poll_timeout /sys/bus/ap/poll_thread /sys/bus/ap/ap_domain";
    let cases = [
        chzcrypt_case("-V -d 4", online),
        chzcrypt_case("-V -e 4", &status("04 04.0047")),
        chzcrypt_case("-V -d 04.0047", &status("04 04.0047")),
        chzcrypt_case("-e 0x4.0x47", online),
        chzcrypt_case("-d -a", &status("04 04.0004 06 06.00ff")),
        chzcrypt_case("-V -e --all", &status("04 04.0004 06 06.00ff")),
        chzcrypt_case("-V --config-off 6", &status("06 06.0004")),
        chzcrypt_case("--config-off 6", "cat /sys/devices/ap/card06/config"),
        chzcrypt_case("-e 6", &status("06")),
        chzcrypt_case("--config_on card06", &status("06 06.0004")),
        chzcrypt_case("--config-off 04.0004", "true"),
        chzcrypt_case("-d 05.0004", "cat /sys/devices/ap/card05/05.0004/status"),
        chzcrypt_case("-d 9", "true"),
        chzcrypt_case("-d", "true"),
        chzcrypt_case("", "true"),
        chzcrypt_case("-V -c 60", bus),
        chzcrypt_case("-c 200", bus),
        chzcrypt_case("-V -t 100000", bus),
        chzcrypt_case("-t 200000000000", bus),
        chzcrypt_case("-V -p", bus),
        chzcrypt_case("-V -n", bus),
        chzcrypt_case("-V -q 0x47", bus),
        chzcrypt_case("-q 7", "apmatrix lszcrypt -b | grep ap_domain"),
        chzcrypt_case("-q 300", bus),
    ];
    let outs = s.run(&tools, "", &cases);
    let expect = |i: usize, stdout: &str, stderr: &str, rc: i32| {
        let o = &outs[i];
        assert_eq!(
            (o.stdout.as_str(), o.stderr.as_str(), o.rc),
            (stdout, stderr, rc),
            "{}",
            cases[i]
        );
    };
    expect(
        0,
        "Setting cryptographic device card04 offline\n0\n0\n",
        "",
        0,
    );
    expect(
        1,
        "Setting cryptographic device card04 online\n04 online\n04.0047 online\n",
        "",
        0,
    );
    expect(
        2,
        "Setting cryptographic device card04/04.0047 offline\n04 online\n04.0047 offline\n",
        "",
        0,
    );
    expect(3, "1\n1\n", "", 0);
    // -a: every card and, through them, every zcrypt queue.
    expect(
        4,
        "04 offline\n04.0004 offline\n06 offline\n06.00ff offline\n",
        "",
        0,
    );
    expect(5, "Setting cryptographic device card04 online\nSetting cryptographic device card05 online\nSetting cryptographic device card06 online\n04 online\n04.0004 online\n06 online\n06.00ff online\n", "", 0);
    expect(
        6,
        "Setting cryptographic device card06 config off\n06 deconfig\n06.0004 deconfig\n",
        "",
        0,
    );
    expect(
        7,
        "0\n",
        "chzcrypt: Warning - device card06 is already config off.\n",
        0,
    );
    expect(
        8,
        "06 deconfig\n",
        "chzcrypt: Warning - device 6 is deconfigured, can't set to online.\n\n",
        0,
    );
    expect(9, "06 online\n06.0004 online\n", "", 0);
    expect(10, "", "chzcrypt: Error - invalid device 04.0004\n Config on/off is only valid for card devices.\n", 1);
    // A vfio_ap queue has no `online`.
    expect(11, "unassigned\n", "chzcrypt: Error - can't write to /sys/bus/ap/devices/card05/05.0004/online.\n Wrong permissions or wrong tools version.\n", 1);
    expect(
        12,
        "",
        "chzcrypt: Error - cryptographic device card09 does not exist.\n",
        1,
    );
    expect(
        13,
        "",
        "chzcrypt: Need to specify at least one device ID.\n",
        1,
    );
    expect(
        14,
        "",
        "chzcrypt: Error - missing argument.\nTry 'chzcrypt --help' for more information.\n",
        1,
    );
    expect(
        15,
        "Setting configuration timer to 60 seconds.\n60\n250000\n0\n4\n",
        "",
        0,
    );
    expect(
        16,
        "60\n250000\n0\n4\n",
        "chzcrypt: Error - unable to change configuration timer setting.\n",
        1,
    );
    expect(
        17,
        "Setting poll timeout to 100000 seconds.\n60\n100000\n0\n4\n",
        "",
        0,
    );
    expect(
        18,
        "60\n100000\n0\n4\n",
        "chzcrypt: Error - unable to change poll timeout setting.\n",
        1,
    );
    expect(19, "Enabling poll thread.\n60\n100000\n1\n4\n", "", 0);
    expect(20, "Disabling poll thread.\n60\n100000\n0\n4\n", "", 0);
    expect(
        21,
        "Setting default domain to 71.\n60\n100000\n0\n71\n",
        "",
        0,
    );
    // Domain 7 is no usage domain: v2.43's chzcrypt warns, 2.35's does not;
    // apmatrix (v2.43) marks it in -b.
    let warning = "Warning: Default domain 0x07 is not available.\n";
    let stdout = if tools.version < (2, 42) { "" } else { warning };
    expect(
        22,
        &format!("{stdout}ap_domain=0x07 (unavailable)\n"),
        "",
        0,
    );
    expect(
        23,
        "60\n100000\n0\n7\n",
        "chzcrypt: Error - invalid default domain '300'.\n",
        1,
    );
}

#[test]
fn chzdev_and_lszdev_change_the_masks_and_persist_them() {
    let Some(tools) = tools() else { return };
    let s = Scenario::new(
        &[],
        &[
            &["mask", "set", "apmask", "-5"],
            &["mdev", "create", "--uuid", UUID],
            &["mdev", "assign", UUID, "-a", "5", "-d", "4"],
        ],
    );
    // An autostart mdev that needs adapter 5 to stay free at boot.
    let config = s.dir.path().join("boot.toml");
    std::fs::write(
        &config,
        "[[mdev]]\nname = \"boot\"\nadapters = \"5\"\ndomains = \"0x47\"\nautostart = true\n",
    )
    .unwrap();
    // The same masks as a configuration: adapters 5 and 6 for vfio_ap.
    let udev_config = s.dir.path().join("udev.toml");
    std::fs::write(
        &udev_config,
        "[masks]\nderive = \"adapters\"\n\n[[mdev]]\nname = \"m\"\nadapters = \"5,6\"\ndomains = \"4\"\n",
    )
    .unwrap();
    let chzdev = |args: &str| format!("real chzdev --type ap {args} --base /etc=$ETC");
    let masks = "cat /sys/bus/ap/apmask /sys/bus/ap/aqmask";
    let check = format!("apmatrix check --etc $ETC {}", config.display());
    let cases = [
        "real lszdev --type ap --base /etc=$ETC".to_string(),
        format!("{}; rc=$?; {masks}; exit $rc", chzdev("-a apmask=+5")),
        format!(
            "{}; rc=$?; {masks}; exit $rc",
            chzdev("-a apmask=+6,-0x80 aqmask=0-3,5-255")
        ),
        format!("{}; rc=$?; {masks}; exit $rc", chzdev("-a apmask=foo")),
        "apmatrix lszcrypt -V | awk '$1 ~ /^0[456]\\.000[45]$/ { print $1, $10 }'".to_string(),
        chzdev("-p apmask=0-255"),
        check.clone(),
        chzdev("-p apmask=0-4,7-255 aqmask=0-255"),
        "cat $ETC/udev/rules.d/41-ap.rules".to_string(),
        check,
        "real lszdev --type ap --base /etc=$ETC".to_string(),
        "ls -A /etc/udev/rules.d /run/lock".to_string(),
        format!("apmatrix export udev {}", udev_config.display()),
    ];
    let outs = s.run(&tools, "", &cases);
    let lszdev = |table: &str| {
        format!(
            "DEVICE TYPE ap\n  Description        : Cryptographic Adjunct Processor (AP) device\n  Modules            : ap\n  Active             : yes\n  Persistent         : yes\n\n{table}"
        )
    };
    assert_eq!(
        outs[0].stdout,
        lszdev(
            "  ATTRIBUTE  ACTIVE       PERSISTENT\n  apmask     \"0-4,6-255\"  -\n  aqmask     \"0-255\"      -\n"
        ),
        "{:?}",
        outs[0]
    );
    // Adding adapter 5 back would take 05.0004 from the mdev: refused, rc 9.
    let o = &outs[1];
    assert_eq!(o.rc, 9, "{o:?}");
    assert!(
        o.stderr.starts_with(&format!(
            "chzdev: apmask conflicts with mdev {UUID} APQN 5.4\n"
        )),
        "{o:?}"
    );
    assert!(
        o.stderr.ends_with("    Error: Invalid configuration\n"),
        "{o:?}"
    );
    let full = "f".repeat(64);
    let apmask_5 = format!("0xfb{}", &full[2..]);
    assert!(
        o.stdout.ends_with(&format!("{apmask_5}\n0x{full}\n")),
        "{o:?}"
    );
    // Relative and absolute lists, written as the whole mask.
    let o = &outs[2];
    assert_eq!(o.rc, 0, "{o:?}");
    assert!(
        o.stdout.ends_with(&format!(
            "0xfb{}7f{}\n0xf7{}\n",
            &full[..30],
            &full[..30],
            &full[..62]
        )),
        "{o:?}"
    );
    let o = &outs[3];
    assert_eq!(o.rc, 6, "{o:?}");
    assert!(o.stderr.contains("Invalid input string foo"), "{o:?}");
    // The state file's host has the masks chzdev wrote, its queues rebound.
    assert_eq!(
        outs[4].stdout,
        "04.0004 vfio_ap\n04.0005 cex4queue\n05.0004 vfio_ap\n05.0005 vfio_ap\n06.0004 vfio_ap\n06.0005 cex4queue\n"
    );
    // Persistent: adapter 5 kept for the host at boot fails the check...
    assert_eq!(outs[5].rc, 0, "{:?}", outs[5]);
    assert_eq!(outs[6].rc, 1, "{:?}", outs[6]);
    assert!(
        outs[6].stderr.contains(
            "is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings"
        ),
        "{:?}",
        outs[6]
    );
    // ...and freed, passes; the rules file is chzdev's (2.35: no coldplug line).
    assert_eq!(outs[7].rc, 0, "{:?}", outs[7]);
    let coldplug = "ACTION==\"add\", DEVPATH==\"/bus/ap\", ATTR{bindings_complete_count}!=\"0\", GOTO=\"cfg_ap\"\n";
    let rules = format!(
        "# Generated by chzdev\n{}ACTION==\"change\", SUBSYSTEM==\"ap\", DEVPATH==\"/devices/ap\", ENV{{BINDINGS}}==\"complete\", ENV{{COMPLETECOUNT}}==\"1\", GOTO=\"cfg_ap\"\nGOTO=\"end_ap\"\n\nLABEL=\"cfg_ap\"\n\nATTR{{../../bus/ap/apmask}}=\"0xf9{}\"\nATTR{{../../bus/ap/aqmask}}=\"0x{full}\"\nRUN{{builtin}}+=\"kmod load vfio_ap\"\n\nLABEL=\"end_ap\"\n",
        if tools.version < (2, 40) { "" } else { coldplug },
        &full[2..]
    );
    assert_eq!(outs[8].stdout, rules);
    // `apmatrix export udev` of the same masks is chzdev's file (v2.43's:
    // 2.35's chzdev lacks the coldplug line).
    let exported = &outs[12];
    assert_eq!(exported.rc, 0, "{exported:?}");
    assert!(exported.stdout.contains(coldplug), "{exported:?}");
    let as_chzdev = if tools.version < (2, 40) {
        exported.stdout.replace(coldplug, "")
    } else {
        exported.stdout.clone()
    };
    assert_eq!(as_chzdev, outs[8].stdout, "export udev against chzdev -p");
    assert_eq!(outs[9].rc, 0, "{:?}", outs[9]);
    assert!(
        outs[9].stdout.contains("1 mdev(s), no errors"),
        "{:?}",
        outs[9]
    );
    assert_eq!(
        outs[10].stdout,
        lszdev(
            "  ATTRIBUTE  ACTIVE               PERSISTENT\n  apmask     \"0-4,6-127,129-255\"  \"0-4,7-255\"\n  aqmask     \"0-3,5-255\"          \"0-255\"\n"
        ),
        "{:?}",
        outs[10]
    );
    // Nothing reached the private mounts over the machine's directories.
    assert_eq!(
        outs[11]
            .stdout
            .lines()
            .filter(|l| !l.is_empty() && !l.ends_with(':'))
            .count(),
        0,
        "{:?}",
        outs[11]
    );
}
