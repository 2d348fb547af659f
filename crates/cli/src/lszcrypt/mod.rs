//! `apmatrix lszcrypt`: s390-tools' lszcrypt, output-compatible with v2.43
//! (tools.md Part A §1), on any sysfs root: the emulated host (the state
//! file, through the in-process tree) or a directory (`--sysfs DIR`: /sys,
//! a mounted emulator). It reads the attributes the real tool reads, with
//! its precedence, so the two agree wherever the tree does. How Debian's
//! 2.35 differs: docs/lszcrypt.md.

mod info;
mod table;
mod tree;

use apmatrix_admin::SysfsRoot;

pub use table::Row;
use tree::Tree;

/// What one run shows. `-b`, `-c`, `-d` and `-s` act as soon as they are
/// seen, so the first of them given wins and the rest is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Table,
    Bus,
    Capability(String),
    Domains,
    Serials,
}

/// The table's options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub verbose: bool,
    pub accel: bool,
    pub cca: bool,
    pub ep11: bool,
    pub cards: bool,
    pub queues: bool,
    /// DEVICE_IDS: `xx`, `xx.yyyy`, `.yyyy` (hex).
    pub ids: Vec<String>,
}

/// What lszcrypt printed, and the error it ended with (exit status 1)
/// after printing it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub text: String,
    pub failure: Option<String>,
}

impl Listing {
    fn ok(text: String) -> Listing {
        Listing {
            text,
            failure: None,
        }
    }

    fn failed(message: impl Into<String>) -> Listing {
        Listing {
            text: String::new(),
            failure: Some(message.into()),
        }
    }
}

/// Runs lszcrypt on `root`; the rows too, for `--json`.
pub fn run(root: &dyn SysfsRoot, action: &Action, options: &Options) -> (Listing, Vec<Row>) {
    let tree = Tree { root };
    // The table's options are checked before the bus is looked at.
    let options = match action {
        Action::Table => match checked(options) {
            Ok(o) => o,
            Err(e) => return (e, Vec::new()),
        },
        _ => options.clone(),
    };
    if !tree.is_dir("bus/ap") {
        return (
            Listing::failed("Crypto device driver not available."),
            Vec::new(),
        );
    }
    let listing = match action {
        Action::Bus => info::bus(&tree),
        Action::Capability(id) => info::capability(&tree, id),
        Action::Domains => info::domains(&tree),
        Action::Serials => info::serials(&tree),
        Action::Table => return table::table(&tree, &options),
    };
    (listing, Vec::new())
}

/// The options with lszcrypt's defaults (no filter: all modes, cards and
/// queues), or its refusal of two filters of a kind.
fn checked(options: &Options) -> Result<Options, Listing> {
    let mut o = options.clone();
    match [o.accel, o.cca, o.ep11].iter().filter(|b| **b).count() {
        0 => (o.accel, o.cca, o.ep11) = (true, true, true),
        1 => {}
        _ => {
            return Err(Listing::failed(
                "Only one of --accelonly or --ccaonly or --ep11only can be specified",
            ))
        }
    }
    match (o.cards, o.queues) {
        (false, false) => (o.cards, o.queues) = (true, true),
        (true, true) => {
            return Err(Listing::failed(
                "Only one of --cardonly or --queueonly can be specified",
            ))
        }
        _ => {}
    }
    Ok(o)
}

#[derive(Copy, Clone)]
enum Align {
    Left,
    Right,
}

/// One line of cells (text, width, alignment) separated by one space, as
/// s390-tools' wide records print: padded, never cut.
fn line(cells: &[(&str, usize, Align)]) -> String {
    let mut text = String::new();
    for (i, (cell, width, align)) in cells.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        let width = *width;
        match align {
            Align::Left => text.push_str(&format!("{cell:<width$}")),
            Align::Right => text.push_str(&format!("{cell:>width$}")),
        }
    }
    text.push('\n');
    text
}

/// The dash line under a header: the widths and the spaces between them.
fn dashes(widths: impl Iterator<Item = usize>) -> String {
    let (sum, n) = widths.fold((0, 0), |(s, n), w| (s + w, n + 1));
    format!("{}\n", "-".repeat(sum + n - 1))
}

#[cfg(test)]
mod tests;
