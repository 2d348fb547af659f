//! The saved form of a host, and loading it back with every invariant
//! checked.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{check_guest_name, BusSettings, Driver, Host};
use crate::ids::{Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::profile::MaskReclaim;
use crate::topology::Topology;
use crate::vfio::{CpuModel, Mdev};

/// The format version of [`HostState`].
pub const STATE_FORMAT: u32 = 1;

/// A guest as saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestState {
    /// The guest's name.
    pub name: String,
    /// The mdev it has open, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdev: Option<Uuid>,
    /// Its CPU model's AP features.
    pub cpu: CpuModel,
    /// Its own kernel's AP bus; absent in earlier files (it then boots
    /// from the guest's configuration as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<Box<HostState>>,
}

/// Everything needed to restore a host; what can be derived is not saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostState {
    /// The writer's [`STATE_FORMAT`]; other versions are refused.
    pub format: u32,
    /// The kernel profile's name (`seed`).
    pub profile: String,
    /// The host's hardware and boot parameters.
    pub topology: Topology,
    /// The current apmask.
    pub apmask: Mask256,
    /// The current aqmask.
    pub aqmask: Mask256,
    /// Completed bus scans (`/sys/bus/ap/scans`).
    pub scans: u64,
    /// The other `/sys/bus/ap` settings.
    pub bus: BusSettings,
    /// Every mdev with its matrix.
    #[serde(default)]
    pub mdevs: Vec<Mdev>,
    /// The running guests.
    #[serde(default)]
    pub guests: Vec<GuestState>,
    /// Queues under cex4queue set offline (zcrypt `online` = 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_queues: Vec<Apqn>,
    /// The LPAR's configuration since an HMC change the bus has not
    /// scanned yet; absent when the bus is up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lpar: Option<Topology>,
    /// The form earlier versions saved a pending usage-domain change in;
    /// read, never written.
    #[serde(default, skip_serializing)]
    pub lpar_usage_domains: Option<Mask256>,
    /// A token a store may write to tell one saved state from the next
    /// (the journal of operations names the state it continues). Not part
    /// of the host; [`Host::to_state`] leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_as: Option<String>,
}

/// A guest kernel's bus: a host without vfio_ap, so without mdevs or guests.
fn guest_bus_from_state(state: HostState) -> Result<Host, StateError> {
    if !state.mdevs.is_empty() || !state.guests.is_empty() {
        return Err(StateError(
            "a guest's kernel has no vfio_ap, so no mdevs and no guests of its own".into(),
        ));
    }
    let mut bus = Host::from_state(state)?;
    bus.vfio_ap = false;
    bus.reprobe();
    Ok(bus)
}

/// A saved state that cannot be a host's: names what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid apmatrix host state: {0}")]
pub struct StateError(pub String);

impl Host {
    /// The saved form of this host; [`Host::from_state`] restores it.
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
                    bus: Some(Box::new(g.bus.to_state())),
                })
                .collect(),
            offline_queues: self.offline_queues.iter().copied().collect(),
            lpar: self.lpar.as_deref().cloned(),
            lpar_usage_domains: None,
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
            if let Some(q) = m.apqns().find(|q| host.occupancy.is_held(*q)) {
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
            host.occupancy.take(m.uuid, &m.adapters, &m.domains);
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
            if let Some(bus) = g.bus {
                let bus = guest_bus_from_state(*bus)
                    .map_err(|e| StateError(format!("guest {}'s AP bus: {}", g.name, e.0)))?;
                host.guests.get_mut(&g.name).expect("started").bus = std::sync::Arc::new(bus);
            }
        }
        let mut lpar = state.lpar;
        if let Some(usage) = state.lpar_usage_domains {
            let l = lpar.get_or_insert_with(|| host.topology.clone());
            l.usage_domains = usage;
        }
        if let Some(lpar) = lpar {
            let t = &host.topology;
            if (lpar.apxa, lpar.max_adapter_id(), lpar.max_domain_id())
                != (t.apxa, t.max_adapter_id(), t.max_domain_id())
            {
                return err(
                    "the LPAR's pending configuration has other maximum ids than the host".into(),
                );
            }
            if let Some(d) = lpar.usage_domains.last().filter(|d| *d > t.max_domain_id()) {
                return err(format!(
                    "LPAR usage domain {d} is above the host's maximum domain number"
                ));
            }
            host.lpar = Some(Box::new(lpar));
            host.forget_lpar_if_seen();
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
