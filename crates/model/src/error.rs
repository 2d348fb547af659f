//! Every refusal of the model, with the errno the kernel returns for it and an
//! explanation in APQN terms, so nobody has to guess what EADDRNOTAVAIL meant.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{Apqn, MatrixAxis};

/// The Linux errno values the AP bus, vfio_ap and the mdev core return.
///
/// The numbers are the Linux (asm-generic) ones; s390 uses the same.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Errno {
    /// 1: a guest's second vfio-ap device (kernel.md §8), or `create` past the
    /// instance limit where vfio_ap counts its instances (§5).
    EPERM,
    /// 2: the mdev, guest or sysfs path does not exist.
    ENOENT,
    /// 13: sysfs refuses to open an attribute for a read or write it has no
    /// method for.
    EACCES,
    /// 16: the mdev is in use by a guest (`remove`; every matrix store on OLD
    /// kernels), or mainline's refusal of a mask change (kernel.md §3).
    EBUSY,
    /// 17: `create` with the UUID of an existing mdev (kernel.md §5).
    EEXIST,
    /// 19: an id above the host's maximum (kernel.md §6), or a card or queue
    /// that cannot take the change (§4).
    ENODEV,
    /// 22: the attribute's parser rejects the input, or the value is out of
    /// the attribute's range.
    EINVAL,
    /// 34: a number kstrtoul cannot hold in 64 bits (kernel.md §6).
    ERANGE,
    /// 87: `create` with `available_instances` exhausted, where the mdev core
    /// counts instances (kernel.md §5).
    EUSERS,
    /// 98: the APQN is already in another mdev (seed rule 2); in the seed also
    /// a mask change that would take an assigned APQN (rule 4).
    EADDRINUSE,
    /// 99: the APQN is not available to vfio_ap (seed rule 1).
    EADDRNOTAVAIL,
}

impl Errno {
    /// The Linux errno number; a refused store returns it negated.
    pub const fn code(self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::ENOENT => 2,
            Errno::EACCES => 13,
            Errno::EBUSY => 16,
            Errno::EEXIST => 17,
            Errno::ENODEV => 19,
            Errno::EINVAL => 22,
            Errno::ERANGE => 34,
            Errno::EUSERS => 87,
            Errno::EADDRINUSE => 98,
            Errno::EADDRNOTAVAIL => 99,
        }
    }

    /// The symbolic name, as in `EADDRNOTAVAIL`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::EACCES => "EACCES",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::ERANGE => "ERANGE",
            Errno::EUSERS => "EUSERS",
            Errno::EADDRINUSE => "EADDRINUSE",
            Errno::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        }
    }

    /// What glibc's strerror says, i.e. what `echo` prints after
    /// "write error:" when the kernel refuses a sysfs write.
    pub const fn strerror(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::EACCES => "Permission denied",
            Errno::EBUSY => "Device or resource busy",
            Errno::EEXIST => "File exists",
            Errno::ENODEV => "No such device",
            Errno::EINVAL => "Invalid argument",
            Errno::ERANGE => "Numerical result out of range",
            Errno::EUSERS => "Too many users",
            Errno::EADDRINUSE => "Address already in use",
            Errno::EADDRNOTAVAIL => "Cannot assign requested address",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The two AP bus masks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskKind {
    /// `/sys/bus/ap/apmask`: the adapters whose queues the host's zcrypt
    /// drivers may take.
    Apmask,
    /// `/sys/bus/ap/aqmask`: the domains whose queues the host's zcrypt
    /// drivers may take.
    Aqmask,
}

impl MaskKind {
    /// The attribute's file name under `/sys/bus/ap`.
    pub fn name(self) -> &'static str {
        match self {
            MaskKind::Apmask => "apmask",
            MaskKind::Aqmask => "aqmask",
        }
    }
}

impl fmt::Display for MaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A list of APQNs shown as its first element and how many follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApqnList(pub Vec<Apqn>);

