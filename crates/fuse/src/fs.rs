//! The FUSE requests, answered from the sysfs view of the backend's host.
//!
//! The kernel keeps what it is told for a day ([`TTL`]): names,
//! attributes, directory listings, link targets, and the pages of files
//! opened for reading (a file's inode is one content: see
//! [`crate::inodes`]). What a change alters it is told to forget before
//! the change is acknowledged ([`crate::Invalidator`]). Directories
//! are never opened by the server (it answers OPENDIR with ENOSYS; the
//! kernel then stops sending OPENDIR and RELEASEDIR and keeps listings).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use apmatrix_model::Host;
use apmatrix_sysfs::{child, children, AccessError, Kind, Node};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

use crate::inodes::{parent_and_name, Inodes, Looked, ROOT_INO};
use crate::invalidate::Done;
use crate::{errno_of, wait_and_write, Backend, Invalidator, MAX_WRITE};

/// How long the kernel may keep names and attributes: as long as it likes,
/// since it is told when they change.
pub(crate) const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// `FUSE_AUTO_INVAL_DATA`: the kernel checks a directory's attributes
/// before it reuses its cached listing, and drops it when the mtime moved
/// (as it would a file's cached pages).
const AUTO_INVAL_DATA: u64 = 1 << 12;
/// `FUSE_CACHE_SYMLINKS`: link targets are kept in the page cache too.
const CACHE_SYMLINKS: u64 = 1 << 23;

/// Makes the thread that answers requests (this one: INIT is its first)
/// a batch thread: woken by a request no one waits for (a RELEASE at
/// close(2), a FORGET), it does not take the CPU from the process that
/// sent it, but answers once that process waits for something (often its
/// next OPEN, answered in the same turn). A request someone waits for is
/// answered as soon as before: the waiting process has given up the CPU.
fn batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread (0) with a valid
    // sched_param; SCHED_BATCH needs no privilege, and a failure only
    // leaves the policy as it was.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

/// The FUSE file system over a [`Backend`].
pub struct SysfsFs<B: Backend> {
    backend: B,
    invalidator: Invalidator,
    /// A listing being read in several READDIRs: the names at its first,
    /// so that one getdents(2) sequence sees one state.
    listings: std::collections::HashMap<u64, Vec<(u64, FileType, String)>>,
    mounted_at: SystemTime,
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

/// A node at a host generation, with a readable attribute's content.
fn looked(host: &Host, node: Node, generation: u64) -> Looked {
    let content: Option<Arc<[u8]>> = match &node {
        Node::File(f) if f.readable() => Some(apmatrix_sysfs::read(host, f).into_bytes().into()),
        _ => None,
    };
    Looked {
        generation,
        node,
        content,
    }
}

impl<B: Backend> SysfsFs<B> {
    pub fn new(backend: B, invalidator: Invalidator) -> Self {
        SysfsFs {
            backend,
            invalidator,
            listings: std::collections::HashMap::new(),
            mounted_at: SystemTime::now(),
        }
    }

    fn path(&self, ino: u64) -> Result<String, i32> {
        self.invalidator
            .inodes()
            .path(ino)
            .map(str::to_string)
            .ok_or(libc::ENOENT)
    }

    /// Runs `f` on the host, brought up to date once for the request, and
    /// the current node of an inode (ENOENT once it has vanished).
    fn with_node<R>(
        &mut self,
        ino: u64,
        f: impl FnOnce(&Host, &Looked) -> R,
    ) -> Result<(R, u64), i32> {
        self.with_inodes(ino, |host, looked, _, _| f(host, looked))
    }

