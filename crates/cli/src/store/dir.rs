//! The directory that holds a host's files, trusted no further than other
//! users could have tampered with it.
//!
//! A host's files are its snapshot `STATE` and, beside it, `STATE.journal`,
//! `STATE.lock`, `STATE.sock` and temporaries `STATE.tmp.<random>`. They
//! are all reached through one open descriptor of their directory, never
//! through a symbolic link: another user who can write the directory (a
//! sticky one like /tmp) could otherwise point a name at a file of theirs,
//! or at one of root's, and have root replay it, truncate it or overwrite
//! it. So:
//!
//! - a directory is refused when others can write it, unless it is sticky
//!   (then others can add names but not replace ours);
//! - every file apmatrix opens there must be a regular file that belongs to
//!   us (or root) and that others cannot write; the journal and the lock,
//!   which only apmatrix makes, must also have one link only, and are made
//!   0600 if an older version left them readable;
//! - new files are made 0600 with `O_EXCL | O_NOFOLLOW`, temporaries under
//!   random names.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use super::StoreError;

/// How much a file must look like apmatrix's own.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Strictness {
    /// The snapshot: ours (or root's), not writable by others (it may be
    /// written by hand, or shipped read-only).
    Shared,
    /// Journal and lock, which only apmatrix makes: also one link only, and
    /// made 0600 when opened.
    Private,
}

/// An open, trusted directory of host files.
pub struct StateDir {
    path: PathBuf,
    fd: OwnedFd,
    euid: u32,
}

fn our_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn trusted_owner(uid: u32, euid: u32) -> bool {
    uid == euid || uid == 0
}

