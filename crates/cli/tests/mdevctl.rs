//! Real mdevctl binaries driven against the emulated tree (tools.md Part B
//! §1): types, define, modify --addattr, start, list, list -d, --dumpjson,
//! stop and undefine, plus starts that the emulated kernel refuses.
//!
//! * mdevctl 1.4.0 (crates.io) runs with MDEVCTL_ENV_ROOT=R against
//!   `apmatrix mount R/sys`;
//! * Debian's mdevctl 1.2.0 (no alternate root) runs inside
//!   `apmatrix exec -- bash`, with a private directory bind-mounted over
//!   /etc/mdevctl.d in that private mount namespace.
//!
//! Both go through the same scenarios ([`lifecycle`], [`refused_starts`]);
//! a [`Session`] hides how commands reach the tree.
//!
//! Needs root, /dev/fuse and the mdevctl binaries (scripts/install-test-deps).
//! Without them the tests print "skipping: ..." and pass, unless
//! APMATRIX_REQUIRE_FUSE is set (CI), in which case they fail.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const APMATRIX: &str = env!("CARGO_BIN_EXE_apmatrix");
const MDEVCTL_12: &str = "/usr/bin/mdevctl";
const TYPE: &str = "vfio_ap-passthrough";
const TYPE_DIR: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";
/// How long one command (or the mount coming up) may take before the test
/// gives up instead of hanging.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Prerequisites

/// Returns `true` when everything is there; otherwise skips (prints why and
/// returns `false`) or, with APMATRIX_REQUIRE_FUSE set, panics.
fn prerequisites(mdevctl: Option<&Path>, which: &str) -> bool {
    let mut missing = Vec::new();
    if let Some(why) = apmatrix_fuse::unusable() {
        missing.push(why.to_string());
    }
    match mdevctl {
        Some(p) if p.is_file() => {}
        Some(p) => missing.push(format!(
            "{which} not found at {} (run scripts/install-test-deps)",
            p.display()
        )),
        None => missing.push(format!(
            "{which} not found: set APMATRIX_MDEVCTL_14, or run scripts/install-test-deps \
             to build target/tools/mdevctl-1.4.0/bin/mdevctl"
        )),
    }
    if missing.is_empty() {
        return true;
    }
    let why = missing.join("; ");
    assert!(
        std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
        "APMATRIX_REQUIRE_FUSE is set but the mdevctl tests cannot run: {why}"
    );
    eprintln!("skipping: {why}");
    false
}

