//! How tests/s390_tools.rs runs Debian's s390x s390-tools: under
//! qemu-user, inside one `apmatrix exec` per scenario (so /sys/bus/ap and
//! /sys/devices/ap are the emulated tree), with private /run/lock,
//! /etc/udev/rules.d and /etc/mdevctl.d in that mount namespace.
#![allow(dead_code)] // each test file uses its own part of it

pub mod compat;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::BIN;

/// The unpacked tools and their version.
pub struct Tools {
    pub root: PathBuf,
    /// (major, minor) of `lszcrypt -v`.
    pub version: (u32, u32),
}

/// The tools, if this machine can run them; otherwise prints why and
/// returns `None` (skips) or, with APMATRIX_REQUIRE_FUSE (CI), panics.
pub fn tools() -> Option<Tools> {
    let mut missing = Vec::new();
    if let Some(why) = apmatrix_fuse::unusable() {
        missing.push(why.to_string());
    }
    let root = std::env::var_os("APMATRIX_S390_TOOLS")
        .map(PathBuf::from)
        .or_else(installed_root);
    match &root {
        Some(r) if r.join("usr/sbin/lszcrypt").is_file() => {}
        Some(r) => missing.push(format!(
            "no s390-tools at {} (run scripts/install-test-deps)",
            r.display()
        )),
        None => missing.push(
            "no s390-tools: set APMATRIX_S390_TOOLS, or run scripts/install-test-deps".into(),
        ),
    }
    let qemu = Command::new("qemu-s390x-static").arg("-version").output();
    if !qemu.is_ok_and(|o| o.status.success()) {
        missing.push("no qemu-s390x-static (apt-get install qemu-user-static)".into());
    }
    if !missing.is_empty() {
        let why = missing.join("; ");
        assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "APMATRIX_REQUIRE_FUSE is set but the s390-tools tests cannot run: {why}"
        );
        eprintln!("skipping: {why}");
        return None;
    }
    let root = root.unwrap();
    let out = Command::new("qemu-s390x-static")
        .arg("-L")
        .arg(&root)
        .arg(root.join("usr/sbin/lszcrypt"))
        .arg("-v")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "lszcrypt version 2.35.0-build-20250325"
    let v = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("lszcrypt -v printed {text:?}"));
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    Some(Tools { root, version })
}

/// What scripts/install-test-deps unpacked: the newest complete root.
fn installed_root() -> Option<PathBuf> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools");
    let mut roots: Vec<PathBuf> = fs::read_dir(tools)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("s390-tools-"))
                && p.join("complete").is_file()
        })
        .collect();
    roots.sort();
    roots.pop().map(|p| p.join("root"))
}

/// One command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// A host (state file in a temporary directory) and a private `etc`
/// for the tools' persistent configuration.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub host: PathBuf,
}

impl Scenario {
    /// A host made by `apmatrix host init ARGS`, then changed by the
    /// `apmatrix` commands in `events` (each a list of arguments).
    pub fn new(init: &[&str], events: &[&[&str]]) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.json");
        fs::create_dir_all(dir.path().join("etc/udev/rules.d")).unwrap();
        fs::create_dir_all(dir.path().join("etc/mdevctl.d/matrix")).unwrap();
        let s = Scenario { dir, host };
        s.apmatrix(&[&["host", "init"][..], init].concat());
        for e in events {
            s.apmatrix(e);
        }
        s
    }

    fn apmatrix(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("--host")
            .arg(&self.host)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "apmatrix {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// The private etc (DIR/udev/rules.d, DIR/mdevctl.d/matrix).
    pub fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Runs `setup`, then each of `cases`, in bash under one `apmatrix exec`
    /// of the host: `real TOOL ARGS...` runs an s390x tool, `apmatrix` is
    /// this build on the same host, `$ETC` is [`Scenario::etc`]. Each case's
    /// output and status, in order. Fails the test if setup fails.
    pub fn run(&self, tools: &Tools, setup: &str, cases: &[String]) -> Vec<Out> {
        let work = self.dir.path().join("cases");
        let _ = fs::remove_dir_all(&work);
        fs::create_dir(&work).unwrap();
        let prelude = format!(
            "real() {{ local t=$1; shift; qemu-s390x-static -L {root} {root}/usr/sbin/$t \"$@\"; }}\n",
            root = tools.root.display()
        );
        fs::write(work.join("prelude.sh"), &prelude).unwrap();
        let mut script = String::from(
            "set -e\n\
             mount -t tmpfs tmpfs /run/lock\n\
             for d in /etc/udev/rules.d /etc/mdevctl.d; do\n\
             \x20   if [ -d $d ]; then mount -t tmpfs tmpfs $d; fi\n\
             done\n",
        );
        script.push_str(&prelude);
        script.push_str(setup);
        script.push_str("\nset +e\n");
        for (i, case) in cases.iter().enumerate() {
            let file = work.join(format!("{i}.sh"));
            fs::write(
                &file,
                format!(". {}\n{case}\n", work.join("prelude.sh").display()),
            )
            .unwrap();
            let w = work.display();
            script.push_str(&format!(
                "bash {file} >{w}/{i}.out 2>{w}/{i}.err </dev/null; echo $? >{w}/{i}.rc\n",
                file = file.display()
            ));
        }
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(BIN)
            .arg("--host")
            .arg(&self.host)
            .args(["exec", "--no-periodic-scans", "--", "bash", "-c", &script])
            .env("PATH", path)
            .env("APMATRIX_HOST", &self.host)
            .env("ETC", self.etc())
            .env("LC_ALL", "C")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "setup failed: {out:?}");
        let read =
            |i: usize, ext: &str| fs::read_to_string(work.join(format!("{i}.{ext}"))).unwrap();
        (0..cases.len())
            .map(|i| Out {
                stdout: read(i, "out"),
                stderr: read(i, "err"),
                rc: read(i, "rc").trim().parse().unwrap(),
            })
            .collect()
    }
}
