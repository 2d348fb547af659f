//! apmatrix-sysfs: the emulated host's sysfs tree as a view of the model.
//!
//! One path table serves both the in-process API ([`SysfsView`]) and the
//! FUSE server: [`child`] and [`children`] say what a directory holds,
//! [`read`] prints an attribute as the kernel does, [`write()`] turns a
//! write(2) into a model operation with the kernel's errno. The layout
//! follows kernel.md §1 and §4–§6 and what tools.md says mdevctl, lszcrypt
//! and QEMU read; every symbolic link is relative, so resolving one never
//! leaves the tree wherever it is mounted.
//!
//! Paths are relative to the sysfs root (`bus/ap/apmask`, not
//! `/sys/bus/ap/apmask`). Which optional attributes exist is decided by the
//! host's kernel profile ([`apmatrix_model::profile::SysfsAttributes`]).

#![deny(missing_docs)]

mod attrs;
mod changes;
mod view;

use apmatrix_model::{AdapterId, Apqn, Driver, Host};
use uuid::Uuid;

pub use attrs::{
    read, write, write_target, BusAttr, CardAttr, File, MatrixAttr, MdevAttr, QueueAttr, RootAttr,
    RootDevice, TypeAttr,
};
pub use changes::{dir_path, tree_changes, tree_changes_known, Cached, TreeChange};
pub use view::{list_path, lookup, read_path, resolve_path, write_path, AccessError, SysfsView};

/// The mdev bus's driver for vfio_ap mdevs (an mdev's `driver` link): the
/// generation's ([`SysfsAttributes::mdev_driver`](apmatrix_model::profile::SysfsAttributes)).
fn mdev_driver(host: &Host) -> &'static str {
    host.profile().sysfs.mdev_driver
}

/// A directory of the tree.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The sysfs root (`/sys`).
    Root,
    /// `bus`: the AP, matrix and mdev buses.
    Bus,
    /// `bus/ap`: the AP bus, with its masks and settings.
    BusAp,
    /// `bus/ap/devices`: links to every card and queue.
    BusApDevices,
    /// `bus/ap/drivers`: cex4card, cex4queue and vfio_ap.
    BusApDrivers,
    /// `bus/ap/drivers/<driver>`: links to the devices bound to it.
    ApDriver(Driver),
    /// `bus/matrix`: vfio_ap's own bus, with the matrix device and its driver.
    BusMatrix,
    /// `bus/matrix/devices`: a link to the matrix device.
    BusMatrixDevices,
    /// `bus/matrix/drivers`: vfio_ap.
    BusMatrixDrivers,
    /// `bus/matrix/drivers/vfio_ap`: a link to the matrix device it binds.
    MatrixDriver,
    /// `bus/mdev`: the mediated device bus.
    BusMdev,
    /// `bus/mdev/devices`: links to every mdev.
    BusMdevDevices,
    /// `bus/mdev/drivers`.
    BusMdevDrivers,
    /// `bus/mdev/drivers/vfio_mdev` (`vfio_ap_mdev` from 5.15): links to the
    /// mdevs it binds (all of them).
    VfioMdevDriver,
    /// `devices`: the AP and vfio_ap device trees.
    Devices,
    /// `devices/ap`: the AP bus's root device, parent of the cards.
    DevicesAp,
    /// `devices/ap/cardXX`: a card, its attributes and its queues.
    Card(AdapterId),
    /// `devices/ap/cardXX/XX.YYYY`: a queue device.
    Queue(Apqn),
    /// `devices/vfio_ap`: vfio_ap's root device.
    DevicesVfioAp,
    /// `devices/vfio_ap/matrix`: the matrix device, parent of every mdev.
    Matrix,
    /// `devices/vfio_ap/matrix/mdev_supported_types`.
    MdevTypes,
    /// `.../mdev_supported_types/vfio_ap-passthrough`: the one mdev type, with
    /// `create` and `available_instances`.
    MdevType,
    /// `.../vfio_ap-passthrough/devices`: links to the mdevs of the type.
    MdevTypeDevices,
    /// `devices/vfio_ap/matrix/<uuid>`: an mdev, with its matrix attributes.
    Mdev(Uuid),
    /// `class`: here only `mdev_bus`.
    Class,
    /// `class/mdev_bus`: links to the devices that parent mdevs (the matrix
    /// device).
    MdevBusClass,
    /// `kernel`: here only `iommu_groups`.
    Kernel,
    /// `kernel/iommu_groups`: one group per mdev.
    IommuGroups,
    /// `kernel/iommu_groups/<n>`: an mdev's IOMMU group (QEMU opens
    /// `/dev/vfio/<n>`).
    IommuGroup(u32),
    /// `kernel/iommu_groups/<n>/devices`: a link to the group's mdev.
    IommuGroupDevices(u32),
}

