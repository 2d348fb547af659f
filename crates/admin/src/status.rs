//! `apmatrix status`: every layer of every APQN side by side (who owns it
//! now, which running guest uses it, whom the persistent masks give it at
//! boot, which mdevctl / libvirt definitions name it), where the layers
//! drift apart, and what the next boot will do (users.md P2 §4).
//!
//! [`status`] is pure: the layers are read elsewhere ([`Layers`]).

use std::collections::{BTreeMap, BTreeSet};

use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, Driver, Host, Mask256};
use serde::Serialize;
use uuid::Uuid;

use crate::boot::{next_boot, BootStart};
use crate::definitions::{Definition, Definitions};
use crate::persistent::BootMasks;
use crate::predict::model_with_guests;
use crate::running::RunningGuest;
use crate::Observed;

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

/// Who has an APQN on a model host: the word and the mdev.
fn owner_on(host: &Host, mdev_of: &BTreeMap<Apqn, Uuid>, q: Apqn) -> (&'static str, Option<Uuid>) {
    if let Some(u) = mdev_of.get(&q) {
        return ("mdev", Some(*u));
    }
    let state = host.apqn_state(q);
    let word = match (state.driver, state.exists) {
        (Some(Driver::Cex4Queue), _) => "host",
        (Some(_), _) => "free",
        (None, true) => "unbound",
        (None, false) => "none",
    };
    (word, None)
}

fn mdev_owners(host: &Host) -> BTreeMap<Apqn, Uuid> {
    let mut out = BTreeMap::new();
    for m in host.mdevs() {
        for q in m.apqns() {
            out.insert(q, m.uuid);
        }
    }
    out
}

/// The ids of a mask as chzdev takes them (`0-4,7-255`; from all-zero).
fn chzdev_list(mask: &Mask256) -> String {
    if mask.is_empty() {
        "-0-255".to_string()
    } else {
        mask.to_list()
    }
}

/// The APQNs of a list, shortened for a message.
fn apqn_words(apqns: &[Apqn]) -> String {
    const SHOWN: usize = 12;
    let mut text = Apqn::list_text(&apqns[..apqns.len().min(SHOWN)]);
    if apqns.len() > SHOWN {
        text.push_str(&format!(" and {} more", apqns.len() - SHOWN));
    }
    text
}

