//! Which mdev holds each APQN: the invariant isolation rests on (no APQN is
//! in two mdevs, seed rule 2), kept in one place.

use std::collections::{BTreeMap, HashMap};

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupancy {
    by_adapter: Box<[Mask256; 256]>,
    by_domain: Box<[Mask256; 256]>,
    holders: HashMap<Apqn, Uuid>,
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
            holders: HashMap::new(),
        }
    }

    /// The mdev holding an APQN.
    pub fn holder(&self, apqn: Apqn) -> Option<Uuid> {
        if !self.is_held(apqn) {
            return None;
        }
        self.holders.get(&apqn).copied()
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
            for d in self.by_adapter[a as usize].and(domains).iter() {
                let apqn = Apqn::new(a, d);
                let holder = self.holders[&apqn];
                by_holder.entry(holder).or_default().push(apqn);
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
        let clashes = self.clashes(adapters, domains);
        for a in adapters.iter() {
            let free = domains.and_not(&self.by_adapter[a as usize]);
            for d in free.iter() {
                self.by_domain[d as usize].set(a);
                self.holders.insert(Apqn::new(a, d), holder);
            }
            self.by_adapter[a as usize] = self.by_adapter[a as usize].or(&free);
        }
        clashes
    }

    /// Frees every APQN of the block `adapters` x `domains`.
    pub fn release(&mut self, adapters: &Mask256, domains: &Mask256) {
        for a in adapters.iter() {
            let held = self.by_adapter[a as usize].and(domains);
            for d in held.iter() {
                self.by_domain[d as usize].clear(a);
                self.holders.remove(&Apqn::new(a, d));
            }
            self.by_adapter[a as usize] = self.by_adapter[a as usize].and_not(&held);
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
