//! How the kernel prints each attribute, and which model write each
//! writable one is: exhaustive matches on the typed keys of the table.

use std::fmt::Write as _;

use apmatrix_model::topology::Card;
use apmatrix_model::uevent::{self, Device};
use apmatrix_model::vfio::{matrix_text, MDEV_DEVICE_API, MDEV_TYPE_NAME};
use apmatrix_model::{Apqn, Driver, Host, Mask256, MaskKind, MatrixAxis, Mdev, WriteTarget};

use super::{BusAttr, CardAttr, File, MatrixAttr, MdevAttr, QueueAttr, RootAttr, TypeAttr};

fn flag(b: bool) -> String {
    format!("{}\n", b as u8)
}

/// The attribute's content as the kernel prints it at open time.
/// Write-only attributes have none, nor has one whose object is gone.
pub fn read(host: &Host, f: &File) -> String {
    let card = |a| host.topology().cards.get(&a);
    match *f {
        File::Bus(a) => read_bus(host, a),
        File::Card(id, a) => card(id).map_or_else(String::new, |c| read_card(host, c, a)),
        File::Queue(q, a) => {
            card(q.adapter).map_or_else(String::new, |c| read_queue(host, c, q, a))
        }
        File::Matrix(MatrixAttr::Features) => "guest_matrix hotplug ap_config\n".into(),
        File::Matrix(MatrixAttr::Uevent) | File::Root(_, RootAttr::Uevent) => uevent_text(host, f),
        File::MdevType(a) => read_type(host, a),
        File::Mdev(u, a) => host
            .mdev(&u)
            .map_or_else(String::new, |m| read_mdev(host, m, a)),
    }
}

fn read_bus(host: &Host, a: BusAttr) -> String {
    let t = host.topology();
    let b = host.bus();
    match a {
        BusAttr::Apmask => host.apmask().to_sysfs(),
        BusAttr::Aqmask => host.aqmask().to_sysfs(),
        BusAttr::ApAdapterMask => t.configured_adapters().to_sysfs(),
        BusAttr::ApUsageDomainMask => t.usage_domains.to_sysfs(),
        BusAttr::ApControlDomainMask => t.control_domains.to_sysfs(),
        BusAttr::ApDomain => format!("{}\n", b.default_domain.map_or(-1, i32::from)),
        BusAttr::ApMaxAdapterId => format!("{}\n", t.max_adapter_id()),
        BusAttr::ApMaxDomainId => format!("{}\n", t.max_domain_id()),
        BusAttr::ApInterrupts => flag(b.interrupts),
        BusAttr::ConfigTime => format!("{}\n", b.config_time),
        BusAttr::PollThread => flag(b.poll_thread),
        BusAttr::PollTimeout => format!("{}\n", b.poll_timeout),
        BusAttr::Scans => format!("{}\n", host.scans()),
        BusAttr::Bindings => {
            let (bound, total) = host.bindings_count();
            if bound == total && host.scans() > 0 {
                format!("{bound}/{total} (complete)\n")
            } else {
                format!("{bound}/{total}\n")
            }
        }
        BusAttr::Features => {
            let mut out = String::from("APSC");
            if t.apxa {
                out.push_str(" APXA");
            }
            out + "\n"
        }
    }
}

fn read_card(host: &Host, c: &Card, a: CardAttr) -> String {
    match a {
        CardAttr::Uevent => uevent::file_text(host, &Device::Card(c.id)),
        CardAttr::Hwtype | CardAttr::RawHwtype => format!("{}\n", c.hwtype),
        CardAttr::Depth => format!("{}\n", c.depth),
        // A card keeps only the upper half of the facility bits (kernel.md §4).
        CardAttr::ApFunctions => format!("0x{:08X}\n", c.functions & 0xFFFF_0000),
        CardAttr::RequestCount
        | CardAttr::RequestqCount
        | CardAttr::PendingqCount
        | CardAttr::Load => "0\n".into(),
        CardAttr::Modalias => format!("ap:t{:02X}\n", c.hwtype),
        CardAttr::Config => flag(c.config),
        CardAttr::Chkstop => flag(c.chkstop),
        CardAttr::MaxMsgSize => "12288\n".into(),
        CardAttr::Type => format!("{}\n", c.type_name()),
        CardAttr::Online => flag(c.config && !c.chkstop && c.online),
    }
}

fn read_queue(host: &Host, c: &Card, q: Apqn, a: QueueAttr) -> String {
    // Only cex4queue starts a queue's state machine; under vfio_ap or no
    // driver the queue stays uninitiated (kernel.md §4).
    let zcrypt = host.queue_driver(q).flatten() == Some(Driver::Cex4Queue);
    match a {
        QueueAttr::RequestCount => if zcrypt { "0\n" } else { "-\n" }.into(),
        QueueAttr::RequestqCount | QueueAttr::PendingqCount | QueueAttr::Load => "0\n".into(),
        QueueAttr::Reset => "No Reset Timer set.\n".into(),
        QueueAttr::Interrupt => if zcrypt && host.bus().interrupts {
            "Interrupts enabled.\n"
        } else {
            "Interrupts disabled.\n"
        }
        .into(),
        QueueAttr::Config => flag(c.config),
        QueueAttr::Chkstop => flag(c.chkstop),
        QueueAttr::ApFunctions => format!("0x{:08X}\n", c.functions),
        QueueAttr::Online => flag(host.queue_online(q)),
        QueueAttr::Uevent => uevent::file_text(host, &Device::Queue(q)),
        QueueAttr::Status => {
            let mut s = String::new();
            let _ = writeln!(s, "{}", host.vfio_queue_status(q).unwrap_or("unassigned"));
            s
        }
    }
}

