//! One emulated host: the AP bus (masks and queue binding), the vfio_ap
//! matrix device with its mdevs, and the guests using them.
//!
//! Every operation either succeeds and reports its [`Effects`], or returns an
//! [`ApError`] and leaves the host exactly as it was: all checks run before
//! the first change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApError, ApqnList, MaskKind};
use crate::ids::{AdapterId, Apqn, DomainId, MatrixAxis};
use crate::mask::Mask256;
use crate::parse::{parse_kstrtoul, NumberError};
use crate::profile::{Availability, GuestFilter, KernelProfile, MaskReclaim, RunningGuest, SEED};
use crate::topology::{BootWarning, Topology};
use crate::vfio::{cross, CpuModel, Crycb, GuestCard, GuestView, Mdev};

mod op;
pub use op::{Op, WriteTarget, Written};

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
    pub adapter: AdapterId,
    pub domains: Mask256,
    pub from: Option<Driver>,
    pub to: Option<Driver>,
}

impl Rebind {
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
    pub guest: String,
    pub before: Crycb,
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
    pub name: String,
    pub mdev: Option<Uuid>,
    pub cpu: CpuModel,
    /// The CRYCB vfio_ap gave it (derived from the mdev and the bus).
    pub crycb: Crycb,
}

/// Who an APQN belongs to right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApqnState {
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

/// Per adapter: the domains whose queue is bound to each driver.
#[derive(Clone, PartialEq, Eq)]
struct Bindings {
    zcrypt: Box<[Mask256; 256]>,
    vfio: Box<[Mask256; 256]>,
}

/// Per adapter the domains, and per domain the adapters, that some mdev
/// holds: makes the sharing and mask-reclaim checks a few word operations
/// at any scale. Valid because no APQN is in two mdevs.
#[derive(Clone, PartialEq, Eq)]
struct Occupancy {
    by_adapter: Box<[Mask256; 256]>,
    by_domain: Box<[Mask256; 256]>,
}