    /// [`Self::with_node`], also giving `f` the inode's path and the inode
    /// table while the host is held: a path given to the kernel is
    /// registered before any change can be compared against the table
    /// (else a change made between the answer and the registration would
    /// not be forgotten).
    fn with_inodes<R>(
        &mut self,
        ino: u64,
        f: impl FnOnce(&Host, &Looked, &str, &mut Inodes) -> R,
    ) -> Result<(R, u64), i32> {
        let path = self.path(ino)?;
        let (host, generation) = self.backend.host().map_err(|e| errno_of(&e))?;
        let mut inodes = self.invalidator.inodes();
        if inodes.looked(ino, generation).is_none() {
            let node = apmatrix_sysfs::lookup(&host, &path).ok_or(libc::ENOENT)?;
            inodes.remember(ino, looked(&host, node, generation));
        }
        let looked = inodes
            .looked(ino, generation)
            .expect("just remembered")
            .clone();
        Ok((f(&host, &looked, &path, &mut inodes), generation))
    }

    fn attr(&self, ino: u64, looked: &Looked, version: u64) -> FileAttr {
        let (kind, perm, nlink) = match &looked.node {
            Node::Dir(_) => (FileType::Directory, 0o755, 2),
            Node::File(f) => (FileType::RegularFile, f.mode(), 1),
            Node::Link(_) => (FileType::Symlink, 0o777, 1),
        };
        // The version as the mtime: it moves when the content does.
        let time = self.mounted_at + Duration::from_nanos(version);
        FileAttr {
            ino,
            size: looked.size(),
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
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

    /// The attributes of an inode now.
    fn current_attr(&mut self, ino: u64) -> Result<FileAttr, i32> {
        let ((looked, version), _) = self.with_inodes(ino, |_, looked, _, inodes| {
            (looked.clone(), inodes.version(ino))
        })?;
        Ok(self.attr(ino, &looked, version))
    }
}

impl<B: Backend> Filesystem for SysfsFs<B> {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Without AUTO_INVAL_DATA an invalidated directory would keep its
        // cached listing: refuse to serve a stale tree rather than serve it.
        config
            .add_capabilities(AUTO_INVAL_DATA)
            .map_err(|_| libc::ENOSYS)?;
        let _ = config.add_capabilities(CACHE_SYMLINKS);
        batch_scheduling();
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name.to_str() else {
            return reply.error(libc::ENOENT);
        };
        let found = self.with_inodes(parent, |host, looked, parent_path, inodes| {
            let Node::Dir(dir) = &looked.node else {
                return None;
            };
            let node = child(host, *dir, name)?;
            let ino = inodes.ino_of(join(parent_path, name));
            // A file's inode already looked up keeps its content (the
            // kernel may hold its pages); anything else is looked at now.
            let looked = match inodes.looked(ino, looked.generation) {
                Some(known) => known.clone(),
                None => {
                    let now = self::looked(host, node, looked.generation);
                    inodes.remember(ino, now.clone());
                    now
                }
            };
            inodes.looked_up(ino);
            Some((ino, looked, inodes.version(ino)))
        });
        match found {
            Ok((Some((ino, looked, version)), _)) => {
                reply.entry(&TTL, &self.attr(ino, &looked, version), version)
            }
            // Not cached by the kernel (an error, not an entry with a
            // timeout): a name that appears later is found at once.
            Ok((None, _)) => reply.error(libc::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.current_attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    /// `O_TRUNC` (`echo >`, Rust's `fs::write`) arrives as size 0: accepted
    /// and ignored on a writable attribute, as sysfs ignores it (the OPEN
    /// before it has refused the others). Other changes are refused.
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
        let writable =
            match self.with_node(ino, |_, l| matches!(&l.node, Node::File(f) if f.writable())) {
                Ok((w, _)) => w,
                Err(e) => return reply.error(e),
            };
        if mode.is_some() || uid.is_some() || gid.is_some() || size.is_some_and(|s| s != 0) {
            return reply.error(libc::EPERM);
        }
        if size.is_some() && !writable {
            return reply.error(libc::EACCES);
        }
        match self.current_attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.with_node(ino, |_, l| l.node.clone()) {
            Ok((Node::Link(target), _)) => reply.data(target.as_bytes()),
            Ok(_) => reply.error(libc::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    /// kernfs's checks. Opened for reading only, a file reads its inode's
    /// pages, which the kernel keeps (the inode is one content, so they
    /// never need dropping). Opened for writing, it is direct I/O: each
    /// write(2) is then one WRITE, whose refusal write(2) itself returns,
    /// and no concurrent reader sees bytes the server has not accepted (as
    /// it would through the page cache).
    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let acc = flags & libc::O_ACCMODE;
        let wants_read = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let wants_write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let opened = self.with_node(ino, |_, looked| match &looked.node {
            // kernfs: no show (store) method, no open for reading (writing)
            Node::File(f) if (wants_read && !f.readable()) || (wants_write && !f.writable()) => {
                Err(libc::EACCES)
            }
            Node::File(_) => Ok(()),
            Node::Dir(_) => Err(libc::EISDIR),
            Node::Link(_) => Err(libc::EINVAL),
        });
        match opened {
            Ok((Ok(()), _)) if wants_write => reply.opened(0, fuser::consts::FOPEN_DIRECT_IO),
            Ok((Ok(()), _)) => reply.opened(0, fuser::consts::FOPEN_KEEP_CACHE),
            Ok((Err(e), _)) | Err(e) => reply.error(e),
        }
    }

    /// The inode's content, from `offset` (its pages, or a direct read).
    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.with_node(ino, |_, looked| looked.content.clone()) {
            Ok((Some(content), _)) => {
                let start = (offset.max(0) as usize).min(content.len());
                let end = (start + size as usize).min(content.len());
                reply.data(&content[start..end]);
            }
            Ok((None, _)) => reply.error(libc::EBADF),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        self.invalidator.inodes().forget(ino, nlookup);
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
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        // The backend looks the attribute up again under its lock.
        match self.backend.write(&path, data) {
            Ok((Err(AccessError::Refused(e)), _)) if e.waits() => match self.backend.writer() {
                Some(writer) => wait_and_write(
                    writer,
                    self.invalidator.clone(),
                    path,
                    data.to_vec(),
                    req.pid(),
                    reply,
                ),
                None => reply.error(e.errno().code()),
            },
            Ok((Ok(_), changes)) => {
                let done = Done::Written(reply, data.len() as u32);
                self.invalidator.forget_then(&changes, done)
            }
            Ok((Err(refusal), _)) => reply.error(refusal.errno().code()),
            Err(e) => reply.error(errno_of(&e)),
        }
    }

    /// The kernel then reads every directory itself, caching its listing.
    fn opendir(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        reply.error(libc::ENOSYS);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if offset == 0 || !self.listings.contains_key(&ino) {
            let listed = self.with_inodes(ino, |host, looked, path, inodes| {
                let Node::Dir(dir) = &looked.node else {
                    return Err(libc::ENOTDIR);
                };
                let parent = parent_and_name(path).0.to_string();
                let up = if ino == ROOT_INO {
                    ROOT_INO
                } else {
                    inodes.ino_of(parent)
                };
                let mut entries = vec![
                    (ino, FileType::Directory, ".".to_string()),
                    (up, FileType::Directory, "..".to_string()),
                ];
                for (name, kind) in children(host, *dir) {
                    let child_ino = inodes.ino_of(join(path, &name));
                    entries.push((child_ino, file_type(kind), name));
                }
                inodes.listed(ino);
                Ok(entries)
            });
            let entries = match listed {
                Ok((Ok(entries), _)) => entries,
                Ok((Err(e), _)) | Err(e) => return reply.error(e),
            };
            self.listings.insert(ino, entries);
        }
        let entries = &self.listings[&ino];
        let mut full = false;
        for (i, (child, kind, name)) in entries.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*child, (i + 1) as i64, *kind, name) {
                full = true;
                break;
            }
        }
        if !full {
            self.listings.remove(&ino); // read to its end
        }
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
