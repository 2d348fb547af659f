//! Which uevents a change of the host makes the kernel send, and in which
//! order (docs/research/uevents.md §3). Derived from the host before and
//! after the change, so that every door (a write through the tree, a CLI
//! command's whole new state, the periodic scan) announces the same way.

use uuid::Uuid;

use super::{event, Action, Device, Uevent};
use crate::host::Host;
use crate::ids::{AdapterId, Apqn};
use crate::profile::BindingsComplete;

/// What the AP bus remembers only to announce: how many times its bindings
/// became complete (`COMPLETECOUNT`), and whether a probe since the last
/// announcement asks for another one at the next scan (NEW).
///
/// It starts as after boot: the first scan's bindings were announced once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcer {
    complete_count: u64,
    probed_since_complete: bool,
}

impl Default for Announcer {
    fn default() -> Self {
        Announcer {
            complete_count: 1,
            probed_since_complete: false,
        }
    }
}

/// The events of one change, built in order, with the count of queue
/// devices that exist but are bound to no driver at that point of the
/// kernel's walk (bindings are complete when it is zero).
struct Walk<'a> {
    before: &'a Host,
    after: &'a Host,
    events: Vec<Uevent>,
    unbound: i64,
    probed: bool,
}

impl Announcer {
    /// The events the kernel sends while `before` becomes `after`.
    pub fn between(&mut self, before: &Host, after: &Host) -> Vec<Uevent> {
        let mut walk = Walk {
            before,
            after,
            events: Vec::new(),
            unbound: unbound_queues(before),
            probed: false,
        };
        walk.removed_mdevs();
        let adapters = before
            .card_devices()
            .chain(after.card_devices())
            .map(|c| c.id)
            .collect::<std::collections::BTreeSet<_>>();
        for a in &adapters {
            walk.bus_scan_of(*a, self);
        }
        for a in &adapters {
            walk.reprobes_of(*a, self);
        }
        walk.mask_changes();
        walk.online_changes();
        walk.added_mdevs();
        if walk.probed {
            self.probed_since_complete = true;
        }
        // NEW checks its bindings at the end of each bus scan (research §3.2).
        if after.profile().uevents.bindings_complete == BindingsComplete::NextScan
            && after.scans() > before.scans()
            && self.probed_since_complete
            && walk.unbound == 0
        {
            walk.bindings_complete(self, false);
            self.probed_since_complete = false;
        }
        walk.events
    }
}

/// Queue devices bound to no driver.
fn unbound_queues(host: &Host) -> i64 {
    let (bound, all) = host.bindings_count();
    i64::from(all) - i64::from(bound)
}

fn queues_of(host: &Host, adapter: AdapterId) -> Vec<Apqn> {
    if !host.has_card_device(adapter) {
        return Vec::new();
    }
    host.topology()
        .usage_domains
        .iter()
        .map(|d| Apqn::new(adapter.0, d))
        .collect()
}

