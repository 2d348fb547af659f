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
use crate::parse::{parse_boot_mask, parse_id_set, SyntaxError};

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
    pub const APSC: u32 = 0x8000_0000;
    pub const MEX4K: u32 = 0x4000_0000;
    pub const CRT4K: u32 = 0x2000_0000;
    pub const CCA: u32 = 0x1000_0000;
    pub const ACCEL: u32 = 0x0800_0000;
    pub const EP11: u32 = 0x0400_0000;
    pub const APXA: u32 = 0x0200_0000;
}

/// One crypto card (adapter) of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub id: AdapterId,
    /// The compatible hardware type: 10..=14 for CEX4..CEX8, lower for older
    /// cards that vfio_ap cannot bind.
    pub hwtype: u8,
    pub mode: CardMode,
    /// The card's `ap_functions` (facility bits of TAPQ).
    pub functions: u32,
    /// The TAPQ queue depth the card reports.
    pub depth: u8,
    pub online: bool,
    pub config: bool,
    pub chkstop: bool,
}

impl Card {
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apmask: Option<String>,
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
    pub param: &'static str,
    pub value: String,
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
    pub cards: BTreeMap<AdapterId, Card>,
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

// ---------------------------------------------------------------------------
// The file form
// ---------------------------------------------------------------------------

/// A set of ids as people write them: `5`, `"4-6,0x47"`, or `[4, "0x47"]`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum IdSetRepr {
    One(u64),
    Text(String),
    List(Vec<IdItemRepr>),
}

/// One id: `5` or `"0x05"`.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum IdItemRepr {
    Number(u64),
    Text(String),
}

/// Reads ids by hand so that a bad one is named with the rule it breaks
/// (serde's untagged enums only say "did not match any variant").
struct IdsVisitor;

