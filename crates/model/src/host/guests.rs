//! Guests: start, hot plug and unplug of an mdev, and the CRYCB vfio_ap
//! gives them (seed rule 5; kernel.md §6-§8).

use uuid::Uuid;

use super::{update_effects, Driver, Effects, Guest, GuestUpdate, Host, Rebind};
use crate::error::ApError;
use crate::ids::{AdapterId, Apqn, DomainId};
use crate::mask::Mask256;
use crate::profile::GuestFilter;
use crate::vfio::{CpuModel, Crycb, GuestCard, GuestView, Mdev};

impl Host {
    /// Starts a guest, optionally with an mdev (`-device vfio-ap,sysfsdev=...`).
    pub fn start_guest(
        &mut self,
        name: &str,
        mdev: Option<Uuid>,
        cpu: CpuModel,
    ) -> Result<Effects, ApError> {
        check_guest_name(name)?;
        if self.guests.contains_key(name) {
            return Err(ApError::GuestExists(name.to_string()));
        }
        if let Some(uuid) = &mdev {
            self.check_attachable(uuid)?;
        }
        // The guest's kernel boots with what the mdev gives it.
        let crycb = mdev.map_or_else(Crycb::default, |u| self.crycb_for(&self.mdevs[&u]));
        let guest = Guest {
            name: name.to_string(),
            mdev: None,
            cpu,
            crycb: Crycb::default(),
            bus: self.boot_guest_bus(name, cpu, &crycb),
        };
        self.guests.insert(name.to_string(), guest);
        match mdev {
            Some(uuid) => Ok(self.attach(name, uuid)),
            None => Ok(Effects::default()),
        }
    }

    /// Hot plugs an mdev into a running guest (`device_add vfio-ap`).
    pub fn attach_mdev(&mut self, guest: &str, uuid: &Uuid) -> Result<Effects, ApError> {
        let g = self.existing_guest(guest)?;
        if let Some(current) = g.mdev {
            return Err(ApError::GuestHasMdev {
                guest: guest.to_string(),
                mdev: current,
            });
        }
        self.check_attachable(uuid)?;
        Ok(self.attach(guest, *uuid))
    }

    /// Hot unplugs the guest's mdev (`device_del`).
    pub fn detach_mdev(&mut self, guest: &str) -> Result<Effects, ApError> {
        let g = self.existing_guest(guest)?;
        let Some(uuid) = g.mdev else {
            return Err(ApError::GuestHasNoMdev(guest.to_string()));
        };
        self.attached.remove(&uuid);
        let g = self.guests.get_mut(guest).expect("exists");
        g.mdev = None;
        let before = std::mem::take(&mut g.crycb);
        Ok(update_effects(guest, before, Crycb::default()))
    }

    /// Stops a guest; its mdev becomes free.
    pub fn stop_guest(&mut self, name: &str) -> Result<Effects, ApError> {
        self.existing_guest(name)?;
        let g = self.guests.remove(name).expect("exists");
        if let Some(uuid) = g.mdev {
            self.attached.remove(&uuid);
        }
        Ok(update_effects(name, g.crycb, Crycb::default()))
    }

    /// What the guest's `lszcrypt` lists, and why anything assigned is missing.
    pub fn guest_view(&self, name: &str) -> Result<GuestView, ApError> {
        let g = self.existing_guest(name)?;
        let mut notes = Vec::new();
        let mut cards = Vec::new();
        if let Some(mdev) = g.mdev.and_then(|u| self.mdevs.get(&u)) {
            for a in mdev.adapters.and_not(&g.crycb.apm).iter() {
                notes.push(self.filtered_adapter_reason(mdev, a));
            }
        }
        if !g.cpu.ap {
            notes.push("the CPU model has ap=off: the guest has no AP instructions, so it sees no AP devices".into());
        } else if !g.cpu.apft {
            notes.push("the CPU model has apft=off: the guest's AP bus cannot identify CEX4 and newer cards, so it sees none".into());
        } else {
            // Without QCI the guest's AP bus uses the limits 63 and 15
            // (kernel.md §7), so it never looks at higher ids.
            let (max_a, max_d) = if g.cpu.apqci { (255, 255) } else { (63, 15) };
            let hidden_domains = g.crycb.aqm.and_not(&Mask256::range(0, max_d));
            let hidden_adapters = g.crycb.apm.and_not(&Mask256::range(0, max_a));
            if !hidden_domains.is_empty() {
                notes.push(format!(
                    "the CPU model has apqci=off: domains above 15 are invisible to the guest ({})",
                    hidden_domains.to_hex_list()
                ));
            }
            if !hidden_adapters.is_empty() {
                notes.push(format!(
                    "the CPU model has apqci=off: adapters above 63 are invisible to the guest ({})",
                    hidden_adapters.to_hex_list()
                ));
            }
            for a in g.crycb.apm.iter().filter(|a| *a <= max_a) {
                let Some(card) = self.topology.card(AdapterId(a)) else {
                    continue;
                };
                let domains: Vec<DomainId> = g
                    .crycb
                    .aqm
                    .and(&self.topology.usage_domains)
                    .iter()
                    .filter(|d| *d <= max_d)
                    .map(DomainId)
                    .collect();
                if domains.is_empty() || !card.config {
                    continue;
                }
                cards.push(GuestCard {
                    adapter: card.id,
                    type_name: card.type_name(),
                    mode: card.mode.lszcrypt_name(),
                    domains,
                });
            }
        }
        Ok(GuestView {
            guest: g.name.clone(),
            mdev: g.mdev,
            cpu: g.cpu,
            crycb: g.crycb,
            cards,
            notes,
        })
    }

