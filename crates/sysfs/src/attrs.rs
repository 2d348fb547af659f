//! Which attributes each object has, how the kernel prints them, and which
//! model write each writable one is (kernel.md §1, §4, §5, §6).

use std::fmt::Write as _;

use apmatrix_model::vfio::{matrix_text, MDEV_DEVICE_API, MDEV_TYPE_NAME};
use apmatrix_model::{
    AdapterId, ApError, Apqn, Driver, Host, MaskKind, MatrixAxis, WriteTarget, Written,
};
use uuid::Uuid;

use crate::{File, Owner};

const RO: u16 = 0o444;
const WO: u16 = 0o200;
const RW: u16 = 0o644;

/// `/sys/bus/ap` attributes, sorted; the flag says which profile switch
/// they depend on.
const BUS_ATTRS: &[(&str, u16, Optional)] = &[
    ("ap_adapter_mask", RO, Optional::Always),
    ("ap_control_domain_mask", RO, Optional::Always),
    ("ap_domain", RW, Optional::Always),
    ("ap_interrupts", RO, Optional::Always),
    ("ap_max_adapter_id", RO, Optional::Always),
    ("ap_max_domain_id", RO, Optional::Always),
    ("ap_usage_domain_mask", RO, Optional::Always),
    ("apmask", RW, Optional::Always),
    ("aqmask", RW, Optional::Always),
    ("bindings", RO, Optional::ScansAndBindings),
    ("config_time", RW, Optional::Always),
    ("features", RO, Optional::Features),
    ("poll_thread", RW, Optional::Always),
    ("poll_timeout", RW, Optional::Always),
    ("scans", RW, Optional::ScansAndBindings),
];

#[derive(Copy, Clone)]
enum Optional {
    Always,
    ScansAndBindings,
    Features,
    GuestMatrix,
    QueueStatus,
}

fn present(host: &Host, when: Optional) -> bool {
    let sysfs = host.profile().sysfs;
    match when {
        Optional::Always => true,
        Optional::ScansAndBindings => sysfs.bus_scans_and_bindings,
        Optional::Features => sysfs.bus_features,
        Optional::GuestMatrix => sysfs.guest_matrix,
        Optional::QueueStatus => sysfs.queue_status,
    }
}

/// Every card has these (ap_card.c); cex4card adds `load`, `online`, `type`.
const CARD_ATTRS: &[(&str, u16)] = &[
    ("ap_functions", RO),
    ("chkstop", RO),
    ("config", RW),
    ("depth", RO),
    ("hwtype", RO),
    ("load", RO),
    ("max_msg_size", RO),
    ("modalias", RO),
    ("online", RW),
    ("pendingq_count", RO),
    ("raw_hwtype", RO),
    ("request_count", RW),
    ("requestq_count", RO),
    ("type", RO),
];

/// Every queue has these (ap_queue.c).
const QUEUE_ATTRS: &[(&str, u16)] = &[
    ("ap_functions", RO),
    ("chkstop", RO),
    ("config", RO),
    ("interrupt", RO),
    ("pendingq_count", RO),
    ("request_count", RW),
    ("requestq_count", RO),
    ("reset", RW),
];
/// cex4queue adds these.
const ZCRYPT_QUEUE_ATTRS: &[(&str, u16)] = &[("load", RO), ("online", RW)];

/// The mdev type's attributes (no `description`: vfio_ap has none).
pub(crate) const TYPE_ATTRS: &[(&str, u16)] = &[
    ("available_instances", RO),
    ("create", WO),
    ("device_api", RO),
    ("name", RO),
];

const MDEV_ATTRS: &[(&str, u16, Optional)] = &[
    ("assign_adapter", WO, Optional::Always),
    ("assign_control_domain", WO, Optional::Always),
    ("assign_domain", WO, Optional::Always),
    ("control_domains", RO, Optional::Always),
    ("guest_matrix", RO, Optional::GuestMatrix),
    ("matrix", RO, Optional::Always),
    ("remove", WO, Optional::Always),
    ("unassign_adapter", WO, Optional::Always),
    ("unassign_control_domain", WO, Optional::Always),
    ("unassign_domain", WO, Optional::Always),
];

fn file(owner: Owner, name: &'static str, mode: u16) -> File {
    File { owner, name, mode }
}

pub(crate) fn bus_attrs(host: &Host) -> impl Iterator<Item = File> + '_ {
    BUS_ATTRS
        .iter()
        .filter(|(_, _, when)| present(host, *when))
        .map(|(n, m, _)| file(Owner::Bus, n, *m))
}

