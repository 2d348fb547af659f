//! Debian's s390x s390-tools (2.35), unmodified, under qemu-user against
//! the emulated tree: the real lszcrypt inside each of the seed document's
//! guests, the real lszcrypt beside `apmatrix lszcrypt` on the host, and
//! chzcrypt's changes as the tree shows them.
//!
//! Needs root, /dev/fuse, qemu-s390x-static and the unpacked tools
//! (`scripts/install-test-deps`, which sets up target/tools/s390-tools;
//! `scripts/test-all` exports APMATRIX_S390_ROOT); skips without them unless
//! APMATRIX_REQUIRE_FUSE is set (CI).

mod common;
use common::{fuse_usable, BIN};

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unpacked s390x root, or why the tests cannot run.
fn s390_root() -> Option<PathBuf> {
    let root = std::env::var_os("APMATRIX_S390_ROOT").map(PathBuf::from);
    let why = if !fuse_usable() {
        Some("root and /dev/fuse")
    } else if !Path::new("/usr/bin/qemu-s390x-static").exists() {
        Some("qemu-s390x-static (Debian's qemu-user-static)")
    } else if !root
        .as_ref()
        .is_some_and(|r| r.join("usr/sbin/lszcrypt").exists())
    {
        Some("s390-tools unpacked at $APMATRIX_S390_ROOT")
    } else {
        None
    };
    match why {
        None => root,
        Some(why) => {
            assert!(
                std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
                "CI requires {why}: run scripts/install-test-deps"
            );
            eprintln!("skipping: needs {why} (scripts/install-test-deps)");
            None
        }
    }
}

/// Runs `script` under `apmatrix exec` (with `--guest GUEST` if given),
/// with the s390x root in `$ROOT` and this build's apmatrix on PATH.
fn run(host: &Path, root: &Path, guest: Option<&str>, script: &str) -> String {
    let mut command = Command::new(BIN);
    command.args([
        "--host",
        host.to_str().unwrap(),
        "exec",
        "--no-periodic-scans",
    ]);
    if let Some(g) = guest {
        command.args(["--guest", g]);
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let out = command
        .args(["--", "bash", "-c", &format!("set -eu\n{script}")])
        .env("ROOT", root)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("APMATRIX_HOST", host)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `t TOOL ARGS...` runs an s390x tool of `$ROOT` under qemu-user.
const TOOL: &str = r#"t() { local tool=$1; shift; qemu-s390x-static -L "$ROOT" "$ROOT/usr/sbin/$tool" "$@"; }
"#;

#[test]
fn real_lszcrypt_in_each_seed_guest_lists_what_its_crycb_gives_it() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    common::seed_guests(&host);
    let header = "CARD.DOM TYPE  MODE        STATUS     REQUESTS\n\
                  ----------------------------------------------\n";
    let line =
        |id: &str, ty: &str, mode: &str| format!("{id:<8} {ty} {mode:<11} online            0\n");
    let (c, a) = (("CEX5C", "CCA-Coproc"), ("CEX5A", "Accelerator"));
    let expected = [
        (
            "Guest1",
            [
                ("05", c),
                ("05.0004", c),
                ("05.00ab", c),
                ("06", a),
                ("06.0004", a),
                ("06.00ab", a),
            ]
            .to_vec(),
        ),
        (
            "Guest2",
            [("05", c), ("05.0047", c), ("05.00ff", c)].to_vec(),
        ),
        (
            "Guest3",
            [("06", a), ("06.0047", a), ("06.00ff", a)].to_vec(),
        ),
    ];
    for (guest, rows) in expected {
        let listing: String = rows
            .iter()
            .map(|(id, (ty, mode))| line(id, ty, mode))
            .collect();
        let seen = run(&host, &root, Some(guest), &format!("{TOOL}t lszcrypt"));
        assert_eq!(seen, format!("{header}{listing}"), "{guest}");
    }
}

#[test]
fn apmatrix_lszcrypt_equals_the_real_one_on_the_host() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    common::succeeded(common::apmatrix(&host, &["host", "init"]));
    let script = format!(
        "{TOOL}t lszcrypt; echo ==; apmatrix lszcrypt; echo ==; t lszcrypt -V; echo ==; apmatrix lszcrypt -V"
    );
    let seen = run(&host, &root, None, &script);
    let parts: Vec<&str> = seen.split("==\n").collect();
    assert_eq!(parts.len(), 4, "{seen}");
    assert_eq!(parts[0], parts[1], "lszcrypt");
    // 2.35 printed QDEPTH as depth + 1; v2.43, which apmatrix follows
    // (docs/lszcrypt.md), prints the card's depth: 09 against 08 here.
    let as_v243 = parts[2].replace(" 11     09 ", " 11     08 ");
    assert_ne!(as_v243, parts[2], "2.35's QDEPTH is depth + 1");
    assert_eq!(as_v243, parts[3], "lszcrypt -V");
}