/// Builds the picture from the layers.
pub fn status(l: &Layers<'_>) -> Status {
    let seen = l.seen;
    let (now, guest_notes) = model_with_guests(seen, l.guests);
    let (booted, next) = next_boot(seen, l.boot, &l.definitions.list, l.ap_check);
    let now_mdevs = mdev_owners(&now);
    let boot_mdevs = mdev_owners(&booted);

    // Every APQN of the LPAR, and every one an mdev or definition names.
    let lpar_adapters: Mask256 = seen.cards.keys().copied().collect();
    let mut apqns: BTreeSet<Apqn> = cross(&lpar_adapters, &seen.usage_domains).collect();
    apqns.extend(now_mdevs.keys().copied());
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
        let (owner, mdev) = owner_on(&now, &now_mdevs, q);
        let guest = mdev.and_then(|u| now.guest_of(&u)).map(str::to_string);
        let in_guest = guest
            .as_deref()
            .and_then(|g| now.guest(g))
            .is_some_and(|g| g.crycb.contains(q));
        let (after_boot, after_boot_mdev) = owner_on(&booted, &boot_mdevs, q);
        rows.push(ApqnStatus {
            apqn: q,
            exists: now.apqn_state(q).exists,
            owner,
            mdev,
            guest,
            in_guest,
            at_boot: if host_owns(&l.boot.apmask, &l.boot.aqmask, q) {
                "host"
            } else {
                "vfio_ap"
            },
            definitions: l
                .definitions
                .list
                .iter()
                .filter(|d| {
                    d.mdev.adapters.contains(q.adapter.0) && d.mdev.domains.contains(q.domain.0)
                })
                .map(|d| DefinedIn {
                    uuid: d.uuid,
                    start: start_word(d),
                    nodedev: d.nodedev.clone(),
                })
                .collect(),
            after_boot,
            after_boot_mdev,
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

/// Active and persistent masks disagree on an APQN the host has or an mdev
/// or definition names: one item per direction.
fn mask_drift(seen: &Observed, boot: &BootMasks, apqns: &BTreeSet<Apqn>, out: &mut Vec<Drift>) {
    let persist = format!(
        "to keep what runs, persist the active masks: chzdev --type ap -p apmask={} aqmask={}; \
         to have now what the boot gives: chzdev --type ap -a apmask={} aqmask={}",
        chzdev_list(&seen.apmask),
        chzdev_list(&seen.aqmask),
        chzdev_list(&boot.apmask),
        chzdev_list(&boot.aqmask),
    );
    for (now_host, words) in [
        (
            true,
            "the host has them now; the persistent masks give them to vfio_ap at boot",
        ),
        (
            false,
            "vfio_ap has them now; the persistent masks give them to the host at boot",
        ),
    ] {
        let moving: Vec<Apqn> = apqns
            .iter()
            .copied()
            .filter(|q| {
                host_owns(&seen.apmask, &seen.aqmask, *q) == now_host
                    && host_owns(&boot.apmask, &boot.aqmask, *q) != now_host
            })
            .collect();
        if moving.is_empty() {
            continue;
        }
        let adapters = seen
            .apmask
            .and_not(&boot.apmask)
            .or(&boot.apmask.and_not(&seen.apmask));
        let domains = seen
            .aqmask
            .and_not(&boot.aqmask)
            .or(&boot.aqmask.and_not(&seen.aqmask));
        let mut which = Vec::new();
        if !adapters.is_empty() {
            which.push(format!(
                "apmask differs on adapters {}",
                adapters.to_hex_list()
            ));
        }
        if !domains.is_empty() {
            which.push(format!(
                "aqmask differs on domains {}",
                domains.to_hex_list()
            ));
        }
        out.push(Drift {
            kind: "masks",
            mdev: None,
            message: format!(
                "APQN {}: {words} ({}; persistent masks from {} / {})",
                apqn_words(&moving),
                which.join(", "),
                boot.apmask_from,
                boot.aqmask_from
            ),
            apqns: moving,
            fix: persist.clone(),
        });
    }
}

/// Active mdevs without a definition or unlike theirs; autostart
/// definitions that are not active.
fn definition_drift(now: &Host, l: &Layers<'_>, out: &mut Vec<Drift>) {
    for m in now.mdevs() {
        let apqns: Vec<Apqn> = m.apqns().collect();
        let guest = now
            .guest_of(&m.uuid)
            .map_or(String::new(), |g| format!(" (guest {g} uses it)"));
        match l.definitions.get(&m.uuid) {
            None => out.push(Drift {
                kind: "undefined",
                mdev: Some(m.uuid),
                message: format!(
                    "mdev {} is active but not defined{guest}: a reboot loses it and APQN {}",
                    m.uuid,
                    apqn_words(&apqns)
                ),
                apqns,
                fix: format!(
                    "mdevctl define --uuid {} --auto (or without --auto to start it by hand)",
                    m.uuid
                ),
            }),
            Some(d) if !same_matrix(m, d) => {
                let defined: Vec<Apqn> = cross(&d.mdev.adapters, &d.mdev.domains).collect();
                let mut touched: BTreeSet<Apqn> = apqns.iter().copied().collect();
                touched.extend(defined.iter().copied());
                touched.retain(|q| apqns.contains(q) != defined.contains(q));
                out.push(Drift {
                    kind: "differs",
                    mdev: Some(m.uuid),
                    message: format!(
                        "mdev {}{guest} runs adapters {} domains {} control domains {}; its definition {} says adapters {} domains {} control domains {}",
                        m.uuid,
                        m.adapters.to_hex_list(),
                        m.domains.to_hex_list(),
                        m.control_domains.to_hex_list(),
                        d.path.display(),
                        d.mdev.adapters.to_hex_list(),
                        d.mdev.domains.to_hex_list(),
                        d.mdev.control_domains.to_hex_list(),
                    ),
                    apqns: touched.into_iter().collect(),
                    fix: format!(
                        "to keep what runs: mdevctl undefine --uuid {u} && mdevctl define --uuid {u}{auto}",
                        u = m.uuid,
                        auto = if d.mdev.autostart { " --auto" } else { "" }
                    ),
                });
            }
            Some(_) => {}
        }
    }
    for d in l.definitions.list.iter().filter(|d| d.mdev.autostart) {
        if now.mdev(&d.uuid).is_none() {
            out.push(Drift {
                kind: "not_started",
                mdev: Some(d.uuid),
                apqns: cross(&d.mdev.adapters, &d.mdev.domains).collect(),
                message: format!(
                    "autostart mdev {} ({}) is defined but not active now",
                    d.uuid,
                    d.path.display()
                ),
                fix: format!("mdevctl start --uuid {}", d.uuid),
            });
        }
    }
}

/// An autostart definition the next boot does not start.
fn boot_failure(now: &Host, l: &Layers<'_>, b: &BootStart) -> Drift {
    let d = l
        .definitions
        .get(&b.uuid)
        .expect("a start is of a definition");
    let mut why: Vec<String> = b
        .ap_check
        .iter()
        .map(|m| format!("ap-check: {m}"))
        .collect();
    if let Some(k) = &b.kernel {
        why.push(format!(
            "the kernel refuses {} {} with {} ({})",
            k.attribute, k.value, k.errno, k.message
        ));
    }
    let in_use = b.ap_check.iter().any(|m| m.contains("already in use"))
        || b.kernel.as_ref().is_some_and(|k| k.errno == "EADDRINUSE");
    let host_owned = b.ap_check.iter().any(|m| m.contains("ap bus mask"))
        || b.kernel
            .as_ref()
            .is_some_and(|k| k.errno == "EADDRNOTAVAIL");
    let mut fixes = Vec::new();
    if host_owned {
        fixes.push(format!(
            "persist masks that give its APQNs to vfio_ap (chzdev --type ap -p apmask={} aqmask={})",
            chzdev_list(&l.boot.apmask.and_not(&d.mdev.adapters)),
            chzdev_list(&l.boot.aqmask),
        ));
    }
    if in_use {
        fixes.push(format!(
            "only one autostart mdev may hold an APQN: change its domains, or make one manual (mdevctl modify --uuid {} --manual)",
            d.uuid
        ));
    }
    if fixes.is_empty() {
        fixes.push(format!("correct {}", d.path.display()));
    }
    let guest = now.guest_of(&d.uuid).map_or(String::new(), |g| {
        format!("; guest {g}, which uses it now, would come up without its AP devices")
    });
    Drift {
        kind: "boot_failure",
        mdev: Some(d.uuid),
        apqns: cross(&d.mdev.adapters, &d.mdev.domains).collect(),
        message: format!(
            "at the next boot, autostart mdev {} fails to start: {}{guest}",
            d.uuid,
            why.join("; ")
        ),
        fix: fixes.join("; "),
    }
}
