//! Whether a target card can take one of the guest's adapters: the same
//! mode, a hwtype at least the source card's, driven by vfio_ap on the
//! target's kernel, configured; and every APQN of it x the guest's target
//! domains free for vfio_ap (the whole cross product: one taken APQN
//! rules the adapter out).

use std::collections::BTreeMap;

use apmatrix_model::{AdapterId, Apqn, Card, Host, Mask256, Unavailable};
use uuid::Uuid;

use super::words::{apqns_are, hex_ids, mode_words};

/// Why target adapter `t` cannot take source card `card` with the
/// target domains `domains`: a phrase naming `t`, or `None` if it can.
pub(super) fn misfit(card: &Card, target: &Host, t: u8, domains: &Mask256) -> Option<String> {
    let Some(tc) = target.topology().card(AdapterId(t)) else {
        return Some(format!("the target has no adapter {t:02x}"));
    };
    card_misfit(card, tc, target).or_else(|| queues_taken(target, t, domains))
}

/// Why the target card `tc` is not one the source card can go to, by
/// itself (its mode, generation, driver and configuration).
fn card_misfit(card: &Card, tc: &Card, target: &Host) -> Option<String> {
    let t = tc.id.0;
    if tc.mode != card.mode {
        return Some(format!(
            "adapter {t:02x} is {} ({})",
            tc.type_name(),
            mode_words(tc.mode)
        ));
    }
    if tc.hwtype < card.hwtype {
        return Some(format!(
            "adapter {t:02x} is {}, older than {}",
            tc.type_name(),
            card.type_name()
        ));
    }
    let profile = target.profile();
    if !profile.vfio_ap_drives(tc.hwtype) {
        return Some(format!(
            "adapter {t:02x} is {}, which vfio_ap does not drive on the target's kernel ({})",
            tc.type_name(),
            profile.name
        ));
    }
    if !tc.config {
        return Some(format!("adapter {t:02x} is deconfigured on the target"));
    }
    None
}

/// Why adapter `t` x `domains` is not free for a new mdev: the target's
/// host keeps some of it, or another mdev has it.
fn queues_taken(target: &Host, t: u8, domains: &Mask256) -> Option<String> {
    match target.unavailable(&Mask256::single(t), domains) {
        Some(Unavailable::ReservedForHost(apqns)) => {
            let owned: Mask256 = apqns.iter().map(|q| q.domain.0).collect();
            let bits = if owned.count() == 1 { "bit" } else { "bits" };
            return Some(format!(
                "{} reserved for the target's host (apmask bit {t} and aqmask {bits} {} are set)",
                apqns_are(&apqns),
                hex_ids(&owned)
            ));
        }
        Some(Unavailable::NotBoundToVfioAp(apqns)) => {
            return Some(format!(
                "{} not bound to vfio_ap on the target",
                apqns_are(&apqns)
            ));
        }
        None => {}
    }
    held_by_mdevs(target, t, domains)
}

/// The APQNs of adapter `t` x `domains` in the target's mdevs, by mdev
/// (and its guest).
fn held_by_mdevs(target: &Host, t: u8, domains: &Mask256) -> Option<String> {
    let mut held: BTreeMap<Uuid, Vec<Apqn>> = BTreeMap::new();
    for d in domains.iter() {
        let q = Apqn::new(t, d);
        if let Some(m) = target.mdev_holding(q) {
            held.entry(m.uuid).or_default().push(q);
        }
    }
    if held.is_empty() {
        return None;
    }
    let parts: Vec<String> = held
        .iter()
        .map(|(uuid, apqns)| {
            let by = target
                .guest_of(uuid)
                .map(|g| format!(" (guest {g})"))
                .unwrap_or_default();
            format!("{} already assigned to mdev {uuid}{by}", apqns_are(apqns))
        })
        .collect();
    Some(parts.join(", "))
}
