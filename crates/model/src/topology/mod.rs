//! The hardware an emulated host has: its crypto cards, its usage and control
//! domains, its maximum ids, and the kernel parameters it booted with.
//!
//! Written by people as TOML (see `docs/host-description.md`); validated on
//! load, so everything downstream can rely on ids within the host's range.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::AdapterId;
use crate::mask::Mask256;
use crate::parse::{parse_boot_mask, SyntaxError};

mod file;

use file::TopologyFile;

/// What a card's firmware is configured to be (kernel.md §4: the type letter).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CardMode {
    /// `A`: clear-key accelerator.
    Accelerator,
    /// `C`: CCA coprocessor.
    CcaCoproc,
    /// `P`: EP11 coprocessor.
    Ep11Coproc,
}

impl CardMode {
    /// The last letter of the type string: `A`, `C` or `P` (`CEX5C`).
    pub fn letter(self) -> char {
        match self {
            CardMode::Accelerator => 'A',
            CardMode::CcaCoproc => 'C',
            CardMode::Ep11Coproc => 'P',
        }
    }

    /// The MODE column of lszcrypt.
    pub fn lszcrypt_name(self) -> &'static str {
        match self {
            CardMode::Accelerator => "Accelerator",
            CardMode::CcaCoproc => "CCA-Coproc",
            CardMode::Ep11Coproc => "EP11-Coproc",
        }
    }

    /// The `MODE=` value of the kernel's uevents.
    pub fn uevent_name(self) -> &'static str {
        match self {
            CardMode::Accelerator => "accel",
            CardMode::CcaCoproc => "cca",
            CardMode::Ep11Coproc => "ep11",
        }
    }

    /// Typical `ap_functions` of a CEX4+ card in this mode (kernel.md §4 bit
    /// names): APSC, the mode's function bit, APXA, and for coprocessors the
    /// 0x00800000 bit lszcrypt shows as `F`; accelerators add MEX4K and CRT4K.
    pub fn default_functions(self) -> u32 {
        match self {
            CardMode::Accelerator => 0xEA00_0000,
            CardMode::CcaCoproc => 0x9280_0000,
            CardMode::Ep11Coproc => 0x8680_0000,
        }
    }
}

/// `ap_functions` bits (kernel.md §4), most significant first.
pub mod functions {
    /// AP special-command facility.
    pub const APSC: u32 = 0x8000_0000;
    /// Modular exponentiation with 4096-bit keys.
    pub const MEX4K: u32 = 0x4000_0000;
    /// Chinese-remainder-theorem operations with 4096-bit keys.
    pub const CRT4K: u32 = 0x2000_0000;
    /// `D`: the card runs as a CCA coprocessor.
    pub const CCA: u32 = 0x1000_0000;
    /// `A`: the card runs as an accelerator.
    pub const ACCEL: u32 = 0x0800_0000;
    /// `X`: the card runs as an EP11 coprocessor.
    pub const EP11: u32 = 0x0400_0000;
    /// AP extended addressing: adapter and domain numbers above 63 and 15
    /// (kernel.md §7).
    pub const APXA: u32 = 0x0200_0000;
}

/// The TAPQ queue depth a card has unless its description says otherwise.
pub const DEFAULT_DEPTH: u8 = 8;

/// One crypto card (adapter) of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    /// The adapter number (`cardXX`).
    pub id: AdapterId,
    /// The compatible hardware type: 10..=14 for CEX4..CEX8, lower for older
    /// cards that vfio_ap cannot bind.
    pub hwtype: u8,
    /// What its firmware runs as (the type letter).
    pub mode: CardMode,
    /// The card's `ap_functions` (facility bits of TAPQ).
    pub functions: u32,
    /// The TAPQ queue depth the card reports.
    pub depth: u8,
    /// zcrypt's `online` setting of the card.
    pub online: bool,
    /// `config`: the card is in the host's configuration (QCI APM).
    pub config: bool,
    /// `chkstop`: the card is checkstopped.
    pub chkstop: bool,
}

impl Card {
    /// A card of this type as the LPAR gets it on the HMC: configured,
    /// online, not check-stopped, its mode's usual functions, queue depth 8.
    pub fn new(id: AdapterId, hwtype: u8, mode: CardMode) -> Card {
        Card {
            id,
            hwtype,
            mode,
            functions: mode.default_functions(),
            depth: DEFAULT_DEPTH,
            online: true,
            config: true,
            chkstop: false,
        }
    }

