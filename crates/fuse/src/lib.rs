//! apmatrix-fuse: the sysfs view served through FUSE, behaving as sysfs
//! does for the programs that use it (tools.md Part B §4):
//!
//! * content is generated when a file is opened, and every open uses
//!   direct I/O, so each read(2) and write(2) reaches the server and a
//!   refused write fails write(2) itself with the kernel's errno (no page
//!   cache, no write-back that would defer the error to close);
//! * entry and attribute time-outs are zero, so an mdev directory appears
//!   and vanishes for every process the moment `create` or `remove` returns;
//! * one write(2) is one whole value; O_TRUNC is accepted and ignored;
//!   writes over 4096 bytes fail with E2BIG as sysfs's do;
//! * files are owned by root with sysfs's modes; opening an attribute for
//!   reading (writing) that has no read (write) method fails with EACCES,
//!   even for root, as kernfs does.
//!
//! Where the host lives is the [`Backend`]'s business: in memory for
//! tests, or the state file that CLI commands change meanwhile.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use apmatrix_model::{Host, Written};
use apmatrix_sysfs::{child, children, lookup, AccessError, Kind, Node};
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

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
    /// with no change.
    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<Result<Written, AccessError>>;
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
    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<Result<Written, AccessError>>;
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
            Ok(Err(AccessError::Refused(e))) if e.waits() => continue,
            Ok(Ok(_)) => return reply.written(data.len() as u32),
            Ok(Err(refusal)) => return reply.error(refusal.errno().code()),
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

    fn write(&mut self, path: &str, data: &[u8]) -> io::Result<Result<Written, AccessError>> {
        let written = apmatrix_sysfs::write_path(&mut self.host, path, data);
        if matches!(&written, Ok(w) if w.op.is_some()) {
            self.generation += 1;
        }
        Ok(written)
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
const ZERO_TTL: Duration = Duration::ZERO;
const ROOT_INO: u64 = fuser::FUSE_ROOT_ID;

enum Handle {
    /// An attribute opened for reading: its content at open.
    Read(Vec<u8>),
    Write,
    /// A directory listing at opendir: names, kinds, inodes.
    Dir(Vec<(u64, FileType, String)>),
}

/// The FUSE file system over a [`Backend`].
pub struct SysfsFs<B: Backend> {
    backend: B,
    /// Inode numbers are given to paths (relative to the root) on first
    /// sight and kept: a path names the same entry for the life of the
    /// mount, or none.
    paths: Vec<String>,
    inodes: HashMap<String, u64>,
    /// Per inode, the node it was at a host generation: looked up again
    /// only when the host may have changed.
    nodes: Vec<Option<(u64, Node)>>,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    mounted_at: SystemTime,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Link => FileType::Symlink,
    }
}

impl<B: Backend> SysfsFs<B> {
    pub fn new(backend: B) -> Self {
        SysfsFs {
            backend,
            paths: vec![String::new(), String::new()], // 0 unused, 1 = root
            inodes: HashMap::from([(String::new(), ROOT_INO)]),
            nodes: vec![None, None],
            handles: HashMap::new(),
            next_handle: 1,
            mounted_at: SystemTime::now(),
        }
    }

    fn ino_of(&mut self, path: String) -> u64 {
        if let Some(ino) = self.inodes.get(&path) {
            return *ino;
        }
        let ino = self.paths.len() as u64;
        self.paths.push(path.clone());
        self.nodes.push(None);
        self.inodes.insert(path, ino);
        ino
    }

    /// Runs `f` on the host, brought up to date once for the request, and
    /// the current node of an inode (ENOENT once it has vanished); also
    /// returns the host's generation.
    fn with_node<R>(
        &mut self,
        ino: u64,
        f: impl FnOnce(&Host, &Node) -> R,
    ) -> Result<(R, u64), i32> {
        let path = self.paths.get(ino as usize).ok_or(libc::ENOENT)?;
        let (host, generation) = self.backend.host().map_err(|e| errno_of(&e))?;
        let slot = &mut self.nodes[ino as usize];
        let node = match slot {
            Some((g, node)) if *g == generation => node,
            _ => {
                &slot
                    .insert((generation, lookup(&host, path).ok_or(libc::ENOENT)?))
                    .1
            }
        };
        Ok((f(&host, node), generation))
    }

    /// The current node of an inode; ENOENT once it has vanished.
    fn node(&mut self, ino: u64) -> Result<Node, i32> {
        self.with_node(ino, |_, node| node.clone())
            .map(|(node, _)| node)
    }

