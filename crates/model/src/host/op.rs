//! Every change to a host as a value ([`Op`]), and every writable sysfs
//! attribute as a [`WriteTarget`].
//!
//! A write(2) is parsed into an operation first ([`Host::parse_write`]) and
//! then applied ([`Host::apply`]); both the sysfs view and the CLI go through
//! this pair, and the state store journals the operations. Applying the same
//! operations to the same host always gives the same host, so a journal
//! replays exactly.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Effects, Host};
use crate::error::{ApError, MaskKind};
use crate::ids::{AdapterId, Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::parse::{
    parse_ap_config, parse_create_uuid, parse_kstrtobool, parse_mask, parse_scanf_int,
    parse_uevent_action,
};
use crate::profile::PollThreadInput;
use crate::topology::CardMode;
use crate::vfio::CpuModel;

/// One change to a host. Values are as the kernel parsed them; their checks
/// run in [`Host::apply`], so an operation from any source gets the
/// kernel's refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// A write to `/sys/bus/ap/apmask` or `aqmask` (kernel.md §3).
    SetMask {
        /// Which mask.
        mask: MaskKind,
        /// The whole new mask (relative terms already applied to the old one).
        value: Mask256,
    },
    /// A write to the mdev type's `create`: a new mdev, empty matrix (kernel.md §5).
    CreateMdev {
        /// The new mdev's UUID.
        uuid: Uuid,
    },
    /// A non-zero write to an mdev's `remove`.
    RemoveMdev {
        /// The mdev to remove.
        uuid: Uuid,
    },
    /// A write to an mdev's `assign_adapter`, `assign_domain` or
    /// `assign_control_domain` (kernel.md §6).
    Assign {
        /// The mdev.
        uuid: Uuid,
        /// Which of the three attributes.
        axis: MatrixAxis,
        /// The number kstrtoul read; the range check (ENODEV) comes later.
        id: u64,
    },
    /// A write to an mdev's `unassign_adapter`, `unassign_domain` or
    /// `unassign_control_domain` (kernel.md §6).
    Unassign {
        /// The mdev.
        uuid: Uuid,
        /// Which of the three attributes.
        axis: MatrixAxis,
        /// The number kstrtoul read; the range check (ENODEV) comes later.
        id: u64,
    },
    /// A write to an mdev's `ap_config` (NEW): the whole matrix at once.
    SetMatrix {
        /// The mdev.
        uuid: Uuid,
        /// The adapters, as the first mask of the write.
        adapters: Mask256,
        /// The usage domains, the second mask.
        domains: Mask256,
        /// The control domains, the third mask.
        control_domains: Mask256,
    },
    /// QEMU starts a guest, with `-device vfio-ap,sysfsdev=...` if it has an
    /// mdev: opening it puts its matrix into the guest's CRYCB (kernel.md §8).
    StartGuest {
        /// The guest's name.
        name: String,
        /// The mdev it opens, if any.
        mdev: Option<Uuid>,
        /// Its CPU model's AP features.
        cpu: CpuModel,
    },
    /// A guest stops: its CRYCB is cleared and its mdev is free again.
    StopGuest {
        /// The guest.
        name: String,
    },
    /// QEMU `device_add vfio-ap`: hot plug of an mdev into a running guest.
    AttachMdev {
        /// The guest.
        guest: String,
        /// The mdev it opens.
        uuid: Uuid,
    },
    /// QEMU `device_del`: hot unplug of a guest's vfio-ap device.
    DetachMdev {
        /// The guest.
        guest: String,
    },
    /// `ap_domain`: the number sscanf read (checked against range and aqmask).
    SetDefaultDomain {
        /// The domain number as a C `int`; -1 and out-of-range values are refused.
        domain: i32,
    },
    /// A write to `/sys/bus/ap/config_time`: seconds between bus scans.
    SetConfigTime {
        /// The number sscanf read; outside 5..=120 is refused (kernel.md §1).
        seconds: i32,
    },
    /// A write to `/sys/bus/ap/poll_thread`: starts or stops the AP poll thread.
    SetPollThread {
        /// Whether the thread runs.
        enabled: bool,
    },
    /// A write to `/sys/bus/ap/poll_timeout`: the poll timer's period.
    SetPollTimeout {
        /// The period; above 120 s (or below the profile's minimum) is refused.
        nanoseconds: u64,
    },
    /// A write to `scans`: one synchronous bus scan.
    Rescan,
    /// A card's `online` (zcrypt's cex4card): the number sscanf read.
    SetCardOnline {
        /// The card.
        adapter: AdapterId,
        /// 1 online, 0 offline; anything else is refused.
        online: i32,
    },
    /// A queue's `online` (zcrypt's cex4queue).
    SetQueueOnline {
        /// The queue.
        apqn: Apqn,
        /// 1 online, 0 offline; anything else is refused.
        online: i32,
    },
    /// The LPAR gains or loses a usage domain on the HMC (`apmatrix host
    /// domain N add|remove`); the bus shows it after its next scan.
    SetLparDomain {
        /// The usage domain.
        domain: u8,
        /// Added (true) or removed.
        present: bool,
    },
    /// The LPAR gains an adapter on the HMC (`apmatrix host adapter ID add
    /// --type CEX8C`); its card and queues appear at the next bus scan.
    AddLparAdapter {
        /// The adapter.
        adapter: AdapterId,
        /// Its card's compatible hwtype (CEX4 = 10 .. CEX8 = 14; 6..9 older).
        hwtype: u8,
        /// What the card's firmware runs as.
        mode: CardMode,
    },
    /// The LPAR loses an adapter on the HMC; its devices vanish at the
    /// next bus scan.
    RemoveLparAdapter {
        /// The adapter.
        adapter: AdapterId,
    },
    /// A card is configured or deconfigured on the HMC (`apmatrix host card
    /// ID config on|off`); the host sees it at the next bus scan.
    SetLparCardConfig {
        /// The card.
        adapter: AdapterId,
        /// Configured or not.
        configured: bool,
    },
    /// The card enters or leaves the check-stopped state (a hardware
    /// event, `apmatrix host card ID checkstop on|off`; kernel.md §4, §9:
    /// the bus updates the flag in place at its next scan).
    SetCardCheckstop {
        /// The card.
        adapter: AdapterId,
        /// Check-stopped or not.
        chkstop: bool,
    },
    /// A write to a card's `config` (SCLP configure / deconfigure from this
    /// host; the machine's notification makes the bus follow at once).
    SetCardConfig {
        /// The card.
        adapter: AdapterId,
        /// 1 configures, 0 deconfigures; anything else is refused.
        config: i32,
    },
    /// A write in a running guest's own sysfs: `op` on the guest kernel's
    /// AP bus (its masks, scans, cards and queues).
    InGuest {
        /// The guest.
        guest: String,
        /// What its kernel does.
        change: Box<Op>,
    },
}

