//! Where the layers disagree: each drift item in APQN terms, with the
//! command that fixes it.

use std::collections::BTreeSet;

use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, Host, Mask256};

use super::{same_matrix, Drift, Layers};
use crate::boot::BootStart;
use crate::persistent::BootMasks;
use crate::Observed;

/// The APQNs of a list, shortened for a message.
fn apqn_words(apqns: &[Apqn]) -> String {
    const SHOWN: usize = 12;
    let mut text = Apqn::list_text(&apqns[..apqns.len().min(SHOWN)]);
    if apqns.len() > SHOWN {
        text.push_str(&format!(" and {} more", apqns.len() - SHOWN));
    }
    text
}

/// The ids of a mask as chzdev takes them (`0-4,7-255`; from all-zero).
fn chzdev_list(mask: &Mask256) -> String {
    if mask.is_empty() {
        "-0-255".to_string()
    } else {
        mask.to_list()
    }
}

/// Active and persistent masks disagree on an APQN the host has or an mdev
/// or definition names: one item per direction.
pub(super) fn mask_drift(
    seen: &Observed,
    boot: &BootMasks,
    apqns: &BTreeSet<Apqn>,
    out: &mut Vec<Drift>,
) {
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
pub(super) fn definition_drift(now: &Host, l: &Layers<'_>, out: &mut Vec<Drift>) {
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
pub(super) fn boot_failure(now: &Host, l: &Layers<'_>, b: &BootStart) -> Drift {
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
