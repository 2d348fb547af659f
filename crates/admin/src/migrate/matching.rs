//! A target adapter per source adapter, one to one: the pairs `--adapters`
//! gives, then a full matching of the rest whenever one exists.

use std::collections::{BTreeMap, BTreeSet};

use apmatrix_model::{AdapterId, Card, Host, Mask256, Topology};

use super::fit::misfit;
use super::words::{adapter_ids, mode_words};

/// Source adapter to (target adapter, given by `--adapters`).
pub(super) type Pairs = BTreeMap<u8, (u8, bool)>;

/// The guest's adapters and what a target card must fit.
struct Fitting<'a> {
    source: &'a Topology,
    target: &'a Host,
    /// The guest's usage domains in the target's numbers.
    domains: &'a Mask256,
}

impl Fitting<'_> {
    fn card(&self, a: u8) -> &Card {
        self.source
            .card(AdapterId(a))
            .expect("moved adapters have cards")
    }

    /// `adapter 05 (CEX8C, CCA coprocessor)`.
    fn described(&self, a: u8) -> String {
        let c = self.card(a);
        format!(
            "adapter {a:02x} ({}, {})",
            c.type_name(),
            mode_words(c.mode)
        )
    }

    fn misfit(&self, s: u8, t: u8) -> Option<String> {
        misfit(self.card(s), self.target, t, self.domains)
    }
}

/// Pairs every one of `adapters` with a target adapter: the `given`
/// pairs where they fit, then a matching for the others. Each pair that
/// does not fit and each adapter left without a match is a reason.
pub(super) fn match_adapters(
    source: &Host,
    target: &Host,
    adapters: &Mask256,
    given: &BTreeMap<u8, u8>,
    domains: &Mask256,
    reasons: &mut Vec<String>,
) -> Pairs {
    let f = Fitting {
        source: source.topology(),
        target,
        domains,
    };
    let (mut pairs, given_to) = given_pairs(&f, adapters, given, reasons);
    let free: Vec<u8> = adapters.iter().filter(|a| !given.contains_key(a)).collect();
    let target_cards: Vec<&Card> = target.topology().cards.values().collect();
    let candidates: Vec<Vec<u8>> = free
        .iter()
        .map(|&s| candidates(&f, s, &target_cards, &given_to))
        .collect();
    let matched = matching(&candidates);
    let taken: BTreeMap<u8, u8> = free
        .iter()
        .zip(&matched)
        .filter_map(|(s, t)| t.map(|t| (t, *s)))
        .collect();
    for (&s, t) in free.iter().zip(&matched) {
        match t {
            Some(t) => {
                pairs.insert(s, (*t, false));
            }
            None => reasons.push(no_match(&f, s, &target_cards, &given_to, &taken)),
        }
    }
    pairs
}

/// The `--adapters` pairs that fit, and every target adapter a pair names
/// (fitting or not: the matching leaves those alone), to its source.
fn given_pairs(
    f: &Fitting,
    adapters: &Mask256,
    given: &BTreeMap<u8, u8>,
    reasons: &mut Vec<String>,
) -> (Pairs, BTreeMap<u8, u8>) {
    let mut pairs = Pairs::new();
    let mut given_to: BTreeMap<u8, u8> = BTreeMap::new();
    for (&s, &t) in given {
        if !adapters.contains(s) {
            reasons.push(format!(
                "--adapters {s}={t}: adapter {s:02x} is not one of the guest's ({})",
                adapter_ids(adapters)
            ));
            continue;
        }
        if let Some(first) = given_to.insert(t, s) {
            reasons.push(format!(
                "--adapters gives adapters {first:02x} and {s:02x} the same target adapter {t:02x}"
            ));
            continue;
        }
        match f.misfit(s, t) {
            Some(why) => reasons.push(format!(
                "--adapters {s}={t}: {} cannot go to adapter {t:02x}: {why}",
                f.described(s)
            )),
            None => {
                pairs.insert(s, (t, true));
            }
        }
    }
    (pairs, given_to)
}

/// The target adapters source adapter `s` fits, best first: the same
/// number, then the same hwtype, then the oldest that is new enough, then
/// the lowest number.
fn candidates(f: &Fitting, s: u8, target_cards: &[&Card], given_to: &BTreeMap<u8, u8>) -> Vec<u8> {
    let card = f.card(s);
    let mut fit: Vec<&Card> = target_cards
        .iter()
        .copied()
        .filter(|c| !given_to.contains_key(&c.id.0))
        .filter(|c| f.misfit(s, c.id.0).is_none())
        .collect();
    fit.sort_by_key(|c| (c.id.0 != s, c.hwtype != card.hwtype, c.hwtype, c.id.0));
    fit.iter().map(|c| c.id.0).collect()
}

/// Why source adapter `s` got no match: what each target card is to it.
fn no_match(
    f: &Fitting,
    s: u8,
    target_cards: &[&Card],
    given_to: &BTreeMap<u8, u8>,
    taken: &BTreeMap<u8, u8>,
) -> String {
    let why: Vec<String> = if target_cards.is_empty() {
        vec!["the target has no adapters".into()]
    } else {
        target_cards
            .iter()
            .map(|c| {
                let t = c.id.0;
                if let Some(other) = given_to.get(&t) {
                    format!("adapter {t:02x} is given to adapter {other:02x} (--adapters)")
                } else if let Some(why) = f.misfit(s, t) {
                    why
                } else {
                    let other = taken.get(&t).copied().unwrap_or(t);
                    format!("adapter {t:02x} fits but is the match of adapter {other:02x}")
                }
            })
            .collect()
    };
    format!(
        "{} has no match on the target: {}",
        f.described(s),
        why.join("; ")
    )
}

/// Matches each source adapter to a target adapter that fits (Kuhn's
/// augmenting paths: a full matching whenever one exists), trying the
/// candidates in the order given.
fn matching(candidates: &[Vec<u8>]) -> Vec<Option<u8>> {
    fn augment(
        i: usize,
        candidates: &[Vec<u8>],
        owner: &mut BTreeMap<u8, usize>,
        visited: &mut BTreeSet<u8>,
    ) -> bool {
        for &t in &candidates[i] {
            if !visited.insert(t) {
                continue;
            }
            let free = match owner.get(&t) {
                None => true,
                Some(&j) => augment(j, candidates, owner, visited),
            };
            if free {
                owner.insert(t, i);
                return true;
            }
        }
        false
    }
    let mut owner: BTreeMap<u8, usize> = BTreeMap::new();
    for i in 0..candidates.len() {
        augment(i, candidates, &mut owner, &mut BTreeSet::new());
    }
    let mut out = vec![None; candidates.len()];
    for (t, i) in owner {
        out[i] = Some(t);
    }
    out
}
