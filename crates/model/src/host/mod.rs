//! One emulated host: the AP bus (masks and queue binding), the vfio_ap
//! matrix device with its mdevs, and the guests using them.
//!
//! Every operation either succeeds and reports its [`Effects`], or returns an
//! [`ApError`](crate::ApError) and leaves the host exactly as it was: all
//! checks run before the first change.
//!
//! The rooms: `bus.rs` (masks, re-probe, binding), `lpar.rs` (the LPAR's
//! configuration on the hardware, and the bus scan), `mdevs.rs` (the mdevs
//! and their matrices), `guests.rs` (guests, hot plug, the CRYCB),
//! `occupancy.rs` (who holds each APQN), `changes.rs` (which objects
//! differ between two states, for the views' caches), `rules.rs` (the kernel's decisions
//! as queries, shared with `apmatrix check`), `op.rs` (every change as a
//! value) and `state.rs` (the saved form). This file holds the types and
//! the reading side.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::MaskKind;
use crate::ids::{AdapterId, Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::profile::{KernelProfile, SEED};
use crate::topology::{BootWarning, Topology};
use crate::vfio::{CpuModel, Crycb, Mdev};

mod bus;
mod changes;
mod guest_bus;
mod guests;
mod lpar;
mod mdevs;
mod occupancy;
mod op;
mod rules;
mod state;
#[cfg(test)]
mod tests;

use bus::Bindings;
pub use changes::Changes;
use guests::check_guest_name;
pub use occupancy::{Clash, Occupancy};
pub use op::{Op, WriteTarget, Written};
pub use rules::{given_back, host_owns, reclaimed, Unavailable};
pub use state::{GuestState, HostState, StateError, STATE_FORMAT};

/// The device drivers of the AP bus.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Driver {
    /// zcrypt's card driver; binds every card.
    #[serde(rename = "cex4card")]
    Cex4Card,
    /// zcrypt's queue driver; binds the queues the masks give the host.
    #[serde(rename = "cex4queue")]
    Cex4Queue,
    /// vfio_ap; binds the other queues of CEX4 and newer cards.
    #[serde(rename = "vfio_ap")]
    VfioAp,
}

impl Driver {
    /// The driver's name in sysfs (`/sys/bus/ap/drivers/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Driver::Cex4Card => "cex4card",
            Driver::Cex4Queue => "cex4queue",
            Driver::VfioAp => "vfio_ap",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn driver_name(d: Option<Driver>) -> &'static str {
    d.map_or("no driver", Driver::name)
}

/// Queues of one adapter whose driver changed in a re-probe.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rebind {
    /// The card of the queues.
    pub adapter: AdapterId,
    /// The domains of the queues that moved.
    pub domains: Mask256,
    /// The driver they were bound to (`None`: unbound).
    pub from: Option<Driver>,
    /// The driver they are bound to now (`None`: unbound).
    pub to: Option<Driver>,
}

impl Rebind {
    /// The moved queues, domain ascending.
    pub fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        self.domains.iter().map(|d| Apqn::new(self.adapter.0, d))
    }
}

impl fmt::Display for Rebind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.apqns().map(|q| q.to_string()).collect();
        write!(
            f,
            "{} -> {}: {}",
            driver_name(self.from),
            driver_name(self.to),
            names.join(" ")
        )
    }
}

/// A running guest's CRYCB changed: hot plug and/or unplug.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestUpdate {
    /// The guest's name.
    pub guest: String,
    /// Its CRYCB before the change.
    pub before: Crycb,
    /// Its CRYCB after the change.
    pub after: Crycb,
}

impl GuestUpdate {
    /// APQNs the guest gained.
    pub fn plugged(&self) -> Vec<Apqn> {
        self.after
            .apqns()
            .filter(|q| !self.before.contains(*q))
            .collect()
    }

    /// APQNs the guest lost.
    pub fn unplugged(&self) -> Vec<Apqn> {
        self.before
            .apqns()
            .filter(|q| !self.after.contains(*q))
            .collect()
    }
}

/// What an accepted operation did besides its own change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Effects {
    /// The AP bus re-probed its queues (a mask write that changed a mask).
    pub reprobed: bool,
    /// Queues that moved between drivers.
    pub rebinds: Vec<Rebind>,
    /// Running guests whose CRYCB changed.
    pub guest_updates: Vec<GuestUpdate>,
}