    fn path(&self, ino: u64) -> String {
        self.paths[ino as usize].clone()
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, perm, size, nlink) = match node {
            Node::Dir(_) => (FileType::Directory, 0o755, 0, 2),
            // sysfs reports a page for every attribute
            Node::File(f) => (FileType::RegularFile, f.mode(), 4096, 1),
            Node::Link(t) => (FileType::Symlink, 0o777, t.len() as u64, 1),
        };
        FileAttr {
            ino,
            size,
            blocks: 0,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn new_handle(&mut self, h: Handle) -> u64 {
        let fh = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(fh, h);
        fh
    }
}

impl<B: Backend> Filesystem for SysfsFs<B> {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else {
            return reply.error(libc::ENOENT);
        };
        let found = self.with_node(parent, |host, node| match node {
            Node::Dir(dir) => child(host, *dir, name),
            _ => None,
        });
        let (found, generation) = match found {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let path = self.path(parent);
        match found {
            Some(node) => {
                let ino = self.ino_of(join(&path, name));
                reply.entry(&ZERO_TTL, &self.attr(ino, &node), 0);
                // the GETATTR that usually follows needs no lookup
                self.nodes[ino as usize] = Some((generation, node));
            }
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.node(ino) {
            Ok(node) => reply.attr(&ZERO_TTL, &self.attr(ino, &node)),
            Err(e) => reply.error(e),
        }
    }

    /// `O_TRUNC` (`echo >`, Rust's `fs::write`) arrives as size 0: accepted
    /// and ignored, as sysfs ignores it. Other changes are refused.
    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let node = match self.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        if mode.is_some() || uid.is_some() || gid.is_some() || size.is_some_and(|s| s != 0) {
            return reply.error(libc::EPERM);
        }
        reply.attr(&ZERO_TTL, &self.attr(ino, &node));
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.node(ino) {
            Ok(Node::Link(target)) => reply.data(target.as_bytes()),
            Ok(_) => reply.error(libc::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let acc = flags & libc::O_ACCMODE;
        let wants_read = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let wants_write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let opened = self.with_node(ino, |host, node| match node {
            // kernfs: no show (store) method, no open for reading (writing)
            Node::File(f) if (wants_read && !f.readable()) || (wants_write && !f.writable()) => {
                Err(libc::EACCES)
            }
            Node::File(f) if wants_read => {
                Ok(Handle::Read(apmatrix_sysfs::read(host, f).into_bytes()))
            }
            Node::File(_) => Ok(Handle::Write),
            Node::Dir(_) => Err(libc::EISDIR),
            Node::Link(_) => Err(libc::EINVAL),
        });
        let handle = match opened {
            Ok((Ok(handle), _)) => handle,
            Ok((Err(e), _)) | Err(e) => return reply.error(e),
        };
        let fh = self.new_handle(handle);
        reply.opened(fh, fuser::consts::FOPEN_DIRECT_IO);
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.handles.get(&fh) {
            Some(Handle::Read(content)) => {
                let start = (offset.max(0) as usize).min(content.len());
                let end = (start + size as usize).min(content.len());
                reply.data(&content[start..end]);
            }
            _ => reply.error(libc::EBADF),
        }
    }

    fn write(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if data.len() > MAX_WRITE {
            return reply.error(libc::E2BIG);
        }
        let Some(path) = self.paths.get(ino as usize) else {
            return reply.error(libc::ENOENT);
        };
        // The backend looks the attribute up again under its lock.
        match self.backend.write(path, data) {
            Ok(Err(AccessError::Refused(e))) if e.waits() => match self.backend.writer() {
                Some(writer) => {
                    wait_and_write(writer, path.clone(), data.to_vec(), req.pid(), reply)
                }
                None => reply.error(e.errno().code()),
            },
            Ok(Ok(_)) => reply.written(data.len() as u32),
            Ok(Err(refusal)) => reply.error(refusal.errno().code()),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(&fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let listed = self.with_node(ino, |host, node| match node {
            Node::Dir(dir) => Ok(children(host, *dir)),
            _ => Err(libc::ENOTDIR),
        });
        let names = match listed {
            Ok((Ok(names), _)) => names,
            Ok((Err(e), _)) | Err(e) => return reply.error(e),
        };
        let path = self.path(ino);
        let parent = match path.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        let mut entries = vec![
            (ino, FileType::Directory, ".".to_string()),
            (self.ino_of(parent), FileType::Directory, "..".to_string()),
        ];
        for (name, kind) in names {
            let child_ino = self.ino_of(join(&path, &name));
            entries.push((child_ino, file_type(kind), name));
        }
        let fh = self.new_handle(Handle::Dir(entries));
        reply.opened(fh, 0);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(Handle::Dir(entries)) = self.handles.get(&fh) else {
            return reply.error(libc::EBADF);
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*ino, (i + 1) as i64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.handles.remove(&fh);
        reply.ok();
    }

    /// sysfs directories have no `create`: the VFS answers EACCES.
    fn create(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(libc::EACCES);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        _parent: u64,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(libc::EPERM);
    }

    fn unlink(&mut self, _req: &Request<'_>, _parent: u64, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(libc::EPERM);
    }

    fn rmdir(&mut self, _req: &Request<'_>, _parent: u64, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(libc::EPERM);
    }
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
    ]
}

/// Mounts the tree at `mountpoint` and serves it on a background thread
/// until the returned session is dropped (which unmounts it).
pub fn spawn<B: Backend>(backend: B, mountpoint: &Path) -> io::Result<fuser::BackgroundSession> {
    fuser::spawn_mount2(SysfsFs::new(backend), mountpoint, &mount_options())
}
