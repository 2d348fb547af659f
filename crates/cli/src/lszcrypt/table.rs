//! The device table: every card and queue, or the DEVICE_IDS given, with
//! the mode and card/queue filters; `-V` adds the verbose columns (and
//! SESTAT where the bus has `APSB`).

use serde::Serialize;

use super::tree::{scan_hex_pair, DriverKind, Tree};
use super::{Align, Listing, Options};

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sestat: Option<String>,
}

/// (header, width, alignment): the first five are the default table, `-V`
/// adds five, and SESTAT comes last when the bus has `APSB`.
const COLUMNS: [(&str, usize, Align); 11] = [
    ("CARD.DOM", 8, Align::Left),
    ("TYPE", 5, Align::Left),
    ("MODE", 11, Align::Left),
    ("STATUS", 10, Align::Left),
    ("REQUESTS", 8, Align::Right),
    ("PENDING", 8, Align::Right),
    ("HWTYPE", 6, Align::Right),
    ("QDEPTH", 6, Align::Right),
    ("FUNCTIONS", 10, Align::Left),
    ("DRIVER", 11, Align::Left),
    ("SESTAT", 11, Align::Left),
];

/// The FUNCTIONS letters for `ap_functions` bits 0..9 (0x80000000 down).
const FUNCTION_LETTERS: &[u8; 10] = b"SMCDAXNHFR";

pub(super) fn functions_text(functions: u64) -> String {
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

/// MODE from a card's `ap_functions`: CCA before accelerator before EP11.
pub(super) fn mode_name(functions: u64) -> &'static str {
    if functions & 0x1000_0000 != 0 {
        "CCA-Coproc"
    } else if functions & 0x0800_0000 != 0 {
        "Accelerator"
    } else if functions & 0x0400_0000 != 0 {
        "EP11-Coproc"
    } else {
        "Unknown"
    }
}

/// STATUS from config, chkstop and online (-1: no such attribute).
pub(super) fn status_text(config: i64, chkstop: i64, online: i64) -> Option<&'static str> {
    if config == 0 {
        Some("deconfig")
    } else if chkstop > 0 {
        Some("chkstop")
    } else if online > 0 {
        Some("online")
    } else if online == 0 {
        Some("offline")
    } else {
        None
    }
}

/// What is printed, in order: rows and the tool's notes between them.
enum Item {
    Row(Box<Row>),
    Note(&'static str),
}

struct Table<'a> {
    tree: &'a Tree<'a>,
    options: &'a Options,
    /// The bus has `APSB`: SESTAT is shown with -V.
    sestat: bool,
    items: Vec<Item>,
}

type Step = Result<(), String>;

