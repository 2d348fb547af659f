//! What lszcrypt reads: the card and queue directories of a sysfs root and
//! their attributes, turned into table rows as s390-tools does it
//! (tools.md Part A §1, "Scan and files read" and "Column derivation").

use apmatrix_admin::root::SysfsRoot;
use serde::Serialize;

/// One row of the table, every column as lszcrypt prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    #[serde(rename = "card.dom")]
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub mode: String,
    pub status: String,
    pub requests: String,
    pub pending: String,
    pub hwtype: String,
    pub qdepth: String,
    pub functions: String,
    pub driver: String,
    #[serde(skip)]
    pub is_card: bool,
}

/// A card directory as lszcrypt finds it.
pub struct CardDir {
    /// `05` of `card05`.
    pub id: String,
    /// Its queue directories' names (`05.0004`), sorted.
    pub queues: Vec<String>,
}

fn attr(root: &dyn SysfsRoot, dir: &str, name: &str) -> Option<String> {
    root.read(&format!("{dir}/{name}"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

fn number(text: &Option<String>) -> Option<i64> {
    text.as_deref().and_then(|t| t.trim().parse().ok())
}

fn hex(text: &Option<String>) -> Option<u32> {
    let t = text.as_deref()?.trim();
    u32::from_str_radix(t.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The card directories under `devices/ap`, sorted, with their queues.
pub fn cards(root: &dyn SysfsRoot) -> Vec<CardDir> {
    let names = root.list("devices/ap").unwrap_or_default();
    names
        .iter()
        .filter_map(|n| n.strip_prefix("card").filter(|id| is_hex(id)))
        .map(|id| {
            let mut queues: Vec<String> = root
                .list(&format!("devices/ap/card{id}"))
                .unwrap_or_default()
                .into_iter()
                .filter(|q| q.len() == 7 && q.as_bytes()[2] == b'.')
                .collect();
            queues.sort();
            CardDir {
                id: id.to_string(),
                queues,
            }
        })
        .collect()
}

/// The FUNCTIONS letters for `ap_functions` bits 0..9 (0x80000000 down).
const FUNCTION_LETTERS: &[u8; 10] = b"SMCDAXNHFR";

pub fn functions_text(functions: u32) -> String {
    FUNCTION_LETTERS
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if functions & (0x8000_0000 >> i) != 0 {
                l as char
            } else {
                '-'
            }
        })
        .collect()
}

/// The MODE column from the card's `ap_functions`.
pub fn mode_text(functions: Option<u32>) -> &'static str {
    match functions {
        Some(f) if f & 0x1000_0000 != 0 => "CCA-Coproc",
        Some(f) if f & 0x0800_0000 != 0 => "Accelerator",
        Some(f) if f & 0x0400_0000 != 0 => "EP11-Coproc",
        _ => "Unknown",
    }
}

/// The card's values every one of its rows shows.
pub struct CardInfo {
    pub dir: String,
    pub type_name: Option<String>,
    pub functions: Option<u32>,
    pub config: Option<i64>,
    pub hwtype: String,
    pub qdepth: String,
}

pub fn card_info(root: &dyn SysfsRoot, id: &str) -> CardInfo {
    let dir = format!("devices/ap/card{id}");
    CardInfo {
        type_name: attr(root, &dir, "type"),
        functions: hex(&attr(root, &dir, "ap_functions")),
        config: number(&attr(root, &dir, "config")),
        hwtype: attr(root, &dir, "hwtype").unwrap_or_else(|| "-".into()),
        qdepth: number(&attr(root, &dir, "depth")).map_or("-".into(), |d| format!("{d:02}")),
        dir,
    }
}

fn zcrypt_driver(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() >= 8
        && name.starts_with("cex")
        && b[3].is_ascii_digit()
        && (name[4..].starts_with("card") || name[4..].starts_with("queue"))
}

fn driver_text(root: &dyn SysfsRoot, dir: &str) -> (String, bool) {
    let name = root
        .read_link(&format!("{dir}/driver"))
        .ok()
        .and_then(|t| t.rsplit('/').next().map(str::to_string));
    match name {
        Some(n) if zcrypt_driver(&n) => (n, true),
        Some(n) if n.len() == 7 && n.starts_with("vfio") && n.ends_with("ap") => (n, false),
        _ => ("-no-driver-".into(), false),
    }
}

/// The row of the card (`queue` None) or of one of its queues; `None`
/// where lszcrypt without `-V` skips it (no `type`, or no `online`).
pub fn row(
    root: &dyn SysfsRoot,
    card: &CardInfo,
    queue: Option<&str>,
    verbose: bool,
) -> Option<Row> {
    let dir = match queue {
        None => card.dir.clone(),
        Some(q) => format!("{}/{q}", card.dir),
    };
    let online = number(&attr(root, &dir, "online"));
    if !verbose && (card.type_name.is_none() || online.is_none()) {
        return None;
    }
    let config = number(&attr(root, &dir, "config"));
    let chkstop = number(&attr(root, &dir, "chkstop"));
    let status = match (config, chkstop, online) {
        (Some(0), _, _) => "deconfig".to_string(),
        (_, Some(c), _) if c > 0 => "chkstop".into(),
        (_, _, Some(o)) if o > 0 => "online".into(),
        (_, _, Some(0)) => "offline".into(),
        _ if queue.is_some() => attr(root, &dir, "status").unwrap_or_else(|| "-".into()),
        _ => "-".into(),
    };
    let requests = if config == Some(0) {
        "-".to_string()
    } else {
        attr(root, &dir, "request_count").unwrap_or_else(|| "-".into())
    };
    let (driver, zcrypt) = driver_text(root, &dir);
    let pending = match (
        number(&attr(root, &dir, "pendingq_count")),
        number(&attr(root, &dir, "requestq_count")),
    ) {
        _ if card.config == Some(0) || (queue.is_some() && !zcrypt) => "-".to_string(),
        (Some(p), Some(r)) => (p + r).to_string(),
        _ => "-".into(),
    };
    Some(Row {
        id: queue.map_or_else(
            || card.dir.trim_start_matches("devices/ap/card").to_string(),
            str::to_string,
        ),
        type_name: card.type_name.clone().unwrap_or_else(|| "-".into()),
        mode: mode_text(card.functions).to_string(),
        status,
        requests,
        pending,
        hwtype: card.hwtype.clone(),
        qdepth: card.qdepth.clone(),
        functions: card.functions.map_or("----------".into(), functions_text),
        driver,
        is_card: queue.is_none(),
    })
}

/// A bus attribute's text, if the file is there.
pub fn bus_attr(root: &dyn SysfsRoot, name: &str) -> Option<String> {
    attr(root, "bus/ap", name)
}

/// A card attribute's text, if the file is there.
pub fn card_attr(root: &dyn SysfsRoot, id: &str, name: &str) -> Option<String> {
    attr(root, &format!("devices/ap/card{id}"), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_letters_and_modes() {
        assert_eq!(functions_text(0x9280_0000), "S--D--N-F-");
        assert_eq!(functions_text(0xEA00_0000), "SMC-A-N---");
        assert_eq!(functions_text(0x8680_0000), "S----XN-F-");
        assert_eq!(functions_text(0), "----------");
        assert_eq!(mode_text(Some(0x9280_0000)), "CCA-Coproc");
        assert_eq!(mode_text(None), "Unknown");
    }

    #[test]
    fn driver_names_lszcrypt_shows() {
        assert!(zcrypt_driver("cex4queue") && zcrypt_driver("cex4card"));
        assert!(!zcrypt_driver("cex4") && !zcrypt_driver("vfio_ap"));
    }
}
