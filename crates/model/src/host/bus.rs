//! The AP bus: apmask and aqmask, and which driver each queue is bound to
//! (seed rule 4; kernel.md §3).

use std::sync::Arc;

use super::{Driver, Effects, Host, Rebind, WriteTarget};
use crate::error::{ApError, ApqnList, MaskKind};
use crate::ids::{AdapterId, Apqn};
use crate::mask::Mask256;
use crate::profile::{MaskReclaim, QueueInUse};
use crate::topology::Card;

/// Per adapter: the domains whose queue is bound to each driver. Shared
/// between copies of the host until one rebinds (most changes bind
/// nothing).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Bindings {
    pub(super) zcrypt: Arc<[Mask256; 256]>,
    pub(super) vfio: Arc<[Mask256; 256]>,
}

impl Bindings {
    pub(super) fn new() -> Self {
        Bindings {
            zcrypt: Arc::new([Mask256::EMPTY; 256]),
            vfio: Arc::new([Mask256::EMPTY; 256]),
        }
    }

    /// Sets an adapter's rows, copying a shared table only if one changes.
    pub(super) fn set(&mut self, adapter: usize, zcrypt: Mask256, vfio: Mask256) {
        if self.zcrypt[adapter] != zcrypt {
            Arc::make_mut(&mut self.zcrypt)[adapter] = zcrypt;
        }
        if self.vfio[adapter] != vfio {
            Arc::make_mut(&mut self.vfio)[adapter] = vfio;
        }
    }
}

impl Host {
    /// Whether the queue device exists.
    pub fn queue_exists(&self, apqn: Apqn) -> bool {
        self.has_card_device(apqn.adapter) && self.topology.usage_domains.contains(apqn.domain.0)
    }

    /// The driver a queue is bound to; `None` if there is no such queue.
    pub fn queue_driver(&self, apqn: Apqn) -> Option<Option<Driver>> {
        if !self.queue_exists(apqn) {
            return None;
        }
        let (a, d) = (apqn.adapter.0 as usize, apqn.domain.0);
        Some(if self.bindings.zcrypt[a].contains(d) {
            Some(Driver::Cex4Queue)
        } else if self.bindings.vfio[a].contains(d) {
            Some(Driver::VfioAp)
        } else {
            None
        })
    }

    /// The domains of an adapter whose queues are bound to `driver`.
    pub fn bound_domains(&self, adapter: AdapterId, driver: Driver) -> Mask256 {
        match driver {
            Driver::Cex4Queue => self.bindings.zcrypt[adapter.0 as usize],
            Driver::VfioAp => self.bindings.vfio[adapter.0 as usize],
            Driver::Cex4Card => Mask256::EMPTY,
        }
    }