/// Every attribute of the model that takes a write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WriteTarget {
    /// `/sys/bus/ap/apmask` or `/sys/bus/ap/aqmask`.
    Mask(MaskKind),
    /// `/sys/bus/ap/ap_domain`: zcrypt's default domain.
    ApDomain,
    /// `/sys/bus/ap/config_time`: the bus scan interval.
    ConfigTime,
    /// `/sys/bus/ap/poll_thread`.
    PollThread,
    /// `/sys/bus/ap/poll_timeout`.
    PollTimeout,
    /// `/sys/bus/ap/scans`: any write runs one bus scan.
    Scans,
    /// The matrix device's `mdev_supported_types/vfio_ap-passthrough/create`.
    Create,
    /// This mdev's `remove`.
    Remove(Uuid),
    /// This mdev's `assign_adapter`, `assign_domain` or `assign_control_domain`.
    Assign(Uuid, MatrixAxis),
    /// This mdev's `unassign_adapter`, `unassign_domain` or
    /// `unassign_control_domain`.
    Unassign(Uuid, MatrixAxis),
    /// This mdev's `ap_config` (NEW).
    ApConfig(Uuid),
    /// This card's `online` (cex4card).
    CardOnline(AdapterId),
    /// This card's `config`.
    CardConfig(AdapterId),
    /// A card's or queue's `request_count`: any write zeroes the counters,
    /// which the emulator keeps at zero.
    RequestCount,
    /// A queue's `reset`: any write resets the queue (no state to change).
    QueueReset(Apqn),
    /// This queue's `online` (only while bound to cex4queue).
    QueueOnline(Apqn),
    /// A device's `uevent`: an action (`add`, `change`, ...) asks the
    /// kernel to send that event again; nothing in the host changes.
    Uevent,
}

