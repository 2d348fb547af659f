//! The kernel's uevents for the AP bus and vfio_ap: what a device's
//! `uevent` file prints, and which events the kernel broadcasts when the
//! host changes (docs/research/uevents.md §2 and §3).
//!
//! Both are rules of the kernel, so they live here; the server only
//! encodes and sends what [`Announcer::between`] returns.

mod announce;

pub use announce::Announcer;

use std::fmt;

use uuid::Uuid;

use crate::host::{Driver, Host};
use crate::ids::{AdapterId, Apqn};
use crate::topology::Card;

/// A device of the tree that has a `uevent`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// `/sys/devices/ap`: the AP bus's root device.
    ApRoot,
    /// `/sys/devices/vfio_ap`: vfio_ap's root device (no bus: no events).
    VfioApRoot,
    /// `/sys/devices/ap/cardXX`.
    Card(AdapterId),
    /// `/sys/devices/ap/cardXX/XX.YYYY`.
    Queue(Apqn),
    /// `/sys/devices/vfio_ap/matrix`.
    Matrix,
    /// `/sys/devices/vfio_ap/matrix/<uuid>`.
    Mdev(Uuid),
}

impl Device {
    /// The kobject path events carry as `DEVPATH` (no `/sys`).
    pub fn devpath(&self) -> String {
        match self {
            Device::ApRoot => "/devices/ap".into(),
            Device::VfioApRoot => "/devices/vfio_ap".into(),
            Device::Card(a) => format!("/devices/ap/card{a}"),
            Device::Queue(q) => format!("/devices/ap/card{}/{q}", q.adapter),
            Device::Matrix => "/devices/vfio_ap/matrix".into(),
            Device::Mdev(u) => format!("/devices/vfio_ap/matrix/{u}"),
        }
    }

    /// The bus it is on, which events carry as `SUBSYSTEM`; `None` for
    /// vfio_ap's root, which the driver core never announces.
    pub fn subsystem(&self) -> Option<&'static str> {
        match self {
            Device::ApRoot | Device::Card(_) | Device::Queue(_) => Some("ap"),
            Device::VfioApRoot => None,
            Device::Matrix => Some("matrix"),
            Device::Mdev(_) => Some("mdev"),
        }
    }
}

/// What the driver core and the device's bus say about it, in the order
/// `dev_uevent` collects them: `DEVTYPE`, `DRIVER` when bound, then the
/// bus's keys. Empty for a device that is gone.
pub fn device_keys(host: &Host, device: &Device) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    match *device {
        Device::ApRoot | Device::VfioApRoot => {}
        Device::Card(a) => {
            if let Some(card) = host.card_device(a) {
                keys.push(("DEVTYPE", "ap_card".into()));
                keys.push(("DRIVER", Driver::Cex4Card.name().into()));
                type_keys(&mut keys, card);
                mode_key(host, &mut keys, card);
            }
        }
        Device::Queue(q) => {
            if let (Some(card), Some(driver)) = (host.card_device(q.adapter), host.queue_driver(q))
            {
                keys.push(("DEVTYPE", "ap_queue".into()));
                if let Some(driver) = driver {
                    keys.push(("DRIVER", driver.name().into()));
                }
                // 6.x gives queues the card's MODE; the 5.10-era bus gave
                // them the card's type keys instead (research §2).
                if host.profile().sysfs.uevent_mode {
                    mode_key(host, &mut keys, card);
                } else {
                    type_keys(&mut keys, card);
                }
            }
        }
        Device::Matrix => keys.push(("DRIVER", "vfio_ap".into())),
        Device::Mdev(u) => {
            if host.mdev(&u).is_some() {
                keys.push(("DRIVER", host.profile().sysfs.mdev_driver.into()));
            }
        }
    }
    keys
}

