//! What each configured guest will see once its mdev is in place and the
//! guest starts, on any host: the observed host is rebuilt in the model
//! (cards, domains, masks, mdevs), the configuration is applied to it, and
//! each guest is started there.

use std::collections::BTreeMap;

use apmatrix_model::topology::{parse_card_type, BootParameters, Card, CardMode};
use apmatrix_model::{AdapterId, CpuModel, Host, Mask256, MaskKind, MatrixAxis, Topology};

use crate::running::RunningGuest;
use crate::{Observed, Wanted};

/// The host's hardware as the model's topology. Card types come from the
/// cards' `type` attribute (zcrypt's), else from `hwtype` as a coprocessor.
pub fn topology_of(seen: &Observed) -> Topology {
    let mut cards = BTreeMap::new();
    for (id, c) in &seen.cards {
        let mode = parse_card_type(&c.type_name)
            .map(|(_, m)| m)
            .unwrap_or(CardMode::CcaCoproc);
        let id = AdapterId(*id);
        cards.insert(
            id,
            Card {
                id,
                hwtype: c.hwtype,
                mode,
                // A card shows only the upper half of its bits (kernel.md
                // §4): where that half is the mode's usual one, so is the rest.
                functions: match c.functions {
                    Some(f) if f != mode.default_functions() & 0xFFFF_0000 => f,
                    _ => mode.default_functions(),
                },
                depth: c.depth,
                // A check-stopped or deconfigured card shows online 0
                // whatever zcrypt's flag is; the flag is then taken as on,
                // its default.
                online: c.online || c.chkstop || !c.config,
                config: c.config,
                chkstop: c.chkstop,
            },
        );
    }
    Topology {
        name: "observed".into(),
        apxa: seen.max_adapter_id > 63 || seen.max_domain_id > 15,
        qci_max_adapter_id: seen.max_adapter_id,
        qci_max_domain_id: seen.max_domain_id,
        usage_domains: seen.usage_domains,
        control_domains: seen.control_domains,
        cards,
        boot: BootParameters::default(),
    }
}

/// The observed host's hardware under its profile, with these masks and no
/// mdevs: what the masks let an mdev have.
pub fn host_with_masks(seen: &Observed, apmask: Mask256, aqmask: Mask256) -> Host {
    let mut host = Host::new(topology_of(seen), seen.profile);
    for (kind, mask) in [(MaskKind::Apmask, apmask), (MaskKind::Aqmask, aqmask)] {
        host.set_mask(kind, mask)
            .expect("a host without mdevs takes any mask");
    }
    host
}

/// The host as the model, from what sysfs shows: its hardware, masks and
/// mdevs, under its profile.
pub fn model_of(seen: &Observed) -> Host {
    let mut host = host_with_masks(seen, seen.apmask, seen.aqmask);
    for (uuid, m) in &seen.mdevs {
        let _ = host.create_mdev(*uuid);
        for axis in MatrixAxis::ALL {
            for id in m.axis(axis).iter() {
                let _ = host.assign(uuid, axis, id as u64);
            }
        }
    }
    host
}

/// Each configured guest and its `lszcrypt` once started, in file order;
/// `None` for the whole when the configuration does not apply.
pub fn guest_views(seen: &Observed, wanted: &Wanted) -> Option<Vec<(String, String)>> {
    let mut root = crate::EmulatedRoot {
        host: model_of(seen),
    };
    crate::apply(&mut root, wanted, false).ok()?;
    let mut out = Vec::new();
    for m in &wanted.mdevs {
        let Some(guest) = &m.guest else { continue };
        let mut host = root.host.clone();
        if host
            .start_guest(guest, Some(m.uuid), CpuModel::default())
            .is_ok()
        {
            if let Ok(view) = host.guest_view(guest) {
                out.push((guest.clone(), view.lszcrypt()));
            }
        }
    }
    Some(out)
}

/// The host as the model with its running guests started on their mdevs:
/// what sysfs shows, plus who has each mdev open. A guest the model
/// refuses (its mdev is not there) is said in the notes.
pub fn model_with_guests(seen: &Observed, guests: &[RunningGuest]) -> (Host, Vec<String>) {
    let mut host = model_of(seen);
    let mut notes = Vec::new();
    for g in guests {
        let cpu = g
            .cpu
            .as_deref()
            .map_or(Ok(CpuModel::default()), CpuModel::from_features)
            .unwrap_or_default();
        if let Err(e) = host.start_guest(&g.name, g.mdev, cpu) {
            notes.push(format!("guest {} ({}): {e}", g.name, g.source));
        }
    }
    (host, notes)
}
