//! What a change of the host changed in the tree: the paths whose content,
//! listing or existence differ, so that a server that lets the kernel
//! cache the tree can make it forget exactly those before it acknowledges
//! the change.
//!
//! Derived from the model's [`Changes`](apmatrix_model::Changes) (which
//! objects may differ), then made exact by printing only those objects'
//! entries before and after. `tests/tree_changes.rs` checks the result
//! against a walk of both whole trees.

use std::collections::BTreeSet;

use apmatrix_model::{AdapterId, Apqn, Driver, Host};
use uuid::Uuid;

use crate::attrs::{self, RootDevice};
use crate::{card_name, child, children, dir_exists, read, CardName, Dir, File, Node};

/// One thing of the tree a change altered. Paths are relative to the root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TreeChange {
    /// An attribute prints something else now.
    Content(String),
    /// A directory lists other names (some came or went).
    Listing(String),
    /// An entry vanished or became another thing (a link with a new
    /// target); everything under it went with it.
    Gone(String),
}

impl TreeChange {
    /// The path it is about.
    pub fn path(&self) -> &str {
        match self {
            TreeChange::Content(p) | TreeChange::Listing(p) | TreeChange::Gone(p) => p,
        }
    }
}

/// What a cache of the tree (the kernel's, fed by a FUSE server) may hold:
/// only that can be stale, so only that is compared and reported.
pub trait Cached {
    /// Whether it may hold the entry at `path` (its attributes, content or
    /// link target). A cache holds an entry's directory when it holds the
    /// entry (a name is looked up in its directory).
    fn holds(&self, path: &str) -> bool;
    /// Whether it may hold the listing of the directory at `path`.
    fn holds_listing(&self, path: &str) -> bool;
    /// The names in the directory at `path` whose entries it may hold
    /// (each one it `holds`); `None`: it cannot tell, look at all of them.
    fn names_in(&self, path: &str) -> Option<Vec<String>>;
    /// Whether it may hold the directory `dir` at all, told without
    /// printing its path (most directories a change touches are not held);
    /// `true`: it cannot tell, its path is asked then.
    fn holds_dir(&self, _dir: Dir) -> bool {
        true
    }
}

/// A cache that holds the whole tree.
struct Everything;

impl Cached for Everything {
    fn holds(&self, _path: &str) -> bool {
        true
    }
    fn holds_listing(&self, _path: &str) -> bool {
        true
    }
    fn names_in(&self, _path: &str) -> Option<Vec<String>> {
        None
    }
}

/// `format!` into a string allocated once, long enough for any path of
/// the tree's directories.
macro_rules! path {
    ($($arg:tt)*) => {{
        use std::fmt::Write as _;
        let mut path = String::with_capacity(96);
        let _ = write!(path, $($arg)*);
        path
    }};
}

/// The path of a directory of the tree (`host` names the mdev driver).
pub fn dir_path(host: &Host, dir: Dir) -> String {
    let matrix = "devices/vfio_ap/matrix";
    let types = "devices/vfio_ap/matrix/mdev_supported_types";
    match dir {
        Dir::Root => String::new(),
        Dir::Bus => "bus".into(),
        Dir::BusAp => "bus/ap".into(),
        Dir::BusApDevices => "bus/ap/devices".into(),
        Dir::BusApDrivers => "bus/ap/drivers".into(),
        Dir::ApDriver(d) => path!("bus/ap/drivers/{}", d.name()),
        Dir::BusMatrix => "bus/matrix".into(),
        Dir::BusMatrixDevices => "bus/matrix/devices".into(),
        Dir::BusMatrixDrivers => "bus/matrix/drivers".into(),
        Dir::MatrixDriver => "bus/matrix/drivers/vfio_ap".into(),
        Dir::BusMdev => "bus/mdev".into(),
        Dir::BusMdevDevices => "bus/mdev/devices".into(),
        Dir::BusMdevDrivers => "bus/mdev/drivers".into(),
        Dir::VfioMdevDriver => path!("bus/mdev/drivers/{}", host.profile().sysfs.mdev_driver),
        Dir::Devices => "devices".into(),
        Dir::DevicesAp => "devices/ap".into(),
        Dir::Card(a) => path!("devices/ap/{}", CardName(a)),
        Dir::Queue(q) => path!("devices/ap/{}/{q}", CardName(q.adapter)),
        Dir::DevicesVfioAp => "devices/vfio_ap".into(),
        Dir::Matrix => matrix.into(),
        Dir::MdevTypes => types.into(),
        Dir::MdevType => path!("{types}/{}", apmatrix_model::vfio::MDEV_TYPE),
        Dir::MdevTypeDevices => path!("{types}/{}/devices", apmatrix_model::vfio::MDEV_TYPE),
        Dir::Mdev(u) => path!("{matrix}/{u}"),
        Dir::Class => "class".into(),
        Dir::MdevBusClass => "class/mdev_bus".into(),
        Dir::Kernel => "kernel".into(),
        Dir::IommuGroups => "kernel/iommu_groups".into(),
        Dir::IommuGroup(g) => path!("kernel/iommu_groups/{g}"),
        Dir::IommuGroupDevices(g) => path!("kernel/iommu_groups/{g}/devices"),
    }
}