impl ApqnList {
    /// The APQN a message names first. Panics on an empty list.
    pub fn first(&self) -> Apqn {
        self.0[0]
    }
}

impl fmt::Display for ApqnList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no APQN"),
            [one] => write!(f, "APQN {one}"),
            [first, rest @ ..] => write!(f, "APQN {first} (and {} more)", rest.len()),
        }
    }
}

fn guest_suffix(guest: &Option<String>) -> String {
    match guest {
        Some(g) => format!(", used by guest {g}"),
        None => String::new(),
    }
}

/// Why the model refused an operation. Nothing changed when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApError {
    /// The written text is not in the form the attribute takes.
    #[error("EINVAL: {input:?} is not valid for {target}: {rule}")]
    InvalidInput {
        /// The attribute written (or the setting, e.g. `guest name`).
        target: String,
        /// The written text, decoded lossily.
        input: String,
        /// The parser's rule the input broke, in words.
        rule: String,
    },

    /// A number too large for an unsigned long (kstrtoul's ERANGE).
    #[error("ERANGE: {input:?} is larger than 18446744073709551615, the largest value {target} can parse")]
    NumberOutOfRange {
        /// The attribute written.
        target: String,
        /// The written text.
        input: String,
    },

    /// An id above the host's maximum adapter or domain number.
    #[error(
        "ENODEV: {axis} {id} ({id:#x}) is above the host's maximum {axis} number {max} ({max:#x})"
    )]
    IdAboveMaximum {
        /// Adapter, domain or control domain.
        axis: MatrixAxis,
        /// The number kstrtoul read (it may exceed 255).
        id: u64,
        /// The host's highest id on that axis (`ap_max_adapter_id` or
        /// `ap_max_domain_id`).
        max: u8,
    },

    /// The new cross product would contain APQNs the masks still reserve for
    /// the host's zcrypt drivers (seed rule 1).
    #[error(
        "EADDRNOTAVAIL: {apqns} is reserved for the host (apmask bit {apmask_bit} and aqmask bit {aqmask_bit} are set); \
         assigning {axis} {id:#04x} to mdev {mdev} would give it to the guest"
    )]
    ReservedForHost {
        /// The mdev whose store refused.
        mdev: Uuid,
        /// The axis of the id being assigned.
        axis: MatrixAxis,
        /// The adapter or domain being assigned.
        id: u8,
        /// The APQNs of the new cross product that apmask x aqmask give the host.
        apqns: ApqnList,
        /// The set apmask bit (adapter) of the first of them.
        apmask_bit: u8,
        /// The set aqmask bit (domain) of the first of them.
        aqmask_bit: u8,
    },

    /// The new cross product would contain APQNs that are not bound to
    /// vfio_ap (the rule of kernels before dynamic configuration).
    #[error(
        "EADDRNOTAVAIL: {detail}; assigning {axis} {id:#04x} to mdev {mdev} needs the queues of the new cross product bound to vfio_ap"
    )]
    NotBoundToVfioAp {
        /// The mdev whose store refused.
        mdev: Uuid,
        /// The axis of the id being assigned.
        axis: MatrixAxis,
        /// The adapter or domain being assigned.
        id: u8,
        /// Which queues are not bound to vfio_ap, as a clause.
        detail: String,
    },

    /// The new cross product would put APQNs into a second mdev (seed rule 2).
    #[error(
        "EADDRINUSE: {apqns} is already assigned to mdev {other}{}; \
         assigning {axis} {id:#04x} to mdev {mdev} would share it",
        guest_suffix(other_guest)
    )]
    AssignedToOtherMdev {
        /// The mdev whose store refused.
        mdev: Uuid,
        /// The axis of the id being assigned.
        axis: MatrixAxis,
        /// The adapter or domain being assigned.
        id: u8,
        /// The APQNs of the new cross product that the other mdev holds.
        apqns: ApqnList,
        /// The mdev holding them (the lowest UUID if several do).
        other: Uuid,
        /// The guest using that mdev, if one runs.
        other_guest: Option<String>,
    },

    /// An `ap_config` write whose matrix contains APQNs the masks reserve
    /// for the host (kernel.md §6 "ap_config write"; nothing changed).
    #[error(
        "EADDRNOTAVAIL: {apqns} is {reason}; \
         the ap_config of mdev {mdev} would give it to the guest (the matrix was not changed)"
    )]
    ApConfigReservedForHost {
        /// The mdev whose `ap_config` refused.
        mdev: Uuid,
        /// The APQNs of the new matrix no mdev may have.
        apqns: ApqnList,
        /// Why not: reserved for the host, or not bound to vfio_ap.
        reason: &'static str,
    },

    /// An `ap_config` write whose matrix shares APQNs with another mdev
    /// (kernel.md §6; nothing changed).
    #[error(
        "EADDRINUSE: {apqns} is already assigned to mdev {other}{}; \
         the ap_config of mdev {mdev} cannot take it (the matrix was not changed)",
        guest_suffix(other_guest)
    )]
    ApConfigShared {
        /// The mdev whose `ap_config` refused.
        mdev: Uuid,
        /// The APQNs of the new matrix the other mdev holds.
        apqns: ApqnList,
        /// The mdev holding them (the lowest UUID if several do).
        other: Uuid,
        /// The guest using that mdev, if one runs.
        other_guest: Option<String>,
    },

    /// A mask change would give the host APQNs an mdev holds (seed rule 4).
    #[error(
        "{errno}: setting {mask} to {new} would give the host {apqns}, which is assigned to mdev {mdev}{}; \
         unassign it from the mdev first (neither mask was changed)",
        guest_suffix(guest)
    )]
    MaskReclaimsAssigned {
        /// The profile's errno for it (EADDRINUSE in the seed, EBUSY in
        /// mainline; kernel.md §3).
        errno: Errno,
        /// The mask written.
        mask: MaskKind,
        /// The mask the write asked for, in the kernel's `0x` + 64 hex digits form.
        new: String,
        /// The assigned APQNs the new mask would give the host.
        apqns: ApqnList,
        /// The mdev holding the first of them.
        mdev: Uuid,
        /// The guest using that mdev, if one runs.
        guest: Option<String>,
    },

    /// The mdev's matrix cannot change while a guest uses it (kernels before
    /// dynamic configuration).
    #[error("{errno}: mdev {mdev} is in use by guest {guest}; its matrix cannot change while the guest runs on this kernel")]
    MatrixLockedWhileRunning {
        /// The profile's errno for it (EBUSY on OLD kernels; kernel.md §6).
        errno: Errno,
        /// The mdev whose store refused.
        mdev: Uuid,
        /// The guest using it.
        guest: String,
    },

    /// No mdev has this UUID, so it has no directory and no attributes
    /// to write.
    #[error("ENOENT: there is no mdev {0}")]
    NoSuchMdev(Uuid),

    /// `create` with the UUID of an existing mdev: the mdev core refuses
    /// duplicates, case-insensitively (kernel.md §5).
    #[error("EEXIST: mdev {0} already exists")]
    MdevExists(Uuid),

    /// `create` when `available_instances` is 0: EPERM where vfio_ap counts
    /// its instances, EUSERS where the mdev core does (kernel.md §5).
    #[error("{errno}: no instances of vfio_ap-passthrough are left (at most {limit} mdevs)")]
    NoInstancesLeft {
        /// The profile's errno for it (EPERM or EUSERS).
        errno: Errno,
        /// The profile's limit: `available_instances` of a fresh matrix device.
        limit: u32,
    },

    /// `remove` of an mdev a guest uses (EBUSY on the kernels that refuse
    /// rather than block; kernel.md §5).
    #[error("{errno}: mdev {mdev} is in use by guest {guest}; stop the guest before removing it")]
    MdevInUse {
        /// The profile's errno for `remove` while a guest runs.
        errno: Errno,
        /// The mdev to be removed.
        mdev: Uuid,
        /// The guest using it.
        guest: String,
    },

    /// `remove` while a guest uses the mdev, on a kernel whose write waits
    /// for the guest to let go (kernel.md §5, ≈5.15 on): the caller waits
    /// and tries again; one that cannot wait gets EBUSY.
    #[error("EBUSY: mdev {mdev} is in use by guest {guest}; on this kernel remove waits until the guest releases it")]
    RemoveWaitsForRelease {
        /// The mdev to be removed.
        mdev: Uuid,
        /// The guest using it.
        guest: String,
    },

    /// No running guest has this name.
    #[error("ENOENT: there is no guest {0:?}")]
    NoSuchGuest(String),

    /// A guest of this name is already running.
    #[error("EEXIST: guest {0:?} is already running")]
    GuestExists(String),

    /// Another guest has the mdev open; vfio gives a device to one user at a
    /// time.
    #[error(
        "EBUSY: mdev {mdev} is already used by guest {guest}; an mdev serves one guest at a time"
    )]
    MdevAttachedElsewhere {
        /// The mdev asked for.
        mdev: Uuid,
        /// The guest that has it open.
        guest: String,
    },

    /// The guest already has a vfio-ap device: vfio_ap lets one KVM open only
    /// one mdev (kernel.md §8).
    #[error(
        "EPERM: guest {guest} already has mdev {mdev}; a guest has at most one vfio-ap device"
    )]
    GuestHasMdev {
        /// The guest asked to take a second mdev.
        guest: String,
        /// The mdev it has already.
        mdev: Uuid,
    },

    /// Unplugging the vfio-ap device of a guest that has none.
    #[error("ENODEV: guest {0} has no vfio-ap device")]
    GuestHasNoMdev(String),

    /// A card or queue attribute whose device cannot take the change.
    #[error("ENODEV: {device}: {reason}")]
    DeviceUnavailable {
        /// The card (`card05`) or queue (`05.0004`) written to.
        device: String,
        /// Why it cannot take the change, in words.
        reason: String,
    },
}

