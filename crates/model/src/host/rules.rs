//! The kernel's decisions, as queries that follow the host's profile: who
//! owns an APQN, whether it may go to an mdev, whether a mask write takes an
//! assigned queue back, and whether a store changes anything.
//!
//! The host's operations decide through these, and so do `apmatrix check`
//! and its predictions (crates/admin), so a rule is fixed in one place.

use uuid::Uuid;

use super::{Driver, Host, Occupancy};
use crate::error::{Errno, MaskKind};
use crate::ids::{Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::profile::{Availability, KernelProfile, MaskReclaim};
use crate::vfio::{cross, Mdev};

/// APQNs that cannot go to an mdev (EADDRNOTAVAIL), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// apmask and aqmask give them to the host (seed rule 1).
    ReservedForHost(Vec<Apqn>),
    /// Their queues are not bound to vfio_ap (OLD availability).
    NotBoundToVfioAp(Vec<Apqn>),
}

impl Unavailable {
    /// The errno of the refused assignment.
    pub fn errno(&self) -> Errno {
        Errno::EADDRNOTAVAIL
    }

    /// The APQNs, adapter-major ascending.
    pub fn apqns(&self) -> &[Apqn] {
        match self {
            Unavailable::ReservedForHost(q) | Unavailable::NotBoundToVfioAp(q) => q,
        }
    }
}

/// Whether apmask and aqmask give an APQN to the host's zcrypt drivers.
pub fn host_owns(apmask: &Mask256, aqmask: &Mask256, apqn: Apqn) -> bool {
    apmask.contains(apqn.adapter.0) && aqmask.contains(apqn.domain.0)
}

/// The assigned APQNs that the masks `to` give the host and `from` did not
/// (kernel.md §3): a mask write over them is refused where the profile says
/// so; where it allows the reclaim there are none to refuse (see
/// [`given_back`] for what such a kernel takes).
pub fn reclaimed(
    profile: &KernelProfile,
    occupancy: &Occupancy,
    from: (Mask256, Mask256),
    to: (Mask256, Mask256),
) -> Vec<Apqn> {
    if profile.mask_reclaim == MaskReclaim::Allow {
        return Vec::new();
    }
    given_back(occupancy, from, to)
}

/// The assigned APQNs that the masks `to` give the host and `from` did not,
/// whatever the kernel then does about it: refuse the write, or (OLD) take
/// the queues from vfio_ap while the mdevs and their guests keep them.
pub fn given_back(
    occupancy: &Occupancy,
    from: (Mask256, Mask256),
    to: (Mask256, Mask256),
) -> Vec<Apqn> {
    let ((from_ap, from_aq), (to_ap, to_aq)) = (from, to);
    let new_domains = to_aq.and_not(&from_aq);
    let mut taken = Vec::new();
    for a in to_ap.iter() {
        let gained = if from_ap.contains(a) {
            new_domains
        } else {
            to_aq
        };
        if gained.is_empty() {
            continue;
        }
        let held = occupancy.held_domains(a).and(&gained);
        taken.extend(held.iter().map(|d| Apqn::new(a, d)));
    }
    taken
}

impl Host {
    /// apmask and aqmask give this APQN to the host's default drivers.
    pub fn host_owned(&self, apqn: Apqn) -> bool {
        host_owns(&self.apmask, &self.aqmask, apqn)
    }

    /// The APQNs of the block `adapters` x `domains` that no mdev may have
    /// under this host's profile (EADDRNOTAVAIL), or `None` if all may.
    pub fn unavailable(&self, adapters: &Mask256, domains: &Mask256) -> Option<Unavailable> {
        match self.profile.availability {
            Availability::PerMasks => {
                // Host-owned = apmask x aqmask, so the block meets it iff
                // both sides meet their mask.
                let (a, d) = (adapters.and(&self.apmask), domains.and(&self.aqmask));
                if a.is_empty() || d.is_empty() {
                    return None;
                }
                let apqns: Vec<Apqn> = cross(&a, &d).collect();
                (!apqns.is_empty()).then_some(Unavailable::ReservedForHost(apqns))
            }
            Availability::BoundToVfioAp => {
                let apqns: Vec<Apqn> = cross(adapters, domains)
                    .filter(|q| self.queue_driver(*q) != Some(Some(Driver::VfioAp)))
                    .collect();
                (!apqns.is_empty()).then_some(Unavailable::NotBoundToVfioAp(apqns))
            }
        }
    }

    /// The assigned APQNs a mask write of `new` would give the host and
    /// refuse over (none where the profile lets masks take queues back).
    pub fn reclaimed_by(&self, kind: MaskKind, new: Mask256) -> Vec<Apqn> {
        let to = match kind {
            MaskKind::Apmask => (new, self.aqmask),
            MaskKind::Aqmask => (self.apmask, new),
        };
        reclaimed(
            self.profile,
            &self.occupancy,
            (self.apmask, self.aqmask),
            to,
        )
    }

    /// A mask write of the current value: accepted without a re-probe where
    /// the profile skips it (NEW, SEED), so it changes nothing.
    pub fn mask_write_changes_nothing(&self, kind: MaskKind, new: Mask256) -> bool {
        new == self.mask(kind) && self.profile.unchanged_mask_skips_reprobe
    }

    /// An assign or unassign that is accepted without any check or change:
    /// unassigning what is not assigned, or re-assigning what is, where the
    /// profile does not re-validate (SEED, NEW). False for unknown mdevs and
    /// ids the host cannot have: those are refused.
    pub fn store_changes_nothing(
        &self,
        uuid: &Uuid,
        axis: MatrixAxis,
        id: u64,
        assign: bool,
    ) -> bool {
        let Ok(id) = u8::try_from(id) else {
            return false;
        };
        if id > self.max_id(axis) {
            return false;
        }
        match self.mdevs.get(uuid) {
            Some(mdev) => store_on_changes_nothing(self.profile, mdev, axis, id, assign),
            None => false,
        }
    }
}

/// [`Host::store_changes_nothing`] for an mdev in hand and an id in range.
pub(super) fn store_on_changes_nothing(
    profile: &KernelProfile,
    mdev: &Mdev,
    axis: MatrixAxis,
    id: u8,
    assign: bool,
) -> bool {
    let assigned = mdev.axis(axis).contains(id);
    if assign {
        assigned && !profile.reassign_revalidates
    } else {
        !assigned
    }
}

impl KernelProfile {
    /// Whether vfio_ap binds queues of a card of this hwtype (CEX4 and
    /// newer, up to the newest type the generation knows).
    pub fn vfio_ap_drives(&self, hwtype: u8) -> bool {
        (self.vfio_ap_min_hwtype..=self.vfio_ap_max_hwtype).contains(&hwtype)
    }

    /// Whether the bus makes devices for a card of this hwtype (NEW: none
    /// older than CEX4, kernel.md §3).
    pub fn bus_has_device(&self, hwtype: u8) -> bool {
        hwtype >= self.bus_min_hwtype
    }
}
