//! Every problem of a configuration on a host at once, in APQN terms, each
//! with what would fix it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use apmatrix_model::{
    given_back, reclaimed, Apqn, Host, Mask256, MatrixAxis, Occupancy, Unavailable,
};
use uuid::Uuid;

use crate::predict::host_with_masks;
use crate::{Derive, Observed, Wanted, WantedMasks, WantedMdev};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration cannot be applied as it is.
    Error,
    /// It can, but the guest will not get everything it names.
    Warning,
}

/// One problem, in APQN terms, with what would fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{tag}: {}\n  fix: {}", self.message, self.fix)
    }
}

/// The masks the configuration asks for, given the host now.
pub fn target_masks(wanted: &Wanted, seen: &Observed) -> (Mask256, Mask256) {
    match &wanted.masks {
        WantedMasks::Keep => (seen.apmask, seen.aqmask),
        WantedMasks::Set { apmask, aqmask } => {
            (apmask.unwrap_or(seen.apmask), aqmask.unwrap_or(seen.aqmask))
        }
        WantedMasks::Derive(d) => {
            let mut used_adapters = Mask256::EMPTY;
            let mut used_domains = Mask256::EMPTY;
            for m in &wanted.mdevs {
                used_adapters = used_adapters.or(&m.adapters);
                used_domains = used_domains.or(&m.domains);
            }
            // Everything else belongs to the host, so the file alone
            // decides the masks, whatever they were before.
            match d {
                Derive::Adapters => (Mask256::FULL.and_not(&used_adapters), Mask256::FULL),
                Derive::Domains => (Mask256::FULL, Mask256::FULL.and_not(&used_domains)),
            }
        }
    }
}

/// Every problem of the configuration on this host, errors first. The
/// kernel's rules are asked of the model, under the host's profile.
pub fn check(wanted: &Wanted, seen: &Observed) -> Vec<Problem> {
    let mut out = Vec::new();
    let (apmask, aqmask) = target_masks(wanted, seen);
    // The host once the plan has written the masks, before any mdev: what
    // it lets an mdev have.
    let target = host_with_masks(seen, apmask, aqmask);
    duplicates(wanted, &mut out);
    for m in &wanted.mdevs {
        mdev_problems(m, seen, &target, &mut out);
    }
    let managed: BTreeSet<Uuid> = wanted.mdevs.iter().map(|m| m.uuid).collect();
    // The mdevs the plan leaves alone keep what they hold.
    let mut occupancy = Occupancy::new();
    for (uuid, m) in seen.mdevs.iter().filter(|(u, _)| !managed.contains(u)) {
        occupancy.take(*uuid, &m.adapters, &m.domains);
    }
    let reclaims = reclaim_problems(seen, &occupancy, (apmask, aqmask));
    sharing(wanted, &mut occupancy, &mut out);
    out.extend(reclaims);
    out.sort_by_key(|p| p.severity);
    out
}

/// Two mdevs with one UUID, or one guest with two mdevs.
fn duplicates(wanted: &Wanted, out: &mut Vec<Problem>) {
    let mut seen_uuids = BTreeMap::new();
    let mut guests: BTreeMap<&str, &str> = BTreeMap::new();
    for m in &wanted.mdevs {
        if let Some(first) = seen_uuids.insert(m.uuid, m.label.as_str()) {
            out_error(
                out,
                format!("mdev {} and mdev {first} have the same UUID", m.label),
                "give each [[mdev]] its own uuid or name".into(),
            );
        }
        if let Some(g) = &m.guest {
            if let Some(first) = guests.insert(g.as_str(), m.label.as_str()) {
                out_error(
                    out,
                    format!("guest {g} is given mdev {first} and mdev {}; a guest has at most one vfio-ap device", m.label),
                    format!("merge the two mdevs into one for {g}, or give one of them to another guest"),
                );
            }
        }
    }
}