/// `dir/name`, allocated once (a change prints many of these).
fn join(dir: &str, name: &str) -> String {
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.push_str(dir);
        path.push('/');
    }
    path.push_str(name);
    path
}

/// Collects the changes, once each.
struct Diff<'a> {
    before: &'a Host,
    after: &'a Host,
    /// What the kernel may hold: what it was never given it cannot have
    /// cached, so it is neither compared nor reported.
    cached: &'a dyn Cached,
    out: BTreeSet<TreeChange>,
}

impl Diff<'_> {
    fn path(&self, dir: Dir) -> String {
        dir_path(self.after, dir)
    }

    /// A directory's path, if the cache may hold it.
    fn held(&self, dir: Dir) -> Option<String> {
        if !self.cached.holds_dir(dir) {
            return None;
        }
        let path = self.path(dir);
        self.cached.holds(&path).then_some(path)
    }

    /// Whether an attribute prints something else now (one without a show
    /// method prints nothing, ever).
    fn reads_differently(&self, f: &File, g: &File) -> bool {
        (f.readable() || g.readable()) && read(self.before, f) != read(self.after, g)
    }

    /// Only the attribute files of a directory with many other entries
    /// (the matrix device's mdevs, the AP root's cards).
    fn files(&mut self, dir: Dir, table: fn(&Host) -> Vec<File>) {
        let Some(path) = self.held(dir) else {
            return;
        };
        let (old, new) = (table(self.before), table(self.after));
        for f in &old {
            let entry = join(&path, f.name());
            if !self.cached.holds(&entry) {
                continue;
            }
            match new.iter().find(|g| g.name() == f.name()) {
                None => {
                    self.out.insert(TreeChange::Gone(entry));
                }
                Some(g) if self.reads_differently(f, g) => {
                    self.out.insert(TreeChange::Content(entry));
                }
                Some(_) => {}
            }
        }
        if self.cached.holds_listing(&path)
            && (old.len() != new.len() || old.iter().zip(&new).any(|(f, g)| f.name() != g.name()))
        {
            self.out.insert(TreeChange::Listing(path));
        }
    }

    /// A directory's own entries: its listing, each attribute's content,
    /// each link's target.
    fn dir(&mut self, dir: Dir) {
        // Nothing below a directory the kernel was never given is known.
        let Some(path) = self.held(dir) else {
            return;
        };
        let (was, is) = (dir_exists(self.before, dir), dir_exists(self.after, dir));
        if was && !is {
            self.out.insert(TreeChange::Gone(path));
            return;
        }
        if !(was && is) {
            return; // new: its parent's listing says so
        }
        // Only a listing held is compared, and only the entries held.
        let mut listed = None;
        if self.cached.holds_listing(&path) {
            let old = children(self.before, dir);
            if old != children(self.after, dir) {
                self.out.insert(TreeChange::Listing(path.clone()));
            }
            listed = Some(old);
        }
        let (names, all) = match self.cached.names_in(&path) {
            Some(names) => (names, false),
            None => {
                let all = listed.unwrap_or_else(|| children(self.before, dir));
                (all.into_iter().map(|(name, _)| name).collect(), true)
            }
        };
        for name in names {
            let entry = join(&path, &name);
            if all && !self.cached.holds(&entry) {
                continue;
            }
            match (
                child(self.before, dir, &name),
                child(self.after, dir, &name),
            ) {
                (Some(_), None) => {
                    self.out.insert(TreeChange::Gone(entry));
                }
                (Some(Node::File(f)), Some(Node::File(g))) if self.reads_differently(&f, &g) => {
                    self.out.insert(TreeChange::Content(entry));
                }
                (Some(Node::Link(t)), Some(Node::Link(u))) if t != u => {
                    self.out.insert(TreeChange::Gone(entry));
                }
                (Some(a), Some(b)) if a.kind() != b.kind() => {
                    self.out.insert(TreeChange::Gone(entry));
                }
                _ => {}
            }
        }
    }

    /// A large directory of links whose names the caller knows changed:
    /// the listing, and each vanished name.
    fn names(&mut self, dir: Dir, gone: impl IntoIterator<Item = String>) {
        if !dir_exists(self.after, dir) && !dir_exists(self.before, dir) {
            return;
        }
        let Some(path) = self.held(dir) else {
            return;
        };
        for name in gone {
            let entry = join(&path, &name);
            if self.cached.holds(&entry) {
                self.out.insert(TreeChange::Gone(entry));
            }
        }
        if self.cached.holds_listing(&path) {
            self.out.insert(TreeChange::Listing(path));
        }
    }

    /// A queue's directory and the driver directories that link to it;
    /// whether it came or went (its card's listing is the caller's).
    fn queue(&mut self, q: Apqn) -> Option<bool> {
        self.dir(Dir::Queue(q));
        let (was, is) = (
            self.before.queue_driver(q).flatten(),
            self.after.queue_driver(q).flatten(),
        );
        if was != is {
            if let Some(d) = was {
                self.names(Dir::ApDriver(d), [q.to_string()]);
            }
            if let Some(d) = is {
                self.names(Dir::ApDriver(d), []);
            }
        }
        let exists = (self.before.queue_exists(q), self.after.queue_exists(q));
        (exists.0 != exists.1).then_some(exists.1)
    }

    fn mdev_set(&mut self, created_or_removed: &[Uuid]) {
        let gone: Vec<String> = created_or_removed
            .iter()
            .filter(|u| self.after.mdev(u).is_none())
            .map(|u| u.to_string())
            .collect();
        for dir in [
            Dir::Matrix,
            Dir::BusMdevDevices,
            Dir::VfioMdevDriver,
            Dir::MdevTypeDevices,
        ] {
            self.names(dir, gone.clone());
        }
        self.dir(Dir::MdevType);
        let groups: Vec<String> = created_or_removed
            .iter()
            .filter(|u| self.after.mdev(u).is_none())
            .filter_map(|u| self.before.mdev(u))
            .map(|m| m.iommu_group.to_string())
            .collect();
        self.names(Dir::IommuGroups, groups);
    }
}

