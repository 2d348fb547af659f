//! Every rule that differs between kernel generations, in one place.
//!
//! kernel.md tags rules OLD (4.20-5.19), SEED/PATCH (the dynamic
//! configuration series this project comes from) and DYN/NEW (6.x). The
//! model asks a [`KernelProfile`] wherever it must decide one of them, so a
//! further generation is one more constant here, not edits across the model.
//! Only [`SEED`] is offered to users today.

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
    /// The errno of `remove` while a guest uses the mdev (kernel.md §5:
    /// OLD returns EBUSY; the seed document says remove "fails while its
    /// guest runs").
    pub remove_while_running: Errno,
    /// The errno of `create` when `available_instances` is exhausted
    /// (driver-owned counter: EPERM; mdev core: EUSERS).
    pub instances_exhausted: Errno,
    /// `available_instances` of a fresh matrix device.
    pub max_instances: u32,
    /// How the guest's CRYCB (`guest_matrix`) follows from the matrix.
    pub guest_filter: GuestFilter,
    /// The lowest hwtype vfio_ap binds (CEX4 = 10).
    pub vfio_ap_min_hwtype: u8,
    /// How `poll_thread` parses a write.
    pub poll_thread_input: PollThreadInput,
    /// The smallest `poll_timeout` accepted (OLD rejected 0; NEW takes it).
    pub poll_timeout_min: u64,
    /// Which optional sysfs attributes exist.
    pub sysfs: SysfsAttributes,
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
    remove_while_running: Errno::EBUSY,
    // The series still kept vfio_ap's own instance counter (kernel.md §5).
    instances_exhausted: Errno::EPERM,
    max_instances: 65536,
    guest_filter: GuestFilter::WholeAdapters,
    vfio_ap_min_hwtype: 10,
    // The 2020 series sat on a 5.10-era bus (kernel.md §1 "OLD").
    poll_thread_input: PollThreadInput::ScanfInt,
    poll_timeout_min: 1,
    sysfs: SysfsAttributes {
        bus_scans_and_bindings: true,
        bus_features: false,
        guest_matrix: true,
        queue_status: true,
    },
};

/// Profiles users can choose by name.
pub const PROFILES: &[&KernelProfile] = &[&SEED];

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
}