/// What one mdev asks for that the host refuses (ENODEV, EADDRNOTAVAIL)
/// or that its guest will not get.
fn mdev_problems(m: &WantedMdev, seen: &Observed, target: &Host, out: &mut Vec<Problem>) {
    let matrix = m.matrix();
    for axis in MatrixAxis::ALL {
        let Some(id) = matrix.axis(axis).last() else {
            continue;
        };
        if let Err(e) = target.id_in_range(axis, id.into()) {
            let max = target.max_id(axis);
            out_error(
                out,
                format!(
                    "mdev {}: {} {id} ({id:#04x}) is above the host's maximum {max} ({})",
                    m.label,
                    axis.noun(),
                    e.errno()
                ),
                format!("use {} numbers up to {max}", axis.noun()),
            );
        }
    }
    if m.domains.is_empty() && !m.control_domains.is_empty() {
        out_error(
            out,
            format!("mdev {}: control domains but no usage domain; ap-check refuses to start it (\"At least one usage domain must be specified\")", m.label),
            "add a usage domain (domains = ...) or drop the control domains".into(),
        );
    }
    let unavailable = target.unavailable(&m.adapters, &m.domains);
    let errno = unavailable.as_ref().map(Unavailable::errno);
    match unavailable {
        None => {}
        Some(Unavailable::ReservedForHost(apqns)) => {
            let first = apqns[0];
            out_error(
                out,
                format!(
                    "mdev {}: APQN {} {} reserved for the host by the masks (apmask bit {} and aqmask bit {} are set) ({})",
                    m.label,
                    Apqn::list_text(&apqns),
                    if apqns.len() == 1 { "is" } else { "are" },
                    first.adapter.0,
                    first.domain.0,
                    errno.expect("unavailable"),
                ),
                format!(
                    "take adapter {} from apmask or domain {} from aqmask ([masks] apmask/aqmask, or derive = \"adapters\")",
                    first.adapter.0, first.domain.0
                ),
            );
        }
        Some(Unavailable::NotBoundToVfioAp(apqns)) => {
            out_error(
                out,
                format!(
                    "mdev {}: APQN {} {} not bound to the vfio_ap driver ({})",
                    m.label,
                    Apqn::list_text(&apqns),
                    if apqns.len() == 1 { "is" } else { "are" },
                    errno.expect("unavailable"),
                ),
                "give the queues to vfio_ap: take their adapter from apmask or their domain from aqmask, on a CEX4 or newer card".into(),
            );
        }
    }
    for a in m.adapters.iter() {
        match seen.cards.get(&a) {
            None => out_warning(out, format!("mdev {}: there is no card {a:02x}; the guest will not see adapter {a}", m.label), format!("drop adapter {a}, or configure the card on the HMC")),
            Some(c) if !seen.profile.vfio_ap_drives(c.hwtype) => out_warning(out, format!("mdev {}: card {a:02x} has hwtype {} (older than CEX4); vfio_ap does not drive it, so the guest loses adapter {a}", m.label, c.hwtype), "use a CEX4 or newer card".into()),
            _ => {}
        }
    }
    let missing = m.domains.and_not(&seen.usage_domains);
    if !missing.is_empty() {
        out_warning(out, format!("mdev {}: domains {} are not usage domains of this LPAR; the guest will not see them", m.label, missing.to_list()), "assign usage domains the LPAR has (ap_usage_domain_mask)".into());
    }
    let missing = m.control_domains.and_not(&seen.control_domains);
    if !missing.is_empty() {
        out_warning(out, format!("mdev {}: control domains {} are not control domains of this LPAR; the guest will not get them", m.label, missing.to_list()), "use control domains the LPAR has (ap_control_domain_mask)".into());
    }
}

/// EADDRINUSE between the configured mdevs, and with the mdevs the
/// configuration leaves alone (already in `occupancy`).
fn sharing(wanted: &Wanted, occupancy: &mut Occupancy, out: &mut Vec<Problem>) {
    let mut names: BTreeMap<Uuid, String> = BTreeMap::new();
    for m in &wanted.mdevs {
        let mut clashes: Vec<(String, Vec<Apqn>, _)> = occupancy
            .take(m.uuid, &m.adapters, &m.domains)
            .into_iter()
            .map(|c| {
                let errno = c.errno();
                let name = match names.get(&c.holder) {
                    Some(label) => format!("mdev {label}"),
                    None => format!("mdev {} (not in this configuration)", c.holder),
                };
                (name, c.apqns, errno)
            })
            .collect();
        names.entry(m.uuid).or_insert_with(|| m.label.clone());
        clashes.sort_by(|a, b| a.0.cmp(&b.0));
        for (other, apqns, errno) in clashes {
            out_error(
                out,
                format!(
                    "mdev {}: APQN {} already in use by {other} ({errno})",
                    m.label,
                    Apqn::list_text(&apqns)
                ),
                "an APQN belongs to one mdev: assign different adapters or domains".into(),
            );
        }
    }
}

/// The masks must not take back what the mdevs left alone hold. Every APQN
/// the target masks give the host counts, even one they give it already:
/// the plan writes both masks.
fn reclaim_problems(
    seen: &Observed,
    left_alone: &Occupancy,
    masks: (Mask256, Mask256),
) -> Vec<Problem> {
    let nothing = (Mask256::EMPTY, Mask256::EMPTY);
    let refused = reclaimed(seen.profile, left_alone, nothing, masks);
    // A kernel that does not refuse takes the queues anyway and leaves them
    // in the mdev's guest too (OLD, kernel.md §3): worse, so still reported.
    let leaked = if refused.is_empty() {
        given_back(left_alone, nothing, masks)
    } else {
        Vec::new()
    };
    let mut by_holder: BTreeMap<Uuid, Vec<Apqn>> = BTreeMap::new();
    for q in refused.iter().chain(&leaked) {
        let holder = left_alone.holder(*q).expect("a held APQN has a holder");
        by_holder.entry(holder).or_default().push(*q);
    }
    by_holder
        .into_iter()
        .map(|(uuid, taken)| {
            let apqns = Apqn::list_text(&taken);
            let fix = format!("add mdev {uuid} to the configuration, or keep those bits out of the masks");
            if leaked.is_empty() {
                Problem {
                    severity: Severity::Error,
                    message: format!(
                        "the masks would give the host APQN {apqns}, assigned to mdev {uuid} (not in this configuration)"
                    ),
                    fix,
                }
            } else {
                // Not a warning: applied, host and guest would share queues.
                Problem {
                    severity: Severity::Error,
                    message: format!(
                        "the masks would give the host APQN {apqns}, assigned to mdev {uuid} (not in this configuration); \
                         this kernel ({}) accepts that and leaves the queues in the mdev and its guest as well: \
                         host and guest would share them",
                        seen.profile.name
                    ),
                    fix,
                }
            }
        })
        .collect()
}

fn out_error(out: &mut Vec<Problem>, message: String, fix: String) {
    out.push(Problem {
        severity: Severity::Error,
        message,
        fix,
    });
}

fn out_warning(out: &mut Vec<Problem>, message: String, fix: String) {
    out.push(Problem {
        severity: Severity::Warning,
        message,
        fix,
    });
}