impl Table<'_> {
    /// The card's own columns; the queue's override some.
    fn card_row(&self, grp: &str, id: &str) -> Row {
        let t = self.tree;
        let functions = t.hex(&format!("{grp}/ap_functions")).unwrap_or(0);
        let config = t.flag(&format!("{grp}/config"));
        let status = status_text(
            config,
            t.flag(&format!("{grp}/chkstop")),
            t.flag(&format!("{grp}/online")),
        );
        let count = |name: &str| t.long(&format!("{grp}/{name}")).unwrap_or(0);
        Row {
            id: id.to_string(),
            type_name: t.line(&format!("{grp}/type")).unwrap_or_else(|| "-".into()),
            mode: mode_name(functions).into(),
            status: status.unwrap_or("-").into(),
            requests: if config == 0 {
                "-".into()
            } else {
                t.line(&format!("{grp}/request_count")).unwrap_or_default()
            },
            pending: if config == 0 {
                "-".into()
            } else {
                (count("pendingq_count") + count("requestq_count")).to_string()
            },
            hwtype: t.line(&format!("{grp}/hwtype")).unwrap_or_default(),
            qdepth: format!("{:02}", t.long(&format!("{grp}/depth")).unwrap_or(0)),
            functions: functions_text(functions),
            driver: t.driver(grp).map_or("-no-driver-".into(), |(n, _)| n),
            sestat: self.sestat.then(|| "-".into()),
        }
    }

    fn queue_row(&self, grp: &str, sub: &str) -> Row {
        let t = self.tree;
        let q = format!("{grp}/{sub}");
        let card = self.card_row(grp, sub);
        let config = t.flag(&format!("{q}/config"));
        let status = status_text(
            config,
            t.flag(&format!("{q}/chkstop")),
            t.flag(&format!("{q}/online")),
        )
        .map(String::from)
        .or_else(|| t.line(&format!("{q}/status")))
        .unwrap_or_else(|| "-".into());
        let driver = t.driver(&q);
        let count = |name: &str| t.long(&format!("{q}/{name}")).unwrap_or(0);
        let card_config = t.flag(&format!("{grp}/config"));
        let zcrypt = matches!(driver, Some((_, DriverKind::Zcrypt)));
        Row {
            status,
            requests: if config == 0 {
                "-".into()
            } else {
                t.line(&format!("{q}/request_count")).unwrap_or_default()
            },
            pending: if card_config == 0 || !zcrypt {
                "-".into()
            } else {
                (count("pendingq_count") + count("requestq_count")).to_string()
            },
            driver: driver.map_or("-no-driver-".into(), |(n, _)| n),
            sestat: self
                .sestat
                .then(|| match t.hex(&format!("{q}/ap_functions")) {
                    None => "error".into(),
                    Some(0) => "invalid".into(),
                    Some(f) => ["usable", "bound", "unbound", "illicit"]
                        [((f & 0xC000) >> 14) as usize]
                        .into(),
                }),
            ..card
        }
    }

    /// A zcrypt driver serves the device: its card has `type` and the
    /// device `online` (without -V, lszcrypt shows nothing else).
    fn zcrypt_driven(&self, grp: &str, device: &str) -> bool {
        self.tree.readable(&format!("{grp}/type"))
            && self.tree.readable(&format!("{device}/online"))
    }

    /// The card's type letter passes the mode filter.
    fn wanted(&self, grp: &str) -> bool {
        let o = self.options;
        match self
            .tree
            .line(&format!("{grp}/type"))
            .and_then(|t| t.chars().last())
        {
            Some('A') => o.accel,
            Some('C') => o.cca,
            Some('P') => o.ep11,
            _ => true,
        }
    }

    /// `cardXX` (a name under devices/ap): its row, then its queues.
    fn device(&mut self, name: &str) -> Step {
        let t = self.tree;
        let grp = format!("devices/ap/{name}");
        if !t.is_dir(&grp) {
            return Err(format!(
                "Error - cryptographic device {name} does not exist."
            ));
        }
        // Without -V, only what the zcrypt layer drives.
        if !self.options.verbose && !self.zcrypt_driven(&grp, &grp) {
            return Ok(());
        }
        if !self.wanted(&grp) {
            return Ok(());
        }
        if self.options.cards {
            let id = name.strip_prefix("card").unwrap_or(name);
            self.items
                .push(Item::Row(Box::new(self.card_row(&grp, id))));
        }
        if self.options.queues {
            let subs = t.scan(&grp, is_queue_name);
            if subs.is_empty() {
                return Err(format!(
                    "Error - no subdevices found for {}.\n",
                    t.shown(&grp)
                ));
            }
            for sub in subs {
                self.subdevice(&grp, &sub)?;
            }
        }
        Ok(())
    }

    /// The queue `sub` of the card at `grp`.
    fn subdevice(&mut self, grp: &str, sub: &str) -> Step {
        let t = self.tree;
        if !t.is_dir(&format!("{grp}/{sub}")) {
            return Err(format!(
                "Error - cryptographic device {}/{sub} does not exist.",
                t.shown(grp)
            ));
        }
        if !self.options.verbose && !self.zcrypt_driven(grp, &format!("{grp}/{sub}")) {
            return Ok(());
        }
        if !self.options.queues || !self.wanted(grp) {
            return Ok(());
        }
        self.items
            .push(Item::Row(Box::new(self.queue_row(grp, sub))));
        Ok(())
    }

    /// One DEVICE_ID: `xx` a card, `xx.yyyy` a queue, `.yyyy` (any first
    /// character) that domain on every card, else a note.
    fn given(&mut self, arg: &str) -> Step {
        let (matched, id, dom) = scan_hex_pair(arg);
        if matched >= 1 {
            if id >= 0 && dom >= 0 {
                let grp = format!("devices/ap/card{:02x}", id as u32);
                return self.subdevice(&grp, &format!("{:02x}.{:04x}", id as u32, dom as u32));
            }
            return self.device(&format!("card{:02x}", id as u32));
        }
        let rest = arg.get(1..).unwrap_or("");
        let Some((dom, _)) = super::tree::scan_hex(rest) else {
            self.items.push(Item::Note("Invalid adpater id!\n"));
            return Ok(());
        };
        let cards = self.tree.cards();
        if cards.is_empty() {
            return Err("No crypto card devices found.".into());
        }
        let suffix = format!("{:04x}", dom as u32);
        for card in cards {
            let grp = format!("devices/ap/{card}");
            let subs = self.tree.scan(&grp, |n| has_domain(n, &suffix));
            if subs.is_empty() {
                return Err("No queue devices with given domain value found.".into());
            }
            for sub in subs {
                self.subdevice(&grp, &sub)?;
            }
        }
        Ok(())
    }

    fn render(&self) -> String {
        let columns = match (self.options.verbose, self.sestat) {
            (false, _) => 5,
            (true, false) => 10,
            (true, true) => 11,
        };
        let spec = &COLUMNS[..columns];
        let mut out = super::line(&spec.iter().map(|c| (c.0, c.1, c.2)).collect::<Vec<_>>());
        out.push_str(&super::dashes(spec.iter().map(|c| c.1)));
        for item in &self.items {
            match item {
                Item::Note(text) => out.push_str(text),
                Item::Row(r) => {
                    let sestat = r.sestat.as_deref().unwrap_or("");
                    let cells = [
                        &r.id,
                        &r.type_name,
                        &r.mode,
                        &r.status,
                        &r.requests,
                        &r.pending,
                        &r.hwtype,
                        &r.qdepth,
                        &r.functions,
                        &r.driver,
                        sestat,
                    ];
                    let row: Vec<_> = cells
                        .iter()
                        .zip(spec)
                        .map(|(cell, c)| (&**cell, c.1, c.2))
                        .collect();
                    out.push_str(&super::line(&row));
                }
            }
        }
        out
    }

    fn rows(self) -> Vec<Row> {
        self.items
            .into_iter()
            .filter_map(|i| match i {
                Item::Row(r) => Some(*r),
                Item::Note(_) => None,
            })
            .collect()
    }
}

