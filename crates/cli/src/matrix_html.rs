//! `apmatrix matrix --html FILE`: the status of every APQN as one page to
//! look at. An adapters x domains grid coloured by owner, a legend of the
//! mdevs, the drift and what the next boot does, and for the APQN under
//! the pointer its layers (each cell's `title`, and a side panel).
//!
//! The page is self-contained: inline CSS and JS, no font, image, script
//! or link outside it, and a Content-Security-Policy that forbids loading
//! any. Every value from the status is escaped (guest names, paths and
//! node-device names come from files other users write); the script shows
//! them with `textContent` only.
//!
//! Size: a cell carries its layers in data attributes, and the script
//! writes each cell's `title` from them when the page loads (the layers as
//! text in the file would double a 256 x 85 page).
//!
//! What a test can query (stable):
//! - `table#matrix` (class `large` or `compact`): a row
//!   `tr[data-adapter="05"]` per adapter that has a card or is named by an
//!   APQN row, a column `th[data-domain="0004"]` per domain an APQN row
//!   names. Each APQN of the status is a `td.apqn.owner-<owner>` (`host`,
//!   `free`, `unbound`, `mdev`, `none`) with `data-apqn="05.0004"`,
//!   `data-owner`, `data-at-boot` (`host` or `vfio_ap`), and where there
//!   is one `data-mdev` (UUID), `data-guest`, `data-in-guest` (`yes`/`no`),
//!   `data-defs` (the UUIDs of the definitions naming it, space-separated;
//!   their start mode and node device are on `tr[data-uuid]` of
//!   `#definitions`). `data-after-boot` (and `data-after-boot-mdev`) only
//!   where the next boot changes the owner: absent, it stays as it is.
//!   Classes: `drift` when a drift item names it (an outline and a corner
//!   mark), `unseen` when its guest does not see it, `absent` when the
//!   queue does not exist though something holds it, `m<N>` for mdev N's
//!   colour. Its text is the glyph `apmatrix matrix` prints: `H` host, `.`
//!   free, `-` unbound, the mdev's label letter, nothing for none. Grid
//!   places without an APQN row are `td.gap`. After the script: `title`.
//! - `ul#mdevs`: `li[data-mdev=UUID]` per mdev (active ones first, in UUID
//!   order, so the labels are `apmatrix matrix`'s), with `data-label`,
//!   `data-index` (the N of `m<N>`), `data-guest`, and when it is defined
//!   `data-start` (`auto`/`manual`) and `data-nodedev`.
//! - `ol#drift`: `li[data-kind]` per drift item (`masks`, `undefined`,
//!   `differs`, `not_started`, `boot_failure`, `unreadable`, `guest`), with
//!   `data-mdev`, `data-apqns` (space-separated), `.message` and `.fix`.
//! - `ol#next-boot`: `li[data-uuid][data-started="yes"|"no"]` per autostart
//!   definition, in boot order, with its ap-check messages and refusal.
//! - `table#definitions`: `tr[data-uuid][data-start][data-nodedev]`.
//! - `aside#panel`: the layers of the APQN under the pointer, or of the one
//!   clicked or named by the address's fragment (`page.html#05.0004`);
//!   `body[data-js="ready"]` once the script ran.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use apmatrix_admin::boot::BootStart;
use apmatrix_admin::status::{ApqnStatus, DefinitionStatus, Status};
use uuid::Uuid;

#[path = "matrix_html/lists.rs"]
mod lists;
use lists::{definitions, drift, legend, masks, next_boot};

use crate::matrix_view::label;

/// Up to this many domains, the cells are large.
const LARGE_CELLS: usize = 24;

/// Appends `text` escaped for HTML text and quoted attribute values.
fn push_esc(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_esc(&mut out, text);
    out
}

/// What the page says of one mdev.
struct MdevInfo<'a> {
    uuid: Uuid,
    index: usize,
    label: char,
    guest: Option<&'a str>,
    apqns: usize,
    seen: usize,
    after_boot: usize,
    definition: Option<&'a DefinitionStatus>,
    boot: Option<&'a BootStart>,
}

