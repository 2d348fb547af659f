//! `apmatrix status`: the layers gathered from their places (the tree or
//! the state file, the hypervisor's side, /etc, the kernel command line)
//! and shown side by side; the picture itself is the admin crate's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apmatrix_admin::definitions::{read_definitions, Definitions};
use apmatrix_admin::persistent::{boot_masks, cmdline_parameters};
use apmatrix_admin::status::{status, ApqnStatus, Layers, Status};
use apmatrix_admin::{observe, EmulatedRoot};
use apmatrix_model::Mask256;

use crate::cli::Persistent;
use crate::source::{emulated_guests, ReadFrom};
use crate::store::Store;
use crate::style::Style;
use crate::CliError;

fn read(path: &Path) -> Result<Option<String>, CliError> {
    match apmatrix_admin::files::read_text(path, apmatrix_admin::files::TEXT_LIMIT) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::Failed(format!("{}: {e}", path.display()))),
    }
}

/// ap-check is mdevctl's callout where it is installed: under the root
/// whose etc is `etc` (`/usr/lib/...` for `/etc`), or in mdevctl's old
/// callout directory (tools.md Part A §3).
fn ap_check_installed(etc: &Path) -> bool {
    let root = etc.parent().unwrap_or(Path::new("/"));
    root.join("usr/lib/mdevctl/scripts.d/callouts/ap-check")
        .exists()
        || etc
            .join("mdevctl.d/scripts.d/callouts/ap-check.sh")
            .exists()
}

/// Gathers every layer and builds the picture.
pub(crate) fn gather(
    store: &Store,
    from: &ReadFrom,
    persistent: &Persistent,
) -> Result<Status, CliError> {
    let (seen, guests, etc, cmdline_file, boot_of_emulator) = match &from.sysfs {
        Some(dir) => {
            let root = from.read_root(dir)?;
            let etc = persistent
                .etc
                .clone()
                .or_else(|| root.real.then(|| PathBuf::from("/etc")));
            let cmdline = persistent
                .cmdline
                .clone()
                .or_else(|| root.proc_dir.as_ref().map(|p| p.join("cmdline")));
            (root.seen, root.guests, etc, cmdline, None)
        }
        None => {
            let host = store.load()?;
            let guests = emulated_guests(&host);
            let boot = host.topology().boot.clone();
            let seen =
                observe(&EmulatedRoot { host }).map_err(|e| CliError::Failed(e.to_string()))?;
            (
                seen,
                guests,
                persistent.etc.clone(),
                persistent.cmdline.clone(),
                Some(boot),
            )
        }
    };
    let (rules, definitions, ap_check) = match &etc {
        Some(etc) => (
            read(&etc.join("udev/rules.d/41-ap.rules"))?,
            read_definitions(etc),
            ap_check_installed(etc),
        ),
        None => (None, Definitions::default(), false),
    };
    let cmdline = match (&cmdline_file, boot_of_emulator) {
        (Some(file), _) => cmdline_parameters(&read(file)?.unwrap_or_default()),
        (None, Some(boot)) => boot,
        (None, None) => cmdline_parameters(""),
    };
    let boot = boot_masks(rules.as_deref(), &cmdline);
    Ok(status(&Layers {
        seen: &seen,
        guests: &guests,
        boot: &boot,
        definitions: &definitions,
        ap_check,
    }))
}

/// A row's layers, the key that groups APQNs shown on one line.
fn layers_text(r: &ApqnStatus) -> [String; 5] {
    let short = |u: &uuid::Uuid| u.to_string()[..8].to_string();
    let now = match (r.owner, &r.mdev) {
        ("mdev", Some(u)) => format!("mdev {}", short(u)),
        (word, _) => word.to_string(),
    };
    let guest = match &r.guest {
        Some(g) if r.in_guest => g.clone(),
        Some(g) => format!("({g}: not seen)"),
        None => "-".into(),
    };
    let defined = if r.definitions.is_empty() {
        "-".to_string()
    } else {
        r.definitions
            .iter()
            .map(|d| format!("{} {}", short(&d.uuid), d.start))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let after = match (r.after_boot, &r.after_boot_mdev) {
        ("mdev", Some(u)) => format!("mdev {}", short(u)),
        (word, _) => word.to_string(),
    };
    [now, guest, r.at_boot.to_string(), defined, after]
}

/// The picture as text: one line per adapter and run of like APQNs, the
/// persistent masks, the drift with fixes, the next boot.
pub(crate) fn render(s: &Status, style: &Style) -> String {
    let mut out = String::new();
    // Group by adapter and identical layers, keeping first-seen order.
    let mut groups: Vec<(u8, [String; 5], Mask256, bool)> = Vec::new();
    for r in &s.apqns {
        let key = layers_text(r);
        let a = r.apqn.adapter.0;
        match groups
            .iter_mut()
            .find(|(ga, gk, _, _)| *ga == a && *gk == key)
        {
            Some((_, _, domains, drift)) => {
                domains.set(r.apqn.domain.0);
                *drift |= r.drift;
            }
            None => groups.push((a, key, Mask256::single(r.apqn.domain.0), r.drift)),
        }
    }
    let header = [
        "APQNS",
        "NOW",
        "GUEST",
        "AT BOOT",
        "DEFINED (MDEVCTL)",
        "AFTER NEXT BOOT",
    ];
    let lines: Vec<([String; 6], bool)> = groups
        .into_iter()
        .map(
            |(a, [now, guest, at_boot, defined, after], domains, drift)| {
                let apqns = format!("{a:02x} x {}", domains.to_hex_list());
                ([apqns, now, guest, at_boot, defined, after], drift)
            },
        )
        .collect();
    let mut widths = header.map(str::len);
    for (cells, _) in &lines {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.len());
        }
    }
    let row = |cells: &[&str]| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ", w = widths[i]);
            }
        }
        line
    };
    let _ = writeln!(out, "{}", row(&header));
    for (cells, drift) in &lines {
        let line = row(&cells.each_ref().map(String::as_str));
        if *drift {
            let _ = writeln!(out, "{line}  {}", style.error("<- drift"));
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let p = &s.persistent;
    let _ = writeln!(
        out,
        "\nactive masks:     apmask {}  aqmask {}",
        s.active.apmask, s.active.aqmask
    );
    let _ = writeln!(
        out,
        "persistent masks: apmask {} ({})  aqmask {} ({})",
        p.apmask, p.apmask_from, p.aqmask, p.aqmask_from
    );
    for w in &p.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if !s.next_boot.is_empty() {
        let _ = writeln!(
            out,
            "\nnext boot ({}, in mdevctl's order):",
            if s.ap_check {
                "ap-check installed"
            } else {
                "no ap-check: the kernel decides"
            }
        );
        for b in &s.next_boot {
            let verdict = if b.started {
                "starts".to_string()
            } else {
                match &b.kernel {
                    Some(k) => format!(
                        "fails: {} {} refused with {}",
                        k.attribute, k.value, k.errno
                    ),
                    None => "fails: ap-check refuses it".to_string(),
                }
            };
            let _ = writeln!(out, "  {}  {verdict}", b.uuid);
        }
    }
    if s.drift.is_empty() {
        let _ = writeln!(out, "\nno drift: the next boot gives what runs now");
    } else {
        let _ = writeln!(out, "\ndrift ({}):", s.drift.len());
        for (i, d) in s.drift.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {}", i + 1, d.message);
            let _ = writeln!(out, "     fix: {}", d.fix);
        }
    }
    out
}