/// Everything of the tree that differs between `before` and `after` (two
/// states of one host, or of one guest's bus).
pub fn tree_changes(before: &Host, after: &Host) -> Vec<TreeChange> {
    tree_changes_known(before, after, &Everything)
}

/// [`tree_changes`], limited to what `cached` says a cache may hold (a
/// FUSE server's: what it gave the kernel), so that a change costs in
/// proportion to what is cached, not to the size of the tree.
pub fn tree_changes_known(before: &Host, after: &Host, cached: &dyn Cached) -> Vec<TreeChange> {
    let changes = after.changes_since(before);
    if changes.is_empty() {
        return Vec::new();
    }
    let mut diff = Diff {
        before,
        after,
        cached,
        out: BTreeSet::new(),
    };
    if changes.bus {
        for dir in [Dir::BusAp, Dir::DevicesVfioAp, Dir::MdevType] {
            diff.dir(dir);
        }
        diff.files(Dir::DevicesAp, |h| {
            attrs::root_attrs(h, RootDevice::Ap).collect()
        });
        // The matrix device's own attributes follow the profile and
        // whether vfio_ap is loaded, both bus-wide.
        diff.files(Dir::Matrix, |h| attrs::matrix_attrs(h).collect());
    }
    let card_set: Vec<AdapterId> = changes
        .cards
        .iter()
        .copied()
        .filter(|a| before.has_card_device(*a) != after.has_card_device(*a))
        .collect();
    if !card_set.is_empty() {
        let gone: Vec<String> = card_set
            .iter()
            .filter(|a| !after.has_card_device(**a))
            .map(|a| card_name(*a))
            .collect();
        diff.names(Dir::DevicesAp, gone.clone());
        diff.names(Dir::BusApDevices, gone.clone());
        diff.names(Dir::ApDriver(Driver::Cex4Card), gone);
    }
    for a in &changes.cards {
        diff.dir(Dir::Card(*a));
    }
    // Queues that came or went: `bus/ap/devices` lists them all.
    let (mut queues_gone, mut queues_came) = (Vec::new(), false);
    for q in changes.apqns() {
        match diff.queue(q) {
            Some(false) => queues_gone.push(q.to_string()),
            Some(true) => queues_came = true,
            None => {}
        }
    }
    if queues_came || !queues_gone.is_empty() {
        diff.names(Dir::BusApDevices, queues_gone);
    }
    let mut created_or_removed = Vec::new();
    for u in &changes.mdevs {
        diff.dir(Dir::Mdev(*u));
        if before.mdev(u).is_none() || after.mdev(u).is_none() {
            created_or_removed.push(*u);
        }
    }
    if changes.mdev_set {
        diff.mdev_set(&created_or_removed);
    }
    diff.out.into_iter().collect()
}
