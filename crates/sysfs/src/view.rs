//! The tree by path: the in-process API ([`SysfsView`] and the `*_path`
//! functions) that the admin layer and the tests use, with the errors an
//! open(2) or write(2) of that path would get.

use apmatrix_model::{ApError, Errno, Host, Written};

use crate::{child, children, read, write, Dir, File, Node};

/// The node at a path relative to the sysfs root (`""` is the root),
/// without following links.
pub fn lookup(host: &Host, path: &str) -> Option<Node> {
    let mut node = Node::Dir(Dir::Root);
    for name in path.split('/').filter(|c| !c.is_empty()) {
        let Node::Dir(dir) = node else {
            return None;
        };
        node = child(host, dir, name)?;
    }
    Some(node)
}

/// Why a path operation of the in-process API failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// No such file or directory (ENOENT).
    NotFound(String),
    /// The path is a directory or link where a file was wanted, or the
    /// attribute has no read (write) method: sysfs refuses the open (EACCES).
    NotPermitted(String),
    /// The write reached the attribute and the kernel refused it.
    Refused(ApError),
}

impl std::error::Error for AccessError {}

impl std::fmt::Display for AccessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessError::NotFound(p) => write!(f, "{p}: No such file or directory"),
            AccessError::NotPermitted(p) => write!(f, "{p}: Permission denied"),
            AccessError::Refused(e) => e.fmt(f),
        }
    }
}

impl AccessError {
    /// The errno a process would see: ENOENT, EACCES, or the kernel's
    /// refusal of the write.
    pub fn errno(&self) -> Errno {
        match self {
            AccessError::NotFound(_) => Errno::ENOENT,
            AccessError::NotPermitted(_) => Errno::EACCES,
            AccessError::Refused(e) => e.errno(),
        }
    }
}

/// The in-process sysfs: path-level reads and writes on a host, as a
/// process would do them through the mounted tree (links in the middle of
/// a path are followed; the last component is not).
pub struct SysfsView<'a> {
    /// The host the tree shows; writes change it.
    pub host: &'a mut Host,
}

impl SysfsView<'_> {
    fn resolve(&self, path: &str) -> Result<Node, AccessError> {
        resolve_path(self.host, path).ok_or_else(|| AccessError::NotFound(path.into()))
    }

    fn file(&self, path: &str, want_write: bool) -> Result<File, AccessError> {
        match self.resolve(path)? {
            Node::File(f) if (want_write && f.writable()) || (!want_write && f.readable()) => Ok(f),
            _ => Err(AccessError::NotPermitted(path.into())),
        }
    }

    /// `cat PATH`.
    pub fn read(&self, path: &str) -> Result<String, AccessError> {
        read_path(self.host, path)
    }

    /// One write(2) of `data` to PATH.
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<Written, AccessError> {
        let f = self.file(path, true)?;
        write(self.host, &f, data).map_err(AccessError::Refused)
    }

    /// `ls PATH`: the names in a directory.
    pub fn list(&self, path: &str) -> Result<Vec<String>, AccessError> {
        list_path(self.host, path)
    }

    /// `readlink PATH`.
    pub fn read_link(&self, path: &str) -> Result<String, AccessError> {
        match lookup(self.host, path) {
            Some(Node::Link(t)) => Ok(t),
            Some(_) => Err(AccessError::NotPermitted(path.into())),
            None => Err(AccessError::NotFound(path.into())),
        }
    }
}

/// `cat PATH` (links followed).
pub fn read_path(host: &Host, path: &str) -> Result<String, AccessError> {
    match resolve_path(host, path) {
        Some(Node::File(f)) if f.readable() => Ok(read(host, &f)),
        Some(_) => Err(AccessError::NotPermitted(path.into())),
        None => Err(AccessError::NotFound(path.into())),
    }
}

/// `ls PATH` (links followed): the names in a directory, sorted.
pub fn list_path(host: &Host, path: &str) -> Result<Vec<String>, AccessError> {
    match resolve_path(host, path) {
        Some(Node::Dir(d)) => Ok(children(host, d).into_iter().map(|(n, _)| n).collect()),
        Some(_) => Err(AccessError::NotPermitted(path.into())),
        None => Err(AccessError::NotFound(path.into())),
    }
}

/// One write(2) to the attribute at `path` (no links in it: a path as the
/// FUSE server knows it): ENOENT if it is gone, EACCES if it takes no write.
pub fn write_path(host: &mut Host, path: &str, data: &[u8]) -> Result<Written, AccessError> {
    match lookup(host, path) {
        Some(Node::File(f)) if f.writable() => write(host, &f, data).map_err(AccessError::Refused),
        Some(_) => Err(AccessError::NotPermitted(path.into())),
        None => Err(AccessError::NotFound(path.into())),
    }
}

/// Resolves a path as open(2) does: links are followed (relative to the
/// directory holding them), `..` steps up.
pub fn resolve_path(host: &Host, path: &str) -> Option<Node> {
    let mut stack: Vec<String> = Vec::new();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut hops = 0;
    loop {
        let Some(name) = pending.pop() else {
            return lookup(host, &stack.join("/"));
        };
        match name.as_str() {
            "." => continue,
            ".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let parent = lookup(host, &stack.join("/"))?;
        let Node::Dir(dir) = parent else {
            return None;
        };
        match child(host, dir, &name)? {
            Node::Link(target) => {
                hops += 1;
                if hops > 40 {
                    return None; // ELOOP
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
            _ => stack.push(name),
        }
    }
}
