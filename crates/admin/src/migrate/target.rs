//! The guest's place on the target: what must not be there already, the
//! mdev made for it, and that mdev as a configuration file.

use apmatrix_model::{AdapterId, Host, Topology};
use uuid::Uuid;

use super::domains::Domains;
use super::matching::Pairs;
use super::outcome::AdapterMove;
use super::words::{adapter_ids, hex_ids, or_none};
use crate::{id_list, toml_string, WantedMdev};

/// A reason each if the target already runs a guest of the name or has an
/// mdev of the target UUID.
pub(super) fn already_there(target: &Host, name: &str, uuid: Uuid, reasons: &mut Vec<String>) {
    if target.guest(name).is_some() {
        reasons.push(format!("a guest named {name} already runs on the target"));
    }
    if let Some(m) = target.mdev(&uuid) {
        reasons.push(format!(
            "the target already has an mdev {uuid} (adapters {}, domains {}): give the \
             guest's another UUID with --uuid",
            or_none(adapter_ids(&m.adapters)),
            or_none(hex_ids(&m.domains))
        ));
    }
}

/// The matched pairs with both cards' types, by source adapter.
pub(super) fn adapter_moves(
    pairs: &Pairs,
    source: &Topology,
    target: &Topology,
) -> Vec<AdapterMove> {
    pairs
        .iter()
        .map(|(&s, &(t, given))| {
            let c = source
                .card(AdapterId(s))
                .expect("moved adapters have cards");
            let tc = target.card(AdapterId(t)).expect("matched to a card");
            AdapterMove {
                from: s,
                to: t,
                from_type: c.type_name(),
                to_type: tc.type_name(),
                mode: c.mode,
                given,
            }
        })
        .collect()
}

/// The mdev made on the target for guest `name`: the target adapters and
/// domains, not started at boot.
pub(super) fn target_mdev(
    uuid: Uuid,
    adapters: &[AdapterMove],
    domains: &Domains,
    name: &str,
) -> WantedMdev {
    WantedMdev {
        adapters: adapters.iter().map(|m| m.to).collect(),
        domains: domains.target_usage,
        control_domains: domains.target_control,
        guest: Some(name.to_string()),
        ..WantedMdev::empty(uuid)
    }
}

/// The target mdev as a configuration file's `[[mdev]]` (docs/configuration.md),
/// for `apmatrix check` and `apply` on the target.
pub fn configuration(m: &WantedMdev) -> String {
    let mut out = format!(
        "[[mdev]]\nuuid = \"{}\"\nadapters = \"{}\"\ndomains = \"{}\"\ncontrol_domains = \"{}\"\n",
        m.uuid,
        id_list(&m.adapters),
        id_list(&m.domains),
        id_list(&m.control_domains)
    );
    if let Some(g) = &m.guest {
        out.push_str(&format!("guest = {}\n", toml_string(g)));
    }
    out
}
