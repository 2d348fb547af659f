//! Placing demands on free APQNs. An mdev is a cross product: adapters A
//! times domains D, all free, and for each guest sharing an adapter its
//! domains must differ from the others' there. Choosing A and D per guest
//! so that as many guests as possible fit is a packing problem (NP-hard in
//! general), so the search is bounded and deterministic (docs/place.md):
//!
//! 1. Guests in order of how constrained they are: pinned first, then the
//!    fewest candidate adapters, the largest demand, the name.
//! 2. Each guest's options, best first: the fewest APQNs that meet its
//!    demand; domains chosen best-fit (the domain free on the fewest
//!    candidate adapters that still fit it, so wide columns stay for wide
//!    guests); adapters the least loaded (balance).
//! 3. A depth-first search over those options, the first descent being
//!    the greedy answer, backtracking within a node budget to place more
//!    guests, cut where even placing every remaining guest could not beat
//!    the best found. So it is never worse than greedy, and finds a layout
//!    that exists on small inputs.

use apmatrix_model::topology::CardMode;
use apmatrix_model::Mask256;

use super::demands::Demand;

/// A card the placement may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub adapter: u8,
    pub mode: CardMode,
    /// 4 for CEX4 ... 8 for CEX8.
    pub generation: u8,
}

/// What the host offers: its cards vfio_ap drives, the domains free on
/// each (for vfio_ap by the masks, a usage domain, in no mdev), and the
/// adapters existing mdevs use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub cards: Vec<Slot>,
    pub free: Vec<Mask256>,
    /// Adapters some existing mdev has: not "its own" for a guest that
    /// shares none.
    pub used: Mask256,
}

impl Field {
    fn index(&self, adapter: u8) -> Option<usize> {
        self.cards.iter().position(|c| c.adapter == adapter)
    }
}

/// Where one guest went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub adapters: Mask256,
    pub domains: Mask256,
}

/// How options are made and searched.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The order, best-fit domains, least-loaded adapters, bounded search.
    Balanced,
    /// The naive baseline: guests in file order, the lowest free domain on
    /// the lowest adapters, no search.
    FirstFit,
}

/// Search nodes at most (deterministic, unlike a time limit).
const BUDGET: u64 = 20_000;
/// Options tried per guest in the search.
const OPTIONS: usize = 6;

/// The search's state: what is free, who uses each card.
#[derive(Clone)]
struct State {
    free: Vec<Mask256>,
    /// APQNs placed on each card (balance).
    load: Vec<u32>,
    /// Guests (and existing mdevs) using each card.
    users: Vec<u32>,
    /// A guest that shares nothing has the card.
    exclusive: Vec<bool>,
}

/// The cards a demand may use, by index, in the state as it is.
fn candidates(field: &Field, st: &State, d: &Demand) -> Vec<usize> {
    (0..field.cards.len())
        .filter(|&i| {
            let c = &field.cards[i];
            d.modes.contains(&c.mode)
                && c.generation >= d.min_generation
                && !st.exclusive[i]
                && (d.share_adapters || st.users[i] == 0)
                && !st.free[i].is_empty()
        })
        .collect()
}

/// The shapes (adapters, domains per adapter) that meet a demand, fewest
/// APQNs first, then fewest adapters.
fn shapes(d: &Demand, cands: usize) -> Vec<(u32, u32)> {
    let pins_a = d.pin_adapters.count();
    let pins_d = d.pin_domains.count();
    let mut out = Vec::new();
    let lo = d.adapters.max(pins_a);
    let hi = (cands as u32).min(d.domains);
    for a in lo..=hi {
        let k = d.domains.div_ceil(a).max(pins_d);
        if a * k >= d.domains && k <= 256 {
            out.push((a, k));
        }
    }
    out.sort_by_key(|&(a, k)| (a * k, a));
    out
}

