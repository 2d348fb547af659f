//! `trivialfs [--uncached] MOUNTPOINT`: the smallest FUSE file system that has the shapes
//! `scripts/bench-fuse` times on apmatrix's sysfs tree, so the difference
//! between the two is apmatrix's own work and not FUSE's round trips.
//!
//! ```text
//! d/f00 .. d/f63      read-only, "0x41\n"                  (sysfs attributes)
//! w                   0644; a write stores the bytes       (assign_domain)
//! r                   18 lines "04.0004\n" .. "06.00ff\n"  (an mdev's matrix)
//! links/x00 .. x29    symlinks -> ../d/f00                 (/sys/bus/ap/devices)
//! ```
//!
//! Two sets of FUSE settings, so that the kernel sends it the requests it
//! sends apmatrix's server (`trivialfs [--uncached] MOUNTPOINT`):
//!
//! * caching (the default; issue 13's settings): entry and attribute TTLs of
//!   one day; read-only files opened with keep-cache, the writable `w` with
//!   direct I/O; OPENDIR answered ENOSYS, so the kernel stops sending
//!   OPENDIR and RELEASEDIR and caches directory listings; `noatime`;
//!   FUSE_AUTO_INVAL_DATA and FUSE_CACHE_SYMLINKS requested at INIT; st_size
//!   is the content's length and mtime moves when `w`'s content changes. Its
//!   content is static (only `w` changes, and only by a write), so it never
//!   asks the kernel to invalidate anything.
//! * `--uncached` (apmatrix's server until issue 13): zero TTLs, every open
//!   direct I/O, OPENDIR answered, no `noatime`, no INIT capabilities.
//!
//! It is served in the foreground until SIGINT, SIGTERM or SIGHUP, then
//! unmounted. As root it mounts with mount(2) directly; no fusermount needed.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, SessionACL, TimeOrNow,
    WriteFlags,
};

/// Attribute and entry TTL when caching: one day, as apmatrix's server uses
/// since issue 13 (it tells the kernel itself when something changed). The
/// kernel then answers stats and path lookups from its caches.
const CACHED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// With `--uncached`: zero, as apmatrix's server had before issue 13, so a
/// value changed behind the kernel's back is seen at once; the cost is a
/// LOOKUP round trip for every path component on every open.
const UNCACHED_TTL: Duration = Duration::ZERO;

const ROOT: u64 = 1;
const D: u64 = 2;
const W: u64 = 3;
const R: u64 = 4;
const LINKS: u64 = 5;
/// d/f00 .. d/f63 are inodes F0 .. F0 + 63.
const F0: u64 = 100;
const NF: u64 = 64;
/// links/x00 .. links/x29 are inodes X0 .. X0 + 29.
const X0: u64 = 200;
const NX: u64 = 30;

const F_VALUE: &[u8] = b"0x41\n";
const LINK_TARGET: &[u8] = b"../d/f00";

/// What an inode is.
#[derive(Clone, Copy, PartialEq)]
enum Node {
    Dir,
    /// A read-only file with fixed contents.
    Static(&'static [u8]),
    Writable,
    Link,
}

struct TrivialFs {
    /// The caching settings (see the module's comment), or `--uncached`.
    cached: bool,
    /// Every timestamp but `w`'s mtime; nothing here needs real times.
    start: SystemTime,
    uid: u32,
    gid: u32,
    /// Contents of `r`, built once.
    r: &'static [u8],
    /// Contents of `w` (the bytes of the last write) and its mtime, moved
    /// when a write changes them.
    w: Mutex<(Vec<u8>, SystemTime)>,
}

impl TrivialFs {
    fn new(cached: bool) -> Self {
        // The seed host's matrix: adapters 4-6 x domains 4-6, 0x47, 0xab, 0xff.
        let mut r = String::new();
        for a in [0x04, 0x05, 0x06] {
            for d in [0x04, 0x05, 0x06, 0x47, 0xab, 0xff] {
                r.push_str(&format!("{a:02x}.{d:04x}\n"));
            }
        }
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let start = SystemTime::now();
        TrivialFs {
            cached,
            start,
            uid,
            gid,
            r: Box::leak(r.into_bytes().into_boxed_slice()),
            w: Mutex::new((b"0\n".to_vec(), start)),
        }
    }

