//! Every rule that differs between kernel generations, in one place.
//!
//! kernel.md tags rules OLD (4.20-5.19), SEED/PATCH (the dynamic
//! configuration series this project comes from) and DYN/NEW (6.x). The
//! model asks a [`KernelProfile`] wherever it must decide one of them, so a
//! further generation is one more constant here, not edits across the model.
//! [`SEED`] is the default; [`OLD`], [`DYN`] and [`NEW`] are the kernels
//! people run, chosen by name or by version ([`for_kernel`]).

use crate::error::Errno;

/// What a write to apmask/aqmask does when it would give the host an APQN
/// that is assigned to an mdev (kernel.md §3, "Errno by era").
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MaskReclaim {
    /// Refused with this errno; neither mask changes.
    Refuse(Errno),
    /// Accepted: the queue is silently taken from vfio_ap (OLD).
    Allow,
}

/// What an APQN needs to be assignable to an mdev (EADDRNOTAVAIL otherwise).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Free for vfio_ap per apmask/aqmask, whether or not the queue exists
    /// (SEED rule 1; kernel.md §6 "NEW order").
    PerMasks,
    /// Bound to vfio_ap; with no domains (adapters) assigned yet, at least one
    /// queue of the new adapter (domain) bound to vfio_ap (OLD).
    BoundToVfioAp,
}

/// What assign/unassign do while a guest uses the mdev.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunningGuest {
    /// The guest's CRYCB follows at once (SEED rule 5).
    HotPlug,
    /// Every assign/unassign store fails with this errno, before parsing (OLD).
    Refuse(Errno),
}

/// How the guest's CRYCB is derived from the mdev's matrix.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GuestFilter {
    /// APM/AQM limited to the host's configuration; an adapter is dropped
    /// whole if any of its assigned queues is not bound to vfio_ap (kernel.md
    /// §6 "guest_matrix filter"; the PATCH series behaves as DYN).
    WholeAdapters,
    /// The raw matrix (OLD).
    Unfiltered,
}

/// How `/sys/bus/ap/poll_thread` parses a write (kernel.md §1).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PollThreadInput {
    /// `sscanf("%d")`: any non-zero number starts the thread (OLD, SEED).
    ScanfInt,
    /// `kstrtobool` (NEW).
    KstrToBool,
}

/// Which optional sysfs attributes this generation has (kernel.md §1, §6).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SysfsAttributes {
    /// `/sys/bus/ap/scans` and `bindings` (absent in OLD).
    pub bus_scans_and_bindings: bool,
    /// `/sys/bus/ap/features` (NEW).
    pub bus_features: bool,
    /// An mdev's `guest_matrix` (DYN and the dynamic series; not OLD).
    pub guest_matrix: bool,
    /// A vfio_ap-bound queue's `status` (DYN and the dynamic series).
    pub queue_status: bool,
    /// An mdev's `ap_config`: the whole matrix in one write (NEW, ≈6.10).
    pub ap_config: bool,
    /// The matrix device's `features` (NEW).
    pub matrix_features: bool,
    /// The mdev bus driver an mdev is bound to: the generic `vfio_mdev`
    /// until vfio_ap registered its own `vfio_ap_mdev` in the conversion
    /// that also made `remove` wait (≈5.15, kernel.md §5; boundary [I]).
    pub mdev_driver: &'static str,
    /// Card and queue `uevent`s carry `MODE=accel|cca|ep11`, and queues no
    /// longer `DEV_TYPE=`/`MODALIAS=` (6.x; the 5.10-era bus had no MODE and
    /// gave queues the card's type keys; docs/research/uevents.md §2).
    pub uevent_mode: bool,
}