pub(crate) fn bus_attr(host: &Host, name: &str) -> Option<File> {
    bus_attrs(host).find(|f| f.name == name)
}

pub(crate) fn card_attrs(_host: &Host, a: AdapterId) -> impl Iterator<Item = File> {
    CARD_ATTRS
        .iter()
        .map(move |(n, m)| file(Owner::Card(a), n, *m))
}

pub(crate) fn card_attr(host: &Host, a: AdapterId, name: &str) -> Option<File> {
    card_attrs(host, a).find(|f| f.name == name)
}

pub(crate) fn queue_attrs(host: &Host, q: Apqn) -> Vec<File> {
    let mut out: Vec<File> = QUEUE_ATTRS
        .iter()
        .map(|(n, m)| file(Owner::Queue(q), n, *m))
        .collect();
    match host.queue_driver(q).flatten() {
        Some(Driver::Cex4Queue) => out.extend(
            ZCRYPT_QUEUE_ATTRS
                .iter()
                .map(|(n, m)| file(Owner::Queue(q), n, *m)),
        ),
        Some(Driver::VfioAp) if present(host, Optional::QueueStatus) => {
            out.push(file(Owner::Queue(q), "status", RO))
        }
        _ => {}
    }
    out.sort_by_key(|f| f.name);
    out
}

pub(crate) fn queue_attr(host: &Host, q: Apqn, name: &str) -> Option<File> {
    queue_attrs(host, q).into_iter().find(|f| f.name == name)
}

pub(crate) fn type_attr(name: &str) -> Option<File> {
    TYPE_ATTRS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, m)| file(Owner::MdevType, n, *m))
}

pub(crate) fn mdev_attrs(host: &Host, u: Uuid) -> impl Iterator<Item = File> + '_ {
    MDEV_ATTRS
        .iter()
        .filter(|(_, _, when)| present(host, *when))
        .map(move |(n, m, _)| file(Owner::Mdev(u), n, *m))
}

pub(crate) fn mdev_attr(host: &Host, u: Uuid, name: &str) -> Option<File> {
    mdev_attrs(host, u).find(|f| f.name == name)
}

fn flag(b: bool) -> String {
    format!("{}\n", b as u8)
}

/// The attribute's content as the kernel prints it at open time. Write-only
/// attributes have none.
pub fn read(host: &Host, f: &File) -> String {
    match f.owner {
        Owner::Bus => read_bus(host, f.name),
        Owner::Card(a) => read_card(host, a, f.name),
        Owner::Queue(q) => read_queue(host, q, f.name),
        Owner::MdevType => match f.name {
            "name" => format!("{MDEV_TYPE_NAME}\n"),
            "device_api" => format!("{MDEV_DEVICE_API}\n"),
            "available_instances" => format!("{}\n", host.available_instances()),
            _ => String::new(),
        },
        Owner::Mdev(u) => {
            let Some(m) = host.mdev(&u) else {
                return String::new();
            };
            match f.name {
                "matrix" => m.matrix_text(),
                "control_domains" => m.control_domains_text(),
                "guest_matrix" => {
                    let c = host.guest_matrix(&u).unwrap_or_default();
                    matrix_text(&c.apm, &c.aqm)
                }
                _ => String::new(),
            }
        }
    }
}

fn read_bus(host: &Host, name: &str) -> String {
    let t = host.topology();
    let b = host.bus();
    match name {
        "apmask" => host.apmask().to_sysfs(),
        "aqmask" => host.aqmask().to_sysfs(),
        "ap_adapter_mask" => t.configured_adapters().to_sysfs(),
        "ap_usage_domain_mask" => t.usage_domains.to_sysfs(),
        "ap_control_domain_mask" => t.control_domains.to_sysfs(),
        "ap_domain" => format!("{}\n", b.default_domain.map_or(-1, i32::from)),
        "ap_max_adapter_id" => format!("{}\n", t.max_adapter_id()),
        "ap_max_domain_id" => format!("{}\n", t.max_domain_id()),
        "ap_interrupts" => flag(b.interrupts),
        "config_time" => format!("{}\n", b.config_time),
        "poll_thread" => flag(b.poll_thread),
        "poll_timeout" => format!("{}\n", b.poll_timeout),
        "scans" => format!("{}\n", host.scans()),
        "bindings" => {
            let (bound, total) = host.bindings_count();
            if bound == total && host.scans() > 0 {
                format!("{bound}/{total} (complete)\n")
            } else {
                format!("{bound}/{total}\n")
            }
        }
        "features" => {
            let mut out = String::from("APSC");
            if t.apxa {
                out.push_str(" APXA");
            }
            out + "\n"
        }
        _ => String::new(),
    }
}

