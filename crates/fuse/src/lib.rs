//! apmatrix-fuse: the sysfs view served through FUSE, behaving as sysfs
//! does for the programs that use it (tools.md Part B §4), at the speed of
//! a file system the kernel caches:
//!
//! * the kernel keeps names, attributes, directory listings and link
//!   targets; every change, from any door, is turned into the exact entries
//!   it altered that the kernel was given (`apmatrix_sysfs::tree_changes_known`)
//!   and the kernel is told to forget them before the change is
//!   acknowledged ([`Invalidator`]), so that every later lookup, stat or
//!   listing by any process sees the new state;
//! * a file opened for reading reads the kernel's page cache, and an open
//!   reads one state however many read(2)s it takes, as kernfs: a file's
//!   inode is one content, and a changed file is given a new inode (its
//!   name forgotten) rather than having its pages dropped, so no read of
//!   an older descriptor can tear or refill what a later open reads.
//!   Opened for writing, a file is direct I/O: each write(2) reaches the
//!   server, a refused write fails write(2) itself with the kernel's errno,
//!   and no reader sees bytes the server has not accepted. Directories are
//!   opened by the kernel alone (OPENDIR answers ENOSYS), which then caches
//!   their listings;
//! * one write(2) is one whole value; O_TRUNC is accepted and ignored;
//!   writes over 4096 bytes fail with E2BIG as sysfs's do;
//! * files are owned by root with sysfs's modes; opening an attribute for
//!   reading (writing) that has no read (write) method fails with EACCES,
//!   even for root, as kernfs does;
//! * a file's size is its content's length, where sysfs reports 4096.
//!
//! Where the host lives is the [`Backend`]'s business: in memory for
//! tests, or the state file that CLI commands change meanwhile.

use std::io;
use std::path::Path;

use apmatrix_model::{Host, Written};
use apmatrix_sysfs::{AccessError, TreeChange};
use fuser::{MountOption, ReplyWrite};

mod fs;
mod inodes;
mod invalidate;

pub use fs::SysfsFs;
use invalidate::Done;
pub use invalidate::Invalidator;

/// What one write(2) did: applied or refused, and, applied, what it
/// changed in the tree (for the kernel to forget before it is answered).
pub type WriteOutcome = (Result<Written, AccessError>, Vec<TreeChange>);

/// Where the served host lives.
pub trait Backend: Send + 'static {
    /// The host, borrowed for one request (a plain reference, or a guard
    /// where others share the host).
    type Host<'a>: std::ops::Deref<Target = Host>
    where
        Self: 'a;
    /// The host as it is now, with changes made by others picked up, and a
    /// number that changes whenever the host may have (so the server can
    /// keep what it looked up until then).
    fn host(&mut self) -> io::Result<(Self::Host<'_>, u64)>;
    /// One write(2) to the attribute at `path` (relative to the root, no
    /// links): applied and made durable before the call returns, or refused
    /// with no change; with what it changed in the tree.
    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<WriteOutcome>;
    /// A handle another thread can write through, for the writes the kernel
    /// makes wait ([`apmatrix_model::ApError::waits`]: `remove` while a
    /// guest runs, since ≈5.15). `None`: such a write is refused at once.
    fn writer(&self) -> Option<Box<dyn Writer>> {
        None
    }
}

/// Writes from a thread of their own (see [`Backend::writer`]).
pub trait Writer: Send {
    /// As [`Backend::write`].
    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<WriteOutcome>;
}

/// How often a waiting write is tried again.
const WAIT_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether the process that made a request is gone or has a signal
/// waiting for it (its /proc status: SigPnd or ShdPnd, less SigBlk). The
/// kernel's wait in `remove` ends on a signal, so a waiting write whose
/// writer was signalled is answered EINTR and not done later.
fn interrupted(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("SigPnd:") | field("ShdPnd:")) & !field("SigBlk:") != 0
}

