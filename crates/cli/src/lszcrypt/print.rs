//! How lszcrypt lays out what it read: the table, `-b`, `-d`, `-s`, `-c`.

use std::fmt::Write as _;

use apmatrix_admin::root::SysfsRoot;

use super::scan::{self, Row};

#[derive(Copy, Clone)]
enum Align {
    Left,
    Right,
}

/// (header, width, alignment) of the columns; the first five are the
/// default table, `-V` adds the rest. SESTAT (only with APSB in the bus's
/// `features`) is not shown: no emulated generation has APSB.
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

fn cells(cells: &[&str], columns: &[(&str, usize, Align)]) -> String {
    let mut text = String::new();
    for (i, (cell, (_, width, align))) in cells.iter().zip(columns).enumerate() {
        if i > 0 {
            text.push(' ');
        }
        let width = *width;
        match align {
            Align::Left => write!(text, "{cell:<width$}"),
            Align::Right => write!(text, "{cell:>width$}"),
        }
        .expect("write to String");
    }
    text.push('\n');
    text
}

fn header_of(columns: &[(&str, usize, Align)]) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let dashes: usize = columns.iter().map(|c| c.1).sum::<usize>() + columns.len() - 1;
    cells(&names, columns) + &"-".repeat(dashes) + "\n"
}

fn table_columns(verbose: bool) -> &'static [(&'static str, usize, Align)] {
    &COLUMNS[..if verbose { 10 } else { 5 }]
}

/// The header and dash line of the table.
pub fn header(verbose: bool) -> String {
    header_of(table_columns(verbose))
}

/// One row's line.
pub fn line(r: &Row, verbose: bool) -> String {
    let all = [
        r.id.as_str(),
        &r.type_name,
        &r.mode,
        &r.status,
        &r.requests,
        &r.pending,
        &r.hwtype,
        &r.qdepth,
        &r.functions,
        &r.driver,
    ];
    let columns = table_columns(verbose);
    cells(&all[..columns.len()], columns)
}

fn default_domain(root: &dyn SysfsRoot) -> Option<i64> {
    scan::bus_attr(root, "ap_domain").and_then(|t| t.trim().parse().ok())
}

/// The bits of a `0x...` mask file, domain 0 first.
fn mask_bits(text: &str) -> Option<Vec<bool>> {
    let hex = text.trim().strip_prefix("0x")?;
    let mut bits = Vec::with_capacity(hex.len() * 4);
    for c in hex.chars() {
        let v = c.to_digit(16)?;
        bits.extend((0..4).rev().map(|i| v & (1 << i) != 0));
    }
    Some(bits)
}

fn usage_domain(root: &dyn SysfsRoot, d: i64) -> bool {
    scan::bus_attr(root, "ap_usage_domain_mask")
        .and_then(|m| mask_bits(&m))
        .is_some_and(|bits| usize::try_from(d).is_ok_and(|d| bits.get(d) == Some(&true)))
}

/// `Warning: Default domain 0x.. is not available.` when `ap_domain` is -1
/// or not a usage domain (v2.42 on; -1 prints as 0xffffffffffffffff).
pub fn default_domain_warning(root: &dyn SysfsRoot) -> String {
    match default_domain(root) {
        Some(d) if d >= 0 && usage_domain(root, d) => String::new(),
        Some(d) => format!(
            "Warning: Default domain 0x{:02x} is not available.\n",
            d as u64
        ),
        None => String::new(),
    }
}

/// `lszcrypt -b`: the bus attributes (v2.42's form).
pub fn bus(root: &dyn SysfsRoot) -> String {
    let mut out = String::new();
    let attr = |name| scan::bus_attr(root, name);
    if let Some(f) = attr("features").filter(|f| !f.trim().is_empty()) {
        let _ = writeln!(out, "features: {}", f.trim());
    }
    match default_domain(root) {
        Some(d) if d < 0 => out.push_str("ap_domain=-1 (not set)\n"),
        Some(d) if usage_domain(root, d) => {
            let _ = writeln!(out, "ap_domain=0x{d:02x}");
        }
        Some(d) => {
            let _ = writeln!(out, "ap_domain=0x{d:02x} (unavailable)");
        }
        None => {}
    }
    if let Some(max) = attr("ap_max_domain_id").and_then(|t| t.trim().parse::<u32>().ok()) {
        let _ = writeln!(out, "ap_max_domain_id=0x{max:02x}");
    }
    let on = |v: Option<String>| {
        if v.is_some_and(|v| v.trim() == "1") {
            "enabled"
        } else {
            "disabled"
        }
    };
    if let Some(i) = attr("ap_interrupts") {
        let _ = writeln!(out, "ap_interrupts are {}", on(Some(i)));
    }
    if let Some(t) = attr("config_time") {
        let _ = writeln!(out, "config_time={} (seconds)", t.trim());
    }
    let _ = writeln!(out, "poll_thread is {}", on(attr("poll_thread")));
    if let Some(t) = attr("poll_timeout") {
        let _ = writeln!(out, "poll_timeout={} (nanoseconds)", t.trim());
    }
    out
}