/// When the AP bus announces `BINDINGS=complete` on `/devices/ap`
/// (docs/research/uevents.md §3.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BindingsComplete {
    /// After every probe that leaves every queue bound (5.x to 6.9); with
    /// `COMPLETECOUNT=` when `count` (the 5.10-era bus had none).
    EveryProbe {
        /// The event carries `COMPLETECOUNT=<n>`.
        count: bool,
    },
    /// Once at the next bus scan after a probe, if every queue is bound
    /// then (NEW: each probe re-arms the completion), with `COMPLETECOUNT=`.
    NextScan,
}

/// Which device changes this generation announces besides add, remove,
/// bind and unbind (docs/research/uevents.md §3).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UeventRules {
    /// `change` on `/devices/ap` with `APMASK=`/`AQMASK=` after a mask write
    /// that changed the mask (6.x; the 5.x bus only re-probed).
    pub mask_change: bool,
    /// `change` with `CONFIG=` on a card and its queues (6.x).
    pub config_change: bool,
    /// `change` with `ONLINE=` from zcrypt's `online` (from ≈5.14 [I]).
    pub online_change: bool,
    /// When bindings-complete is announced.
    pub bindings_complete: BindingsComplete,
}

/// What the 5.10-era bus announced: no CONFIG, ONLINE or mask events, and
/// BINDINGS=complete without a count after each probe (research §3, AP-5x).
const UEVENTS_5X: UeventRules = UeventRules {
    mask_change: false,
    config_change: false,
    online_change: false,
    bindings_complete: BindingsComplete::EveryProbe { count: false },
};

/// The 6.x bus up to 6.9 (research §3, AP-mid).
const UEVENTS_6X: UeventRules = UeventRules {
    mask_change: true,
    config_change: true,
    online_change: true,
    bindings_complete: BindingsComplete::EveryProbe { count: true },
};

/// What `remove` does while a guest uses the mdev (kernel.md §5).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RemoveWhileRunning {
    /// Refused with this errno (OLD, the seed series).
    Refuse(Errno),
    /// The write waits until the guest lets go of the device (≈5.15 on).
    WaitForRelease,
}

/// When a vfio_ap-bound queue's `status` says `in use` (kernel.md §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueueInUse {
    /// Whenever its mdev has a guest (DYN, and the seed series).
    Attached,
    /// Only when it is also in that guest's matrix (NEW).
    InGuestMatrix,
}

/// The era-dependent rules of one kernel generation.
#[derive(Debug, PartialEq, Eq)]
pub struct KernelProfile {
    /// The name users choose it by, and state files record (`seed`).
    pub name: &'static str,
    /// One sentence on the generation's semantics, for listings.
    pub summary: &'static str,
    /// Whether a mask write may take an assigned APQN back from its mdev.
    pub mask_reclaim: MaskReclaim,
    /// An unchanged mask write succeeds without re-probing (NEW); OLD always
    /// re-probes. With synchronous binding both leave the same state; the
    /// difference is whether a re-probe is reported.
    pub unchanged_mask_skips_reprobe: bool,
    /// What an APQN needs to be assignable to an mdev.
    pub availability: Availability,
    /// Whether assign/unassign work while a guest uses the mdev.
    pub running_guest: RunningGuest,
    /// Assigning an id that is already assigned: success without checks
    /// (SEED/NEW) or success only after the checks pass again (OLD).
    pub reassign_revalidates: bool,
    /// `remove` while a guest uses the mdev (kernel.md §5: OLD returns
    /// EBUSY; the seed document says remove "fails while its guest runs";
    /// later kernels wait).
    pub remove_while_running: RemoveWhileRunning,
    /// The errno of `create` when `available_instances` is exhausted
    /// (driver-owned counter: EPERM; mdev core: EUSERS).
    pub instances_exhausted: Errno,
    /// `available_instances` of a fresh matrix device.
    pub max_instances: u32,
    /// How the guest's CRYCB (`guest_matrix`) follows from the matrix.
    pub guest_filter: GuestFilter,
    /// The lowest hwtype vfio_ap binds (CEX4 = 10).
    pub vfio_ap_min_hwtype: u8,
    /// The highest hwtype vfio_ap binds (OLD's list ended at CEX7 = 13;
    /// NEW's at CEX8 = 14, kernel.md §3).
    pub vfio_ap_max_hwtype: u8,
    /// The lowest hwtype the bus makes devices for at all (NEW: none below
    /// CEX4; before it every card had a device, kernel.md §3).
    pub bus_min_hwtype: u8,
    /// When a vfio_ap queue's `status` is `in use`.
    pub queue_in_use: QueueInUse,
    /// How `poll_thread` parses a write.
    pub poll_thread_input: PollThreadInput,
    /// The smallest `poll_timeout` accepted (OLD rejected 0; NEW takes it).
    pub poll_timeout_min: u64,
    /// Which optional sysfs attributes exist.
    pub sysfs: SysfsAttributes,
    /// Which device changes are announced as uevents.
    pub uevents: UeventRules,
    /// The kernel versions that behave this way, for listings.
    pub kernels: &'static str,
}

