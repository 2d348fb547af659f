//! What is asked of a migration: the guest, and the numbers the user fixes.

use std::collections::BTreeMap;

use uuid::Uuid;

/// What is asked: which guest, and the numbers the user fixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The guest, running on the source.
    pub guest: String,
    /// Source adapter to target adapter (`--adapters 5=7`); adapters not
    /// named are matched automatically.
    pub adapters: BTreeMap<u8, u8>,
    /// Source domain to target domain (`--domains 4=5`), for usage and
    /// control domains alike; domains not named keep their numbers.
    pub domains: BTreeMap<u8, u8>,
    /// The target mdev's UUID; without it, the source mdev's.
    pub uuid: Option<Uuid>,
}

/// `5=7,6=0x08` (ids as the kernel's stores read them: decimal, 0x hex).
pub fn parse_map(text: &str) -> Result<BTreeMap<u8, u8>, String> {
    let id = |t: &str| {
        apmatrix_model::parse::parse_kstrtoul(t.trim().as_bytes())
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("{t:?} is not an id (0 to 255, decimal or 0x hex)"))
    };
    let mut map = BTreeMap::new();
    for item in text.split(',').filter(|i| !i.trim().is_empty()) {
        let Some((from, to)) = item.split_once('=') else {
            return Err(format!("{item:?} is not FROM=TO, as in 5=7"));
        };
        let (from, to) = (id(from)?, id(to)?);
        if map.insert(from, to).is_some_and(|before| before != to) {
            return Err(format!("{from:#04x} is mapped twice"));
        }
    }
    Ok(map)
}
