//! The host's `lszcrypt`, output-compatible with s390-tools v2.43
//! (tools.md Part A §1; docs/lszcrypt.md): the default table, `-V`, `-b`
//! and `-d`.

use std::fmt::Write as _;

use apmatrix_model::{Apqn, Card, Driver, Host};
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
}

#[derive(Copy, Clone)]
enum Align {
    Left,
    Right,
}

/// (header, width, alignment) of the columns; the first five are the
/// default table, `-V` adds the rest. SESTAT is not shown: the seed-era bus
/// has no `features` attribute, so lszcrypt never sees APSB.
const COLUMNS: [(&str, usize, Align); 10] = [
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
];

/// The FUNCTIONS letters for `ap_functions` bits 0..9 (0x80000000 down).
const FUNCTION_LETTERS: &[u8; 10] = b"SMCDAXNHFR";

fn functions_text(functions: u32) -> String {
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

fn card_status(card: &Card) -> &'static str {
    if !card.config {
        "deconfig"
    } else if card.chkstop {
        "chkstop"
    } else if card.online {
        "online"
    } else {
        "offline"
    }
}

fn card_row(card: &Card) -> Row {
    Row {
        id: card.id.to_string(),
        type_name: card.type_name(),
        mode: card.mode.lszcrypt_name().to_string(),
        status: card_status(card).to_string(),
        requests: if card.config { "0" } else { "-" }.to_string(),
        pending: if card.config { "0" } else { "-" }.to_string(),
        hwtype: card.hwtype.to_string(),
        qdepth: format!("{:02}", card.depth),
        functions: functions_text(card.functions),
        driver: Driver::Cex4Card.name().to_string(),
    }
}

fn queue_row(host: &Host, card: &Card, apqn: Apqn) -> Row {
    let driver = host.queue_driver(apqn).flatten();
    let zcrypt = driver == Some(Driver::Cex4Queue);
    // A queue has `online` only under cex4queue; otherwise lszcrypt falls back
    // to vfio_ap's `status` file, else "-".
    let status = if !card.config || card.chkstop {
        card_status(card).to_string()
    } else if zcrypt {
        // the queue's own online flag (chzcrypt -d xx.yyyy)
        if host.queue_online(apqn) {
            "online"
        } else {
            "offline"
        }
        .to_string()
    } else {
        host.vfio_queue_status(apqn).unwrap_or("-").to_string()
    };
    // Only cex4queue initialises the queue's state machine; other queues
    // print "-" as their request_count.
    let requests = if card.config && zcrypt { "0" } else { "-" };
    Row {
        id: apqn.to_string(),
        status,
        requests: requests.to_string(),
        pending: if card.config && zcrypt { "0" } else { "-" }.to_string(),
        driver: driver.map_or("-no-driver-", Driver::name).to_string(),
        ..card_row(card)
    }
}

/// The rows `lszcrypt` (or `lszcrypt -V` when `verbose`) lists: every card,
/// and the queues that have an `online` attribute (bound to cex4queue), or
/// all queues with `-V`.
pub fn rows(host: &Host, verbose: bool) -> Vec<Row> {
    let topology = host.topology();
    let mut out = Vec::new();
    for card in host.card_devices() {
        out.push(card_row(card));
        for d in topology.usage_domains.iter() {
            let apqn = Apqn::new(card.id.0, d);
            if verbose || host.queue_driver(apqn) == Some(Some(Driver::Cex4Queue)) {
                out.push(queue_row(host, card, apqn));
            }
        }
    }
    out
}

/// The table text with its header, dash line and the default-domain warning.
pub fn table(host: &Host, verbose: bool) -> String {
    let columns = if verbose { 10 } else { 5 };
    let line = |cells: [&str; 10]| {
        let mut text = String::new();
        for (i, (cell, (_, width, align))) in cells.iter().zip(COLUMNS).take(columns).enumerate() {
            if i > 0 {
                text.push(' ');
            }
            match align {
                Align::Left => write!(text, "{cell:<width$}"),
                Align::Right => write!(text, "{cell:>width$}"),
            }
            .expect("write to String");
        }
        text.push('\n');
        text
    };
    let mut out = line(COLUMNS.map(|c| c.0));
    let dashes: usize = COLUMNS[..columns].iter().map(|c| c.1).sum::<usize>() + columns - 1;
    out.push_str(&"-".repeat(dashes));
    out.push('\n');
    for r in rows(host, verbose) {
        out.push_str(&line([
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
        ]));
    }
    out.push_str(&default_domain_warning(host));
    out
}