fn type_keys(keys: &mut Vec<(&'static str, String)>, card: &Card) {
    keys.push(("DEV_TYPE", format!("{:04X}", card.hwtype)));
    keys.push(("MODALIAS", format!("ap:t{:02X}", card.hwtype)));
}

fn mode_key(host: &Host, keys: &mut Vec<(&'static str, String)>, card: &Card) {
    if host.profile().sysfs.uevent_mode {
        keys.push(("MODE", card.mode.uevent_name().into()));
    }
}

/// What `cat DEVICE/uevent` prints: one `KEY=VALUE` line per key.
pub fn file_text(host: &Host, device: &Device) -> String {
    let mut text = String::new();
    for (key, value) in device_keys(host, device) {
        text.push_str(key);
        text.push('=');
        text.push_str(&value);
        text.push('\n');
    }
    text
}

/// A uevent action (`kobject_action`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `change`.
    Change,
    /// `move`.
    Move,
    /// `online`.
    Online,
    /// `offline`.
    Offline,
    /// `bind`.
    Bind,
    /// `unbind`.
    Unbind,
}

impl Action {
    /// Every action, in the kernel's order.
    pub const ALL: [Action; 8] = [
        Action::Add,
        Action::Remove,
        Action::Change,
        Action::Move,
        Action::Online,
        Action::Offline,
        Action::Bind,
        Action::Unbind,
    ];

    /// Its name, as `ACTION=` carries it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Change => "change",
            Action::Move => "move",
            Action::Online => "online",
            Action::Offline => "offline",
            Action::Bind => "bind",
            Action::Unbind => "unbind",
        }
    }

    /// The action of that name.
    pub fn from_name(name: &[u8]) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name().as_bytes() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One event as the kernel broadcasts it, without the `SEQNUM` the sender
/// numbers it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uevent {
    /// What happened.
    pub action: Action,
    /// The device it happened to.
    pub device: Device,
    /// `DEVPATH`.
    pub devpath: String,
    /// `SUBSYSTEM`.
    pub subsystem: &'static str,
    /// The other keys, in the kernel's order: the caller's (`CONFIG=`,
    /// `APMASK=`, ...) first, then the device's own.
    pub env: Vec<(String, String)>,
}

impl Uevent {
    /// All properties in the kernel's order, `SEQNUM` last.
    pub fn properties(&self, seqnum: u64) -> Vec<(String, String)> {
        let mut all = vec![
            ("ACTION".to_string(), self.action.name().to_string()),
            ("DEVPATH".to_string(), self.devpath.clone()),
            ("SUBSYSTEM".to_string(), self.subsystem.to_string()),
        ];
        all.extend(self.env.iter().cloned());
        all.push(("SEQNUM".to_string(), seqnum.to_string()));
        all
    }

    /// `ACTION DEVPATH (SUBSYSTEM) KEY=VALUE ...` on one line, for logs and
    /// tests.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {} ({})", self.action, self.devpath, self.subsystem);
        for (k, v) in &self.env {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }
}

/// The event a write to `device`'s `uevent` asks for (`kobject_synth_uevent`):
/// the action, `SYNTH_UUID` (the UUID given, else `0`) and a `SYNTH_ARG_KEY`
/// per `KEY=VALUE` after it. `None` for an input the kernel refuses, or a
/// device the driver core does not announce.
pub fn synthetic(host: &Host, device: &Device, input: &[u8]) -> Option<Uevent> {
    let synth = crate::parse::parse_synthetic_uevent(input)?;
    let mut env = vec![(
        "SYNTH_UUID".to_string(),
        synth.uuid.unwrap_or_else(|| "0".into()),
    )];
    for (key, value) in synth.args {
        env.push((format!("SYNTH_ARG_{key}"), value));
    }
    event(host, synth.action, *device, env, false)
}

/// An event on `device` with the caller's keys first, then the device's own
/// as `host` has them; without `DRIVER` when the device is not bound at that
/// moment (an add before its probe, an unbind, a remove), and an unbind
/// never carries `MODALIAS` (`zap_modalias_env`).
fn event(
    host: &Host,
    action: Action,
    device: Device,
    mut env: Vec<(String, String)>,
    unbound: bool,
) -> Option<Uevent> {
    let subsystem = device.subsystem()?;
    for (key, value) in device_keys(host, &device) {
        let gone = (unbound && key == "DRIVER") || (action == Action::Unbind && key == "MODALIAS");
        if !gone {
            env.push((key.to_string(), value));
        }
    }
    Some(Uevent {
        action,
        device,
        devpath: device.devpath(),
        subsystem,
        env,
    })
}

#[cfg(test)]
mod tests;
