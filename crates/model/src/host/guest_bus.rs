//! The AP bus a guest's own kernel builds (kernel.md §7, §8): from the
//! guest's side, its CRYCB is the machine's configuration (what QCI tells
//! it), and its bus finds the cards and queues in it at a scan, binds them
//! to its zcrypt drivers per its own apmask and aqmask, and has no vfio_ap.
//!
//! So a guest's bus is a [`Host`] of its own, kept in the guest. A hot plug
//! changes the guest's configuration at once but reaches its bus only at
//! its next scan, exactly as an HMC change reaches the host's bus.

use super::{Host, Op};
use crate::error::ApError;
use crate::ids::AdapterId;
use crate::mask::Mask256;
use crate::topology::{BootParameters, Topology};
use crate::vfio::{CpuModel, Crycb};
use std::sync::Arc;

impl Host {
    /// The configuration the guest's kernel sees (its QCI): the cards of its
    /// CRYCB that it can identify, each with the queues of its usage
    /// domains, within the limits its CPU model gives (kernel.md §7).
    pub fn guest_configuration(&self, name: &str) -> Result<Topology, ApError> {
        let g = self.existing_guest(name)?;
        Ok(self.configuration_of(&g.name, g.cpu, &g.crycb))
    }

    fn configuration_of(&self, name: &str, cpu: CpuModel, crycb: &Crycb) -> Topology {
        let host = &self.topology;
        // Without QCI the guest's bus assumes no APXA: ids 63 and 15.
        let apxa = host.apxa && cpu.apqci;
        let mut t = Topology {
            name: format!("guest {name}"),
            apxa,
            qci_max_adapter_id: host.qci_max_adapter_id,
            qci_max_domain_id: host.qci_max_domain_id,
            usage_domains: Mask256::EMPTY,
            control_domains: crycb.adm,
            cards: Default::default(),
            boot: BootParameters::default(),
        };
        // Nor can it name a control domain above its limit.
        t.control_domains = crycb.adm.truncated(t.max_domain_id());
        if !(cpu.ap && cpu.apft) {
            return t;
        }
        let usage = crycb
            .aqm
            .and(&host.usage_domains)
            .truncated(t.max_domain_id());
        for a in crycb.apm.truncated(t.max_adapter_id()).iter() {
            let Some(card) = host.card(AdapterId(a)).filter(|c| c.config) else {
                continue;
            };
            if usage.is_empty() {
                continue;
            }
            let mut seen = card.clone();
            // zcrypt's online flag is the host's business, not the guest's.
            seen.online = true;
            t.cards.insert(seen.id, seen);
        }
        t.usage_domains = usage;
        t
    }

    /// The guest's own AP bus, as its kernel has it since its last scan.
    pub fn guest_bus(&self, name: &str) -> Option<&Host> {
        self.guests.get(name).map(|g| &*g.bus)
    }

    /// The bus of a guest that is not running: nothing on it.
    pub fn stopped_guest_bus(profile: &'static crate::profile::KernelProfile) -> Host {
        let nothing = Topology {
            name: "a stopped guest".into(),
            apxa: false,
            qci_max_adapter_id: 0,
            qci_max_domain_id: 0,
            usage_domains: Mask256::EMPTY,
            control_domains: Mask256::EMPTY,
            cards: Default::default(),
            boot: BootParameters::default(),
        };
        let mut bus = Host::new(nothing, profile);
        bus.vfio_ap = false;
        bus
    }

    /// Whether vfio_ap is loaded (always on the host; a guest's bus has none).
    pub fn has_vfio_ap(&self) -> bool {
        self.vfio_ap
    }

    /// A guest's bus as its kernel boots it: everything in its
    /// configuration found and bound to zcrypt.
    pub(super) fn boot_guest_bus(&self, name: &str, cpu: CpuModel, crycb: &Crycb) -> Arc<Host> {
        let mut bus = Host::new(self.configuration_of(name, cpu, crycb), self.profile);
        bus.vfio_ap = false;
        bus.reprobe();
        Arc::new(bus)
    }

    /// One operation of the guest's kernel on its own bus (a write in the
    /// guest's sysfs); a scan learns the guest's configuration as it is now.
    pub(super) fn apply_in_guest(
        &mut self,
        guest: &str,
        op: &Op,
    ) -> Result<super::Effects, ApError> {
        let configuration = self.guest_configuration(guest)?;
        if matches!(op, Op::InGuest { .. }) || !guest_may(op) {
            return Err(ApError::invalid(
                "guest",
                guest.as_bytes(),
                "a guest's kernel changes only its own AP bus (masks, scans, its cards' and queues' settings)",
            ));
        }
        // Copied here if a copy of the host shares it (copy on write).
        let bus = Arc::make_mut(&mut self.guests.get_mut(guest).expect("checked").bus);
        if matches!(op, Op::Rescan) {
            // Only a scan looks (and a scan is never refused).
            bus.offer_configuration(configuration);
        }
        let effects = bus.apply(op)?;
        Ok(super::Effects {
            reprobed: effects.reprobed,
            ..Default::default()
        })
    }
}

/// The operations a guest's kernel can do to its own bus: what its sysfs
/// takes, not the host's HMC, mdev or guest operations.
fn guest_may(op: &Op) -> bool {
    matches!(
        op,
        Op::SetMask { .. }
            | Op::SetDefaultDomain { .. }
            | Op::SetConfigTime { .. }
            | Op::SetPollThread { .. }
            | Op::SetPollTimeout { .. }
            | Op::Rescan
            | Op::SetCardOnline { .. }
            | Op::SetCardConfig { .. }
            | Op::SetQueueOnline { .. }
    )
}

#[cfg(test)]
mod tests;