/// The semantics of the seed document (the dynamic configuration series,
/// PATCH v11/v12, 2020). seed-system.md "What the seed changes".
pub const SEED: KernelProfile = KernelProfile {
    name: "seed",
    summary: "vfio_ap dynamic configuration as the seed document describes it: \
              availability per apmask/aqmask, EADDRINUSE for sharing and for mask \
              changes that would take an assigned APQN, hot plug into running guests",
    mask_reclaim: MaskReclaim::Refuse(Errno::EADDRINUSE),
    unchanged_mask_skips_reprobe: true,
    availability: Availability::PerMasks,
    running_guest: RunningGuest::HotPlug,
    reassign_revalidates: false,
    remove_while_running: RemoveWhileRunning::Refuse(Errno::EBUSY),
    // The series still kept vfio_ap's own instance counter (kernel.md §5).
    instances_exhausted: Errno::EPERM,
    max_instances: 65536,
    guest_filter: GuestFilter::WholeAdapters,
    vfio_ap_min_hwtype: 10,
    // The document names no hwtype limit; CEX8 is bound, as on later kernels.
    vfio_ap_max_hwtype: 14,
    bus_min_hwtype: 0,
    queue_in_use: QueueInUse::Attached,
    // The 2020 series sat on a 5.10-era bus (kernel.md §1 "OLD").
    poll_thread_input: PollThreadInput::ScanfInt,
    poll_timeout_min: 1,
    sysfs: SysfsAttributes {
        bus_scans_and_bindings: true,
        bus_features: false,
        guest_matrix: true,
        queue_status: true,
        ap_config: false,
        matrix_features: false,
        mdev_driver: "vfio_mdev",
        uevent_mode: false,
    },
    uevents: UEVENTS_5X,
    kernels: "the 2020 dynamic-configuration series (PATCH v11/v12), never merged as such",
};

/// The original 2018 semantics, Linux 4.20 to 5.14 (kernel.md "OLD"; its
/// `remove` as read in the ≈5.10 sources).
pub const OLD: KernelProfile = KernelProfile {
    name: "old",
    summary: "vfio_ap before dynamic configuration: availability means bound to vfio_ap, \
              no changes while a guest runs, masks may take assigned queues back \
              (the guest keeps them: the known leak)",
    mask_reclaim: MaskReclaim::Allow,
    unchanged_mask_skips_reprobe: false,
    availability: Availability::BoundToVfioAp,
    running_guest: RunningGuest::Refuse(Errno::EBUSY),
    reassign_revalidates: true,
    remove_while_running: RemoveWhileRunning::Refuse(Errno::EBUSY),
    instances_exhausted: Errno::EPERM,
    max_instances: 65536,
    guest_filter: GuestFilter::Unfiltered,
    vfio_ap_min_hwtype: 10,
    vfio_ap_max_hwtype: 13,
    bus_min_hwtype: 0,
    queue_in_use: QueueInUse::Attached,
    poll_thread_input: PollThreadInput::ScanfInt,
    poll_timeout_min: 1,
    sysfs: SysfsAttributes {
        bus_scans_and_bindings: false,
        bus_features: false,
        guest_matrix: false,
        queue_status: false,
        ap_config: false,
        matrix_features: false,
        mdev_driver: "vfio_mdev",
        uevent_mode: false,
    },
    uevents: UEVENTS_5X,
    kernels: "Linux 4.20 to 5.14 (RHEL 8 and 9, Ubuntu 20.04, SLES 15 SP4)",
};