/// First-fit's one option: the first adapters (in order) that have the
/// pinned domains and enough more free in common, with the lowest of them.
fn first_fit(field: &Field, st: &State, d: &Demand) -> Vec<(Vec<usize>, Mask256)> {
    let cands = candidates(field, st, d);
    for (a, k) in shapes(d, cands.len()) {
        let (a, k) = (a as usize, k as usize);
        let mut combo: Vec<usize> = (0..a).collect();
        loop {
            let chosen: Vec<usize> = combo.iter().map(|&c| cands[c]).collect();
            let pins_in = d
                .pin_adapters
                .iter()
                .all(|p| chosen.iter().any(|&i| field.cards[i].adapter == p));
            let common = chosen
                .iter()
                .fold(Mask256::FULL, |m, &i| m.and(&st.free[i]));
            if pins_in && d.pin_domains.is_subset_of(&common) {
                let mut domains = d.pin_domains;
                for dom in common.iter() {
                    if domains.count() as usize >= k {
                        break;
                    }
                    domains.set(dom);
                }
                if domains.count() as usize >= k {
                    return vec![(chosen, domains)];
                }
            }
            // The next combination of `a` of the candidates, in order.
            let Some(at) = (0..a).rev().find(|&j| combo[j] < cands.len() - a + j) else {
                break;
            };
            combo[at] += 1;
            for j in at + 1..a {
                combo[j] = combo[j - 1] + 1;
            }
        }
    }
    Vec::new()
}

/// Up to `limit` options for a demand, best first.
fn options(
    field: &Field,
    st: &State,
    d: &Demand,
    strategy: Strategy,
    limit: usize,
) -> Vec<(Vec<usize>, Mask256)> {
    let cands = candidates(field, st, d);
    // Every pinned adapter must be a candidate.
    let pinned: Vec<usize> = d
        .pin_adapters
        .iter()
        .map(|a| field.index(a).filter(|i| cands.contains(i)))
        .collect::<Option<Vec<usize>>>()
        .unwrap_or_else(|| vec![usize::MAX]);
    if pinned.contains(&usize::MAX) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (a, k) in shapes(d, cands.len()) {
        let (a, k) = (a as usize, k as usize);
        // The domains every pinned adapter has free; the pinned domains
        // must be among them.
        let mut common = Mask256::FULL;
        for &i in &pinned {
            common = common.and(&st.free[i]);
        }
        if !d.pin_domains.is_subset_of(&common) {
            continue;
        }
        // How many candidates have each domain free (with the pins').
        let width = |dom: u8| cands.iter().filter(|&&i| st.free[i].contains(dom)).count();
        let mut starts: Vec<u8> = common
            .iter()
            .filter(|&dom| !d.pin_domains.contains(dom) && width(dom) >= a)
            .collect();
        if strategy == Strategy::Balanced {
            starts.sort_by_key(|&dom| (width(dom), dom));
        }
        let first_choices: Vec<Option<u8>> = if d.pin_domains.count() as usize >= k {
            vec![None]
        } else if k == 1 {
            starts.iter().copied().map(Some).collect()
        } else {
            // Each wider option is grown from its first domain; a few
            // dozen first domains bound the work on a 256 x 256 host.
            starts.iter().copied().take(4 * OPTIONS).map(Some).collect()
        };
        // The adapters free on every chosen domain.
        let fits = |domains: &Mask256| -> Vec<usize> {
            cands
                .iter()
                .copied()
                .filter(|&i| domains.is_subset_of(&st.free[i]))
                .collect()
        };
        for first in first_choices {
            let mut domains = d.pin_domains;
            if let Some(f) = first {
                domains.set(f);
            }
            // Add domains, each keeping the most adapters that fit.
            let mut current = fits(&domains);
            while (domains.count() as usize) < k {
                let next = starts
                    .iter()
                    .copied()
                    .filter(|dom| !domains.contains(*dom))
                    .map(|dom| {
                        let n = current
                            .iter()
                            .filter(|&&i| st.free[i].contains(dom))
                            .count();
                        (n, dom)
                    })
                    .filter(|&(n, _)| n >= a)
                    .max_by_key(|&(n, dom)| (n, std::cmp::Reverse(dom)));
                match next {
                    Some((_, dom)) => {
                        domains.set(dom);
                        current.retain(|&i| st.free[i].contains(dom));
                    }
                    None => break,
                }
            }
            if (domains.count() as usize) < k {
                continue;
            }
            let mut fit: Vec<usize> = current
                .into_iter()
                .filter(|i| !pinned.contains(i))
                .collect();
            if fit.len() + pinned.len() < a {
                continue;
            }
            if strategy == Strategy::Balanced {
                fit.sort_by_key(|&i| (st.load[i], field.cards[i].adapter));
            }
            let mut chosen = pinned.clone();
            chosen.extend(fit.into_iter().take(a - pinned.len()));
            chosen.sort_unstable();
            let option = (chosen, domains);
            if !out.contains(&option) {
                out.push(option);
            }
            if out.len() >= limit {
                return out;
            }
        }
        if !out.is_empty() && strategy == Strategy::FirstFit {
            return out;
        }
    }
    out
}

