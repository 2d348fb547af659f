//! The inode numbers the server has given the kernel, with a version each:
//! what lets the kernel keep names, attributes and listings, and what the
//! server asks it to forget when the host changes.
//!
//! A path gets a number on first sight and keeps it for the life of the
//! mount. Its version is the inode's mtime and its FUSE generation: it
//! moves whenever the entry's content, listing or link target changes, so
//! that the kernel, asked to look again, sees that what it holds is old (a
//! directory's cached listing is reset when its mtime moved, with
//! `FUSE_AUTO_INVAL_DATA`; a new generation makes a new inode, which is how
//! a link's cached target is dropped).

use std::collections::BTreeMap;
use std::sync::Arc;

use apmatrix_sysfs::{Node, TreeChange};

/// What the kernel must be told after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Forget the inode's attributes (and with them, at the next use, a
    /// directory's cached listing). Takes no lock in the kernel.
    Inode(u64),
    /// Forget the name `name` in directory `parent` (and all below it).
    /// Takes the directory's lock, which a LOOKUP or READDIR in flight
    /// holds: never sent from the thread that answers them.
    Entry { parent: u64, name: String },
}

/// A node as looked up at one host generation, with a readable
/// attribute's content then.
#[derive(Clone, Debug)]
pub(crate) struct Looked {
    pub generation: u64,
    pub node: Node,
    pub content: Option<Arc<[u8]>>,
}

impl Looked {
    /// Its size: a file's content's length (sysfs says 4096 for all; a
    /// tool that copies by size gets the content, not padding). A
    /// write-only attribute, which has no content, keeps sysfs's 4096.
    pub fn size(&self) -> u64 {
        match (&self.node, &self.content) {
            (_, Some(content)) => content.len() as u64,
            (Node::File(_), None) => 4096,
            (Node::Dir(_), _) => 0,
            (Node::Link(target), _) => target.len() as u64,
        }
    }
}

pub(crate) struct Inodes {
    paths: Vec<String>,
    by_path: BTreeMap<String, u64>,
    versions: Vec<u64>,
    looked: Vec<Option<Looked>>,
    /// The last version given out.
    clock: u64,
}

pub(crate) const ROOT_INO: u64 = fuser::FUSE_ROOT_ID;

/// A path's directory and last name (`""` is the root).
pub(crate) fn parent_and_name(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl Inodes {
    pub fn new() -> Self {
        Inodes {
            paths: vec![String::new(), String::new()], // 0 unused, 1 = root
            by_path: BTreeMap::from([(String::new(), ROOT_INO)]),
            versions: vec![0, 0],
            looked: vec![None, None],
            clock: 0,
        }
    }

    pub fn path(&self, ino: u64) -> Option<&str> {
        self.paths
            .get(ino as usize)
            .map(String::as_str)
            .filter(|_| ino != 0)
    }

    /// Whether the kernel was ever given this path.
    pub fn knows(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    pub fn ino_of(&mut self, path: String) -> u64 {
        if let Some(ino) = self.by_path.get(&path) {
            return *ino;
        }
        let ino = self.paths.len() as u64;
        self.paths.push(path.clone());
        self.versions.push(0);
        self.looked.push(None);
        self.by_path.insert(path, ino);
        ino
    }

    pub fn version(&self, ino: u64) -> u64 {
        self.versions[ino as usize]
    }

    pub fn looked(&self, ino: u64, generation: u64) -> Option<&Looked> {
        self.looked[ino as usize]
            .as_ref()
            .filter(|l| l.generation == generation)
    }

    pub fn remember(&mut self, ino: u64, looked: Looked) {
        self.looked[ino as usize] = Some(looked);
    }

    /// A new version for an inode (its content may differ from what the
    /// kernel has).
    pub fn bump(&mut self, ino: u64) {
        self.clock += 1;
        self.versions[ino as usize] = self.clock;
        self.looked[ino as usize] = None;
    }

    /// The notices for a change, with the versions of everything it
    /// touched moved on. Paths the kernel was never given need none.
    pub fn plan(&mut self, changes: &[TreeChange]) -> Vec<Notice> {
        let mut notices = Vec::new();
        for change in changes {
            let path = change.path();
            if let TreeChange::Gone(_) = change {
                let (parent, name) = parent_and_name(path);
                if let Some(&parent) = self.by_path.get(parent) {
                    notices.push(Notice::Entry {
                        parent,
                        name: name.to_string(),
                    });
                }
                // Inodes below it that a process may still hold (a cwd, an
                // open descriptor) must not answer from the cache either.
                let below: Vec<u64> = self
                    .by_path
                    .range(format!("{path}/")..format!("{path}0"))
                    .map(|(_, ino)| *ino)
                    .collect();
                for ino in below {
                    self.bump(ino);
                    notices.push(Notice::Inode(ino));
                }
            }
            if let Some(&ino) = self.by_path.get(path) {
                self.bump(ino);
                notices.push(Notice::Inode(ino));
            }
        }
        notices
    }
}

/// Whether the notices can be sent from the thread that answers requests.
pub(crate) fn inline_safe(notices: &[Notice]) -> bool {
    notices.iter().all(|n| matches!(n, Notice::Inode(_)))
}