    /// The queues bound to `driver`, adapter-major ascending (the order
    /// `ls /sys/bus/ap/drivers/<driver>` shows them).
    pub fn queues_bound_to(&self, driver: Driver) -> Vec<Apqn> {
        self.topology
            .cards
            .keys()
            .flat_map(|a| {
                self.bound_domains(*a, driver)
                    .iter()
                    .map(move |d| Apqn::new(a.0, d))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `/sys/bus/ap/bindings`: (bound queue devices, all queue devices).
    pub fn bindings_count(&self) -> (u32, u32) {
        let bound = self
            .card_devices()
            .map(|c| {
                let a = c.id.0 as usize;
                self.bindings.zcrypt[a].count() + self.bindings.vfio[a].count()
            })
            .sum();
        let per_card = self.topology.usage_domains.count();
        (bound, self.card_devices().count() as u32 * per_card)
    }

    /// The cards the bus made devices for: all of them, except on NEW,
    /// whose bus makes none for types older than CEX4 (kernel.md §3).
    pub fn card_devices(&self) -> impl Iterator<Item = &Card> {
        let profile = self.profile;
        self.topology
            .cards
            .values()
            .filter(move |c| profile.bus_has_device(c.hwtype))
    }

    /// The card, if the bus has a device for it.
    pub fn card_device(&self, adapter: AdapterId) -> Option<&Card> {
        self.topology
            .cards
            .get(&adapter)
            .filter(|c| self.profile.bus_has_device(c.hwtype))
    }

    /// zcrypt's own `online` flag of a queue, which a card's `online` write
    /// sets on all its queues (what `online` shows also needs the card
    /// configured and not checkstopped: [`Host::queue_online`]).
    pub fn queue_zcrypt_online(&self, apqn: Apqn) -> bool {
        !self.offline_queues.contains(&apqn)
    }

    /// Whether the bus has a device for this card.
    pub fn has_card_device(&self, adapter: AdapterId) -> bool {
        self.topology
            .cards
            .get(&adapter)
            .is_some_and(|c| self.profile.bus_has_device(c.hwtype))
    }

    /// The `status` attribute of a queue bound to vfio_ap: `in use` when its
    /// mdev's guest runs (NEW: and the queue is in the guest's matrix),
    /// `assigned` when an mdev holds it, else `unassigned` (kernel.md §4).
    pub fn vfio_queue_status(&self, apqn: Apqn) -> Option<&'static str> {
        if self.queue_driver(apqn) != Some(Some(Driver::VfioAp)) {
            return None;
        }
        let Some(m) = self.mdev_holding(apqn) else {
            return Some("unassigned");
        };
        let in_use = match (self.attached.get(&m.uuid), self.profile.queue_in_use) {
            (None, _) => false,
            (Some(_), QueueInUse::Attached) => true,
            (Some(guest), QueueInUse::InGuestMatrix) => self.guests[guest].crycb.contains(apqn),
        };
        Some(if in_use { "in use" } else { "assigned" })
    }

    /// A write to `/sys/bus/ap/apmask` or `aqmask`, either kernel form.
    pub fn write_mask(&mut self, kind: MaskKind, input: &[u8]) -> Result<Effects, ApError> {
        Ok(self.write(WriteTarget::Mask(kind), input)?.effects)
    }

    /// Sets a mask: refused if it would give the host an APQN that an mdev
    /// holds; otherwise every queue is re-probed to the driver it now belongs to.
    pub fn set_mask(&mut self, kind: MaskKind, new: Mask256) -> Result<Effects, ApError> {
        if self.mask_write_changes_nothing(kind, new) {
            return Ok(Effects::default());
        }
        if let MaskReclaim::Refuse(errno) = self.profile.mask_reclaim {
            let taken = self.reclaimed_by(kind, new);
            if let Some(&first) = taken.first() {
                let holder = self
                    .occupancy
                    .holder(first)
                    .expect("a held APQN has a holder");
                return Err(ApError::MaskReclaimsAssigned {
                    errno,
                    mask: kind,
                    new: new.to_string(),
                    apqns: ApqnList(taken),
                    mdev: holder,
                    guest: self.attached.get(&holder).cloned(),
                });
            }
        }
        match kind {
            MaskKind::Apmask => self.apmask = new,
            MaskKind::Aqmask => self.aqmask = new,
        }
        let rebinds = self.reprobe();
        let guest_updates = self.refresh_guests_after(&rebinds);
        Ok(Effects {
            reprobed: true,
            rebinds,
            guest_updates,
        })
    }

    /// Binds every queue to the driver the masks name (kernel.md §3) and
    /// reports what moved. Cards always bind cex4card.
    pub(super) fn reprobe(&mut self) -> Vec<Rebind> {
        let usage = self.topology.usage_domains;
        let mut changes = Vec::new();
        let profile = self.profile;
        // Not card_devices(): the loop changes the bindings as it goes.
        for card in (self.topology.cards.values()).filter(|c| profile.bus_has_device(c.hwtype)) {
            let a = card.id.0 as usize;
            let zcrypt = if self.apmask.contains(card.id.0) {
                self.aqmask.and(&usage)
            } else {
                Mask256::EMPTY
            };
            let vfio = if self.vfio_ap && self.profile.vfio_ap_drives(card.hwtype) {
                usage.and_not(&zcrypt)
            } else {
                Mask256::EMPTY
            };
            let (old_z, old_v) = (self.bindings.zcrypt[a], self.bindings.vfio[a]);
            let old_none = old_z.or(&old_v).complement().and(&usage);
            // Not limited to the usage domains: a queue whose domain the LPAR
            // lost at this scan goes from its driver to none (it vanishes).
            let new_none = zcrypt.or(&vfio).complement();
            let z = Some(Driver::Cex4Queue);
            let v = Some(Driver::VfioAp);
            for (from, old, to, new) in [
                (z, old_z, v, vfio),
                (v, old_v, z, zcrypt),
                (None, old_none, z, zcrypt),
                (None, old_none, v, vfio),
                (z, old_z, None, new_none),
                (v, old_v, None, new_none),
            ] {
                let domains = old.and(&new);
                if !domains.is_empty() {
                    changes.push(Rebind {
                        adapter: card.id,
                        domains,
                        from,
                        to,
                    });
                }
            }
            // A queue probed by cex4queue starts as online as its card;
            // one leaving zcrypt forgets its flag (kernel.md §4). Only the
            // flags that exist are visited: a re-bind of every queue must
            // not cost a set operation per queue.
            let (entering, leaving) = (zcrypt.and_not(&old_z), old_z.and_not(&zcrypt));
            let forget = if card.online {
                entering.or(&leaving)
            } else {
                leaving
            };
            if !forget.is_empty() {
                let of_card = Apqn::new(card.id.0, 0)..=Apqn::new(card.id.0, 255);
                let stale: Vec<Apqn> = (self.offline_queues.range(of_card))
                    .filter(|q| forget.contains(q.domain.0))
                    .copied()
                    .collect();
                for q in stale {
                    self.offline_queues.remove(&q);
                }
            }
            if !card.online {
                let of_card = entering.iter().map(|d| Apqn::new(card.id.0, d));
                self.offline_queues.extend(of_card);
            }
            self.bindings.set(a, zcrypt, vfio);
        }
        changes
    }
}