#[test]
fn chzcrypt_changes_what_the_tree_and_apmatrix_show() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    common::succeeded(common::apmatrix(&host, &["host", "init"]));
    let script = format!(
        "{TOOL}t chzcrypt -d 05
cat /sys/devices/ap/card05/online /sys/devices/ap/card05/05.0004/online
apmatrix lszcrypt 2>/dev/null | grep '^05 ' || true
t chzcrypt -e 05
t chzcrypt -d 05.0047
cat /sys/devices/ap/card05/online /sys/devices/ap/card05/05.0047/online /sys/devices/ap/card05/05.0004/online
t chzcrypt -c 60
cat /sys/bus/ap/config_time
t chzcrypt -q 0xab
cat /sys/bus/ap/ap_domain
t chzcrypt -a -d
cat /sys/devices/ap/card0[456]/online | tr -d '\\n'; echo
t chzcrypt -a -e
cat /sys/devices/ap/card0[456]/online | tr -d '\\n'; echo
t chzcrypt --config-off 04
cat /sys/devices/ap/card04/config
apmatrix lszcrypt 04 | tail -1
t chzcrypt --config-on 04
cat /sys/devices/ap/card04/config
t chzcrypt -t 100000
cat /sys/bus/ap/poll_timeout
t chzcrypt -p
cat /sys/bus/ap/poll_thread
t chzcrypt -n
cat /sys/bus/ap/poll_thread
"
    );
    let seen = run(&host, &root, None, &script);
    assert_eq!(
        seen,
        "0\n0\n05       CEX5C CCA-Coproc  offline           0\n1\n0\n1\n60\n171\n\
         000\n111\n0\n04.00ff  CEX5P EP11-Coproc deconfig          -\n1\n100000\n1\n0\n"
    );
}

/// An autostart mdev of adapters 5, 6 and domains 4, 0xab, for `check --etc`.
const AUTOSTART: &str = r#"
[masks]
derive = "adapters"

[[mdev]]
name = "guest1"
adapters = "5,6"
domains = "4,0xab"
autostart = true
"#;

