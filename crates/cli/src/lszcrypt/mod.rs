//! `apmatrix lszcrypt`: s390-tools' lszcrypt over any sysfs root (the
//! emulated host's own tree, a mounted emulator or a real /sys), reading
//! the files it reads and printing what it prints, in v2.43's format
//! (tools.md Part A §1; the differences from Debian's 2.35 are in
//! docs/lszcrypt.md). The options: DEVICE_IDS, `--cardonly`/`--queueonly`,
//! `--accelonly`/`--ccaonly`/`--ep11only`, `-V`, `-b`, `-c ID`, `-d`, `-s`.

mod print;
mod scan;

pub use scan::Row;

use apmatrix_admin::root::SysfsRoot;

/// What the command was asked.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub verbose: bool,
    pub bus: bool,
    pub domains: bool,
    pub serial: bool,
    pub capability: Option<String>,
    pub card_only: bool,
    pub queue_only: bool,
    pub accel_only: bool,
    pub cca_only: bool,
    pub ep11_only: bool,
    pub ids: Vec<String>,
}

/// A failure after `done` was printed, as lszcrypt leaves it (status 1).
#[derive(Debug)]
pub struct Failure {
    pub done: String,
    pub message: String,
}

fn fail(done: String, message: impl Into<String>) -> Failure {
    Failure {
        done,
        message: message.into(),
    }
}

/// One positional DEVICE_ID.
enum Selector {
    Card(u8),
    Queue(u8, u16),
    Domain(u16),
    Invalid,
}

fn parse_hex(text: &str) -> Option<u64> {
    let t = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    (!t.is_empty() && t.len() <= 8)
        .then(|| u64::from_str_radix(t, 16).ok())
        .flatten()
}

fn selector(text: &str) -> Selector {
    let id = |t: &str, max: u64| parse_hex(t).filter(|n| *n <= max);
    match text.split_once('.') {
        None => id(text, 255).map_or(Selector::Invalid, |a| Selector::Card(a as u8)),
        Some(("", d)) => id(d, 0xffff).map_or(Selector::Invalid, |d| Selector::Domain(d as u16)),
        Some((a, d)) => match (id(a, 255), id(d, 0xffff)) {
            (Some(a), Some(d)) => Selector::Queue(a as u8, d as u16),
            _ => Selector::Invalid,
        },
    }
}

/// What the table shows, in order: rows, and lszcrypt's notes.
enum Shown {
    Row(Box<Row>),
    Note(&'static str),
}

/// What lszcrypt prints; `Err` with what it printed before failing.
pub fn run(root: &dyn SysfsRoot, o: &Options) -> Result<String, Failure> {
    if root.list("bus/ap").is_err() {
        return Err(fail(String::new(), "Crypto device driver not available."));
    }
    if o.bus {
        return Ok(print::bus(root));
    }
    if let Some(id) = &o.capability {
        return print::capability(root, id).map_err(|m| fail(String::new(), m));
    }
    if o.domains {
        return print::domains(root).map_err(|m| fail(String::new(), m));
    }
    check_filters(o).map_err(|m| fail(String::new(), m))?;
    if o.serial {
        return Ok(print::serial(root));
    }
    let mut shown = Vec::new();
    let result = select(root, o, &mut shown);
    let mut out = print::header(o.verbose);
    for s in &shown {
        match s {
            Shown::Row(r) => out.push_str(&print::line(r, o.verbose)),
            Shown::Note(n) => out.push_str(n),
        }
    }
    match result {
        Ok(()) => Ok(out + &print::default_domain_warning(root)),
        Err(message) => Err(fail(out, message)),
    }
}

fn check_filters(o: &Options) -> Result<(), String> {
    let modes = [o.accel_only, o.cca_only, o.ep11_only];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err("Only one of --accelonly or --ccaonly or --ep11only can be specified".into());
    }
    if o.card_only && o.queue_only {
        return Err("Only one of --cardonly or --queueonly can be specified".into());
    }
    Ok(())
}

/// The rows of the table, for `--json`.
pub fn rows(root: &dyn SysfsRoot, o: &Options) -> Result<Vec<Row>, Failure> {
    check_filters(o).map_err(|m| fail(String::new(), m))?;
    let mut shown = Vec::new();
    select(root, o, &mut shown).map_err(|m| fail(String::new(), m))?;
    Ok(shown
        .into_iter()
        .filter_map(|s| match s {
            Shown::Row(r) => Some(*r),
            Shown::Note(_) => None,
        })
        .collect())
}

/// A card or queue row, unless a filter or lszcrypt's rules leave it out.
fn emit(
    root: &dyn SysfsRoot,
    o: &Options,
    shown: &mut Vec<Shown>,
    card: &scan::CardInfo,
    queue: Option<&str>,
) {
    if (queue.is_none() && o.queue_only) || (queue.is_some() && o.card_only) {
        return;
    }
    let wanted_mode = [(o.accel_only, 'A'), (o.cca_only, 'C'), (o.ep11_only, 'P')]
        .into_iter()
        .find_map(|(on, m)| on.then_some(m));
    if let Some(m) = wanted_mode {
        if !card.type_name.as_deref().is_some_and(|t| t.ends_with(m)) {
            return;
        }
    }
    if let Some(r) = scan::row(root, card, queue, o.verbose) {
        shown.push(Shown::Row(Box::new(r)));
    }
}

fn whole_card(root: &dyn SysfsRoot, o: &Options, shown: &mut Vec<Shown>, dir: &scan::CardDir) {
    let info = scan::card_info(root, &dir.id);
    emit(root, o, shown, &info, None);
    for q in &dir.queues {
        emit(root, o, shown, &info, Some(q));
    }
}

/// Walks the DEVICE_IDS (or every card) in order; `Err` names where
/// lszcrypt stops.
fn select(root: &dyn SysfsRoot, o: &Options, shown: &mut Vec<Shown>) -> Result<(), String> {
    let cards = scan::cards(root);
    if o.ids.is_empty() {
        for dir in &cards {
            whole_card(root, o, shown, dir);
        }
        return Ok(());
    }
    let card_dir = |a: u8| cards.iter().find(|c| c.id == format!("{a:02x}"));
    for text in &o.ids {
        match selector(text) {
            // lszcrypt's own words (sic), on stdout, and it goes on.
            Selector::Invalid => shown.push(Shown::Note("Invalid adpater id!\n")),
            Selector::Card(a) => match card_dir(a) {
                Some(dir) => whole_card(root, o, shown, dir),
                None => {
                    return Err(format!(
                        "Error - cryptographic device card{a:02x} does not exist."
                    ))
                }
            },
            Selector::Queue(a, d) => {
                let name = format!("{a:02x}.{d:04x}");
                let Some(dir) = card_dir(a).filter(|c| c.queues.contains(&name)) else {
                    let path = format!("devices/ap/card{a:02x}/{name}");
                    return Err(format!(
                        "Error - cryptographic device {} does not exist.",
                        apmatrix_admin::root::shown(root, &path)
                    ));
                };
                emit(root, o, shown, &scan::card_info(root, &dir.id), Some(&name));
            }
            Selector::Domain(d) => {
                for dir in &cards {
                    let name = format!("{}.{d:04x}", dir.id);
                    if !dir.queues.contains(&name) {
                        return Err("No queue devices with given domain value found.".into());
                    }
                    emit(root, o, shown, &scan::card_info(root, &dir.id), Some(&name));
                }
            }
        }
    }
    Ok(())
}
