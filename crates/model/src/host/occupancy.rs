//! Which mdev holds each APQN: the invariant isolation rests on (no APQN is
//! in two mdevs, seed rule 2), kept in one place.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::error::Errno;
use crate::ids::Apqn;
use crate::mask::Mask256;

/// The APQNs held by mdevs: per adapter the held domains and per domain the
/// held adapters (so the sharing and mask-reclaim tests are a few word
/// operations at any scale), and the holder of each APQN (so a refusal
/// names its holder without a search).
///
/// Every change goes through [`Occupancy::take`] and [`Occupancy::release`],
/// which keep the three views equal; nothing can put an APQN in two holders.
///
/// The holders are a table of 256 UUIDs per adapter, allocated while the
/// adapter has a held APQN (1 MiB when every APQN is held): assigning and
/// naming cost a few stores and loads, where a hash map cost 2-3x an
/// assignment. An entry is read only while the tables say its APQN is held;
/// a freed one is left stale, and equality compares the held ones only, so
/// equal occupancies compare equal whatever their history.
#[derive(Clone, Debug)]
pub struct Occupancy {
    by_adapter: Box<[Mask256; 256]>,
    by_domain: Box<[Mask256; 256]>,
    /// Shared between copies of the host until one changes a row (the
    /// rows are 4 KiB each).
    holders: Box<[Option<Arc<[Uuid; 256]>>; 256]>,
}

/// APQNs of a block that another mdev holds already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Clash {
    /// The mdev holding them.
    pub holder: Uuid,
    /// The held APQNs, adapter-major ascending.
    pub apqns: Vec<Apqn>,
}

impl Clash {
    /// The errno of an assignment that would share them (seed rule 2).
    pub fn errno(&self) -> Errno {
        Errno::EADDRINUSE
    }
}

impl PartialEq for Occupancy {
    fn eq(&self, other: &Self) -> bool {
        self.by_adapter == other.by_adapter
            && self.by_domain == other.by_domain
            && self.by_adapter.iter().enumerate().all(|(a, row)| {
                match (&self.holders[a], &other.holders[a]) {
                    _ if row.is_empty() => true,
                    (Some(mine), Some(theirs)) => {
                        row.iter().all(|d| mine[d as usize] == theirs[d as usize])
                    }
                    _ => false,
                }
            })
    }
}

impl Eq for Occupancy {}

impl Default for Occupancy {
    fn default() -> Self {
        Occupancy::new()
    }
}

impl Occupancy {
    /// Nothing held.
    pub fn new() -> Self {
        Occupancy {
            by_adapter: Box::new([Mask256::EMPTY; 256]),
            by_domain: Box::new([Mask256::EMPTY; 256]),
            holders: Box::new(std::array::from_fn(|_| None)),
        }
    }

    /// The mdev holding an APQN.
    pub fn holder(&self, apqn: Apqn) -> Option<Uuid> {
        if !self.is_held(apqn) {
            return None;
        }
        let table = self.holders[apqn.adapter.0 as usize].as_ref()?;
        Some(table[apqn.domain.0 as usize])
    }

    /// Whether some mdev holds the APQN.
    pub fn is_held(&self, apqn: Apqn) -> bool {
        self.by_adapter[apqn.adapter.0 as usize].contains(apqn.domain.0)
    }

    /// The domains of `adapter` that mdevs hold.
    pub fn held_domains(&self, adapter: u8) -> Mask256 {
        self.by_adapter[adapter as usize]
    }

    /// The adapters of `domain` that mdevs hold.
    pub fn held_adapters(&self, domain: u8) -> Mask256 {
        self.by_domain[domain as usize]
    }

    /// Whether any APQN of the block `adapters` x `domains` is held.
    pub fn meets(&self, adapters: &Mask256, domains: &Mask256) -> bool {
        adapters
            .iter()
            .any(|a| self.by_adapter[a as usize].intersects(domains))
    }

    /// The held APQNs of the block `adapters` x `domains`, by holder in UUID
    /// order.
    pub fn clashes(&self, adapters: &Mask256, domains: &Mask256) -> Vec<Clash> {
        let mut by_holder: BTreeMap<Uuid, Vec<Apqn>> = BTreeMap::new();
        for a in adapters.iter() {
            let held = self.by_adapter[a as usize].and(domains);
            let Some(table) = &self.holders[a as usize] else {
                continue;
            };
            for d in held.iter() {
                by_holder
                    .entry(table[d as usize])
                    .or_default()
                    .push(Apqn::new(a, d));
            }
        }
        by_holder
            .into_iter()
            .map(|(holder, apqns)| Clash { holder, apqns })
            .collect()
    }

