//! Identifiers of the AP architecture: adapters (APID), domains (APQI) and
//! the queues they name together (APQN).
//!
//! The architecture allows ids 0..=255 for both (kernel.md §7); the maximum a
//! given host accepts is smaller and lives in [`crate::topology::Topology`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// An AP adapter ("card") number, 0..=255.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdapterId(pub u8);

/// An AP domain number (APQI), 0..=255. Used for usage and control domains alike.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DomainId(pub u8);

/// An AP queue number: one adapter and one domain.
///
/// Printed the way the kernel names queue devices, `%02x.%04x`: `05.00ab`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Apqn {
    /// The adapter (APID).
    pub adapter: AdapterId,
    /// The domain (APQI).
    pub domain: DomainId,
}

impl Apqn {
    /// The queue of `adapter` and `domain`.
    pub const fn new(adapter: u8, domain: u8) -> Self {
        Apqn {
            adapter: AdapterId(adapter),
            domain: DomainId(domain),
        }
    }
}

impl fmt::Display for AdapterId {
    /// Two lower-case hex digits, as in `card05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

impl fmt::Display for DomainId {
    /// Four lower-case hex digits, as in `05.00ab`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl Apqn {
    /// APQNs in the kernel's form, all of them, separated by spaces:
    /// `05.0004 05.00ab` (the one printer of such lists).
    pub fn list_text(apqns: &[Apqn]) -> String {
        let mut out = String::with_capacity(apqns.len() * 8);
        for (i, q) in apqns.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&q.to_string());
        }
        out
    }
}

impl fmt::Display for Apqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.adapter, self.domain)
    }
}

/// Error of `Apqn::from_str`: names the text and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an APQN: expected two hex digits of adapter, a dot and four hex digits of domain, as in 05.00ab")]
pub struct ApqnParseError(pub String);

impl std::str::FromStr for Apqn {
    type Err = ApqnParseError;

    /// Accepts the kernel's own spelling (`05.00ab`) and, leniently, fewer
    /// digits (`5.ab`); both halves are hex and must fit 0..=255.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ApqnParseError(s.to_string());
        let (a, d) = s.split_once('.').ok_or_else(bad)?;
        let hex = |t: &str, max_len: usize| {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u16::from_str_radix(t, 16)
                .ok()
                .and_then(|v| u8::try_from(v).ok())
        };
        Ok(Apqn::new(
            hex(a, 2).ok_or_else(bad)?,
            hex(d, 4).ok_or_else(bad)?,
        ))
    }
}

/// APQNs serialise as the kernel names them: `"05.00ab"`.
impl Serialize for Apqn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Apqn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The three kinds of id an mdev's matrix is assigned.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixAxis {
    /// Adapters (APM): `assign_adapter`.
    Adapter,
    /// Usage domains (AQM): `assign_domain`.
    Domain,
    /// Control domains (ADM): `assign_control_domain`.
    ControlDomain,
}

impl MatrixAxis {
    /// All three, in the order of the mdev's matrix masks (APM, AQM, ADM).
    pub const ALL: [MatrixAxis; 3] = [
        MatrixAxis::Adapter,
        MatrixAxis::Domain,
        MatrixAxis::ControlDomain,
    ];

    /// The word the kernel's attribute names use: `assign_<word>`.
    pub fn attr_word(self) -> &'static str {
        match self {
            MatrixAxis::Adapter => "adapter",
            MatrixAxis::Domain => "domain",
            MatrixAxis::ControlDomain => "control_domain",
        }
    }

    /// Human words for messages.
    pub fn noun(self) -> &'static str {
        match self {
            MatrixAxis::Adapter => "adapter",
            MatrixAxis::Domain => "domain",
            MatrixAxis::ControlDomain => "control domain",
        }
    }
}

impl fmt::Display for MatrixAxis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apqn_prints_like_the_kernel() {
        assert_eq!(Apqn::new(5, 0xab).to_string(), "05.00ab");
        assert_eq!(Apqn::new(0xff, 0).to_string(), "ff.0000");
    }

    #[test]
    fn apqn_parses_kernel_and_short_forms() {
        assert_eq!("05.00ab".parse::<Apqn>().unwrap(), Apqn::new(5, 0xab));
        assert_eq!("5.ab".parse::<Apqn>().unwrap(), Apqn::new(5, 0xab));
        for bad in [
            "",
            "05",
            "05.",
            ".00ab",
            "0x5.1",
            "100.0001",
            "05.0100",
            "05.00ab.1",
            "05,00ab",
        ] {
            let err = bad.parse::<Apqn>().unwrap_err();
            assert_eq!(err.0, bad);
        }
    }
}
