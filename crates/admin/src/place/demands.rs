//! The demands file of `apmatrix place` (TOML; docs/place.md): what each
//! guest needs in the words admins use, checked into [`Demand`]s.

use apmatrix_model::parse::parse_id_set;
use apmatrix_model::topology::CardMode;
use apmatrix_model::{Apqn, Mask256};
use serde::Deserialize;
use uuid::Uuid;

use crate::{ConfigError, NAME_NAMESPACE};

/// The file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandsFile {
    /// Values every guest has unless it says otherwise.
    #[serde(default)]
    pub defaults: GuestFile,
    #[serde(default, rename = "guest")]
    pub guests: Vec<GuestFile>,
}

/// One `[[guest]]` (or `[defaults]`) as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestFile {
    pub name: Option<String>,
    pub uuid: Option<Uuid>,
    /// How many usage domains (APQNs) it needs.
    pub domains: Option<u32>,
    /// On at least this many different adapters.
    pub adapters: Option<u32>,
    /// `cca`, `ep11` or `accelerator`, or a list of them (any of these).
    pub mode: Option<ModeFile>,
    /// The oldest card generation it takes: 7 for CEX7 and later.
    pub min_generation: Option<u8>,
    /// `usage` (its usage domains), `none`, or an id list.
    pub control_domains: Option<String>,
    /// APQNs it must have: `["05.0047"]`.
    pub pin: Option<Vec<String>>,
    /// Adapters it must have, and domains.
    pub pin_adapters: Option<String>,
    pub pin_domains: Option<String>,
    /// It may have adapters other guests also use (their domains differ).
    pub share_adapters: Option<bool>,
    pub autostart: Option<bool>,
}

/// A mode or a list of modes, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ModeFile {
    One(String),
    Any(Vec<String>),
}

/// Which control domains a placed guest gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlDomains {
    /// Its usage domains, as most guests are given them.
    Usage,
    /// These.
    Ids(Mask256),
}

/// One guest's demand, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demand {
    pub name: String,
    pub uuid: Uuid,
    pub domains: u32,
    pub adapters: u32,
    /// The card modes it takes (any of them).
    pub modes: Vec<CardMode>,
    /// Card generation (4 for CEX4 ... 8 for CEX8) at least.
    pub min_generation: u8,
    pub control_domains: ControlDomains,
    /// Adapters and domains it must have (from `pin`, `pin_adapters`,
    /// `pin_domains`).
    pub pin_adapters: Mask256,
    pub pin_domains: Mask256,
    pub share_adapters: bool,
    pub autostart: bool,
}

impl Demand {
    /// "2 CCA domains on 2 adapters": the demand in words.
    pub fn words(&self) -> String {
        let mode = modes_word(&self.modes);
        let plural = |n: u32, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let mut text = format!(
            "{} needs {} on {}",
            self.name,
            plural(
                self.domains,
                &format!("{mode} domain"),
                &format!("{mode} domains")
            ),
            plural(self.adapters, "adapter", "adapters")
        );
        if self.min_generation > 4 {
            text.push_str(&format!(" of CEX{} or later", self.min_generation));
        }
        if !self.share_adapters {
            text.push_str(" of its own");
        }
        text
    }
}

/// `CCA`, `EP11`, `accelerator`, or some of them with `or`.
pub fn modes_word(modes: &[CardMode]) -> String {
    let one = |m: &CardMode| match m {
        CardMode::CcaCoproc => "CCA",
        CardMode::Ep11Coproc => "EP11",
        CardMode::Accelerator => "accelerator",
    };
    modes.iter().map(one).collect::<Vec<_>>().join(" or ")
}

/// The card mode a demand names.
pub fn parse_mode(text: &str) -> Result<CardMode, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "cca" | "c" | "cca-coproc" => Ok(CardMode::CcaCoproc),
        "ep11" | "p" | "ep11-coproc" => Ok(CardMode::Ep11Coproc),
        "accelerator" | "accel" | "a" => Ok(CardMode::Accelerator),
        _ => Err(format!(
            "mode {text:?} is not a card mode: cca, ep11 or accelerator"
        )),
    }
}

/// The most APQNs one guest can have: every adapter times every domain.
const MOST: u32 = 256 * 256;

