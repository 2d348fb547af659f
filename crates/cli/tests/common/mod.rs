//! What the FUSE-based integration tests share. Not every test uses every
//! piece.
#![allow(dead_code)]

pub mod libvirt;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_apmatrix");

/// `apmatrix --host HOST ARGS...`, run to the end.
pub fn apmatrix(host: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--host")
        .arg(host)
        .args(args)
        .output()
        .unwrap()
}

/// The output of a command that must succeed (else: its stderr).
pub fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory with an initialised seed host (`host.json`) and
/// an empty `sys/` to mount it on.
pub fn fresh_host() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let dir = tmp.path().join("sys");
    std::fs::create_dir(&dir).unwrap();
    succeeded(apmatrix(&host, &["host", "init"]));
    (tmp, host, dir)
}

/// A bash script, with bash's messages in English.
pub fn sh(script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

/// Whether FUSE tests can run here (root and /dev/fuse; CI requires it).
pub fn fuse_usable() -> bool {
    apmatrix_fuse::usable_for_tests()
}

pub fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let dir = dir.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(dir))
}

/// A running `apmatrix mount`, started once its tree is there; unmounts
/// (lazily if it was killed) on drop, so a failed assertion leaves no mount.
pub struct Served {
    child: Child,
    dir: PathBuf,
}

impl Served {
    pub fn start(host: &Path, dir: &Path) -> Served {
        Served::start_with(host, dir, &[])
    }