#[test]
fn chzdev_changes_the_masks_refuses_conflicts_and_persists_what_check_reads() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let config = tmp.path().join("autostart.toml");
    std::fs::write(&config, AUTOSTART).unwrap();
    common::succeeded(common::apmatrix(&host, &["host", "init"]));
    common::succeeded(common::apmatrix(
        &host,
        &["apply", config.to_str().unwrap()],
    ));
    // chzdev writes /etc/udev/rules.d and reads /etc/mdevctl.d: both private.
    let script = format!(
        "{TOOL}set +e
for d in /etc/udev/rules.d /etc/mdevctl.d; do mount -t tmpfs tmpfs $d; done
t lszdev --type ap | grep -e apmask -e aqmask
t chzdev --type ap apmask=+5 -a -y 2>&1; echo rc=$?
cat /sys/bus/ap/apmask
t chzdev --type ap apmask=-4 -a -y > /dev/null; echo rc=$?
cat /sys/bus/ap/apmask
t chzdev --type ap apmask=+4,+5 -p -y > /dev/null; echo rc=$?
grep -c 'apmask}}=\"0xfd' /etc/udev/rules.d/41-ap.rules
apmatrix check --sysfs /sys --etc /etc {config} 2>&1 | head -1; echo check=${{PIPESTATUS[0]}}
",
        config = config.display()
    );
    let seen = run(&host, &root, None, &script);
    assert_eq!(
        seen,
        "  apmask     \"0-4,7-255\"  -\n  aqmask     \"0-255\"      -\n\
         chzdev: apmask conflicts with mdev {uuid} APQN 5.4\n\
         chzdev: apmask conflicts with mdev {uuid} APQN 5.171\n\
         ap device type configure failed\n    Error: Invalid configuration\n\
         Configuring device type in the active configuration only\n\
         rc=9\n\
         0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n\
         rc=0\n\
         0xf1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n\
         rc=0\n1\n\
         apmatrix: error: mdev guest1 ({uuid}): APQN 5.4 5.171 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings; it would fail to start at boot\n\
         check=1\n"
            .replace("{uuid}", &mdev_uuid(&host))
    );
}

/// The UUID `apply` gave the configuration's one mdev.
fn mdev_uuid(host: &Path) -> String {
    let list = common::succeeded(common::apmatrix(host, &["mdev", "list"]));
    list.lines()
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

/// A z16-like LPAR (maximum domain 84) whose cards are deconfigured,
/// checkstopped, offline, older than CEX4, newer and given to vfio_ap.
const TROUBLED_HOST: &str = r#"
name = "troubled"
max_domain_id = 84
usage_domains = "0x04,0x0b,0x54"
control_domains = "0x00-0x0f,0x54"

[[card]]
id = 0x04
type = "CEX5P"

[[card]]
id = 0x05
type = "CEX5C"

[[card]]
id = 0x06
type = "CEX7A"

[[card]]
id = 0x07
type = "CEX3C"

[[card]]
id = 0x08
type = "CEX8P"
"#;

#[test]
fn apmatrix_lszcrypt_equals_the_real_one_on_a_host_with_every_card_state() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let description = tmp.path().join("troubled.toml");
    std::fs::write(&description, TROUBLED_HOST).unwrap();
    let from = description.to_str().unwrap();
    common::succeeded(common::apmatrix(&host, &["host", "init", "--from", from]));
    for event in [
        &["host", "card", "4", "config", "off", "--scan"][..],
        &["host", "card", "5", "checkstop", "on", "--scan"],
        &["host", "card", "6", "online", "off"],
        &["mask", "set", "apmask", "-8"],
        &["mask", "set", "aqmask", "-0x54"],
    ] {
        common::succeeded(common::apmatrix(&host, event));
    }
    let mut script = String::from(TOOL);
    for args in ["", "-V", "-b", "-d"] {
        script.push_str(&format!(
            "t lszcrypt {args}; echo ==; apmatrix lszcrypt {args}; echo ==\n"
        ));
    }
    let seen = run(&host, &root, None, &script);
    let parts: Vec<&str> = seen.split("==\n").collect();
    assert_eq!(parts.len(), 9, "{seen}");
    let [plain, ours, verbose, ours_verbose, bus, ours_bus, domains, ours_domains] =
        parts[..8].try_into().unwrap();
    assert_eq!(plain, ours, "lszcrypt");
    assert!(
        plain.contains("04       CEX5P EP11-Coproc deconfig          -\n"),
        "{plain}"
    );
    assert!(
        plain.contains("05       CEX5C CCA-Coproc  chkstop           0\n"),
        "{plain}"
    );
    assert!(
        plain.contains("06.000b  CEX7A Accelerator offline           0\n"),
        "{plain}"
    );
    assert!(
        !plain.contains("08.0004"),
        "vfio_ap's queues only with -V: {plain}"
    );
    assert_eq!(
        verbose.replace(" 09 ", " 08 "),
        ours_verbose,
        "lszcrypt -V (QDEPTH aside)"
    );
    assert!(
        verbose.contains("08.0004  CEX8P EP11-Coproc unassigned        -"),
        "{verbose}"
    );
    // 2.35 printed ap_domain unpadded; v2.42 on pads it to two digits.
    let bus_v243 = bus.replace("ap_domain=0x4\n", "ap_domain=0x04\n");
    assert_ne!(bus_v243, bus, "2.35's ap_domain is unpadded");
    assert_eq!(bus_v243, ours_bus, "lszcrypt -b");
    assert!(bus.contains("ap_max_domain_id=0x54\n"), "{bus}");
    assert_eq!(domains, ours_domains, "lszcrypt -d");
}