/// `lszcrypt -d`: which domains are control (C), usage (U) or both (B),
/// all 256 in 16 rows whatever the maximum domain.
pub fn domains(root: &dyn SysfsRoot) -> Result<String, String> {
    let mask = |name| {
        scan::bus_attr(root, name)
            .filter(|m| !m.contains("not"))
            .and_then(|m| mask_bits(&m))
    };
    let (Some(control), Some(usage)) =
        (mask("ap_control_domain_mask"), mask("ap_usage_domain_mask"))
    else {
        return Err("Control domain mask not available.".into());
    };
    let mut out = String::from("DOMAIN");
    for i in 0..16 {
        let _ = write!(out, " {i:02x}");
    }
    out.push('\n');
    let dashes = "-".repeat(6 + 16 * 3);
    let _ = writeln!(out, "{dashes}");
    for row in 0..16 {
        let _ = write!(out, "    {:02x}", row * 16);
        for col in 0..16 {
            let d = row * 16 + col;
            let bit = |bits: &Vec<bool>| bits.get(d) == Some(&true);
            let cell = match (bit(&control), bit(&usage)) {
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
    out.push_str(&default_domain_warning(root));
    Ok(out)
}

/// `lszcrypt -s`: the serial numbers of the CCA and EP11 cards.
pub fn serial(root: &dyn SysfsRoot) -> String {
    let columns = [
        ("CARD.DOM", 8, Align::Left),
        ("TYPE", 5, Align::Left),
        ("MODE", 11, Align::Left),
        ("STATUS", 10, Align::Left),
        ("SERIALNR", 8, Align::Left),
    ];
    let mut out = header_of(&columns);
    for dir in scan::cards(root) {
        let info = scan::card_info(root, &dir.id);
        let coprocessor = info
            .type_name
            .as_deref()
            .is_some_and(|t| t.ends_with('C') || t.ends_with('P'));
        let Some(r) = scan::row(root, &info, None, false).filter(|_| coprocessor) else {
            continue;
        };
        let serial: String = scan::card_attr(root, &dir.id, "serialnr")
            .map_or("-".into(), |s| s.trim().chars().take(8).collect());
        out.push_str(&cells(
            &[&r.id, &r.type_name, &r.mode, &r.status, &serial],
            &columns,
        ));
    }
    out
}

/// `lszcrypt -c ID`: what a card can do (the lines follow its mode; CEX4
/// and newer also name the bus's message size limit), or a queue's
/// secure-execution state.
pub fn capability(root: &dyn SysfsRoot, id: &str) -> Result<String, String> {
    let invalid = || format!("Error - '{id}' is an invalid cryptographic device id.");
    if let Some((a, d)) = id.split_once('.') {
        let (Some(a), Some(d)) = (
            u8::from_str_radix(a, 16).ok(),
            u16::from_str_radix(d, 16).ok(),
        ) else {
            return Err(invalid());
        };
        let name = format!("{a:02x}.{d:04x}");
        if root
            .list(&format!("devices/ap/card{a:02x}/{name}"))
            .is_err()
        {
            return Err(invalid());
        }
        // The SE attributes (se_bind, se_associate, mkvps) exist only in
        // secure-execution guests, which the emulator does not model.
        return Ok(format!("queue {name} capabilities:\n"));
    }
    let a = u8::from_str_radix(id.trim_start_matches("0x"), 16).map_err(|_| invalid())?;
    let card = format!("{a:02x}");
    let hwtype: u32 = scan::card_attr(root, &card, "hwtype")
        .and_then(|t| t.trim().parse().ok())
        .filter(|h| *h >= 9)
        .ok_or_else(invalid)?;
    let kind = scan::card_attr(root, &card, "type")
        .and_then(|t| t.trim().chars().last())
        .unwrap_or('-');
    let mut out = format!("card{card} provides capability for:\n");
    match kind {
        'A' => out.push_str("RSA 4K Clear Key\n"),
        'C' => out.push_str("RSA 4K Clear Key\nCCA Secure Key (full function set)\nLong RNG\n"),
        'P' => out.push_str("EP11 Secure Key\n"),
        _ => {
            return Ok(format!(
                "Detailed capability information for card{card} (hardware type {hwtype}) is not available.\n"
            ))
        }
    }
    if hwtype >= 10 {
        let limit = scan::card_attr(root, &card, "max_msg_size")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(12288);
        let _ = writeln!(out, "AP bus max message size limit {} Kb", limit / 1024);
    }
    Ok(out)
}