impl Walk<'_> {
    fn push(
        &mut self,
        host_is_after: bool,
        action: Action,
        device: Device,
        env: Vec<(String, String)>,
        unbound: bool,
    ) {
        let host = if host_is_after {
            self.after
        } else {
            self.before
        };
        if let Some(e) = event(host, action, device, env, unbound) {
            self.events.push(e);
        }
    }

    /// `device_del` of a device: `unbind` if it was bound, then `remove`.
    fn delete(&mut self, device: Device, bound: bool) {
        if bound {
            self.push(false, Action::Unbind, device, Vec::new(), true);
        }
        self.push(false, Action::Remove, device, Vec::new(), true);
    }

    /// `device_add` then the probe: `add`, then `bind` if a driver took it.
    fn create(&mut self, device: Device, bound: bool, announcer: &mut Announcer) {
        self.push(true, Action::Add, device, Vec::new(), true);
        if bound {
            self.push(true, Action::Bind, device, Vec::new(), false);
            self.probe_done(announcer);
        }
    }

    /// After a successful probe: the bus checks whether every queue is
    /// bound now (5.x to 6.9 announce it each time; NEW waits for the scan).
    fn probe_done(&mut self, announcer: &mut Announcer) {
        self.probed = true;
        if let BindingsComplete::EveryProbe { count } =
            self.after.profile().uevents.bindings_complete
        {
            if self.unbound == 0 {
                self.bindings_complete(announcer, !count);
            }
        }
    }

    fn bindings_complete(&mut self, announcer: &mut Announcer, uncounted: bool) {
        announcer.complete_count += 1;
        let mut env = vec![("BINDINGS".to_string(), "complete".to_string())];
        if !uncounted {
            env.push((
                "COMPLETECOUNT".to_string(),
                announcer.complete_count.to_string(),
            ));
        }
        self.push(true, Action::Change, Device::ApRoot, env, true);
    }

    fn queue_bound(host: &Host, q: Apqn) -> bool {
        matches!(host.queue_driver(q), Some(Some(_)))
    }

    fn removed_mdevs(&mut self) {
        let gone: Vec<Uuid> = self
            .before
            .mdevs()
            .map(|m| m.uuid)
            .filter(|u| self.after.mdev(u).is_none())
            .collect();
        for u in gone {
            self.delete(Device::Mdev(u), true);
        }
    }

    fn added_mdevs(&mut self) {
        let new: Vec<Uuid> = self
            .after
            .mdevs()
            .map(|m| m.uuid)
            .filter(|u| self.before.mdev(u).is_none())
            .collect();
        for u in new {
            // The mdev core attaches the driver itself (research §3.6).
            self.push(true, Action::Add, Device::Mdev(u), Vec::new(), true);
            self.push(true, Action::Bind, Device::Mdev(u), Vec::new(), false);
        }
    }

    /// What a bus scan does for one adapter: a card gone takes its queues
    /// with it, a new card comes with its queues, and a card that stays
    /// loses or gains queues and announces a changed `config`.
    fn bus_scan_of(&mut self, a: AdapterId, announcer: &mut Announcer) {
        let (before, after) = (self.before, self.after);
        let (was, is) = (before.has_card_device(a), after.has_card_device(a));
        let old_queues = queues_of(before, a);
        let new_queues = queues_of(after, a);
        for q in old_queues.iter().filter(|q| !after.queue_exists(**q)) {
            let bound = Self::queue_bound(before, *q);
            self.delete(Device::Queue(*q), bound);
            if !bound {
                self.unbound -= 1;
            }
        }
        match (was, is) {
            (true, false) => self.delete(Device::Card(a), true),
            (false, true) => self.create(Device::Card(a), true, announcer),
            (true, true) => self.config_change(a),
            (false, false) => {}
        }
        for q in new_queues.iter().filter(|q| !before.queue_exists(**q)) {
            let bound = Self::queue_bound(after, *q);
            if !bound {
                self.unbound += 1;
            }
            self.create(Device::Queue(*q), bound, announcer);
        }
    }

    /// `CONFIG=` on the card, then on each of its queues that stays
    /// (6.x: the SCLP store and the scan announce it; research §3.4).
    fn config_change(&mut self, a: AdapterId) {
        let config = |h: &Host| h.card_device(a).map(|c| c.config);
        let now = config(self.after);
        if !self.after.profile().uevents.config_change || config(self.before) == now {
            return;
        }
        let value = u8::from(now == Some(true)).to_string();
        let env = || vec![("CONFIG".to_string(), value.clone())];
        self.push(true, Action::Change, Device::Card(a), env(), false);
        for q in queues_of(self.after, a) {
            if self.before.queue_exists(q) {
                self.push(true, Action::Change, Device::Queue(q), env(), false);
            }
        }
    }

    /// `device_reprobe` of each queue whose driver changed, in device order:
    /// `unbind` from the old driver, `bind` to the new one.
    fn reprobes_of(&mut self, a: AdapterId, announcer: &mut Announcer) {
        for q in queues_of(self.after, a) {
            let (Some(old), Some(new)) = (self.before.queue_driver(q), self.after.queue_driver(q))
            else {
                continue;
            };
            if old == new {
                continue;
            }
            if old.is_some() {
                self.push(false, Action::Unbind, Device::Queue(q), Vec::new(), true);
                self.unbound += 1;
            }
            if new.is_some() {
                self.unbound -= 1;
                self.push(true, Action::Bind, Device::Queue(q), Vec::new(), false);
                self.probe_done(announcer);
            }
        }
    }

    /// 6.x announces a changed mask on the bus's root device, after the
    /// re-probes (research §3.3); the kernel's trailing newline is one udev
    /// strips.
    fn mask_changes(&mut self) {
        if !self.after.profile().uevents.mask_change {
            return;
        }
        let masks = [
            ("APMASK", self.before.apmask(), self.after.apmask()),
            ("AQMASK", self.before.aqmask(), self.after.aqmask()),
        ];
        for (key, old, new) in masks {
            if old != new {
                let env = vec![(key.to_string(), new.to_sysfs().trim_end().to_string())];
                self.push(true, Action::Change, Device::ApRoot, env, true);
            }
        }
    }

    /// zcrypt's `ONLINE=`: the card first, then each of its queues whose
    /// online state the change forced (research §3.4).
    fn online_changes(&mut self) {
        if !self.after.profile().uevents.online_change {
            return;
        }
        let (before, after) = (self.before, self.after);
        for card in after.card_devices() {
            let a = card.id;
            if let Some(old) = before.card_device(a) {
                if old.online != card.online {
                    let env = vec![("ONLINE".to_string(), u8::from(card.online).to_string())];
                    self.push(true, Action::Change, Device::Card(a), env, false);
                }
            }
            for q in queues_of(after, a) {
                let zcrypt = |h: &Host| {
                    h.queue_driver(q) == Some(Some(crate::host::Driver::Cex4Queue))
                        && h.card_device(a).is_some()
                };
                if zcrypt(before)
                    && zcrypt(after)
                    && before.queue_zcrypt_online(q) != after.queue_zcrypt_online(q)
                {
                    let online = u8::from(after.queue_zcrypt_online(q)).to_string();
                    let env = vec![("ONLINE".to_string(), online)];
                    self.push(true, Action::Change, Device::Queue(q), env, false);
                }
            }
        }
    }
}
