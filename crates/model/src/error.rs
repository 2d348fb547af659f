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
    EPERM,
    ENOENT,
    EACCES,
    EBUSY,
    EEXIST,
    ENODEV,
    EINVAL,
    ERANGE,
    EUSERS,
    EADDRINUSE,
    EADDRNOTAVAIL,
}

impl Errno {
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
    Apmask,
    Aqmask,
}

impl MaskKind {
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
        target: String,
        input: String,
        rule: String,
    },

    /// A number too large for an unsigned long (kstrtoul's ERANGE).
    #[error("ERANGE: {input:?} is larger than 18446744073709551615, the largest value {target} can parse")]
    NumberOutOfRange { target: String, input: String },

    /// An id above the host's maximum adapter or domain number.
    #[error(
        "ENODEV: {axis} {id} ({id:#x}) is above the host's maximum {axis} number {max} ({max:#x})"
    )]
    IdAboveMaximum { axis: MatrixAxis, id: u64, max: u8 },

    /// The new cross product would contain APQNs the masks still reserve for
    /// the host's zcrypt drivers (seed rule 1).
    #[error(
        "EADDRNOTAVAIL: {apqns} is reserved for the host (apmask bit {apmask_bit} and aqmask bit {aqmask_bit} are set); \
         assigning {axis} {id:#04x} to mdev {mdev} would give it to the guest"
    )]
    ReservedForHost {
        mdev: Uuid,
        axis: MatrixAxis,
        id: u8,
        apqns: ApqnList,
        apmask_bit: u8,
        aqmask_bit: u8,
    },

    /// The new cross product would contain APQNs that are not bound to
    /// vfio_ap (the rule of kernels before dynamic configuration).
    #[error(
        "EADDRNOTAVAIL: {detail}; assigning {axis} {id:#04x} to mdev {mdev} needs the queues of the new cross product bound to vfio_ap"
    )]
    NotBoundToVfioAp {
        mdev: Uuid,
        axis: MatrixAxis,
        id: u8,
        detail: String,
    },

    /// The new cross product would put APQNs into a second mdev (seed rule 2).
    #[error(
        "EADDRINUSE: {apqns} is already assigned to mdev {other}{}; \
         assigning {axis} {id:#04x} to mdev {mdev} would share it",
        guest_suffix(other_guest)
    )]
    AssignedToOtherMdev {
        mdev: Uuid,
        axis: MatrixAxis,
        id: u8,
        apqns: ApqnList,
        other: Uuid,
        other_guest: Option<String>,
    },

    /// A mask change would give the host APQNs an mdev holds (seed rule 4).
    #[error(
        "{errno}: setting {mask} to {new} would give the host {apqns}, which is assigned to mdev {mdev}{}; \
         unassign it from the mdev first (neither mask was changed)",
        guest_suffix(guest)
    )]
    MaskReclaimsAssigned {
        errno: Errno,
        mask: MaskKind,
        new: String,
        apqns: ApqnList,
        mdev: Uuid,
        guest: Option<String>,
    },

    /// The mdev's matrix cannot change while a guest uses it (kernels before
    /// dynamic configuration).
    #[error("{errno}: mdev {mdev} is in use by guest {guest}; its matrix cannot change while the guest runs on this kernel")]
    MatrixLockedWhileRunning {
        errno: Errno,
        mdev: Uuid,
        guest: String,
    },

    #[error("ENOENT: there is no mdev {0}")]
    NoSuchMdev(Uuid),

    #[error("EEXIST: mdev {0} already exists")]
    MdevExists(Uuid),

    #[error("{errno}: no instances of vfio_ap-passthrough are left (at most {limit} mdevs)")]
    NoInstancesLeft { errno: Errno, limit: u32 },

    #[error("{errno}: mdev {mdev} is in use by guest {guest}; stop the guest before removing it")]
    MdevInUse {
        errno: Errno,
        mdev: Uuid,
        guest: String,
    },

    #[error("ENOENT: there is no guest {0:?}")]
    NoSuchGuest(String),

    #[error("EEXIST: guest {0:?} is already running")]
    GuestExists(String),

    #[error(
        "EBUSY: mdev {mdev} is already used by guest {guest}; an mdev serves one guest at a time"
    )]
    MdevAttachedElsewhere { mdev: Uuid, guest: String },

    #[error(
        "EPERM: guest {guest} already has mdev {mdev}; a guest has at most one vfio-ap device"
    )]
    GuestHasMdev { guest: String, mdev: Uuid },

    #[error("ENODEV: guest {0} has no vfio-ap device")]
    GuestHasNoMdev(String),

    /// A card or queue attribute whose device cannot take the change.
    #[error("ENODEV: {device}: {reason}")]
    DeviceUnavailable { device: String, reason: String },
}

