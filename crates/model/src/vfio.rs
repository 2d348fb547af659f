//! The vfio_ap side: mediated matrix devices, the guest's CRYCB, and the
//! kernel's printers for an mdev's attributes.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{AdapterId, Apqn, DomainId, MatrixAxis};
use crate::mask::Mask256;

/// The name of the one mdev type vfio_ap offers.
pub const MDEV_TYPE: &str = "vfio_ap-passthrough";
/// Its `name` attribute.
pub const MDEV_TYPE_NAME: &str = "VFIO AP Passthrough Device";
/// Its `device_api` attribute.
pub const MDEV_DEVICE_API: &str = "vfio-ap";
/// The parent device's name.
pub const MATRIX_DEVICE: &str = "matrix";

/// A mediated matrix device: what an administrator assigned to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mdev {
    /// Its UUID: its directory under the matrix device, and QEMU's `sysfsdev`.
    pub uuid: Uuid,
    /// APM: the assigned adapters.
    pub adapters: Mask256,
    /// AQM: the assigned (usage) domains.
    pub domains: Mask256,
    /// ADM: the assigned control domains.
    pub control_domains: Mask256,
    /// The IOMMU group the mdev core gave it (`iommu_group` link; QEMU
    /// reads the number from it). Fixed for the mdev's lifetime.
    #[serde(default)]
    pub iommu_group: u32,
}

impl Mdev {
    /// A new mdev with an empty matrix, as `create` makes it.
    pub fn new(uuid: Uuid) -> Self {
        Mdev {
            uuid,
            adapters: Mask256::EMPTY,
            domains: Mask256::EMPTY,
            control_domains: Mask256::EMPTY,
            iommu_group: 0,
        }
    }

    /// The ids assigned on one axis: APM, AQM or ADM.
    pub fn axis(&self, axis: MatrixAxis) -> &Mask256 {
        match axis {
            MatrixAxis::Adapter => &self.adapters,
            MatrixAxis::Domain => &self.domains,
            MatrixAxis::ControlDomain => &self.control_domains,
        }
    }

    pub(crate) fn axis_mut(&mut self, axis: MatrixAxis) -> &mut Mask256 {
        match axis {
            MatrixAxis::Adapter => &mut self.adapters,
            MatrixAxis::Domain => &mut self.domains,
            MatrixAxis::ControlDomain => &mut self.control_domains,
        }
    }

    /// Whether the APQN is in the matrix (adapters x domains).
    pub fn contains(&self, apqn: Apqn) -> bool {
        self.adapters.contains(apqn.adapter.0) && self.domains.contains(apqn.domain.0)
    }

    /// The APQNs of the matrix, adapter-major ascending.
    pub fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        cross(&self.adapters, &self.domains)
    }

    /// The `matrix` attribute (kernel.md §6).
    pub fn matrix_text(&self) -> String {
        matrix_text(&self.adapters, &self.domains)
    }

    /// The `control_domains` attribute: `%04x` per assigned control domain.
    pub fn control_domains_text(&self) -> String {
        let mut out = String::new();
        for d in self.control_domains.iter() {
            let _ = writeln!(out, "{d:04x}");
        }
        out
    }
}

/// The APQNs of `adapters x domains`, adapter-major ascending.
pub fn cross<'a>(adapters: &'a Mask256, domains: &'a Mask256) -> impl Iterator<Item = Apqn> + 'a {
    adapters
        .iter()
        .flat_map(move |a| domains.iter().map(move |d| Apqn::new(a, d)))
}

/// The kernel's printer for `matrix` and `guest_matrix`: with adapters and
/// domains, one `%02x.%04x` line per APQN; with only adapters `%02x.`; with
/// only domains `.%04x`; with neither, nothing.
pub fn matrix_text(adapters: &Mask256, domains: &Mask256) -> String {
    let mut out = String::new();
    match (adapters.is_empty(), domains.is_empty()) {
        (false, false) => {
            for apqn in cross(adapters, domains) {
                let _ = writeln!(out, "{apqn}");
            }
        }
        (false, true) => {
            for a in adapters.iter() {
                let _ = writeln!(out, "{a:02x}.");
            }
        }
        (true, false) => {
            for d in domains.iter() {
                let _ = writeln!(out, ".{d:04x}");
            }
        }
        (true, true) => {}
    }
    out
}

/// The masks the guest's CRYCB carries (its AP control block).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crycb {
    /// APM: the adapters the guest may use.
    pub apm: Mask256,
    /// AQM: the (usage) domains the guest may send requests to.
    pub aqm: Mask256,
    /// ADM: the control domains the guest may change.
    pub adm: Mask256,
}

impl Crycb {
    /// The APQNs the guest can address (APM x AQM), adapter-major ascending.
    pub fn apqns(&self) -> impl Iterator<Item = Apqn> + '_ {
        cross(&self.apm, &self.aqm)
    }

    /// Whether the APQN is in APM x AQM.
    pub fn contains(&self, apqn: Apqn) -> bool {
        self.apm.contains(apqn.adapter.0) && self.aqm.contains(apqn.domain.0)
    }
}

