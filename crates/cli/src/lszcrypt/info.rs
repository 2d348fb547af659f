//! lszcrypt's other views: `-b` (the bus), `-d` (the domains), `-s` (the
//! serial numbers) and `-c` (a card's or queue's capabilities).

use std::fmt::Write as _;

use super::table::{mode_name, status_text};
use super::tree::{mask_bit, scan_hex_pair, strtol_whole, Tree};
use super::{dashes, line, Align, Listing};

/// `lszcrypt -b`.
pub(super) fn bus(t: &Tree) -> Listing {
    let mut out = String::new();
    let ap = |name: &str| format!("bus/ap/{name}");
    let usage = t.line(&ap("ap_usage_domain_mask")).unwrap_or_default();
    let features = t.line(&ap("features")).unwrap_or_default();
    if !features.is_empty() {
        let _ = writeln!(out, "features: {features}");
    }
    let domain = t.long(&ap("ap_domain")).unwrap_or(-1);
    if domain < 0 {
        out.push_str("ap_domain=-1 (not set)\n");
    } else if mask_bit(&usage, domain) == Some(true) {
        let _ = writeln!(out, "ap_domain=0x{domain:02x}");
    } else {
        let _ = writeln!(out, "ap_domain=0x{domain:02x} (unavailable)");
    }
    let max = t.long(&ap("ap_max_domain_id")).unwrap_or(0);
    let _ = writeln!(out, "ap_max_domain_id=0x{:02x}", max as u64);
    let on = |name: &str| {
        if t.long(&ap(name)) == Some(1) {
            "enabled"
        } else {
            "disabled"
        }
    };
    if t.readable(&ap("ap_interrupts")) {
        let _ = writeln!(out, "ap_interrupts are {}", on("ap_interrupts"));
    }
    let _ = writeln!(
        out,
        "config_time={} (seconds)",
        t.long(&ap("config_time")).unwrap_or(0)
    );
    let _ = writeln!(out, "poll_thread is {}", on("poll_thread"));
    if let Some(ns) = t.line(&ap("poll_timeout")) {
        let ns = super::tree::scan_decimal(&ns).map_or(0, |(v, _)| v as u64);
        let _ = writeln!(out, "poll_timeout={ns} (nanoseconds)");
    }
    Listing::ok(out)
}

/// `lszcrypt -d`: all 256 domains of the masks, 16 rows, whatever the
/// host's maximum domain; then the default-domain warning.
pub(super) fn domains(t: &Tree) -> Listing {
    let control = t.line("bus/ap/ap_control_domain_mask").unwrap_or_default();
    if control.contains("not") {
        return Listing::failed("Control domain mask not available.");
    }
    let usage = t.line("bus/ap/ap_usage_domain_mask").unwrap_or_default();
    if usage.contains("not") {
        return Listing::failed("Usage domain mask not available.");
    }
    let names: Vec<String> = (0..16).map(|i| format!("{i:02x}")).collect();
    let mut header = vec![("DOMAIN", 6, Align::Right)];
    header.extend(names.iter().map(|n| (n.as_str(), 2, Align::Right)));
    let mut out = line(&header);
    let widths: Vec<usize> = header.iter().map(|c| c.1).collect();
    out.push_str(&dashes(widths.iter().copied()));
    for row in 0..16i64 {
        let label = format!("{:02x}", row * 16);
        let mut cells = vec![(label.as_str(), 6, Align::Right)];
        for col in 0..16 {
            let d = row * 16 + col;
            let cell = match (
                mask_bit(&control, d) == Some(true),
                mask_bit(&usage, d) == Some(true),
            ) {
                (true, true) => "B",
                (true, false) => "C",
                (false, true) => "U",
                (false, false) => ".",
            };
            cells.push((cell, 2, Align::Right));
        }
        out.push_str(&line(&cells));
    }
    out.push_str(&dashes(widths.iter().copied()));
    out.push_str("C: Control domain\nU: Usage domain\nB: Both (Control + Usage domain)\n");
    out.push_str(&t.default_domain_warning());
    Listing::ok(out)
}