/// Every option of lszcrypt, and its errors, as the real 2.35 and
/// `apmatrix lszcrypt` (on the state file and with `--sysfs /sys`) print
/// them on the seed host. Where 2.35 and v2.43 differ, the documented
/// difference (docs/lszcrypt.md) is applied to 2.35's output first.
#[test]
fn every_lszcrypt_option_prints_and_fails_as_the_real_one() {
    let Some(root) = s390_root() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    common::succeeded(common::apmatrix(&host, &["host", "init"]));
    // Make the listings differ per card: one offline queue, adapter 6 for vfio_ap.
    common::succeeded(common::apmatrix(&host, &["mask", "set", "apmask", "-6"]));
    let cases = [
        "",
        "-V",
        "05",
        ".0047",
        "05.0004 06",
        "--cardonly",
        "--queueonly 04",
        "--ccaonly",
        "--accelonly -V",
        "--ep11only",
        "--ccaonly --ep11only",
        "--cardonly --queueonly",
        "-s",
        "-c 05",
        "-c 06",
        "-c 04",
        "-c 09",
        "-c zz",
        "-c 05.0004",
        "zz",
        ".0007",
        "07",
        "05.0007",
        "5",
        "0x05",
        "05.4",
        "05 zz 06",
        "--cardonly .0004",
        "-b",
        "-d",
        "-V 06",
    ];
    let mut script = String::from(TOOL);
    script.push_str("set +e\nrecord() { out=$(\"$@\" 2>$WORK/err); rc=$?; printf '%s\\n--\\n%s\\n--\\n%s\\n==\\n' \"$out\" \"$(sed 's/^apmatrix: //' $WORK/err)\" $rc; }\n");
    for case in cases {
        script.push_str(&format!(
            "record t lszcrypt {case}\nrecord apmatrix lszcrypt {case}\nrecord apmatrix lszcrypt --sysfs /sys {case}\n"
        ));
    }
    let out = Command::new(BIN)
        .args([
            "--host",
            host.to_str().unwrap(),
            "exec",
            "--no-periodic-scans",
        ])
        .args(["--", "bash", "-c", &script])
        .env("ROOT", &root)
        .env("WORK", tmp.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                Path::new(BIN).parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("APMATRIX_HOST", &host)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let records: Vec<&str> = text.split("==\n").collect();
    assert_eq!(records.len(), cases.len() * 3 + 1, "{text}");
    for (i, case) in cases.iter().enumerate() {
        let real = records[3 * i]
            .replace(" 11     09 ", " 11     08 ")
            .replace("ap_domain=0x4\n", "ap_domain=0x04\n");
        for (k, how) in [(1, "state file"), (2, "--sysfs /sys")] {
            assert_eq!(
                records[3 * i + k],
                real,
                "lszcrypt {case} ({how}); the real one printed:\n{}",
                records[3 * i]
            );
        }
    }
}