impl ApError {
    /// The errno the kernel returns for this refusal.
    pub fn errno(&self) -> Errno {
        match self {
            ApError::InvalidInput { .. } => Errno::EINVAL,
            ApError::NumberOutOfRange { .. } => Errno::ERANGE,
            ApError::IdAboveMaximum { .. } => Errno::ENODEV,
            ApError::ReservedForHost { .. }
            | ApError::NotBoundToVfioAp { .. }
            | ApError::ApConfigReservedForHost { .. } => Errno::EADDRNOTAVAIL,
            ApError::AssignedToOtherMdev { .. } | ApError::ApConfigShared { .. } => {
                Errno::EADDRINUSE
            }
            ApError::MaskReclaimsAssigned { errno, .. }
            | ApError::MatrixLockedWhileRunning { errno, .. }
            | ApError::NoInstancesLeft { errno, .. }
            | ApError::MdevInUse { errno, .. } => *errno,
            ApError::NoSuchMdev(_) | ApError::NoSuchGuest(_) => Errno::ENOENT,
            ApError::MdevExists(_) | ApError::GuestExists(_) => Errno::EEXIST,
            ApError::MdevAttachedElsewhere { .. } | ApError::RemoveWaitsForRelease { .. } => {
                Errno::EBUSY
            }
            ApError::GuestHasMdev { .. } => Errno::EPERM,
            ApError::GuestHasNoMdev(_) | ApError::DeviceUnavailable { .. } => Errno::ENODEV,
        }
    }

    /// Whether a write refused so would, on the kernel, wait and be tried
    /// again rather than fail.
    pub fn waits(&self) -> bool {
        matches!(self, ApError::RemoveWaitsForRelease { .. })
    }

    pub(crate) fn invalid(
        target: impl Into<String>,
        input: &[u8],
        rule: impl Into<String>,
    ) -> Self {
        ApError::InvalidInput {
            target: target.into(),
            input: String::from_utf8_lossy(input).into_owned(),
            rule: rule.into(),
        }
    }
}

#[cfg(test)]
mod tests;
