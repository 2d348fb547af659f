//! The host description file (TOML): ids as people write them, checked
//! with the rule each breaks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;
use crate::ids::AdapterId;
use crate::mask::Mask256;
use crate::parse::parse_id_set;

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
pub(super) struct TopologyFile {
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
    super::DEFAULT_DEPTH
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