impl WriteTarget {
    /// The attribute's name, for messages.
    pub fn attr_name(self) -> String {
        match self {
            WriteTarget::Mask(kind) => kind.name().to_string(),
            WriteTarget::ApDomain => "ap_domain".into(),
            WriteTarget::ConfigTime => "config_time".into(),
            WriteTarget::PollThread => "poll_thread".into(),
            WriteTarget::PollTimeout => "poll_timeout".into(),
            WriteTarget::Scans => "scans".into(),
            WriteTarget::Create => "create".into(),
            WriteTarget::Remove(_) => "remove".into(),
            WriteTarget::Assign(_, axis) => format!("assign_{}", axis.attr_word()),
            WriteTarget::Unassign(_, axis) => format!("unassign_{}", axis.attr_word()),
            WriteTarget::ApConfig(_) => "ap_config".into(),
            WriteTarget::CardOnline(_) | WriteTarget::QueueOnline(_) => "online".into(),
            WriteTarget::CardConfig(_) => "config".into(),
            WriteTarget::RequestCount => "request_count".into(),
            WriteTarget::QueueReset(_) => "reset".into(),
            WriteTarget::Uevent => "uevent".into(),
        }
    }
}

/// What an accepted write did: the operation it became (none when the
/// kernel accepts the write without changing anything), and its effects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The operation the write became; `None` when it changed nothing.
    pub op: Option<Op>,
    /// What applying it did besides its own change.
    pub effects: Effects,
}

/// `poll_timeout`'s upper limit: 120 s in nanoseconds (kernel.md §1).
const POLL_TIMEOUT_MAX: u64 = 120_000_000_000;

impl Host {
    /// A write(2) of `input` to `target`: parsed, checked and applied, or
    /// refused with the kernel's errno and no change.
    pub fn write(&mut self, target: WriteTarget, input: &[u8]) -> Result<Written, ApError> {
        let Some(op) = self.parse_write(target, input)? else {
            return Ok(Written::default());
        };
        let unchanged = self.is_no_op(&op);
        let effects = self.apply(&op)?;
        Ok(Written {
            // An accepted write that changes nothing (re-assigning an
            // assigned id, writing the current mask) is no operation: a
            // journal need not record it.
            op: (!unchanged).then_some(op),
            effects,
        })
    }

    /// Whether an operation, if accepted, would leave the host as it is
    /// (the idempotent writes tools repeat); the stores decide the same way.
    fn is_no_op(&self, op: &Op) -> bool {
        match op {
            Op::SetMask { mask, value } => self.mask_write_changes_nothing(*mask, *value),
            Op::Assign { uuid, axis, id } => self.store_changes_nothing(uuid, *axis, *id, true),
            Op::Unassign { uuid, axis, id } => self.store_changes_nothing(uuid, *axis, *id, false),
            _ => false,
        }
    }

