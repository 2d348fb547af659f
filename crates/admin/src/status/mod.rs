//! `apmatrix status`: every layer of every APQN side by side (who owns it
//! now, which running guest uses it, whom the persistent masks give it at
//! boot, which mdevctl / libvirt definitions name it), where the layers
//! drift apart, and what the next boot will do (users.md P2 §4).
//!
//! [`status`] is pure: the layers are read elsewhere ([`Layers`]).

use std::collections::BTreeSet;

use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, ApqnState, Driver, Mask256};
use serde::Serialize;
use uuid::Uuid;

use crate::boot::{next_boot, BootStart};
use crate::definitions::{Definition, Definitions};
use crate::persistent::BootMasks;
use crate::predict::model_with_guests;
use crate::running::RunningGuest;
use crate::Observed;

mod drift;
use drift::{boot_failure, definition_drift, mask_drift};

/// What status looks at.
pub struct Layers<'a> {
    pub seen: &'a Observed,
    pub guests: &'a [RunningGuest],
    pub boot: &'a BootMasks,
    pub definitions: &'a Definitions,
    /// ap-check is installed as mdevctl's callout.
    pub ap_check: bool,
}

/// One APQN through the layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApqnStatus {
    pub apqn: Apqn,
    /// The queue exists (its card and usage domain are the LPAR's).
    pub exists: bool,
    /// `host`, `free` (for vfio_ap), `unbound` (card older than CEX4),
    /// `mdev`, or `none` (no such queue, in no mdev).
    pub owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdev: Option<Uuid>,
    /// The running guest whose mdev holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    /// The guest has it in its CRYCB (sees it).
    pub in_guest: bool,
    /// Whom the persistent masks give it at boot: `host` or `vfio_ap`.
    pub at_boot: &'static str,
    /// The definitions naming it.
    pub definitions: Vec<DefinedIn>,
    /// Its owner after the next boot (`host`, `free`, `unbound`, `mdev`,
    /// `none`) and the mdev then.
    pub after_boot: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_boot_mdev: Option<Uuid>,
    /// Some drift item names it.
    pub drift: bool,
}

/// A definition naming an APQN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DefinedIn {
    pub uuid: Uuid,
    /// `auto` or `manual`, as mdevctl says.
    pub start: &'static str,
    /// The libvirt node device that stands for it.
    pub nodedev: String,
}

/// An active mdev.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActiveMdev {
    pub uuid: Uuid,
    pub adapters: String,
    pub domains: String,
    pub control_domains: String,
    /// The running guest that has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
}

/// A definition as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DefinitionStatus {
    pub uuid: Uuid,
    pub path: String,
    pub start: &'static str,
    pub nodedev: String,
    pub adapters: String,
    pub domains: String,
    pub control_domains: String,
    /// An mdev of that UUID is active now.
    pub active: bool,
    /// The active mdev has exactly the defined matrix.
    pub matches_active: bool,
}

/// Where two layers disagree, in APQN terms, with the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// `masks`, `undefined`, `differs`, `not_started`, `boot_failure`,
    /// `unreadable` or `guest`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdev: Option<Uuid>,
    pub apqns: Vec<Apqn>,
    pub message: String,
    pub fix: String,
}

/// The masks, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MaskPair {
    pub apmask: Mask256,
    pub aqmask: Mask256,
}

/// The persistent masks and where they come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PersistentMasks {
    pub apmask: Mask256,
    pub aqmask: Mask256,
    pub apmask_from: String,
    pub aqmask_from: String,
    pub warnings: Vec<String>,
}

/// A card of the LPAR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardLine {
    pub adapter: u8,
    /// `CEX8C`, as the card's `type` says.
    #[serde(rename = "type")]
    pub type_name: String,
    pub hwtype: u8,
    pub online: bool,
}

/// The whole picture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The kernel generation whose rules apply.
    pub profile: &'static str,
    pub cards: Vec<CardLine>,
    /// The LPAR's usage domains.
    pub usage_domains: String,
    pub active: MaskPair,
    pub persistent: PersistentMasks,
    pub ap_check: bool,
    pub guests: Vec<String>,
    /// Every active mdev, in UUID order (also those holding no APQN).
    pub mdevs: Vec<ActiveMdev>,
    pub apqns: Vec<ApqnStatus>,
    pub definitions: Vec<DefinitionStatus>,
    pub next_boot: Vec<BootStart>,
    pub drift: Vec<Drift>,
}

fn start_word(d: &Definition) -> &'static str {
    if d.mdev.autostart {
        "auto"
    } else {
        "manual"
    }
}

/// Who has an APQN, in one word: `mdev`, `host` (zcrypt's cex4queue),
/// `free` (bound to vfio_ap, in no mdev), `unbound` (a card no driver
/// takes), `none` (no such queue, in no mdev). `apmatrix matrix` uses the
/// same words.
pub fn owner_word(state: &ApqnState) -> &'static str {
    match (state.mdev, state.driver, state.exists) {
        (Some(_), _, _) => "mdev",
        (None, Some(Driver::Cex4Queue), _) => "host",
        (None, Some(_), _) => "free",
        (None, None, true) => "unbound",
        (None, None, false) => "none",
    }
}

