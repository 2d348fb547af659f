//! The guest's domains on the target: the same numbers unless `--domains`
//! maps them, one map for usage and control domains alike (a domain's
//! number is the same domain whether it is used or controlled).

use std::collections::{BTreeMap, BTreeSet};

use apmatrix_model::{Apqn, Host, Mask256};

use super::words::{hex_ids, or_none};
use crate::Matrix;

/// The guest's domains, source to target.
pub(super) struct Domains {
    /// Usage domains, source to target.
    pub usage: Vec<(u8, u8)>,
    /// Control domains, source to target.
    pub control: Vec<(u8, u8)>,
    /// The usage domains in the target's numbers.
    pub target_usage: Mask256,
    /// The control domains in the target's numbers.
    pub target_control: Mask256,
}

/// A domain's number on the target.
pub(super) fn mapped(map: &BTreeMap<u8, u8>, d: u8) -> u8 {
    map.get(&d).copied().unwrap_or(d)
}

/// Maps the moved domains, adding a reason for every map entry that names
/// no domain of the guest's, two domains mapped onto one, and a domain
/// the target's LPAR lacks; and a warning for every renumbered domain.
pub(super) fn map_domains(
    moved: &Matrix,
    map: &BTreeMap<u8, u8>,
    target: &Host,
    reasons: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Domains {
    foreign_keys(moved, map, reasons);
    let target_usage = image(&moved.domains, map, "usage domains", reasons);
    let target_control = image(&moved.control_domains, map, "control domains", reasons);
    let usage = pairs(&moved.domains, map);
    let control = pairs(&moved.control_domains, map);
    warnings.extend(master_keys(&usage, &control));
    on_target_lpar(target, &moved.adapters, &usage, &control, reasons);
    Domains {
        usage,
        control,
        target_usage,
        target_control,
    }
}

/// The map's entries for domains the guest does not have.
fn foreign_keys(moved: &Matrix, map: &BTreeMap<u8, u8>, reasons: &mut Vec<String>) {
    for (d, to) in map {
        if !moved.domains.contains(*d) && !moved.control_domains.contains(*d) {
            reasons.push(format!(
                "--domains {d:#04x}={to:#04x}: domain {d:#04x} is none of the guest's usage or \
                 control domains ({})",
                hex_ids(&moved.domains.or(&moved.control_domains))
            ));
        }
    }
}

/// `set` in the target's numbers; two domains of it mapped onto one
/// target domain is a reason.
fn image(set: &Mask256, map: &BTreeMap<u8, u8>, what: &str, reasons: &mut Vec<String>) -> Mask256 {
    let mut out = Mask256::EMPTY;
    let mut by: BTreeMap<u8, u8> = BTreeMap::new();
    for d in set.iter() {
        let t = mapped(map, d);
        if let Some(first) = by.insert(t, d) {
            reasons.push(format!(
                "--domains gives {what} {first:#04x} and {d:#04x} the same target domain {t:#04x}"
            ));
        }
        out.set(t);
    }
    out
}

fn pairs(set: &Mask256, map: &BTreeMap<u8, u8>) -> Vec<(u8, u8)> {
    set.iter().map(|d| (d, mapped(map, d))).collect()
}

/// A warning per renumbered domain (once, if it is both used and
/// controlled): its secure keys need the same master keys on the target.
fn master_keys(usage: &[(u8, u8)], control: &[(u8, u8)]) -> Vec<String> {
    let renamed: BTreeSet<(u8, u8)> = usage
        .iter()
        .chain(control)
        .copied()
        .filter(|(a, b)| a != b)
        .collect();
    renamed
        .iter()
        .map(|(from, to)| {
            format!(
                "domain {from:#04x} becomes domain {to:#04x} on the target: secure keys live in \
                 domains (a CCA or EP11 key is wrapped by its domain's master key), so the \
                 target's domain {to:#04x} needs the same master keys as the source's \
                 {from:#04x}, or the guest's secure keys stop working"
            )
        })
        .collect()
}

/// Every target domain must be of the target's LPAR: a usage domain one
/// of its usage domains, a control domain one of its control domains.
fn on_target_lpar(
    target: &Host,
    adapters: &Mask256,
    usage: &[(u8, u8)],
    control: &[(u8, u8)],
    reasons: &mut Vec<String>,
) {
    let ttopo = target.topology();
    for (from, to) in usage {
        if !ttopo.usage_domains.contains(*to) {
            let lost: Vec<Apqn> = adapters.iter().map(|a| Apqn::new(a, *from)).collect();
            reasons.push(format!(
                "domain {to:#04x} is not a usage domain of the target's LPAR ({}): the guest \
                 would lose {}; map it to one the target has with --domains {from:#04x}=N",
                or_none(hex_ids(&ttopo.usage_domains)),
                Apqn::list_text(&lost)
            ));
        }
    }
    for (from, to) in control {
        if !ttopo.control_domains.contains(*to) {
            reasons.push(format!(
                "control domain {to:#04x} is not a control domain of the target's LPAR ({}): \
                 the guest would lose control of domain {from:#04x}; map it with --domains \
                 {from:#04x}=N",
                or_none(hex_ids(&ttopo.control_domains))
            ));
        }
    }
}