impl Effects {
    /// Number of queues that changed driver.
    pub fn rebound_queues(&self) -> u32 {
        self.rebinds.iter().map(|r| r.domains.count()).sum()
    }
}

/// The AP bus's own settings (`/sys/bus/ap/*`, kernel.md §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    /// `ap_domain`: the default domain zcrypt uses; `None` prints -1.
    pub default_domain: Option<u8>,
    /// `config_time`: seconds between bus scans.
    pub config_time: u32,
    /// `poll_thread`.
    pub poll_thread: bool,
    /// `poll_timeout` in nanoseconds.
    pub poll_timeout: u64,
    /// `ap_interrupts`.
    pub interrupts: bool,
}

impl BusSettings {
    /// The kernel's defaults on an LPAR; the default domain is chosen by the
    /// first scan (see [`Host::boot`]).
    pub fn lpar_defaults() -> Self {
        BusSettings {
            default_domain: None,
            config_time: 30,
            poll_thread: false,
            poll_timeout: 250_000,
            interrupts: true,
        }
    }
}

/// A running guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The guest's name, unique among running guests.
    pub name: String,
    /// The mdev it has open (its vfio-ap device), if any.
    pub mdev: Option<Uuid>,
    /// Its CPU model's AP features.
    pub cpu: CpuModel,
    /// The CRYCB vfio_ap gave it (derived from the mdev and the bus).
    pub crycb: Crycb,
    /// Its own kernel's AP bus, as of its last scan.
    pub bus: std::sync::Arc<Host>,
}

/// Who an APQN belongs to right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApqnState {
    /// The APQN described.
    pub apqn: Apqn,
    /// The queue device exists (a card and a usage domain of the host).
    pub exists: bool,
    /// apmask and aqmask give it to the host's zcrypt drivers.
    pub host_owned: bool,
    /// The driver the queue is bound to, if it exists and is bound.
    pub driver: Option<Driver>,
    /// The mdev it is assigned to.
    pub mdev: Option<Uuid>,
    /// The guest using that mdev.
    pub guest: Option<String>,
    /// It is in that guest's CRYCB.
    pub in_guest: bool,
}

/// An emulated host.
#[derive(Clone, PartialEq, Eq)]
pub struct Host {
    profile: &'static KernelProfile,
    topology: Topology,
    apmask: Mask256,
    aqmask: Mask256,
    scans: u64,
    bus: BusSettings,
    mdevs: BTreeMap<Uuid, Mdev>,
    guests: BTreeMap<String, Guest>,
    /// Queues bound to cex4queue whose zcrypt `online` is 0 (usually none).
    offline_queues: BTreeSet<Apqn>,
    /// The LPAR's configuration as the hardware (QCI) has it since an HMC
    /// change, when the bus has not scanned since (kernel.md §9).
    lpar: Option<Box<Topology>>,
    // Derived from the above; rebuilt on load.
    configured: Mask256,
    bindings: Bindings,
    occupancy: Occupancy,
    attached: HashMap<Uuid, String>,
    /// vfio_ap is loaded: the host's bus has it, a guest's bus does not.
    vfio_ap: bool,
    /// IOMMU group numbers in use, one bit each: the kernel hands out the
    /// smallest free number (ida), and so does [`Host::create_mdev`].
    iommu_groups: Vec<u64>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("profile", &self.profile.name)
            .field("topology", &self.topology.name)
            .field("apmask", &self.apmask)
            .field("aqmask", &self.aqmask)
            .field("mdevs", &self.mdevs)
            .field("guests", &self.guests)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Boots a host: masks from the boot parameters (all ones by default),
    /// every queue bound by the first bus scan.
    pub fn new(topology: Topology, profile: &'static KernelProfile) -> Host {
        Self::boot(topology, profile).0
    }

    /// Like [`Host::new`], also returning the boot parameters the kernel
    /// would have ignored.
    pub fn boot(topology: Topology, profile: &'static KernelProfile) -> (Host, Vec<BootWarning>) {
        let (apmask, aqmask, warnings) = topology.boot.masks();
        let mut host = Host {
            profile,
            configured: topology.configured_adapters(),
            topology,
            apmask,
            aqmask,
            scans: 1,
            bus: BusSettings::lpar_defaults(),
            mdevs: BTreeMap::new(),
            guests: BTreeMap::new(),
            offline_queues: BTreeSet::new(),
            lpar: None,
            bindings: Bindings::new(),
            occupancy: Occupancy::new(),
            attached: HashMap::new(),
            vfio_ap: true,
            iommu_groups: Vec::new(),
        };
        host.reprobe();
        host.bus.default_domain = host.select_default_domain();
        (host, warnings)
    }