    /// As [`Served::start`], with `mount` options (`--no-periodic-scans`).
    pub fn start_with(host: &Path, dir: &Path, options: &[&str]) -> Served {
        let child = Command::new(BIN)
            .args(["--host", host.to_str().unwrap(), "mount"])
            .args(options)
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.join("bus/ap/apmask").exists() {
            assert!(Instant::now() < deadline, "the tree did not appear");
            std::thread::sleep(Duration::from_millis(5));
        }
        Served {
            child,
            dir: dir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server is still running (not reaped).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&mut self, sig: i32) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, sig) };
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if is_mounted(&self.dir) {
            let c = std::ffi::CString::new(self.dir.to_str().unwrap()).unwrap();
            // SAFETY: umount2(2) of the path, a NUL-terminated string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// What a script printed under `apmatrix exec` on a fresh host of `kernel`.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

/// Runs a bash script under `apmatrix exec` (the tree mounted as /sys) on
/// a fresh host at `host` following `kernel`, with this build's `apmatrix`
/// on PATH working on the same host, and `env` set. Fails the test if the
/// script fails.
pub fn exec(host: &Path, kernel: &str, script: &str, env: &[(&str, String)]) -> Ran {
    let bin = BIN;
    let h = host.to_str().unwrap();
    let init = Command::new(bin)
        .args(["--host", h, "host", "init", "--kernel", kernel])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let bin_dir = Path::new(bin).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(bin)
        // Scans only when the script asks: its output must not depend on
        // how long it ran.
        .args(["--host", h, "exec", "--no-periodic-scans", "--"])
        .args(["bash", "-c", script])
        .env("PATH", path)
        .env("APMATRIX_HOST", host)
        .env("LC_ALL", "C")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let ran = Ran {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "{kernel}: {}{}",
        ran.stdout,
        ran.stderr
    );
    ran
}

/// The seed document's three mdevs (Guest1, Guest2, Guest3).
pub const SEED_GUEST_UUIDS: [&str; 3] = [
    "669d9b23-fe1b-4ecb-be08-a2fabca99b71",
    "8da4b1d8-3e14-4ad1-8f0e-5d2a3c4b5e6f",
    "d1a4b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b",
];

/// The seed document's configuration, made through the host's tree.
const SEED_GUESTS: &str = r#"
set -eu
echo -5,-6 > /sys/bus/ap/apmask
echo -4,-0x47,-0xab,-0xff > /sys/bus/ap/aqmask
create=/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
m=/sys/devices/vfio_ap/matrix
for u in $U1 $U2 $U3; do echo $u > $create; done
echo 5 > $m/$U1/assign_adapter; echo 6 > $m/$U1/assign_adapter
echo 4 > $m/$U1/assign_domain; echo 0xab > $m/$U1/assign_domain
echo 5 > $m/$U2/assign_adapter; echo 0x47 > $m/$U2/assign_domain; echo 0xff > $m/$U2/assign_domain
echo 6 > $m/$U3/assign_adapter; echo 0x47 > $m/$U3/assign_domain; echo 0xff > $m/$U3/assign_domain
apmatrix guest start Guest1 --mdev $U1 > /dev/null
apmatrix guest start Guest2 --mdev $U2 > /dev/null
apmatrix guest start Guest3 --mdev $U3 > /dev/null
"#;

/// `apmatrix exec --guest GUEST -- ARGS...` on `host`, with this build's
/// apmatrix on PATH working on the same host: what it printed, or the test
/// fails.
pub fn in_guest(host: &Path, guest: &str, args: &[&std::ffi::OsStr]) -> String {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new(BIN)
        .args([
            "--host",
            host.to_str().unwrap(),
            "exec",
            "--no-periodic-scans",
        ])
        .args(["--guest", guest, "--"])
        .args(args)
        .env("PATH", path)
        .env("APMATRIX_HOST", host)
        .output()
        .unwrap();
    assert!(out.status.success(), "{guest}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory with `host.json`: the seed document's example,
/// made through the tree, with its three guests running.
pub fn seed_guests_host() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    start_seed_guests(&host);
    (tmp, host)
}

/// A fresh host at `host` (seed profile) set up as the seed document's
/// example, through the tree, with its three guests running.
pub fn start_seed_guests(host: &Path) {
    let env = [
        ("U1", SEED_GUEST_UUIDS[0].to_string()),
        ("U2", SEED_GUEST_UUIDS[1].to_string()),
        ("U3", SEED_GUEST_UUIDS[2].to_string()),
    ];
    exec(host, "seed", SEED_GUESTS, &env);
}

/// mdevctl 1.4.0: $APMATRIX_MDEVCTL_14, else what scripts/install-test-deps
/// builds.
pub fn mdevctl_14() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("APMATRIX_MDEVCTL_14") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let built =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/mdevctl-1.4.0/bin/mdevctl");
    built.is_file().then_some(built)
}

/// Whether a test that needs `missing.is_empty()` can run: if not, it
/// prints "skipping: ..." and the test passes, unless APMATRIX_REQUIRE_FUSE
/// is set (CI), where a missing prerequisite fails the test.
pub fn can_run(test: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    assert!(
        std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
        "APMATRIX_REQUIRE_FUSE is set but {test} cannot run: {why}"
    );
    eprintln!("skipping {test}: {why}");
    false
}

/// What FUSE tests lack here (root, /dev/fuse), if anything.
pub fn fuse_missing() -> Vec<String> {
    apmatrix_fuse::unusable()
        .map(|why| vec![why.to_string()])
        .unwrap_or_default()
}

/// The seed document's three guests (examples/seed-guests.toml).
pub fn seed_guests() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/seed-guests.toml"
    ))
    .unwrap()
}

/// Control domains (ranges, ids given out of order), an autostart/manual
/// mix, an mdev with nothing assigned, and UUIDs whose order is not the
/// file's: mdevctl lists by UUID.
pub const MDEV_MIX: &str = r#"
[masks]
derive = "adapters"

[[mdev]]
uuid = "f3c1d2e4-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
adapters = "4"
domains = "0x47,5"
control_domains = "0xff,0-2,0x47"
autostart = true

[[mdev]]
uuid = "0b1c2d3e-4f5a-4b6c-9d8e-7f6a5b4c3d2e"
adapters = "5,6"
domains = "0xab"
control_domains = "0xab"

[[mdev]]
uuid = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
autostart = true
"#;
