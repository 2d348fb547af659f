//! The ownership map: for every adapter (row) and domain (column), who owns
//! the APQN — the host, nobody yet (free for vfio_ap), or which mdev and guest.

use std::collections::HashMap;
use std::fmt::Write as _;

use apmatrix_model::{Apqn, Driver, Host, Mask256};
use serde::Serialize;
use uuid::Uuid;

use crate::style::Style;

/// The legend entry of one mdev.
#[derive(Clone, Debug, Serialize)]
pub struct MdevLabel {
    pub label: char,
    pub uuid: Uuid,
    pub guest: Option<String>,
    pub apqns: u32,
    pub in_guest: u32,
}

/// One cell, for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub apqn: Apqn,
    pub owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdev: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    pub exists: bool,
    pub in_guest: bool,
}

/// The whole map, for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct OwnerMap {
    pub adapters: Vec<u8>,
    pub domains: Vec<u8>,
    pub mdevs: Vec<MdevLabel>,
    pub cells: Vec<Cell>,
}

/// Mdev labels in order: letters, but not `H`, which is the host's glyph.
pub(crate) const LABELS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGIJKLMNOPQRSTUVWXYZ";

/// The label of the `i`th mdev; `#` once the letters run out.
pub(crate) fn label(i: usize) -> char {
    LABELS.get(i).map_or('#', |&b| b as char)
}

/// Builds the map: rows are the adapters with a card or in an mdev, columns
/// the usage domains and any domain in an mdev.
pub fn build(host: &Host) -> OwnerMap {
    let t = host.topology();
    let mut adapters = t.adapters();
    let mut domains = t.usage_domains;
    let mut owner: HashMap<Apqn, usize> = HashMap::new();
    let mut labels = Vec::new();
    for (i, m) in host.mdevs().enumerate() {
        adapters = adapters.or(&m.adapters);
        domains = domains.or(&m.domains);
        let guest = host.guest_of(&m.uuid).map(str::to_string);
        let crycb = guest
            .as_deref()
            .and_then(|g| host.guest(g))
            .map(|g| g.crycb);
        let mut in_guest = 0;
        let mut apqns = 0;
        for q in m.apqns() {
            owner.insert(q, i);
            apqns += 1;
            if crycb.is_some_and(|c| c.contains(q)) {
                in_guest += 1;
            }
        }
        labels.push(MdevLabel {
            label: label(i),
            uuid: m.uuid,
            guest,
            apqns,
            in_guest,
        });
    }
    let mut cells = Vec::new();
    for a in adapters.iter() {
        for d in domains.iter() {
            let apqn = Apqn::new(a, d);
            let state = host.apqn_state(apqn);
            let label = owner.get(&apqn).map(|&i| &labels[i]);
            cells.push(Cell {
                apqn,
                owner: apmatrix_admin::status::owner_word(&state),
                mdev: label.map(|l| l.uuid),
                guest: label.and_then(|l| l.guest.clone()),
                exists: state.exists,
                in_guest: state.in_guest,
            });
        }
    }
    OwnerMap {
        adapters: adapters.iter().collect(),
        domains: domains.iter().collect(),
        mdevs: labels,
        cells,
    }
}

/// The map as text: a grid with a legend.
pub fn render(host: &Host, style: &Style) -> String {
    let map = build(host);
    let mut out = String::new();
    if map.domains.is_empty() || map.adapters.is_empty() {
        return "The host has no queues and no mdev holds any.\n".to_string();
    }
    let wide = map.domains.len() <= 32;
    let sep = if wide { " " } else { "" };
    let _ = writeln!(
        out,
        "APQN owners: a row per adapter, a column per domain (hex, read downwards)"
    );
    for (digit, title) in [(0, "domain"), (1, "")] {
        let _ = write!(out, "{title:<10}");
        for d in &map.domains {
            let text = format!("{d:02x}");
            let _ = write!(out, "{}{sep}", &text[digit..digit + 1]);
        }
        out.push('\n');
    }
    let host_cards = host.topology().adapters();
    let columns = map.domains.len();
    for (row, a) in map.adapters.iter().enumerate() {
        let name = if host_cards.contains(*a) {
            format!("card{a:02x}")
        } else {
            format!("{a:02x} (none)")
        };
        let _ = write!(out, "{name:<10}");
        for cell in &map.cells[row * columns..(row + 1) * columns] {
            let glyph = match cell.owner {
                "host" => style.host("H"),
                "free" => style.dim("."),
                "unbound" => style.dim("-"),
                "none" => " ".to_string(),
                _ => {
                    let i = map
                        .mdevs
                        .iter()
                        .position(|l| Some(l.uuid) == cell.mdev)
                        .expect("labelled");
                    let label = map.mdevs[i].label.to_string();
                    style.mdev(&label, i, cell.in_guest, cell.exists)
                }
            };
            let _ = write!(out, "{glyph}{sep}");
        }
        out.push('\n');
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{} host (cex4queue)   {} free for vfio_ap   {} unbound (card older than CEX4)   blank: no such queue",
        style.host("H"),
        style.dim("."),
        style.dim("-")
    );
    for (i, l) in map.mdevs.iter().enumerate() {
        let guest = match &l.guest {
            Some(g) => format!("guest {g} sees {} of its {} APQNs", l.in_guest, l.apqns),
            None => format!("no guest, {} APQNs", l.apqns),
        };
        let _ = writeln!(
            out,
            "{} mdev {}  {guest}",
            style.mdev(&l.label.to_string(), i, true, true),
            l.uuid
        );
    }
    if map.mdevs.len() > LABELS.len() {
        let _ = writeln!(
            out,
            "# more than {} mdevs: the rest share the label # (see `apmatrix mdev list`)",
            LABELS.len()
        );
    }
    out
}

/// Describes the two pools the masks define, in the document's words.
pub fn pools(host: &Host) -> String {
    let (apmask, aqmask) = (host.apmask(), host.aqmask());
    let words = |m: &Mask256| m.to_list();
    let mut out = String::new();
    let _ = writeln!(out, "apmask  {apmask}");
    let _ = writeln!(out, "aqmask  {aqmask}");
    let _ = writeln!(
        out,
        "default drivers pool (host, zcrypt):  adapters {} x domains {}",
        words(&apmask),
        words(&aqmask)
    );
    let _ = writeln!(
        out,
        "alternate drivers pool (vfio_ap):     adapters {} with every domain, and domains {} on every adapter",
        words(&apmask.complement()),
        words(&aqmask.complement())
    );
    let zcrypt = host.queues_bound_to(Driver::Cex4Queue).len();
    let vfio = host.queues_bound_to(Driver::VfioAp).len();
    let (bound, total) = host.bindings_count();
    let _ = writeln!(
        out,
        "on this host: {zcrypt} queues for the host, {vfio} for vfio_ap, {} unbound (of {total})",
        total - bound
    );
    out
}
