//! The guest's view on the target checked against the source's: under
//! the new numbers it must see every APQN and control domain it saw. The
//! view is the guest's own (its CRYCB filtered by its CPU model), so a
//! mapped domain the guest cannot address (above 15 with `apqci=off`) is
//! caught here, not by the target's rules.

use std::collections::{BTreeMap, BTreeSet};

use apmatrix_model::{Apqn, GuestView, Mask256};

use super::domains::mapped;
use super::outcome::AdapterMove;
use super::words::hex_ids;

/// A loss is the refusal's reason; a gain is a warning.
pub(super) fn compare(
    sees_now: &GuestView,
    will_see: &GuestView,
    adapters: &[AdapterMove],
    dmap: &BTreeMap<u8, u8>,
) -> Result<Option<String>, String> {
    let amap: BTreeMap<u8, u8> = adapters.iter().map(|m| (m.from, m.to)).collect();
    // Each APQN it sees now, under its target numbers.
    let expected: BTreeMap<Apqn, Apqn> = sees_now
        .apqns()
        .into_iter()
        .map(|q| {
            let a = amap.get(&q.adapter.0).copied().unwrap_or(q.adapter.0);
            (Apqn::new(a, mapped(dmap, q.domain.0)), q)
        })
        .collect();
    let seen_after: BTreeSet<Apqn> = will_see.apqns().into_iter().collect();
    let lost: Vec<String> = expected
        .iter()
        .filter(|(t, _)| !seen_after.contains(t))
        .map(|(t, s)| format!("{t} (its {s})"))
        .collect();
    if !lost.is_empty() {
        let mut reason = format!("on the target the guest would not see {}", lost.join(", "));
        for note in &will_see.notes {
            reason.push_str(&format!(": {note}"));
        }
        return Err(reason);
    }
    let adm_expected: Mask256 = sees_now.crycb.adm.iter().map(|d| mapped(dmap, d)).collect();
    let adm_lost = adm_expected.and_not(&will_see.crycb.adm);
    if !adm_lost.is_empty() {
        return Err(format!(
            "on the target the guest would not get control domains {}",
            hex_ids(&adm_lost)
        ));
    }
    let more: Vec<Apqn> = seen_after
        .iter()
        .filter(|q| !expected.contains_key(q))
        .copied()
        .collect();
    Ok((!more.is_empty()).then(|| {
        format!(
            "on the target the guest also sees {}, which it does not see on the source",
            Apqn::list_text(&more)
        )
    }))
}
