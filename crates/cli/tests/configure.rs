//! `apmatrix check | plan | apply`: on the emulated host (state file) and,
//! through `--sysfs`, on the mounted tree; both give the same host.

use std::path::Path;
use std::process::Command;

mod common;
use common::{fuse_usable, Served};

fn config() -> String {
    format!(
        "{}/../../examples/seed-guests.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

use common::apmatrix as run;

use common::succeeded as ok;

#[test]
fn seed_guests_apply_to_the_default_host_in_one_command() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let checked = ok(run(&host, &["check", &config()]));
    assert!(checked.contains("3 mdev(s), no errors"), "{checked}");
    assert!(
        checked.contains("05          CEX5C CCA-Coproc"),
        "{checked}"
    );
    let dry = ok(run(&host, &["apply", "--dry-run", &config()]));
    assert!(dry.starts_with("would write: echo 0xf9"), "{dry}");
    assert!(ok(run(&host, &["--json", "mdev", "list"])).trim() == "[]");
    let applied = ok(run(&host, &["apply", &config()]));
    assert_eq!(applied.lines().count(), 16, "{applied}");
    assert_eq!(
        ok(run(&host, &["apply", &config()])),
        "nothing to do: the host already matches the configuration\n"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(run(&host, &["--json", "mdev", "list"]))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
}

#[test]
fn check_names_every_problem_and_apply_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[mdev]]\nname = \"a\"\nadapters = \"4\"\ndomains = \"4\"\n\n[[mdev]]\nname = \"b\"\ncontrol_domains = \"4\"\n",
    )
    .unwrap();
    let before = std::fs::read(&host).unwrap();
    let out = run(&host, &["check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("APQN 04.0004 is reserved for the host"),
        "{err}"
    );
    assert!(err.contains("At least one usage domain"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
    let out = run(&host, &["apply", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&host).unwrap(), before);
}

#[test]
fn apply_through_sysfs_on_the_mounted_tree_matches_the_emulated_apply() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (served, direct) = (
        tmp.path().join("served.json"),
        tmp.path().join("direct.json"),
    );
    ok(run(&served, &["host", "init"]));
    ok(run(&direct, &["host", "init"]));
    let dir = tmp.path().join("sys");
    std::fs::create_dir(&dir).unwrap();
    let mut served_tree = Served::start(&served, &dir);
    let sysfs = dir.to_str().unwrap();
    let planned = ok(run(&served, &["plan", "--sysfs", sysfs, &config()]));
    assert!(planned.starts_with("echo 0xf9"), "{planned}");
    let applied = ok(run(&served, &["apply", "--sysfs", sysfs, &config()]));
    let again = ok(run(&served, &["apply", "--sysfs", sysfs, &config()]));
    assert!(served_tree.signal(libc::SIGINT).success());
    assert_eq!(applied.lines().count(), 16, "{applied}");
    assert!(again.starts_with("nothing to do"), "{again}");
    ok(run(&direct, &["apply", &config()]));
    // The same host either way: compare full dumps.
    let dump = |h: &Path| ok(run(h, &["--json", "host", "show"]));
    let list = |h: &Path| ok(run(h, &["--json", "mdev", "list"]));
    assert_eq!(list(&served), list(&direct));
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.contains("\"state_file\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(dump(&served)), strip(dump(&direct)));
}

fn mdevctl_14() -> Option<std::path::PathBuf> {
    let candidates = [
        std::env::var_os("APMATRIX_MDEVCTL_14").map(std::path::PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tools/mdevctl-1.4.0/bin/mdevctl"),
        ),
        Some("/tmp/mdevctl-1.4/bin/mdevctl".into()),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

#[test]
fn mdevctl_defines_and_starts_the_exported_json_and_the_result_is_the_configuration() {
    if !fuse_usable() {
        return;
    }
    let Some(mdevctl) = mdevctl_14() else {
        assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "mdevctl 1.4.0 is missing"
        );
        eprintln!("skipping: no mdevctl 1.4.0");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in [
        "sys",
        "etc/mdevctl.d",
        "usr/lib/mdevctl/scripts.d/callouts",
        "usr/lib/mdevctl/scripts.d/notifiers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let host = root.join("host.json");
    ok(run(&host, &["host", "init"]));
    let exported = root.join("exported");
    ok(run(
        &host,
        &[
            "export",
            "mdevctl",
            &config(),
            "--dir",
            exported.to_str().unwrap(),
        ],
    ));
    let sys = root.join("sys");
    let mut served_tree = Served::start(&host, &sys);
    let mdev = |args: &[&str]| {
        let out = Command::new(&mdevctl)
            .args(args)
            .env("MDEVCTL_ENV_ROOT", root)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The masks as the configuration has them (mdevctl does not set masks).
    let params = ok(run(&host, &["export", "cmdline", &config()]));
    let apmask = params
        .split_whitespace()
        .next()
        .unwrap()
        .trim_start_matches("ap.apmask=");
    std::fs::write(sys.join("bus/ap/apmask"), apmask).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&exported)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    for f in &files {
        let uuid = f.file_name().unwrap().to_str().unwrap();
        let (okd, err) = mdev(&[
            "define",
            "-u",
            uuid,
            "-p",
            "matrix",
            "--jsonfile",
            f.to_str().unwrap(),
        ]);
        assert!(okd, "define {uuid}: {err}");
        let (oks, err) = mdev(&["start", "-u", uuid]);
        assert!(oks, "start {uuid}: {err}");
    }
    // What mdevctl made is exactly the configuration.
    let planned = ok(run(
        &host,
        &["plan", "--sysfs", sys.to_str().unwrap(), &config()],
    ));
    assert!(served_tree.signal(libc::SIGINT).success());
    assert!(
        planned.starts_with("# the host already matches the configuration\n\n# Guest1 will see:\n"),
        "{planned}"
    );
    // predicted from what the mounted tree shows, with the document's types
    assert!(planned.contains("# Guest2 will see:\nCARD.DOMAIN TYPE  MODE\n------------------------------\n05          CEX5C CCA-Coproc\n"), "{planned}");
}

#[test]
fn libvirt_xml_validates_against_libvirts_schemas() {
    let schemas = Path::new("/usr/share/libvirt/schemas");
    let xmllint = Path::new("/usr/bin/xmllint");
    if !schemas.join("nodedev.rng").exists() || !xmllint.exists() {
        assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "libvirt's schemas (Debian libvirt0) or xmllint (libxml2-utils) are missing"
        );
        eprintln!("skipping: no libvirt schemas or xmllint");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let validate = |schema: &str, xml: &str| {
        let file = tmp.path().join("doc.xml");
        std::fs::write(&file, xml).unwrap();
        let out = Command::new(xmllint)
            .args(["--noout", "--relaxng"])
            .arg(schemas.join(schema))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{schema}: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let nodedev = ok(run(&host, &["export", "nodedev", &config()]));
    for doc in nodedev.split("# mdev ").filter(|d| d.contains("<device>")) {
        let xml = &doc[doc.find("<device>").unwrap()..];
        validate("nodedev.rng", xml);
    }
    let hostdev = ok(run(&host, &["export", "hostdev", &config()]));
    let first = &hostdev[hostdev.find("<hostdev").unwrap()
        ..hostdev.find("</hostdev>").unwrap() + "</hostdev>".len()];
    let domain = format!(
        "<domain type='kvm'><name>Guest1</name><memory>1048576</memory><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os><devices>{first}</devices></domain>"
    );
    validate("domain.rng", &domain);
}

/// On the real /sys, apply holds s390-tools' lock while it writes: it waits
/// for a live holder, takes over a dead one's, and leaves no lock behind.
#[test]
fn apply_on_the_real_sys_honours_the_s390_tools_lock() {
    let lock = Path::new("/run/lock/s390apconfig.lock");
    if unsafe { libc::geteuid() } != 0 || !Path::new("/run/lock").is_dir() || lock.exists() {
        eprintln!("skipping: needs root, /run/lock, and no AP configuration tool running");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    // held by a live process (this test): apply gives up with a clear message
    std::fs::write(lock, std::process::id().to_string()).unwrap();
    let out = run(&host, &["apply", "--dry-run", "--sysfs", "/sys", &config()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(lock.exists());
    std::fs::remove_file(lock).unwrap();
    assert!(!out.status.success());
    assert!(
        err.contains("is held by another AP configuration tool"),
        "{err}"
    );
    // left by a dead process: taken over; then this machine's /sys has no
    // vfio_ap (or it does, on s390x), and the lock is gone afterwards
    std::fs::write(lock, "2147483646").unwrap();
    let out = run(&host, &["apply", "--dry-run", "--sysfs", "/sys", &config()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("is held by another"), "{err}");
    assert!(!lock.exists(), "the lock was left behind");
}

/// `--json`'s document, and whether the command succeeded.
fn json_of(host: &Path, args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = run(host, args);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), doc, err)
}

/// A configuration with two errors (host-owned APQNs) and a warning (an
/// adapter without a card).
const TWO_ERRORS_ONE_WARNING: &str = "[[mdev]]\nname = \"a\"\nadapters = \"4\"\ndomains = \"4\"\n\n[[mdev]]\nname = \"w\"\nadapters = \"9\"\ndomains = \"0x47\"\n";

/// The text form's guest views, from the JSON's.
fn views_as_text(doc: &serde_json::Value) -> String {
    doc["predicted_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            format!(
                "\n# {} will see:\n{}",
                v["guest"].as_str().unwrap(),
                v["lszcrypt"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn check_json_has_the_counts_and_the_guest_views_the_text_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let text = ok(run(&host, &["check", &config()]));
    let (success, doc, _) = json_of(&host, &["check", "--json", &config()]);
    assert!(success);
    assert_eq!(doc["config"], config().as_str());
    assert_eq!(doc["accepted"], true);
    assert_eq!(doc["mdevs"], 3);
    assert_eq!(
        (doc["errors"].clone(), doc["warnings"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(doc["problems"], serde_json::json!([]));
    let guests: Vec<&str> = doc["predicted_views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["guest"].as_str().unwrap())
        .collect();
    assert_eq!(guests, ["Guest1", "Guest2", "Guest3"]);
    let views = views_as_text(&doc);
    assert_eq!(
        text,
        format!("{}: 3 mdev(s), no errors, 0 warning(s)\n{views}", config())
    );
}

#[test]
fn check_json_with_errors_prints_the_report_and_fails_as_the_text_does() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, TWO_ERRORS_ONE_WARNING).unwrap();
    let bad = bad.to_str().unwrap();
    let text = run(&host, &["check", bad]);
    let (success, doc, err) = json_of(&host, &["--json", "check", bad]);
    assert!(!text.status.success() && !success);
    assert_eq!(text.status.code(), Some(1));
    assert_eq!(run(&host, &["--json", "check", bad]).status.code(), Some(1));
    assert_eq!(doc["accepted"], false);
    assert_eq!(
        (doc["errors"].clone(), doc["warnings"].clone()),
        (2.into(), 1.into())
    );
    assert_eq!(doc["predicted_views"], serde_json::json!([]));
    assert_eq!(
        err.trim_end(),
        format!("apmatrix: 2 error(s), 1 warning(s) in {bad}")
    );
    // The same problems as the text lists, in its order.
    let listed: String = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}\n  fix: {}\n",
                p["severity"].as_str().unwrap(),
                p["message"].as_str().unwrap(),
                p["fix"].as_str().unwrap()
            )
        })
        .collect();
    let text_err = String::from_utf8_lossy(&text.stderr);
    assert_eq!(
        text_err,
        format!("apmatrix: {listed}2 error(s), 1 warning(s) in {bad}\n")
    );
    let severities: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["error", "error", "warning"]);
}

#[test]
fn plan_json_steps_are_the_text_plan_with_their_undo() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let text = ok(run(&host, &["plan", &config()]));
    let (success, doc, _) = json_of(&host, &["plan", "--json", &config()]);
    assert!(success);
    assert_eq!(doc["config"], config().as_str());
    assert_eq!(doc["root"], "/sys");
    let steps = doc["steps"].as_array().unwrap();
    let mut shell = String::new();
    for s in steps {
        let (path, full) = (
            s["path"].as_str().unwrap(),
            s["full_path"].as_str().unwrap(),
        );
        assert_eq!(full, format!("/sys/{path}"));
        shell.push_str(&format!("echo {} > {full}\n", s["value"].as_str().unwrap()));
        let undo = &s["undo"];
        assert_eq!(
            undo["full_path"].as_str().unwrap(),
            format!("/sys/{}", undo["path"].as_str().unwrap())
        );
        assert!(undo["value"].is_string(), "{s}");
    }
    assert_eq!(text, format!("{shell}{}", views_as_text(&doc)));
    // The first step takes adapters 5 and 6 from the host; undone by
    // writing the mask back.
    assert_eq!(steps[0]["path"], "bus/ap/apmask");
    assert_eq!(steps[0]["undo"]["value"], format!("0x{}", "f".repeat(64)));
    let (_, checked, _) = json_of(&host, &["check", "--json", &config()]);
    assert_eq!(doc["predicted_views"], checked["predicted_views"]);
    // Once applied, nothing is left to do; the guests' views stay.
    ok(run(&host, &["apply", &config()]));
    let (_, again, _) = json_of(&host, &["--json", "plan", &config()]);
    assert_eq!(again["steps"], serde_json::json!([]));
    assert_eq!(again["predicted_views"], doc["predicted_views"]);
    assert!(ok(run(&host, &["plan", &config()]))
        .starts_with("# the host already matches the configuration\n"));
}

#[test]
fn plan_json_of_a_configuration_with_errors_prints_nothing_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(run(&host, &["host", "init"]));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, TWO_ERRORS_ONE_WARNING).unwrap();
    let out = run(&host, &["--json", "plan", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no plan: fix these first"), "{err}");
}
