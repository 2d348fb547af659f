//! Every attribute file of the tree in one table per object: its name,
//! mode and when it is present (profile, driver), with typed keys. Its
//! printer ([`read`]) and its model write ([`write_target`]) are exhaustive
//! matches on those keys, so an attribute cannot be listed without both
//! (kernel.md §1, §4, §5, §6).

mod print;

use apmatrix_model::uevent::Device;
use apmatrix_model::{AdapterId, ApError, Apqn, Driver, Host, Written};
use uuid::Uuid;

pub use print::{read, write_target};

const RO: u16 = 0o444;
const WO: u16 = 0o200;
const RW: u16 = 0o644;

/// When an attribute exists.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum When {
    Always,
    /// The profile has `/sys/bus/ap/scans` and `bindings`.
    ScansAndBindings,
    /// The profile has `/sys/bus/ap/features`.
    Features,
    /// The profile has an mdev's `guest_matrix`.
    GuestMatrix,
    /// The queue is bound to vfio_ap and the profile has its `status`.
    VfioApStatus,
    /// The queue is bound to cex4queue (zcrypt adds `load` and `online`).
    Zcrypt,
    /// The profile has an mdev's `ap_config`.
    ApConfig,
    /// The profile has the matrix device's `features`.
    MatrixFeatures,
}

