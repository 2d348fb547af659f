//! What apmatrix shows, byte for byte, kept as golden files so that a
//! change that should not alter behaviour (a reshaping of the code) can
//! prove it did not: the whole mounted tree of the seed host after the
//! document's walkthrough (every file's mode and content, every link's
//! target), and the outputs of `demo`, `lszcrypt -V`, `matrix` and
//! `check` / `plan` of examples/seed-guests.toml.
//!
//! `APMATRIX_BLESS=1 cargo test -p apmatrix --test golden` rewrites the
//! files after a change that is meant to alter them.

mod common;
use common::{apmatrix, fuse_usable, sh, Served};

use std::fmt::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares with (or, blessing, writes) a golden file.
fn golden(name: &str, actual: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("APMATRIX_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with APMATRIX_BLESS=1)", path.display()));
    if want != actual {
        let first = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its golden file at line {}:\n  golden: {:?}\n  now:    {:?}",
            first + 1,
            want.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

use common::succeeded as ok;

const GUEST1: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
const GUEST2: &str = "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0";
const GUEST3: &str = "3b5ae7b1-a3a3-4d4d-8c5c-6e4b4e1a6c01";

/// The document's walkthrough with fixed UUIDs, as shell writes.
fn walkthrough(sys: &Path) -> String {
    format!(
        r#"set -e
cd {sys}
echo -5,-6 > bus/ap/apmask
cd devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
echo {GUEST1} > create; echo {GUEST2} > create; echo {GUEST3} > create
cd {sys}/devices/vfio_ap/matrix/{GUEST1}
echo 5 > assign_adapter; echo 6 > assign_adapter
echo 4 > assign_domain; echo 0xab > assign_domain
echo 4 > assign_control_domain; echo 0xab > assign_control_domain
cd {sys}/devices/vfio_ap/matrix/{GUEST2}
echo 5 > assign_adapter; echo 6 > assign_adapter
echo 0x47 > assign_domain; echo 0xff > assign_domain
echo 0x47 > assign_control_domain; echo 0xff > assign_control_domain
cd {sys}/devices/vfio_ap/matrix/{GUEST3}
echo 5 > assign_adapter; echo 6 > assign_adapter
echo 5 > assign_domain; echo 5 > assign_control_domain
"#,
        sys = sys.display()
    )
}

/// Every entry under `dir`: a directory's mode, a file's mode and content
/// (or why it cannot be read), a link's target. Links are not followed.
fn dump(root: &Path, dir: &Path, out: &mut String) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            let _ = writeln!(out, "{rel} -> {}", target.display());
        } else if meta.is_dir() {
            let _ = writeln!(out, "{rel}/ {mode:04o}");
            dump(root, &path, out);
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let _ = writeln!(out, "{rel} {mode:04o} {:?}", text);
                }
                Err(e) => {
                    let _ = writeln!(out, "{rel} {mode:04o} <{}>", e.kind());
                }
            }
        }
    }
}

#[test]
fn the_mounted_seed_host_after_the_walkthrough_is_as_recorded() {
    if !fuse_usable() {
        return;
    }
    let (_tmp, host, sys) = common::fresh_host();
    let _served = Served::start(&host, &sys);
    let out = sh(&walkthrough(&sys));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tree = String::new();
    dump(&sys, &sys, &mut tree);
    golden("seed-walkthrough-tree.txt", &tree);
    // the CLI's views of the same host, through the server
    golden(
        "seed-walkthrough-lszcrypt-V.txt",
        &ok(apmatrix(&host, &["lszcrypt", "-V"])),
    );
    golden(
        "seed-walkthrough-matrix.txt",
        &ok(apmatrix(&host, &["matrix"])),
    );
}

#[test]
fn demo_and_the_seed_guests_configuration_print_as_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    ok(apmatrix(&host, &["host", "init"]));
    golden("demo.txt", &ok(apmatrix(&host, &["demo"])));
    // by a relative name, so that no checkout's path is in the output
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-guests.toml");
    std::fs::copy(example, tmp.path().join("seed-guests.toml")).unwrap();
    let in_tmp = |args: &[&str]| {
        ok(std::process::Command::new(common::BIN)
            .current_dir(tmp.path())
            .args(["--host", "host.json"])
            .args(args)
            .output()
            .unwrap())
    };
    golden(
        "seed-guests-check.txt",
        &in_tmp(&["check", "seed-guests.toml"]),
    );
    golden(
        "seed-guests-plan.txt",
        &in_tmp(&["plan", "seed-guests.toml"]),
    );
    in_tmp(&["apply", "seed-guests.toml"]);
    golden(
        "seed-guests-lszcrypt-V.txt",
        &ok(apmatrix(&host, &["lszcrypt", "-V"])),
    );
    golden("seed-guests-matrix.txt", &ok(apmatrix(&host, &["matrix"])));
}