/// OLD as from Linux 5.15 to 5.19: the same vfio_ap rules, but since the
/// mdev core's conversion (≈5.15, kernel.md §5, boundary inferred) a write
/// to `remove` waits for the guest to release the device instead of
/// returning EBUSY.
pub const OLD_5_15: KernelProfile = KernelProfile {
    name: "old-5.15",
    summary: "as old, but remove while a guest runs waits for the guest to let go",
    remove_while_running: RemoveWhileRunning::WaitForRelease,
    sysfs: SysfsAttributes {
        mdev_driver: "vfio_ap_mdev",
        ..OLD.sysfs
    },
    // The 6.x bus events came in over 5.14-5.16 (CONFIG, ONLINE, the mask
    // change, COMPLETECOUNT); which release brought each was not read [I].
    uevents: UEVENTS_6X,
    kernels: "Linux 5.15 to 5.19 (Ubuntu 22.04)",
    // Defined by its difference: every other rule is OLD's.
    ..OLD
};

/// Dynamic configuration as merged, Linux 6.0 to 6.9 (kernel.md "DYN").
/// Its bus file (`ap_bus.c`) was not read for kernel.md; where §1 tells only
/// OLD from NEW, DYN follows NEW except for what NEW added later
/// (`features` in 6.12, the unchanged-mask shortcut) [I].
pub const DYN: KernelProfile = KernelProfile {
    name: "dyn",
    summary: "vfio_ap dynamic configuration as merged in 6.0: availability per \
              apmask/aqmask, EBUSY for mask changes that would take an assigned APQN, \
              hot plug into running guests, no ap_config",
    mask_reclaim: MaskReclaim::Refuse(Errno::EBUSY),
    unchanged_mask_skips_reprobe: false,
    availability: Availability::PerMasks,
    running_guest: RunningGuest::HotPlug,
    reassign_revalidates: false,
    remove_while_running: RemoveWhileRunning::WaitForRelease,
    instances_exhausted: Errno::EUSERS,
    max_instances: 65536,
    guest_filter: GuestFilter::WholeAdapters,
    vfio_ap_min_hwtype: 10,
    vfio_ap_max_hwtype: 14,
    bus_min_hwtype: 0,
    queue_in_use: QueueInUse::Attached,
    poll_thread_input: PollThreadInput::KstrToBool,
    poll_timeout_min: 0,
    sysfs: SysfsAttributes {
        bus_scans_and_bindings: true,
        bus_features: false,
        guest_matrix: true,
        queue_status: true,
        ap_config: false,
        matrix_features: false,
        mdev_driver: "vfio_ap_mdev",
        uevent_mode: true,
    },
    uevents: UEVENTS_6X,
    kernels: "Linux 6.0 to 6.9 (Ubuntu 24.04, SLES 15 SP6)",
};