    fn ttl(&self) -> &'static Duration {
        if self.cached {
            &CACHED_TTL
        } else {
            &UNCACHED_TTL
        }
    }

    fn node(&self, ino: u64) -> Option<Node> {
        match ino {
            ROOT | D | LINKS => Some(Node::Dir),
            W => Some(Node::Writable),
            R => Some(Node::Static(self.r)),
            i if (F0..F0 + NF).contains(&i) => Some(Node::Static(F_VALUE)),
            i if (X0..X0 + NX).contains(&i) => Some(Node::Link),
            _ => None,
        }
    }

    /// A directory's entries, without "." and "..".
    fn children(&self, ino: u64) -> Vec<(String, u64)> {
        match ino {
            ROOT => vec![
                ("d".into(), D),
                ("w".into(), W),
                ("r".into(), R),
                ("links".into(), LINKS),
            ],
            D => (0..NF).map(|i| (format!("f{i:02}"), F0 + i)).collect(),
            LINKS => (0..NX).map(|i| (format!("x{i:02}"), X0 + i)).collect(),
            _ => Vec::new(),
        }
    }

    fn parent(ino: u64) -> u64 {
        match ino {
            i if (F0..F0 + NF).contains(&i) => D,
            i if (X0..X0 + NX).contains(&i) => LINKS,
            _ => ROOT,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let mut mtime = self.start;
        let (kind, perm, size, nlink) = match self.node(ino)? {
            Node::Dir => (FileType::Directory, 0o755, 0, 2),
            Node::Static(bytes) => (FileType::RegularFile, 0o444, bytes.len() as u64, 1),
            Node::Writable => {
                let w = self.w.lock().unwrap();
                mtime = w.1;
                (FileType::RegularFile, 0o644, w.0.len() as u64, 1)
            }
            Node::Link => (FileType::Symlink, 0o777, LINK_TARGET.len() as u64, 1),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: self.start,
            mtime,
            ctime: mtime,
            crtime: self.start,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

impl Filesystem for TrivialFs {
    /// Caching: asks for FUSE_AUTO_INVAL_DATA (the kernel drops a file's
    /// cached pages when it sees its mtime or size change) and
    /// FUSE_CACHE_SYMLINKS (link targets kept in the page cache), as
    /// apmatrix's server does since issue 13.
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if self.cached {
            let wanted = InitFlags::FUSE_AUTO_INVAL_DATA | InitFlags::FUSE_CACHE_SYMLINKS;
            if let Err(missing) = config.add_capabilities(wanted) {
                eprintln!("trivialfs: the kernel lacks {missing:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self
            .children(parent.0)
            .into_iter()
            .find(|(n, _)| OsStr::new(n) == name);
        match found.and_then(|(_, ino)| self.attr(ino)) {
            Some(attr) => reply.entry(self.ttl(), &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(self.ttl(), &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    /// Only reached through open(O_TRUNC) or truncate(2) (`echo 5 > w` sends
    /// size=0 before its write). Like sysfs, truncation is accepted and changes
    /// nothing; anything else is refused.
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if mode.is_some() || uid.is_some() || gid.is_some() || size.is_some_and(|s| s != 0) {
            return reply.error(Errno::EPERM);
        }
        match self.attr(ino.0) {
            Some(attr) => reply.attr(self.ttl(), &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino.0) {
            Some(Node::Link) => reply.data(LINK_TARGET),
            _ => reply.error(Errno::EINVAL),
        }
    }

    /// Caching, as apmatrix's server opens since issue 13: a read-only
    /// file with keep-cache (its pages stay), the writable `w` with direct
    /// I/O, and EACCES for a read-only file opened for writing, as kernfs.
    ///
    /// `--uncached`: every file is opened with FOPEN_DIRECT_IO, as apmatrix's
    /// server did before issue 13: the kernel serves no read(2) from the page
    /// cache (stale after the value changes) and does not trust st_size; every
    /// read(2) and write(2) is exactly one READ or WRITE request.
    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match self.node(ino.0) {
            Some(Node::Static(_)) if writing => reply.error(Errno::EACCES),
            Some(Node::Static(_)) if self.cached => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Some(Node::Static(_)) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Some(Node::Writable) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Some(Node::Dir) => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let slice = |bytes: &[u8]| -> Vec<u8> {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(size as usize).min(bytes.len());
            bytes[start..end].to_vec()
        };
        match self.node(ino.0) {
            Some(Node::Static(bytes)) => reply.data(&slice(bytes)),
            Some(Node::Writable) => reply.data(&slice(&self.w.lock().unwrap().0)),
            _ => reply.error(Errno::EINVAL),
        }
    }

    /// A sysfs store: one write(2) is the whole new value, whatever the offset.
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if self.node(ino.0) != Some(Node::Writable) {
            return reply.error(Errno::EACCES);
        }
        let mut w = self.w.lock().unwrap();
        if w.0 != data {
            *w = (data.to_vec(), SystemTime::now());
        }
        reply.written(data.len() as u32);
    }

    /// Answered ENOSYS on purpose (fuser's default, spelled out): the kernel
    /// then stops sending FLUSH on every close(2), so a close costs only the
    /// RELEASE, which the kernel sends without waiting for the reply. A server
    /// that answers FLUSH pays one more synchronous round trip per close.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    /// Caching: ENOSYS, as apmatrix's server answers since issue 13. The
    /// kernel then opens directories itself (no OPENDIR, no RELEASEDIR) with
    /// FOPEN_CACHE_DIR: a listing is read from this server once and then
    /// served from the kernel's cache.
    ///
    /// `--uncached`: succeed with no flags (fuser's default), so every
    /// listing reaches this server. releasedir and release: fuser's defaults.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.cached {
            reply.error(Errno::ENOSYS)
        } else {
            reply.opened(FileHandle(0), FopenFlags::empty())
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if self.node(ino.0) != Some(Node::Dir) {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries = vec![
            (".".to_string(), ino.0),
            ("..".to_string(), TrivialFs::parent(ino.0)),
        ];
        entries.extend(self.children(ino.0));
        for (i, (name, child)) in entries.into_iter().enumerate().skip(offset as usize) {
            let kind = match self.node(child) {
                Some(Node::Dir) => FileType::Directory,
                Some(Node::Link) => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            // The offset given is the one of the *next* entry.
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let cached = match args.first() {
        Some(a) if a == "--uncached" => {
            args.remove(0);
            false
        }
        _ => true,
    };
    let mountpoint = match &args[..] {
        [p] if !p.to_string_lossy().starts_with('-') => PathBuf::from(p),
        _ => {
            eprintln!("usage: trivialfs [--uncached] MOUNTPOINT");
            std::process::exit(2);
        }
    };

    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .expect("install signal handler");

    let mut config = Config::default();
    // The mount options apmatrix's sysfs server uses (crates/fuse), so that the
    // kernel sends both servers the same requests. DefaultPermissions has the
    // kernel check modes itself; with a zero attribute TTL (--uncached) it
    // fetches fresh attributes for that, so every open by name costs two
    // GETATTRs more (the directory searched and the file). Not AutoUnmount:
    // that one is only implemented through fusermount. No writeback cache
    // either: fuser does not ask the kernel for it, so every write(2) reaches
    // the server at once, as sysfs semantics need. noatime when caching: no
    // atime to keep for reads the page cache answers.
    config.mount_options = vec![
        MountOption::FSName("trivialfs".into()),
        MountOption::Subtype("trivialfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
        MountOption::RW,
    ];
    if cached {
        config.mount_options.push(MountOption::NoAtime);
    }
    // allow_other, as apmatrix mounts (sysfs is readable by everyone)
    config.acl = SessionACL::All;
    // One thread, as apmatrix's server (fuser 0.16 has one); the benchmark
    // client is sequential anyway.
    config.n_threads = Some(1);

    let session = match fuser::spawn_mount(TrivialFs::new(cached), &mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trivialfs: mount {}: {e}", mountpoint.display());
            std::process::exit(1);
        }
    };
    eprintln!(
        "trivialfs: serving {} ({})",
        mountpoint.display(),
        if cached { "caching" } else { "uncached" }
    );

    // Wait for a signal; stop too if someone else unmounted us (umount -l).
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => break,
            Err(mpsc::RecvTimeoutError::Timeout) if !session.guard.is_finished() => continue,
            Err(_) => break,
        }
    }
    match session.umount_and_join() {
        Ok(()) => eprintln!("trivialfs: unmounted {}", mountpoint.display()),
        Err(e) => {
            eprintln!("trivialfs: unmount {}: {e}", mountpoint.display());
            std::process::exit(1);
        }
    }
}