/// One object's attributes, declared once: the enum of typed keys and, per
/// key, its file name, mode and presence. Keys are listed in `ls` order.
macro_rules! attributes {
    ($(#[$doc:meta])* $ty:ident { $($var:ident = $name:literal, $mode:ident, $when:ident;)* }) => {
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $ty { $(#[doc = concat!("`", $name, "`")] $var,)* }

        impl $ty {
            /// Every attribute, sorted by name.
            pub const ALL: &'static [$ty] = &[$($ty::$var,)*];

            /// The file's name.
            pub fn name(self) -> &'static str {
                match self { $($ty::$var => $name,)* }
            }

            /// The permission bits sysfs shows (0444, 0200 or 0644).
            pub fn mode(self) -> u16 {
                match self { $($ty::$var => $mode,)* }
            }

            fn when(self) -> When {
                match self { $($ty::$var => When::$when,)* }
            }
        }
    };
}

attributes! {
    /// `/sys/bus/ap` attributes.
    BusAttr {
        ApAdapterMask = "ap_adapter_mask", RO, Always;
        ApControlDomainMask = "ap_control_domain_mask", RO, Always;
        ApDomain = "ap_domain", RW, Always;
        ApInterrupts = "ap_interrupts", RO, Always;
        ApMaxAdapterId = "ap_max_adapter_id", RO, Always;
        ApMaxDomainId = "ap_max_domain_id", RO, Always;
        ApUsageDomainMask = "ap_usage_domain_mask", RO, Always;
        Apmask = "apmask", RW, Always;
        Aqmask = "aqmask", RW, Always;
        Bindings = "bindings", RO, ScansAndBindings;
        ConfigTime = "config_time", RW, Always;
        Features = "features", RO, Features;
        PollThread = "poll_thread", RW, Always;
        PollTimeout = "poll_timeout", RW, Always;
        Scans = "scans", RW, ScansAndBindings;
    }
}

attributes! {
    /// A card's attributes (ap_card.c; cex4card adds `load`, `online`,
    /// `type`, and binds every card).
    CardAttr {
        ApFunctions = "ap_functions", RO, Always;
        Chkstop = "chkstop", RO, Always;
        Config = "config", RW, Always;
        Depth = "depth", RO, Always;
        Hwtype = "hwtype", RO, Always;
        Load = "load", RO, Always;
        MaxMsgSize = "max_msg_size", RO, Always;
        Modalias = "modalias", RO, Always;
        Online = "online", RW, Always;
        PendingqCount = "pendingq_count", RO, Always;
        RawHwtype = "raw_hwtype", RO, Always;
        RequestCount = "request_count", RW, Always;
        RequestqCount = "requestq_count", RO, Always;
        Type = "type", RO, Always;
        Uevent = "uevent", RW, Always;
    }
}

attributes! {
    /// A queue's attributes (ap_queue.c, and its driver's).
    QueueAttr {
        ApFunctions = "ap_functions", RO, Always;
        Chkstop = "chkstop", RO, Always;
        Config = "config", RO, Always;
        Interrupt = "interrupt", RO, Always;
        Load = "load", RO, Zcrypt;
        Online = "online", RW, Zcrypt;
        PendingqCount = "pendingq_count", RO, Always;
        RequestCount = "request_count", RW, Always;
        RequestqCount = "requestq_count", RO, Always;
        Reset = "reset", RW, Always;
        Status = "status", RO, VfioApStatus;
        Uevent = "uevent", RW, Always;
    }
}

attributes! {
    /// The mdev type's attributes (no `description`: vfio_ap has none).
    TypeAttr {
        AvailableInstances = "available_instances", RO, Always;
        Create = "create", WO, Always;
        DeviceApi = "device_api", RO, Always;
        Name = "name", RO, Always;
    }
}

attributes! {
    /// The matrix device's own attributes (`/sys/devices/vfio_ap/matrix`).
    MatrixAttr {
        Features = "features", RO, MatrixFeatures;
        Uevent = "uevent", RW, Always;
    }
}

attributes! {
    /// An mdev's attributes.
    MdevAttr {
        ApConfig = "ap_config", RW, ApConfig;
        AssignAdapter = "assign_adapter", WO, Always;
        AssignControlDomain = "assign_control_domain", WO, Always;
        AssignDomain = "assign_domain", WO, Always;
        ControlDomains = "control_domains", RO, Always;
        GuestMatrix = "guest_matrix", RO, GuestMatrix;
        Matrix = "matrix", RO, Always;
        Remove = "remove", WO, Always;
        Uevent = "uevent", RW, Always;
        UnassignAdapter = "unassign_adapter", WO, Always;
        UnassignControlDomain = "unassign_control_domain", WO, Always;
        UnassignDomain = "unassign_domain", WO, Always;
    }
}

attributes! {
    /// A root device's attributes (`/sys/devices/ap`, `/sys/devices/vfio_ap`).
    RootAttr {
        Uevent = "uevent", RW, Always;
    }
}

/// The two root devices of the tree: no bus uevent keys, so their `uevent`
/// reads empty (docs/research/uevents.md §2).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RootDevice {
    /// `/sys/devices/ap`.
    Ap,
    /// `/sys/devices/vfio_ap`.
    VfioAp,
}

/// An attribute file: the object it belongs to and which attribute.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum File {
    /// `/sys/bus/ap/<attr>`.
    Bus(BusAttr),
    /// `/sys/devices/ap/cardNN/<attr>`.
    Card(AdapterId, CardAttr),
    /// `/sys/devices/ap/cardNN/NN.NNNN/<attr>`.
    Queue(Apqn, QueueAttr),
    /// `/sys/devices/vfio_ap/matrix/<attr>`.
    Matrix(MatrixAttr),
    /// `.../mdev_supported_types/vfio_ap-passthrough/<attr>`.
    MdevType(TypeAttr),
    /// `/sys/devices/vfio_ap/matrix/<uuid>/<attr>`.
    Mdev(Uuid, MdevAttr),
    /// `/sys/devices/ap/<attr>` or `/sys/devices/vfio_ap/<attr>`.
    Root(RootDevice, RootAttr),
}

