//! The LPAR's AP configuration as the hardware has it, and the bus scan
//! that shows the host what changed (kernel.md §9).
//!
//! On the HMC an adapter or a usage domain is added to or removed from the
//! LPAR, or a card is configured or deconfigured: the machine's
//! configuration (QCI) changes at once, but the bus, its devices and
//! vfio_ap only see it at the next scan (every `config_time` seconds, on a
//! write to `scans`, or `apmatrix host scan`). Until then the host keeps the
//! configuration of its last scan; `lpar` holds the newer one.

use super::{Effects, GuestUpdate, Host, Rebind};
use crate::error::ApError;
use crate::ids::{AdapterId, Apqn, MatrixAxis};
use crate::mask::Mask256;
use crate::topology::{card_type_name, parse_card_type, Card, Topology};

impl Host {
    /// Completed bus scans (`/sys/bus/ap/scans`).
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// A bus scan ([`Host::scan`]); returns the scan count.
    pub fn rescan(&mut self) -> u64 {
        self.scan();
        self.scans
    }

    /// A bus scan: the kernel re-reads the configuration (QCI); devices
    /// appear for adapters and usage domains the LPAR gained and vanish for
    /// those it lost, cards' `config` flags are updated in place, new
    /// queues are bound per the masks, a default domain is picked if there
    /// is none yet, and vfio_ap re-filters every running guest's matrix: a
    /// vanished adapter or domain leaves the guest while its mdev's matrix
    /// keeps it, and comes back when the LPAR has it again (kernel.md §6
    /// "Queue removed from host"). Reports what moved.
    pub fn scan(&mut self) -> Effects {
        self.scans += 1;
        let mut effects = Effects::default();
        if let Some(lpar) = self.lpar.take() {
            effects.rebinds = self.adopt(*lpar);
            effects.guest_updates = self.refresh_every_guest();
            effects.reprobed = !effects.rebinds.is_empty();
        }
        if self.bus.default_domain.is_none() {
            self.bus.default_domain = self.select_default_domain();
        }
        effects
    }

    /// The LPAR's configuration as the hardware has it: the host's own
    /// topology unless an HMC change waits for the next scan.
    pub fn lpar(&self) -> &Topology {
        self.lpar.as_deref().unwrap_or(&self.topology)
    }

    /// Whether the hardware's configuration differs from what the bus saw
    /// at its last scan.
    pub fn lpar_changed(&self) -> bool {
        self.lpar.is_some()
    }

    /// The LPAR gains or loses a usage domain. ENODEV above the host's
    /// maximum domain number.
    pub fn set_lpar_domain(&mut self, domain: u8, present: bool) -> Result<(), ApError> {
        self.id_in_range(MatrixAxis::Domain, domain.into())?;
        self.edit_lpar(|lpar| {
            if present {
                lpar.usage_domains.set(domain);
            } else {
                lpar.usage_domains.clear(domain);
            }
            Ok(())
        })
    }

    /// The LPAR gains an adapter with a card of this type, configured.
    /// ENODEV above the host's maximum adapter number; refused if the LPAR
    /// has that adapter already.
    pub fn add_lpar_adapter(&mut self, card: Card) -> Result<(), ApError> {
        let id = self.id_in_range(MatrixAxis::Adapter, card.id.0.into())?;
        if parse_card_type(&card_type_name(card.hwtype, card.mode)) != Ok((card.hwtype, card.mode))
        {
            return Err(ApError::InvalidInput {
                target: "LPAR adapter".into(),
                input: format!("hwtype {}", card.hwtype),
                rule: "a card's hwtype is 6 to 9 (CEX2A..CEX3C) or 10 to 14 (CEX4..CEX8)".into(),
            });
        }
        self.edit_lpar(|lpar| {
            if lpar.cards.contains_key(&card.id) {
                return Err(ApError::InvalidInput {
                    target: "LPAR adapter".into(),
                    input: format!("{id:02x}"),
                    rule: format!(
                        "an adapter is added once: the LPAR has adapter {id:02x} already \
                         (remove it first to change its card)"
                    ),
                });
            }
            lpar.cards.insert(card.id, card);
            Ok(())
        })
    }

    /// The LPAR loses an adapter.
    pub fn remove_lpar_adapter(&mut self, adapter: AdapterId) -> Result<(), ApError> {
        self.edit_lpar(|lpar| {
            lpar.cards
                .remove(&adapter)
                .map(drop)
                .ok_or_else(|| not_in_lpar(adapter))
        })
    }

    /// A card is configured or deconfigured on the HMC.
    pub fn set_lpar_card_config(
        &mut self,
        adapter: AdapterId,
        configured: bool,
    ) -> Result<(), ApError> {
        self.edit_lpar(|lpar| {
            let card = lpar
                .cards
                .get_mut(&adapter)
                .ok_or_else(|| not_in_lpar(adapter))?;
            card.config = configured;
            Ok(())
        })
    }