/// An entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A directory.
    Dir(Dir),
    /// An attribute file.
    File(File),
    /// A symbolic link and its relative target.
    Link(String),
}

/// What kind of entry a name in a listing is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// An attribute file.
    File,
    /// A symbolic link.
    Link,
}

impl Node {
    /// What kind of entry it is, as a listing shows it.
    pub fn kind(&self) -> Kind {
        match self {
            Node::Dir(_) => Kind::Dir,
            Node::File(_) => Kind::File,
            Node::Link(_) => Kind::Link,
        }
    }
}

const AP_DRIVERS: [Driver; 3] = [Driver::Cex4Card, Driver::Cex4Queue, Driver::VfioAp];

/// A card's directory name, `cardXX`, for printing into a path without a
/// string of its own.
struct CardName(AdapterId);

impl std::fmt::Display for CardName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "card{:02x}", self.0 .0)
    }
}

fn card_name(a: AdapterId) -> String {
    CardName(a).to_string()
}

/// `cardXX` with two lower-case hex digits, as the kernel names it.
fn parse_card_name(name: &str) -> Option<AdapterId> {
    let hex = name.strip_prefix("card")?;
    parse_fixed_hex(hex, 2).map(|v| AdapterId(v as u8))
}

/// `XX.YYYY`, lower-case hex, as the kernel names a queue.
fn parse_queue_name(name: &str) -> Option<Apqn> {
    let (a, d) = name.split_once('.')?;
    let a = parse_fixed_hex(a, 2)?;
    let d = parse_fixed_hex(d, 4)?;
    (d <= 0xff).then(|| Apqn::new(a as u8, d as u8))
}