/// Current upstream, Linux 6.10 and later (kernel.md "NEW").
pub const NEW: KernelProfile = KernelProfile {
    name: "new",
    summary: "current vfio_ap: as dyn, plus ap_config (the whole matrix in one write), \
              the features attributes, and no devices for cards older than CEX4",
    mask_reclaim: MaskReclaim::Refuse(Errno::EBUSY),
    unchanged_mask_skips_reprobe: true,
    availability: Availability::PerMasks,
    running_guest: RunningGuest::HotPlug,
    reassign_revalidates: false,
    remove_while_running: RemoveWhileRunning::WaitForRelease,
    instances_exhausted: Errno::EUSERS,
    max_instances: 65536,
    guest_filter: GuestFilter::WholeAdapters,
    vfio_ap_min_hwtype: 10,
    vfio_ap_max_hwtype: 14,
    bus_min_hwtype: 10,
    queue_in_use: QueueInUse::InGuestMatrix,
    poll_thread_input: PollThreadInput::KstrToBool,
    poll_timeout_min: 0,
    sysfs: SysfsAttributes {
        bus_scans_and_bindings: true,
        bus_features: true,
        guest_matrix: true,
        queue_status: true,
        ap_config: true,
        matrix_features: true,
        mdev_driver: "vfio_ap_mdev",
        uevent_mode: true,
    },
    uevents: UeventRules {
        bindings_complete: BindingsComplete::NextScan,
        ..UEVENTS_6X
    },
    kernels: "Linux 6.10 and later (RHEL 10, current upstream; `features` from 6.12)",
};

/// Profiles users can choose by name; the first is the default.
pub const PROFILES: &[&KernelProfile] = &[&SEED, &OLD, &OLD_5_15, &DYN, &NEW];

/// A profile by name (`seed`, `old`, `dyn`, `new`) or by the kernel version
/// that behaves so (`5.15`, `6.8.0-31-generic`, `6.12`).
pub fn for_kernel(text: &str) -> Result<&'static KernelProfile, String> {
    if let Some(p) = by_name(text) {
        return Ok(p);
    }
    let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
    let bad = || {
        format!(
            "{text:?} is neither a kernel profile ({}) nor a kernel version such as 5.15 or 6.12",
            names.join(", ")
        )
    };
    let mut parts = text.split(['.', '-']);
    let number = |p: Option<&str>| p.and_then(|t| t.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (number(parts.next()), number(parts.next())) else {
        return Err(bad());
    };
    match (major, minor) {
        (0..=3, _) | (4, 0..=19) => Err(format!(
            "kernel {text}: vfio_ap appeared in Linux 4.20; there is no vfio_ap to emulate before it"
        )),
        (4, _) | (5, 0..=14) => Ok(&OLD),
        (5, _) => Ok(&OLD_5_15),
        (6, 0..=9) => Ok(&DYN),
        _ => Ok(&NEW),
    }
}

/// Looks a profile up by its name.
pub fn by_name(name: &str) -> Option<&'static KernelProfile> {
    PROFILES.iter().copied().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_found_by_name() {
        assert_eq!(by_name("seed"), Some(&SEED));
        assert_eq!(by_name("upstream"), None);
    }

    #[test]
    fn a_kernel_version_picks_its_generation() {
        for (text, name) in [
            ("seed", "seed"),
            ("old", "old"),
            ("4.20", "old"),
            ("5.14.0-427.el9.s390x", "old"),
            ("5.15", "old-5.15"),
            ("5.15.0-91-generic", "old-5.15"),
            ("5.19", "old-5.15"),
            ("old-5.15", "old-5.15"),
            ("6.0", "dyn"),
            ("6.8.0-31-generic", "dyn"),
            ("6.9", "dyn"),
            ("6.10", "new"),
            ("6.12", "new"),
            ("7.1", "new"),
        ] {
            assert_eq!(for_kernel(text).map(|p| p.name), Ok(name), "{text}");
        }
        for bad in ["", "6", "six.two", "upstream", "6.x"] {
            let e = for_kernel(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("seed, old, old-5.15, dyn, new"),
                "{e}"
            );
        }
        assert!(for_kernel("4.19").unwrap_err().contains("4.20"));
    }

    #[test]
    fn names_are_unique() {
        for (i, p) in PROFILES.iter().enumerate() {
            assert!(
                PROFILES[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
        }
    }
}
