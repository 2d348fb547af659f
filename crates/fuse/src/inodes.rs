//! The inode numbers the server has given the kernel: what lets the kernel
//! keep names, attributes, listings, link targets and file pages, and what
//! the server asks it to forget when the host changes.
//!
//! Two kinds of inode, because the kernel keeps two kinds of thing:
//!
//! * A file's inode is one content: looked up once, then frozen until the
//!   file changes, when the path is given a new inode and the kernel is
//!   told to forget the name. The page cache is per inode, so every open
//!   of an inode reads one state, however many read(2)s it takes and
//!   whatever changes meanwhile (kernfs: one open, one state), and no read
//!   of an old descriptor can put an old state in a page that a later open
//!   would find.
//! * A directory or a link keeps its number for the life of the mount,
//!   with a version that is its mtime and its FUSE generation: it moves
//!   whenever the listing changes (the kernel drops a directory's cached
//!   listing when its mtime moved, with `FUSE_AUTO_INVAL_DATA`).
//!
//! The kernel holds an inode while it has LOOKUP answers for it that it
//! has not FORGOTten; what it does not hold needs no notice.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use apmatrix_sysfs::{Cached, Dir, Node, TreeChange};

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

    fn is_file(&self) -> bool {
        matches!(self.node, Node::File(_))
    }
}

struct Slot {
    /// Shared with `by_path`'s key: a mounted tree has hundreds of
    /// thousands of paths, each held once.
    path: Arc<str>,
    version: u64,
    looked: Option<Looked>,
    /// LOOKUP answers the kernel has not forgotten.
    lookups: u64,
    /// A directory whose listing the kernel may have cached (it was read
    /// since its last notice).
    listed: bool,
}