fn read_type(host: &Host, a: TypeAttr) -> String {
    match a {
        TypeAttr::Name => format!("{MDEV_TYPE_NAME}\n"),
        TypeAttr::DeviceApi => format!("{MDEV_DEVICE_API}\n"),
        TypeAttr::AvailableInstances => format!("{}\n", host.available_instances()),
        TypeAttr::Create => String::new(),
    }
}

fn read_mdev(host: &Host, m: &Mdev, a: MdevAttr) -> String {
    match a {
        MdevAttr::Matrix => m.matrix_text(),
        MdevAttr::ApConfig => {
            let hex = |mask: &Mask256| mask.to_sysfs().trim_end().to_string();
            format!(
                "{},{},{}\n",
                hex(&m.adapters),
                hex(&m.domains),
                hex(&m.control_domains)
            )
        }
        MdevAttr::ControlDomains => m.control_domains_text(),
        MdevAttr::GuestMatrix => {
            let c = host.guest_matrix(&m.uuid).unwrap_or_default();
            matrix_text(&c.apm, &c.aqm)
        }
        MdevAttr::AssignAdapter
        | MdevAttr::AssignDomain
        | MdevAttr::AssignControlDomain
        | MdevAttr::UnassignAdapter
        | MdevAttr::UnassignDomain
        | MdevAttr::UnassignControlDomain
        | MdevAttr::Remove => String::new(),
        MdevAttr::Uevent => uevent::file_text(host, &Device::Mdev(m.uuid)),
    }
}

fn uevent_text(host: &Host, f: &File) -> String {
    f.uevent_device()
        .map_or_else(String::new, |d| uevent::file_text(host, &d))
}

/// The model write a writable attribute stands for; `None` for read-only
/// attributes.
pub fn write_target(f: &File) -> Option<WriteTarget> {
    use MatrixAxis::{Adapter, ControlDomain, Domain};
    Some(match *f {
        File::Bus(a) => match a {
            BusAttr::Apmask => WriteTarget::Mask(MaskKind::Apmask),
            BusAttr::Aqmask => WriteTarget::Mask(MaskKind::Aqmask),
            BusAttr::ApDomain => WriteTarget::ApDomain,
            BusAttr::ConfigTime => WriteTarget::ConfigTime,
            BusAttr::PollThread => WriteTarget::PollThread,
            BusAttr::PollTimeout => WriteTarget::PollTimeout,
            BusAttr::Scans => WriteTarget::Scans,
            BusAttr::ApAdapterMask
            | BusAttr::ApControlDomainMask
            | BusAttr::ApInterrupts
            | BusAttr::ApMaxAdapterId
            | BusAttr::ApMaxDomainId
            | BusAttr::ApUsageDomainMask
            | BusAttr::Bindings
            | BusAttr::Features => return None,
        },
        File::Card(id, a) => match a {
            CardAttr::Config => WriteTarget::CardConfig(id),
            CardAttr::Online => WriteTarget::CardOnline(id),
            CardAttr::RequestCount => WriteTarget::RequestCount,
            CardAttr::ApFunctions
            | CardAttr::Chkstop
            | CardAttr::Depth
            | CardAttr::Hwtype
            | CardAttr::Load
            | CardAttr::MaxMsgSize
            | CardAttr::Modalias
            | CardAttr::PendingqCount
            | CardAttr::RawHwtype
            | CardAttr::RequestqCount
            | CardAttr::Type => return None,
            CardAttr::Uevent => WriteTarget::Uevent,
        },
        File::Queue(q, a) => match a {
            QueueAttr::Online => WriteTarget::QueueOnline(q),
            QueueAttr::Reset => WriteTarget::QueueReset(q),
            QueueAttr::RequestCount => WriteTarget::RequestCount,
            QueueAttr::ApFunctions
            | QueueAttr::Chkstop
            | QueueAttr::Config
            | QueueAttr::Interrupt
            | QueueAttr::Load
            | QueueAttr::PendingqCount
            | QueueAttr::RequestqCount
            | QueueAttr::Status => return None,
            QueueAttr::Uevent => WriteTarget::Uevent,
        },
        File::Matrix(MatrixAttr::Features) => return None,
        File::Matrix(MatrixAttr::Uevent) | File::Root(_, RootAttr::Uevent) => WriteTarget::Uevent,
        File::MdevType(a) => match a {
            TypeAttr::Create => WriteTarget::Create,
            TypeAttr::AvailableInstances | TypeAttr::DeviceApi | TypeAttr::Name => return None,
        },
        File::Mdev(u, a) => match a {
            MdevAttr::AssignAdapter => WriteTarget::Assign(u, Adapter),
            MdevAttr::AssignDomain => WriteTarget::Assign(u, Domain),
            MdevAttr::AssignControlDomain => WriteTarget::Assign(u, ControlDomain),
            MdevAttr::UnassignAdapter => WriteTarget::Unassign(u, Adapter),
            MdevAttr::UnassignDomain => WriteTarget::Unassign(u, Domain),
            MdevAttr::UnassignControlDomain => WriteTarget::Unassign(u, ControlDomain),
            MdevAttr::Remove => WriteTarget::Remove(u),
            MdevAttr::ApConfig => WriteTarget::ApConfig(u),
            MdevAttr::Uevent => WriteTarget::Uevent,
            MdevAttr::ControlDomains | MdevAttr::GuestMatrix | MdevAttr::Matrix => return None,
        },
    })
}
