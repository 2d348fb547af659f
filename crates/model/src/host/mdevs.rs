//! The vfio_ap matrix device's mdevs: their life cycle and their matrices
//! (seed rules 1-3, 5; kernel.md §5, §6).

use uuid::Uuid;

use super::rules::{store_on_changes_nothing, Unavailable};
use super::{Effects, Host, Op, WriteTarget};
use crate::error::{ApError, ApqnList};
use crate::ids::{Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::parse::{parse_kstrtoul, NumberError};
use crate::profile::{Availability, RemoveWhileRunning, RunningGuest};
use crate::vfio::Mdev;

impl Host {
    /// The mdev an APQN is assigned to.
    pub fn mdev_holding(&self, apqn: Apqn) -> Option<&Mdev> {
        self.occupancy.holder(apqn).map(|uuid| &self.mdevs[&uuid])
    }

    /// A write to `mdev_supported_types/vfio_ap-passthrough/create`; the new
    /// mdev's UUID, or `None` for a write of 0 bytes.
    ///
    /// Every `write_*` function behaves as write(2) on the attribute: sysfs
    /// never passes a write of 0 bytes to the store, so it succeeds and
    /// changes nothing (kernel.md §2).
    pub fn write_create(&mut self, input: &[u8]) -> Result<Option<Uuid>, ApError> {
        Ok(match self.write(WriteTarget::Create, input)?.op {
            Some(Op::CreateMdev { uuid }) => Some(uuid),
            _ => None,
        })
    }

    /// Creates an mdev with an empty matrix.
    pub fn create_mdev(&mut self, uuid: Uuid) -> Result<(), ApError> {
        if !self.vfio_ap {
            return Err(ApError::DeviceUnavailable {
                device: "matrix".into(),
                reason: "vfio_ap is not loaded in a guest's kernel".into(),
            });
        }
        if self.mdevs.contains_key(&uuid) {
            return Err(ApError::MdevExists(uuid));
        }
        if self.available_instances() == 0 {
            return Err(ApError::NoInstancesLeft {
                errno: self.profile.instances_exhausted,
                limit: self.profile.max_instances,
            });
        }
        let mut mdev = Mdev::new(uuid);
        mdev.iommu_group = self.take_iommu_group(None);
        self.mdevs.insert(uuid, mdev);
        Ok(())
    }

    /// Marks `wanted` in use if it is free, else the smallest free number.
    pub(super) fn take_iommu_group(&mut self, wanted: Option<u32>) -> u32 {
        let used = |groups: &[u64], g: u32| {
            groups
                .get(g as usize / 64)
                .is_some_and(|w| w & (1 << (g % 64)) != 0)
        };
        let group = match wanted.filter(|g| !used(&self.iommu_groups, *g)) {
            Some(g) => g,
            None => {
                let word = self.iommu_groups.iter().position(|w| *w != u64::MAX);
                let word = word.unwrap_or(self.iommu_groups.len());
                let bit = self.iommu_groups.get(word).map_or(0, |w| w.trailing_ones());
                (word * 64) as u32 + bit
            }
        };
        let word = group as usize / 64;
        if self.iommu_groups.len() <= word {
            self.iommu_groups.resize(word + 1, 0);
        }
        self.iommu_groups[word] |= 1 << (group % 64);
        group
    }

    /// A write to an mdev's `remove`: a non-zero number removes it, 0 does nothing.
    pub fn write_remove(&mut self, uuid: &Uuid, input: &[u8]) -> Result<(), ApError> {
        self.write(WriteTarget::Remove(*uuid), input).map(drop)
    }

    /// Removes an mdev; refused while a guest uses it, or (kernels since
    /// ≈5.15) to be tried again once the guest lets go ([`ApError::waits`]).
    pub fn remove_mdev(&mut self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let Some(guest) = self.attached.get(uuid) {
            let (mdev, guest) = (*uuid, guest.clone());
            return Err(match self.profile.remove_while_running {
                RemoveWhileRunning::Refuse(errno) => ApError::MdevInUse { errno, mdev, guest },
                RemoveWhileRunning::WaitForRelease => {
                    ApError::RemoveWaitsForRelease { mdev, guest }
                }
            });
        }
        let mdev = self.mdevs.remove(uuid).expect("checked above");
        self.iommu_groups[mdev.iommu_group as usize / 64] &= !(1 << (mdev.iommu_group % 64));
        // no trailing empty words, so equal hosts compare equal
        while self.iommu_groups.last() == Some(&0) {
            self.iommu_groups.pop();
        }
        self.occupancy.release(&mdev.adapters, &mdev.domains);
        Ok(())
    }

    pub(super) fn existing_mdev(&self, uuid: &Uuid) -> Result<&Mdev, ApError> {
        self.mdevs.get(uuid).ok_or(ApError::NoSuchMdev(*uuid))
    }

    pub(super) fn parse_number(&self, target: &str, input: &[u8]) -> Result<u64, ApError> {
        parse_kstrtoul(input).map_err(|e| match e {
            NumberError::Invalid(s) => ApError::invalid(target, input, s.to_string()),
            NumberError::Overflow => ApError::NumberOutOfRange {
                target: target.to_string(),
                input: String::from_utf8_lossy(input).into_owned(),
            },
        })
    }

    /// A write to `assign_adapter`, `assign_domain` or `assign_control_domain`.
    pub fn write_assign(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        input: &[u8],
    ) -> Result<Effects, ApError> {
        Ok(self.write(WriteTarget::Assign(*uuid, axis), input)?.effects)
    }

    /// A write to `unassign_adapter`, `unassign_domain` or `unassign_control_domain`.
    pub fn write_unassign(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        input: &[u8],
    ) -> Result<Effects, ApError> {
        Ok(self
            .write(WriteTarget::Unassign(*uuid, axis), input)?
            .effects)
    }

    /// Assigns an adapter, domain or control domain to an mdev.
    pub fn assign(&mut self, uuid: &Uuid, axis: MatrixAxis, id: u64) -> Result<Effects, ApError> {
        self.check_matrix_store(uuid)?;
        self.assign_checked(uuid, axis, id)
    }

    /// Unassigns an adapter, domain or control domain from an mdev.
    pub fn unassign(&mut self, uuid: &Uuid, axis: MatrixAxis, id: u64) -> Result<Effects, ApError> {
        self.check_matrix_store(uuid)?;
        self.unassign_checked(uuid, axis, id)
    }

    /// What the stores check before parsing: the mdev exists and, on kernels
    /// without hot plug, no guest uses it.
    pub(super) fn check_matrix_store(&self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let RunningGuest::Refuse(errno) = self.profile.running_guest {
            if let Some(guest) = self.attached.get(uuid) {
                return Err(ApError::MatrixLockedWhileRunning {
                    errno,
                    mdev: *uuid,
                    guest: guest.clone(),
                });
            }
        }
        Ok(())
    }

    /// ENODEV for an id above the host's maximum on its axis (kernel.md §6).
    pub fn id_in_range(&self, axis: MatrixAxis, id: u64) -> Result<u8, ApError> {
        let max = self.max_id(axis);
        if id > max as u64 {
            return Err(ApError::IdAboveMaximum { axis, id, max });
        }
        Ok(id as u8)
    }

    /// The kernel's order: ENODEV, already assigned = success, EADDRNOTAVAIL,
    /// EADDRINUSE; control domains are only range-checked.
    pub(super) fn assign_checked(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        id: u64,
    ) -> Result<Effects, ApError> {
        let id = self.id_in_range(axis, id)?;
        let mdev = &self.mdevs[uuid];
        if store_on_changes_nothing(self.profile, mdev, axis, id, true) {
            return Ok(Effects::default());
        }
        let already = mdev.axis(axis).contains(id);
        if axis != MatrixAxis::ControlDomain {
            self.check_available(mdev, axis, id)?;
            if !already {
                self.check_not_shared(mdev, axis, id)?;
            }
        }
        if already {
            return Ok(Effects::default());
        }
        if axis != MatrixAxis::ControlDomain {
            let (adapters, domains) = Self::new_part(mdev, axis, id);
            let shared = self.occupancy.take(*uuid, &adapters, &domains);
            // check_not_shared ran on this occupancy a moment ago; an APQN in
            // two mdevs is the one failure worse than stopping.
            assert!(shared.is_empty(), "checked above: {shared:?}");
        }
        self.mdevs
            .get_mut(uuid)
            .expect("exists")
            .axis_mut(axis)
            .set(id);
        Ok(self.refresh_guest_of(uuid))
    }

    /// Unassigning what is not assigned succeeds; a running guest loses the
    /// resource at once (hot unplug).
    pub(super) fn unassign_checked(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        id: u64,
    ) -> Result<Effects, ApError> {
        let id = self.id_in_range(axis, id)?;
        let mdev = self.mdevs.get_mut(uuid).expect("checked by caller");
        if store_on_changes_nothing(self.profile, mdev, axis, id, false) {
            return Ok(Effects::default());
        }
        mdev.axis_mut(axis).clear(id);
        if axis != MatrixAxis::ControlDomain {
            let (adapters, domains) = Self::new_part(mdev, axis, id);
            self.occupancy.release(&adapters, &domains);
        }
        Ok(self.refresh_guest_of(uuid))
    }

    /// A write to `ap_config` (NEW, kernel.md §6): the whole matrix at
    /// once. The new matrix is checked as a whole (EADDRNOTAVAIL, then
    /// EADDRINUSE), then every id against the host's maximum (ENODEV, after
    /// the others, as the kernel does), and only then put in place, with one
    /// update of a running guest. A refusal changes nothing.
    pub fn set_matrix(
        &mut self,
        uuid: &Uuid,
        adapters: Mask256,
        domains: Mask256,
        control_domains: Mask256,
    ) -> Result<Effects, ApError> {
        self.existing_mdev(uuid)?;
        if let Some(u) = self.unavailable(&adapters, &domains) {
            let reason = match u {
                Unavailable::ReservedForHost(_) => "reserved for the host by apmask and aqmask",
                Unavailable::NotBoundToVfioAp(_) => "not bound to the vfio_ap driver",
            };
            return Err(ApError::ApConfigReservedForHost {
                mdev: *uuid,
                apqns: ApqnList(u.apqns().to_vec()),
                reason,
            });
        }
        let others = self.occupancy.clashes(&adapters, &domains);
        if let Some(c) = others.into_iter().find(|c| c.holder != *uuid) {
            return Err(ApError::ApConfigShared {
                mdev: *uuid,
                apqns: ApqnList(c.apqns),
                other: c.holder,
                other_guest: self.attached.get(&c.holder).cloned(),
            });
        }
        let mut new = self.mdevs[uuid].clone();
        (new.adapters, new.domains, new.control_domains) = (adapters, domains, control_domains);
        for axis in MatrixAxis::ALL {
            if let Some(id) = new.axis(axis).last() {
                self.id_in_range(axis, id.into())?;
            }
        }
        let old = std::mem::replace(self.mdevs.get_mut(uuid).expect("exists"), new);
        self.occupancy.release(&old.adapters, &old.domains);
        let shared = self.occupancy.take(*uuid, &adapters, &domains);
        assert!(shared.is_empty(), "checked above: {shared:?}");
        Ok(self.refresh_guest_of(uuid))
    }

    /// The new row (adapter) or column (domain) of the matrix and the ids it
    /// crosses, as (adapters, domains) of the new cross product part.
    pub(super) fn new_part(mdev: &Mdev, axis: MatrixAxis, id: u8) -> (Mask256, Mask256) {
        match axis {
            MatrixAxis::Adapter => (Mask256::single(id), mdev.domains),
            _ => (mdev.adapters, Mask256::single(id)),
        }
    }

    /// EADDRNOTAVAIL: every APQN of the new part must be available to vfio_ap.
    pub(super) fn check_available(
        &self,
        mdev: &Mdev,
        axis: MatrixAxis,
        id: u8,
    ) -> Result<(), ApError> {
        let (adapters, domains) = Self::new_part(mdev, axis, id);
        let crosses_nothing = adapters.is_empty() || domains.is_empty();
        if crosses_nothing && self.profile.availability == Availability::BoundToVfioAp {
            // OLD: with nothing to cross yet, some queue of the id must be bound.
            let (a, d) = match axis {
                MatrixAxis::Adapter => (adapters, self.topology.usage_domains),
                _ => (self.topology.adapters(), domains),
            };
            let unbound = self.unavailable(&a, &d).map_or(0, |u| u.apqns().len());
            if unbound < (a.count() * d.count()) as usize {
                return Ok(());
            }
            return Err(ApError::NotBoundToVfioAp {
                mdev: mdev.uuid,
                axis,
                id,
                detail: format!("no queue of {axis} {id:#04x} is bound to the vfio_ap driver"),
            });
        }
        match self.unavailable(&adapters, &domains) {
            None => Ok(()),
            Some(Unavailable::ReservedForHost(apqns)) => Err(ApError::ReservedForHost {
                mdev: mdev.uuid,
                axis,
                id,
                apmask_bit: apqns[0].adapter.0,
                aqmask_bit: apqns[0].domain.0,
                apqns: ApqnList(apqns),
            }),
            Some(Unavailable::NotBoundToVfioAp(apqns)) => Err(ApError::NotBoundToVfioAp {
                mdev: mdev.uuid,
                axis,
                id,
                detail: format!("{} is not bound to the vfio_ap driver", ApqnList(apqns)),
            }),
        }
    }

    /// EADDRINUSE: no APQN of the new part may be in another mdev. The mdev
    /// itself holds nothing of the new part (the id was not assigned), so the
    /// occupancy tables answer for all other mdevs at once.
    pub(super) fn check_not_shared(
        &self,
        mdev: &Mdev,
        axis: MatrixAxis,
        id: u8,
    ) -> Result<(), ApError> {
        let clash = match axis {
            MatrixAxis::Adapter => self.occupancy.held_domains(id).intersects(&mdev.domains),
            _ => self.occupancy.held_adapters(id).intersects(&mdev.adapters),
        };
        if !clash {
            return Ok(());
        }
        let (adapters, domains) = Self::new_part(mdev, axis, id);
        // The lowest UUID among the holders is named, with what it holds.
        let first = self.occupancy.clashes(&adapters, &domains).swap_remove(0);
        Err(ApError::AssignedToOtherMdev {
            mdev: mdev.uuid,
            axis,
            id,
            apqns: ApqnList(first.apqns),
            other: first.holder,
            other_guest: self.attached.get(&first.holder).cloned(),
        })
    }
}