pub(crate) struct Inodes {
    slots: HashMap<u64, Slot>,
    /// Each path's current inode. A file's older inodes are out of it but
    /// stay in `slots`, frozen, until the kernel forgets them.
    by_path: BTreeMap<Arc<str>, u64>,
    /// The inodes each directory of the tree was given (one, unless its
    /// path moved with the host's profile), so that a change can pass over
    /// the directories the kernel does not hold without printing a path.
    dirs: HashMap<Dir, Vec<u64>>,
    next_ino: u64,
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
        let root = Slot {
            path: "".into(),
            version: 0,
            looked: None,
            lookups: 0,
            listed: false,
        };
        Inodes {
            slots: HashMap::from([(ROOT_INO, root)]),
            by_path: BTreeMap::from([("".into(), ROOT_INO)]),
            dirs: HashMap::new(),
            next_ino: ROOT_INO + 1,
            clock: 0,
        }
    }

    pub fn path(&self, ino: u64) -> Option<&str> {
        self.slots.get(&ino).map(|s| &*s.path)
    }

    /// Whether the kernel holds the inode (the root, always).
    fn held(&self, ino: u64) -> bool {
        ino == ROOT_INO || self.slots.get(&ino).is_some_and(|s| s.lookups > 0)
    }

    /// Whether the kernel may have cached something of this path: only
    /// what it holds can be stale.
    pub fn knows(&self, path: &str) -> bool {
        self.by_path.get(path).is_some_and(|&ino| self.held(ino))
    }

    /// The path's current inode, a new one if it has none.
    pub fn ino_of(&mut self, path: String) -> u64 {
        if let Some(ino) = self.by_path.get(path.as_str()) {
            return *ino;
        }
        let path: Arc<str> = path.into();
        let ino = self.next_ino;
        self.next_ino += 1;
        self.clock += 1;
        let slot = Slot {
            path: path.clone(),
            version: self.clock,
            looked: None,
            lookups: 0,
            listed: false,
        };
        self.slots.insert(ino, slot);
        self.by_path.insert(path, ino);
        ino
    }

    pub fn version(&self, ino: u64) -> u64 {
        self.slots.get(&ino).map_or(0, |s| s.version)
    }

    /// What the inode shows: a file's frozen content, whatever the host's
    /// generation now; a directory's or link's as of `generation` only.
    pub fn looked(&self, ino: u64, generation: u64) -> Option<&Looked> {
        self.slots
            .get(&ino)?
            .looked
            .as_ref()
            .filter(|l| l.is_file() || l.generation == generation)
    }

    pub fn remember(&mut self, ino: u64, looked: Looked) {
        if let Node::Dir(dir) = looked.node {
            let inos = self.dirs.entry(dir).or_default();
            if !inos.contains(&ino) {
                inos.push(ino);
            }
        }
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.looked = Some(looked);
        }
    }

    /// A LOOKUP answered with this inode (counted before it is sent, while
    /// the host is held, so that a change compared after sees it held).
    pub fn looked_up(&mut self, ino: u64) {
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.lookups += 1;
        }
    }

    /// A directory's listing answered (the kernel caches it).
    pub fn listed(&mut self, ino: u64) {
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.listed = true;
        }
    }

    /// The kernel's FORGET: it dropped `n` of its lookups. An inode it no
    /// longer holds has no pages or attributes there: a file's old inode
    /// goes, a current one is looked up afresh when next asked for.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(slot) = self.slots.get_mut(&ino) else {
            return;
        };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups > 0 {
            return;
        }
        if self.by_path.get(&*slot.path) == Some(&ino) {
            slot.looked = None;
        } else {
            self.slots.remove(&ino);
        }
    }

    /// A new version for a directory or link (what the kernel has of it may
    /// differ now).
    fn bump(&mut self, ino: u64) {
        self.clock += 1;
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.version = self.clock;
            slot.looked = None;
            // Its cached listing is dropped at its next use (its mtime
            // moved): a later change of it needs no notice.
            slot.listed = false;
        }
    }

    /// The notices for a change, with what it touched outdated here.
    /// What the kernel does not hold needs none.
    pub fn plan(&mut self, changes: &[TreeChange]) -> Vec<Notice> {
        let mut notices = Vec::new();
        for change in changes {
            let path = change.path();
            match change {
                TreeChange::Gone(_) => {
                    if self.knows(path) {
                        self.entry_notice(path, &mut notices);
                    }
                    // Everything below went too. The inodes a process may
                    // still hold (a cwd, an open descriptor) must not answer
                    // from the cache either.
                    let (from, to) = (format!("{path}/"), format!("{path}0"));
                    let below: Vec<(Arc<str>, u64)> = self
                        .by_path
                        .range::<str, _>((Bound::Included(&*from), Bound::Excluded(&*to)))
                        .map(|(p, ino)| (p.clone(), *ino))
                        .collect();
                    for (p, ino) in below {
                        self.outdate(&p, ino, false, &mut notices);
                    }
                    if let Some(&ino) = self.by_path.get(path) {
                        self.outdate(path, ino, false, &mut notices);
                    }
                }
                TreeChange::Content(_) | TreeChange::Listing(_) => {
                    if let Some(&ino) = self.by_path.get(path) {
                        self.outdate(path, ino, true, &mut notices);
                    }
                }
            }
        }
        notices
    }

    fn entry_notice(&self, path: &str, notices: &mut Vec<Notice>) {
        let (parent, name) = parent_and_name(path);
        if let Some(&parent) = self.by_path.get(parent) {
            notices.push(Notice::Entry {
                parent,
                name: name.to_string(),
            });
        }
    }

    /// What the kernel holds of `path`'s inode is old. A file held is given
    /// a new inode at its next lookup (and, with `name`, the kernel is told
    /// to forget the name); a file not held is simply looked up afresh; a
    /// directory or link gets a new version and an inode notice.
    fn outdate(&mut self, path: &str, ino: u64, name: bool, notices: &mut Vec<Notice>) {
        let held = self.held(ino);
        let file = self
            .slots
            .get(&ino)
            .and_then(|s| s.looked.as_ref())
            .is_some_and(Looked::is_file);
        match (file, held) {
            (true, true) => {
                self.by_path.remove(path);
                if name {
                    self.entry_notice(path, notices);
                }
            }
            (true, false) => {
                if let Some(slot) = self.slots.get_mut(&ino) {
                    slot.looked = None;
                }
            }
            (false, held) => {
                self.bump(ino);
                if held {
                    notices.push(Notice::Inode(ino));
                }
            }
        }
    }
}

impl Cached for Inodes {
    fn holds(&self, path: &str) -> bool {
        self.knows(path)
    }

    /// The root is always held; another directory only if an inode it
    /// was given is (the kernel looked it up, so it was remembered).
    fn holds_dir(&self, dir: Dir) -> bool {
        dir == Dir::Root
            || self
                .dirs
                .get(&dir)
                .is_some_and(|inos| inos.iter().any(|&ino| self.held(ino)))
    }