impl<'de> serde::de::Visitor<'de> for IdsVisitor {
    type Value = IdSetRepr;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(
            "ids: a whole number 0-255 (5), a string (\"0x47\", \"4-6,0xab\") or a list of them",
        )
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<IdSetRepr, E> {
        Ok(IdSetRepr::One(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<IdSetRepr, E> {
        u64::try_from(n).map(IdSetRepr::One).map_err(|_| {
            E::custom(format!(
                "{n} is not an id: ids are whole numbers from 0 to 255"
            ))
        })
    }

    fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<IdSetRepr, E> {
        Err(E::custom(format!(
            "{x:?} is not an id: ids are whole numbers from 0 to 255 (write 5, not 5.0)"
        )))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<IdSetRepr, E> {
        Ok(IdSetRepr::Text(s.to_string()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdSetRepr, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<IdItemRepr>()? {
            items.push(item);
        }
        Ok(IdSetRepr::List(items))
    }
}

impl<'de> Deserialize<'de> for IdSetRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdsVisitor)
    }
}

impl<'de> Deserialize<'de> for IdItemRepr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(IdsVisitor)? {
            IdSetRepr::One(n) => Ok(IdItemRepr::Number(n)),
            IdSetRepr::Text(t) => Ok(IdItemRepr::Text(t)),
            IdSetRepr::List(_) => Err(serde::de::Error::custom(
                "a list is not one id: write a number such as 5 or a string such as \"0x05\"",
            )),
        }
    }
}

impl IdSetRepr {
    fn to_mask(&self, what: &str) -> Result<Mask256, TopologyError> {
        let text = match self {
            IdSetRepr::One(n) => n.to_string(),
            IdSetRepr::Text(t) => t.clone(),
            IdSetRepr::List(items) => items
                .iter()
                .map(|i| match i {
                    IdItemRepr::Number(n) => n.to_string(),
                    IdItemRepr::Text(t) => t.clone(),
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        parse_id_set(&text).map_err(|e| TopologyError(format!("{what}: {e}")))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    #[serde(default)]
    name: String,
    #[serde(default = "yes")]
    apxa: bool,
    #[serde(default = "max_id")]
    max_adapter_id: u64,
    #[serde(default = "max_id")]
    max_domain_id: u64,
    usage_domains: IdSetRepr,
    /// Defaults to the usage domains (on an LPAR every usage domain is also a
    /// control domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    control_domains: Option<IdSetRepr>,
    #[serde(default, skip_serializing_if = "is_default_boot")]
    boot: BootParameters,
    #[serde(default, rename = "card")]
    cards: Vec<CardFile>,
}

fn yes() -> bool {
    true
}
fn max_id() -> u64 {
    255
}
fn default_depth() -> u8 {
    8
}
fn is_default_boot(b: &BootParameters) -> bool {
    *b == BootParameters::default()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardFile {
    id: IdItemRepr,
    #[serde(rename = "type")]
    card_type: String,
    /// Overrides the typical `ap_functions` of the type, e.g. "0x92800000".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    functions: Option<String>,
    #[serde(default = "default_depth")]
    depth: u8,
    #[serde(default = "yes")]
    online: bool,
    #[serde(default = "yes")]
    config: bool,
    #[serde(default)]
    chkstop: bool,
}

impl TryFrom<TopologyFile> for Topology {
    type Error = TopologyError;

    fn try_from(f: TopologyFile) -> Result<Self, Self::Error> {
        let err = |m: String| Err(TopologyError(m));
        let qci_max_adapter_id = match u8::try_from(f.max_adapter_id) {
            Ok(v) => v,
            Err(_) => {
                return err(format!(
                    "max_adapter_id = {} is above 255, the architecture's highest adapter number",
                    f.max_adapter_id
                ))
            }
        };
        let qci_max_domain_id = match u8::try_from(f.max_domain_id) {
            Ok(v) => v,
            Err(_) => {
                return err(format!(
                    "max_domain_id = {} is above 255, the architecture's highest domain number",
                    f.max_domain_id
                ))
            }
        };
        let usage_domains = f.usage_domains.to_mask("usage_domains")?;
        let control_domains = match &f.control_domains {
            Some(c) => c.to_mask("control_domains")?,
            None => usage_domains,
        };
        let mut topology = Topology {
            name: f.name,
            apxa: f.apxa,
            qci_max_adapter_id,
            qci_max_domain_id,
            usage_domains,
            control_domains,
            cards: BTreeMap::new(),
            boot: f.boot,
        };
        let (max_a, max_d) = (topology.max_adapter_id(), topology.max_domain_id());
        let limits = if topology.apxa {
            String::new()
        } else {
            " (without APXA the limits are 63 and 15)".to_string()
        };
        if let Some(d) = usage_domains.and_not(&Mask256::range(0, max_d)).first() {
            return err(format!("usage domain {d} ({d:#x}) is above the host's maximum domain number {max_d}{limits}"));
        }
        if let Some(d) = control_domains.and_not(&Mask256::range(0, max_d)).first() {
            return err(format!("control domain {d} ({d:#x}) is above the host's maximum domain number {max_d}{limits}"));
        }
        for c in f.cards {
            let id_text = match &c.id {
                IdItemRepr::Number(n) => n.to_string(),
                IdItemRepr::Text(t) => t.clone(),
            };
            let id = parse_id_set(&id_text)
                .ok()
                .filter(|m| m.count() == 1)
                .and_then(|m| m.first())
                .ok_or_else(|| {
                    TopologyError(format!(
                        "card id {id_text:?} is not one adapter number 0-255"
                    ))
                })?;
            if id > max_a {
                return err(format!(
                    "card {id:02x} (adapter {id}) is above the host's maximum adapter number {max_a}{limits}"
                ));
            }
            let (hwtype, mode) = parse_card_type(&c.card_type)
                .map_err(|m| TopologyError(format!("card {id:02x}: {m}")))?;
            let functions = match &c.functions {
                None => mode.default_functions(),
                Some(text) => {
                    let digits = text
                        .trim()
                        .trim_start_matches("0x")
                        .trim_start_matches("0X");
                    u32::from_str_radix(digits, 16).map_err(|_| {
                        TopologyError(format!(
                            "card {id:02x}: functions = {text:?} is not a 32-bit hex number such as \"0x92800000\""
                        ))
                    })?
                }
            };
            let card = Card {
                id: AdapterId(id),
                hwtype,
                mode,
                functions,
                depth: c.depth,
                online: c.online,
                config: c.config,
                chkstop: c.chkstop,
            };
            if topology.cards.insert(AdapterId(id), card).is_some() {
                return err(format!("card {id:02x} is described twice"));
            }
        }
        Ok(topology)
    }
}

impl From<&Topology> for TopologyFile {
    fn from(t: &Topology) -> Self {
        TopologyFile {
            name: t.name.clone(),
            apxa: t.apxa,
            max_adapter_id: t.qci_max_adapter_id as u64,
            max_domain_id: t.qci_max_domain_id as u64,
            usage_domains: IdSetRepr::Text(id_text(&t.usage_domains)),
            control_domains: Some(IdSetRepr::Text(id_text(&t.control_domains))),
            boot: t.boot.clone(),
            cards: t
                .cards
                .values()
                .map(|c| CardFile {
                    id: IdItemRepr::Text(format!("{:#04x}", c.id.0)),
                    card_type: c.type_name(),
                    functions: (c.functions != c.mode.default_functions())
                        .then(|| format!("{:#010x}", c.functions)),
                    depth: c.depth,
                    online: c.online,
                    config: c.config,
                    chkstop: c.chkstop,
                })
                .collect(),
        }
    }
}

/// An id set as the file writes it: hex ranges, or "" when empty.
fn id_text(m: &Mask256) -> String {
    if m.is_empty() {
        String::new()
    } else {
        m.to_hex_list()
    }
}

/// Topologies serialise in the host-description schema.
impl Serialize for Topology {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TopologyFile::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let file = TopologyFile::deserialize(d)?;
        Topology::try_from(file).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_host_is_the_documents_host() {
        let t = Topology::seed_example();
        assert_eq!(t.cards.len(), 3);
        assert_eq!(t.queue_count(), 18);
        assert_eq!(
            t.usage_domains.iter().collect::<Vec<_>>(),
            vec![4, 5, 6, 0x47, 0xab, 0xff]
        );
        assert_eq!(t.control_domains, t.usage_domains);
        assert_eq!(t.card(AdapterId(4)).unwrap().type_name(), "CEX5P");
        assert_eq!(t.card(AdapterId(5)).unwrap().type_name(), "CEX5C");
        assert_eq!(t.card(AdapterId(6)).unwrap().type_name(), "CEX5A");
        assert_eq!(t.card(AdapterId(5)).unwrap().hwtype, 11);
        assert_eq!((t.max_adapter_id(), t.max_domain_id()), (255, 255));
    }

    #[test]
    fn round_trips_through_toml() {
        let t = Topology::seed_example();
        let again = Topology::from_toml(&t.to_toml()).unwrap();
        assert_eq!(again, t);
    }

    #[test]
    fn card_types() {
        assert_eq!(parse_card_type("CEX4A"), Ok((10, CardMode::Accelerator)));
        assert_eq!(parse_card_type("cex8p"), Ok((14, CardMode::Ep11Coproc)));
        assert_eq!(parse_card_type("CEX3C"), Ok((9, CardMode::CcaCoproc)));
        assert_eq!(card_type_name(6, CardMode::Accelerator), "CEX2A");
        assert_eq!(card_type_name(13, CardMode::CcaCoproc), "CEX7C");
        for bad in ["CEX9A", "CEX5X", "CEX2P", "CEX", "X5A", "CEX55A"] {
            assert!(parse_card_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_ids_without_apxa() {
        let mut t = Topology::seed_example();
        t.apxa = false;
        assert_eq!((t.max_adapter_id(), t.max_domain_id()), (63, 15));
        t.apxa = true;
        t.qci_max_domain_id = 0;
        assert_eq!(t.max_domain_id(), 15);
    }

    #[test]
    fn validation_names_the_bad_value() {
        let cases = [
            ("usage_domains = \"1\"\napxa = false\n[[card]]\nid = 64\ntype = \"CEX5C\"\n", "card 40 (adapter 64) is above the host's maximum adapter number 63 (without APXA"),
            ("usage_domains = \"16\"\napxa = false\n", "usage domain 16 (0x10) is above the host's maximum domain number 15"),
            ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX9C\"\n", "card 01: \"CEX9C\" is not a card type"),
            ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX5C\"\n[[card]]\nid = \"0x01\"\ntype = \"CEX5A\"\n", "card 01 is described twice"),
            ("usage_domains = \"1-\"\n", "usage_domains:"),
            ("usage_domains = \"1\"\nmax_domain_id = 300\n", "max_domain_id = 300"),
            ("usage_domains = \"1\"\nbogus = 1\n", "unknown field `bogus`"),
            ("usage_domains = \"1\"\n[[card]]\nid = 1\ntype = \"CEX5C\"\nfunctions = \"zz\"\n", "functions = \"zz\""),
            ("usage_domains = \"1\"\n[[card]]\nid = -1\ntype = \"CEX5C\"\n", "-1 is not an id: ids are whole numbers from 0 to 255"),
            ("usage_domains = \"1\"\n[[card]]\nid = 5.0\ntype = \"CEX5C\"\n", "5.0 is not an id: ids are whole numbers from 0 to 255 (write 5, not 5.0)"),
            ("usage_domains = [4, -2]\n", "-2 is not an id"),
            ("usage_domains = true\n", "expected ids: a whole number 0-255"),
            ("usage_domains = \"1\"\n[[card]]\nid = [1, 2]\ntype = \"CEX5C\"\n", "a list is not one id"),
        ];
        for (text, expect) in cases {
            let err = Topology::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}\n=> {err}");
        }
    }

    #[test]
    fn boot_parameters_give_masks_and_warnings() {
        let b = BootParameters {
            apmask: Some("0xffff".into()),
            aqmask: Some("0x40".into()),
        };
        let (ap, aq, w) = b.masks();
        assert_eq!(ap, Mask256::range(0, 15));
        assert_eq!(aq.iter().collect::<Vec<_>>(), vec![1]);
        assert!(w.is_empty());
        assert_eq!(b.cmdline(), "ap.apmask=0xffff ap.aqmask=0x40");
        let bad = BootParameters {
            apmask: Some("0xzz".into()),
            aqmask: None,
        };
        let (ap, aq, w) = bad.masks();
        assert_eq!(ap, Mask256::EMPTY);
        assert_eq!(aq, Mask256::FULL);
        assert_eq!(w.len(), 1);
        assert!(w[0]
            .to_string()
            .starts_with("ap.apmask=0xzz is not a valid mask"));
    }

    #[test]
    fn synthetic_full_scale() {
        let t = Topology::synthetic(256, 256);
        assert_eq!(t.queue_count(), 65536);
        assert_eq!(t.configured_adapters(), Mask256::FULL);
    }
}
