//! Issue 13: once a change is acknowledged (write(2) returned, the CLI
//! exited 0), no reader sees the tree as it was before it. Today the server
//! lets the kernel cache nothing (zero TTLs, direct I/O), so this holds
//! trivially; once names, attributes, listings and contents are cached, it
//! holds only if every change invalidates what it altered before it is
//! acknowledged. A cache that is never invalidated fails this test within a
//! few changes.
//!
//! How: a writer (the test) makes a fixed sequence of changes, alternating
//! doors (a write through the tree, a CLI command), and after each
//! acknowledgement publishes its number k in a file. A reader process loops:
//! it reads the published k, looks at the tree with plain open/read/close and
//! opendir/readdir, reads the published k again, and records all three. The
//! expected tree of every state S_0..S_N comes from the model, in this
//! process, with the same operations applied: the oracle. Each item of an
//! observation must show what some state from S_{k before} to S_{k after + 1}
//! shows there (the + 1 is a change in flight: applied, not yet
//! acknowledged). Showing only what an older state showed is a stale read.
//! The verdict compares values, never times.
//!
//! Items are judged one by one, not as one snapshot: the reader reads them in
//! turn, and a change may land between two of its reads.
//!
//! After each acknowledgement the writer waits until the reader has made a
//! whole pass begun after it, then makes the next change while the reader
//! starts its next pass. So every state is read right after it was
//! acknowledged (where a missing invalidation shows at once), passes overlap
//! changes in flight, and the test cannot pass without reading. The wait
//! decides nothing.
//!
//! Tried against a cache that is never invalidated (the server hacked to
//! answer with 60 s TTLs and FOPEN_KEEP_CACHE, and FOPEN_CACHE_DIR for
//! directories): both tests fail, at the first or second change.
//!
//! The soak: `APMATRIX_STALENESS_CHANGES=5000 cargo test --release -p
//! apmatrix --test staleness -- --nocapture` (default 300).

mod common;
use common::{apmatrix as cli, fuse_usable, Served, BIN};

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apmatrix_model::{Host, HostState, MaskKind, MatrixAxis};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the reader looks at, relative to the sysfs root.
const APMASK: &str = "bus/ap/apmask";
const AVAILABLE_INSTANCES: &str =
    "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances";
/// The queues bound to vfio_ap: a directory listing.
const VFIO_AP_QUEUES: &str = "bus/ap/drivers/vfio_ap";
/// The matrix device: its listing names the mdevs.
const MATRIX_DIR: &str = "devices/vfio_ap/matrix";
const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";

/// The env variable that makes this test binary the reader (its value: the
/// control directory), and the one naming the tree's root for it.
const READER_ENV: &str = "APMATRIX_STALENESS_READER";
const ROOT_ENV: &str = "APMATRIX_STALENESS_ROOT";

/// The seed host's adapters and usage domains, used in turn.
const ADAPTERS: [u8; 3] = [4, 5, 6];
const DOMAINS: [u8; 6] = [4, 5, 6, 0x47, 0xab, 0xff];

/// The n-th mdev of the run. A UUID is never used twice, so a listing or a
/// matrix file of one mdev's life is never what another's showed.
fn mdev_uuid(n: usize) -> Uuid {
    format!("{MDEV_UUID_PREFIX}{n:012x}").parse().unwrap()
}

const MDEV_UUID_PREFIX: &str = "5ea1e000-0000-4000-8000-";

/// The number of a run's mdev from its name in the matrix directory.
fn mdev_number(name: &str) -> Option<usize> {
    let n = usize::from_str_radix(name.strip_prefix(MDEV_UUID_PREFIX)?, 16).ok()?;
    (mdev_uuid(n).to_string() == name).then_some(n)
}

fn matrix_file(n: usize) -> String {
    format!("{MATRIX_DIR}/{}/matrix", mdev_uuid(n))
}