    fn holds_listing(&self, path: &str) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|&ino| self.held(ino) && self.slots.get(&ino).is_some_and(|s| s.listed))
    }

    /// The names registered directly in `path`, found by skipping over
    /// each one's subtree: the paths that start with `name/` are exactly
    /// those from `name/` up to `name0` (`'0'` follows `'/'`).
    fn names_in(&self, path: &str) -> Option<Vec<String>> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names = Vec::new();
        let mut below = self
            .by_path
            .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded));
        while let Some((key, &ino)) = below.next() {
            let Some(rest) = key.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                None if self.held(ino) => names.push(rest.to_string()),
                None => {}
                Some((name, _)) => {
                    let past: Arc<str> = format!("{prefix}{name}0").into();
                    below = self
                        .by_path
                        .range((Bound::Included(past), Bound::Unbounded));
                }
            }
        }
        Some(names)
    }
}

/// Whether the notices can be sent from the thread that answers requests.
pub(crate) fn inline_safe(notices: &[Notice]) -> bool {
    notices.iter().all(|n| matches!(n, Notice::Inode(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(inodes: &mut Inodes, path: &str) -> u64 {
        let ino = inodes.ino_of(path.to_string());
        inodes.looked_up(ino);
        ino
    }

    #[test]
    fn names_in_lists_the_held_names_of_a_directory_only() {
        let mut inodes = Inodes::new();
        for p in [
            "a",
            "a/x",
            "a/x-y",
            "a/x/deep",
            "a/x/deep/er",
            "a/y",
            "a0",
            "b",
        ] {
            held(&mut inodes, p);
        }
        inodes.ino_of("a/seen-not-held".into()); // listed by a readdir only
        assert_eq!(inodes.names_in("a").unwrap(), ["x", "x-y", "y"]);
        assert_eq!(inodes.names_in("a/x").unwrap(), ["deep"]);
        assert_eq!(inodes.names_in("").unwrap(), ["a", "a0", "b"]);
        assert!(inodes.names_in("b").unwrap().is_empty());
    }

    #[test]
    fn a_held_file_that_changed_gets_a_new_inode_and_its_name_forgotten() {
        let mut inodes = Inodes::new();
        let dir = held(&mut inodes, "d");
        let file = held(&mut inodes, "d/f");
        let looked = |content: &str| Looked {
            generation: 0,
            node: Node::Dir(apmatrix_sysfs::Dir::Root),
            content: Some(content.as_bytes().into()),
        };
        inodes.remember(dir, looked(""));
        let file_node =
            apmatrix_sysfs::lookup(&apmatrix_model::Host::seed_example(), "bus/ap/apmask").unwrap();
        inodes.remember(
            file,
            Looked {
                node: file_node,
                ..looked("old\n")
            },
        );
        let notices = inodes.plan(&[TreeChange::Content("d/f".into())]);
        assert_eq!(
            notices,
            [Notice::Entry {
                parent: dir,
                name: "f".into()
            }]
        );
        // The old inode keeps its content for the descriptors open on it
        // until the kernel forgets it; the path gets a new one.
        assert_eq!(
            inodes.looked(file, 99).unwrap().content.as_deref(),
            Some(&b"old\n"[..])
        );
        let new = inodes.ino_of("d/f".into());
        assert_ne!(new, file);
        assert!(!inodes.knows("d/f"), "not held until looked up");
        inodes.forget(file, 1);
        assert!(inodes.path(file).is_none(), "forgotten: gone");
        // A directory keeps its number; a listing is noticed only if held.
        assert!(inodes.plan(&[TreeChange::Listing("d".into())]) == [Notice::Inode(dir)]);
        inodes.listed(dir);
        assert!(inodes.holds_listing("d"));
        inodes.plan(&[TreeChange::Listing("d".into())]);
        assert!(!inodes.holds_listing("d"), "dropped at its next use");
    }

    #[test]
    fn a_directory_is_held_while_an_inode_it_was_given_is() {
        let mut inodes = Inodes::new();
        let u = uuid::Uuid::from_u128(1);
        let ino = inodes.ino_of(format!("devices/vfio_ap/matrix/{u}"));
        inodes.remember(
            ino,
            Looked {
                generation: 0,
                node: Node::Dir(Dir::Mdev(u)),
                content: None,
            },
        );
        assert!(!inodes.holds_dir(Dir::Mdev(u)), "remembered, not looked up");
        inodes.looked_up(ino);
        assert!(inodes.holds_dir(Dir::Mdev(u)));
        assert!(!inodes.holds_dir(Dir::Mdev(uuid::Uuid::from_u128(2))));
        assert!(inodes.holds_dir(Dir::Root));
        inodes.forget(ino, 1);
        assert!(!inodes.holds_dir(Dir::Mdev(u)));
    }
}