/// `lszcrypt -s`: CCA and EP11 cards with the first 8 characters of their
/// `serialnr`.
pub(super) fn serials(t: &Tree) -> Listing {
    let cards = t.cards();
    if cards.is_empty() {
        return Listing::failed("No crypto card devices found.");
    }
    let spec = [
        ("CARD.DOM", 8, Align::Left),
        ("TYPE", 5, Align::Left),
        ("MODE", 11, Align::Left),
        ("STATUS", 10, Align::Left),
        ("SERIALNR", 8, Align::Left),
    ];
    let mut out = line(&spec);
    out.push_str(&dashes(spec.iter().map(|c| c.1)));
    for card in cards {
        let grp = format!("devices/ap/{card}");
        let attr = |name: &str| format!("{grp}/{name}");
        if !(t.readable(&attr("type")) && t.readable(&attr("online"))) {
            continue;
        }
        // CCA before EP11; accelerators have no serial number.
        let functions = t.hex(&attr("ap_functions")).unwrap_or(0);
        let mode = match mode_name(functions & 0x1400_0000) {
            m @ ("CCA-Coproc" | "EP11-Coproc") => m,
            _ => continue,
        };
        let status = status_text(
            t.flag(&attr("config")),
            t.flag(&attr("chkstop")),
            t.flag(&attr("online")),
        )
        .unwrap_or("-");
        let serial = t
            .line(&attr("serialnr"))
            .map_or("-".to_string(), |s| s.chars().take(8).collect());
        let type_name = t.line(&attr("type")).unwrap_or_default();
        let id = card.strip_prefix("card").unwrap_or(&card);
        let cells = [id, type_name.as_str(), mode, status, serial.as_str()];
        let row: Vec<_> = cells
            .iter()
            .zip(spec)
            .map(|(c, s)| (*c, s.1, s.2))
            .collect();
        out.push_str(&line(&row));
    }
    Listing::ok(out)
}

/// `lszcrypt -c DEVICE_ID`: `xx.yyyy` a queue (hex), else a card number
/// as strtol reads it (decimal, 0x hex, 0 octal).
pub(super) fn capability(t: &Tree, id: &str) -> Listing {
    if let (2, card, dom) = scan_hex_pair(id) {
        return queue_capability(t, card as u32, dom as u32);
    }
    match strtol_whole(id) {
        Some(card @ 0..=255) => card_capability(t, card as u32),
        _ => Listing::failed(format!(
            "Error - '{id}' is an invalid cryptographic device id."
        )),
    }
}

fn card_capability(t: &Tree, id: u32) -> Listing {
    let card = format!("card{id:02x}");
    let dev = format!("devices/ap/{card}");
    if !t.is_dir(&dev) {
        return Listing::failed(format!(
            "Error - cryptographic device {card} does not exist."
        ));
    }
    let attr = |name: &str| format!("{dev}/{name}");
    let hwtype = t.long(&attr("hwtype")).unwrap_or(0);
    let f = t.hex(&attr("ap_functions")).unwrap_or(0);
    let max_msg = t.long(&attr("max_msg_size")).unwrap_or(0);
    let unknown = format!(
        "Detailed capability information for {card} (hardware type {hwtype}) is not available.\n"
    );
    if !(t.readable(&attr("type")) && t.readable(&attr("online"))) {
        return Listing::ok(unknown);
    }
    let class = if f & 0x0080_0000 != 0 {
        " (full function set)"
    } else if f & 0x0040_0000 != 0 {
        " (restricted function set)"
    } else {
        ""
    };
    let rsa = if f & 0x6000_0000 != 0 {
        "RSA 4K Clear Key\n"
    } else {
        "RSA 2K Clear Key\n"
    };
    let cca = format!("RSA 4K Clear Key\nCCA Secure Key{class}\n");
    let mut out = format!("{card} provides capability for:\n");
    match hwtype {
        6 | 8 => out.push_str(rsa),
        7 | 9 => out.push_str(&format!("{cca}Long RNG\n")),
        10..=14 => {
            if f & 0x0800_0000 != 0 {
                out.push_str(rsa);
            } else if f & 0x1000_0000 != 0 {
                out.push_str(&cca);
                if f & 0x0100_0000 != 0 {
                    out.push_str("Hardware support for stateless filtering\n");
                }
                out.push_str("Long RNG\n");
            } else if f & 0x0400_0000 != 0 {
                out.push_str("EP11 Secure Key\n");
            } else {
                out.push_str(&unknown);
            }
            if max_msg > 0 {
                let _ = writeln!(out, "AP bus max message size limit {} Kb", max_msg / 1024);
            }
        }
        _ => out.push_str(&unknown),
    }
    Listing::ok(out)
}

fn queue_capability(t: &Tree, card: u32, dom: u32) -> Listing {
    let name = format!("{card:02x}.{dom:04x}");
    let dev = format!("devices/ap/card{card:02x}/{name}");
    if !t.is_dir(&dev) {
        return Listing::failed(format!(
            "Error - cryptographic queue device {name} does not exist."
        ));
    }
    let mut out = format!("queue {name} capabilities:\n");
    let attr = |a: &str| format!("{dev}/{a}");
    for (file, label) in [
        ("se_bind", "SE bind state"),
        ("se_associate", "SE association state"),
    ] {
        if let Some(state) = t.line(&attr(file)) {
            let _ = writeln!(out, "{label}: {state}");
        }
    }
    if let Ok(mkvps) = t.root.read(&attr("mkvps")) {
        for l in mkvps.split_inclusive('\n') {
            if ["WK CUR", "AES CUR", "APKA CUR", "ASYM CUR"]
                .iter()
                .any(|k| l.contains(k))
            {
                let _ = write!(out, "MK {l}");
            }
        }
    }
    Listing::ok(out)
}
