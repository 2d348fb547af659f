//! Which objects of a host may differ between two of its states: what a
//! cache of its views (the kernel's caches of the served tree) must forget
//! after a change, whichever door the change came through.
//!
//! Cheap on purpose: it compares per adapter masks and small structs, never
//! every queue, so that a write to a 256 x 256 host costs microseconds. It
//! may name an object whose view turns out unchanged (the view layer
//! compares what it prints); it never leaves out one whose view changed,
//! which `crates/sysfs/tests/tree_changes.rs` checks against a full
//! comparison of both trees.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Host;
use crate::ids::{AdapterId, Apqn};
use crate::mask::Mask256;

/// The objects that may differ between two states of a host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Something of the bus as a whole: its masks, settings, scan count,
    /// bindings count, the LPAR's domains, whether vfio_ap is loaded.
    pub bus: bool,
    /// Cards whose device appeared, vanished or changed (config, online,
    /// checkstop, type, mode, functions).
    pub cards: BTreeSet<AdapterId>,
    /// Per adapter, the queues that appeared, vanished, or whose driver,
    /// online state or vfio_ap status may have changed.
    pub queues: BTreeMap<AdapterId, Mask256>,
    /// Mdevs that were created or removed, or whose matrix, guest matrix
    /// or guest may have changed.
    pub mdevs: BTreeSet<Uuid>,
    /// The set of mdevs itself changed (one was created or removed).
    pub mdev_set: bool,
}

impl Changes {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        !self.bus && self.cards.is_empty() && self.queues.is_empty() && self.mdevs.is_empty()
    }

    /// Every queue that may have changed, adapter by adapter.
    pub fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        self.queues
            .iter()
            .flat_map(|(a, domains)| domains.iter().map(move |d| Apqn::new(a.0, d)))
    }

    fn add_queues(&mut self, adapter: AdapterId, domains: Mask256) {
        if domains.is_empty() {
            return;
        }
        let entry = self.queues.entry(adapter).or_insert(Mask256::EMPTY);
        *entry = entry.or(&domains);
    }
}

/// The adapters whose queue devices exist on `host`, and their domains.
fn queue_domains(host: &Host, adapter: AdapterId) -> Mask256 {
    if host.has_card_device(adapter) {
        host.topology.usage_domains
    } else {
        Mask256::EMPTY
    }
}

fn symmetric_difference(a: &Mask256, b: &Mask256) -> Mask256 {
    a.and_not(b).or(&b.and_not(a))
}

impl Host {
    /// What may differ between `before` and this host (see the module doc).
    pub fn changes_since(&self, before: &Host) -> Changes {
        let after = self;
        let mut changes = Changes {
            bus: before.apmask != after.apmask
                || before.aqmask != after.aqmask
                || before.scans != after.scans
                || before.bus != after.bus
                || before.vfio_ap != after.vfio_ap
                || before.bindings_count() != after.bindings_count()
                || before.topology.apxa != after.topology.apxa
                || before.topology.qci_max_adapter_id != after.topology.qci_max_adapter_id
                || before.topology.qci_max_domain_id != after.topology.qci_max_domain_id
                || before.topology.usage_domains != after.topology.usage_domains
                || before.topology.control_domains != after.topology.control_domains
                || before.configured != after.configured
                || before.profile.name != after.profile.name,
            ..Changes::default()
        };
        // What every queue prints may change with these (its `interrupt`,
        // its existence, the profile's printers).
        let every_queue = before.topology.usage_domains != after.topology.usage_domains
            || before.bus.interrupts != after.bus.interrupts
            || before.vfio_ap != after.vfio_ap
            || before.profile.name != after.profile.name;
        // Both hosts' cards, once each (usually the same cards).
        let (was, is) = (&before.topology.cards, &after.topology.cards);
        let adapters: Vec<AdapterId> = if was.keys().eq(is.keys()) {
            is.keys().copied().collect()
        } else {
            let all: BTreeSet<AdapterId> = was.keys().chain(is.keys()).copied().collect();
            all.into_iter().collect()
        };
        for &a in &adapters {
            let (was, is) = (queue_domains(before, a), queue_domains(after, a));
            if before.card_device(a) != after.card_device(a) || every_queue {
                changes.cards.insert(a);
                changes.add_queues(a, was.or(&is));
                continue;
            }
            let i = a.0 as usize;
            let rebound =
                symmetric_difference(&before.bindings.zcrypt[i], &after.bindings.zcrypt[i]).or(
                    &symmetric_difference(&before.bindings.vfio[i], &after.bindings.vfio[i]),
                );
            changes.add_queues(a, rebound.and(&was.or(&is)));
        }
        for q in before
            .offline_queues
            .symmetric_difference(&after.offline_queues)
        {
            changes.add_queues(q.adapter, Mask256::single(q.domain.0));
        }
        self.mdev_changes(before, &mut changes, every_queue);
        changes
    }