    /// The kernel's type string: `CEX5C`, `CEX8P`, ...
    pub fn type_name(&self) -> String {
        card_type_name(self.hwtype, self.mode)
    }
}

/// `CEX<generation><letter>`; hwtype 10 is CEX4, 14 is CEX8; the older
/// types 6..9 are CEX2A, CEX2C, CEX3A, CEX3C.
pub fn card_type_name(hwtype: u8, mode: CardMode) -> String {
    let generation = match hwtype {
        6 | 7 => 2,
        8 | 9 => 3,
        t => t.saturating_sub(6),
    };
    format!("CEX{generation}{}", mode.letter())
}

/// Parses `CEX5C` into (hwtype, mode).
pub fn parse_card_type(text: &str) -> Result<(u8, CardMode), String> {
    let rule = || {
        format!(
            "{text:?} is not a card type: expected CEX2A, CEX2C, CEX3A, CEX3C, or CEX4 to CEX8 followed by A (Accelerator), C (CCA-Coproc) or P (EP11-Coproc)"
        )
    };
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix("CEX").ok_or_else(rule)?;
    let mut chars = rest.chars();
    let (Some(generation), Some(letter), None) = (chars.next(), chars.next(), chars.next()) else {
        return Err(rule());
    };
    let mode = match letter {
        'A' => CardMode::Accelerator,
        'C' => CardMode::CcaCoproc,
        'P' => CardMode::Ep11Coproc,
        _ => return Err(rule()),
    };
    let hwtype = match (generation, mode) {
        ('2', CardMode::Accelerator) => 6,
        ('2', CardMode::CcaCoproc) => 7,
        ('3', CardMode::Accelerator) => 8,
        ('3', CardMode::CcaCoproc) => 9,
        (g @ '4'..='8', _) => g as u8 - b'0' + 6,
        _ => return Err(rule()),
    };
    Ok((hwtype, mode))
}

/// Kernel parameters the host booted with (`ap.apmask=`, `ap.aqmask=`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootParameters {
    /// The `ap.apmask=` value as written, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apmask: Option<String>,
    /// The `ap.aqmask=` value as written, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aqmask: Option<String>,
}

impl BootParameters {
    /// The masks at IPL: all ones by default; a given parameter clears its
    /// mask and parses onto it; a bad value leaves that mask empty, as the
    /// kernel does (kernel.md §2). Parse errors are returned as warnings.
    pub fn masks(&self) -> (Mask256, Mask256, Vec<BootWarning>) {
        let mut warnings = Vec::new();
        let mut one = |param: &'static str, value: &Option<String>| match value {
            None => Mask256::FULL,
            Some(v) => parse_boot_mask(v).unwrap_or_else(|error| {
                warnings.push(BootWarning {
                    param,
                    value: v.clone(),
                    error,
                });
                Mask256::EMPTY
            }),
        };
        let apmask = one("ap.apmask", &self.apmask);
        let aqmask = one("ap.aqmask", &self.aqmask);
        (apmask, aqmask, warnings)
    }

    /// The kernel command line fragment, e.g. `ap.apmask=0xffff ap.aqmask=0x40`.
    pub fn cmdline(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.apmask {
            parts.push(format!("ap.apmask={v}"));
        }
        if let Some(v) = &self.aqmask {
            parts.push(format!("ap.aqmask={v}"));
        }
        parts.join(" ")
    }
}

/// A boot parameter the kernel would silently ignore (leaving an empty mask).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootWarning {
    /// `ap.apmask` or `ap.aqmask`.
    pub param: &'static str,
    /// The value as written.
    pub value: String,
    /// Why the mask parser refused it.
    pub error: SyntaxError,
}

impl fmt::Display for BootWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} is not a valid mask ({}); the kernel ignores it and the mask stays empty",
            self.param, self.value, self.error
        )
    }
}

/// The host's crypto hardware as the LPAR sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// A name for people (`seed example`).
    pub name: String,
    /// Whether the machine has the AP extended addressing facility; without
    /// it the maximum ids are 63 and 15 whatever QCI reports (kernel.md §7).
    pub apxa: bool,
    /// QCI's highest adapter number (`na`).
    pub qci_max_adapter_id: u8,
    /// QCI's highest domain number (`nd`).
    pub qci_max_domain_id: u8,
    /// The LPAR's usage domains (QCI AQM): every card has a queue for each.
    pub usage_domains: Mask256,
    /// The LPAR's control domains (QCI ADM).
    pub control_domains: Mask256,
    /// The cards, configured or not, by adapter.
    pub cards: BTreeMap<AdapterId, Card>,
    /// The kernel parameters it booted with.
    pub boot: BootParameters,
}

