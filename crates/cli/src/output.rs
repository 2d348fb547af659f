//! What commands print: the text and JSON forms of hosts, masks, mdevs
//! and guests, and of a change's effects.

use serde::Serialize;

use crate::*;

/// Serialising any `Serialize` through one function.
pub(crate) mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            let mut s = serde_json::to_string_pretty(self).expect("serialisable");
            s.push('\n');
            s
        }
    }
}
pub(crate) use erased::Json as _;

pub(crate) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// What a change did besides itself: rebinds and hot (un)plugs.
pub(crate) fn describe_effects(effects: &Effects) -> String {
    let mut out = String::new();
    for r in &effects.rebinds {
        out.push_str(&format!("  rebound {r}\n"));
    }
    for u in &effects.guest_updates {
        let list = |v: Vec<apmatrix_model::Apqn>| apmatrix_model::Apqn::list_text(&v);
        let (plugged, unplugged) = (u.plugged(), u.unplugged());
        if !plugged.is_empty() {
            out.push_str(&format!(
                "  guest {}: hot plug {}\n",
                u.guest,
                list(plugged)
            ));
        }
        if !unplugged.is_empty() {
            out.push_str(&format!(
                "  guest {}: hot unplug {}\n",
                u.guest,
                list(unplugged)
            ));
        }
        if u.before.adm != u.after.adm {
            out.push_str(&format!(
                "  guest {}: control domains now {}\n",
                u.guest,
                u.after.adm.to_hex_list()
            ));
        }
    }
    out
}