fn untrusted(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::Untrusted {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

impl StateDir {
    /// Opens a directory (already resolved: its last component is no link)
    /// and checks that no other user can have planted files in it.
    pub fn open(path: &Path) -> Result<StateDir, StoreError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let euid = our_uid();
        if !trusted_owner(st.st_uid, euid) {
            return Err(untrusted(
                path,
                format!(
                    "is a directory of uid {}, who could replace the host's files in it; \
                     keep the state in a directory you own (--host or ${})",
                    st.st_uid,
                    super::HOST_ENV
                ),
            ));
        }
        let others_write = st.st_mode & 0o022 != 0;
        let sticky = st.st_mode & 0o1000 != 0;
        if others_write && !sticky {
            return Err(untrusted(
                path,
                format!(
                    "is a directory other users can write (mode {}) without the sticky bit, so \
                     they could replace the host's files; run `chmod go-w {}` or keep the \
                     state in a directory only you can write",
                    mode_text(st.st_mode),
                    path.display()
                ),
            ));
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            fd,
            euid,
        })
    }

    /// The directory's real path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn at(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    fn io(&self, name: &OsStr) -> impl FnOnce(rustix::io::Errno) -> StoreError + '_ {
        let path = self.at(name);
        move |e| StoreError::Io {
            path,
            source: e.into(),
        }
    }

    /// A name as a path that bind(2) and connect(2) take, through this
    /// descriptor where /proc is there (so the directory cannot be swapped
    /// between our check and the call), else the plain path.
    pub fn socket_path(&self, name: &OsStr) -> PathBuf {
        use std::os::fd::AsRawFd;
        let via = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        let through = via.join(name);
        if via.is_dir() && through.as_os_str().len() < 100 {
            through
        } else {
            self.at(name)
        }
    }

    /// What a name is, without following a link; `None` if nothing is there.
    pub fn stat(&self, name: &OsStr) -> Result<Option<Stat>, StoreError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(self.io(name)(e)),
        }
    }

    /// Refuses a file that another user could have made or changed.
    pub fn check(&self, name: &OsStr, st: &Stat, strict: Strictness) -> Result<(), StoreError> {
        let path = self.at(name);
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Symlink {
            return Err(untrusted(
                &path,
                "is a symbolic link; apmatrix never follows one for a host's own files \
                 (give --host the real path)",
            ));
        }
        if kind != FileType::RegularFile {
            return Err(untrusted(
                &path,
                format!("is not a regular file (it is a {})", kind_name(kind)),
            ));
        }
        if !trusted_owner(st.st_uid, self.euid) {
            return Err(untrusted(
                &path,
                format!(
                    "belongs to uid {}, not to you (uid {}): another user may have planted it; \
                     remove it if you did not make it",
                    st.st_uid, self.euid
                ),
            ));
        }
        // Readable by others is no danger to the state (older versions
        // made the lock and journal 0644; `tighten` makes them 0600).
        if st.st_mode & 0o022 != 0 {
            return Err(untrusted(
                &path,
                format!(
                    "has mode {}: others could have written it; apmatrix makes it {}",
                    mode_text(st.st_mode),
                    "0600"
                ),
            ));
        }
        if strict == Strictness::Private && st.st_nlink != 1 {
            return Err(untrusted(
                &path,
                format!(
                    "has {} hard links: it may be another file under a second name",
                    st.st_nlink
                ),
            ));
        }
        Ok(())
    }

    /// Opens a file without following a link (and without blocking on a
    /// FIFO) and checks it; `None` if nothing is there. With
    /// `OFlags::CREATE` in `flags`, an absent file is made 0600.
    fn open_checked(
        &self,
        name: &OsStr,
        flags: OFlags,
        strict: Strictness,
    ) -> Result<Option<(File, Stat)>, StoreError> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(errno) => return Err(self.refused_open(name, errno, strict)),
        };
        let st = rustix::fs::fstat(&fd).map_err(self.io(name))?;
        self.check(name, &st, strict)?;
        if strict == Strictness::Private {
            self.tighten(name, &fd, &st)?;
        }
        Ok(Some((File::from(fd), st)))
    }

    /// Why opening a name failed, in the words of `check` where what is
    /// there explains it: a link (ELOOP under O_NOFOLLOW), or another
    /// user's file (EACCES: Linux's protected_regular refuses O_CREAT on it
    /// in a sticky directory).
    fn refused_open(
        &self,
        name: &OsStr,
        errno: rustix::io::Errno,
        strict: Strictness,
    ) -> StoreError {
        let explained = match errno {
            rustix::io::Errno::LOOP | rustix::io::Errno::ACCESS => match self.stat(name) {
                Ok(Some(st)) => self.check(name, &st, strict).err(),
                Ok(None) => None,
                Err(e) => Some(e),
            },
            _ => None,
        };
        explained.unwrap_or_else(|| self.io(name)(errno))
    }

    /// Reads a whole file of at most `limit` bytes; `None` if it is absent.
    pub fn read(
        &self,
        name: &OsStr,
        limit: u64,
        strict: Strictness,
    ) -> Result<Option<(Vec<u8>, Stat)>, StoreError> {
        let Some((file, st)) = self.open_checked(name, OFlags::RDONLY, strict)? else {
            return Ok(None);
        };
        let too_big = |size: u64| {
            untrusted(
                &self.at(name),
                format!("is {size} bytes, more than the {limit} a host's file may have"),
            )
        };
        if st.st_size as u64 > limit {
            return Err(too_big(st.st_size as u64));
        }
        let mut bytes = Vec::with_capacity(st.st_size as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_std(name, e))?;
        if bytes.len() as u64 > limit {
            return Err(too_big(bytes.len() as u64));
        }
        Ok(Some((bytes, st)))
    }

    fn io_std(&self, name: &OsStr, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.at(name),
            source,
        }
    }

    /// Opens an existing private file for writing (the journal a server
    /// goes on with); `None` if it is absent.
    pub fn open_private(&self, name: &OsStr) -> Result<Option<(File, Stat)>, StoreError> {
        self.open_checked(name, OFlags::WRONLY, Strictness::Private)
    }

    /// The lock file: opened, or made 0600 if absent; never through a link.
    /// `Err(Io)` with `PermissionDenied` / read-only kinds where we may not
    /// create it (a state we may only read).
    pub fn open_lock(&self, name: &OsStr) -> Result<File, StoreError> {
        let opened = self.open_checked(name, OFlags::RDWR | OFlags::CREATE, Strictness::Private)?;
        let (file, _) = opened.ok_or_else(|| self.io(name)(rustix::io::Errno::NOENT))?;
        Ok(file)
    }

    /// Makes a checked private file of ours 0600 if it is not (the umask
    /// of its maker, or an older apmatrix, may have left it readable).
    fn tighten(&self, name: &OsStr, fd: &OwnedFd, st: &Stat) -> Result<(), StoreError> {
        if st.st_mode & 0o7777 != 0o600 && st.st_uid == self.euid {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(0o600)).map_err(self.io(name))?;
        }
        Ok(())
    }

    /// A new private file under a random name starting with `prefix`.
    pub fn create_temp(&self, prefix: &OsStr) -> Result<(File, OsString), StoreError> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let flags = flags | OFlags::CLOEXEC;
        let mut last = rustix::io::Errno::EXIST;
        for _ in 0..16 {
            let mut name = prefix.to_os_string();
            name.push(uuid::Uuid::new_v4().simple().to_string());
            match rustix::fs::openat(&self.fd, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    // The umask may have taken bits off; make it exactly 0600.
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).map_err(self.io(&name))?;
                    return Ok((File::from(fd), name));
                }
                Err(rustix::io::Errno::EXIST) => last = rustix::io::Errno::EXIST,
                Err(e) => return Err(self.io(&name)(e)),
            }
        }
        Err(self.io(prefix)(last))
    }

    /// Renames within the directory (replacing `to`, never following it).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<(), StoreError> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(self.io(to))
    }

    /// Removes a name; nothing there is fine.
    pub fn remove(&self, name: &OsStr) -> Result<(), StoreError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io(name)(e)),
        }
    }

    /// Makes renames and removals in the directory durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        rustix::fs::fsync(&self.fd).map_err(self.io(OsStr::new(".")))
    }

    /// Gives a name mode 0600 (a socket just bound: chmod is the only way).
    pub fn make_private(&self, name: &OsStr) -> Result<(), StoreError> {
        rustix::fs::chmodat(&self.fd, name, Mode::from_raw_mode(0o600), AtFlags::empty())
            .map_err(self.io(name))
    }

    /// Removes our own files whose names start with `prefix` (temporaries
    /// of writers killed before their rename). Others' files are left.
    pub fn sweep(&self, prefix: &OsStr) {
        let Ok(dir) = rustix::fs::Dir::read_from(self.fd.as_fd()) else {
            return;
        };
        for entry in dir.flatten() {
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if !name.as_bytes().starts_with(prefix.as_bytes()) {
                continue;
            }
            if let Ok(Some(st)) = self.stat(name) {
                let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
                if regular && st.st_uid == self.euid {
                    let _ = self.remove(name);
                }
            }
        }
    }

    /// Whether a stat says "ours": owned by us (or root).
    pub fn ours(&self, st: &Stat) -> bool {
        trusted_owner(st.st_uid, self.euid)
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "directory",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Symlink => "symbolic link",
        _ => "special file",
    }
}