impl DemandsFile {
    pub fn from_toml(text: &str) -> Result<DemandsFile, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Every guest's demand, the defaults filled in and every value
    /// checked; the first bad value names its guest and the rule.
    pub fn resolve(&self) -> Result<Vec<Demand>, ConfigError> {
        let mut out: Vec<Demand> = Vec::new();
        if self.defaults.name.is_some()
            || self.defaults.uuid.is_some()
            || self.defaults.pin.is_some()
        {
            return Err(ConfigError(
                "[defaults]: name, uuid and pin belong to a [[guest]]".into(),
            ));
        }
        for (i, g) in self.guests.iter().enumerate() {
            let d = &self.defaults;
            let name = g.name.clone().ok_or_else(|| {
                ConfigError(format!("[[guest]] number {}: give it a name", i + 1))
            })?;
            let bad = |why: String| ConfigError(format!("guest {name}: {why}"));
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(bad(format!("the name {name:?} must be one word")));
            }
            if out.iter().any(|o| o.name == name) {
                return Err(bad("named twice: one [[guest]] per guest".into()));
            }
            let domains = g.domains.or(d.domains).unwrap_or(1);
            let adapters = g.adapters.or(d.adapters).unwrap_or(1);
            if domains == 0 || domains > MOST {
                return Err(bad(format!("domains = {domains}: from 1 to {MOST}")));
            }
            if adapters == 0 || adapters > 256 || adapters > domains {
                return Err(bad(format!(
                    "adapters = {adapters}: from 1 to 256, and no more than its domains ({domains}): each adapter holds at least one of them"
                )));
            }
            let modes = match g.mode.as_ref().or(d.mode.as_ref()) {
                None => {
                    return Err(bad(
                        "give its mode: cca, ep11 or accelerator (or a list)".into()
                    ))
                }
                Some(ModeFile::One(t)) => vec![parse_mode(t).map_err(bad)?],
                Some(ModeFile::Any(list)) => {
                    let mut modes = Vec::new();
                    for t in list {
                        let m = parse_mode(t).map_err(bad)?;
                        if !modes.contains(&m) {
                            modes.push(m);
                        }
                    }
                    if modes.is_empty() {
                        return Err(bad("mode = []: name at least one".into()));
                    }
                    modes
                }
            };
            let min_generation = g.min_generation.or(d.min_generation).unwrap_or(4);
            if !(4..=8).contains(&min_generation) {
                return Err(bad(format!(
                    "min_generation = {min_generation}: vfio_ap drives CEX4 to CEX8, so 4 to 8"
                )));
            }
            let set = |what: &str, text: &str| {
                parse_id_set(text).map_err(|e| bad(format!("{what} {text:?}: {e}")))
            };
            let control_domains = match g
                .control_domains
                .as_deref()
                .or(d.control_domains.as_deref())
            {
                None | Some("usage") => ControlDomains::Usage,
                Some("none") => ControlDomains::Ids(Mask256::EMPTY),
                Some(list) => ControlDomains::Ids(set("control_domains", list)?),
            };
            let mut pin_adapters = match &g.pin_adapters {
                Some(t) => set("pin_adapters", t)?,
                None => Mask256::EMPTY,
            };
            let mut pin_domains = match &g.pin_domains {
                Some(t) => set("pin_domains", t)?,
                None => Mask256::EMPTY,
            };
            for text in g.pin.iter().flatten() {
                let q: Apqn = text.parse().map_err(|e| bad(format!("pin: {e}")))?;
                pin_adapters.set(q.adapter.0);
                pin_domains.set(q.domain.0);
            }
            if pin_adapters.count() * pin_domains.count().max(1) > domains
                || pin_domains.count() * pin_adapters.count().max(1) > domains
            {
                return Err(bad(format!(
                    "its pins (adapters {}, domains {}) give more than its {domains} domains: an mdev has every pinned adapter with every pinned domain",
                    pin_adapters.to_hex_list(),
                    pin_domains.to_hex_list()
                )));
            }
            out.push(Demand {
                uuid: g
                    .uuid
                    .unwrap_or_else(|| Uuid::new_v5(&NAME_NAMESPACE, name.as_bytes())),
                name,
                domains,
                adapters,
                modes,
                min_generation,
                control_domains,
                pin_adapters,
                pin_domains,
                share_adapters: g.share_adapters.or(d.share_adapters).unwrap_or(true),
                autostart: g.autostart.or(d.autostart).unwrap_or(false),
            });
        }
        Ok(out)
    }
}