/// The CPU model features that decide whether a guest can use AP devices
/// (QEMU `-cpu host,ap=on,apqci=on,apft=on`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuModel {
    /// AP instructions. Without them the guest has no AP bus devices.
    pub ap: bool,
    /// AP Query Configuration Information. Without it domains above 15 are invisible.
    pub apqci: bool,
    /// AP Facilities Test. Without it the guest cannot identify CEX4+ cards.
    pub apft: bool,
}

impl Default for CpuModel {
    fn default() -> Self {
        CpuModel {
            ap: true,
            apqci: true,
            apft: true,
        }
    }
}

impl CpuModel {
    /// Parses QEMU-style feature settings, `ap=on,apqci=off,apft=on`; an
    /// optional leading model name (`host,`) is ignored; unnamed features
    /// stay on.
    pub fn from_features(text: &str) -> Result<CpuModel, String> {
        let mut cpu = CpuModel::default();
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                if i == 0 {
                    continue; // the CPU model's name, e.g. "host"
                }
                return Err(format!("{item:?} is not a feature setting such as apft=on"));
            };
            let on = match value {
                "on" | "true" | "yes" => true,
                "off" | "false" | "no" => false,
                _ => return Err(format!("{item:?}: the value must be on or off")),
            };
            match key {
                "ap" => cpu.ap = on,
                "apqci" => cpu.apqci = on,
                "apft" => cpu.apft = on,
                _ => {
                    return Err(format!(
                        "{key:?} is not an AP CPU feature: use ap, apqci or apft"
                    ))
                }
            }
        }
        Ok(cpu)
    }

    /// `ap=on,apqci=on,apft=on`.
    pub fn features(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "ap={},apqci={},apft={}",
            on(self.ap),
            on(self.apqci),
            on(self.apft)
        )
    }
}

/// One card as a guest's lszcrypt lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestCard {
    /// The card's adapter number.
    pub adapter: AdapterId,
    /// The type lszcrypt shows (`CEX5C`).
    pub type_name: String,
    /// The MODE column (`CCA-Coproc`).
    pub mode: &'static str,
    /// The domains of the card's queues the guest sees, ascending.
    pub domains: Vec<DomainId>,
}

/// What a running guest sees of the AP facility.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuestView {
    /// The guest's name.
    pub guest: String,
    /// The mdev it has open, if any.
    pub mdev: Option<Uuid>,
    /// Its CPU model's AP features.
    pub cpu: CpuModel,
    /// The masks vfio_ap gave it.
    pub crycb: Crycb,
    /// The cards and queues its lszcrypt lists, by adapter.
    pub cards: Vec<GuestCard>,
    /// Why assigned resources are not visible, one sentence each.
    pub notes: Vec<String>,
}

impl GuestView {
    /// The guest's `lszcrypt`, in the seed document's format.
    pub fn lszcrypt(&self) -> String {
        let mut out = String::from("CARD.DOMAIN TYPE  MODE\n------------------------------\n");
        for card in &self.cards {
            let _ = writeln!(
                out,
                "{:<11} {:<5} {}",
                card.adapter.to_string(),
                card.type_name,
                card.mode
            );
            for d in &card.domains {
                let name = Apqn {
                    adapter: card.adapter,
                    domain: *d,
                }
                .to_string();
                let _ = writeln!(out, "{name:<11} {:<5} {}", card.type_name, card.mode);
            }
        }
        out
    }

    /// The APQNs the guest can use.
    pub fn apqns(&self) -> Vec<Apqn> {
        self.cards
            .iter()
            .flat_map(|c| {
                c.domains.iter().map(move |d| Apqn {
                    adapter: c.adapter,
                    domain: *d,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_print_modes() {
        let a: Mask256 = [5u8, 6].into_iter().collect();
        let d: Mask256 = [4u8, 0xab].into_iter().collect();
        assert_eq!(matrix_text(&a, &d), "05.0004\n05.00ab\n06.0004\n06.00ab\n");
        assert_eq!(matrix_text(&a, &Mask256::EMPTY), "05.\n06.\n");
        assert_eq!(matrix_text(&Mask256::EMPTY, &d), ".0004\n.00ab\n");
        assert_eq!(matrix_text(&Mask256::EMPTY, &Mask256::EMPTY), "");
    }

    #[test]
    fn control_domains_print() {
        let mut m = Mdev::new(Uuid::nil());
        m.control_domains = [4u8, 0xab].into_iter().collect();
        assert_eq!(m.control_domains_text(), "0004\n00ab\n");
    }

    #[test]
    fn cpu_model_features() {
        assert_eq!(
            CpuModel::from_features("host,ap=on,apqci=on,apft=on"),
            Ok(CpuModel::default())
        );
        let c = CpuModel::from_features("apft=off").unwrap();
        assert!(c.ap && c.apqci && !c.apft);
        assert_eq!(c.features(), "ap=on,apqci=on,apft=off");
        assert!(CpuModel::from_features("ap=maybe").is_err());
        assert!(CpuModel::from_features("ap=on,vx=on").is_err());
        assert!(CpuModel::from_features("ap=on,apft").is_err());
    }
}