fn read_card(host: &Host, a: AdapterId, name: &str) -> String {
    let Some(c) = host.topology().cards.get(&a) else {
        return String::new();
    };
    match name {
        "hwtype" | "raw_hwtype" => format!("{}\n", c.hwtype),
        "depth" => format!("{}\n", c.depth),
        // A card keeps only the upper half of the facility bits (kernel.md §4).
        "ap_functions" => format!("0x{:08X}\n", c.functions & 0xFFFF_0000),
        "request_count" | "requestq_count" | "pendingq_count" | "load" => "0\n".into(),
        "modalias" => format!("ap:t{:02X}\n", c.hwtype),
        "config" => flag(c.config),
        "chkstop" => flag(c.chkstop),
        "max_msg_size" => "12288\n".into(),
        "type" => format!("{}\n", c.type_name()),
        "online" => flag(c.config && !c.chkstop && c.online),
        _ => String::new(),
    }
}

fn read_queue(host: &Host, q: Apqn, name: &str) -> String {
    let Some(c) = host.topology().cards.get(&q.adapter) else {
        return String::new();
    };
    // Only cex4queue starts a queue's state machine; under vfio_ap or no
    // driver the queue stays uninitiated (kernel.md §4).
    let zcrypt = host.queue_driver(q).flatten() == Some(Driver::Cex4Queue);
    match name {
        "request_count" => if zcrypt { "0\n" } else { "-\n" }.into(),
        "requestq_count" | "pendingq_count" | "load" => "0\n".into(),
        "reset" => "No Reset Timer set.\n".into(),
        "interrupt" => if zcrypt && host.bus().interrupts {
            "Interrupts enabled.\n"
        } else {
            "Interrupts disabled.\n"
        }
        .into(),
        "config" => flag(c.config),
        "chkstop" => flag(c.chkstop),
        "ap_functions" => format!("0x{:08X}\n", c.functions),
        "online" => flag(host.queue_online(q)),
        "status" => {
            let mut s = String::new();
            let _ = writeln!(s, "{}", host.vfio_queue_status(q).unwrap_or("unassigned"));
            s
        }
        _ => String::new(),
    }
}

/// The model write a writable attribute stands for.
pub fn write_target(f: &File) -> Option<WriteTarget> {
    if !f.writable() {
        return None;
    }
    let axis = |word: &str| MatrixAxis::ALL.into_iter().find(|a| a.attr_word() == word);
    Some(match (f.owner, f.name) {
        (Owner::Bus, "apmask") => WriteTarget::Mask(MaskKind::Apmask),
        (Owner::Bus, "aqmask") => WriteTarget::Mask(MaskKind::Aqmask),
        (Owner::Bus, "ap_domain") => WriteTarget::ApDomain,
        (Owner::Bus, "config_time") => WriteTarget::ConfigTime,
        (Owner::Bus, "poll_thread") => WriteTarget::PollThread,
        (Owner::Bus, "poll_timeout") => WriteTarget::PollTimeout,
        (Owner::Bus, "scans") => WriteTarget::Scans,
        (Owner::Card(a), "config") => WriteTarget::CardConfig(a),
        (Owner::Card(a), "online") => WriteTarget::CardOnline(a),
        (Owner::Card(_) | Owner::Queue(_), "request_count") => WriteTarget::RequestCount,
        (Owner::Queue(q), "online") => WriteTarget::QueueOnline(q),
        (Owner::Queue(q), "reset") => WriteTarget::QueueReset(q),
        (Owner::MdevType, "create") => WriteTarget::Create,
        (Owner::Mdev(u), "remove") => WriteTarget::Remove(u),
        (Owner::Mdev(u), name) => {
            if let Some(word) = name.strip_prefix("assign_") {
                WriteTarget::Assign(u, axis(word)?)
            } else {
                WriteTarget::Unassign(u, axis(name.strip_prefix("unassign_")?)?)
            }
        }
        _ => return None,
    })
}

/// One write(2) to an attribute: the model's answer, or its refusal.
pub fn write(host: &mut Host, f: &File, data: &[u8]) -> Result<Written, ApError> {
    let target = write_target(f).expect("callers write only to writable attributes");
    host.write(target, data)
}