/// A path with the mdev's UUID left out: what the summary of a failed run
/// counts by.
fn item_kind(path: &str) -> String {
    match path.split('/').nth(3) {
        Some(name) if mdev_number(name).is_some() => path.replace(name, "<mdev>"),
        _ => path.to_string(),
    }
}

/// What one read showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Seen {
    /// A file's contents.
    Text(String),
    /// A directory's names, sorted.
    Names(Vec<String>),
    /// ENOENT: the file or directory is not there.
    Missing,
    /// Any other error (never what a state shows).
    Failed(String),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // NULs after the text: a page read past the end of the contents
            Seen::Text(t) if t.ends_with('\0') => {
                let text = t.trim_end_matches('\0');
                write!(f, "{text:?} and {} NUL bytes", t.len() - text.len())
            }
            Seen::Text(t) => write!(f, "{t:?}"),
            Seen::Names(n) => write!(f, "[{}]", n.join(" ")),
            Seen::Missing => f.write_str("ENOENT"),
            Seen::Failed(e) => write!(f, "error {e}"),
        }
    }
}

/// One pass of the reader over the tree.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The last acknowledged change before the pass began.
    k_before: usize,
    /// The last acknowledged change after the pass ended.
    k_after: usize,
    /// What each read showed, in the order read.
    items: Vec<(String, Seen)>,
}

// ---------------------------------------------------------------------------
// The changes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// A write(2) to an attribute of the tree.
    Tree,
    /// An `apmatrix` command.
    Cli,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Create(usize),
    /// The host takes an adapter back (`+`) or gives it up (`-`).
    Apmask(char, u8),
    Assign(usize, MatrixAxis, u8),
    Unassign(usize, MatrixAxis, u8),
    Remove(usize),
}

#[derive(Debug, Clone, Copy)]
struct Change {
    step: Step,
    door: Door,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.door {
            Door::Tree => {
                let (path, value) = self.tree_write();
                write!(f, "echo {} > {path}", value.trim_end())
            }
            Door::Cli => write!(f, "apmatrix {}", self.cli_args().join(" ")),
        }
    }
}

fn axis_word(axis: MatrixAxis) -> &'static str {
    match axis {
        MatrixAxis::Adapter => "adapter",
        MatrixAxis::Domain => "domain",
        MatrixAxis::ControlDomain => "control_domain",
    }
}

fn axis_flag(axis: MatrixAxis) -> &'static str {
    match axis {
        MatrixAxis::Adapter => "-a",
        MatrixAxis::Domain => "-d",
        MatrixAxis::ControlDomain => "-c",
    }
}

impl Change {
    /// The attribute and the bytes of the change through the tree.
    fn tree_write(&self) -> (String, String) {
        let attr = |n: usize, name: &str| format!("{MATRIX_DIR}/{}/{name}", mdev_uuid(n));
        match self.step {
            Step::Create(n) => (CREATE.into(), format!("{}\n", mdev_uuid(n))),
            Step::Apmask(sign, a) => (APMASK.into(), format!("{sign}{a}\n")),
            Step::Assign(n, axis, id) => (
                attr(n, &format!("assign_{}", axis_word(axis))),
                format!("{id}\n"),
            ),
            Step::Unassign(n, axis, id) => (
                attr(n, &format!("unassign_{}", axis_word(axis))),
                format!("{id}\n"),
            ),
            Step::Remove(n) => (attr(n, "remove"), "1\n".into()),
        }
    }

    /// The arguments of the same change as a CLI command.
    fn cli_args(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect();
        match self.step {
            Step::Create(n) => s(&["mdev", "create", "--uuid", &mdev_uuid(n).to_string()]),
            Step::Apmask(sign, a) => s(&["mask", "set", "apmask", &format!("{sign}{a}")]),
            Step::Assign(n, axis, id) | Step::Unassign(n, axis, id) => {
                let verb = if matches!(self.step, Step::Assign(..)) {
                    "assign"
                } else {
                    "unassign"
                };
                let (uuid, id) = (mdev_uuid(n).to_string(), id.to_string());
                s(&["mdev", verb, &uuid, axis_flag(axis), &id])
            }
            Step::Remove(n) => s(&["mdev", "remove", &mdev_uuid(n).to_string()]),
        }
    }