/// mdevctl 1.4.0: $APMATRIX_MDEVCTL_14, else what scripts/install-test-deps
/// builds, else /tmp/mdevctl-1.4/bin/mdevctl.
fn mdevctl_14() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("APMATRIX_MDEVCTL_14") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        root.join("target/tools/mdevctl-1.4.0/bin/mdevctl"),
        PathBuf::from("/tmp/mdevctl-1.4/bin/mdevctl"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// Helpers

/// What a command did.
#[derive(Debug)]
struct Out {
    cmd: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Expects exit status 0; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed\nstdout: {}\nstderr: {}",
            self.cmd,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

fn apmatrix(state: &Path, args: &[&str]) -> Out {
    let out = Command::new(APMATRIX)
        .arg("--host")
        .arg(state)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Out {
        cmd: format!("apmatrix {}", args.join(" ")),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh emulated host (the seed example) in `dir`.
fn init_host(dir: &Path) -> PathBuf {
    init_host_of(dir, "seed")
}

/// The same, following the rules of `kernel` (a profile or a version).
fn init_host_of(dir: &Path, kernel: &str) -> PathBuf {
    let state = dir.join("host.json");
    apmatrix(&state, &["host", "init", "--kernel", kernel]).ok();
    state
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `dir` is a mount point, by /proc/self/mountinfo.
fn is_mount_point(dir: &Path) -> bool {
    let want = dir.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp.replace("\\040", " ") == want)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| s.to_string()).collect())
}

// ---------------------------------------------------------------------------
// `apmatrix mount DIR` as a child process

/// A running `apmatrix mount`. Dropping it (say, when an assertion failed)
/// still SIGINTs it, waits, and as a last resort kills it and lazily
/// unmounts, so that no test leaves a mount behind.
struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
}

impl Mounted {
    fn start(state: &Path, dir: &Path, log: &Path) -> Mounted {
        let child = Command::new(APMATRIX)
            .arg("--host")
            .arg(state)
            .arg("mount")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Mounted {
            child: Some(child),
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
        };
        let apmask = dir.join("bus/ap/apmask");
        let deadline = Instant::now() + STEP_TIMEOUT;
        while !apmask.exists() {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                m.child = None;
                panic!("apmatrix mount exited early ({status}): {}", m.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear: {}",
                apmask.display(),
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn interrupt(child: &Child) {
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        assert_eq!(rc, 0, "kill(SIGINT): {}", std::io::Error::last_os_error());
    }

    /// SIGINT, then expects exit status 0 and the mount gone.
    fn unmount(mut self) {
        let mut child = self.child.take().unwrap();
        Self::interrupt(&child);
        let status = wait_timeout(&mut child, STEP_TIMEOUT);
        let status = match status {
            Some(s) => s,
            None => {
                self.child = Some(child); // Drop kills it
                panic!("apmatrix mount ignored SIGINT: {}", self.log_text());
            }
        };
        assert!(
            status.success(),
            "apmatrix mount exited with {status}: {}",
            self.log_text()
        );
        assert!(
            !is_mount_point(&self.dir),
            "{} is still mounted after apmatrix mount exited",
            self.dir.display()
        );
        assert!(!self.dir.join("bus").exists(), "the tree is still visible");
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if is_mount_point(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

// ---------------------------------------------------------------------------
// Sessions: how mdevctl and the tree are reached

/// Output differences between the mdevctl versions under test.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Version {
    /// Debian bookworm's 1.2.0: text output (types, list) ends in an extra
    /// newline (println!), even when empty; `list --dumpjson` of active
    /// devices shows the attrs of their definition.
    V1_2,
    /// crates.io 1.4.0: text output as is; attrs of active devices come only
    /// from callouts (none installed here), so `list --dumpjson` shows `[]`.
    V1_4,
}

impl Version {
    fn text(self, s: &str) -> String {
        match self {
            Version::V1_2 => format!("{s}\n"),
            Version::V1_4 => s.to_string(),
        }
    }

    fn version_line(self) -> &'static str {
        match self {
            Version::V1_2 => "mdevctl 1.2.0\n",
            Version::V1_4 => "mdevctl 1.4.0\n",
        }
    }
}

trait Session {
    fn version(&self) -> Version;
    fn mdevctl(&mut self, args: &[&str]) -> Out;
    /// Contents of /sys/`rel` (None when it cannot be read).
    fn read(&mut self, rel: &str) -> Option<String>;
    /// Sorted names in /sys/`rel` (None when it is not a directory).
    fn ls(&mut self, rel: &str) -> Option<Vec<String>>;
    fn readlink(&mut self, rel: &str) -> Option<String>;
    fn write(&mut self, rel: &str, data: &str);
    /// The directory mdevctl sees as /etc/mdevctl.d, as seen from here.
    fn config_dir(&self) -> PathBuf;
    /// The emulated host's state file.
    fn state(&self) -> &Path;
}

/// mdevctl 1.4.0 with MDEVCTL_ENV_ROOT=R and `apmatrix mount R/sys`.
struct RootSession {
    mdevctl: PathBuf,
    root: PathBuf,
    state: PathBuf,
    mount: Option<Mounted>,
    _tmp: tempfile::TempDir,
}

impl RootSession {
    fn new(mdevctl: PathBuf) -> RootSession {
        RootSession::of(mdevctl, "seed")
    }

    /// A session on a host following `kernel`'s rules.
    fn of(mdevctl: PathBuf, kernel: &str) -> RootSession {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("root");
        for d in [
            "sys",
            "etc/mdevctl.d",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let state = init_host_of(&base, kernel);
        let mount = Mounted::start(&state, &root.join("sys"), &base.join("mount.log"));
        RootSession {
            mdevctl,
            root,
            state,
            mount: Some(mount),
            _tmp: tmp,
        }
    }

    fn sys(&self, rel: &str) -> PathBuf {
        self.root.join("sys").join(rel)
    }

    fn finish(mut self) {
        self.mount.take().unwrap().unmount();
    }
}

impl Session for RootSession {
    fn version(&self) -> Version {
        Version::V1_4
    }

    fn mdevctl(&mut self, args: &[&str]) -> Out {
        let out = Command::new(&self.mdevctl)
            .args(args)
            .env("MDEVCTL_ENV_ROOT", &self.root)
            .env("RUST_BACKTRACE", "0")
            .env("LC_ALL", "C")
            .env_remove("MDEVCTL_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Out {
            cmd: format!("mdevctl {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn read(&mut self, rel: &str) -> Option<String> {
        fs::read_to_string(self.sys(rel)).ok()
    }

    fn ls(&mut self, rel: &str) -> Option<Vec<String>> {
        let names = fs::read_dir(self.sys(rel))
            .ok()?
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        Some(sorted(names))
    }

    fn readlink(&mut self, rel: &str) -> Option<String> {
        let t = fs::read_link(self.sys(rel)).ok()?;
        Some(t.to_str().unwrap().to_string())
    }

    fn write(&mut self, rel: &str, data: &str) {
        fs::write(self.sys(rel), data).unwrap_or_else(|e| panic!("writing {data:?} to {rel}: {e}"));
    }

    fn config_dir(&self) -> PathBuf {
        self.root.join("etc/mdevctl.d")
    }

    fn state(&self) -> &Path {
        &self.state
    }
}

/// Runs commands, one at a time, in a bash inside
/// `apmatrix exec -- bash -c SCRIPT`: the real /sys paths lead to the
/// emulated tree and a private directory stands at /etc/mdevctl.d. Each
/// command's stdout, stderr and status land in files of `out`; bash
/// answers `done N` on its stdout when command N has finished.
struct ExecSession {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    steps: u32,
    out: PathBuf,
    etc: PathBuf,
    log: PathBuf,
    state: PathBuf,
    _tmp: tempfile::TempDir,
}

const EXEC_SCRIPT: &str = r#"set -u
out=$1 etc=$2
mkdir -p /etc/mdevctl.d || exit 97
mount --bind "$etc" /etc/mdevctl.d || exit 98
step() {
    local n=$1
    shift
    "$@" >"$out/$n.out" 2>"$out/$n.err" </dev/null
    echo $? >"$out/$n.rc"
    echo "done $n"
}
wr() { printf '%s' "$1" >"$2"; }
echo ready
while IFS= read -r line; do
    eval "$line"
done
"#;

/// Quotes a word for bash as $'...', so that it stays on one line.
fn shell_quote(s: &str) -> String {
    let mut q = String::from("$'");
    for ch in s.chars() {
        match ch {
            '\\' => q.push_str("\\\\"),
            '\'' => q.push_str("\\'"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

impl ExecSession {
    fn new() -> ExecSession {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let out = base.join("out");
        let etc = base.join("etc");
        fs::create_dir(&out).unwrap();
        // mdevctl 1.2.0 refuses to run without its (old-layout) script dirs.
        fs::create_dir_all(etc.join("scripts.d/callouts")).unwrap();
        fs::create_dir_all(etc.join("scripts.d/notifiers")).unwrap();
        let state = init_host(&base);
        let log = base.join("exec.log");
        let mut child = Command::new(APMATRIX)
            .arg("--host")
            .arg(&state)
            .args(["exec", "--", "bash", "-c", EXEC_SCRIPT, "bash"])
            .arg(&out)
            .arg(&etc)
            .env("RUST_BACKTRACE", "0")
            .env("LC_ALL", "C")
            .env_remove("MDEVCTL_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = ExecSession {
            child: Some(child),
            stdin,
            lines,
            steps: 0,
            out,
            etc,
            log,
            state,
            _tmp: tmp,
        };
        s.expect_line("ready");
        s
    }

    fn expect_line(&mut self, want: &str) {
        let mut other = Vec::new();
        loop {
            match self.lines.recv_timeout(STEP_TIMEOUT) {
                Ok(line) if line == want => return,
                Ok(line) => other.push(line),
                Err(e) => {
                    let status = self.child.as_mut().unwrap().try_wait().unwrap();
                    let what = match e {
                        RecvTimeoutError::Timeout => "timed out",
                        RecvTimeoutError::Disconnected => "the shell exited",
                    };
                    panic!(
                        "waiting for {want:?} in apmatrix exec: {what} (status {status:?}); \
                         other output {other:?}; stderr: {}",
                        fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
        }
    }

    fn step(&mut self, words: &[&str]) -> Out {
        self.steps += 1;
        let n = self.steps;
        let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
        let line = format!("step {n} {}\n", quoted.join(" "));
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        self.expect_line(&format!("done {n}"));
        let file = |ext: &str| fs::read_to_string(self.out.join(format!("{n}.{ext}"))).unwrap();
        Out {
            cmd: words.join(" "),
            code: file("rc").trim().parse().ok(),
            stdout: file("out"),
            stderr: file("err"),
        }
    }

    fn path(rel: &str) -> String {
        format!("/sys/{rel}")
    }

    /// Ends the shell and expects `apmatrix exec` to exit 0.
    fn finish(mut self) {
        drop(self.stdin.take());
        let mut child = self.child.take().unwrap();
        let status = wait_timeout(&mut child, STEP_TIMEOUT);
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let Some(status) = status else {
            self.child = Some(child); // Drop kills it
            panic!("apmatrix exec did not exit after the shell's stdin closed: {log}");
        };
        assert!(
            status.success(),
            "apmatrix exec exited with {status}: {log}"
        );
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                // The namespace, and with it the grafts, go away with it.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Session for ExecSession {
    fn version(&self) -> Version {
        Version::V1_2
    }

    fn mdevctl(&mut self, args: &[&str]) -> Out {
        let mut words = vec![MDEVCTL_12];
        words.extend_from_slice(args);
        let mut out = self.step(&words);
        out.cmd = format!("mdevctl {}", args.join(" "));
        out
    }

    fn read(&mut self, rel: &str) -> Option<String> {
        let out = self.step(&["cat", &Self::path(rel)]);
        (out.code == Some(0)).then_some(out.stdout)
    }

    fn ls(&mut self, rel: &str) -> Option<Vec<String>> {
        let p = Self::path(rel);
        let out = self.step(&["test", "-d", &p]);
        if out.code != Some(0) {
            return None;
        }
        let out = self.step(&["ls", "-1A", &p]);
        out.ok();
        Some(sorted(out.stdout.lines().map(str::to_string).collect()))
    }

    fn readlink(&mut self, rel: &str) -> Option<String> {
        let out = self.step(&["readlink", &Self::path(rel)]);
        (out.code == Some(0)).then(|| out.stdout.trim_end_matches('\n').to_string())
    }

    fn write(&mut self, rel: &str, data: &str) {
        self.step(&["wr", data, &Self::path(rel)]).ok();
    }

    fn config_dir(&self) -> PathBuf {
        self.etc.clone()
    }

    fn state(&self) -> &Path {
        &self.state
    }
}

// ---------------------------------------------------------------------------
// Scenarios

fn types_text(available: u32) -> String {
    format!(
        "matrix\n  {TYPE}\n    Available instances: {available}\n    Device API: vfio-ap\n    \
         Name: VFIO AP Passthrough Device\n"
    )
}

/// One `mdevctl list` line.
fn list_line(uuid: &str, note: &str) -> String {
    format!("{uuid} matrix {TYPE} manual{note}\n")
}

fn attr(name: &str, value: &str) -> Value {
    json!({ name: value })
}

fn full_attrs() -> Value {
    json!([
        attr("assign_adapter", "5"),
        attr("assign_domain", "0xab"),
        attr("assign_control_domain", "0xab"),
    ])
}

fn config(attrs: Value) -> Value {
    json!({ "mdev_type": TYPE, "start": "manual", "attrs": attrs })
}

fn parse_json(out: &Out) -> Value {
    serde_json::from_str(out.ok())
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}): {}", out.cmd, out.stdout))
}

fn config_file(s: &dyn Session, uuid: &str) -> PathBuf {
    s.config_dir().join("matrix").join(uuid)
}

fn read_config(s: &dyn Session, uuid: &str) -> Value {
    let path = config_file(s, uuid);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("config {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// `apmatrix mdev list --json`, from outside the tree, as (uuid, matrix,
/// control_domains) per mdev.
fn emulated_mdevs(s: &dyn Session) -> Vec<(String, Vec<String>, String)> {
    let out = apmatrix(s.state(), &["mdev", "list", "--json"]);
    let v: Value = serde_json::from_str(out.ok()).unwrap();
    let mut mdevs: Vec<_> = v
        .as_array()
        .unwrap_or_else(|| panic!("mdev list --json: {v}"))
        .iter()
        .map(|m| {
            let matrix = m["matrix"]
                .as_array()
                .unwrap()
                .iter()
                .map(|q| q.as_str().unwrap().to_string())
                .collect();
            (
                m["uuid"].as_str().unwrap().to_string(),
                matrix,
                m["control_domains"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    mdevs.sort();
    mdevs
}

fn set_host_masks(s: &mut dyn Session) {
    // Adapters 5 and 6 leave the host (zcrypt) for vfio_ap.
    s.write("bus/ap/apmask", "-5,-6\n");
    assert_eq!(
        s.read("bus/ap/apmask").unwrap(),
        format!("0xf9{}\n", "f".repeat(62))
    );
}

fn define_with(s: &mut dyn Session, uuid: &str, attrs: &[(&str, &str)]) {
    let out = s.mdevctl(&["define", "-u", uuid, "-p", "matrix", "-t", TYPE]);
    assert_eq!(out.ok(), "", "define with a given UUID prints nothing");
    for (name, value) in attrs {
        add_attr(s, uuid, name, value);
    }
}

fn add_attr(s: &mut dyn Session, uuid: &str, name: &str, value: &str) {
    let out = s.mdevctl(&[
        "modify",
        "-u",
        uuid,
        &format!("--addattr={name}"),
        &format!("--value={value}"),
    ]);
    assert_eq!(out.ok(), "");
}

/// Checks that exactly `active` exist as mdevs, in every place the tree
/// shows them and in the emulated host's state.
fn expect_active(s: &mut dyn Session, active: &[&str]) {
    let v = s.version();
    assert_eq!(s.ls("bus/mdev/devices").unwrap(), strings(active));
    let mut in_matrix = active.to_vec();
    // The matrix device's own entries: its type directory, links and uevent.
    in_matrix.extend(["driver", "mdev_supported_types", "subsystem", "uevent"]);
    in_matrix.sort();
    // NEW's matrix device also has its `features` file.
    let listed: Vec<String> = s.ls("devices/vfio_ap/matrix").unwrap();
    let listed: Vec<String> = listed.into_iter().filter(|n| n != "features").collect();
    assert_eq!(listed, strings(&in_matrix));
    assert_eq!(
        s.ls(&format!("{TYPE_DIR}/devices")).unwrap(),
        strings(active)
    );
    let available = 65536 - active.len() as u32;
    assert_eq!(
        s.read(&format!("{TYPE_DIR}/available_instances")).unwrap(),
        format!("{available}\n")
    );
    assert_eq!(s.mdevctl(&["types"]).ok(), v.text(&types_text(available)));
    let uuids: Vec<String> = emulated_mdevs(s).into_iter().map(|m| m.0).collect();
    assert_eq!(uuids, strings(active), "apmatrix mdev list --json");
}

/// Checks the version first: the expectations are version-specific, and an
/// mdevctl older than 1.3 given as the 1.4.0 binary would ignore
/// MDEVCTL_ENV_ROOT and work on the real /etc/mdevctl.d.
fn expect_version(s: &mut dyn Session) -> Version {
    let v = s.version();
    let out = s.mdevctl(&["--version"]);
    assert_eq!(
        out.stdout,
        v.version_line(),
        "these expectations are for {}; `{}` said {out:?}",
        v.version_line().trim_end(),
        out.cmd
    );
    out.ok();
    v
}

/// Test (a), and the first half of (c): the whole life of one mdev.
fn lifecycle(s: &mut dyn Session, u: &str) {
    let v = expect_version(s);
    set_host_masks(s);

    // types
    assert_eq!(s.mdevctl(&["types"]).ok(), v.text(&types_text(65536)));
    let types = parse_json(&s.mdevctl(&["types", "--dumpjson"]));
    assert_eq!(
        types,
        json!([{ "matrix": [{ TYPE: {
            "available_instances": 65536,
            "device_api": "vfio-ap",
            "name": "VFIO AP Passthrough Device",
        }}]}])
    );

    // define, modify --addattr: the config file, attrs in order
    define_with(s, u, &[]);
    assert_eq!(read_config(s, u), config(json!([])));
    let attrs = full_attrs();
    for (n, a) in attrs.as_array().unwrap().iter().enumerate() {
        let (name, value) = a.as_object().unwrap().iter().next().unwrap();
        add_attr(s, u, name, value.as_str().unwrap());
        let so_far = attrs.as_array().unwrap()[..=n].to_vec();
        assert_eq!(read_config(s, u), config(Value::Array(so_far)));
    }
    assert_eq!(s.mdevctl(&["list"]).ok(), v.text(""), "nothing active yet");
    assert_eq!(s.mdevctl(&["list", "-d"]).ok(), v.text(&list_line(u, "")));

    // start: the attributes replayed into the tree
    assert_eq!(s.mdevctl(&["start", "-u", u]).ok(), "");
    let dev = format!("devices/vfio_ap/matrix/{u}");
    assert_eq!(s.read(&format!("{dev}/matrix")).unwrap(), "05.00ab\n");
    assert_eq!(s.read(&format!("{dev}/control_domains")).unwrap(), "00ab\n");
    assert_eq!(
        s.readlink(&format!("bus/mdev/devices/{u}")).unwrap(),
        format!("../../../devices/vfio_ap/matrix/{u}")
    );
    assert_eq!(
        s.readlink(&format!("{dev}/mdev_type")).unwrap(),
        format!("../mdev_supported_types/{TYPE}")
    );
    expect_active(s, &[u]);
    assert_eq!(
        emulated_mdevs(s),
        vec![(
            u.to_string(),
            vec!["05.00ab".to_string()],
            "0xab".to_string()
        )]
    );

    // list, list -d, --dumpjson
    assert_eq!(
        s.mdevctl(&["list"]).ok(),
        v.text(&list_line(u, " (defined)"))
    );
    assert_eq!(
        s.mdevctl(&["list", "-d"]).ok(),
        v.text(&list_line(u, " (active)"))
    );
    let active_attrs = match v {
        Version::V1_2 => full_attrs(),
        Version::V1_4 => json!([]),
    };
    assert_eq!(
        parse_json(&s.mdevctl(&["list", "--dumpjson"])),
        json!([{ "matrix": [{ u: config(active_attrs) }] }])
    );
    assert_eq!(
        parse_json(&s.mdevctl(&["list", "-d", "--dumpjson"])),
        json!([{ "matrix": [{ u: config(full_attrs()) }] }])
    );
    // With -u, the bare config: what the config file holds.
    assert_eq!(
        parse_json(&s.mdevctl(&["list", "-d", "--dumpjson", "-u", u])),
        read_config(s, u)
    );

    // stop: the device leaves the tree and the host
    assert_eq!(s.mdevctl(&["stop", "-u", u]).ok(), "");
    assert_eq!(s.read(&format!("{dev}/matrix")), None);
    assert_eq!(s.ls(&dev), None);
    expect_active(s, &[]);
    assert_eq!(s.mdevctl(&["list"]).ok(), v.text(""));
    assert_eq!(s.mdevctl(&["list", "-d"]).ok(), v.text(&list_line(u, "")));

    // undefine: the config file goes
    assert_eq!(s.mdevctl(&["undefine", "-u", u]).ok(), "");
    assert!(!config_file(s, u).exists(), "config file left by undefine");
    assert_eq!(s.mdevctl(&["list", "-d"]).ok(), v.text(""));
}

/// Expects `mdevctl start -u uuid` to fail on writing `value` to `attr`
/// with `errno_text`, and mdevctl's cleanup to leave only `active`.
fn expect_refused_start(
    s: &mut dyn Session,
    uuid: &str,
    attr: &str,
    value: &str,
    errno_text: &str,
    active: &[&str],
) {
    let out = s.mdevctl(&["start", "-u", uuid]);
    assert_eq!(out.code, Some(1), "start should fail: {out:?}");
    assert_eq!(out.stdout, "");
    let want = format!("Failed to write {value} to attribute {attr}");
    assert!(
        out.stderr.contains(&want),
        "stderr lacks {want:?}: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(errno_text),
        "stderr lacks {errno_text:?}: {}",
        out.stderr
    );
    // mdevctl wrote 1 to <uuid>/remove: the half-made device is gone.
    assert_eq!(s.ls(&format!("devices/vfio_ap/matrix/{uuid}")), None);
    expect_active(s, active);
}

/// Test (b), and the second half of (c): starts the emulated kernel refuses.
fn refused_starts(s: &mut dyn Session, a: &str, b: &str, c: &str) {
    let v = expect_version(s);
    set_host_masks(s);
    define_with(s, a, &[("assign_adapter", "5"), ("assign_domain", "0xab")]);
    assert_eq!(s.mdevctl(&["start", "-u", a]).ok(), "");
    expect_active(s, &[a]);

    // 05.00ab already belongs to A: EADDRINUSE on B's assign_domain.
    define_with(s, b, &[("assign_adapter", "5"), ("assign_domain", "0xab")]);
    expect_refused_start(
        s,
        b,
        "assign_domain",
        "0xab",
        "Address already in use (os error 98)",
        &[a],
    );
    assert_eq!(
        s.read(&format!("{TYPE_DIR}/available_instances")).unwrap(),
        "65535\n"
    );

    // 04.0004 still belongs to the host (apmask): EADDRNOTAVAIL.
    define_with(s, c, &[("assign_adapter", "4"), ("assign_domain", "4")]);
    expect_refused_start(
        s,
        c,
        "assign_domain",
        "4",
        "Cannot assign requested address (os error 99)",
        &[a],
    );

    // The refused ones stay defined, A alone is active and unchanged.
    assert_eq!(
        s.mdevctl(&["list"]).ok(),
        v.text(&list_line(a, " (defined)"))
    );
    let mut defined = [
        list_line(a, " (active)"),
        list_line(b, ""),
        list_line(c, ""),
    ];
    defined.sort();
    assert_eq!(s.mdevctl(&["list", "-d"]).ok(), v.text(&defined.concat()));
    assert_eq!(
        emulated_mdevs(s),
        vec![(a.to_string(), vec!["05.00ab".to_string()], "-".to_string())]
    );
    assert_eq!(
        s.read(&format!("devices/vfio_ap/matrix/{a}/matrix"))
            .unwrap(),
        "05.00ab\n"
    );

    // Clean up through mdevctl too.
    assert_eq!(s.mdevctl(&["stop", "-u", a]).ok(), "");
    for u in [a, b, c] {
        assert_eq!(s.mdevctl(&["undefine", "-u", u]).ok(), "");
    }
    expect_active(s, &[]);
    assert_eq!(s.ls("bus/mdev/devices").unwrap(), Vec::<String>::new());
    assert_eq!(
        fs::read_dir(s.config_dir().join("matrix")).unwrap().count(),
        0,
        "config files left behind"
    );
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn mdevctl_14_lifecycle_with_env_root() {
    let bin = mdevctl_14();
    if !prerequisites(bin.as_deref(), "mdevctl 1.4.0") {
        return;
    }
    let mut s = RootSession::new(bin.unwrap());
    lifecycle(&mut s, "5f2a4d3e-9c1b-4e8f-a6d7-0b1c2d3e4f50");
    s.finish();
}

/// mdevctl 1.4.0's define / start / stop / undefine through the mounted
/// tree of a host of each kernel generation (the issue on generations).
#[test]
fn mdevctl_14_lifecycle_on_every_generation() {
    let bin = mdevctl_14();
    if !prerequisites(bin.as_deref(), "mdevctl 1.4.0") {
        return;
    }
    for kernel in ["old", "old-5.15", "dyn", "new"] {
        let mut s = RootSession::of(bin.clone().unwrap(), kernel);
        lifecycle(&mut s, "5f2a4d3e-9c1b-4e8f-a6d7-0b1c2d3e4f51");
        s.finish();
    }
}

#[test]
fn mdevctl_14_refused_start_is_rolled_back() {
    let bin = mdevctl_14();
    if !prerequisites(bin.as_deref(), "mdevctl 1.4.0") {
        return;
    }
    let mut s = RootSession::new(bin.unwrap());
    refused_starts(
        &mut s,
        "0a6c8e10-2b3d-4f5a-8c7e-9d0f1a2b3c41",
        "0b7d9f21-3c4e-4a6b-9d8f-0e1a2b3c4d52",
        "0c8e0a32-4d5f-4b7c-8e9a-1f2b3c4d5e63",
    );
    s.finish();
}

#[test]
fn mdevctl_12_in_exec_namespace() {
    let bin = Path::new(MDEVCTL_12);
    if !prerequisites(Some(bin), "Debian's mdevctl 1.2.0") {
        return;
    }
    let u = "6e3b5f4a-0d2c-4f9a-b7e8-1c2d3e4f5061";
    let (a, b, c) = (
        "1d9f1b43-5e6a-4c8d-9f0b-2a3c4d5e6f74",
        "1e0a2c54-6f7b-4d9e-8a1c-3b4d5e6f7085",
        "1f1b3d65-7a8c-4e0f-9b2d-4c5e6f708196",
    );
    let mut s = ExecSession::new();
    lifecycle(&mut s, u);
    refused_starts(&mut s, a, b, c);
    s.finish();
    // The bind mount stayed in the private namespace.
    for id in [u, a, b, c] {
        let host = Path::new("/etc/mdevctl.d/matrix").join(id);
        assert!(!host.exists(), "{} leaked to the host", host.display());
    }
}