/// Where a `--host` path really is: its directory's real path and the file
/// name in it. Symbolic links on the way are followed once, here, and only
/// where no other user can have made or replaced them (a link in a sticky
/// directory must be ours; none is followed in a directory others can write
/// without the sticky bit). With `make_dirs`, missing directories are made
/// 0700.
pub fn resolve(path: &Path, make_dirs: bool) -> Result<(PathBuf, OsString), StoreError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io { path: p, source }
    };
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_err(io(path))?.join(path)
    };
    let not_a_file = || StoreError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "names no file"),
    };
    let euid = our_uid();
    // Components still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    let mut real = PathBuf::from("/");
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            real.pop();
            continue;
        }
        let last = pending.is_empty();
        let candidate = real.join(&part);
        match fs::symlink_metadata(&candidate) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && last => return Ok((real, part)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && make_dirs => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&candidate)
                    .map_err(io(&candidate))?;
                real = candidate;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(path.to_path_buf()))
            }
            Err(e) => return Err(io(&candidate)(e)),
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(io(path)(io::Error::from_raw_os_error(libc::ELOOP)));
                }
                let dir = fs::metadata(&real).map_err(io(&real))?;
                let others_write = dir.mode() & 0o022 != 0;
                let sticky = dir.mode() & 0o1000 != 0;
                let link_ours = trusted_owner(m.uid(), euid);
                let followable = if others_write && !sticky {
                    false
                } else if others_write || !trusted_owner(dir.uid(), euid) {
                    link_ours
                } else {
                    true
                };
                if !followable {
                    return Err(untrusted(
                        &candidate,
                        format!(
                            "is a symbolic link (owned by uid {}) in a directory other users \
                             can write; apmatrix does not follow it: give the real path",
                            m.uid()
                        ),
                    ));
                }
                let target = fs::read_link(&candidate).map_err(io(&candidate))?;
                if target.is_absolute() {
                    real = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            }
            Ok(_) if last => return Ok((real, part)),
            Ok(m) if m.is_dir() => real = candidate,
            Ok(_) => {
                return Err(io(&candidate)(io::Error::from_raw_os_error(libc::ENOTDIR)));
            }
        }
    }
    Err(not_a_file())
}

/// Pushes a path's components so that the first is popped first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}