/// Every mdev the status names: the active ones first in UUID order (so
/// their labels are those of `apmatrix matrix`), then the others.
fn mdevs(status: &Status) -> Vec<MdevInfo<'_>> {
    let active: BTreeSet<Uuid> = status.mdevs.iter().map(|m| m.uuid).collect();
    let mut others: BTreeSet<Uuid> = status.definitions.iter().map(|d| d.uuid).collect();
    others.extend(status.apqns.iter().filter_map(|q| q.after_boot_mdev));
    others.extend(status.drift.iter().filter_map(|d| d.mdev));
    others.extend(status.next_boot.iter().map(|b| b.uuid));
    let order: Vec<Uuid> = active
        .iter()
        .copied()
        .chain(others.into_iter().filter(|u| !active.contains(u)))
        .collect();
    order
        .into_iter()
        .enumerate()
        .map(|(index, uuid)| {
            let mine = || status.apqns.iter().filter(move |q| q.mdev == Some(uuid));
            MdevInfo {
                uuid,
                index,
                label: label(index),
                guest: status
                    .mdevs
                    .iter()
                    .find(|m| m.uuid == uuid)
                    .and_then(|m| m.guest.as_deref()),
                apqns: mine().count(),
                seen: mine().filter(|q| q.in_guest).count(),
                after_boot: status
                    .apqns
                    .iter()
                    .filter(|q| q.after_boot_mdev == Some(uuid))
                    .count(),
                definition: status.definitions.iter().find(|d| d.uuid == uuid),
                boot: status.next_boot.iter().find(|b| b.uuid == uuid),
            }
        })
        .collect()
}

/// The glyph of an owner, as `apmatrix matrix` prints it.
fn glyph(owner: &str, label: Option<char>) -> char {
    match owner {
        "host" => 'H',
        "free" => '.',
        "unbound" => '-',
        "mdev" => label.unwrap_or('#'),
        _ => ' ',
    }
}

/// The page: one HTML document, nothing loaded from elsewhere.
pub(crate) fn page(status: &Status, title: &str) -> String {
    let mdevs = mdevs(status);
    let labels: HashMap<Uuid, char> = mdevs.iter().map(|m| (m.uuid, m.label)).collect();
    let index: HashMap<Uuid, usize> = mdevs.iter().map(|m| (m.uuid, m.index)).collect();

    let mut out = String::with_capacity(4096 + status.apqns.len() * 170);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>",
    );
    push_esc(&mut out, title);
    out.push_str("</title>\n<style>\n");
    out.push_str(CSS);
    for m in &mdevs {
        // Golden-angle hues: neighbours in the legend differ most.
        let hue = (m.index as f64 * 137.508 + 12.0) % 360.0;
        let _ = write!(out, ".m{}{{--h:{hue:.0}}}", m.index);
    }
    out.push_str("\n</style>\n</head>\n<body>\n");

    header(&mut out, status, title);
    out.push_str("<div class=\"layout\">\n<main>\n");
    grid(&mut out, status, &labels, &index);
    legend(&mut out, &mdevs);
    drift(&mut out, status, &index);
    next_boot(&mut out, status, &labels, &index);
    definitions(&mut out, status, &index);
    masks(&mut out, status);
    out.push_str("</main>\n");
    out.push_str(PANEL);
    out.push_str("</div>\n<script>\n");
    out.push_str(JS);
    out.push_str("</script>\n</body>\n</html>\n");
    out
}