fn take(st: &mut State, d: &Demand, cards: &[usize], domains: &Mask256) {
    for &i in cards {
        st.free[i] = st.free[i].and_not(domains);
        st.load[i] += domains.count();
        st.users[i] += 1;
        st.exclusive[i] |= !d.share_adapters;
    }
}

/// The search over guests `order[at..]`.
struct Search<'a> {
    field: &'a Field,
    demands: &'a [Demand],
    order: Vec<usize>,
    strategy: Strategy,
    nodes: u64,
    best: Vec<Option<Placed>>,
    best_count: usize,
    current: Vec<Option<Placed>>,
}

impl Search<'_> {
    fn run(&mut self, st: &State, at: usize, placed: usize) {
        self.nodes += 1;
        if placed > self.best_count || (self.best_count == 0 && at == self.order.len()) {
            self.best_count = placed;
            self.best = self.current.clone();
        }
        if at == self.order.len() || self.best_count == self.order.len() {
            return;
        }
        // Even placing every remaining guest could not beat the best.
        if placed + (self.order.len() - at) <= self.best_count {
            return;
        }
        let g = self.order[at];
        let d = &self.demands[g];
        let limit = if self.strategy == Strategy::FirstFit {
            1
        } else {
            OPTIONS
        };
        let options = match self.strategy {
            Strategy::Balanced => options(self.field, st, d, self.strategy, limit),
            Strategy::FirstFit => first_fit(self.field, st, d),
        };
        let any = !options.is_empty();
        for (n, (cards, domains)) in options.into_iter().enumerate() {
            // The first descent is the greedy answer; the budget bounds
            // only the alternatives.
            if n > 0 && self.nodes >= BUDGET {
                return;
            }
            let mut next = st.clone();
            take(&mut next, d, &cards, &domains);
            self.current[g] = Some(Placed {
                adapters: cards.iter().map(|&i| self.field.cards[i].adapter).collect(),
                domains,
            });
            self.run(&next, at + 1, placed + 1);
            self.current[g] = None;
            if self.strategy == Strategy::FirstFit || self.best_count == self.order.len() {
                return;
            }
        }
        // Leaving this guest out may let more of the others in.
        if !any || self.nodes < BUDGET {
            self.run(st, at + 1, placed);
        }
    }
}

/// Each demand's place, or `None` where it did not fit, and the search
/// nodes it took.
pub fn solve(field: &Field, demands: &[Demand], strategy: Strategy) -> (Vec<Option<Placed>>, u64) {
    let st = State {
        free: field.free.clone(),
        load: vec![0; field.cards.len()],
        users: field
            .cards
            .iter()
            .map(|c| u32::from(field.used.contains(c.adapter)))
            .collect(),
        exclusive: vec![false; field.cards.len()],
    };
    let mut order: Vec<usize> = (0..demands.len()).collect();
    if strategy == Strategy::Balanced {
        let cands: Vec<usize> = demands
            .iter()
            .map(|d| candidates(field, &st, d).len())
            .collect();
        order.sort_by_key(|&g| {
            let d = &demands[g];
            let pinned = d.pin_adapters.is_empty() && d.pin_domains.is_empty();
            (
                pinned,
                // One that shares nothing needs whole adapters: before the
                // others spread over them.
                d.share_adapters,
                cands[g],
                std::cmp::Reverse(d.domains),
                d.name.clone(),
            )
        });
    }
    let mut search = Search {
        field,
        demands,
        order,
        strategy,
        nodes: 0,
        best: vec![None; demands.len()],
        best_count: 0,
        current: vec![None; demands.len()],
    };
    search.run(&st, 0, 0);
    (search.best, search.nodes)
}