/// The shortest absolute form of a mask as a boot parameter value: the
/// absolute form is left-aligned, so trailing zero digits can be dropped.
pub(crate) fn boot_value(mask: &Mask256) -> String {
    let digits = mask.to_string();
    let trimmed = digits.trim_end_matches('0');
    if trimmed == "0x" || trimmed.is_empty() {
        "0x0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Kernel parameters that give the current masks at boot; a mask left at
/// all ones (the default) needs none.
pub(crate) fn boot_cmdline(host: &Host) -> String {
    let mut parts = Vec::new();
    for (name, mask) in [("ap.apmask", host.apmask()), ("ap.aqmask", host.aqmask())] {
        if mask != Mask256::FULL {
            parts.push(format!("{name}={}", boot_value(&mask)));
        }
    }
    if parts.is_empty() {
        "(no parameters needed: both masks are at their default, all ones)".to_string()
    } else {
        parts.join(" ")
    }
}

#[derive(Serialize)]
pub(crate) struct MdevSummary {
    pub(crate) uuid: Uuid,
    pub(crate) adapters: String,
    pub(crate) domains: String,
    pub(crate) control_domains: String,
    pub(crate) apqns: usize,
    pub(crate) guest: Option<String>,
    pub(crate) matrix: Vec<String>,
}

pub(crate) fn mdev_summary(host: &Host, m: &apmatrix_model::Mdev) -> MdevSummary {
    MdevSummary {
        uuid: m.uuid,
        adapters: m.adapters.to_hex_list(),
        domains: m.domains.to_hex_list(),
        control_domains: m.control_domains.to_hex_list(),
        apqns: m.apqns().count(),
        guest: host.guest_of(&m.uuid).map(str::to_string),
        matrix: m.matrix_text().lines().map(str::to_string).collect(),
    }
}

#[derive(Serialize)]
pub(crate) struct GuestSummary {
    pub(crate) name: String,
    pub(crate) mdev: Option<Uuid>,
    pub(crate) cpu: String,
    pub(crate) visible_apqns: usize,
}

#[derive(Serialize)]
pub(crate) struct MaskSummary {
    pub(crate) apmask: Mask256,
    pub(crate) aqmask: Mask256,
    pub(crate) host_adapters: String,
    pub(crate) host_domains: String,
    pub(crate) queues_for_host: usize,
    pub(crate) queues_for_vfio_ap: usize,
    pub(crate) queues_unbound: u32,
    pub(crate) boot_cmdline: String,
}

pub(crate) fn mask_summary(host: &Host) -> MaskSummary {
    let (bound, total) = host.bindings_count();
    MaskSummary {
        apmask: host.apmask(),
        aqmask: host.aqmask(),
        host_adapters: host.apmask().to_list(),
        host_domains: host.aqmask().to_list(),
        queues_for_host: host
            .queues_bound_to(apmatrix_model::Driver::Cex4Queue)
            .len(),
        queues_for_vfio_ap: host.queues_bound_to(apmatrix_model::Driver::VfioAp).len(),
        queues_unbound: total - bound,
        boot_cmdline: boot_cmdline(host),
    }
}

#[derive(Serialize)]
pub(crate) struct HostSummary {
    pub(crate) profile: &'static str,
    pub(crate) max_adapter_id: u8,
    pub(crate) max_domain_id: u8,
    pub(crate) usage_domains: String,
    pub(crate) control_domains: String,
    pub(crate) cards: Vec<CardSummary>,
    pub(crate) queues: usize,
    pub(crate) mdevs: usize,
    pub(crate) guests: usize,
    pub(crate) available_instances: u32,
    /// HMC changes the bus sees at its next scan.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) waiting_for_scan: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct CardSummary {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) type_name: String,
    pub(crate) mode: &'static str,
    pub(crate) hwtype: u8,
    pub(crate) online: bool,
    pub(crate) config: bool,
    pub(crate) chkstop: bool,
}

pub(crate) fn host_summary(host: &Host) -> HostSummary {
    let t = host.topology();
    HostSummary {
        profile: host.profile().name,
        max_adapter_id: t.max_adapter_id(),
        max_domain_id: t.max_domain_id(),
        usage_domains: t.usage_domains.to_hex_list(),
        control_domains: t.control_domains.to_hex_list(),
        cards: t
            .cards
            .values()
            .map(|c| CardSummary {
                id: c.id.to_string(),
                type_name: c.type_name(),
                mode: c.mode.lszcrypt_name(),
                hwtype: c.hwtype,
                // As the card's `online` shows it (kernel.md §4).
                online: c.config && !c.chkstop && c.online,
                config: c.config,
                chkstop: c.chkstop,
            })
            .collect(),
        queues: t.queue_count(),
        mdevs: host.mdev_count(),
        guests: host.guests().count(),
        available_instances: host.available_instances(),
        waiting_for_scan: waiting_for_scan(host),
    }
}

/// What the LPAR's configuration has that the bus has not scanned yet.
pub(crate) fn waiting_for_scan(host: &Host) -> Vec<String> {
    let (now, lpar) = (host.topology(), host.lpar());
    let mut out = Vec::new();
    for c in lpar.cards.values() {
        match now.card(c.id) {
            None => out.push(format!("adapter {} ({}) added", c.id, c.type_name())),
            Some(o) if o.type_name() != c.type_name() => {
                out.push(format!("adapter {} is now a {}", c.id, c.type_name()))
            }
            Some(o) if o.config != c.config => out.push(format!(
                "card{} {}",
                c.id,
                if c.config {
                    "configured"
                } else {
                    "deconfigured"
                }
            )),
            Some(_) => {}
        }
    }
    for c in now.cards.values().filter(|c| lpar.card(c.id).is_none()) {
        out.push(format!("adapter {} removed", c.id));
    }
    for (domains, verb) in [
        (lpar.usage_domains.and_not(&now.usage_domains), "added"),
        (now.usage_domains.and_not(&lpar.usage_domains), "removed"),
    ] {
        if !domains.is_empty() {
            out.push(format!("usage domains {} {verb}", domains.to_hex_list()));
        }
    }
    out
}

pub(crate) fn host_text(host: &Host) -> String {
    let s = host_summary(host);
    let mut out = format!(
        "kernel profile {}\nmaximum adapter id {:#04x}, maximum domain id {:#04x}\nusage domains:   {}\ncontrol domains: {}\n",
        s.profile, s.max_adapter_id, s.max_domain_id, s.usage_domains, s.control_domains
    );
    out.push_str(&format!(
        "cards ({}, {} queues):\n",
        s.cards.len(),
        s.queues
    ));
    for c in &s.cards {
        let state = if !c.config {
            "deconfigured"
        } else if c.chkstop {
            "check-stopped"
        } else if c.online {
            "online"
        } else {
            "offline"
        };
        out.push_str(&format!(
            "  card{}  {}  {:<11}  hwtype {:>2}  {state}\n",
            c.id, c.type_name, c.mode, c.hwtype
        ));
    }
    out.push_str(&format!(
        "mdevs: {} (available instances {}), guests: {}\n",
        s.mdevs, s.available_instances, s.guests
    ));
    if !s.waiting_for_scan.is_empty() {
        out.push_str(&format!(
            "waiting for the next bus scan (HMC changes): {}\n",
            s.waiting_for_scan.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_values_drop_trailing_zero_digits() {
        assert_eq!(boot_value(&Mask256::range(0, 15)), "0xffff");
        assert_eq!(boot_value(&Mask256::single(1)), "0x4");
        assert_eq!(boot_value(&Mask256::EMPTY), "0x0");
        assert_eq!(
            boot_value(&Mask256::single(255)),
            format!("0x{}1", "0".repeat(63))
        );
    }
}
