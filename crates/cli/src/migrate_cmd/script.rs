//! What `migrate plan` and `run` print without `--json`: the summary, the
//! procedure as a script, and the report of a run.

use std::fmt::Write as _;

use apmatrix_admin::migrate::{mode_words, Plan, StageKind};
use apmatrix_model::{Apqn, Effects, GuestUpdate};

use super::procedure::{commands, files, says};
use super::side::{shell_word, Side};
use crate::output::describe_effects;

/// A file written by the script itself.
fn here_file((name, text): &(String, String)) -> String {
    format!("cat > {} <<'EOF'\n{text}EOF\n", shell_word(name))
}

fn updates(u: &Option<GuestUpdate>) -> String {
    let Some(u) = u else {
        return String::new();
    };
    let effects = Effects {
        guest_updates: vec![u.clone()],
        ..Effects::default()
    };
    describe_effects(&effects)
}

fn apqns(list: &[Apqn]) -> String {
    if list.is_empty() {
        "nothing".into()
    } else {
        Apqn::list_text(list)
    }
}

/// `0x04, 0xab (the same numbers)` or `0x04 -> 0x47, 0xab -> 0xab`.
fn domain_pairs(pairs: &[(u8, u8)]) -> String {
    if pairs.is_empty() {
        return "none".into();
    }
    if pairs.iter().all(|(a, b)| a == b) {
        let ids: Vec<String> = pairs.iter().map(|(a, _)| format!("{a:#04x}")).collect();
        return format!("{} (the same numbers)", ids.join(", "));
    }
    pairs
        .iter()
        .map(|(a, b)| format!("{a:#04x} -> {b:#04x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What is moved where, and what the guest sees before and after.
pub(super) fn summary(p: &Plan, from: &Side, to: &Side) -> String {
    let mut out = format!(
        "guest {} can move from {} to {} with its AP devices\n",
        p.guest, from.label, to.label
    );
    for m in &p.adapters {
        let _ = writeln!(
            out,
            "  adapter {:02x} ({}) -> {:02x} ({}), {}{}",
            m.from,
            m.from_type,
            m.to,
            m.to_type,
            mode_words(m.mode),
            if m.given { " (--adapters)" } else { "" }
        );
    }
    let _ = writeln!(out, "  usage domains: {}", domain_pairs(&p.domains));
    let _ = writeln!(
        out,
        "  control domains: {}",
        domain_pairs(&p.control_domains)
    );
    let same = if p.target_mdev.uuid == p.source_mdev {
        " (the source's UUID)"
    } else {
        ""
    };
    let _ = writeln!(out, "  mdev on the target: {}{same}", p.target_mdev.uuid);
    let _ = writeln!(
        out,
        "  it sees now:          {}",
        apqns(&p.sees_now.apqns())
    );
    let _ = writeln!(
        out,
        "  and on the target:    {}",
        apqns(&p.will_see.apqns())
    );
    for w in &p.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The procedure as a script: comments say what each part does.
pub(super) fn script(p: &Plan, from: &Side, to: &Side, uri: &str) -> String {
    let files = files(p, from);
    let mut out = String::new();
    for (n, stage) in p.stages.iter().enumerate() {
        let _ = writeln!(out, "\n# {}. {}", n + 1, says(stage, p, from, to));
        if let Some(note) = &stage.note {
            let _ = writeln!(out, "#    (no unassignment: {note})");
        }
        match stage.kind {
            StageKind::Detach => out.push_str(&here_file(&files.source_hostdev)),
            StageKind::Assign => {
                let _ = writeln!(
                    out,
                    "#    the same as a configuration, for `apmatrix check` or, instead of the writes below, `{} {}`:",
                    to.apply,
                    shell_word(&files.configuration.0)
                );
                out.push_str(&here_file(&files.configuration));
            }
            StageKind::Attach => {
                if let Some(file) = &files.target_hostdev {
                    out.push_str(&here_file(file));
                }
            }
            StageKind::Unplug | StageKind::Migrate => {}
        }
        let commands = commands(stage, p, &files, from, to, uri);
        let effects: Vec<&Option<GuestUpdate>> = match stage.kind {
            StageKind::Unplug | StageKind::Assign => stage.writes.iter().map(|(_, u)| u).collect(),
            _ => vec![&stage.update],
        };
        for (command, update) in commands.iter().zip(effects) {
            let _ = writeln!(out, "{command}");
            for line in updates(update).lines() {
                let _ = writeln!(out, "#  {}", line.trim_start());
            }
        }
    }
    if let Some(left) = p.source_after.mdev(&p.source_mdev) {
        let _ = writeln!(
            out,
            "\n# afterwards the source's mdev {} is left with domains {} and no guest: remove it \
             (echo 1 > {}/devices/vfio_ap/matrix/{}/remove) or give it to another guest",
            p.source_mdev,
            if left.domains.is_empty() {
                "none".into()
            } else {
                left.domains.to_hex_list()
            },
            from.root,
            p.source_mdev
        );
    }
    out
}

/// What a run did, step by step, and what the guest sees now.
pub(super) fn report(p: &Plan, from: &Side, to: &Side) -> String {
    let g = &p.guest;
    let mut out = format!("migrated guest {g} from {} to {}\n", from.label, to.label);
    for stage in &p.stages {
        let side = stage.kind.side();
        let root = if side == "source" {
            &from.root
        } else {
            &to.root
        };
        for (step, update) in &stage.writes {
            let _ = writeln!(out, "{side}: {}", step.shell(root));
            out.push_str(&updates(update));
        }
        let done = match stage.kind {
            StageKind::Unplug => stage
                .note
                .as_ref()
                .map(|n| format!("source: no unassignment ({n})")),
            StageKind::Detach => Some(format!(
                "source: detached the vfio-ap device of mdev {} from {g}",
                p.source_mdev
            )),
            StageKind::Migrate => Some(format!(
                "source: {g} stopped; target: {g} started with the same CPU model ({})",
                p.cpu.features()
            )),
            StageKind::Assign => None,
            StageKind::Attach => Some(format!(
                "target: attached the vfio-ap device of mdev {} to {g}",
                p.target_mdev.uuid
            )),
        };
        if let Some(done) = done {
            let _ = writeln!(out, "{done}");
            out.push_str(&updates(&stage.update));
        }
    }
    for w in &p.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "{g} sees on the target:");
    out.push_str(&p.will_see.lszcrypt());
    out
}
