//! `apmatrix place DEMANDS`: from what each guest needs (usage domains of
//! a card mode and generation, on some number of adapters, pins, whether
//! it shares adapters) to a configuration `check` accepts, on the host's
//! free APQNs (its masks and mdevs left as they are). docs/place.md.

pub mod demands;
mod explain;
mod solver;

use apmatrix_model::{Apqn, Driver, Mask256};
use serde::Serialize;

pub use demands::{ControlDomains, Demand, DemandsFile};
pub use solver::{Field, Placed, Slot, Strategy};

use crate::{id_list, toml_string, Observed};

/// The result: each demand's place or the reason it has none.
#[derive(Clone, Debug)]
pub struct Placement {
    pub demands: Vec<Demand>,
    pub placed: Vec<Option<Placed>>,
    /// The reason per demand that was not met (same index; `None` if met).
    pub reasons: Vec<Option<String>>,
    /// Search nodes used.
    pub nodes: u64,
}

/// What the host offers to new mdevs: the cards vfio_ap drives (in the
/// LPAR's configuration, not check-stopped) and on each the domains bound
/// to vfio_ap that no mdev has.
pub fn field_of(seen: &Observed) -> Field {
    let host = crate::predict::model_of(seen);
    let t = host.topology();
    let mut cards = Vec::new();
    let mut free = Vec::new();
    for c in t.cards.values() {
        if !c.config || c.chkstop || !host.profile().vfio_ap_drives(c.hwtype) {
            continue;
        }
        let domains: Mask256 = t
            .usage_domains
            .iter()
            .filter(|&d| {
                let s = host.apqn_state(Apqn::new(c.id.0, d));
                s.exists && s.driver == Some(Driver::VfioAp) && s.mdev.is_none()
            })
            .collect();
        cards.push(Slot {
            adapter: c.id.0,
            mode: c.mode,
            generation: c.hwtype.saturating_sub(6),
        });
        free.push(domains);
    }
    let used = host
        .mdevs()
        .fold(Mask256::EMPTY, |acc, m| acc.or(&m.adapters));
    Field { cards, free, used }
}

/// Places the demands on the host.
pub fn place(seen: &Observed, demands: Vec<Demand>, strategy: Strategy) -> Placement {
    let field = field_of(seen);
    let existing: Vec<uuid::Uuid> = seen.mdevs.keys().copied().collect();
    // A demand whose mdev exists already is not placed again.
    let (fresh, taken): (Vec<usize>, Vec<usize>) =
        (0..demands.len()).partition(|&i| !existing.contains(&demands[i].uuid));
    let to_place: Vec<Demand> = fresh.iter().map(|&i| demands[i].clone()).collect();
    let (got, nodes) = solver::solve(&field, &to_place, strategy);
    let mut placed = vec![None; demands.len()];
    for (k, &i) in fresh.iter().enumerate() {
        placed[i] = got[k].clone();
    }
    let mut reasons = vec![None; demands.len()];
    for &i in &taken {
        reasons[i] = Some(format!(
            "{}: its mdev {} exists already (place adds mdevs; give the guest another uuid or remove that mdev)",
            demands[i].words(),
            demands[i].uuid
        ));
    }
    for &i in &fresh {
        if placed[i].is_none() {
            reasons[i] = Some(explain::why_not(&field, &demands, &placed, i));
        }
    }
    Placement {
        demands,
        placed,
        reasons,
        nodes,
    }
}

/// One placed guest, for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct PlacedJson {
    pub guest: String,
    pub uuid: uuid::Uuid,
    pub adapters: String,
    pub domains: String,
    pub control_domains: String,
}

/// One unmet demand, for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct UnmetJson {
    pub guest: String,
    pub reason: String,
}

impl Placement {
    /// How many demands were met.
    pub fn met(&self) -> usize {
        self.placed.iter().filter(|p| p.is_some()).count()
    }

    fn control_domains(d: &Demand, p: &Placed) -> Mask256 {
        match &d.control_domains {
            ControlDomains::Usage => p.domains,
            ControlDomains::Ids(m) => *m,
        }
    }

    /// The placed guests.
    pub fn placed_json(&self) -> Vec<PlacedJson> {
        self.demands
            .iter()
            .zip(&self.placed)
            .filter_map(|(d, p)| {
                let p = p.as_ref()?;
                Some(PlacedJson {
                    guest: d.name.clone(),
                    uuid: d.uuid,
                    adapters: p.adapters.to_hex_list(),
                    domains: p.domains.to_hex_list(),
                    control_domains: Self::control_domains(d, p).to_hex_list(),
                })
            })
            .collect()
    }

    /// The unmet demands with their reasons.
    pub fn unmet_json(&self) -> Vec<UnmetJson> {
        self.demands
            .iter()
            .zip(&self.reasons)
            .filter_map(|(d, r)| {
                Some(UnmetJson {
                    guest: d.name.clone(),
                    reason: r.clone()?,
                })
            })
            .collect()
    }

    /// The configuration (docs/configuration.md): an `[[mdev]]` per placed
    /// guest; no `[masks]`, since only APQNs free for vfio_ap were used.
    pub fn config_toml(&self) -> String {
        let mut out = format!(
            "# apmatrix place: {} of {} guests placed on the host's free APQNs; its masks and mdevs stay as they are\n",
            self.met(),
            self.demands.len()
        );
        for u in self.unmet_json() {
            out.push_str(&format!("# not placed: {}\n", u.reason));
        }
        for (d, p) in self.demands.iter().zip(&self.placed) {
            let Some(p) = p else { continue };
            out.push_str(&format!(
                "\n[[mdev]]\nname = {}\nuuid = \"{}\"\nadapters = \"{}\"\ndomains = \"{}\"\ncontrol_domains = \"{}\"\nguest = {}\nautostart = {}\n",
                toml_string(&d.name),
                d.uuid,
                id_list(&p.adapters),
                id_list(&p.domains),
                id_list(&Self::control_domains(d, p)),
                toml_string(&d.name),
                d.autostart
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