impl Topology {
    /// `ap_max_adapter_id`: QCI's `na` with APXA (and `na` non-zero), else 63.
    pub fn max_adapter_id(&self) -> u8 {
        if self.apxa && self.qci_max_adapter_id != 0 {
            self.qci_max_adapter_id
        } else {
            63
        }
    }

    /// `ap_max_domain_id`: QCI's `nd` with APXA (and `nd` non-zero), else 15.
    pub fn max_domain_id(&self) -> u8 {
        if self.apxa && self.qci_max_domain_id != 0 {
            self.qci_max_domain_id
        } else {
            15
        }
    }

    /// Adapters with a card, configured or not (QCI APM is the configured ones).
    pub fn adapters(&self) -> Mask256 {
        self.cards.keys().map(|a| a.0).collect()
    }

    /// Adapters whose card is configured: the host's QCI APM.
    pub fn configured_adapters(&self) -> Mask256 {
        self.cards
            .values()
            .filter(|c| c.config)
            .map(|c| c.id.0)
            .collect()
    }

    /// The card of adapter `id`, if the host has one.
    pub fn card(&self, id: AdapterId) -> Option<&Card> {
        self.cards.get(&id)
    }

    /// Total number of queue devices (cards x usage domains).
    pub fn queue_count(&self) -> usize {
        self.cards.len() * self.usage_domains.count() as usize
    }

    /// Parses and validates a host description.
    pub fn from_toml(text: &str) -> Result<Topology, TopologyError> {
        let file: TopologyFile = toml::from_str(text)
            .map_err(|e| TopologyError(e.to_string().trim_end().to_string()))?;
        Topology::try_from(file)
    }

    /// The host description as TOML in the documented schema.
    pub fn to_toml(&self) -> String {
        toml::to_string(&TopologyFile::from(self)).expect("topology serialises")
    }

    /// The seed document's example host: cards 04, 05, 06 (CEX5P, CEX5C,
    /// CEX5A) and usage domains 4, 5, 6, 0x47, 0xab, 0xff (18 queues).
    pub fn seed_example() -> Topology {
        Topology::from_toml(SEED_HOST_TOML).expect("embedded seed host is valid")
    }

    /// A synthetic host of `adapters` CEX8 cards (CCA) x `domains` usage
    /// domains, ids from 0, with the architecture's maximum ids.
    pub fn synthetic(adapters: u16, domains: u16) -> Topology {
        assert!(adapters <= 256 && domains <= 256);
        let mut cards = BTreeMap::new();
        for a in 0..adapters {
            let id = AdapterId(a as u8);
            cards.insert(
                id,
                Card {
                    id,
                    hwtype: 14,
                    mode: CardMode::CcaCoproc,
                    functions: CardMode::CcaCoproc.default_functions(),
                    depth: 8,
                    online: true,
                    config: true,
                    chkstop: false,
                },
            );
        }
        let usage = if domains == 0 {
            Mask256::EMPTY
        } else {
            Mask256::range(0, (domains - 1) as u8)
        };
        Topology {
            name: format!("synthetic {adapters}x{domains}"),
            apxa: true,
            qci_max_adapter_id: 255,
            qci_max_domain_id: 255,
            usage_domains: usage,
            control_domains: usage,
            cards,
            boot: BootParameters::default(),
        }
    }
}

/// The seed document's example host, as a host description.
pub const SEED_HOST_TOML: &str = r#"# The example host of the vfio_ap "dynamic configuration" documentation.
# The document names card 05 CEX5C and card 06 CEX5A; it does not name
# card 04, which apmatrix makes an EP11 coprocessor so all three modes appear.
name = "seed example"
apxa = true
max_adapter_id = 255
max_domain_id = 255
usage_domains = "0x04-0x06,0x47,0xab,0xff"
control_domains = "0x04-0x06,0x47,0xab,0xff"

[[card]]
id = 0x04
type = "CEX5P"

[[card]]
id = 0x05
type = "CEX5C"

[[card]]
id = 0x06
type = "CEX5A"
"#;

/// A host description that is not valid, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid host description: {0}")]
pub struct TopologyError(pub String);

#[cfg(test)]
mod tests;