/// lszcrypt's queue pattern `..\.....` (unanchored): a `.` with two
/// characters before it and four after.
fn is_queue_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..b.len()).any(|i| b[i] == b'.' && b.len() >= i + 5)
}

/// lszcrypt's `[0-9a-fA-F]+.YYYY` (unanchored): a hex digit, any
/// character, then the domain's digits.
fn has_domain(name: &str, digits: &str) -> bool {
    let b = name.as_bytes();
    (0..b.len()).any(|i| {
        b[i].is_ascii_hexdigit() && b.get(i + 2..i + 2 + digits.len()) == Some(digits.as_bytes())
    })
}

/// The table and its rows: every card (or the DEVICE_IDS), then, for all
/// cards, the default-domain warning. The bus must be there.
pub(super) fn table(tree: &Tree, options: &Options) -> (Listing, Vec<Row>) {
    let sestat = tree
        .line("bus/ap/features")
        .is_some_and(|f| f.contains("APSB"));
    let mut t = Table {
        tree,
        options,
        sestat,
        items: Vec::new(),
    };
    let mut failure = None;
    if options.ids.is_empty() {
        for card in tree.cards() {
            if let Err(e) = t.device(&card) {
                failure = Some(e);
                break;
            }
        }
    } else {
        for id in &options.ids {
            if let Err(e) = t.given(id) {
                failure = Some(e);
                break;
            }
        }
    }
    let mut text = t.render();
    if failure.is_none() && options.ids.is_empty() {
        text.push_str(&tree.default_domain_warning());
    }
    (Listing { text, failure }, t.rows())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_letters() {
        assert_eq!(functions_text(0x9280_0000), "S--D--N-F-");
        assert_eq!(functions_text(0xEA00_0000), "SMC-A-N---");
        assert_eq!(functions_text(0x8680_0000), "S----XN-F-");
        assert_eq!(functions_text(0), "----------");
    }

    #[test]
    fn queue_and_domain_patterns_are_unanchored() {
        assert!(is_queue_name("04.0047"));
        assert!(!is_queue_name("ap_functions"));
        assert!(!is_queue_name("04.004"));
        assert!(has_domain("04.0047", "0047"));
        assert!(!has_domain("04.0047", "0004"));
        assert!(!has_domain("04.1004", "0004"));
    }

    #[test]
    fn modes_and_status_in_lszcrypts_order() {
        assert_eq!(mode_name(0x1C00_0000), "CCA-Coproc");
        assert_eq!(mode_name(0x0C00_0000), "Accelerator");
        assert_eq!(mode_name(0), "Unknown");
        assert_eq!(status_text(0, 1, 1), Some("deconfig"));
        assert_eq!(status_text(1, 1, 1), Some("chkstop"));
        assert_eq!(status_text(1, 0, 0), Some("offline"));
        assert_eq!(status_text(-1, -1, -1), None);
    }
}
