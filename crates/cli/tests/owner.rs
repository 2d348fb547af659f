//! One owner of a host's state: CLI commands and the mounted tree change one
//! host, in one order, and no acknowledged change is lost, even with the
//! server killed at random.

mod common;
use common::{apmatrix as cli, fuse_usable, is_mounted, sh, Served};

use std::io::Read;
use std::path::{Path, PathBuf};

use apmatrix_model::{Host, HostState, MatrixAxis, Op};
use uuid::Uuid;

fn ok(host: &Path, args: &[&str]) -> String {
    common::succeeded(cli(host, args))
}

const M1: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
const M2: &str = "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0";
const M3: &str = "3b5ae7b1-a3a3-4d4d-8c5c-6e4b4e1a6c01";
const MDEVS: [&str; 3] = [M1, M2, M3];

/// A host with adapters 05 and 06 free for vfio_ap and three mdevs.
fn prepared_host() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, host, dir) = common::fresh_host();
    ok(&host, &["mask", "set", "apmask", "-5,-6"]);
    for m in MDEVS {
        ok(&host, &["mdev", "create", "--uuid", m]);
    }
    (tmp, host, dir)
}

/// The reported sequence, verbatim: before, the mount kept showing M1 as
/// `05.` and let 06.0004 into M2 as well, 10 rounds of 10.
#[test]
fn cli_changes_in_a_row_reach_the_tree_and_one_apqn_never_reaches_two_mdevs() {
    if !fuse_usable() {
        return;
    }
    let (_tmp, host, dir) = prepared_host();
    let _served = Served::start(&host, &dir);
    let m1 = dir.join("devices/vfio_ap/matrix").join(M1);
    let m2 = dir.join("devices/vfio_ap/matrix").join(M2);
    for round in 0..10 {
        ok(&host, &["mdev", "assign", M1, "-a", "5"]);
        std::fs::read_to_string(dir.join("bus/ap/apmask")).unwrap();
        ok(&host, &["mdev", "unassign", M1, "-a", "5"]);
        ok(&host, &["mdev", "assign", M1, "-a", "6", "-d", "4"]);
        let matrix = std::fs::read_to_string(m1.join("matrix")).unwrap();
        assert_eq!(matrix, "06.0004\n", "round {round}");
        let out = sh(&format!(
            "echo 6 > {m2}/assign_adapter && echo 4 > {m2}/assign_domain",
            m2 = m2.display()
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("Address already in use"),
            "round {round}: 06.0004 went to M2 too: {stderr}"
        );
        assert_eq!(std::fs::read_to_string(m2.join("matrix")).unwrap(), "06.\n");
        // the CLI agrees with the tree
        let shown = ok(&host, &["mdev", "show", M2]);
        assert!(shown.contains("adapters: 0x06\n"), "{shown}");
        // back to the start
        sh(&format!("echo 6 > {}/unassign_adapter", m2.display()));
        ok(&host, &["mdev", "unassign", M1, "-a", "6", "-d", "4"]);
    }
}

/// An independent reader of the state's files: the snapshot, and the
/// journal that continues it. Keeps what it parsed, keyed by the bytes.
struct FileReader {
    state: PathBuf,
    journal: PathBuf,
    snapshot: Vec<u8>,
    tag: String,
    base: Option<Host>,
    applied: Host,
    consumed: usize,
    journal_file: (u64, u64),
}

impl FileReader {
    fn new(state: &Path) -> FileReader {
        let mut journal = state.as_os_str().to_os_string();
        journal.push(".journal");
        FileReader {
            state: state.to_path_buf(),
            journal: PathBuf::from(journal),
            snapshot: Vec::new(),
            tag: String::new(),
            base: None,
            applied: Host::seed_example(),
            consumed: 0,
            journal_file: (0, 0),
        }
    }

    /// The host as the files hold it now.
    fn load(&mut self) -> Host {
        let bytes = std::fs::read(&self.state).unwrap();
        if bytes != self.snapshot || self.base.is_none() {
            let state: HostState = serde_json::from_slice(&bytes).unwrap();
            self.tag = state.saved_as.clone().unwrap_or_default();
            let host = Host::from_state(state).unwrap();
            self.applied = host.clone();
            self.base = Some(host);
            self.snapshot = bytes;
            self.consumed = 0;
        }
        let header = format!(
            "{{\"apmatrix_journal\":1,\"continues\":\"{}\"}}\n",
            self.tag
        );
        let journal = std::fs::File::open(&self.journal).ok().and_then(|mut f| {
            let mut head = vec![0; header.len()];
            f.read_exact(&mut head).ok()?;
            (head == header.as_bytes()).then_some(f)
        });
        let Some(mut journal) = journal else {
            // none, or a stale one
            self.applied = self.base.clone().unwrap();
            self.consumed = 0;
            return self.applied.clone();
        };
        use std::os::unix::fs::MetadataExt;
        let meta = journal.metadata().unwrap();
        let file = (meta.dev(), meta.ino());
        if self.consumed == 0 || file != self.journal_file || meta.len() < self.consumed as u64 {
            // a new journal, or one cut back: from its first operation
            self.applied = self.base.clone().unwrap();
            self.consumed = header.len();
            self.journal_file = file;
        }
        use std::io::{Seek, SeekFrom};
        journal.seek(SeekFrom::Start(self.consumed as u64)).unwrap();
        let mut rest = Vec::new();
        journal.read_to_end(&mut rest).unwrap();
        for line in rest.split_inclusive(|b| *b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            let op: Op = serde_json::from_slice(line).unwrap();
            self.applied.apply(&op).unwrap();
            self.consumed += line.len();
        }
        self.applied.clone()
    }
}

/// No APQN in two mdevs, none both the host's (by the masks) and assigned:
/// computed from the mdevs' own adapter and domain sets, not by the model.
fn isolation_holds(host: &Host) -> Result<(), String> {
    let mdevs: Vec<_> = host.mdevs().collect();
    for (i, a) in mdevs.iter().enumerate() {
        for ad in a.adapters.iter() {
            for d in a.domains.iter() {
                if host.apmask().contains(ad) && host.aqmask().contains(d) {
                    return Err(format!("{ad:02x}.{d:04x} is the host's and in {}", a.uuid));
                }
                for b in &mdevs[i + 1..] {
                    if b.adapters.contains(ad) && b.domains.contains(d) {
                        return Err(format!("{ad:02x}.{d:04x} is in {} and {}", a.uuid, b.uuid));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A small deterministic generator (the soak must replay the same way).
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One change, through one door.
#[derive(Debug, Clone)]
enum Change {
    /// `echo VALUE > ATTR` through the tree (an mdev's or a mask).
    Tree { path: String, value: String },
    /// `apmatrix mdev assign|unassign M -a|-d ID`.
    Cli {
        assign: bool,
        mdev: usize,
        axis: MatrixAxis,
        id: u8,
    },
}

impl Change {
    /// A CLI change's (assign, mdev, axis, id).
    fn cli_parts(&self) -> (bool, usize, MatrixAxis, u8) {
        match *self {
            Change::Cli {
                assign,
                mdev,
                axis,
                id,
            } => (assign, mdev, axis, id),
            Change::Tree { .. } => unreachable!("not a CLI change"),
        }
    }
}

const ADAPTERS: [u8; 3] = [4, 5, 6];
const DOMAINS: [u8; 4] = [4, 5, 6, 0x47];

fn pick(rng: &mut Rng, cli_share: u64) -> Change {
    let mdev = rng.next(3) as usize;
    let assign = rng.next(2) == 0;
    let adapter = rng.next(2) == 0;
    let id = if adapter {
        ADAPTERS[rng.next(3) as usize]
    } else {
        DOMAINS[rng.next(4) as usize]
    };
    if rng.next(1000) < cli_share {
        let axis = if adapter {
            MatrixAxis::Adapter
        } else {
            MatrixAxis::Domain
        };
        return Change::Cli {
            assign,
            mdev,
            axis,
            id,
        };
    }
    if rng.next(20) == 0 {
        // the host takes an id back, or gives it up
        let mask = if adapter { "apmask" } else { "aqmask" };
        let sign = if assign { '+' } else { '-' };
        return Change::Tree {
            path: format!("bus/ap/{mask}"),
            value: format!("{sign}{id}"),
        };
    }
    let verb = if assign { "assign" } else { "unassign" };
    let axis = if adapter { "adapter" } else { "domain" };
    Change::Tree {
        path: format!("devices/vfio_ap/matrix/{}/{verb}_{axis}", MDEVS[mdev]),
        value: id.to_string(),
    }
}

/// What the change does to a host: the errno of a refusal, if refused.
fn predict(host: &mut Host, change: &Change) -> Option<i32> {
    match change {
        Change::Tree { path, value } => apmatrix_sysfs::write_path(host, path, value.as_bytes())
            .err()
            .map(|e| e.errno().code()),
        Change::Cli { .. } => {
            let (assign, mdev, axis, id) = change.cli_parts();
            let uuid: Uuid = MDEVS[mdev].parse().unwrap();
            let r = if assign {
                host.assign(&uuid, axis, u64::from(id))
            } else {
                host.unassign(&uuid, axis, u64::from(id))
            };
            r.err().map(|e| e.errno().code())
        }
    }
}

/// How a change went: acknowledged (with its refusal, if any), or unknown
/// because the server died under it.
enum Outcome {
    Acknowledged(Option<i32>),
    Unknown,
}

fn perform(host: &Path, tree: &Path, change: &Change) -> Outcome {
    match change {
        Change::Tree { path, value } => {
            use std::io::Write;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(tree.join(path));
            let mut file = match file {
                Ok(f) => f,
                Err(_) => return Outcome::Unknown,
            };
            match file.write_all(value.as_bytes()) {
                Ok(_) => Outcome::Acknowledged(None),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOTCONN | libc::ECONNABORTED | libc::EIO) | None => {
                        Outcome::Unknown
                    }
                    Some(errno) => Outcome::Acknowledged(Some(errno)),
                },
            }
        }
        Change::Cli { .. } => {
            let (assign, mdev, axis, id) = change.cli_parts();
            let flag = if axis == MatrixAxis::Adapter {
                "-a"
            } else {
                "-d"
            };
            let verb = if assign { "assign" } else { "unassign" };
            let id = id.to_string();
            let out = cli(host, &["mdev", verb, MDEVS[mdev], flag, &id]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => Outcome::Acknowledged(None),
                Some(1) => match errno_in(&stderr) {
                    Some(errno) => Outcome::Acknowledged(Some(errno)),
                    None => Outcome::Unknown, // the server died under it
                },
                _ => Outcome::Unknown,
            }
        }
    }
}

/// The errno a CLI refusal names ("apmatrix: EADDRINUSE: ...").
fn errno_in(stderr: &str) -> Option<i32> {
    let name = stderr.split(": ").nth(1)?;
    let errno = match name {
        "EADDRINUSE" => libc::EADDRINUSE,
        "EADDRNOTAVAIL" => libc::EADDRNOTAVAIL,
        "EBUSY" => libc::EBUSY,
        "ENODEV" => libc::ENODEV,
        "EINVAL" => libc::EINVAL,
        "ENOENT" => libc::ENOENT,
        "EPERM" => libc::EPERM,
        "ERANGE" => libc::ERANGE,
        _ => return None,
    };
    Some(errno)
}

/// Where the tree shows what a change touched.
fn shown_at(change: &Change) -> String {
    match change {
        Change::Tree { path, .. } if path.starts_with("bus/") => path.clone(),
        Change::Tree { path, .. } => {
            let mdev = path.rsplit('/').nth(1).unwrap();
            format!("devices/vfio_ap/matrix/{mdev}/matrix")
        }
        Change::Cli { mdev, .. } => format!("devices/vfio_ap/matrix/{}/matrix", MDEVS[*mdev]),
    }
}

/// Every path the soak checks: the masks and every mdev's matrix.
fn all_shown() -> Vec<String> {
    let mut paths = vec!["bus/ap/apmask".to_string(), "bus/ap/aqmask".to_string()];
    for m in MDEVS {
        paths.push(format!("devices/vfio_ap/matrix/{m}/matrix"));
    }
    paths
}

/// The tree shows `host` at these paths, byte for byte.
fn tree_shows(tree: &Path, host: &Host, paths: Vec<String>) -> Result<(), String> {
    for p in paths {
        let shown = std::fs::read_to_string(tree.join(&p)).map_err(|e| format!("{p}: {e}"))?;
        let want = apmatrix_sysfs::read_path(host, &p).unwrap();
        if shown != want {
            return Err(format!(
                "{p}: the tree shows {shown:?}, the host is {want:?}"
            ));
        }
    }
    Ok(())
}

struct Server {
    host: PathBuf,
    dir: PathBuf,
    served: Option<Served>,
    restarts: u32,
}

impl Server {
    fn ensure_running(&mut self) {
        if let Some(s) = &mut self.served {
            if s.running() && std::fs::metadata(self.dir.join("bus/ap")).is_ok() {
                return;
            }
        }
        self.served = None; // reaps it and unmounts a dead tree
        assert!(!is_mounted(&self.dir));
        self.served = Some(Served::start(&self.host, &self.dir));
        self.restarts += 1;
    }
}

/// CLI commands and tree writes, interleaved at random, with the server
/// killed (`kill -9`) at random moments, some while a command is in flight.
/// After every acknowledged change the files (read fresh) and the tree both
/// show it, and isolation holds; after a change whose answer was lost with
/// the server, the files hold either the host before it or after it.
#[test]
fn soak_cli_and_tree_with_random_kill_9_loses_nothing_and_never_shares_an_apqn() {
    if !fuse_usable() {
        return;
    }
    let operations: u64 = std::env::var("APMATRIX_SOAK_OPERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("APMATRIX_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_a9a9_0001);
    let (_tmp, host, dir) = prepared_host();
    let mut reader = FileReader::new(&host);
    let mut expected = reader.load();
    let mut server = Server {
        host: host.clone(),
        dir: dir.clone(),
        served: None,
        restarts: 0,
    };
    let mut rng = Rng(seed);
    let (mut by_cli, mut refused, mut unknown, mut kills) = (0u64, 0u64, 0u64, 0u64);
    // about 1 change in 50 goes through the CLI: each is a process
    let cli_share = 20;
    for n in 0..operations {
        server.ensure_running();
        let change = pick(&mut rng, cli_share);
        let mut after = expected.clone();
        let predicted = predict(&mut after, &change);
        // now and then the server dies: before the change, or under a
        // command in flight
        let kill_now = rng.next(400) == 0;
        let outcome = if kill_now && matches!(change, Change::Cli { .. }) {
            let pid = server.served.as_ref().unwrap().pid() as i32;
            let delay = rng.next(8_000);
            let killer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_micros(delay));
                // SAFETY: kill(2) of our own child's pid (reaped only later).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            });
            let outcome = perform(&host, &dir, &change);
            killer.join().unwrap();
            // reaped before going on, so the next round finds it dead
            server.served.as_mut().unwrap().signal(libc::SIGKILL);
            kills += 1;
            outcome
        } else {
            if kill_now {
                server.served.as_mut().unwrap().signal(libc::SIGKILL);
                kills += 1;
            }
            perform(&host, &dir, &change)
        };
        if matches!(change, Change::Cli { .. }) {
            by_cli += 1;
        }
        match outcome {
            Outcome::Acknowledged(errno) => {
                assert_eq!(
                    errno, predicted,
                    "operation {n}: {change:?} answered {errno:?}, the model says {predicted:?}"
                );
                refused += u64::from(errno.is_some());
                expected = after;
            }
            Outcome::Unknown => {
                unknown += 1;
                server.ensure_running();
                let found = reader.load();
                assert!(
                    found == expected || found == after,
                    "operation {n}: after {change:?} lost with the server, the files hold \
                     neither the host before it nor the host after it"
                );
                expected = found;
            }
        }
        let found = reader.load();
        assert!(
            found == expected,
            "operation {n}: {change:?} was acknowledged but the files do not hold it"
        );
        if let Err(e) = isolation_holds(&found) {
            panic!("operation {n}: isolation broken: {e}");
        }
        // the tree too (what the change touched; everything now and then),
        // unless the server was killed this round
        if !kill_now {
            let paths = if n % 100 == 0 {
                all_shown()
            } else {
                vec![shown_at(&change)]
            };
            if let Err(e) = tree_shows(&dir, &expected, paths) {
                panic!("operation {n}: after {change:?}: {e}");
            }
        }
    }
    eprintln!(
        "soak: {operations} changes ({by_cli} by the CLI, {refused} refused, {unknown} lost \
         with the server), {kills} kills, {} server starts",
        server.restarts
    );
    assert!(
        kills > 0 && by_cli > 0 && refused > 0,
        "the soak did not mix"
    );
}