/// `Warning: Default domain 0x.. is not available.` when `ap_domain` is -1
/// or not a usage domain (≥ v2.42; -1 prints as 0xffffffffffffffff).
fn default_domain_warning(host: &Host) -> String {
    match host.bus().default_domain {
        Some(d) if host.topology().usage_domains.contains(d) => String::new(),
        Some(d) => format!("Warning: Default domain 0x{d:02x} is not available.\n"),
        None => "Warning: Default domain 0xffffffffffffffff is not available.\n".to_string(),
    }
}

/// `lszcrypt -b`: the bus attributes.
pub fn bus(host: &Host) -> String {
    let b = host.bus();
    let usage = host.topology().usage_domains;
    let domain = match b.default_domain {
        None => "-1 (not set)".to_string(),
        Some(d) if usage.contains(d) => format!("0x{d:02x}"),
        Some(d) => format!("0x{d:02x} (unavailable)"),
    };
    let on_off = |v: bool| if v { "enabled" } else { "disabled" };
    format!(
        "ap_domain={domain}\nap_max_domain_id=0x{:02x}\nap_interrupts are {}\nconfig_time={} (seconds)\npoll_thread is {}\npoll_timeout={} (nanoseconds)\n",
        host.topology().max_domain_id(),
        on_off(b.interrupts),
        b.config_time,
        on_off(b.poll_thread),
        b.poll_timeout,
    )
}

/// `lszcrypt -d`: which domains are control (C), usage (U) or both (B).
pub fn domains(host: &Host) -> String {
    let t = host.topology();
    let mut out = String::from("DOMAIN");
    for i in 0..16 {
        let _ = write!(out, " {i:02x}");
    }
    out.push('\n');
    let dashes = "-".repeat(6 + 16 * 3);
    let _ = writeln!(out, "{dashes}");
    // Always 16 rows (all 256 domains), whatever the maximum domain
    // (tools.md Part A §1; Debian's 2.35 on a host with 84 as maximum).
    for row in 0..16 {
        let _ = write!(out, "    {:02x}", row * 16);
        for col in 0..16 {
            let d = (row * 16 + col) as u8;
            let cell = match (t.control_domains.contains(d), t.usage_domains.contains(d)) {
                (true, true) => 'B',
                (true, false) => 'C',
                (false, true) => 'U',
                (false, false) => '.',
            };
            let _ = write!(out, "  {cell}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{dashes}");
    out.push_str("C: Control domain\nU: Usage domain\nB: Both (Control + Usage domain)\n");
    out.push_str(&default_domain_warning(host));
    out
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
    fn dash_lines_match_the_header_width() {
        let host = Host::seed_example();
        for verbose in [false, true] {
            let text = table(&host, verbose);
            let mut lines = text.lines();
            let header = lines.next().unwrap();
            let dashes = lines.next().unwrap();
            assert_eq!(header.len(), dashes.len());
            assert_eq!(dashes.len(), if verbose { 92 } else { 46 });
        }
    }

    #[test]
    fn offline_queues_and_cards_show_as_offline() {
        use apmatrix_model::{AdapterId, WriteTarget};
        let mut host = Host::seed_example();
        host.write(WriteTarget::QueueOnline(Apqn::new(4, 0x47)), b"0")
            .unwrap();
        host.write(WriteTarget::CardOnline(AdapterId(6)), b"0")
            .unwrap();
        let status = |id: &str| {
            rows(&host, false)
                .into_iter()
                .find(|r| r.id == id)
                .unwrap()
                .status
        };
        assert_eq!(status("04.0047"), "offline");
        assert_eq!(status("04.0004"), "online");
        assert_eq!(status("06"), "offline");
        assert_eq!(status("06.00ab"), "offline");
    }
}