    pub(super) fn filtered_adapter_reason(&self, mdev: &Mdev, a: u8) -> String {
        let card = self.topology.card(AdapterId(a));
        match card {
            None => format!("adapter {a:02x} is assigned but the host has no such card, so the guest does not get it"),
            Some(c) if !c.config => format!("adapter {a:02x} is assigned but its card is deconfigured, so the guest does not get it"),
            Some(_) => {
                let missing: Vec<String> = mdev
                    .domains
                    .and(&self.topology.usage_domains)
                    .iter()
                    .map(|d| Apqn::new(a, d))
                    .filter(|q| self.queue_driver(*q) != Some(Some(Driver::VfioAp)))
                    .map(|q| q.to_string())
                    .collect();
                format!(
                    "adapter {a:02x} is assigned but not given to the guest: queue {} is not bound to vfio_ap, \
                     and the CRYCB can only drop whole adapters",
                    missing.join(", ")
                )
            }
        }
    }

    pub(super) fn existing_guest(&self, name: &str) -> Result<&Guest, ApError> {
        self.guests
            .get(name)
            .ok_or_else(|| ApError::NoSuchGuest(name.to_string()))
    }

    pub(super) fn check_attachable(&self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let Some(other) = self.attached.get(uuid) {
            return Err(ApError::MdevAttachedElsewhere {
                mdev: *uuid,
                guest: other.clone(),
            });
        }
        Ok(())
    }

    pub(super) fn attach(&mut self, guest: &str, uuid: Uuid) -> Effects {
        self.attached.insert(uuid, guest.to_string());
        self.guests.get_mut(guest).expect("exists").mdev = Some(uuid);
        self.refresh_guest_of(&uuid)
    }

    /// The masks vfio_ap would give (or gives) a guest of this mdev: its
    /// `guest_matrix` (kernel.md §6: the filter runs on every assignment,
    /// whether a guest runs or not).
    pub fn guest_matrix(&self, uuid: &Uuid) -> Option<Crycb> {
        self.mdevs.get(uuid).map(|m| self.crycb_for(m))
    }

    /// The CRYCB vfio_ap gives the guest of `mdev` (kernel.md §6 filter).
    pub(super) fn crycb_for(&self, mdev: &Mdev) -> Crycb {
        match self.profile.guest_filter {
            GuestFilter::Unfiltered => Crycb {
                apm: mdev.adapters,
                aqm: mdev.domains,
                adm: mdev.control_domains,
            },
            GuestFilter::WholeAdapters => {
                let aqm = mdev.domains.and(&self.topology.usage_domains);
                let mut apm = mdev.adapters.and(&self.configured);
                for a in apm.iter() {
                    if !aqm.is_subset_of(&self.bindings.vfio[a as usize]) {
                        apm.clear(a);
                    }
                }
                Crycb {
                    apm,
                    aqm,
                    adm: mdev.control_domains.and(&self.topology.control_domains),
                }
            }
        }
    }

    pub(super) fn refresh_guest_of(&mut self, uuid: &Uuid) -> Effects {
        let Some(name) = self.attached.get(uuid) else {
            return Effects::default();
        };
        let crycb = self.crycb_for(&self.mdevs[uuid]);
        let g = self.guests.get_mut(name).expect("attached guest exists");
        if g.crycb == crycb {
            return Effects::default();
        }
        let before = std::mem::replace(&mut g.crycb, crycb);
        update_effects(name, before, crycb)
    }

    /// Refreshes the guests a re-probe can affect: a CRYCB depends on the
    /// binding of its mdev's queues only, so guests whose matrix meets no
    /// rebound queue are skipped (under the seed rules that is every guest:
    /// assigned queues never go back to the host).
    pub(super) fn refresh_guests_after(&mut self, rebinds: &[Rebind]) -> Vec<GuestUpdate> {
        let mut rebound = [Mask256::EMPTY; 256];
        for r in rebinds {
            let a = r.adapter.0 as usize;
            rebound[a] = rebound[a].or(&r.domains);
        }
        let mut changed = Vec::new();
        for g in self.guests.values() {
            let Some(mdev) = g.mdev.and_then(|u| self.mdevs.get(&u)) else {
                continue;
            };
            if !mdev
                .adapters
                .iter()
                .any(|a| rebound[a as usize].intersects(&mdev.domains))
            {
                continue;
            }
            let crycb = self.crycb_for(mdev);
            if crycb != g.crycb {
                changed.push((g.name.clone(), crycb));
            }
        }
        changed
            .into_iter()
            .map(|(name, crycb)| {
                let g = self.guests.get_mut(&name).expect("just seen");
                let before = std::mem::replace(&mut g.crycb, crycb);
                GuestUpdate {
                    guest: name,
                    before,
                    after: crycb,
                }
            })
            .collect()
    }
}

/// Guest names as libvirt and QEMU accept them, kept simple: 1 to 64
/// printable characters without white space or `/`.
pub(super) fn check_guest_name(name: &str) -> Result<(), ApError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(ApError::invalid(
            "guest name",
            name.as_bytes(),
            "a guest name is 1 to 64 printable ASCII characters without white space or '/'",
        ))
    }
}