    /// Mdevs whose view may differ, and the queues whose `status` their
    /// change may move. One merged walk of both (sorted) mdev maps.
    fn mdev_changes(&self, before: &Host, changes: &mut Changes, every_queue: bool) {
        let after = self;
        // Adapters whose queues or card changed: an mdev on them may see its
        // guest matrix change (the filter asks the bindings and the card).
        let mut touched = Mask256::EMPTY;
        for a in changes.cards.iter().chain(changes.queues.keys()) {
            touched.set(a.0);
        }
        let filter_inputs_changed = every_queue || before.configured != after.configured;
        let guests = !(before.attached.is_empty() && after.attached.is_empty());
        let (mut old, mut new) = (
            before.mdevs.iter().peekable(),
            after.mdevs.iter().peekable(),
        );
        loop {
            let (u, was, is) = match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((a, _)), Some((b, _))) if a == b => {
                    let (u, m) = old.next().expect("peeked");
                    (*u, Some(m), new.next().map(|(_, m)| m))
                }
                (Some((a, _)), Some((b, _))) if a > b => {
                    let (u, m) = new.next().expect("peeked");
                    (*u, None, Some(m))
                }
                (Some(_), _) => {
                    let (u, m) = old.next().expect("peeked");
                    (*u, Some(m), None)
                }
                (None, Some(_)) => {
                    let (u, m) = new.next().expect("peeked");
                    (*u, None, Some(m))
                }
            };
            if was.is_none() || is.is_none() {
                changes.mdev_set = true;
            }
            let guest_changed = guests && {
                let of = |host: &Host| {
                    host.attached
                        .get(&u)
                        .map(|g| (g.clone(), host.guests[g].crycb))
                };
                of(before) != of(after)
            };
            let own_change = was != is || guest_changed;
            let on_touched = [was, is]
                .into_iter()
                .flatten()
                .any(|m| m.adapters.intersects(&touched));
            if !(own_change || on_touched || filter_inputs_changed) {
                continue;
            }
            changes.mdevs.insert(u);
            // A queue's `status` names its holder and whether the holder's
            // guest uses it: the APQNs that came or went, or all of them
            // when its guest changed.
            let held = |m: Option<&crate::vfio::Mdev>, a: u8| {
                m.filter(|m| m.adapters.contains(a))
                    .map_or(Mask256::EMPTY, |m| m.domains)
            };
            if was != is || guest_changed {
                let adapters = [was, is]
                    .into_iter()
                    .flatten()
                    .fold(Mask256::EMPTY, |all, m| all.or(&m.adapters));
                for a in adapters.iter() {
                    let (old, new) = (held(was, a), held(is, a));
                    let moved = if guest_changed {
                        old.or(&new)
                    } else {
                        symmetric_difference(&old, &new)
                    };
                    let a = AdapterId(a);
                    let exists = queue_domains(before, a).or(&queue_domains(after, a));
                    changes.add_queues(a, moved.and(&exists));
                }
            }
        }
    }
}