fn header(out: &mut String, s: &Status, title: &str) {
    let count = |owner: &str| s.apqns.iter().filter(|q| q.owner == owner).count();
    let drifting = s.apqns.iter().filter(|q| q.drift).count();
    out.push_str("<header>\n<h1>");
    push_esc(out, title);
    out.push_str("</h1>\n<p class=\"sub\">");
    let _ = write!(
        out,
        "kernel rules <b>{}</b> · {} card{} · usage domains <code>{}</code> · ",
        esc(s.profile),
        s.cards.len(),
        if s.cards.len() == 1 { "" } else { "s" },
        esc(&s.usage_domains),
    );
    if s.guests.is_empty() {
        out.push_str("no running guest");
    } else {
        const SHOWN: usize = 12;
        out.push_str("guests ");
        for (i, g) in s.guests.iter().take(SHOWN).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str("<b>");
            push_esc(out, g);
            out.push_str("</b>");
        }
        if s.guests.len() > SHOWN {
            let _ = write!(out, " and {} more", s.guests.len() - SHOWN);
        }
    }
    out.push_str(if s.ap_check {
        " · ap-check installed"
    } else {
        " · no ap-check"
    });
    out.push_str("</p>\n<ul id=\"owners\" class=\"chips\">\n");
    for (owner, words) in [
        ("host", "host (cex4queue)"),
        ("free", "free for vfio_ap"),
        ("unbound", "unbound (card older than CEX4)"),
        ("mdev", "in an mdev"),
        ("none", "no such queue"),
    ] {
        let _ = writeln!(
            out,
            "<li data-owner=\"{owner}\"><span class=\"sw owner-{owner}\">{}</span>{words} <b>{}</b></li>",
            glyph(owner, Some('a')),
            count(owner)
        );
    }
    let _ = writeln!(
        out,
        "<li data-owner=\"drift\" class=\"{}\"><span class=\"sw owner-free drift\"></span>drifting <b>{drifting}</b></li>",
        if drifting > 0 { "bad" } else { "good" }
    );
    out.push_str("</ul>\n</header>\n");
}

