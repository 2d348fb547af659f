//! The configuration file: what the host should look like, as TOML, and
//! its id lists parsed.

use apmatrix_model::parse::parse_id_set;
use apmatrix_model::{Apqn, Mask256};
use serde::Deserialize;
use uuid::Uuid;

use crate::Matrix;

/// UUIDs of mdevs configured by name are derived from the name (UUID v5 in
/// this namespace), so the same file always means the same mdevs.
pub const NAME_NAMESPACE: Uuid = Uuid::from_u128(0x6a1e_2c1d_7f3b_4d7e_9a51_0c8e_5d2f_a6b4);

/// What the host should look like.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The host's pools; absent: keep the masks as they are.
    #[serde(default)]
    pub masks: Option<MasksConfig>,
    #[serde(default, rename = "mdev")]
    pub mdevs: Vec<MdevConfig>,
}

/// The host's (zcrypt's) pools as id lists, or derived from the mdevs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasksConfig {
    /// The adapters apmask gives the host (`"0-4,7-255"`).
    pub apmask: Option<String>,
    /// The domains aqmask gives the host.
    pub aqmask: Option<String>,
    /// Give the host everything but what the mdevs need: every adapter
    /// (`"adapters"`) or every usage domain (`"domains"`) an mdev uses goes
    /// to vfio_ap, the rest of both masks to the host.
    pub derive: Option<Derive>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Derive {
    Adapters,
    Domains,
}

/// One mdev.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdevConfig {
    pub uuid: Option<Uuid>,
    /// A name; without `uuid` the UUID is derived from it.
    pub name: Option<String>,
    #[serde(default)]
    pub adapters: String,
    #[serde(default)]
    pub domains: String,
    #[serde(default)]
    pub control_domains: String,
    /// The guest that will use it.
    pub guest: Option<String>,
    #[serde(default)]
    pub autostart: bool,
}

/// A configuration with its id lists parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub masks: WantedMasks,
    pub mdevs: Vec<WantedMdev>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WantedMasks {
    Keep,
    Set {
        apmask: Option<Mask256>,
        aqmask: Option<Mask256>,
    },
    Derive(Derive),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedMdev {
    pub uuid: Uuid,
    pub label: String,
    pub adapters: Mask256,
    pub domains: Mask256,
    pub control_domains: Mask256,
    pub guest: Option<String>,
    pub autostart: bool,
}

impl WantedMdev {
    /// An mdev of this UUID with nothing assigned, no guest, manual start.
    pub fn empty(uuid: Uuid) -> WantedMdev {
        WantedMdev {
            uuid,
            label: uuid.to_string(),
            adapters: Mask256::EMPTY,
            domains: Mask256::EMPTY,
            control_domains: Mask256::EMPTY,
            guest: None,
            autostart: false,
        }
    }

    /// Whether the APQN is in its adapters x domains.
    pub fn contains(&self, apqn: Apqn) -> bool {
        self.adapters.contains(apqn.adapter.0) && self.domains.contains(apqn.domain.0)
    }

    /// The matrix it asks for.
    pub fn matrix(&self) -> Matrix {
        Matrix {
            adapters: self.adapters,
            domains: self.domains,
            control_domains: self.control_domains,
        }
    }
}

/// A configuration file that cannot be read, naming the bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Parses the id lists and gives every mdev its UUID.
    pub fn resolve(&self) -> Result<Wanted, ConfigError> {
        let set = |what: &str, text: &str| {
            parse_id_set(text).map_err(|e| ConfigError(format!("{what} {text:?}: {e}")))
        };
        let masks = match &self.masks {
            None => WantedMasks::Keep,
            Some(m) => match (m.derive, &m.apmask, &m.aqmask) {
                (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                    return Err(ConfigError(
                        "[masks]: give derive or apmask/aqmask, not both".into(),
                    ))
                }
                (Some(d), None, None) => WantedMasks::Derive(d),
                (None, ap, aq) => WantedMasks::Set {
                    apmask: ap
                        .as_deref()
                        .map(|t| set("[masks] apmask", t))
                        .transpose()?,
                    aqmask: aq
                        .as_deref()
                        .map(|t| set("[masks] aqmask", t))
                        .transpose()?,
                },
            },
        };
        let mut mdevs = Vec::new();
        for (i, m) in self.mdevs.iter().enumerate() {
            let (uuid, label) = match (&m.uuid, &m.name) {
                (Some(u), Some(n)) => (*u, format!("{n} ({u})")),
                (Some(u), None) => (*u, u.to_string()),
                (None, Some(n)) => {
                    let u = Uuid::new_v5(&NAME_NAMESPACE, n.as_bytes());
                    (u, format!("{n} ({u})"))
                }
                (None, None) => {
                    return Err(ConfigError(format!(
                        "[[mdev]] number {}: give it a uuid or a name",
                        i + 1
                    )))
                }
            };
            mdevs.push(WantedMdev {
                uuid,
                adapters: set(&format!("mdev {label}: adapters"), &m.adapters)?,
                domains: set(&format!("mdev {label}: domains"), &m.domains)?,
                control_domains: set(
                    &format!("mdev {label}: control_domains"),
                    &m.control_domains,
                )?,
                label,
                guest: m.guest.clone(),
                autostart: m.autostart,
            });
        }
        Ok(Wanted { masks, mdevs })
    }
}

/// An id list as the configuration file takes it: `0x05-0x06,0xab`, or
/// empty for none.
pub fn id_list(mask: &Mask256) -> String {
    if mask.is_empty() {
        String::new()
    } else {
        mask.to_hex_list()
    }
}

/// A TOML string literal (quotes and escapes as TOML has them): guest
/// names may hold `"` and `\`.
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
