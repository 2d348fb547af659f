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

/// Labels as `apmatrix matrix` gives them; `#` after these.
const LABELS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

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
    let active: BTreeSet<Uuid> = status.apqns.iter().filter_map(|q| q.mdev).collect();
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
                label: LABELS.get(index).map_or('#', |&b| b as char),
                guest: mine().find_map(|q| q.guest.as_deref()),
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

fn legend(out: &mut String, mdevs: &[MdevInfo<'_>]) {
    out.push_str("<section id=\"legend\">\n<h2>Mediated devices</h2>\n<ul id=\"mdevs\">\n");
    if mdevs.is_empty() {
        out.push_str("<li class=\"none\">No mdev is active or defined.</li>\n");
    }
    for m in mdevs {
        let _ = write!(
            out,
            "<li data-mdev=\"{}\" data-label=\"{}\" data-index=\"{}\"",
            m.uuid, m.label, m.index
        );
        if let Some(g) = m.guest {
            out.push_str(" data-guest=\"");
            push_esc(out, g);
            out.push('"');
        }
        if let Some(d) = m.definition {
            let _ = write!(
                out,
                " data-start=\"{}\" data-nodedev=\"{}\"",
                esc(d.start),
                esc(&d.nodedev)
            );
        }
        out.push('>');
        swatch(out, m.label, Some(m.index));
        let _ = write!(out, "<div><code class=\"uuid\">{}</code>", m.uuid);
        out.push_str("<span class=\"facts\">");
        match (m.guest, m.apqns) {
            (Some(g), n) => {
                out.push_str("guest <b class=\"guest\">");
                push_esc(out, g);
                let _ = write!(out, "</b> sees {} of its {n} APQN{}", m.seen, plural(n));
            }
            (None, 0) => out.push_str("not active"),
            (None, n) => {
                let _ = write!(out, "no guest, {n} APQN{}", plural(n));
            }
        }
        match m.definition {
            Some(d) => {
                let _ = write!(
                    out,
                    " · defined, start <b>{}</b> · node device <code>{}</code>",
                    esc(d.start),
                    esc(&d.nodedev)
                );
                if d.active && !d.matches_active {
                    out.push_str(
                        " · <span class=\"bad\">runs a matrix unlike its definition</span>",
                    );
                }
            }
            None => out.push_str(" · <span class=\"warn\">not defined</span>"),
        }
        match m.boot {
            Some(b) if b.started => {
                let _ = write!(
                    out,
                    " · next boot: starts with {} APQN{}",
                    m.after_boot,
                    plural(m.after_boot)
                );
            }
            Some(_) => out.push_str(" · <span class=\"bad\">next boot: fails to start</span>"),
            None if m.after_boot > 0 => {
                let _ = write!(
                    out,
                    " · next boot: {} APQN{}",
                    m.after_boot,
                    plural(m.after_boot)
                );
            }
            None => out.push_str(" · next boot: not started"),
        }
        out.push_str("</span></div></li>\n");
    }
    out.push_str("</ul>\n</section>\n");
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn drift(out: &mut String, s: &Status, index: &HashMap<Uuid, usize>) {
    let _ = writeln!(
        out,
        "<section id=\"drift-section\">\n<h2>Drift <span class=\"count\">{}</span></h2>",
        s.drift.len()
    );
    if s.drift.is_empty() {
        out.push_str("<p class=\"good\">No drift: the layers agree.</p>\n");
    }
    out.push_str("<ol id=\"drift\">\n");
    for d in &s.drift {
        let _ = write!(out, "<li data-kind=\"{}\"", esc(d.kind));
        if let Some(u) = d.mdev {
            let _ = write!(out, " data-mdev=\"{u}\"");
        }
        out.push_str(" data-apqns=\"");
        for (i, q) in d.apqns.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{q}");
        }
        out.push_str("\">");
        let _ = write!(
            out,
            "<span class=\"kind\">{}</span>",
            esc(&d.kind.replace('_', " "))
        );
        if let Some(u) = d.mdev {
            let label = index
                .get(&u)
                .map(|&i| (LABELS.get(i).map_or('#', |&b| b as char), i));
            if let Some((l, i)) = label {
                swatch(out, l, Some(i));
            }
        }
        out.push_str("<p class=\"message\">");
        push_esc(out, &d.message);
        out.push_str("</p><p class=\"fix\"><span>fix</span> ");
        push_esc(out, &d.fix);
        out.push_str("</p></li>\n");
    }
    out.push_str("</ol>\n</section>\n");
}

fn next_boot(
    out: &mut String,
    s: &Status,
    labels: &HashMap<Uuid, char>,
    index: &HashMap<Uuid, usize>,
) {
    out.push_str("<section id=\"boot-section\">\n<h2>Next boot</h2>\n");
    let failed = s.next_boot.iter().filter(|b| !b.started).count();
    if s.next_boot.is_empty() {
        out.push_str("<p>No autostart definition: the next boot starts no mdev.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p>mdevctl starts {} autostart mdev{} in this order{}.</p>",
            s.next_boot.len(),
            plural(s.next_boot.len()),
            if failed > 0 {
                format!(
                    "; <b class=\"bad\">{failed} fail{}</b>",
                    if failed == 1 { "s" } else { "" }
                )
            } else {
                String::new()
            }
        );
    }
    out.push_str("<ol id=\"next-boot\">\n");
    for b in &s.next_boot {
        let _ = write!(
            out,
            "<li data-uuid=\"{}\" data-started=\"{}\" class=\"{}\">",
            b.uuid,
            if b.started { "yes" } else { "no" },
            if b.started { "good" } else { "bad" }
        );
        swatch(
            out,
            labels.get(&b.uuid).copied().unwrap_or('#'),
            index.get(&b.uuid).copied(),
        );
        let _ = write!(
            out,
            "<code class=\"uuid\">{}</code> {}",
            b.uuid,
            if b.started {
                "starts"
            } else {
                "fails to start"
            }
        );
        if !b.ap_check.is_empty() || b.kernel.is_some() {
            out.push_str("<ul>");
            for m in &b.ap_check {
                out.push_str("<li>ap-check: ");
                push_esc(out, m);
                out.push_str("</li>");
            }
            if let Some(k) = &b.kernel {
                let _ = write!(
                    out,
                    "<li>the kernel refuses <code>{} {}</code> with <b>{}</b> ({})</li>",
                    esc(&k.attribute),
                    esc(&k.value),
                    esc(&k.errno),
                    esc(&k.message)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ol>\n</section>\n");
}

fn definitions(out: &mut String, s: &Status, index: &HashMap<Uuid, usize>) {
    out.push_str("<section id=\"definitions-section\">\n<h2>Definitions</h2>\n");
    if s.definitions.is_empty() {
        out.push_str("<p>No mdevctl definition.</p>\n");
    }
    out.push_str(
        "<table id=\"definitions\">\n<thead><tr><th></th><th>uuid</th><th>start</th>\
         <th>node device</th><th>adapters</th><th>domains</th><th>control domains</th>\
         <th>active</th><th>file</th></tr></thead>\n<tbody>\n",
    );
    for d in &s.definitions {
        let _ = write!(
            out,
            "<tr data-uuid=\"{}\" data-start=\"{}\" data-nodedev=\"{}\"><td>",
            d.uuid,
            esc(d.start),
            esc(&d.nodedev)
        );
        let i = index.get(&d.uuid).copied();
        swatch(
            out,
            i.and_then(|i| LABELS.get(i)).map_or('#', |&b| b as char),
            i,
        );
        let active = match (d.active, d.matches_active) {
            (false, _) => "<span class=\"muted\">no</span>",
            (true, true) => "yes, as defined",
            (true, false) => "<span class=\"bad\">yes, unlike its definition</span>",
        };
        let _ = writeln!(
            out,
            "</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{active}</td><td><code>{}</code></td></tr>",
            d.uuid,
            esc(d.start),
            esc(&d.nodedev),
            esc(&d.adapters),
            esc(&d.domains),
            esc(&d.control_domains),
            esc(&d.path)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn masks(out: &mut String, s: &Status) {
    let p = &s.persistent;
    let _ = write!(
        out,
        "<section id=\"masks\">\n<h2>AP bus masks</h2>\n<table class=\"masks\">\n\
         <thead><tr><th></th><th>apmask (adapters for the host)</th><th>aqmask (domains for the host)</th></tr></thead>\n<tbody>\n\
         <tr data-masks=\"active\"><th>active now</th><td><code>{}</code></td><td><code>{}</code></td></tr>\n\
         <tr data-masks=\"persistent\"><th>at boot</th><td><code>{}</code> <small>from {}</small></td><td><code>{}</code> <small>from {}</small></td></tr>\n\
         </tbody>\n</table>\n",
        esc(&s.active.apmask.to_hex_list()),
        esc(&s.active.aqmask.to_hex_list()),
        esc(&p.apmask.to_hex_list()),
        esc(&p.apmask_from),
        esc(&p.aqmask.to_hex_list()),
        esc(&p.aqmask_from),
    );
    if !p.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for w in &p.warnings {
            out.push_str("<li class=\"warn\">");
            push_esc(out, w);
            out.push_str("</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

const PANEL: &str = "<aside id=\"panel\" aria-live=\"polite\">\n\
<h2 id=\"panel-title\">APQN layers</h2>\n\
<div id=\"panel-body\"><p class=\"hint\">Point at a cell to see its layers: who owns it now, \
the guest and whether it sees it, whom the boot masks give it, the definitions naming it, and \
its owner after the next boot. Click a cell to keep it here.</p>\n\
<p class=\"hint\">Point at an mdev or a drift item to pick out its APQNs.</p></div>\n\
</aside>\n";

const CSS: &str = r##":root{color-scheme:light dark;--bg:#f5f6f8;--fg:#1c2230;--muted:#667085;--line:#d5dae2;--panel:#fff;
--host:#cfdcf3;--hostfg:#23437d;--free:#fff;--freefg:#8a94a6;--unb:#e3e3e3;--unbfg:#6b6b6b;
--drift:#d92d20;--good:#157f3b;--warn:#b54708;--mS:72%;--mL:78%;--mfg:#10131a;--hl:#1c2230}
@media (prefers-color-scheme:dark){:root{--bg:#11141a;--fg:#e5e8ee;--muted:#98a2b3;--line:#2d3440;--panel:#191d25;
--host:#253a60;--hostfg:#c4d6ff;--free:#1b1f27;--freefg:#6f7a8c;--unb:#2a2d33;--unbfg:#8c8c8c;
--drift:#ff6b5e;--good:#4ade80;--warn:#fbbf24;--mS:50%;--mL:40%;--mfg:#fff;--hl:#fff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
code,.uuid,#matrix{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
header{padding:14px 20px 10px;border-bottom:1px solid var(--line);background:var(--panel)}
h1{margin:0;font-size:20px;font-weight:650}
h2{margin:0 0 8px;font-size:15px;font-weight:650}
.sub{margin:2px 0 8px;color:var(--muted)}.sub b{color:var(--fg)}
.chips{display:flex;flex-wrap:wrap;gap:6px 14px;list-style:none;margin:0;padding:0}
.chips li{display:flex;align-items:center;gap:6px}
.layout{display:grid;grid-template-columns:minmax(0,1fr) 340px;gap:16px;padding:16px 20px;align-items:start}
main{min-width:0;display:flex;flex-direction:column;gap:16px}
section{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.bar{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 14px;margin-bottom:8px}.bar h2{margin:0}
.hint,.muted{color:var(--muted)}
fieldset{border:0;margin:0 0 0 auto;padding:0;display:flex;gap:10px}fieldset legend{float:left;color:var(--muted);margin-right:4px}
.wrap{width:fit-content;max-width:100%;overflow:auto;max-height:calc(100vh - 190px);border:1px solid var(--line);border-radius:6px}
#matrix{border-collapse:separate;border-spacing:0;font-size:11px}
#matrix th{background:var(--panel);color:var(--muted);font-weight:600;position:sticky;z-index:2}
#matrix thead th{top:0;height:22px;padding:0 1px;border-bottom:1px solid var(--line);font-size:10px}
#matrix tbody th{left:0;text-align:left;padding:0 6px;white-space:nowrap;border-right:1px solid var(--line);color:var(--fg)}
#matrix tbody th small{color:var(--muted);margin-left:5px;font-weight:400}
#matrix tbody th.nocard,#matrix tbody th.offline{font-style:italic;color:var(--muted)}
#matrix thead th.corner{left:0;z-index:3;text-align:left;padding:0 6px;font-weight:400;white-space:nowrap}
#matrix td{width:18px;min-width:18px;height:18px;padding:0;text-align:center;border-right:1px solid var(--bg);border-bottom:1px solid var(--bg);position:relative;cursor:default}
#matrix.large{font-size:15px}#matrix.large thead th{font-size:12px;height:30px}
#matrix.large tbody th{padding:0 10px}
#matrix.large td{width:42px;min-width:42px;height:36px;border-width:0 3px 3px 0}
#matrix.compact td.owner-host,#matrix.compact td.owner-free{color:color-mix(in srgb,currentColor 55%,transparent)}
.sw{display:inline-flex;align-items:center;justify-content:center;width:20px;height:20px;border-radius:4px;font:600 12px ui-monospace,monospace;flex:none;position:relative;border:1px solid var(--line)}
.owner-host{background:var(--host);color:var(--hostfg)}
.owner-free{background:var(--free);color:var(--freefg)}
.owner-unbound{background:var(--unb);color:var(--unbfg)}
.owner-none{background:repeating-linear-gradient(135deg,transparent 0 3px,var(--line) 3px 4px)}
.owner-mdev{background:hsl(var(--h,0) var(--mS) var(--mL));color:var(--mfg);font-weight:700}
.unseen{background-image:repeating-linear-gradient(45deg,transparent 0 3px,rgba(127,127,127,.45) 3px 5px)}
.absent{background:transparent;color:hsl(var(--h,0) 60% 50%);box-shadow:inset 0 0 0 1px hsl(var(--h,0) 60% 50%)}
.drift{box-shadow:inset 0 0 0 1.5px var(--drift)}
.drift::after{content:"";position:absolute;top:0;right:0;border-style:solid;border-width:0 7px 7px 0;border-color:transparent var(--drift) transparent transparent}
#matrix.large td.drift::after{border-width:0 11px 11px 0}
#matrix.compact td.drift{box-shadow:none}#matrix.compact td.drift::after{border-width:0 6px 6px 0}
.marks{display:flex;flex-wrap:wrap;gap:4px 16px;margin:8px 0 0;padding:0;list-style:none;color:var(--muted);font-size:13px}
.marks li{display:flex;align-items:center;gap:6px}
#matrix.focus td.apqn:not(.hl){opacity:.28}
#matrix td.hl{outline:2px solid var(--hl);outline-offset:-2px;z-index:1}
#matrix td.pinned{outline:3px solid var(--hl);outline-offset:-3px;z-index:1}
#mdevs,#drift,#next-boot{list-style:none;margin:0;padding:0}
#mdevs li{display:flex;gap:10px;align-items:flex-start;padding:6px 4px;border-top:1px solid var(--line)}
#mdevs li:first-child{border-top:0}
#mdevs .sw{width:26px;height:26px;font-size:14px}
#mdevs .uuid{display:block;font-size:12.5px}.facts{color:var(--muted)}.facts b,.facts code{color:var(--fg)}
#mdevs li:hover,#drift li:hover{background:color-mix(in srgb,var(--line) 40%,transparent)}
#drift li{border-left:4px solid var(--drift);padding:6px 10px;margin:6px 0;border-radius:0 6px 6px 0;background:color-mix(in srgb,var(--drift) 7%,transparent)}
#drift li[data-kind=boot_failure]{border-left-style:double;border-left-width:6px}
#drift .kind{font:600 11px system-ui,sans-serif;text-transform:uppercase;letter-spacing:.04em;color:var(--drift);margin-right:8px}
#drift .sw{width:18px;height:18px;vertical-align:middle}
#drift p{margin:3px 0;overflow-wrap:anywhere}
.fix{font-family:ui-monospace,monospace;font-size:12.5px}
.fix span{font:600 11px system-ui,sans-serif;text-transform:uppercase;color:var(--good);margin-right:6px}
#next-boot>li{padding:4px 0;display:flex;flex-wrap:wrap;gap:8px;align-items:center}
#next-boot ul{flex-basis:100%;margin:2px 0 4px 28px;padding:0 0 0 12px;color:var(--fg)}
.good{color:var(--good)}.bad{color:var(--drift)}.warn{color:var(--warn)}
#next-boot li.good>code,#next-boot li.bad>code{color:var(--fg)}
table#definitions,table.masks{border-collapse:collapse;font-size:13px;width:100%}
#definitions th,#definitions td,.masks th,.masks td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
#definitions thead th,.masks thead th{color:var(--muted);font-weight:600}
#panel{position:sticky;top:16px;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:12px 14px;max-height:calc(100vh - 32px);overflow:auto}
#panel h2{display:flex;gap:8px;align-items:center}
#panel dl{display:grid;grid-template-columns:auto 1fr;gap:4px 10px;margin:0}
#panel dt{color:var(--muted);white-space:nowrap}#panel dd{margin:0;overflow-wrap:anywhere}
#panel .pd{margin-top:10px;padding:6px 8px;border-left:3px solid var(--drift);font-size:13px}
@media (max-width:1000px){.layout{grid-template-columns:1fr}#panel{position:static;max-height:none}}
"##;

/// The script: the side panel, picking out an mdev's or a drift item's
/// cells, and the view switch. It builds everything with textContent, so
/// nothing it shows is parsed as HTML.
const JS: &str = r##"(function(){
"use strict";
var table=document.getElementById("matrix"),panel=document.getElementById("panel");
var title=document.getElementById("panel-title"),body=document.getElementById("panel-body");
var cells=table?Array.prototype.slice.call(table.querySelectorAll("td.apqn")):[];
var byApqn={},now=[],driftOf={},mdevs={},pinned=null;
cells.forEach(function(td,i){byApqn[td.dataset.apqn]=td;now[i]=[td.className,td.textContent];});
var drifts=Array.prototype.slice.call(document.querySelectorAll("#drift>li"));
drifts.forEach(function(li,n){(li.dataset.apqns||"").split(" ").forEach(function(q){if(q)(driftOf[q]=driftOf[q]||[]).push(n);});});
document.querySelectorAll("#mdevs>li[data-mdev]").forEach(function(li){mdevs[li.dataset.mdev]=li.dataset;});
var defs={};
document.querySelectorAll("#definitions tr[data-uuid]").forEach(function(tr){defs[tr.dataset.uuid]=tr.dataset;});
function owner(word,mdev){if(!mdev)return word;var m=mdevs[mdev];return "mdev "+mdev+" ("+(m?m.label:"#")+")";}
function layers(td){
  var d=td.dataset,absent=td.classList.contains("absent")||d.owner==="none";
  var l=["APQN "+d.apqn+(absent?" (no such queue)":""),"now: "+owner(d.owner,d.mdev)];
  if(d.guest!=null)l.push("guest: "+d.guest+", "+(d.inGuest==="yes"?"sees it":"does not see it"));
  l.push("at boot: "+d.atBoot);
  (d.defs||"").split(" ").forEach(function(u){if(!u)return;var f=defs[u]||{start:"?",nodedev:"?"};
    l.push("defined by: "+u+" ("+f.start+", node device "+f.nodedev+")");});
  l.push("after next boot: "+(d.afterBoot?owner(d.afterBoot,d.afterBootMdev):owner(d.owner,d.mdev)));
  if(td.classList.contains("drift"))l.push("drift: see the list below the grid");
  return l.join("\n");
}
cells.forEach(function(td){td.title=layers(td);});
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!=null)e.textContent=text;return e;}
function show(td){
  var lines=(td.getAttribute("title")||"").split("\n");
  title.textContent="";
  var sw=el("span","sw "+td.className.replace(/\b(apqn|hl|pinned)\b/g,"")+"",td.textContent);
  title.appendChild(sw);title.appendChild(el("span",null,lines[0]));
  body.textContent="";
  var dl=el("dl");
  lines.slice(1).forEach(function(l){var k=l.indexOf(": ");if(k<0){dl.appendChild(el("dd",null,l));return;}
    dl.appendChild(el("dt",null,l.slice(0,k)));dl.appendChild(el("dd",null,l.slice(k+2)));});
  body.appendChild(dl);
  (driftOf[td.dataset.apqn]||[]).forEach(function(n){
    var li=drifts[n],d=el("div","pd");
    d.appendChild(el("b","bad",li.dataset.kind.replace(/_/g," ")+": "));
    d.appendChild(document.createTextNode(li.querySelector(".message").textContent));
    body.appendChild(d);});
  if(pinned===td)body.appendChild(el("p","hint","Kept: click it again to let go."));
}
function pick(list){
  cells.forEach(function(td){td.classList.remove("hl");});
  list.forEach(function(td){td.classList.add("hl");});
  if(table)table.classList.toggle("focus",list.length>0);
}
if(table){
  table.addEventListener("mouseover",function(e){var td=e.target.closest("td.apqn");if(td&&!pinned)show(td);});
  table.addEventListener("click",function(e){var td=e.target.closest("td.apqn");if(!td)return;
    if(pinned)pinned.classList.remove("pinned");
    pinned=(pinned===td)?null:td;if(pinned)pinned.classList.add("pinned");show(td);});
}
var view="now";
document.querySelectorAll("#mdevs>li[data-mdev]").forEach(function(li){
  li.addEventListener("mouseenter",function(){var u=li.dataset.mdev;
    pick(cells.filter(function(td){var d=td.dataset;return (view==="next"&&d.afterBoot?d.afterBootMdev:d.mdev)===u;}));});
  li.addEventListener("mouseleave",function(){pick([]);});});
drifts.forEach(function(li){
  li.addEventListener("mouseenter",function(){pick((li.dataset.apqns||"").split(" ").map(function(q){return byApqn[q];}).filter(Boolean));});
  li.addEventListener("mouseleave",function(){pick([]);});
  li.addEventListener("click",function(){var q=(li.dataset.apqns||"").split(" ")[0];if(byApqn[q])byApqn[q].scrollIntoView({block:"center",inline:"center"});});});
var GLYPH={host:"H",free:".",unbound:"-",none:""};
function paint(td,owner,mdev){
  var cls="apqn owner-"+owner,text=GLYPH[owner];
  if(owner==="mdev"){var m=mdevs[mdev];cls+=m?" m"+m.index:"";text=m?m.label:"#";}
  if(td.classList.contains("drift"))cls+=" drift";
  td.className=cls;td.textContent=text==null?"":text;
}
function setView(v){
  view=v;
  cells.forEach(function(td,i){
    if(v==="now"){td.className=now[i][0];td.textContent=now[i][1];}
    else if(v==="boot")paint(td,td.dataset.atBoot==="host"?"host":"free");
    else if(td.dataset.afterBoot)paint(td,td.dataset.afterBoot,td.dataset.afterBootMdev);
    else paint(td,td.dataset.owner,td.dataset.mdev);
    if(td===pinned)td.classList.add("pinned");});
}
function fromHash(){var td=byApqn[decodeURIComponent(location.hash.slice(1))];if(!td)return;
  if(pinned)pinned.classList.remove("pinned");pinned=td;td.classList.add("pinned");show(td);
  td.scrollIntoView({block:"nearest",inline:"nearest"});}
window.addEventListener("hashchange",fromHash);fromHash();
document.querySelectorAll("#view input").forEach(function(r){r.addEventListener("change",function(){if(r.checked)setView(r.value);});});
document.body.dataset.js="ready";
})();
"##;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use apmatrix_admin::definitions::read_definitions;
    use apmatrix_admin::persistent::{boot_masks, cmdline_parameters};
    use apmatrix_admin::running::RunningGuest;
    use apmatrix_admin::status::{status, Layers};
    use apmatrix_admin::{export, observe, EmulatedRoot, WantedMdev};
    use apmatrix_model::{CpuModel, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED};

    use super::*;

    /// The status of a model host, with the definitions under `etc`.
    fn status_of(host: Host, etc: Option<&Path>) -> Status {
        let guests: Vec<RunningGuest> = host
            .guests()
            .map(|g| RunningGuest {
                name: g.name.clone(),
                mdev: g.mdev,
                cpu: Some(g.cpu.features()),
                source: "test".into(),
            })
            .collect();
        let seen = observe(&EmulatedRoot { host }).unwrap();
        let definitions = etc.map(read_definitions).unwrap_or_default();
        let boot = boot_masks(None, &cmdline_parameters(""));
        status(&Layers {
            seen: &seen,
            guests: &guests,
            boot: &boot,
            definitions: &definitions,
            ap_check: true,
        })
    }

    fn define(etc: &Path, uuid: Uuid, adapters: &[u8], domains: &[u8], autostart: bool) {
        let dir = etc.join("mdevctl.d/matrix");
        std::fs::create_dir_all(&dir).unwrap();
        let m = WantedMdev {
            uuid,
            label: uuid.to_string(),
            adapters: adapters.iter().copied().collect(),
            domains: domains.iter().copied().collect(),
            control_domains: Mask256::EMPTY,
            guest: None,
            autostart,
        };
        std::fs::write(dir.join(uuid.to_string()), export::mdevctl_json(&m)).unwrap();
    }

    const A: Uuid = Uuid::from_u128(0xa);
    const B: Uuid = Uuid::from_u128(0xb);

    /// Every owner: card 01 is a CEX3C given to vfio_ap, which does not
    /// drive it (unbound), 02 the host's, 03 given to vfio_ap with mdev A (guest g1) on 03.0000-0001 and the rest free,
    /// and a definition of B on adapter 20, which has no card (none).
    fn every_owner() -> (Status, tempfile::TempDir) {
        let topology = Topology::from_toml(
            "name = \"small\"\napxa = true\nusage_domains = \"0-3\"\ncontrol_domains = \"0-3\"\n\n\
             [[card]]\nid = 1\ntype = \"CEX3C\"\n\n[[card]]\nid = 2\ntype = \"CEX7C\"\n\n\
             [[card]]\nid = 3\ntype = \"CEX7C\"\n",
        )
        .unwrap();
        let (mut host, _) = Host::boot(topology, &SEED);
        let apmask: Mask256 = (0..=255u8).filter(|a| *a != 1 && *a != 3).collect();
        host.set_mask(MaskKind::Apmask, apmask).unwrap();
        host.create_mdev(A).unwrap();
        host.assign(&A, MatrixAxis::Adapter, 3).unwrap();
        host.assign(&A, MatrixAxis::Domain, 0).unwrap();
        host.assign(&A, MatrixAxis::Domain, 1).unwrap();
        host.start_guest("g1", Some(A), CpuModel::default())
            .unwrap();
        let etc = tempfile::tempdir().unwrap();
        define(etc.path(), B, &[0x20], &[0], true);
        (status_of(host, Some(etc.path())), etc)
    }

    /// The attributes of each `<td class="apqn ...">`, in page order.
    fn cells(page: &str) -> Vec<HashMap<String, String>> {
        page.match_indices("<td class=\"apqn")
            .map(|(at, _)| {
                let tag = &page[at + 4..at + page[at..].find('>').unwrap()];
                attributes(tag)
            })
            .collect()
    }

    fn attributes(tag: &str) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let mut rest = tag;
        while let Some(eq) = rest.find("=\"") {
            let name = rest[..eq].rsplit(' ').next().unwrap().to_string();
            let value_end = rest[eq + 2..].find('"').unwrap();
            out.insert(name, rest[eq + 2..eq + 2 + value_end].to_string());
            rest = &rest[eq + 2 + value_end + 1..];
        }
        out
    }

    fn cell<'a>(cells: &'a [HashMap<String, String>], apqn: &str) -> &'a HashMap<String, String> {
        cells
            .iter()
            .find(|c| c["data-apqn"] == apqn)
            .unwrap_or_else(|| panic!("no cell {apqn}"))
    }

    #[test]
    fn every_owner_kind_is_a_cell_with_its_glyph() {
        let (s, _etc) = every_owner();
        let page = page(&s, "small");
        let cells = cells(&page);
        assert_eq!(cells.len(), s.apqns.len());
        for q in &s.apqns {
            let c = cell(&cells, &q.apqn.to_string());
            assert_eq!(c["data-owner"], q.owner, "{}", q.apqn);
            assert!(c["class"].contains(&format!("owner-{}", q.owner)));
            assert_eq!(c["data-at-boot"], q.at_boot);
            let changes = q.after_boot != q.owner || q.after_boot_mdev != q.mdev;
            assert_eq!(
                c.get("data-after-boot").map(String::as_str),
                changes.then_some(q.after_boot)
            );
        }
        let owners: BTreeSet<&str> = s.apqns.iter().map(|q| q.owner).collect();
        assert_eq!(
            owners,
            BTreeSet::from(["host", "free", "unbound", "mdev", "none"])
        );
        for (apqn, owner, glyph) in [
            ("01.0000", "unbound", ">-</td>"),
            ("02.0000", "host", ">H</td>"),
            ("03.0002", "free", ">.</td>"),
            ("03.0000", "mdev", ">a</td>"),
            ("20.0000", "none", "\"></td>"),
        ] {
            let c = cell(&cells, apqn);
            assert_eq!(c["data-owner"], owner);
            let at = page.find(&format!("data-apqn=\"{apqn}\"")).unwrap();
            let end = at + page[at..].find("</td>").unwrap() + 5;
            assert!(page[..end].ends_with(glyph), "{apqn}: {}", &page[at..end]);
        }
        let a = cell(&cells, "03.0000");
        assert_eq!(a["data-mdev"], A.to_string());
        assert_eq!(a["data-guest"], "g1");
        assert_eq!(a["data-in-guest"], "yes");
        assert!(a["class"].contains(" m0"));
        assert!(!a.contains_key("data-defs"));
        // the definitions naming an APQN, by UUID; their start and node
        // device in the definitions table
        let none = cell(&cells, "20.0000");
        assert_eq!(none["data-defs"], B.to_string());
        assert!(page.contains(&format!("<tr data-uuid=\"{B}\" data-start=\"auto\" data-nodedev=\"mdev_00000000_0000_0000_0000_00000000000b_matrix\">")));
        // rows: every card and adapter 20; columns: the domains named
        for a in ["01", "02", "03", "20"] {
            assert!(page.contains(&format!("<tr data-adapter=\"{a}\">")), "{a}");
        }
        assert!(page.contains("<th data-domain=\"0003\""));
        // the legend: both mdevs, A with its guest, B with its start and node device
        assert!(page.contains("<ul id=\"mdevs\">"));
        let legend = &page[page.find("<ul id=\"mdevs\">").unwrap()..];
        let legend = &legend[..legend.find("</ul>").unwrap()];
        assert!(
            legend.contains(&format!(
                "data-mdev=\"{A}\" data-label=\"a\" data-index=\"0\" data-guest=\"g1\""
            )),
            "{legend}"
        );
        assert!(legend.contains(&format!("data-mdev=\"{B}\" data-label=\"b\" data-index=\"1\" data-start=\"auto\" data-nodedev=\"mdev_00000000_0000_0000_0000_00000000000b_matrix\"")), "{legend}");
    }

    #[test]
    fn drift_is_marked_on_cells_and_listed_with_its_fix() {
        let (s, _etc) = every_owner();
        assert!(!s.drift.is_empty());
        let page = page(&s, "small");
        let cells = cells(&page);
        for q in &s.apqns {
            let c = cell(&cells, &q.apqn.to_string());
            assert_eq!(
                c["class"].split(' ').any(|w| w == "drift"),
                q.drift,
                "{}",
                q.apqn
            );
        }
        assert!(s.apqns.iter().any(|q| q.drift));
        assert!(page.contains("<ol id=\"drift\">"));
        for d in &s.drift {
            let item = format!("<li data-kind=\"{}\"", d.kind);
            assert!(page.contains(&item), "{item}");
            assert!(page.contains(&esc(&d.message)), "{}", d.message);
            assert!(page.contains(&esc(&d.fix)), "{}", d.fix);
        }
        // mdev A is not defined; the masks drift on adapter 03
        let kinds: BTreeSet<&str> = s.drift.iter().map(|d| d.kind).collect();
        assert!(
            kinds.contains("undefined") && kinds.contains("masks"),
            "{kinds:?}"
        );
        // the next boot's starts are listed
        assert!(page.contains("<ol id=\"next-boot\">"));
        for b in &s.next_boot {
            assert!(page.contains(&format!(
                "<li data-uuid=\"{}\" data-started=\"{}\"",
                b.uuid,
                if b.started { "yes" } else { "no" }
            )));
        }
    }

    #[test]
    fn a_boot_failure_is_listed_with_its_reasons() {
        let (mut s, _etc) = every_owner();
        s.next_boot = vec![BootStart {
            uuid: B,
            started: false,
            ap_check: vec!["APQN 20.0000 is <not> available".into()],
            kernel: Some(apmatrix_admin::boot::Refusal {
                attribute: "assign_adapter".into(),
                value: "0x20".into(),
                errno: "ENODEV".into(),
                message: "no such adapter".into(),
            }),
        }];
        let page = page(&s, "t");
        assert!(page.contains(&format!("<li data-uuid=\"{B}\" data-started=\"no\"")));
        assert!(page.contains("ap-check: APQN 20.0000 is &lt;not&gt; available"));
        assert!(page.contains("<code>assign_adapter 0x20</code> with <b>ENODEV</b>"));
    }

    #[test]
    fn every_value_is_escaped() {
        let (mut s, _etc) = every_owner();
        let evil = "<script>alert(\"x\")</script>&'";
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;";
        s.guests = vec![evil.into()];
        for q in &mut s.apqns {
            if q.guest.is_some() {
                q.guest = Some(evil.into());
            }
            for d in &mut q.definitions {
                d.nodedev = evil.into();
            }
        }
        for d in &mut s.definitions {
            d.nodedev = evil.into();
            d.path = format!("/etc/{evil}");
        }
        for d in &mut s.drift {
            d.message = format!("\"><img src=x onerror=alert(1)>{evil}");
            d.fix = evil.into();
        }
        s.persistent.warnings = vec![evil.into()];
        s.persistent.apmask_from = evil.into();
        s.usage_domains = evil.into();
        s.cards[0].type_name = evil.into();
        let page = page(&s, evil);
        // our own script is the page's only one
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(!page.contains("<img"));
        assert!(!page.contains("alert(\"x\")"));
        assert!(page.contains(&format!("<title>{escaped}</title>")));
        assert!(page.contains(&format!("data-guest=\"{escaped}\"")));
        assert!(page.contains(&format!("<b class=\"guest\">{escaped}</b>")));
        assert!(page.contains(&format!("data-nodedev=\"{escaped}\"")));
        assert!(page.contains(&format!(
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;{escaped}"
        )));
        // no attribute value ends early
        assert_well_formed(&page);
        for c in cells(&page) {
            assert!(c.contains_key("data-at-boot"), "{c:?}");
        }
    }

    /// Every start tag outside the style and the script is `<name` then
    /// ` attr="value"` (no `"` or `<` in the value) or ` attr`, then `>`.
    fn assert_well_formed(page: &str) {
        let style = page.find("<style>").unwrap()..page.find("</style>").unwrap();
        let script = page.find("<script>").unwrap()..page.find("</script>").unwrap();
        for (at, _) in page.match_indices('<') {
            if style.contains(&at) && at != style.start
                || script.contains(&at) && at != script.start
            {
                continue;
            }
            let rest = &page[at + 1..];
            if rest.starts_with('/') || rest.starts_with('!') {
                continue;
            }
            let end = rest.find('>').unwrap();
            let tag = &rest[..end];
            let name_len = tag.find(' ').unwrap_or(tag.len());
            assert!(
                tag[..name_len].bytes().all(|b| b.is_ascii_alphanumeric()),
                "bad tag <{tag}>"
            );
            let mut attrs = &tag[name_len..];
            while !attrs.is_empty() {
                let a = attrs
                    .strip_prefix(' ')
                    .unwrap_or_else(|| panic!("<{tag}>: {attrs}"));
                let name_end = a.find(['=', ' ']).unwrap_or(a.len());
                let name = &a[..name_end];
                assert!(
                    !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                    "<{tag}>: attribute {name:?}"
                );
                attrs = &a[name_end..];
                if let Some(v) = attrs.strip_prefix("=\"") {
                    let close = v.find('"').unwrap_or_else(|| panic!("<{tag}>"));
                    assert!(!v[..close].contains('<'), "<{tag}>");
                    attrs = &v[close + 1..];
                }
            }
        }
    }

    #[test]
    fn every_tag_is_well_formed() {
        let (s, _etc) = every_owner();
        assert_well_formed(&page(&s, "small"));
    }

    /// Where the page would fetch from: it must be nowhere.
    fn external_references(page: &str) -> Vec<String> {
        let mut found = Vec::new();
        for word in [
            "http:",
            "https:",
            "//",
            "url(",
            "@import",
            "src=",
            "<link",
            "<img",
            "<iframe",
            "fetch(",
            "XMLHttpRequest",
            "WebSocket",
        ] {
            if page.contains(word) {
                found.push(word.to_string());
            }
        }
        for (at, _) in page.match_indices("href=\"") {
            if !page[at + 6..].starts_with('#') {
                found.push(page[at..at + 40.min(page.len() - at)].to_string());
            }
        }
        found
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        let (s, _etc) = every_owner();
        let page = page(&s, "small");
        assert_eq!(external_references(&page), Vec::<String>::new());
        assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none';"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn an_empty_host_still_makes_a_page() {
        let (mut s, _etc) = every_owner();
        s.apqns.clear();
        s.cards.clear();
        s.drift.clear();
        s.definitions.clear();
        s.next_boot.clear();
        let page = page(&s, "empty");
        assert!(page.contains("The host has no queues"));
        assert!(page.contains("<ol id=\"drift\">"));
        assert!(page.contains("No drift"));
        assert!(page.contains("<ul id=\"mdevs\">"));
    }

    /// 256 adapters x 85 domains: adapters 80-ff for vfio_ap, 40 mdevs of
    /// 3 adapters x 8 domains, half of them defined and in a guest.
    fn large() -> (Status, tempfile::TempDir) {
        let (mut host, _) = Host::boot(Topology::synthetic(256, 85), &SEED);
        let apmask: Mask256 = (0..0x80u8).collect();
        host.set_mask(MaskKind::Apmask, apmask).unwrap();
        let etc = tempfile::tempdir().unwrap();
        for i in 0..40u8 {
            let u = Uuid::from_u128(0x1000 + i as u128);
            host.create_mdev(u).unwrap();
            let adapters: Vec<u8> = (0..3).map(|k| 0x80 + (i / 10) * 3 + k).collect();
            let domains: Vec<u8> = (0..8).map(|k| (i % 10) * 8 + k).collect();
            for a in &adapters {
                host.assign(&u, MatrixAxis::Adapter, *a as u64).unwrap();
            }
            for d in &domains {
                host.assign(&u, MatrixAxis::Domain, *d as u64).unwrap();
            }
            if i % 2 == 0 {
                host.start_guest(&format!("guest{i}"), Some(u), CpuModel::default())
                    .unwrap();
                define(etc.path(), u, &adapters, &domains, i % 4 == 0);
            }
        }
        (status_of(host, Some(etc.path())), etc)
    }

    #[test]
    fn a_256_by_85_page_stays_small() {
        let (s, _etc) = large();
        assert_eq!(s.apqns.len(), 256 * 85);
        let page = page(&s, "large");
        eprintln!("256 x 85 page: {} bytes", page.len());
        assert!(page.len() < 3_500_000, "{} bytes", page.len());
        assert_eq!(cells(&page).len(), 256 * 85);
        assert_well_formed(&page);
        assert!(page.contains("<table id=\"matrix\" class=\"compact\">"));
        assert_eq!(page.matches("<li data-mdev=").count(), 40);
        assert_eq!(external_references(&page), Vec::<String>::new());
    }
}