/// Keeps trying a write the kernel would make wait, on a thread of its own
/// so that the tree stays served meanwhile, and answers the writer once it
/// is done, refused for another reason, or the writer is signalled or gone.
fn wait_and_write(
    mut writer: Box<dyn Writer>,
    invalidator: Invalidator,
    path: String,
    data: Vec<u8>,
    pid: u32,
    reply: ReplyWrite,
) {
    std::thread::spawn(move || loop {
        std::thread::sleep(WAIT_RETRY);
        if pid == 0 || interrupted(pid) {
            return reply.error(libc::EINTR);
        }
        match writer.write(&path, &data) {
            Ok((Err(AccessError::Refused(e)), _)) if e.waits() => continue,
            Ok((Ok(_), changes)) => {
                let done = Done::Written(reply, data.len() as u32);
                return invalidator.forget_then(&changes, done);
            }
            Ok((Err(refusal), _)) => return reply.error(refusal.errno().code()),
            Err(e) => return reply.error(errno_of(&e)),
        }
    });
}

/// A host held in memory only.
pub struct MemoryBackend {
    host: Host,
    generation: u64,
}

impl MemoryBackend {
    pub fn new(host: Host) -> Self {
        MemoryBackend {
            host,
            generation: 0,
        }
    }
}

impl Backend for MemoryBackend {
    type Host<'a> = &'a Host;

    fn host(&mut self) -> io::Result<(&Host, u64)> {
        Ok((&self.host, self.generation))
    }

    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<WriteOutcome> {
        let before = self.host.clone();
        let written = apmatrix_sysfs::write_path(&mut self.host, path, data);
        if matches!(&written, Ok(w) if w.op.is_some()) {
            self.generation += 1;
        }
        let changes = apmatrix_sysfs::tree_changes(&before, &self.host);
        Ok((written, changes))
    }
}

/// Why the tree cannot be mounted here, if it cannot: FUSE needs
/// /dev/fuse, and mounting without fusermount needs root.
pub fn unusable() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some(
            "FUSE is not available: /dev/fuse does not exist (load the fuse module, \
             or give the container --device /dev/fuse)",
        );
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "mounting the emulated tree needs root (apmatrix mounts FUSE with mount(2), \
             not fusermount); run it with sudo",
        );
    }
    None
}

/// For tests that mount: whether they can run here. Where
/// `APMATRIX_REQUIRE_FUSE` is set (CI has root and /dev/fuse), a missing
/// FUSE fails the test instead of skipping it.
#[doc(hidden)]
pub fn usable_for_tests() -> bool {
    match unusable() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
                "APMATRIX_REQUIRE_FUSE is set but {why}"
            );
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// sysfs refuses writes larger than a page.
const MAX_WRITE: usize = 4096;

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The mount options: readable by everyone as sysfs is, permissions
/// checked by the kernel from the modes, no set-uid or devices.
pub fn mount_options() -> Vec<MountOption> {
    vec![
        MountOption::FSName("apmatrix".into()),
        MountOption::Subtype("apmatrix".into()),
        MountOption::AllowOther,
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        // Reads need not write: an atime update would make the kernel ask
        // for the attributes again.
        MountOption::NoAtime,
    ]
}

/// Mounts the tree at `mountpoint` and serves it on a background thread
/// until the returned session is dropped (which unmounts it).
pub fn spawn<B: Backend>(backend: B, mountpoint: &Path) -> io::Result<fuser::BackgroundSession> {
    spawn_invalidated(backend, mountpoint, Invalidator::new())
}

/// As [`spawn`], with the invalidator that the backend's other doors (CLI
/// commands, the periodic scan) use to make the kernel forget what their
/// changes altered.
pub fn spawn_invalidated<B: Backend>(
    backend: B,
    mountpoint: &Path,
    invalidator: Invalidator,
) -> io::Result<fuser::BackgroundSession> {
    let fs = SysfsFs::new(backend, invalidator.clone());
    let session = fuser::Session::new(fs, mountpoint, &mount_options())?;
    // Before the first request is read: no change can find it missing.
    invalidator.start(session.notifier())?;
    session.spawn()
}