    /// The operation a write(2) asks for, after the checks the kernel makes
    /// while parsing. `None`: accepted without any change (a write of 0
    /// bytes never reaches a store; `remove` of 0; a `reset`).
    pub fn parse_write(&self, target: WriteTarget, input: &[u8]) -> Result<Option<Op>, ApError> {
        match target {
            WriteTarget::Remove(uuid)
            | WriteTarget::Assign(uuid, _)
            | WriteTarget::Unassign(uuid, _)
            | WriteTarget::ApConfig(uuid) => {
                self.existing_mdev(&uuid)?;
            }
            _ => {}
        }
        if input.is_empty() {
            return Ok(None);
        }
        let name = target.attr_name();
        let scanf = |any_base: bool| {
            parse_scanf_int(input, any_base)
                .ok_or_else(|| ApError::invalid(&name, input, "expected a number"))
        };
        Ok(Some(match target {
            WriteTarget::Mask(kind) => {
                let value = parse_mask(input, &self.mask(kind))
                    .map_err(|e| ApError::invalid(&name, input, e.to_string()))?;
                Op::SetMask { mask: kind, value }
            }
            WriteTarget::ApDomain => Op::SetDefaultDomain {
                domain: scanf(true)?,
            },
            WriteTarget::ConfigTime => Op::SetConfigTime {
                seconds: scanf(false)?,
            },
            WriteTarget::PollThread => Op::SetPollThread {
                enabled: match self.profile.poll_thread_input {
                    PollThreadInput::ScanfInt => scanf(false)? != 0,
                    PollThreadInput::KstrToBool => parse_kstrtobool(input).ok_or_else(|| {
                        ApError::invalid(&name, input, "expected 1, 0, y, n, on or off")
                    })?,
                },
            },
            WriteTarget::PollTimeout => Op::SetPollTimeout {
                nanoseconds: self.parse_number(&name, input)?,
            },
            WriteTarget::Scans => Op::Rescan,
            WriteTarget::Create => Op::CreateMdev {
                uuid: parse_create_uuid(input)
                    .map_err(|e| ApError::invalid(&name, input, e.to_string()))?,
            },
            WriteTarget::Remove(uuid) => match self.parse_number(&name, input)? {
                0 => return Ok(None),
                _ => Op::RemoveMdev { uuid },
            },
            WriteTarget::Assign(uuid, axis) => {
                self.check_matrix_store(&uuid)?;
                Op::Assign {
                    uuid,
                    axis,
                    id: self.parse_number(&name, input)?,
                }
            }
            WriteTarget::Unassign(uuid, axis) => {
                self.check_matrix_store(&uuid)?;
                Op::Unassign {
                    uuid,
                    axis,
                    id: self.parse_number(&name, input)?,
                }
            }
            WriteTarget::ApConfig(uuid) => {
                let [adapters, domains, control_domains] = parse_ap_config(input)
                    .map_err(|reason| ApError::invalid(&name, input, reason))?;
                Op::SetMatrix {
                    uuid,
                    adapters,
                    domains,
                    control_domains,
                }
            }
            WriteTarget::CardOnline(adapter) => Op::SetCardOnline {
                adapter,
                online: scanf(false)?,
            },
            WriteTarget::CardConfig(adapter) => Op::SetCardConfig {
                adapter,
                config: scanf(false)?,
            },
            WriteTarget::QueueOnline(apqn) => Op::SetQueueOnline {
                apqn,
                online: scanf(false)?,
            },
            WriteTarget::RequestCount | WriteTarget::QueueReset(_) => return Ok(None),
            WriteTarget::Uevent => {
                if !parse_uevent_action(input) {
                    return Err(ApError::invalid(
                        "uevent",
                        input,
                        "a write to uevent is an action (add, remove, change, move, online, \
                         offline, bind or unbind), optionally followed by a UUID and \
                         KEY=VALUE arguments with alphanumeric keys",
                    ));
                }
                return Ok(None);
            }
        }))
    }