    /// A change made from this host (a write to a card's `config`) that
    /// the hardware already has: a newer configuration waiting for the
    /// scan must not take it back.
    pub(super) fn lpar_follows_card_config(&mut self, adapter: AdapterId, configured: bool) {
        if let Some(card) = self.lpar.as_mut().and_then(|l| l.cards.get_mut(&adapter)) {
            card.config = configured;
        }
        self.forget_lpar_if_seen();
    }

    /// The configuration the hardware has now, as a whole (a guest's, which
    /// follows its CRYCB): seen at the next scan.
    pub(super) fn offer_configuration(&mut self, configuration: Topology) {
        self.lpar = Some(Box::new(configuration));
        self.forget_lpar_if_seen();
    }

    /// Changes the hardware's configuration: all or nothing.
    fn edit_lpar(
        &mut self,
        edit: impl FnOnce(&mut Topology) -> Result<(), ApError>,
    ) -> Result<(), ApError> {
        let mut lpar = self.lpar().clone();
        edit(&mut lpar)?;
        self.lpar = Some(Box::new(lpar));
        self.forget_lpar_if_seen();
        Ok(())
    }

    /// A configuration the bus would find unchanged is no change: undone
    /// before a scan saw it.
    pub(super) fn forget_lpar_if_seen(&mut self) {
        if self
            .lpar
            .as_deref()
            .is_some_and(|l| same_qci(l, &self.topology))
        {
            self.lpar = None;
        }
    }

    /// Takes the scanned configuration: cards the LPAR lost go with their
    /// queues, new ones come, flags and usage domains follow; then every
    /// queue is bound as the masks say.
    fn adopt(&mut self, lpar: Topology) -> Vec<Rebind> {
        let replaced: Vec<AdapterId> = (self.topology.cards.values())
            .filter(|c| {
                lpar.cards
                    .get(&c.id)
                    .is_none_or(|n| (n.hwtype, n.mode) != (c.hwtype, c.mode))
            })
            .map(|c| c.id)
            .collect();
        let mut rebinds = Vec::new();
        for adapter in replaced {
            rebinds.extend(self.drop_card(adapter));
        }
        for (id, card) in lpar.cards {
            self.topology
                .cards
                .entry(id)
                .and_modify(|c| c.config = card.config)
                .or_insert(card);
        }
        self.topology.usage_domains = lpar.usage_domains;
        self.topology.control_domains = lpar.control_domains;
        self.configured = self.topology.configured_adapters();
        rebinds.extend(self.reprobe());
        rebinds
    }

    /// A card's devices vanish: its queues leave their drivers.
    fn drop_card(&mut self, adapter: AdapterId) -> Vec<Rebind> {
        self.topology.cards.remove(&adapter);
        let a = adapter.0 as usize;
        let (z, v) = (self.bindings.zcrypt[a], self.bindings.vfio[a]);
        self.bindings.set(a, Mask256::EMPTY, Mask256::EMPTY);
        let of_card = Apqn::new(adapter.0, 0)..=Apqn::new(adapter.0, 255);
        let offline: Vec<Apqn> = self.offline_queues.range(of_card).copied().collect();
        for q in offline {
            self.offline_queues.remove(&q);
        }
        [(super::Driver::Cex4Queue, z), (super::Driver::VfioAp, v)]
            .into_iter()
            .filter(|(_, domains)| !domains.is_empty())
            .map(|(from, domains)| Rebind {
                adapter,
                domains,
                from: Some(from),
                to: None,
            })
            .collect()
    }

    /// vfio_ap re-filters every running guest after a configuration change.
    fn refresh_every_guest(&mut self) -> Vec<GuestUpdate> {
        let attached: Vec<_> = (self.guests.values()).filter_map(|g| g.mdev).collect();
        attached
            .iter()
            .flat_map(|uuid| self.refresh_guest_of(uuid).guest_updates)
            .collect()
    }
}

/// Two configurations a scan cannot tell apart.
fn same_qci(a: &Topology, b: &Topology) -> bool {
    let cards = |t: &Topology| {
        t.cards
            .values()
            .map(|c| (c.id, c.hwtype, c.mode, c.config))
            .collect::<Vec<_>>()
    };
    a.usage_domains == b.usage_domains
        && a.control_domains == b.control_domains
        && cards(a) == cards(b)
}

fn not_in_lpar(adapter: AdapterId) -> ApError {
    ApError::DeviceUnavailable {
        device: format!("adapter {:02x}", adapter.0),
        reason: "the LPAR has no such adapter".into(),
    }
}
