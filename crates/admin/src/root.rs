//! The one small interface the admin tooling needs of a sysfs: a real
//! host's /sys, a mounted emulator, or an emulator in this process.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use apmatrix_model::{Host, KernelProfile};
use apmatrix_sysfs::SysfsView;

/// A refused or failed write: the errno and what the refusal said.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WriteFailure {
    pub errno: i32,
    pub message: String,
}

/// A sysfs tree. Paths are relative to its root (`bus/ap/apmask`).
pub trait SysfsRoot {
    /// The content of an attribute.
    fn read(&self, path: &str) -> io::Result<String>;
    /// One write(2) of `data` to an attribute.
    fn write(&mut self, path: &str, data: &str) -> Result<(), WriteFailure>;
    /// The names in a directory.
    fn list(&self, path: &str) -> io::Result<Vec<String>>;
    /// The target of a symbolic link, as readlink(2) gives it (a driver's
    /// `driver` link); links before the last component are followed.
    /// Roots that do not know links say so (`Unsupported`).
    fn read_link(&self, path: &str) -> io::Result<String> {
        let _ = path;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Where the root is, for messages and shell commands (`/sys`).
    fn describe(&self) -> String;
    /// The kernel generation behind the tree, when the root knows it (an
    /// emulator does); `None` leaves it to [`crate::observe`].
    fn kernel_profile(&self) -> Option<&'static KernelProfile> {
        None
    }
}

/// A directory that is a sysfs root: `/sys` itself or a mounted emulator.
pub struct DirRoot {
    root: PathBuf,
    profile: Option<&'static KernelProfile>,
}

impl DirRoot {
    /// The root at `root`; its kernel generation is told from its
    /// attributes ([`crate::observe`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirRoot {
            root: root.into(),
            profile: None,
        }
    }

    /// The same, following `profile`'s rules where it is given (the user
    /// knows the kernel better than its attributes tell).
    pub fn following(mut self, profile: Option<&'static KernelProfile>) -> Self {
        self.profile = profile;
        self
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

/// The most apmatrix reads of one sysfs attribute.
const SYSFS_LIMIT: u64 = 16 << 20;

impl SysfsRoot for DirRoot {
    fn read(&self, path: &str) -> io::Result<String> {
        crate::files::read_text(&self.at(path), SYSFS_LIMIT)
    }

    fn write(&mut self, path: &str, data: &str) -> Result<(), WriteFailure> {
        let full = self.at(path);
        let fail = |e: io::Error| WriteFailure {
            errno: e.raw_os_error().unwrap_or(EIO),
            message: format!("{}: {e}", full.display()),
        };
        // One write(2) of the whole value, as `echo` does it.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&full)
            .map_err(fail)?;
        f.write_all(data.as_bytes()).map_err(fail)
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(self.at(path))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        Ok(fs::read_link(self.at(path))?.to_string_lossy().into_owned())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn kernel_profile(&self) -> Option<&'static KernelProfile> {
        self.profile
    }
}

/// The errno of a failed write that carries none.
const EIO: i32 = 5;
/// readlink(2) of a missing path.
const ENOENT: i32 = 2;
/// readlink(2) of something that is not a link.
const EINVAL: i32 = 22;

/// An emulated host in this process, through the same sysfs view the FUSE
/// server serves.
pub struct EmulatedRoot {
    pub host: Host,
}

impl SysfsRoot for EmulatedRoot {
    fn read(&self, path: &str) -> io::Result<String> {
        apmatrix_sysfs::read_path(&self.host, path)
            .map_err(|e| io::Error::from_raw_os_error(e.errno().code()))
    }

    fn write(&mut self, path: &str, data: &str) -> Result<(), WriteFailure> {
        SysfsView {
            host: &mut self.host,
        }
        .write(path, data.as_bytes())
        .map(drop)
        .map_err(|e| WriteFailure {
            errno: e.errno().code(),
            message: e.to_string(),
        })
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        apmatrix_sysfs::list_path(&self.host, path)
            .map_err(|e| io::Error::from_raw_os_error(e.errno().code()))
    }

    fn read_link(&self, path: &str) -> io::Result<String> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = match apmatrix_sysfs::resolve_path(&self.host, dir) {
            Some(apmatrix_sysfs::Node::Dir(d)) => d,
            _ => return Err(io::Error::from_raw_os_error(ENOENT)),
        };
        match apmatrix_sysfs::child(&self.host, parent, name) {
            Some(apmatrix_sysfs::Node::Link(target)) => Ok(target),
            Some(_) => Err(io::Error::from_raw_os_error(EINVAL)),
            None => Err(io::Error::from_raw_os_error(ENOENT)),
        }
    }

    fn describe(&self) -> String {
        "/sys".into()
    }

    fn kernel_profile(&self) -> Option<&'static KernelProfile> {
        Some(self.host.profile())
    }
}

/// A path for messages: under the root's place.
pub fn shown(root: &dyn SysfsRoot, path: &str) -> String {
    Path::new(&root.describe()).join(path).display().to_string()
}