/// Builds the picture from the layers.
pub fn status(l: &Layers<'_>) -> Status {
    let seen = l.seen;
    let (now, guest_notes) = model_with_guests(seen, l.guests);
    let (booted, next) = next_boot(seen, l.boot, &l.definitions.list, l.ap_check);

    // Every APQN of the LPAR, and every one an mdev or definition names.
    let lpar_adapters: Mask256 = seen.cards.keys().copied().collect();
    let mut apqns: BTreeSet<Apqn> = cross(&lpar_adapters, &seen.usage_domains).collect();
    for m in now.mdevs() {
        apqns.extend(m.apqns());
    }
    for d in &l.definitions.list {
        apqns.extend(cross(&d.mdev.adapters, &d.mdev.domains));
    }

    let mut drift = Vec::new();
    for note in guest_notes {
        drift.push(Drift {
            kind: "guest",
            mdev: None,
            apqns: Vec::new(),
            message: note,
            fix: "see the guest's definition: its vfio-ap device names an mdev this host does not have".into(),
        });
    }
    mask_drift(seen, l.boot, &apqns, &mut drift);
    definition_drift(&now, l, &mut drift);
    for b in next.iter().filter(|b| !b.started) {
        drift.push(boot_failure(&now, l, b));
    }
    for (path, why) in &l.definitions.unreadable {
        drift.push(Drift {
            kind: "unreadable",
            mdev: None,
            apqns: Vec::new(),
            message: format!("{}: {why}; mdevctl skips it", path.display()),
            fix: format!("repair or remove {}", path.display()),
        });
    }
    let drifting: BTreeSet<Apqn> = drift.iter().flat_map(|d| d.apqns.iter().copied()).collect();

    let mut rows = Vec::with_capacity(apqns.len());
    for q in apqns {
        // The state names the mdev, its guest, and whether the guest sees it.
        let state = now.apqn_state(q);
        let after = booted.apqn_state(q);
        rows.push(ApqnStatus {
            apqn: q,
            exists: state.exists,
            owner: owner_word(&state),
            mdev: state.mdev,
            guest: state.guest.clone(),
            in_guest: state.in_guest,
            at_boot: if host_owns(&l.boot.apmask, &l.boot.aqmask, q) {
                "host"
            } else {
                "vfio_ap"
            },
            definitions: l
                .definitions
                .list
                .iter()
                .filter(|d| d.mdev.contains(q))
                .map(|d| DefinedIn {
                    uuid: d.uuid,
                    start: start_word(d),
                    nodedev: d.nodedev.clone(),
                })
                .collect(),
            after_boot: owner_word(&after),
            after_boot_mdev: after.mdev,
            drift: drifting.contains(&q),
        });
    }

    Status {
        profile: seen.profile.name,
        cards: seen
            .cards
            .iter()
            .map(|(id, c)| CardLine {
                adapter: *id,
                type_name: c.type_name.clone(),
                hwtype: c.hwtype,
                online: c.online,
            })
            .collect(),
        usage_domains: seen.usage_domains.to_hex_list(),
        active: MaskPair {
            apmask: seen.apmask,
            aqmask: seen.aqmask,
        },
        persistent: PersistentMasks {
            apmask: l.boot.apmask,
            aqmask: l.boot.aqmask,
            apmask_from: l.boot.apmask_from.clone(),
            aqmask_from: l.boot.aqmask_from.clone(),
            warnings: l.boot.warnings.clone(),
        },
        ap_check: l.ap_check,
        guests: now.guests().map(|g| g.name.clone()).collect(),
        mdevs: now
            .mdevs()
            .map(|m| ActiveMdev {
                uuid: m.uuid,
                adapters: m.adapters.to_hex_list(),
                domains: m.domains.to_hex_list(),
                control_domains: m.control_domains.to_hex_list(),
                guest: now.guest_of(&m.uuid).map(str::to_string),
            })
            .collect(),
        apqns: rows,
        definitions: l
            .definitions
            .list
            .iter()
            .map(|d| {
                let active = now.mdev(&d.uuid);
                DefinitionStatus {
                    uuid: d.uuid,
                    path: d.path.display().to_string(),
                    start: start_word(d),
                    nodedev: d.nodedev.clone(),
                    adapters: d.mdev.adapters.to_hex_list(),
                    domains: d.mdev.domains.to_hex_list(),
                    control_domains: d.mdev.control_domains.to_hex_list(),
                    active: active.is_some(),
                    matches_active: active.is_some_and(|m| same_matrix(m, d)),
                }
            })
            .collect(),
        next_boot: next,
        drift,
    }
}

fn same_matrix(m: &apmatrix_model::Mdev, d: &Definition) -> bool {
    m.adapters == d.mdev.adapters
        && m.domains == d.mdev.domains
        && m.control_domains == d.mdev.control_domains
}