fn empty_table() -> Box<[Mask256; 256]> {
    Box::new([Mask256::EMPTY; 256])
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
    // Derived from the above; rebuilt on load.
    configured: Mask256,
    bindings: Bindings,
    occupancy: Occupancy,
    attached: HashMap<Uuid, String>,
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
            bindings: Bindings {
                zcrypt: empty_table(),
                vfio: empty_table(),
            },
            occupancy: Occupancy {
                by_adapter: empty_table(),
                by_domain: empty_table(),
            },
            attached: HashMap::new(),
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

    // ---------------------------------------------------------------------
    // Reading
    // ---------------------------------------------------------------------

    pub fn profile(&self) -> &'static KernelProfile {
        self.profile
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn mask(&self, kind: MaskKind) -> Mask256 {
        match kind {
            MaskKind::Apmask => self.apmask,
            MaskKind::Aqmask => self.aqmask,
        }
    }

    pub fn apmask(&self) -> Mask256 {
        self.apmask
    }

    pub fn aqmask(&self) -> Mask256 {
        self.aqmask
    }

    /// Completed bus scans (`/sys/bus/ap/scans`).
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// A bus scan: the kernel re-reads the configuration (the emulated
    /// hardware does not change underneath it), and picks a default domain
    /// if it has none yet.
    pub fn rescan(&mut self) -> u64 {
        self.scans += 1;
        if self.bus.default_domain.is_none() {
            self.bus.default_domain = self.select_default_domain();
        }
        self.scans
    }

    /// The bus settings (`ap_domain`, `config_time`, ...).
    pub fn bus(&self) -> &BusSettings {
        &self.bus
    }

    pub fn mdevs(&self) -> impl Iterator<Item = &Mdev> {
        self.mdevs.values()
    }

    pub fn mdev(&self, uuid: &Uuid) -> Option<&Mdev> {
        self.mdevs.get(uuid)
    }

    pub fn mdev_count(&self) -> usize {
        self.mdevs.len()
    }

    /// `available_instances` of the vfio_ap-passthrough type.
    pub fn available_instances(&self) -> u32 {
        self.profile.max_instances - self.mdevs.len() as u32
    }

    pub fn guests(&self) -> impl Iterator<Item = &Guest> {
        self.guests.values()
    }

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

    /// apmask and aqmask give this APQN to the host's default drivers.
    pub fn host_owned(&self, apqn: Apqn) -> bool {
        self.apmask.contains(apqn.adapter.0) && self.aqmask.contains(apqn.domain.0)
    }

    /// Whether the queue device exists.
    pub fn queue_exists(&self, apqn: Apqn) -> bool {
        self.topology.cards.contains_key(&apqn.adapter)
            && self.topology.usage_domains.contains(apqn.domain.0)
    }

    /// The driver a queue is bound to; `None` if there is no such queue.
    pub fn queue_driver(&self, apqn: Apqn) -> Option<Option<Driver>> {
        if !self.queue_exists(apqn) {
            return None;
        }
        let (a, d) = (apqn.adapter.0 as usize, apqn.domain.0);
        Some(if self.bindings.zcrypt[a].contains(d) {
            Some(Driver::Cex4Queue)
        } else if self.bindings.vfio[a].contains(d) {
            Some(Driver::VfioAp)
        } else {
            None
        })
    }

    /// The domains of an adapter whose queues are bound to `driver`.
    pub fn bound_domains(&self, adapter: AdapterId, driver: Driver) -> Mask256 {
        match driver {
            Driver::Cex4Queue => self.bindings.zcrypt[adapter.0 as usize],
            Driver::VfioAp => self.bindings.vfio[adapter.0 as usize],
            Driver::Cex4Card => Mask256::EMPTY,
        }
    }

    /// The queues bound to `driver`, adapter-major ascending (the order
    /// `ls /sys/bus/ap/drivers/<driver>` shows them).
    pub fn queues_bound_to(&self, driver: Driver) -> Vec<Apqn> {
        self.topology
            .cards
            .keys()
            .flat_map(|a| {
                self.bound_domains(*a, driver)
                    .iter()
                    .map(move |d| Apqn::new(a.0, d))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `/sys/bus/ap/bindings`: (bound queue devices, all queue devices).
    pub fn bindings_count(&self) -> (u32, u32) {
        let bound = self
            .topology
            .cards
            .keys()
            .map(|a| {
                let a = a.0 as usize;
                self.bindings.zcrypt[a].count() + self.bindings.vfio[a].count()
            })
            .sum();
        (bound, self.topology.queue_count() as u32)
    }

    /// The mdev an APQN is assigned to.
    pub fn mdev_holding(&self, apqn: Apqn) -> Option<&Mdev> {
        if !self.occupancy.by_adapter[apqn.adapter.0 as usize].contains(apqn.domain.0) {
            return None;
        }
        self.mdevs.values().find(|m| m.contains(apqn))
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

    /// The `status` attribute of a queue bound to vfio_ap: `in use` when its
    /// mdev's guest runs, `assigned` when an mdev holds it, else `unassigned`.
    pub fn vfio_queue_status(&self, apqn: Apqn) -> Option<&'static str> {
        if self.queue_driver(apqn) != Some(Some(Driver::VfioAp)) {
            return None;
        }
        Some(match self.mdev_holding(apqn) {
            Some(m) if self.attached.contains_key(&m.uuid) => "in use",
            Some(_) => "assigned",
            None => "unassigned",
        })
    }

    // ---------------------------------------------------------------------
    // AP bus masks (seed rule 4; kernel.md §3)
    // ---------------------------------------------------------------------

    /// A write to `/sys/bus/ap/apmask` or `aqmask`, either kernel form.
    pub fn write_mask(&mut self, kind: MaskKind, input: &[u8]) -> Result<Effects, ApError> {
        Ok(self.write(WriteTarget::Mask(kind), input)?.effects)
    }

    /// Sets a mask: refused if it would give the host an APQN that an mdev
    /// holds; otherwise every queue is re-probed to the driver it now belongs to.
    pub fn set_mask(&mut self, kind: MaskKind, new: Mask256) -> Result<Effects, ApError> {
        let old = self.mask(kind);
        if new == old && self.profile.unchanged_mask_skips_reprobe {
            return Ok(Effects::default());
        }
        if let MaskReclaim::Refuse(errno) = self.profile.mask_reclaim {
            let added = new.and_not(&old);
            let taken = self.assigned_apqns_in(kind, &added);
            if let Some(&first) = taken.first() {
                let holder = self
                    .mdev_holding(first)
                    .expect("occupancy names a holder")
                    .uuid;
                return Err(ApError::MaskReclaimsAssigned {
                    errno,
                    mask: kind,
                    new: new.to_string(),
                    apqns: ApqnList(taken),
                    mdev: holder,
                    guest: self.attached.get(&holder).cloned(),
                });
            }
        }
        match kind {
            MaskKind::Apmask => self.apmask = new,
            MaskKind::Aqmask => self.aqmask = new,
        }
        let rebinds = self.reprobe();
        let guest_updates = self.refresh_guests_after(&rebinds);
        Ok(Effects {
            reprobed: true,
            rebinds,
            guest_updates,
        })
    }

    /// Assigned APQNs that adding `added` to the mask would give the host.
    fn assigned_apqns_in(&self, kind: MaskKind, added: &Mask256) -> Vec<Apqn> {
        let mut taken = Vec::new();
        match kind {
            MaskKind::Apmask => {
                for a in added.iter() {
                    let held = self.occupancy.by_adapter[a as usize].and(&self.aqmask);
                    taken.extend(held.iter().map(|d| Apqn::new(a, d)));
                }
            }
            MaskKind::Aqmask => {
                for d in added.iter() {
                    let held = self.occupancy.by_domain[d as usize].and(&self.apmask);
                    taken.extend(held.iter().map(|a| Apqn::new(a, d)));
                }
            }
        }
        taken.sort();
        taken
    }

    /// Binds every queue to the driver the masks name (kernel.md §3) and
    /// reports what moved. Cards always bind cex4card.
    fn reprobe(&mut self) -> Vec<Rebind> {
        let usage = self.topology.usage_domains;
        let mut changes = Vec::new();
        for card in self.topology.cards.values() {
            let a = card.id.0 as usize;
            let zcrypt = if self.apmask.contains(card.id.0) {
                self.aqmask.and(&usage)
            } else {
                Mask256::EMPTY
            };
            let vfio = if card.hwtype >= self.profile.vfio_ap_min_hwtype {
                usage.and_not(&zcrypt)
            } else {
                Mask256::EMPTY
            };
            let (old_z, old_v) = (self.bindings.zcrypt[a], self.bindings.vfio[a]);
            let old_none = old_z.or(&old_v).complement().and(&usage);
            let new_none = zcrypt.or(&vfio).complement().and(&usage);
            let z = Some(Driver::Cex4Queue);
            let v = Some(Driver::VfioAp);
            for (from, old, to, new) in [
                (z, old_z, v, vfio),
                (v, old_v, z, zcrypt),
                (None, old_none, z, zcrypt),
                (None, old_none, v, vfio),
                (z, old_z, None, new_none),
                (v, old_v, None, new_none),
            ] {
                let domains = old.and(&new);
                if !domains.is_empty() {
                    changes.push(Rebind {
                        adapter: card.id,
                        domains,
                        from,
                        to,
                    });
                }
            }
            // A queue probed by cex4queue starts as online as its card;
            // one leaving zcrypt forgets its flag (kernel.md §4).
            for d in zcrypt.and_not(&old_z).iter() {
                let apqn = Apqn::new(card.id.0, d);
                if card.online {
                    self.offline_queues.remove(&apqn);
                } else {
                    self.offline_queues.insert(apqn);
                }
            }
            for d in old_z.and_not(&zcrypt).iter() {
                self.offline_queues.remove(&Apqn::new(card.id.0, d));
            }
            self.bindings.zcrypt[a] = zcrypt;
            self.bindings.vfio[a] = vfio;
        }
        changes
    }

    // ---------------------------------------------------------------------
    // mdev life cycle
    // ---------------------------------------------------------------------

    /// A write to `mdev_supported_types/vfio_ap-passthrough/create`; the new
    /// mdev's UUID, or `None` for a write of 0 bytes.
    ///
    /// Every `write_*` function behaves as write(2) on the attribute: sysfs
    /// never passes a write of 0 bytes to the store, so it succeeds and
    /// changes nothing (kernel.md §2).
    pub fn write_create(&mut self, input: &[u8]) -> Result<Option<Uuid>, ApError> {
        Ok(match self.write(WriteTarget::Create, input)?.op {
            Some(Op::CreateMdev { uuid }) => Some(uuid),
            _ => None,
        })
    }

    /// Creates an mdev with an empty matrix.
    pub fn create_mdev(&mut self, uuid: Uuid) -> Result<(), ApError> {
        if self.mdevs.contains_key(&uuid) {
            return Err(ApError::MdevExists(uuid));
        }
        if self.available_instances() == 0 {
            return Err(ApError::NoInstancesLeft {
                errno: self.profile.instances_exhausted,
                limit: self.profile.max_instances,
            });
        }
        let mut mdev = Mdev::new(uuid);
        mdev.iommu_group = self.take_iommu_group(None);
        self.mdevs.insert(uuid, mdev);
        Ok(())
    }

    /// Marks `wanted` in use if it is free, else the smallest free number.
    fn take_iommu_group(&mut self, wanted: Option<u32>) -> u32 {
        let used = |groups: &[u64], g: u32| {
            groups
                .get(g as usize / 64)
                .is_some_and(|w| w & (1 << (g % 64)) != 0)
        };
        let group = match wanted.filter(|g| !used(&self.iommu_groups, *g)) {
            Some(g) => g,
            None => {
                let word = self.iommu_groups.iter().position(|w| *w != u64::MAX);
                let word = word.unwrap_or(self.iommu_groups.len());
                let bit = self.iommu_groups.get(word).map_or(0, |w| w.trailing_ones());
                (word * 64) as u32 + bit
            }
        };
        let word = group as usize / 64;
        if self.iommu_groups.len() <= word {
            self.iommu_groups.resize(word + 1, 0);
        }
        self.iommu_groups[word] |= 1 << (group % 64);
        group
    }

    /// A write to an mdev's `remove`: a non-zero number removes it, 0 does nothing.
    pub fn write_remove(&mut self, uuid: &Uuid, input: &[u8]) -> Result<(), ApError> {
        self.write(WriteTarget::Remove(*uuid), input).map(drop)
    }

    /// Removes an mdev; refused while a guest uses it.
    pub fn remove_mdev(&mut self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let Some(guest) = self.attached.get(uuid) {
            return Err(ApError::MdevInUse {
                errno: self.profile.remove_while_running,
                mdev: *uuid,
                guest: guest.clone(),
            });
        }
        let mdev = self.mdevs.remove(uuid).expect("checked above");
        self.iommu_groups[mdev.iommu_group as usize / 64] &= !(1 << (mdev.iommu_group % 64));
        // no trailing empty words, so equal hosts compare equal
        while self.iommu_groups.last() == Some(&0) {
            self.iommu_groups.pop();
        }
        for a in mdev.adapters.iter() {
            let row = &mut self.occupancy.by_adapter[a as usize];
            *row = row.and_not(&mdev.domains);
        }
        for d in mdev.domains.iter() {
            let column = &mut self.occupancy.by_domain[d as usize];
            *column = column.and_not(&mdev.adapters);
        }
        Ok(())
    }

    fn existing_mdev(&self, uuid: &Uuid) -> Result<&Mdev, ApError> {
        self.mdevs.get(uuid).ok_or(ApError::NoSuchMdev(*uuid))
    }

    fn parse_number(&self, target: &str, input: &[u8]) -> Result<u64, ApError> {
        parse_kstrtoul(input).map_err(|e| match e {
            NumberError::Invalid(s) => ApError::invalid(target, input, s.to_string()),
            NumberError::Overflow => ApError::NumberOutOfRange {
                target: target.to_string(),
                input: String::from_utf8_lossy(input).into_owned(),
            },
        })
    }

    // ---------------------------------------------------------------------
    // Matrix assignment (seed rules 1-3, 5; kernel.md §6)
    // ---------------------------------------------------------------------

    /// A write to `assign_adapter`, `assign_domain` or `assign_control_domain`.
    pub fn write_assign(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        input: &[u8],
    ) -> Result<Effects, ApError> {
        Ok(self.write(WriteTarget::Assign(*uuid, axis), input)?.effects)
    }

    /// A write to `unassign_adapter`, `unassign_domain` or `unassign_control_domain`.
    pub fn write_unassign(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        input: &[u8],
    ) -> Result<Effects, ApError> {
        Ok(self
            .write(WriteTarget::Unassign(*uuid, axis), input)?
            .effects)
    }

    /// Assigns an adapter, domain or control domain to an mdev.
    pub fn assign(&mut self, uuid: &Uuid, axis: MatrixAxis, id: u64) -> Result<Effects, ApError> {
        self.check_matrix_store(uuid)?;
        self.assign_checked(uuid, axis, id)
    }

    /// Unassigns an adapter, domain or control domain from an mdev.
    pub fn unassign(&mut self, uuid: &Uuid, axis: MatrixAxis, id: u64) -> Result<Effects, ApError> {
        self.check_matrix_store(uuid)?;
        self.unassign_checked(uuid, axis, id)
    }

    /// What the stores check before parsing: the mdev exists and, on kernels
    /// without hot plug, no guest uses it.
    fn check_matrix_store(&self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let RunningGuest::Refuse(errno) = self.profile.running_guest {
            if let Some(guest) = self.attached.get(uuid) {
                return Err(ApError::MatrixLockedWhileRunning {
                    errno,
                    mdev: *uuid,
                    guest: guest.clone(),
                });
            }
        }
        Ok(())
    }

    fn in_range(&self, axis: MatrixAxis, id: u64) -> Result<u8, ApError> {
        let max = self.max_id(axis);
        if id > max as u64 {
            return Err(ApError::IdAboveMaximum { axis, id, max });
        }
        Ok(id as u8)
    }

    /// The kernel's order: ENODEV, already assigned = success, EADDRNOTAVAIL,
    /// EADDRINUSE; control domains are only range-checked.
    fn assign_checked(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        id: u64,
    ) -> Result<Effects, ApError> {
        let id = self.in_range(axis, id)?;
        let mdev = &self.mdevs[uuid];
        let already = mdev.axis(axis).contains(id);
        if already && !self.profile.reassign_revalidates {
            return Ok(Effects::default());
        }
        if axis != MatrixAxis::ControlDomain {
            self.check_available(mdev, axis, id)?;
            if !already {
                self.check_not_shared(mdev, axis, id)?;
            }
        }
        if already {
            return Ok(Effects::default());
        }
        let mdev = self.mdevs.get_mut(uuid).expect("exists");
        mdev.axis_mut(axis).set(id);
        match axis {
            MatrixAxis::Adapter => {
                let domains = mdev.domains;
                self.occupancy.by_adapter[id as usize] =
                    self.occupancy.by_adapter[id as usize].or(&domains);
                for d in domains.iter() {
                    self.occupancy.by_domain[d as usize].set(id);
                }
            }
            MatrixAxis::Domain => {
                let adapters = mdev.adapters;
                self.occupancy.by_domain[id as usize] =
                    self.occupancy.by_domain[id as usize].or(&adapters);
                for a in adapters.iter() {
                    self.occupancy.by_adapter[a as usize].set(id);
                }
            }
            MatrixAxis::ControlDomain => {}
        }
        Ok(self.refresh_guest_of(uuid))
    }

    /// Unassigning what is not assigned succeeds; a running guest loses the
    /// resource at once (hot unplug).
    fn unassign_checked(
        &mut self,
        uuid: &Uuid,
        axis: MatrixAxis,
        id: u64,
    ) -> Result<Effects, ApError> {
        let id = self.in_range(axis, id)?;
        let mdev = self.mdevs.get_mut(uuid).expect("checked by caller");
        if !mdev.axis(axis).contains(id) {
            return Ok(Effects::default());
        }
        mdev.axis_mut(axis).clear(id);
        match axis {
            MatrixAxis::Adapter => {
                let domains = mdev.domains;
                let row = &mut self.occupancy.by_adapter[id as usize];
                *row = row.and_not(&domains);
                for d in domains.iter() {
                    self.occupancy.by_domain[d as usize].clear(id);
                }
            }
            MatrixAxis::Domain => {
                let adapters = mdev.adapters;
                let column = &mut self.occupancy.by_domain[id as usize];
                *column = column.and_not(&adapters);
                for a in adapters.iter() {
                    self.occupancy.by_adapter[a as usize].clear(id);
                }
            }
            MatrixAxis::ControlDomain => {}
        }
        Ok(self.refresh_guest_of(uuid))
    }

    /// The new row (adapter) or column (domain) of the matrix and the ids it
    /// crosses, as (adapters, domains) of the new cross product part.
    fn new_part(mdev: &Mdev, axis: MatrixAxis, id: u8) -> (Mask256, Mask256) {
        match axis {
            MatrixAxis::Adapter => (Mask256::single(id), mdev.domains),
            _ => (mdev.adapters, Mask256::single(id)),
        }
    }

    /// EADDRNOTAVAIL: every APQN of the new part must be available to vfio_ap.
    fn check_available(&self, mdev: &Mdev, axis: MatrixAxis, id: u8) -> Result<(), ApError> {
        let (adapters, domains) = Self::new_part(mdev, axis, id);
        match self.profile.availability {
            Availability::PerMasks => {
                // Host-owned = apmask x aqmask, so the product meets it iff
                // both sides meet their mask.
                let (a, d) = (adapters.and(&self.apmask), domains.and(&self.aqmask));
                if a.is_empty() || d.is_empty() {
                    return Ok(());
                }
                let apqns: Vec<Apqn> = cross(&a, &d).collect();
                Err(ApError::ReservedForHost {
                    mdev: mdev.uuid,
                    axis,
                    id,
                    apmask_bit: apqns[0].adapter.0,
                    aqmask_bit: apqns[0].domain.0,
                    apqns: ApqnList(apqns),
                })
            }
            Availability::BoundToVfioAp => {
                let bound = |q: &Apqn| self.queue_driver(*q) == Some(Some(Driver::VfioAp));
                let crosses_nothing = match axis {
                    MatrixAxis::Adapter => mdev.domains.is_empty(),
                    _ => mdev.adapters.is_empty(),
                };
                let detail = if crosses_nothing {
                    // Nothing to cross yet: some queue of the id must be bound.
                    let of_id: Vec<Apqn> = match axis {
                        MatrixAxis::Adapter => {
                            cross(&adapters, &self.topology.usage_domains).collect()
                        }
                        _ => cross(&self.topology.adapters(), &domains).collect(),
                    };
                    if of_id.iter().any(bound) {
                        return Ok(());
                    }
                    format!("no queue of {axis} {id:#04x} is bound to the vfio_ap driver")
                } else {
                    let unbound: Vec<Apqn> =
                        cross(&adapters, &domains).filter(|q| !bound(q)).collect();
                    if unbound.is_empty() {
                        return Ok(());
                    }
                    format!("{} is not bound to the vfio_ap driver", ApqnList(unbound))
                };
                Err(ApError::NotBoundToVfioAp {
                    mdev: mdev.uuid,
                    axis,
                    id,
                    detail,
                })
            }
        }
    }

    /// EADDRINUSE: no APQN of the new part may be in another mdev. The mdev
    /// itself holds nothing of the new part (the id was not assigned), so the
    /// occupancy tables answer for all other mdevs at once.
    fn check_not_shared(&self, mdev: &Mdev, axis: MatrixAxis, id: u8) -> Result<(), ApError> {
        let clash = match axis {
            MatrixAxis::Adapter => self.occupancy.by_adapter[id as usize].intersects(&mdev.domains),
            _ => self.occupancy.by_domain[id as usize].intersects(&mdev.adapters),
        };
        if !clash {
            return Ok(());
        }
        let (adapters, domains) = Self::new_part(mdev, axis, id);
        let other = self
            .mdevs
            .values()
            .find(|o| {
                o.uuid != mdev.uuid
                    && o.adapters.intersects(&adapters)
                    && o.domains.intersects(&domains)
            })
            .expect("occupancy names a holder");
        let apqns = cross(&adapters.and(&other.adapters), &domains.and(&other.domains)).collect();
        Err(ApError::AssignedToOtherMdev {
            mdev: mdev.uuid,
            axis,
            id,
            apqns: ApqnList(apqns),
            other: other.uuid,
            other_guest: self.attached.get(&other.uuid).cloned(),
        })
    }

    // ---------------------------------------------------------------------
    // Guests (seed rule 5; kernel.md §8)
    // ---------------------------------------------------------------------

    /// Starts a guest, optionally with an mdev (`-device vfio-ap,sysfsdev=...`).
    pub fn start_guest(
        &mut self,
        name: &str,
        mdev: Option<Uuid>,
        cpu: CpuModel,
    ) -> Result<Effects, ApError> {
        check_guest_name(name)?;
        if self.guests.contains_key(name) {
            return Err(ApError::GuestExists(name.to_string()));
        }
        if let Some(uuid) = &mdev {
            self.check_attachable(uuid)?;
        }
        self.guests.insert(
            name.to_string(),
            Guest {
                name: name.to_string(),
                mdev: None,
                cpu,
                crycb: Crycb::default(),
            },
        );
        match mdev {
            Some(uuid) => Ok(self.attach(name, uuid)),
            None => Ok(Effects::default()),
        }
    }

    /// Hot plugs an mdev into a running guest (`device_add vfio-ap`).
    pub fn attach_mdev(&mut self, guest: &str, uuid: &Uuid) -> Result<Effects, ApError> {
        let g = self.existing_guest(guest)?;
        if let Some(current) = g.mdev {
            return Err(ApError::GuestHasMdev {
                guest: guest.to_string(),
                mdev: current,
            });
        }
        self.check_attachable(uuid)?;
        Ok(self.attach(guest, *uuid))
    }

    /// Hot unplugs the guest's mdev (`device_del`).
    pub fn detach_mdev(&mut self, guest: &str) -> Result<Effects, ApError> {
        let g = self.existing_guest(guest)?;
        let Some(uuid) = g.mdev else {
            return Err(ApError::GuestHasNoMdev(guest.to_string()));
        };
        self.attached.remove(&uuid);
        let g = self.guests.get_mut(guest).expect("exists");
        g.mdev = None;
        let before = std::mem::take(&mut g.crycb);
        Ok(update_effects(guest, before, Crycb::default()))
    }

    /// Stops a guest; its mdev becomes free.
    pub fn stop_guest(&mut self, name: &str) -> Result<Effects, ApError> {
        self.existing_guest(name)?;
        let g = self.guests.remove(name).expect("exists");
        if let Some(uuid) = g.mdev {
            self.attached.remove(&uuid);
        }
        Ok(update_effects(name, g.crycb, Crycb::default()))
    }

    /// What the guest's `lszcrypt` lists, and why anything assigned is missing.
    pub fn guest_view(&self, name: &str) -> Result<GuestView, ApError> {
        let g = self.existing_guest(name)?;
        let mut notes = Vec::new();
        let mut cards = Vec::new();
        if let Some(mdev) = g.mdev.and_then(|u| self.mdevs.get(&u)) {
            for a in mdev.adapters.and_not(&g.crycb.apm).iter() {
                notes.push(self.filtered_adapter_reason(mdev, a));
            }
        }
        if !g.cpu.ap {
            notes.push("the CPU model has ap=off: the guest has no AP instructions, so it sees no AP devices".into());
        } else if !g.cpu.apft {
            notes.push("the CPU model has apft=off: the guest's AP bus cannot identify CEX4 and newer cards, so it sees none".into());
        } else {
            // Without QCI the guest's AP bus uses the limits 63 and 15
            // (kernel.md §7), so it never looks at higher ids.
            let (max_a, max_d) = if g.cpu.apqci { (255, 255) } else { (63, 15) };
            let hidden_domains = g.crycb.aqm.and_not(&Mask256::range(0, max_d));
            let hidden_adapters = g.crycb.apm.and_not(&Mask256::range(0, max_a));
            if !hidden_domains.is_empty() {
                notes.push(format!(
                    "the CPU model has apqci=off: domains above 15 are invisible to the guest ({})",
                    hidden_domains.to_hex_list()
                ));
            }
            if !hidden_adapters.is_empty() {
                notes.push(format!(
                    "the CPU model has apqci=off: adapters above 63 are invisible to the guest ({})",
                    hidden_adapters.to_hex_list()
                ));
            }
            for a in g.crycb.apm.iter().filter(|a| *a <= max_a) {
                let Some(card) = self.topology.card(AdapterId(a)) else {
                    continue;
                };
                let domains: Vec<DomainId> = g
                    .crycb
                    .aqm
                    .and(&self.topology.usage_domains)
                    .iter()
                    .filter(|d| *d <= max_d)
                    .map(DomainId)
                    .collect();
                if domains.is_empty() || !card.config {
                    continue;
                }
                cards.push(GuestCard {
                    adapter: card.id,
                    type_name: card.type_name(),
                    mode: card.mode.lszcrypt_name(),
                    domains,
                });
            }
        }
        Ok(GuestView {
            guest: g.name.clone(),
            mdev: g.mdev,
            cpu: g.cpu,
            crycb: g.crycb,
            cards,
            notes,
        })
    }

    fn filtered_adapter_reason(&self, mdev: &Mdev, a: u8) -> String {
        let card = self.topology.card(AdapterId(a));
        match card {
            None => format!("adapter {a:02x} is assigned but the host has no such card, so the guest does not get it"),
            Some(c) if !c.config => format!("adapter {a:02x} is assigned but its card is deconfigured, so the guest does not get it"),
            Some(_) => {
                let missing: Vec<String> = mdev
                    .domains
                    .and(&self.topology.usage_domains)
                    .iter()
                    .map(|d| Apqn::new(a, d))
                    .filter(|q| self.queue_driver(*q) != Some(Some(Driver::VfioAp)))
                    .map(|q| q.to_string())
                    .collect();
                format!(
                    "adapter {a:02x} is assigned but not given to the guest: queue {} is not bound to vfio_ap, \
                     and the CRYCB can only drop whole adapters",
                    missing.join(", ")
                )
            }
        }
    }

    fn existing_guest(&self, name: &str) -> Result<&Guest, ApError> {
        self.guests
            .get(name)
            .ok_or_else(|| ApError::NoSuchGuest(name.to_string()))
    }

    fn check_attachable(&self, uuid: &Uuid) -> Result<(), ApError> {
        self.existing_mdev(uuid)?;
        if let Some(other) = self.attached.get(uuid) {
            return Err(ApError::MdevAttachedElsewhere {
                mdev: *uuid,
                guest: other.clone(),
            });
        }
        Ok(())
    }

    fn attach(&mut self, guest: &str, uuid: Uuid) -> Effects {
        self.attached.insert(uuid, guest.to_string());
        self.guests.get_mut(guest).expect("exists").mdev = Some(uuid);
        self.refresh_guest_of(&uuid)
    }

    /// The masks vfio_ap would give (or gives) a guest of this mdev: its
    /// `guest_matrix` (kernel.md §6: the filter runs on every assignment,
    /// whether a guest runs or not).
    pub fn guest_matrix(&self, uuid: &Uuid) -> Option<Crycb> {
        self.mdevs.get(uuid).map(|m| self.crycb_for(m))
    }

    /// The CRYCB vfio_ap gives the guest of `mdev` (kernel.md §6 filter).
    fn crycb_for(&self, mdev: &Mdev) -> Crycb {
        match self.profile.guest_filter {
            GuestFilter::Unfiltered => Crycb {
                apm: mdev.adapters,
                aqm: mdev.domains,
                adm: mdev.control_domains,
            },
            GuestFilter::WholeAdapters => {
                let aqm = mdev.domains.and(&self.topology.usage_domains);
                let mut apm = mdev.adapters.and(&self.configured);
                for a in apm.iter() {
                    if !aqm.is_subset_of(&self.bindings.vfio[a as usize]) {
                        apm.clear(a);
                    }
                }
                Crycb {
                    apm,
                    aqm,
                    adm: mdev.control_domains.and(&self.topology.control_domains),
                }
            }
        }
    }

    fn refresh_guest_of(&mut self, uuid: &Uuid) -> Effects {
        let Some(name) = self.attached.get(uuid) else {
            return Effects::default();
        };
        let crycb = self.crycb_for(&self.mdevs[uuid]);
        let g = self.guests.get_mut(name).expect("attached guest exists");
        if g.crycb == crycb {
            return Effects::default();
        }
        let before = std::mem::replace(&mut g.crycb, crycb);
        update_effects(name, before, crycb)
    }

    /// Refreshes the guests a re-probe can affect: a CRYCB depends on the
    /// binding of its mdev's queues only, so guests whose matrix meets no
    /// rebound queue are skipped (under the seed rules that is every guest:
    /// assigned queues never go back to the host).
    fn refresh_guests_after(&mut self, rebinds: &[Rebind]) -> Vec<GuestUpdate> {
        let mut rebound = [Mask256::EMPTY; 256];
        for r in rebinds {
            let a = r.adapter.0 as usize;
            rebound[a] = rebound[a].or(&r.domains);
        }
        let mut changed = Vec::new();
        for g in self.guests.values() {
            let Some(mdev) = g.mdev.and_then(|u| self.mdevs.get(&u)) else {
                continue;
            };
            if !mdev
                .adapters
                .iter()
                .any(|a| rebound[a as usize].intersects(&mdev.domains))
            {
                continue;
            }
            let crycb = self.crycb_for(mdev);
            if crycb != g.crycb {
                changed.push((g.name.clone(), crycb));
            }
        }
        changed
            .into_iter()
            .map(|(name, crycb)| {
                let g = self.guests.get_mut(&name).expect("just seen");
                let before = std::mem::replace(&mut g.crycb, crycb);
                GuestUpdate {
                    guest: name,
                    before,
                    after: crycb,
                }
            })
            .collect()
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

/// Guest names as libvirt and QEMU accept them, kept simple: 1 to 64
/// printable characters without white space or `/`.
fn check_guest_name(name: &str) -> Result<(), ApError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(ApError::invalid(
            "guest name",
            name.as_bytes(),
            "a guest name is 1 to 64 printable ASCII characters without white space or '/'",
        ))
    }
}

// -------------------------------------------------------------------------
// Saving and loading
// -------------------------------------------------------------------------

/// The format version of [`HostState`].
pub const STATE_FORMAT: u32 = 1;

/// A guest as saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestState {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdev: Option<Uuid>,
    pub cpu: CpuModel,
}

/// Everything needed to restore a host; what can be derived is not saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    pub format: u32,
    pub profile: String,
    pub topology: Topology,
    pub apmask: Mask256,
    pub aqmask: Mask256,
    pub scans: u64,
    pub bus: BusSettings,
    #[serde(default)]
    pub mdevs: Vec<Mdev>,
    #[serde(default)]
    pub guests: Vec<GuestState>,
    /// Queues under cex4queue set offline (zcrypt `online` = 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_queues: Vec<Apqn>,
    /// A token a store may write to tell one saved state from the next
    /// (the journal of operations names the state it continues). Not part
    /// of the host; [`Host::to_state`] leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<String>,
}

/// A saved state that cannot be a host's: names what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid apmatrix host state: {0}")]
pub struct StateError(pub String);

impl Host {
    pub fn to_state(&self) -> HostState {
        HostState {
            format: STATE_FORMAT,
            profile: self.profile.name.to_string(),
            topology: self.topology.clone(),
            apmask: self.apmask,
            aqmask: self.aqmask,
            scans: self.scans,
            bus: self.bus.clone(),
            mdevs: self.mdevs.values().cloned().collect(),
            guests: self
                .guests
                .values()
                .map(|g| GuestState {
                    name: g.name.clone(),
                    mdev: g.mdev,
                    cpu: g.cpu,
                })
                .collect(),
            offline_queues: self.offline_queues.iter().copied().collect(),
            saved_as: None,
        }
    }

    /// Rebuilds a host from a saved state, checking every invariant the
    /// operations maintain, so a damaged or edited file is refused rather
    /// than producing an insecure host.
    pub fn from_state(state: HostState) -> Result<Host, StateError> {
        let err = |m: String| Err(StateError(m));
        if state.format != STATE_FORMAT {
            return err(format!(
                "state format {} is not supported (this apmatrix reads format {STATE_FORMAT})",
                state.format
            ));
        }
        let Some(profile) = crate::profile::by_name(&state.profile) else {
            return err(format!("unknown kernel profile {:?}", state.profile));
        };
        if state.mdevs.len() > profile.max_instances as usize {
            return err(format!(
                "{} mdevs exceed the limit of {}",
                state.mdevs.len(),
                profile.max_instances
            ));
        }
        let (mut host, _) = Host::boot(state.topology, profile);
        host.apmask = state.apmask;
        host.aqmask = state.aqmask;
        host.scans = state.scans;
        if let Some(d) = state
            .bus
            .default_domain
            .filter(|d| *d > host.max_id(MatrixAxis::Domain))
        {
            return err(format!(
                "ap_domain {d} is above the host's maximum domain number"
            ));
        }
        host.bus = state.bus;
        host.reprobe();
        for m in state.mdevs {
            if host.mdevs.contains_key(&m.uuid) {
                return err(format!("mdev {} appears twice", m.uuid));
            }
            for axis in MatrixAxis::ALL {
                if let Some(id) = m.axis(axis).last().filter(|id| *id > host.max_id(axis)) {
                    return err(format!(
                        "mdev {} has {axis} {id} above the host's maximum {}",
                        m.uuid,
                        host.max_id(axis)
                    ));
                }
            }
            if let Some(q) = m
                .apqns()
                .find(|q| host.occupancy.by_adapter[q.adapter.0 as usize].contains(q.domain.0))
            {
                return err(format!(
                    "APQN {q} is assigned to mdev {} and to another mdev",
                    m.uuid
                ));
            }
            if matches!(profile.mask_reclaim, MaskReclaim::Refuse(_)) {
                if let Some(q) = m.apqns().find(|q| host.host_owned(*q)) {
                    return err(format!(
                        "APQN {q} is assigned to mdev {} but the masks give it to the host",
                        m.uuid
                    ));
                }
            }
            for a in m.adapters.iter() {
                let row = &mut host.occupancy.by_adapter[a as usize];
                *row = row.or(&m.domains);
            }
            for d in m.domains.iter() {
                let column = &mut host.occupancy.by_domain[d as usize];
                *column = column.or(&m.adapters);
            }
            let mut m = m;
            // Files without group numbers (or with a duplicate) get fresh ones.
            m.iommu_group = host.take_iommu_group(Some(m.iommu_group));
            host.mdevs.insert(m.uuid, m);
        }
        for g in state.guests {
            check_guest_name(&g.name).map_err(|e| StateError(e.to_string()))?;
            if let Some(uuid) = &g.mdev {
                if !host.mdevs.contains_key(uuid) {
                    return err(format!(
                        "guest {} uses mdev {uuid}, which does not exist",
                        g.name
                    ));
                }
            }
            host.start_guest(&g.name, g.mdev, g.cpu)
                .map_err(|e| StateError(format!("guest {}: {e}", g.name)))?;
        }
        for apqn in state.offline_queues {
            if host.queue_driver(apqn) != Some(Some(Driver::Cex4Queue)) {
                return err(format!(
                    "queue {apqn} is recorded offline but is not bound to cex4queue"
                ));
            }
            host.offline_queues.insert(apqn);
        }
        Ok(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn default_host_binds_every_queue_to_zcrypt() {
        let h = Host::seed_example();
        assert_eq!(h.queues_bound_to(Driver::Cex4Queue).len(), 18);
        assert!(h.queues_bound_to(Driver::VfioAp).is_empty());
        assert_eq!(h.bindings_count(), (18, 18));
        assert_eq!(h.available_instances(), 65536);
    }

    #[test]
    fn unchanged_mask_write_does_not_reprobe() {
        let mut h = Host::seed_example();
        let e = h
            .write_mask(MaskKind::Apmask, format!("{}\n", Mask256::FULL).as_bytes())
            .unwrap();
        assert_eq!(e, Effects::default());
        let e = h.write_mask(MaskKind::Apmask, b"-5").unwrap();
        assert!(e.reprobed);
        assert_eq!(e.rebound_queues(), 6);
        let e = h.write_mask(MaskKind::Apmask, b"-5").unwrap();
        assert!(!e.reprobed, "clearing an already clear bit changes nothing");
    }

    #[test]
    fn old_cards_stay_unbound_when_not_host_owned() {
        let mut t = Topology::seed_example();
        t.cards.get_mut(&AdapterId(4)).unwrap().hwtype = 9;
        let mut h = Host::new(t, &SEED);
        h.write_mask(MaskKind::Apmask, b"-4").unwrap();
        assert_eq!(h.queue_driver(Apqn::new(4, 4)), Some(None));
        assert_eq!(h.bindings_count(), (12, 18));
        // vfio_ap cannot use it, but the masks make it available: the seed
        // rule accepts the assignment (over-provisioning).
        let m = u(1);
        h.create_mdev(m).unwrap();
        h.assign(&m, MatrixAxis::Adapter, 4).unwrap();
        h.assign(&m, MatrixAxis::Domain, 4).unwrap();
        h.start_guest("g", Some(m), CpuModel::default()).unwrap();
        let view = h.guest_view("g").unwrap();
        assert!(view.cards.is_empty());
        assert!(
            view.notes[0].contains("queue 04.0004 is not bound to vfio_ap"),
            "{:?}",
            view.notes
        );
    }

    #[test]
    fn state_round_trip_is_exact() {
        let mut h = Host::seed_example();
        h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
        h.create_mdev(u(7)).unwrap();
        h.assign(&u(7), MatrixAxis::Adapter, 5).unwrap();
        h.assign(&u(7), MatrixAxis::Domain, 4).unwrap();
        h.assign(&u(7), MatrixAxis::ControlDomain, 4).unwrap();
        h.start_guest("Guest1", Some(u(7)), CpuModel::default())
            .unwrap();
        let again = Host::from_state(h.to_state()).unwrap();
        assert_eq!(again, h);
    }

    #[test]
    fn state_validation_refuses_insecure_files() {
        let mut h = Host::seed_example();
        h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
        h.create_mdev(u(1)).unwrap();
        h.create_mdev(u(2)).unwrap();
        for m in [u(1), u(2)] {
            h.assign(&m, MatrixAxis::Adapter, 5).unwrap();
        }
        h.assign(&u(1), MatrixAxis::Domain, 4).unwrap();
        let good = h.to_state();

        let mut shared = good.clone();
        shared.mdevs[1].domains.set(4);
        assert!(Host::from_state(shared)
            .unwrap_err()
            .to_string()
            .contains("APQN 05.0004 is assigned to mdev"));

        let mut owned = good.clone();
        owned.apmask = Mask256::FULL;
        assert!(Host::from_state(owned)
            .unwrap_err()
            .to_string()
            .contains("the masks give it to the host"));

        let mut two_guests = good.clone();
        for name in ["a", "b"] {
            two_guests.guests.push(GuestState {
                name: name.into(),
                mdev: Some(u(1)),
                cpu: CpuModel::default(),
            });
        }
        assert!(Host::from_state(two_guests)
            .unwrap_err()
            .to_string()
            .contains("already used by guest a"));

        let mut ghost = good.clone();
        ghost.guests.push(GuestState {
            name: "x".into(),
            mdev: Some(u(9)),
            cpu: CpuModel::default(),
        });
        assert!(Host::from_state(ghost).is_err());

        let mut future = good.clone();
        future.format = 2;
        assert!(Host::from_state(future)
            .unwrap_err()
            .to_string()
            .contains("format 2"));

        let mut big = good;
        big.mdevs[0].adapters.set(255);
        big.topology.qci_max_adapter_id = 63;
        assert!(Host::from_state(big)
            .unwrap_err()
            .to_string()
            .contains("above the host's maximum"));
    }

    #[test]
    fn writes_of_zero_bytes_change_nothing() {
        let mut h = Host::seed_example();
        let m = h
            .write_create(b"669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4")
            .unwrap()
            .unwrap();
        let before = h.clone();
        assert_eq!(h.write_create(b""), Ok(None));
        assert_eq!(h.write_mask(MaskKind::Apmask, b""), Ok(Effects::default()));
        for axis in MatrixAxis::ALL {
            assert_eq!(h.write_assign(&m, axis, b""), Ok(Effects::default()));
            assert_eq!(h.write_unassign(&m, axis, b""), Ok(Effects::default()));
        }
        assert_eq!(h.write_remove(&m, b""), Ok(()));
        assert_eq!(h, before);
        // ...but one newline is a write: the empty absolute mask.
        h.write_mask(MaskKind::Apmask, b"\n").unwrap();
        assert_eq!(h.apmask(), Mask256::EMPTY);
    }

    #[test]
    fn default_domain_is_chosen_by_the_first_scan() {
        assert_eq!(Host::seed_example().bus().default_domain, Some(4));
        // aqmask without domain 4 at boot: the next usage domain
        let mut t = Topology::seed_example();
        t.boot.aqmask = Some("-4".into()); // relative onto the cleared mask: empty
        let mut h = Host::new(t.clone(), &SEED);
        assert_eq!(h.bus().default_domain, None);
        h.write_mask(MaskKind::Aqmask, b"+5").unwrap();
        h.rescan();
        assert_eq!(h.bus().default_domain, Some(5));
        t.boot.aqmask = Some("0x07".into()); // bits 5, 6, 7
        assert_eq!(Host::new(t, &SEED).bus().default_domain, Some(5));
    }

    #[test]
    fn guest_names_are_checked() {
        let mut h = Host::seed_example();
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert_eq!(
                h.start_guest(bad, None, CpuModel::default())
                    .unwrap_err()
                    .errno(),
                Errno::EINVAL
            );
        }
        h.start_guest("vm-1", None, CpuModel::default()).unwrap();
        assert_eq!(
            h.start_guest("vm-1", None, CpuModel::default())
                .unwrap_err()
                .errno(),
            Errno::EEXIST
        );
    }
}