    /// Applies one operation with the kernel's checks.
    pub fn apply(&mut self, op: &Op) -> Result<Effects, ApError> {
        let none = Effects::default();
        match op {
            Op::SetMask { mask, value } => self.set_mask(*mask, *value),
            Op::CreateMdev { uuid } => self.create_mdev(*uuid).map(|()| none),
            Op::RemoveMdev { uuid } => self.remove_mdev(uuid).map(|()| none),
            Op::Assign { uuid, axis, id } => self.assign(uuid, *axis, *id),
            Op::Unassign { uuid, axis, id } => self.unassign(uuid, *axis, *id),
            Op::SetMatrix {
                uuid,
                adapters,
                domains,
                control_domains,
            } => self.set_matrix(uuid, *adapters, *domains, *control_domains),
            Op::StartGuest { name, mdev, cpu } => self.start_guest(name, *mdev, *cpu),
            Op::StopGuest { name } => self.stop_guest(name),
            Op::AttachMdev { guest, uuid } => self.attach_mdev(guest, uuid),
            Op::DetachMdev { guest } => self.detach_mdev(guest),
            Op::SetDefaultDomain { domain } => self.set_default_domain(*domain).map(|()| none),
            Op::SetConfigTime { seconds } => {
                if !(5..=120).contains(seconds) {
                    return Err(out_of_range("config_time", seconds, "5 to 120 seconds"));
                }
                self.bus.config_time = *seconds as u32;
                Ok(none)
            }
            Op::SetPollThread { enabled } => {
                self.bus.poll_thread = *enabled;
                Ok(none)
            }
            Op::SetPollTimeout { nanoseconds } => {
                let min = self.profile.poll_timeout_min;
                if !(min..=POLL_TIMEOUT_MAX).contains(nanoseconds) {
                    return Err(out_of_range(
                        "poll_timeout",
                        nanoseconds,
                        &format!("{min} to {POLL_TIMEOUT_MAX} nanoseconds"),
                    ));
                }
                self.bus.poll_timeout = *nanoseconds;
                Ok(none)
            }
            Op::Rescan => Ok(self.scan()),
            Op::InGuest { guest, change } => self.apply_in_guest(guest, change),
            Op::SetLparDomain { domain, present } => {
                self.set_lpar_domain(*domain, *present).map(|()| none)
            }
            Op::AddLparAdapter {
                adapter,
                hwtype,
                mode,
            } => self
                .add_lpar_adapter(crate::topology::Card::new(*adapter, *hwtype, *mode))
                .map(|()| none),
            Op::RemoveLparAdapter { adapter } => self.remove_lpar_adapter(*adapter).map(|()| none),
            Op::SetLparCardConfig {
                adapter,
                configured,
            } => self
                .set_lpar_card_config(*adapter, *configured)
                .map(|()| none),
            Op::SetCardOnline { adapter, online } => {
                self.set_card_online(*adapter, *online).map(|()| none)
            }
            Op::SetQueueOnline { apqn, online } => {
                self.set_queue_online(*apqn, *online).map(|()| none)
            }
            Op::SetCardConfig { adapter, config } => self.set_card_config(*adapter, *config),
            Op::SetCardCheckstop { adapter, chkstop } => {
                self.set_card_checkstop(*adapter, *chkstop).map(|()| none)
            }
        }
    }

    /// `ap_domain` (kernel.md §1): in range and a domain aqmask gives the host.
    fn set_default_domain(&mut self, domain: i32) -> Result<(), ApError> {
        let max = self.max_id(MatrixAxis::Domain);
        if !(0..=max as i32).contains(&domain) {
            return Err(out_of_range(
                "ap_domain",
                &domain,
                &format!("a domain number from 0 to {max}"),
            ));
        }
        if !self.aqmask.contains(domain as u8) {
            return Err(out_of_range(
                "ap_domain",
                &domain,
                "a domain whose aqmask bit is set (the default domain must belong to the host)",
            ));
        }
        self.bus.default_domain = Some(domain as u8);
        Ok(())
    }

    /// The card behind a card device's attribute: ENODEV where the bus
    /// has no such device (no card, or on NEW one older than CEX4).
    fn card_or_enodev(&self, adapter: AdapterId) -> Result<&crate::topology::Card, ApError> {
        let no_device = || ApError::DeviceUnavailable {
            device: format!("card{:02x}", adapter.0),
            reason: "there is no such card device".into(),
        };
        if !self.has_card_device(adapter) {
            return Err(no_device());
        }
        self.topology.cards.get(&adapter).ok_or_else(no_device)
    }

    /// A card's `online` (zcrypt_card.c): 0 or 1; going online needs a
    /// configured card without checkstop. The new state goes to every queue
    /// of the card (kernel.md §4).
    fn set_card_online(&mut self, adapter: AdapterId, online: i32) -> Result<(), ApError> {
        let card = self.card_or_enodev(adapter)?;
        if !(0..=1).contains(&online) {
            return Err(out_of_range("online", &online, "0 or 1"));
        }
        if online == 1 && (!card.config || card.chkstop) {
            return Err(ApError::DeviceUnavailable {
                device: format!("card{:02x}", adapter.0),
                reason: if card.chkstop {
                    "the card is checkstopped".into()
                } else {
                    "the card is deconfigured".into()
                },
            });
        }
        self.topology
            .cards
            .get_mut(&adapter)
            .expect("checked")
            .online = online == 1;
        // zcrypt's card reaches only its own (cex4queue) queues.
        for d in self.bound_domains(adapter, super::Driver::Cex4Queue).iter() {
            let apqn = Apqn::new(adapter.0, d);
            if online == 1 {
                self.offline_queues.remove(&apqn);
            } else {
                self.offline_queues.insert(apqn);
            }
        }
        Ok(())
    }