fn parse_fixed_hex(text: &str, width: usize) -> Option<u32> {
    if text.len() != width || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// The kernel prints mdev directory names lower-case (`%pUl`).
fn parse_mdev_name(name: &str) -> Option<Uuid> {
    if name.len() != 36 || name.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Uuid::try_parse(name).ok()
}

fn parse_decimal(name: &str) -> Option<u32> {
    if name.is_empty() || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse().ok()
}

fn card_exists(host: &Host, a: AdapterId) -> bool {
    host.has_card_device(a)
}

fn mdev_in_group(host: &Host, group: u32) -> Option<Uuid> {
    host.mdevs()
        .find(|m| m.iommu_group == group)
        .map(|m| m.uuid)
}

/// Whether a directory is vfio_ap's or the mdev core's, which a guest's
/// kernel does not load.
fn vfio_ap_dir(dir: Dir) -> bool {
    matches!(
        dir,
        Dir::BusMatrix
            | Dir::BusMatrixDevices
            | Dir::BusMatrixDrivers
            | Dir::MatrixDriver
            | Dir::BusMdev
            | Dir::BusMdevDevices
            | Dir::BusMdevDrivers
            | Dir::VfioMdevDriver
            | Dir::DevicesVfioAp
            | Dir::Matrix
            | Dir::MdevTypes
            | Dir::MdevType
            | Dir::MdevTypeDevices
            | Dir::Mdev(_)
            | Dir::Class
            | Dir::MdevBusClass
            | Dir::IommuGroups
            | Dir::IommuGroup(_)
            | Dir::IommuGroupDevices(_)
            | Dir::ApDriver(Driver::VfioAp)
    )
}

/// The entry `name` of directory `dir`, if the host has it now.
pub fn child(host: &Host, dir: Dir, name: &str) -> Option<Node> {
    entry(host, dir, name)
        .filter(|n| host.has_vfio_ap() || !matches!(n, Node::Dir(d) if vfio_ap_dir(*d)))
}

fn entry(host: &Host, dir: Dir, name: &str) -> Option<Node> {
    let d = |dir| Some(Node::Dir(dir));
    let link = |target: String| Some(Node::Link(target));
    match dir {
        Dir::Root => match name {
            "bus" => d(Dir::Bus),
            "devices" => d(Dir::Devices),
            "class" => d(Dir::Class),
            "kernel" => d(Dir::Kernel),
            _ => None,
        },
        Dir::Bus => match name {
            "ap" => d(Dir::BusAp),
            "matrix" => d(Dir::BusMatrix),
            "mdev" => d(Dir::BusMdev),
            _ => None,
        },
        Dir::BusMatrix => match name {
            "devices" => d(Dir::BusMatrixDevices),
            "drivers" => d(Dir::BusMatrixDrivers),
            _ => None,
        },
        Dir::BusMatrixDevices => (name == apmatrix_model::vfio::MATRIX_DEVICE)
            .then(|| Node::Link("../../../devices/vfio_ap/matrix".into())),
        Dir::BusMatrixDrivers => (name == "vfio_ap").then_some(Node::Dir(Dir::MatrixDriver)),
        Dir::MatrixDriver => (name == apmatrix_model::vfio::MATRIX_DEVICE)
            .then(|| Node::Link("../../../../devices/vfio_ap/matrix".into())),
        Dir::BusAp => match name {
            "devices" => d(Dir::BusApDevices),
            "drivers" => d(Dir::BusApDrivers),
            _ => attrs::named(attrs::bus_attrs(host), name).map(Node::File),
        },
        Dir::BusApDevices => {
            if let Some(a) = parse_card_name(name).filter(|a| card_exists(host, *a)) {
                return link(format!("../../../devices/ap/{}", card_name(a)));
            }
            let q = parse_queue_name(name).filter(|q| host.queue_exists(*q))?;
            link(format!("../../../devices/ap/{}/{q}", card_name(q.adapter)))
        }
        Dir::BusApDrivers => AP_DRIVERS
            .into_iter()
            .find(|drv| drv.name() == name)
            .and_then(|drv| d(Dir::ApDriver(drv))),
        Dir::ApDriver(Driver::Cex4Card) => {
            let a = parse_card_name(name).filter(|a| card_exists(host, *a))?;
            link(format!("../../../../devices/ap/{}", card_name(a)))
        }
        Dir::ApDriver(drv) => {
            let q = parse_queue_name(name)?;
            (host.queue_driver(q) == Some(Some(drv))).then(|| {
                Node::Link(format!(
                    "../../../../devices/ap/{}/{q}",
                    card_name(q.adapter)
                ))
            })
        }
        Dir::BusMdev => match name {
            "devices" => d(Dir::BusMdevDevices),
            "drivers" => d(Dir::BusMdevDrivers),
            _ => None,
        },
        Dir::BusMdevDevices => {
            let u = parse_mdev_name(name).filter(|u| host.mdev(u).is_some())?;
            link(format!("../../../devices/vfio_ap/matrix/{u}"))
        }
        Dir::BusMdevDrivers => {
            (name == mdev_driver(host)).then_some(Node::Dir(Dir::VfioMdevDriver))
        }
        Dir::VfioMdevDriver => {
            let u = parse_mdev_name(name).filter(|u| host.mdev(u).is_some())?;
            link(format!("../../../../devices/vfio_ap/matrix/{u}"))
        }
        Dir::Devices => match name {
            "ap" => d(Dir::DevicesAp),
            "vfio_ap" => d(Dir::DevicesVfioAp),
            _ => None,
        },
        Dir::DevicesAp => {
            if let Some(f) = attrs::named(attrs::root_attrs(host, RootDevice::Ap), name) {
                return Some(Node::File(f));
            }
            let a = parse_card_name(name).filter(|a| card_exists(host, *a))?;
            d(Dir::Card(a))
        }
        Dir::Card(a) => match name {
            "driver" => link("../../../bus/ap/drivers/cex4card".into()),
            "subsystem" => link("../../../bus/ap".into()),
            _ => {
                if let Some(q) = parse_queue_name(name) {
                    return (q.adapter == a && host.queue_exists(q))
                        .then_some(Node::Dir(Dir::Queue(q)));
                }
                attrs::named(attrs::card_attrs(host, a), name).map(Node::File)
            }
        },
        Dir::Queue(q) => match name {
            "driver" => {
                let drv = host.queue_driver(q).flatten()?;
                link(format!("../../../../bus/ap/drivers/{}", drv.name()))
            }
            "subsystem" => link("../../../../bus/ap".into()),
            _ => attrs::named(attrs::queue_attrs(host, q), name).map(Node::File),
        },
        Dir::DevicesVfioAp => match name {
            "matrix" => d(Dir::Matrix),
            _ => attrs::named(attrs::root_attrs(host, RootDevice::VfioAp), name).map(Node::File),
        },
        Dir::Matrix => {
            match name {
                "mdev_supported_types" => return d(Dir::MdevTypes),
                "driver" => return link("../../../bus/matrix/drivers/vfio_ap".into()),
                "subsystem" => return link("../../../bus/matrix".into()),
                _ => {}
            }
            if let Some(f) = attrs::named(attrs::matrix_attrs(host), name) {
                return Some(Node::File(f));
            }
            let u = parse_mdev_name(name).filter(|u| host.mdev(u).is_some())?;
            d(Dir::Mdev(u))
        }
        Dir::MdevTypes => {
            (name == apmatrix_model::vfio::MDEV_TYPE).then_some(Node::Dir(Dir::MdevType))
        }
        Dir::MdevType => match name {
            "devices" => d(Dir::MdevTypeDevices),
            _ => attrs::named(attrs::type_attrs(host), name).map(Node::File),
        },
        Dir::MdevTypeDevices => {
            let u = parse_mdev_name(name).filter(|u| host.mdev(u).is_some())?;
            link(format!("../../../{u}"))
        }
        Dir::Mdev(u) => match name {
            "mdev_type" => link(format!(
                "../mdev_supported_types/{}",
                apmatrix_model::vfio::MDEV_TYPE
            )),
            "driver" => link(format!(
                "../../../../bus/mdev/drivers/{}",
                mdev_driver(host)
            )),
            "subsystem" => link("../../../../bus/mdev".into()),
            "iommu_group" => {
                let group = host.mdev(&u)?.iommu_group;
                link(format!("../../../../kernel/iommu_groups/{group}"))
            }
            _ => attrs::named(attrs::mdev_attrs(host, u), name).map(Node::File),
        },
        Dir::Class => (name == "mdev_bus").then_some(Node::Dir(Dir::MdevBusClass)),
        Dir::MdevBusClass => (name == apmatrix_model::vfio::MATRIX_DEVICE)
            .then(|| Node::Link("../../devices/vfio_ap/matrix".into())),
        Dir::Kernel => (name == "iommu_groups").then_some(Node::Dir(Dir::IommuGroups)),
        Dir::IommuGroups => {
            let g = parse_decimal(name)?;
            mdev_in_group(host, g).map(|_| Node::Dir(Dir::IommuGroup(g)))
        }
        Dir::IommuGroup(g) => (name == "devices").then_some(Node::Dir(Dir::IommuGroupDevices(g))),
        Dir::IommuGroupDevices(g) => {
            let u = parse_mdev_name(name).filter(|u| mdev_in_group(host, g) == Some(*u))?;
            link(format!("../../../../devices/vfio_ap/matrix/{u}"))
        }
    }
}

/// Everything directory `dir` holds now, sorted by name.
pub fn children(host: &Host, dir: Dir) -> Vec<(String, Kind)> {
    let mut all = entries(host, dir);
    if !host.has_vfio_ap() {
        all.retain(|(name, kind)| *kind != Kind::Dir || child(host, dir, name).is_some());
    }
    all
}

fn entries(host: &Host, dir: Dir) -> Vec<(String, Kind)> {
    let mut out: Vec<(String, Kind)> = Vec::new();
    let mut add = |name: String, kind: Kind| out.push((name, kind));
    let cards = || host.card_devices().map(|c| c.id);
    let queues = |a: AdapterId| {
        host.topology()
            .usage_domains
            .iter()
            .map(move |d| Apqn::new(a.0, d))
    };
    match dir {
        Dir::Root => {
            for n in ["bus", "class", "devices", "kernel"] {
                add(n.into(), Kind::Dir);
            }
        }
        Dir::Bus => {
            for n in ["ap", "matrix", "mdev"] {
                add(n.into(), Kind::Dir);
            }
        }
        Dir::BusMatrix => {
            add("devices".into(), Kind::Dir);
            add("drivers".into(), Kind::Dir);
        }
        Dir::BusMatrixDevices | Dir::MatrixDriver => {
            add(apmatrix_model::vfio::MATRIX_DEVICE.into(), Kind::Link)
        }
        Dir::BusMatrixDrivers => add("vfio_ap".into(), Kind::Dir),
        Dir::BusAp => {
            add("devices".into(), Kind::Dir);
            add("drivers".into(), Kind::Dir);
            for f in attrs::bus_attrs(host) {
                add(f.name().into(), Kind::File);
            }
        }
        Dir::BusApDevices => {
            for a in cards() {
                add(card_name(a), Kind::Link);
                for q in queues(a) {
                    add(q.to_string(), Kind::Link);
                }
            }
        }
        Dir::BusApDrivers => {
            for drv in AP_DRIVERS {
                add(drv.name().into(), Kind::Dir);
            }
        }
        Dir::ApDriver(Driver::Cex4Card) => {
            for a in cards() {
                add(card_name(a), Kind::Link);
            }
        }
        Dir::ApDriver(drv) => {
            for q in host.queues_bound_to(drv) {
                add(q.to_string(), Kind::Link);
            }
        }
        Dir::BusMdev => {
            add("devices".into(), Kind::Dir);
            add("drivers".into(), Kind::Dir);
        }
        Dir::BusMdevDevices | Dir::VfioMdevDriver | Dir::MdevTypeDevices => {
            for m in host.mdevs() {
                add(m.uuid.to_string(), Kind::Link);
            }
        }
        Dir::BusMdevDrivers => add(mdev_driver(host).into(), Kind::Dir),
        Dir::Devices => {
            add("ap".into(), Kind::Dir);
            add("vfio_ap".into(), Kind::Dir);
        }
        Dir::DevicesAp => {
            for f in attrs::root_attrs(host, RootDevice::Ap) {
                add(f.name().into(), Kind::File);
            }
            for a in cards() {
                add(card_name(a), Kind::Dir);
            }
        }
        Dir::Card(a) => {
            add("driver".into(), Kind::Link);
            add("subsystem".into(), Kind::Link);
            for f in attrs::card_attrs(host, a) {
                add(f.name().into(), Kind::File);
            }
            for q in queues(a) {
                add(q.to_string(), Kind::Dir);
            }
        }
        Dir::Queue(q) => {
            if host.queue_driver(q).flatten().is_some() {
                add("driver".into(), Kind::Link);
            }
            add("subsystem".into(), Kind::Link);
            for f in attrs::queue_attrs(host, q) {
                add(f.name().into(), Kind::File);
            }
        }
        Dir::DevicesVfioAp => {
            add("matrix".into(), Kind::Dir);
            for f in attrs::root_attrs(host, RootDevice::VfioAp) {
                add(f.name().into(), Kind::File);
            }
        }
        Dir::Matrix => {
            add("driver".into(), Kind::Link);
            add("subsystem".into(), Kind::Link);
            add("mdev_supported_types".into(), Kind::Dir);
            for f in attrs::matrix_attrs(host) {
                add(f.name().into(), Kind::File);
            }
            for m in host.mdevs() {
                add(m.uuid.to_string(), Kind::Dir);
            }
        }
        Dir::MdevTypes => add(apmatrix_model::vfio::MDEV_TYPE.into(), Kind::Dir),
        Dir::MdevType => {
            add("devices".into(), Kind::Dir);
            for f in attrs::type_attrs(host) {
                add(f.name().into(), Kind::File);
            }
        }
        Dir::Mdev(u) => {
            for n in ["driver", "iommu_group", "mdev_type", "subsystem"] {
                add(n.into(), Kind::Link);
            }
            for f in attrs::mdev_attrs(host, u) {
                add(f.name().into(), Kind::File);
            }
        }
        Dir::Class => add("mdev_bus".into(), Kind::Dir),
        Dir::MdevBusClass => add(apmatrix_model::vfio::MATRIX_DEVICE.into(), Kind::Link),
        Dir::Kernel => add("iommu_groups".into(), Kind::Dir),
        Dir::IommuGroups => {
            for m in host.mdevs() {
                add(m.iommu_group.to_string(), Kind::Dir);
            }
        }
        Dir::IommuGroup(_) => add("devices".into(), Kind::Dir),
        Dir::IommuGroupDevices(g) => {
            if let Some(u) = mdev_in_group(host, g) {
                add(u.to_string(), Kind::Link);
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Whether a directory still exists (an mdev's may vanish on `remove`).
pub fn dir_exists(host: &Host, dir: Dir) -> bool {
    if !host.has_vfio_ap() && vfio_ap_dir(dir) {
        return false;
    }
    match dir {
        Dir::Card(a) => card_exists(host, a),
        Dir::Queue(q) => host.queue_exists(q),
        Dir::Mdev(u) => host.mdev(&u).is_some(),
        Dir::IommuGroup(g) | Dir::IommuGroupDevices(g) => mdev_in_group(host, g).is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests;