    /// The first scan's choice of default domain: the first usage domain in
    /// aqmask that has a queue on a configured card in apmask (kernel.md §9).
    fn select_default_domain(&self) -> Option<u8> {
        let host_cards = self.configured.and(&self.apmask);
        if host_cards.is_empty() {
            return None;
        }
        self.topology.usage_domains.and(&self.aqmask).first()
    }

    /// The seed document's example host with the seed profile.
    pub fn seed_example() -> Host {
        Host::new(Topology::seed_example(), &SEED)
    }

    /// The kernel generation whose rules this host follows.
    pub fn profile(&self) -> &'static KernelProfile {
        self.profile
    }

    /// The host's crypto hardware and boot parameters.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The current apmask or aqmask.
    pub fn mask(&self, kind: MaskKind) -> Mask256 {
        match kind {
            MaskKind::Apmask => self.apmask,
            MaskKind::Aqmask => self.aqmask,
        }
    }

    /// `/sys/bus/ap/apmask`: adapters whose queues the host's zcrypt drivers
    /// may take.
    pub fn apmask(&self) -> Mask256 {
        self.apmask
    }

    /// `/sys/bus/ap/aqmask`: domains whose queues the host's zcrypt drivers
    /// may take.
    pub fn aqmask(&self) -> Mask256 {
        self.aqmask
    }

    /// The bus settings (`ap_domain`, `config_time`, ...).
    pub fn bus(&self) -> &BusSettings {
        &self.bus
    }

    /// Every mdev, in UUID order.
    pub fn mdevs(&self) -> impl Iterator<Item = &Mdev> {
        self.mdevs.values()
    }

    /// The mdev with this UUID.
    pub fn mdev(&self, uuid: &Uuid) -> Option<&Mdev> {
        self.mdevs.get(uuid)
    }

    /// How many mdevs exist.
    pub fn mdev_count(&self) -> usize {
        self.mdevs.len()
    }

    /// `available_instances` of the vfio_ap-passthrough type.
    pub fn available_instances(&self) -> u32 {
        self.profile.max_instances - self.mdevs.len() as u32
    }

    /// The running guests, in name order.
    pub fn guests(&self) -> impl Iterator<Item = &Guest> {
        self.guests.values()
    }

    /// The running guest of this name.
    pub fn guest(&self, name: &str) -> Option<&Guest> {
        self.guests.get(name)
    }

    /// The guest using an mdev.
    pub fn guest_of(&self, mdev: &Uuid) -> Option<&str> {
        self.attached.get(mdev).map(String::as_str)
    }

    /// The highest id `assign_*` accepts on this axis.
    pub fn max_id(&self, axis: MatrixAxis) -> u8 {
        match axis {
            MatrixAxis::Adapter => self.topology.max_adapter_id(),
            MatrixAxis::Domain | MatrixAxis::ControlDomain => self.topology.max_domain_id(),
        }
    }

    /// Everything about one APQN.
    pub fn apqn_state(&self, apqn: Apqn) -> ApqnState {
        let mdev = self.mdev_holding(apqn).map(|m| m.uuid);
        let guest = mdev.and_then(|u| self.attached.get(&u).cloned());
        let in_guest = guest
            .as_ref()
            .is_some_and(|g| self.guests[g].crycb.contains(apqn));
        ApqnState {
            apqn,
            exists: self.queue_exists(apqn),
            host_owned: self.host_owned(apqn),
            driver: self.queue_driver(apqn).flatten(),
            mdev,
            guest,
            in_guest,
        }
    }
}

fn update_effects(guest: &str, before: Crycb, after: Crycb) -> Effects {
    if before == after {
        return Effects::default();
    }
    Effects {
        reprobed: false,
        rebinds: Vec::new(),
        guest_updates: vec![GuestUpdate {
            guest: guest.to_string(),
            before,
            after,
        }],
    }
}