    /// Gives `holder` every free APQN of the block `adapters` x `domains`;
    /// the ones others hold stay theirs and are returned.
    pub fn take(&mut self, holder: Uuid, adapters: &Mask256, domains: &Mask256) -> Vec<Clash> {
        // Walk the shorter side: an assigned domain crosses many adapters,
        // an assigned adapter many domains.
        if domains.count() == 1 {
            let d = domains.first().expect("one domain");
            let clashes = if adapters.intersects(&self.by_domain[d as usize]) {
                self.clashes(adapters, domains)
            } else {
                Vec::new()
            };
            let free = adapters.and_not(&self.by_domain[d as usize]);
            self.by_domain[d as usize] = self.by_domain[d as usize].or(&free);
            for a in free.iter() {
                self.by_adapter[a as usize].set(d);
                self.table(a)[d as usize] = holder;
            }
            return clashes;
        }
        let clashes = if self.meets(adapters, domains) {
            self.clashes(adapters, domains)
        } else {
            Vec::new()
        };
        for a in adapters.iter() {
            let free = domains.and_not(&self.by_adapter[a as usize]);
            if free.is_empty() {
                continue;
            }
            self.by_adapter[a as usize] = self.by_adapter[a as usize].or(&free);
            let table = Arc::make_mut(
                self.holders[a as usize].get_or_insert_with(|| Arc::new([Uuid::nil(); 256])),
            );
            for d in free.iter() {
                table[d as usize] = holder;
                self.by_domain[d as usize].set(a);
            }
        }
        clashes
    }

    /// The holders of an adapter's APQNs, allocated on first use.
    fn table(&mut self, adapter: u8) -> &mut [Uuid; 256] {
        Arc::make_mut(
            self.holders[adapter as usize].get_or_insert_with(|| Arc::new([Uuid::nil(); 256])),
        )
    }

    /// Frees every APQN of the block `adapters` x `domains`.
    pub fn release(&mut self, adapters: &Mask256, domains: &Mask256) {
        if domains.count() == 1 {
            let d = domains.first().expect("one domain");
            let held = adapters.and(&self.by_domain[d as usize]);
            self.by_domain[d as usize] = self.by_domain[d as usize].and_not(&held);
            for a in held.iter() {
                let row = &mut self.by_adapter[a as usize];
                row.clear(d);
                if row.is_empty() {
                    self.holders[a as usize] = None;
                }
            }
            return;
        }
        for a in adapters.iter() {
            let held = self.by_adapter[a as usize].and(domains);
            if held.is_empty() {
                continue;
            }
            let row = self.by_adapter[a as usize].and_not(&held);
            self.by_adapter[a as usize] = row;
            if row.is_empty() {
                // Nothing of this adapter is held: its table goes.
                self.holders[a as usize] = None;
            }
            for d in held.iter() {
                self.by_domain[d as usize].clear(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_block_is_taken_around_what_others_hold() {
        let mut o = Occupancy::new();
        assert!(o
            .take(u(2), &Mask256::single(5), &Mask256::range(1, 2))
            .is_empty());
        let clashes = o.take(u(1), &Mask256::range(4, 5), &Mask256::range(2, 3));
        assert_eq!(
            clashes,
            vec![Clash {
                holder: u(2),
                apqns: vec![Apqn::new(5, 2)]
            }]
        );
        assert_eq!(o.holder(Apqn::new(5, 2)), Some(u(2)));
        assert_eq!(o.holder(Apqn::new(5, 3)), Some(u(1)));
        assert_eq!(o.holder(Apqn::new(4, 2)), Some(u(1)));
        assert_eq!(o.held_adapters(2), Mask256::range(4, 5));
        assert_eq!(o.held_domains(5), Mask256::range(1, 3));
    }

    #[test]
    fn release_frees_every_view() {
        let mut o = Occupancy::new();
        o.take(u(1), &Mask256::range(0, 3), &Mask256::range(0, 3));
        o.release(&Mask256::range(0, 3), &Mask256::range(0, 3));
        assert_eq!(o, Occupancy::new());
        assert_eq!(o.holder(Apqn::new(1, 1)), None);
        assert!(!o.meets(&Mask256::FULL, &Mask256::FULL));
    }

    #[test]
    fn equal_holdings_compare_equal_whatever_their_history() {
        let (a, d) = (Mask256::range(0, 3), Mask256::range(4, 5));
        let mut first = Occupancy::new();
        first.take(u(1), &a, &d);
        first.take(u(2), &Mask256::single(9), &d);
        let mut second = Occupancy::new();
        second.take(u(2), &Mask256::range(7, 9), &d);
        second.release(&Mask256::range(7, 8), &d);
        second.take(u(3), &a, &Mask256::single(200));
        second.take(u(1), &a, &d);
        second.release(&a, &Mask256::single(200));
        assert_eq!(first, second);
    }

    #[test]
    fn clashes_come_by_holder_in_uuid_order() {
        let mut o = Occupancy::new();
        o.take(u(9), &Mask256::single(1), &Mask256::single(1));
        o.take(u(3), &Mask256::single(2), &Mask256::single(1));
        let c = o.clashes(&Mask256::range(1, 2), &Mask256::single(1));
        let holders: Vec<Uuid> = c.iter().map(|c| c.holder).collect();
        assert_eq!(holders, vec![u(3), u(9)]);
        assert_eq!(c[0].errno(), Errno::EADDRINUSE);
    }
}