    /// A queue's `online` under cex4queue (kernel.md §4): 0 or 1; ENODEV
    /// on a deconfigured card; EINVAL to go online while the card is offline.
    fn set_queue_online(&mut self, apqn: Apqn, online: i32) -> Result<(), ApError> {
        let card = self.card_or_enodev(apqn.adapter)?;
        if self.queue_driver(apqn) != Some(Some(super::Driver::Cex4Queue)) {
            return Err(ApError::DeviceUnavailable {
                device: apqn.to_string(),
                reason: "the queue is not bound to cex4queue".into(),
            });
        }
        if !(0..=1).contains(&online) {
            return Err(out_of_range("online", &online, "0 or 1"));
        }
        if !card.config || card.chkstop {
            return Err(ApError::DeviceUnavailable {
                device: apqn.to_string(),
                reason: "its card is deconfigured or checkstopped".into(),
            });
        }
        if online == 1 && !card.online {
            return Err(ApError::invalid(
                "online",
                b"1",
                format!(
                    "card{:02x} is offline; set the card online first",
                    apqn.adapter.0
                ),
            ));
        }
        if online == 1 {
            self.offline_queues.remove(&apqn);
        } else {
            self.offline_queues.insert(apqn);
        }
        Ok(())
    }

    /// A card's `config`: 0 or 1. Deconfiguring takes the card out of the
    /// host's configuration (QCI), so guests lose it until it comes back.
    /// A check-stopped card stays configured and bound; zcrypt's `online`
    /// reads 0 while it lasts, and a guest keeps its queues (NEW's filter
    /// accepts a check-stopped reset response, kernel.md §6).
    fn set_card_checkstop(&mut self, adapter: AdapterId, chkstop: bool) -> Result<(), ApError> {
        // The hardware's event: any card of the host, with a device or not.
        let card =
            self.topology
                .cards
                .get_mut(&adapter)
                .ok_or_else(|| ApError::DeviceUnavailable {
                    device: format!("card{:02x}", adapter.0),
                    reason: "there is no such card".into(),
                })?;
        card.chkstop = chkstop;
        Ok(())
    }

    fn set_card_config(&mut self, adapter: AdapterId, config: i32) -> Result<Effects, ApError> {
        self.card_or_enodev(adapter)?;
        if !(0..=1).contains(&config) {
            return Err(out_of_range("config", &config, "0 or 1"));
        }
        let card = self.topology.cards.get_mut(&adapter).expect("checked");
        if card.config == (config == 1) {
            return Ok(Effects::default());
        }
        card.config = config == 1;
        self.configured = self.topology.configured_adapters();
        self.lpar_follows_card_config(adapter, config == 1);
        let touched: Vec<Uuid> = self
            .attached
            .keys()
            .filter(|u| self.mdevs[*u].adapters.contains(adapter.0))
            .copied()
            .collect();
        let mut effects = Effects::default();
        for uuid in touched {
            effects
                .guest_updates
                .extend(self.refresh_guest_of(&uuid).guest_updates);
        }
        effects.guest_updates.sort_by(|a, b| a.guest.cmp(&b.guest));
        Ok(effects)
    }

    /// A queue's zcrypt `online` as sysfs shows it (only meaningful for
    /// queues bound to cex4queue).
    pub fn queue_online(&self, apqn: Apqn) -> bool {
        self.topology.cards.get(&apqn.adapter).is_some_and(|c| {
            c.config && !c.chkstop && c.online && !self.offline_queues.contains(&apqn)
        })
    }
}

fn out_of_range(attr: &str, value: &dyn std::fmt::Display, rule: &str) -> ApError {
    ApError::InvalidInput {
        target: attr.to_string(),
        input: value.to_string(),
        rule: format!("the value must be {rule}"),
    }
}

#[cfg(test)]
mod tests;