fn grid(out: &mut String, s: &Status, labels: &HashMap<Uuid, char>, index: &HashMap<Uuid, usize>) {
    let mut adapters: BTreeSet<u8> = s.cards.iter().map(|c| c.adapter).collect();
    adapters.extend(s.apqns.iter().map(|q| q.apqn.adapter.0));
    let domains: BTreeSet<u8> = s.apqns.iter().map(|q| q.apqn.domain.0).collect();
    let at: BTreeMap<(u8, u8), &ApqnStatus> = s
        .apqns
        .iter()
        .map(|q| ((q.apqn.adapter.0, q.apqn.domain.0), q))
        .collect();
    let cards: HashMap<u8, _> = s.cards.iter().map(|c| (c.adapter, c)).collect();

    out.push_str(
        "<section id=\"grid\">\n<div class=\"bar\"><h2>APQN owners</h2>\
         <span class=\"hint\">a row per adapter, a column per domain (hex)</span>\
         <fieldset id=\"view\"><legend>show</legend>\
         <label><input type=\"radio\" name=\"view\" value=\"now\" checked> now</label>\
         <label><input type=\"radio\" name=\"view\" value=\"boot\"> boot masks</label>\
         <label><input type=\"radio\" name=\"view\" value=\"next\"> after next boot</label>\
         </fieldset></div>\n",
    );
    if domains.is_empty() || adapters.is_empty() {
        out.push_str(
            "<p class=\"empty\">The host has no queues and no mdev or definition names any.</p>\n",
        );
    }
    let size = if domains.len() <= LARGE_CELLS {
        "large"
    } else {
        "compact"
    };
    let _ = write!(
        out,
        "<div class=\"wrap\">\n<table id=\"matrix\" class=\"{size}\">\n<thead><tr><th class=\"corner\">adapter \\ domain</th>"
    );
    for d in &domains {
        let _ = write!(
            out,
            "<th data-domain=\"{d:04x}\" title=\"domain {d:#04x} ({d})\">{d:02x}</th>"
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for a in &adapters {
        let _ = write!(out, "<tr data-adapter=\"{a:02x}\">");
        match cards.get(a) {
            Some(c) => {
                let _ = write!(
                    out,
                    "<th scope=\"row\" class=\"{}\" title=\"card {a:02x}: {}, hwtype {}{}\">{a:02x}<small>{}</small></th>",
                    if c.online { "card" } else { "card offline" },
                    esc(&c.type_name),
                    c.hwtype,
                    if c.online { "" } else { ", offline" },
                    esc(&c.type_name),
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<th scope=\"row\" class=\"nocard\" title=\"adapter {a:02x}: no card\">{a:02x}<small>no card</small></th>"
                );
            }
        }
        for d in &domains {
            match at.get(&(*a, *d)) {
                Some(q) => cell(out, q, labels, index),
                None => out.push_str("<td class=\"gap\"></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    out.push_str(
        "<ul class=\"marks\">\
         <li><span class=\"sw owner-free drift\"></span>drift: a drift item below names it</li>\
         <li><span class=\"sw owner-mdev m0 unseen\">a</span>its guest does not see it</li>\
         <li><span class=\"sw owner-mdev m0 absent\">a</span>in an mdev, but no such queue</li>\
         <li><span class=\"sw owner-none\"></span>no such queue, in no mdev</li>\
         <li>click a cell to keep its layers in the panel; <code>#05.0004</code> in the address does too</li></ul>\n\
         </section>\n",
    );
}

fn cell(
    out: &mut String,
    q: &ApqnStatus,
    labels: &HashMap<Uuid, char>,
    index: &HashMap<Uuid, usize>,
) {
    let _ = write!(out, "<td class=\"apqn owner-{}", esc(q.owner));
    if let Some(i) = q.mdev.and_then(|u| index.get(&u)) {
        let _ = write!(out, " m{i}");
    }
    if q.drift {
        out.push_str(" drift");
    }
    if q.guest.is_some() && !q.in_guest {
        out.push_str(" unseen");
    }
    if !q.exists && q.owner != "none" {
        out.push_str(" absent");
    }
    let _ = write!(
        out,
        "\" data-apqn=\"{}\" data-owner=\"{}\"",
        q.apqn,
        esc(q.owner)
    );
    if let Some(u) = q.mdev {
        let _ = write!(out, " data-mdev=\"{u}\"");
    }
    if let Some(g) = &q.guest {
        out.push_str(" data-guest=\"");
        push_esc(out, g);
        let _ = write!(
            out,
            "\" data-in-guest=\"{}\"",
            if q.in_guest { "yes" } else { "no" }
        );
    }
    let _ = write!(out, " data-at-boot=\"{}\"", esc(q.at_boot));
    // Only where the next boot changes it: `td[data-after-boot]` are the
    // cells that change.
    if q.after_boot != q.owner || q.after_boot_mdev != q.mdev {
        let _ = write!(out, " data-after-boot=\"{}\"", esc(q.after_boot));
        if let Some(u) = q.after_boot_mdev {
            let _ = write!(out, " data-after-boot-mdev=\"{u}\"");
        }
    }
    if !q.definitions.is_empty() {
        out.push_str(" data-defs=\"");
        for (i, d) in q.definitions.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{}", d.uuid);
        }
        out.push('"');
    }
    out.push('>');
    let g = glyph(q.owner, q.mdev.and_then(|u| labels.get(&u).copied()));
    if g != ' ' {
        out.push(g);
    }
    out.push_str("</td>");
}

fn swatch(out: &mut String, label: char, index: Option<usize>) {
    match index {
        Some(i) => {
            let _ = write!(out, "<span class=\"sw owner-mdev m{i}\">{label}</span>");
        }
        None => out.push_str("<span class=\"sw owner-none\"></span>"),
    }
}

const PANEL: &str = "<aside id=\"panel\" aria-live=\"polite\">\n\
<h2 id=\"panel-title\">APQN layers</h2>\n\
<div id=\"panel-body\"><p class=\"hint\">Point at a cell to see its layers: who owns it now, \
the guest and whether it sees it, whom the boot masks give it, the definitions naming it, and \
its owner after the next boot. Click a cell to keep it here.</p>\n\
<p class=\"hint\">Point at an mdev or a drift item to pick out its APQNs.</p></div>\n\
</aside>\n";

const CSS: &str = include_str!("matrix_html/page.css");

/// The script: the side panel, picking out an mdev's or a drift item's
/// cells, and the view switch. It builds everything with textContent, so
/// nothing it shows is parsed as HTML.
const JS: &str = include_str!("matrix_html/page.js");

#[cfg(test)]
#[path = "matrix_html/tests.rs"]
mod tests;