    /// The change, applied to the model as its door applies it to the
    /// served host: a tree write as the server parses it, a command as the
    /// CLI computes it.
    fn apply_to_model(&self, host: &mut Host) -> Result<(), String> {
        if self.door == Door::Tree {
            let (path, value) = self.tree_write();
            return apmatrix_sysfs::write_path(host, &path, value.as_bytes())
                .map(drop)
                .map_err(|e| e.to_string());
        }
        let r = match self.step {
            Step::Create(n) => host
                .write_create(mdev_uuid(n).to_string().as_bytes())
                .map(drop),
            Step::Apmask(sign, a) => host
                .write_mask(MaskKind::Apmask, format!("{sign}{a}").as_bytes())
                .map(drop),
            Step::Assign(n, axis, id) => host.assign(&mdev_uuid(n), axis, id.into()).map(drop),
            Step::Unassign(n, axis, id) => host.unassign(&mdev_uuid(n), axis, id.into()).map(drop),
            Step::Remove(n) => host.remove_mdev(&mdev_uuid(n)),
        };
        r.map_err(|e| e.to_string())
    }

    /// Makes the change on the served host; Ok once it is acknowledged.
    fn perform(&self, host: &Path, tree: Option<&Path>) -> Result<(), String> {
        match self.door {
            Door::Tree => {
                let tree = tree.expect("a tree write needs the mounted tree");
                let (path, value) = self.tree_write();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(tree.join(&path))
                    .map_err(|e| format!("open: {e}"))?;
                file.write_all(value.as_bytes())
                    .map_err(|e| format!("write: {e}"))
            }
            Door::Cli => {
                let args = self.cli_args();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = cli(host, &args);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            }
        }
    }
}