impl File {
    /// The device whose `uevent` this is, if it is one.
    pub fn uevent_device(&self) -> Option<Device> {
        Some(match *self {
            File::Card(a, CardAttr::Uevent) => Device::Card(a),
            File::Queue(q, QueueAttr::Uevent) => Device::Queue(q),
            File::Matrix(MatrixAttr::Uevent) => Device::Matrix,
            File::Mdev(u, MdevAttr::Uevent) => Device::Mdev(u),
            File::Root(RootDevice::Ap, RootAttr::Uevent) => Device::ApRoot,
            File::Root(RootDevice::VfioAp, RootAttr::Uevent) => Device::VfioApRoot,
            _ => return None,
        })
    }
    /// The file's name.
    pub fn name(&self) -> &'static str {
        match self {
            File::Bus(a) => a.name(),
            File::Card(_, a) => a.name(),
            File::Queue(_, a) => a.name(),
            File::Matrix(a) => a.name(),
            File::MdevType(a) => a.name(),
            File::Mdev(_, a) => a.name(),
            File::Root(_, a) => a.name(),
        }
    }

    /// Its permission bits as sysfs shows them (owner root).
    pub fn mode(&self) -> u16 {
        match self {
            File::Bus(a) => a.mode(),
            File::Card(_, a) => a.mode(),
            File::Queue(_, a) => a.mode(),
            File::Matrix(a) => a.mode(),
            File::MdevType(a) => a.mode(),
            File::Mdev(_, a) => a.mode(),
            File::Root(_, a) => a.mode(),
        }
    }

    /// Whether it can be read.
    pub fn readable(&self) -> bool {
        self.mode() & 0o444 != 0
    }

    /// Whether it takes writes.
    pub fn writable(&self) -> bool {
        self.mode() & 0o222 != 0
    }
}

fn present(host: &Host, when: When, queue: Option<Apqn>) -> bool {
    let sysfs = host.profile().sysfs;
    let driver = || queue.and_then(|q| host.queue_driver(q).flatten());
    match when {
        When::Always => true,
        When::ScansAndBindings => sysfs.bus_scans_and_bindings,
        When::Features => sysfs.bus_features,
        When::GuestMatrix => sysfs.guest_matrix,
        When::VfioApStatus => sysfs.queue_status && driver() == Some(Driver::VfioAp),
        When::Zcrypt => driver() == Some(Driver::Cex4Queue),
        When::ApConfig => sysfs.ap_config,
        When::MatrixFeatures => sysfs.matrix_features,
    }
}

/// `/sys/bus/ap`'s attributes on this host, sorted.
pub(crate) fn bus_attrs(host: &Host) -> impl Iterator<Item = File> + '_ {
    BusAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(|a| File::Bus(*a))
}

/// A card's attributes, sorted.
pub(crate) fn card_attrs(host: &Host, card: AdapterId) -> impl Iterator<Item = File> + '_ {
    CardAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(move |a| File::Card(card, *a))
}

/// A queue's attributes now (they follow its driver), sorted.
pub(crate) fn queue_attrs(host: &Host, q: Apqn) -> impl Iterator<Item = File> + '_ {
    QueueAttr::ALL
        .iter()
        .filter(move |a| present(host, a.when(), Some(q)))
        .map(move |a| File::Queue(q, *a))
}

/// The matrix device's attributes, sorted.
pub(crate) fn matrix_attrs(host: &Host) -> impl Iterator<Item = File> + '_ {
    MatrixAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(|a| File::Matrix(*a))
}

/// The mdev type's attributes, sorted.
pub(crate) fn type_attrs(host: &Host) -> impl Iterator<Item = File> + '_ {
    TypeAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(|a| File::MdevType(*a))
}

/// An mdev's attributes, sorted.
pub(crate) fn mdev_attrs(host: &Host, mdev: Uuid) -> impl Iterator<Item = File> + '_ {
    MdevAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(move |a| File::Mdev(mdev, *a))
}

/// A root device's attributes.
pub(crate) fn root_attrs(host: &Host, root: RootDevice) -> impl Iterator<Item = File> + '_ {
    RootAttr::ALL
        .iter()
        .filter(|a| present(host, a.when(), None))
        .map(move |a| File::Root(root, *a))
}

/// The attribute of that name among `files`.
pub(crate) fn named(mut files: impl Iterator<Item = File>, name: &str) -> Option<File> {
    files.find(|f| f.name() == name)
}

/// One write(2) to an attribute: the model's answer, or its refusal.
pub fn write(host: &mut Host, f: &File, data: &[u8]) -> Result<Written, ApError> {
    let target = write_target(f).expect("callers write only to writable attributes");
    host.write(target, data)
}
