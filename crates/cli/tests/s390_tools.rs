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