/// N changes in cycles. Cycle c brings mdev c up while mdev c - 1 still
/// holds its APQN, then takes mdev c - 1 down:
///
/// create c; apmask -a_c; assign adapter a_c; assign domain d_c;
/// unassign adapter a_(c-1) from c - 1; apmask +a_(c-1); remove c - 1
///
/// Every step alters an item the reader looks at (the listings, the
/// available instances, a matrix, the apmask). Doors alternate change by
/// change; with cycles of 7, each kind of step goes through both. With
/// `cli_only`, every change is a command.
fn schedule(n: usize, cli_only: bool) -> Vec<Change> {
    let adapter = |c: usize| ADAPTERS[c % ADAPTERS.len()];
    let domain = |c: usize| DOMAINS[c % DOMAINS.len()];
    let mut steps = Vec::new();
    for c in 0.. {
        if steps.len() >= n {
            break;
        }
        steps.extend([
            Step::Create(c),
            Step::Apmask('-', adapter(c)),
            Step::Assign(c, MatrixAxis::Adapter, adapter(c)),
            Step::Assign(c, MatrixAxis::Domain, domain(c)),
        ]);
        if c > 0 {
            steps.extend([
                Step::Unassign(c - 1, MatrixAxis::Adapter, adapter(c - 1)),
                Step::Apmask('+', adapter(c - 1)),
                Step::Remove(c - 1),
            ]);
        }
    }
    steps.truncate(n);
    steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| Change {
            step,
            door: if cli_only || i % 2 == 1 {
                Door::Cli
            } else {
                Door::Tree
            },
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The oracle

/// What the tree shows in one state, at every path the reader may read:
/// the fixed items, and the matrix of every mdev there is. Any other
/// mdev's matrix is ENOENT.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected(BTreeMap<String, Seen>);

impl Expected {
    fn of(host: &Host) -> Expected {
        let text = |p: &str| Seen::Text(apmatrix_sysfs::read_path(host, p).unwrap());
        let names = |p: &str| Seen::Names(apmatrix_sysfs::list_path(host, p).unwrap());
        let mut shown = BTreeMap::new();
        shown.insert(APMASK.to_string(), text(APMASK));
        shown.insert(AVAILABLE_INSTANCES.to_string(), text(AVAILABLE_INSTANCES));
        shown.insert(VFIO_AP_QUEUES.to_string(), names(VFIO_AP_QUEUES));
        shown.insert(MATRIX_DIR.to_string(), names(MATRIX_DIR));
        for m in host.mdevs() {
            let path = format!("{MATRIX_DIR}/{}/matrix", m.uuid);
            shown.insert(path.clone(), text(&path));
        }
        Expected(shown)
    }

    fn at(&self, path: &str) -> Seen {
        match self.0.get(path) {
            Some(seen) => seen.clone(),
            None if path.starts_with(MATRIX_DIR) && path.ends_with("/matrix") => Seen::Missing,
            None => panic!("the reader read {path}, which the oracle does not know"),
        }
    }
}

/// The expected tree of every state S_0 (the seed host) .. S_N, from the
/// model. Fails if the schedule is wrong: a change the model refuses, or
/// one the reader could not see.
fn expected_states(seed: &Host, changes: &[Change]) -> Vec<Expected> {
    let mut host = seed.clone();
    let mut states = vec![Expected::of(&host)];
    for (i, change) in changes.iter().enumerate() {
        let k = i + 1;
        if let Err(e) = change.apply_to_model(&mut host) {
            panic!("the schedule is wrong: the model refuses change {k} ({change}): {e}");
        }
        let state = Expected::of(&host);
        assert_ne!(
            &state,
            states.last().unwrap(),
            "the schedule is wrong: change {k} ({change}) alters nothing the reader sees"
        );
        states.push(state);
    }
    states
}

/// The host as `apmatrix host init` saved it.
fn load_host(path: &Path) -> Host {
    let state: HostState = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    Host::from_state(state).unwrap()
}

// ---------------------------------------------------------------------------
// The reader process

/// The control files shared by the writer and the reader (plain files in
/// the test's temporary directory, outside the tree).
struct Control {
    dir: PathBuf,
}

impl Control {
    /// Replaces a control file at once (write, then rename), so that a
    /// reader sees the old or the new contents, never a part.
    fn put(&self, name: &str, text: &str) {
        let tmp = self.dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }

    fn get(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// The writer: change k is acknowledged.
    fn publish(&self, k: usize) {
        self.put("published", &format!("{k}\n"));
    }

    /// The last acknowledged change.
    fn published(&self) -> usize {
        let text = self.get("published").expect("the writer publishes first");
        text.trim().parse().unwrap()
    }

    /// The writer: the run is over (or failed); the reader stops.
    fn stop(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("stop"), "")
    }

    fn stopped(&self) -> bool {
        self.dir.join("stop").exists()
    }

    /// The reader: it finished a pass that began after change k was
    /// acknowledged.
    fn report_observed(&self, k: usize) {
        self.put("observed", &format!("{k}\n"));
    }

    fn observed(&self) -> Option<usize> {
        self.get("observed")?.trim().parse().ok()
    }

    fn records(&self) -> PathBuf {
        self.dir.join("records.jsonl")
    }
}

/// open(2), read(2) to the end, close(2): no stat(2) (as std's
/// `read_to_string` makes), since a stat fetches the attributes again and
/// so could hide a stale page cache.
fn read_file(path: &Path) -> Seen {
    let read = std::fs::File::open(path).and_then(|mut file| {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(bytes),
                n => bytes.extend_from_slice(&buf[..n]),
            }
        }
    });
    match read {
        Ok(bytes) => Seen::Text(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Missing,
        Err(e) => Seen::Failed(e.to_string()),
    }
}

fn read_dir(path: &Path) -> Seen {
    let names = std::fs::read_dir(path).and_then(|entries| {
        entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
    });
    match names {
        Ok(mut names) => {
            names.sort();
            Seen::Names(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seen::Missing,
        Err(e) => Seen::Failed(e.to_string()),
    }
}

/// One pass over the tree, as a tool would make it: fresh opens every
/// time. Besides the matrix of every mdev listed, it reads the matrix of
/// the mdev to come, so that a name the kernel remembers as missing would
/// show after the mdev is created.
fn observe(root: &Path) -> Vec<(String, Seen)> {
    let mut items = Vec::new();
    let mut read = |path: &str, seen: Seen| {
        items.push((path.to_string(), seen.clone()));
        seen
    };
    read(APMASK, read_file(&root.join(APMASK)));
    read(
        AVAILABLE_INSTANCES,
        read_file(&root.join(AVAILABLE_INSTANCES)),
    );
    read(VFIO_AP_QUEUES, read_dir(&root.join(VFIO_AP_QUEUES)));
    let listed = match read(MATRIX_DIR, read_dir(&root.join(MATRIX_DIR))) {
        Seen::Names(names) => names.iter().filter_map(|n| mdev_number(n)).collect(),
        _ => Vec::new(),
    };
    for &n in &listed {
        let path = matrix_file(n);
        read(&path, read_file(&root.join(&path)));
    }
    let next = listed.iter().max().map_or(0, |n| n + 1);
    let path = matrix_file(next);
    read(&path, read_file(&root.join(&path)));
    items
}

/// The reader process's loop, until the writer says the run is over.
fn run_reader(control: Control, root: &Path) {
    let mut records = std::io::BufWriter::new(std::fs::File::create(control.records()).unwrap());
    while !control.stopped() {
        let k_before = control.published();
        let items = observe(root);
        let k_after = control.published();
        let record = Record {
            k_before,
            k_after,
            items,
        };
        serde_json::to_writer(&mut records, &record).unwrap();
        records.write_all(b"\n").unwrap();
        control.report_observed(k_before);
    }
    records.flush().unwrap();
}

/// Not a test of its own: the reader process of the tests below, which
/// run this binary again with READER_ENV set. Without it, does nothing.
#[test]
fn reader_process() {
    let Some(control) = std::env::var_os(READER_ENV) else {
        return;
    };
    let root = std::env::var_os(ROOT_ENV).expect("the tree's root");
    run_reader(
        Control {
            dir: PathBuf::from(control),
        },
        Path::new(&root),
    );
}

/// This test binary, run as the reader (after `wrapper`, such as
/// `apmatrix exec ... --`), its output going to files of the control
/// directory.
fn reader_command(control: &Control, root: &Path, wrapper: &[&str]) -> Command {
    let mut argv: Vec<std::ffi::OsString> = wrapper.iter().map(Into::into).collect();
    argv.push(std::env::current_exe().unwrap().into());
    for arg in [
        "--exact",
        "reader_process",
        "--nocapture",
        "--test-threads=1",
    ] {
        argv.push(arg.into());
    }
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env(READER_ENV, &control.dir)
        .env(ROOT_ENV, root)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(control.dir.join("reader.stdout")).unwrap())
        .stderr(std::fs::File::create(control.dir.join("reader.stderr")).unwrap());
    cmd
}

// ---------------------------------------------------------------------------
// The writer and the verdict

/// How long the writer waits for the reader before calling it stuck: a
/// guard against hanging, not part of the verdict.
const STUCK: Duration = Duration::from_secs(120);

fn changes_wanted() -> usize {
    std::env::var("APMATRIX_STALENESS_CHANGES")
        .ok()
        .map(|v| v.parse().expect("APMATRIX_STALENESS_CHANGES: a number"))
        .unwrap_or(300)
}

/// Waits until the reader has finished a pass that began after change k
/// was acknowledged. So every acknowledged state is read right after its
/// acknowledgement (where a missing invalidation shows), and the reader's
/// next pass overlaps the next change. This decides nothing.
fn wait_for_observation(control: &Control, reader: &mut Child, k: usize) {
    let since = Instant::now();
    while control.observed().is_none_or(|seen| seen < k) {
        if let Some(status) = reader.try_wait().unwrap() {
            panic!(
                "the reader exited ({status}) before observing state {k}: {}",
                control.get("reader.stderr").unwrap_or_default()
            );
        }
        assert!(
            since.elapsed() < STUCK,
            "the reader made no pass over state {k} in {STUCK:?}"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// What one run found.
#[derive(Default)]
struct Figures {
    changes: usize,
    by_tree: usize,
    by_cli: usize,
    observations: usize,
    /// Passes that were the first to begin after an acknowledgement.
    first_after_ack: usize,
    /// Passes during which a change was acknowledged.
    across_ack: usize,
    /// Passes that saw a change before it was acknowledged.
    saw_in_flight: usize,
    stale: usize,
    unknown: usize,
    took: Duration,
}

/// Judges every record against the expected states; Err tells the
/// violations found, by path, and the first few in full.
fn verdict(
    records: &[Record],
    states: &[Expected],
    changes: &[Change],
    figures: &mut Figures,
) -> Result<(), String> {
    let last = states.len() - 1;
    let mut problems = Vec::new();
    // path -> (stale reads, reads of no state, first record)
    let mut by_path: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut previous_k = None;
    for (r, record) in records.iter().enumerate() {
        let (lo, hi) = (record.k_before, (record.k_after + 1).min(last));
        assert!(lo <= record.k_after && record.k_after <= last, "record {r}");
        if previous_k != Some(lo) {
            figures.first_after_ack += 1;
        }
        previous_k = Some(lo);
        figures.across_ack += usize::from(record.k_after > lo);
        let mut in_flight = false;
        for (path, seen) in &record.items {
            if let Some(j) = (lo..=hi).find(|&j| states[j].at(path) == *seen) {
                in_flight |= j > record.k_after;
                continue;
            }
            let counts = by_path.entry(item_kind(path)).or_insert((0, 0, r));
            let what = match (0..lo).rev().find(|&j| states[j].at(path) == *seen) {
                Some(j) => {
                    figures.stale += 1;
                    counts.0 += 1;
                    // the change that altered this path after S_j: the one
                    // whose invalidation did not reach the reader
                    let altered = (j + 1..=lo).find(|&m| states[m].at(path) != *seen).unwrap();
                    format!(
                        "STALE READ: that is S_{j}'s, but change {altered} ({}) altered it and \
                         was acknowledged before the pass began",
                        changes[altered - 1]
                    )
                }
                None => {
                    figures.unknown += 1;
                    counts.1 += 1;
                    "no state of the run shows that".to_string()
                }
            };
            let window: Vec<String> = (lo..=hi)
                .map(|j| format!("    S_{j}: {}", states[j].at(path)))
                .collect();
            problems.push(format!(
                "record {r} (published k = {lo} before the pass, {} after): {path} showed \
                 {seen}; {what}; the states it may show:\n{}",
                record.k_after,
                window.join("\n")
            ));
        }
        figures.saw_in_flight += usize::from(in_flight);
    }
    if problems.is_empty() {
        return Ok(());
    }
    let summary: Vec<String> = by_path
        .iter()
        .map(|(path, (stale, unknown, first))| {
            format!("  {path}: {stale} stale, {unknown} of no state (first in record {first})")
        })
        .collect();
    let shown = problems.len().min(5);
    Err(format!(
        "{} stale reads and {} reads of no state, in {} records:\n{}\nthe first {shown}:\n{}",
        figures.stale,
        figures.unknown,
        records.len(),
        summary.join("\n"),
        problems[..shown].join("\n")
    ))
}

/// Where the tree is served for a run.
enum Serve {
    /// `apmatrix mount DIR`: the writer uses both doors.
    Mount,
    /// `apmatrix exec -- READER`: the reader reads /sys in exec's mount
    /// namespace, the writer uses the CLI only (through exec's server).
    Exec,
}

/// The reader process (or the `apmatrix exec` running it). If a failed
/// run leaves it running, it is told to stop, given a moment to (exec then
/// reaps its own child), and killed, so that nothing outlives the test.
struct Reaped<'a> {
    child: Child,
    control: &'a Control,
}

impl Drop for Reaped<'_> {
    fn drop(&mut self) {
        let _ = self.control.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn run(name: &str, serve: Serve) {
    let n = changes_wanted();
    let started = Instant::now();
    let (tmp, host, dir) = common::fresh_host();
    let changes = schedule(n, matches!(serve, Serve::Exec));
    let states = expected_states(&load_host(&host), &changes);
    let control = Control {
        dir: tmp.path().join("control"),
    };
    std::fs::create_dir(&control.dir).unwrap();
    control.publish(0);

    let (_mounted, tree, reader) = match serve {
        Serve::Mount => {
            // A scan of its own would be a change the oracle does not know.
            let mounted = Served::start_with(&host, &dir, &["--no-periodic-scans"]);
            let reader = reader_command(&control, &dir, &[]).spawn().unwrap();
            (Some(mounted), Some(dir.as_path()), reader)
        }
        Serve::Exec => {
            let h = host.to_str().unwrap();
            let wrapper = [BIN, "--host", h, "exec", "--no-periodic-scans", "--"];
            let reader = reader_command(&control, Path::new("/sys"), &wrapper)
                .spawn()
                .unwrap();
            (None, None, reader)
        }
    };
    let mut reader = Reaped {
        child: reader,
        control: &control,
    };

    // S_0 is read before the first change (under exec: the tree is up).
    wait_for_observation(&control, &mut reader.child, 0);
    let mut figures = Figures {
        changes: n,
        ..Figures::default()
    };
    for (i, change) in changes.iter().enumerate() {
        let k = i + 1;
        if let Err(e) = change.perform(&host, tree) {
            panic!("{name}: change {k} ({change}) was refused: {e}");
        }
        match change.door {
            Door::Tree => figures.by_tree += 1,
            Door::Cli => figures.by_cli += 1,
        }
        control.publish(k);
        wait_for_observation(&control, &mut reader.child, k);
    }
    control.stop().unwrap();
    let status = reader.child.wait().unwrap();
    assert!(
        status.success(),
        "{name}: the reader failed ({status}): {}{}",
        control.get("reader.stdout").unwrap_or_default(),
        control.get("reader.stderr").unwrap_or_default()
    );

    let records: Vec<Record> =
        std::io::BufReader::new(std::fs::File::open(control.records()).unwrap())
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
    figures.observations = records.len();
    let judged = verdict(&records, &states, &changes, &mut figures);
    figures.took = started.elapsed();
    eprintln!(
        "staleness ({name}): {} changes ({} through the tree, {} by the CLI), {} observations \
         ({} first after an acknowledgement, {} across one, {} saw a change in flight), \
         {} stale reads, {} reads of no state, {:.1?}",
        figures.changes,
        figures.by_tree,
        figures.by_cli,
        figures.observations,
        figures.first_after_ack,
        figures.across_ack,
        figures.saw_in_flight,
        figures.stale,
        figures.unknown,
        figures.took
    );
    if let Err(e) = judged {
        panic!("{name}: {e}");
    }
    // Not vacuous: every state was read after its acknowledgement.
    let read_after: std::collections::BTreeSet<usize> =
        records.iter().map(|r| r.k_before).collect();
    if let Some(k) = (0..=n).find(|k| !read_after.contains(k)) {
        panic!(
            "{name}: in {} passes, none began after change {k} was acknowledged",
            records.len()
        );
    }
}

/// Writes through the mounted tree and CLI commands, alternately; the
/// reader reads the mounted tree.
#[test]
fn no_read_of_the_mounted_tree_shows_a_state_older_than_the_last_acknowledged_change() {
    if !fuse_usable() {
        return;
    }
    run("mount", Serve::Mount);
}

/// CLI commands only, reaching `apmatrix exec`'s server; the reader reads
/// /sys inside exec.
#[test]
fn no_read_of_exec_s_sys_shows_a_state_older_than_the_last_acknowledged_command() {
    if !fuse_usable() {
        return;
    }
    run("exec", Serve::Exec);
}