impl ApError {
    /// The errno the kernel returns for this refusal.
    pub fn errno(&self) -> Errno {
        match self {
            ApError::InvalidInput { .. } => Errno::EINVAL,
            ApError::NumberOutOfRange { .. } => Errno::ERANGE,
            ApError::IdAboveMaximum { .. } => Errno::ENODEV,
            ApError::ReservedForHost { .. } | ApError::NotBoundToVfioAp { .. } => {
                Errno::EADDRNOTAVAIL
            }
            ApError::AssignedToOtherMdev { .. } => Errno::EADDRINUSE,
            ApError::MaskReclaimsAssigned { errno, .. }
            | ApError::MatrixLockedWhileRunning { errno, .. }
            | ApError::NoInstancesLeft { errno, .. }
            | ApError::MdevInUse { errno, .. } => *errno,
            ApError::NoSuchMdev(_) | ApError::NoSuchGuest(_) => Errno::ENOENT,
            ApError::MdevExists(_) | ApError::GuestExists(_) => Errno::EEXIST,
            ApError::MdevAttachedElsewhere { .. } => Errno::EBUSY,
            ApError::GuestHasMdev { .. } => Errno::EPERM,
            ApError::GuestHasNoMdev(_) | ApError::DeviceUnavailable { .. } => Errno::ENODEV,
        }
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
mod tests {
    use super::*;

    /// One error of every kind. The `match` has no wildcard, so a new
    /// kind does not compile until it is listed here too.
    fn one_of_each() -> Vec<ApError> {
        let (m, g) = (Uuid::nil(), "Guest1".to_string());
        let apqns = ApqnList(vec![Apqn::new(5, 4)]);
        let all = vec![
            ApError::invalid("apmask", b"x", "a rule"),
            ApError::NumberOutOfRange {
                target: "t".into(),
                input: "9".repeat(30),
            },
            ApError::IdAboveMaximum {
                axis: MatrixAxis::Adapter,
                id: 300,
                max: 255,
            },
            ApError::ReservedForHost {
                mdev: m,
                axis: MatrixAxis::Domain,
                id: 4,
                apqns: apqns.clone(),
                apmask_bit: 5,
                aqmask_bit: 4,
            },
            ApError::NotBoundToVfioAp {
                mdev: m,
                axis: MatrixAxis::Domain,
                id: 4,
                detail: "d".into(),
            },
            ApError::AssignedToOtherMdev {
                mdev: m,
                axis: MatrixAxis::Adapter,
                id: 5,
                apqns: apqns.clone(),
                other: m,
                other_guest: Some(g.clone()),
            },
            ApError::MaskReclaimsAssigned {
                errno: Errno::EBUSY,
                mask: MaskKind::Apmask,
                new: "+5".into(),
                apqns,
                mdev: m,
                guest: None,
            },
            ApError::MatrixLockedWhileRunning {
                errno: Errno::EBUSY,
                mdev: m,
                guest: g.clone(),
            },
            ApError::NoSuchMdev(m),
            ApError::MdevExists(m),
            ApError::NoInstancesLeft {
                errno: Errno::EUSERS,
                limit: 4,
            },
            ApError::MdevInUse {
                errno: Errno::EBUSY,
                mdev: m,
                guest: g.clone(),
            },
            ApError::NoSuchGuest(g.clone()),
            ApError::GuestExists(g.clone()),
            ApError::MdevAttachedElsewhere {
                mdev: m,
                guest: g.clone(),
            },
            ApError::GuestHasMdev {
                guest: g.clone(),
                mdev: m,
            },
            ApError::GuestHasNoMdev(g),
            ApError::DeviceUnavailable {
                device: "card05".into(),
                reason: "r".into(),
            },
        ];
        for e in &all {
            match e {
                ApError::InvalidInput { .. }
                | ApError::NumberOutOfRange { .. }
                | ApError::IdAboveMaximum { .. }
                | ApError::ReservedForHost { .. }
                | ApError::NotBoundToVfioAp { .. }
                | ApError::AssignedToOtherMdev { .. }
                | ApError::MaskReclaimsAssigned { .. }
                | ApError::MatrixLockedWhileRunning { .. }
                | ApError::NoSuchMdev(_)
                | ApError::MdevExists(_)
                | ApError::NoInstancesLeft { .. }
                | ApError::MdevInUse { .. }
                | ApError::NoSuchGuest(_)
                | ApError::GuestExists(_)
                | ApError::MdevAttachedElsewhere { .. }
                | ApError::GuestHasMdev { .. }
                | ApError::GuestHasNoMdev(_)
                | ApError::DeviceUnavailable { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_message_starts_with_the_errno_it_returns() {
        for e in one_of_each() {
            let text = e.to_string();
            let prefix = format!("{}: ", e.errno().name());
            assert!(
                text.starts_with(&prefix),
                "{text:?} does not start with {prefix:?}"
            );
        }
    }

    #[test]
    fn errno_numbers_are_linux() {
        assert_eq!(Errno::EADDRNOTAVAIL.code(), 99);
        assert_eq!(Errno::EADDRINUSE.code(), 98);
        assert_eq!(Errno::ENODEV.code(), 19);
        assert_eq!(Errno::EINVAL.code(), 22);
        assert_eq!(Errno::EBUSY.code(), 16);
        assert_eq!(
            Errno::EADDRNOTAVAIL.strerror(),
            "Cannot assign requested address"
        );
    }

    #[test]
    fn reserved_message_names_apqn_and_bits() {
        let e = ApError::ReservedForHost {
            mdev: Uuid::nil(),
            axis: MatrixAxis::Domain,
            id: 0x47,
            apqns: ApqnList(vec![Apqn::new(5, 0x47)]),
            apmask_bit: 5,
            aqmask_bit: 0x47,
        };
        let text = e.to_string();
        assert!(
            text.starts_with(
                "EADDRNOTAVAIL: APQN 05.0047 is reserved for the host (apmask bit 5 and aqmask bit 71 are set)"
            ),
            "{text}"
        );
        assert_eq!(e.errno(), Errno::EADDRNOTAVAIL);
    }

    #[test]
    fn apqn_list_counts_the_rest() {
        let l = ApqnList(vec![Apqn::new(5, 4), Apqn::new(5, 5), Apqn::new(6, 4)]);
        assert_eq!(l.to_string(), "APQN 05.0004 (and 2 more)");
    }
}
