//! `apmatrix migrate plan | run GUEST --from SRC --to DST`: a guest with AP
//! devices moved to another host (issue 15). The decision and the proof
//! on copies are `apmatrix_admin::migrate`'s; this file reads both sides,
//! prints the procedure, and for `run` commits both emulated hosts, all or
//! nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apmatrix_admin::export::libvirt_hostdev_xml;
use apmatrix_admin::migrate::{self, mode_words, Plan, Refusal, Request, Stage, StageKind};
use apmatrix_admin::running::running_guests;
use apmatrix_admin::{observe, DirRoot, WantedMdev};
use apmatrix_model::{Apqn, Effects, GuestUpdate, Host, Mask256};
use serde::Serialize;
use uuid::Uuid;

use crate::cli::{Cli, MigrateArgs, MigrateCommand};
use crate::output::{describe_effects, erased::Json as _};
use crate::source::is_real_sys;
use crate::store::{Claim, Store, StoreError};
use crate::{CliError, Result};

pub(crate) fn run(cli: &Cli, cmd: &MigrateCommand) -> Result<String> {
    match cmd {
        MigrateCommand::Plan {
            args,
            from_run,
            to_run,
            uri,
        } => plan(cli, args, from_run.as_deref(), to_run.as_deref(), uri),
        MigrateCommand::Run { args } => carry_out(cli, args),
    }
}

/// The request from the command line.
fn request(args: &MigrateArgs) -> Result<Request> {
    let map = |flag: &str, texts: &[String]| -> Result<BTreeMap<u8, u8>> {
        let mut all = BTreeMap::new();
        for text in texts {
            for (from, to) in migrate::parse_map(text)
                .map_err(|e| CliError::Usage(format!("--{flag} {text}: {e}")))?
            {
                if all.insert(from, to).is_some_and(|before| before != to) {
                    return Err(CliError::Usage(format!(
                        "--{flag}: {from:#04x} is mapped twice"
                    )));
                }
            }
        }
        Ok(all)
    };
    Ok(Request {
        guest: args.guest.clone(),
        adapters: map("adapters", &args.adapters)?,
        domains: map("domains", &args.domains)?,
        uuid: args.uuid,
    })
}

/// Where one host of the migration is, for what is printed.
struct Side {
    /// How it was named.
    label: String,
    /// The sysfs root its writes go to: the directory, or /sys for a
    /// state file (under `apmatrix exec` or on the real host it stands for).
    root: String,
    /// The command that applies a configuration file there.
    apply: String,
}

/// A sysfs root (a directory), rebuilt in the model with the guests of
/// libvirt's live XML; otherwise a state file.
fn read_side(path: &Path, run: Option<&Path>, which: &str) -> Result<(Host, Side)> {
    let label = path.display().to_string();
    if !path.is_dir() {
        let host = Store::new(path.to_path_buf()).load()?;
        return Ok((host, state_file(label)));
    }
    let seen = observe(&DirRoot::new(path)).map_err(|e| CliError::Failed(e.to_string()))?;
    let run = run
        .map(Path::to_path_buf)
        .or_else(|| is_real_sys(path).then(|| PathBuf::from("/run")));
    let guests = running_guests(run.as_deref().unwrap_or(Path::new("")), Path::new(""));
    let (host, notes) = apmatrix_admin::predict::model_with_guests(&seen, &guests);
    for note in notes {
        crate::style::say(format_args!("apmatrix: note: the {which}: {note}"));
    }
    let side = Side {
        root: label.clone(),
        apply: format!("apmatrix apply --sysfs {}", shell_word(&label)),
        label,
    };
    Ok((host, side))
}

/// A state file: its writes are the tree's under `apmatrix exec`.
fn state_file(label: String) -> Side {
    Side {
        root: "/sys".into(),
        apply: format!("apmatrix --host {} apply", shell_word(&label)),
        label,
    }
}

/// A word for the shell: as it is when it needs no quoting.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The files the procedure uses, by name.
struct Files {
    source_hostdev: (String, String),
    /// `None` when the target mdev has the source's UUID (the same file).
    target_hostdev: Option<(String, String)>,
    configuration: (String, String),
}

fn hostdev_for(uuid: Uuid) -> String {
    libvirt_hostdev_xml(&WantedMdev {
        uuid,
        label: uuid.to_string(),
        adapters: Mask256::EMPTY,
        domains: Mask256::EMPTY,
        control_domains: Mask256::EMPTY,
        guest: None,
        autostart: false,
    })
}

fn files(p: &Plan, from: &Side) -> Files {
    let g = &p.guest;
    let target = p.target_mdev.uuid;
    Files {
        source_hostdev: (format!("{g}-hostdev.xml"), hostdev_for(p.source_mdev)),
        target_hostdev: (target != p.source_mdev)
            .then(|| (format!("{g}-hostdev-target.xml"), hostdev_for(target))),
        configuration: (
            format!("{g}-migrate.toml"),
            format!(
                "# {g}'s AP devices, moved from {} (mdev {}): for apmatrix check and apply on the target\n{}",
                from.label,
                p.source_mdev,
                migrate::configuration(&p.target_mdev)
            ),
        ),
    }
}

impl Files {
    fn target_hostdev(&self) -> &(String, String) {
        self.target_hostdev.as_ref().unwrap_or(&self.source_hostdev)
    }
}

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

/// What a stage does, in words.
fn says(stage: &Stage, p: &Plan, from: &Side, to: &Side) -> String {
    let (g, src, dst) = (&p.guest, p.source_mdev, p.target_mdev.uuid);
    match stage.kind {
        StageKind::Unplug => format!(
            "on the source ({}): unassign the guest's adapters from mdev {src}; the guest sees its AP devices go (hot unplug)",
            from.label
        ),
        StageKind::Detach => {
            "on the source: detach the vfio-ap device, which QEMU cannot migrate".to_string()
        }
        StageKind::Migrate => format!(
            "migrate {g} live; it keeps its CPU model ({})",
            p.cpu.features()
        ),
        StageKind::Assign => format!(
            "on the target ({}): create mdev {dst} and assign the guest's matrix",
            to.label
        ),
        StageKind::Attach => {
            "on the target: attach the vfio-ap device; the guest sees its AP devices again (hot plug)"
                .to_string()
        }
    }
}

/// The commands of a stage, without the files they use.
fn commands(
    stage: &Stage,
    p: &Plan,
    files: &Files,
    from: &Side,
    to: &Side,
    uri: &str,
) -> Vec<String> {
    let g = shell_word(&p.guest);
    match stage.kind {
        StageKind::Unplug => stage
            .writes
            .iter()
            .map(|(s, _)| s.shell(&from.root))
            .collect(),
        StageKind::Detach => vec![format!(
            "virsh detach-device {g} {} --live",
            shell_word(&files.source_hostdev.0)
        )],
        StageKind::Migrate => vec![format!("virsh migrate --live {g} {}", shell_word(uri))],
        StageKind::Assign => stage
            .writes
            .iter()
            .map(|(s, _)| s.shell(&to.root))
            .collect(),
        StageKind::Attach => vec![format!(
            "virsh attach-device {g} {} --live",
            shell_word(&files.target_hostdev().0)
        )],
    }
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
fn summary(p: &Plan, from: &Side, to: &Side) -> String {
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
fn script(p: &Plan, from: &Side, to: &Side, uri: &str) -> String {
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

/// `--json`: the plan as docs/migrate.md documents it.
#[derive(Serialize)]
struct PlanJson {
    guest: String,
    from: String,
    to: String,
    cpu: String,
    source_mdev: MdevJson,
    target_mdev: MdevJson,
    adapters: Vec<AdapterJson>,
    domains: Vec<PairJson>,
    control_domains: Vec<PairJson>,
    sees_now: Vec<String>,
    will_see: Vec<String>,
    warnings: Vec<String>,
    files: Vec<FileJson>,
    steps: Vec<StepJson>,
}

#[derive(Serialize)]
struct MdevJson {
    uuid: Uuid,
    adapters: Vec<u8>,
    domains: Vec<u8>,
    control_domains: Vec<u8>,
}

#[derive(Serialize)]
struct AdapterJson {
    from: u8,
    to: u8,
    from_type: String,
    to_type: String,
    mode: &'static str,
    given: bool,
}

#[derive(Serialize)]
struct PairJson {
    from: u8,
    to: u8,
}

#[derive(Serialize)]
struct FileJson {
    name: String,
    text: String,
}

#[derive(Serialize)]
struct StepJson {
    on: &'static str,
    stage: &'static str,
    says: String,
    note: Option<String>,
    commands: Vec<String>,
    unplugged: Vec<String>,
    plugged: Vec<String>,
}

#[derive(Serialize)]
struct RefusedJson<'a> {
    guest: &'a str,
    from: String,
    to: String,
    refused: &'a [String],
}

fn ids(mask: &Mask256) -> Vec<u8> {
    mask.iter().collect()
}

fn names(list: Vec<Apqn>) -> Vec<String> {
    list.iter().map(Apqn::to_string).collect()
}

fn plan_json(p: &Plan, from: &Side, to: &Side, uri: &str) -> PlanJson {
    let files = files(p, from);
    let mut file_list = vec![&files.source_hostdev];
    file_list.extend(files.target_hostdev.as_ref());
    file_list.push(&files.configuration);
    let pairs = |v: &[(u8, u8)]| -> Vec<PairJson> {
        v.iter().map(|&(from, to)| PairJson { from, to }).collect()
    };
    PlanJson {
        guest: p.guest.clone(),
        from: from.label.clone(),
        to: to.label.clone(),
        cpu: p.cpu.features(),
        source_mdev: MdevJson {
            uuid: p.source_mdev,
            adapters: ids(&p.moved.adapters),
            domains: ids(&p.moved.domains),
            control_domains: ids(&p.moved.control_domains),
        },
        target_mdev: MdevJson {
            uuid: p.target_mdev.uuid,
            adapters: ids(&p.target_mdev.adapters),
            domains: ids(&p.target_mdev.domains),
            control_domains: ids(&p.target_mdev.control_domains),
        },
        adapters: p
            .adapters
            .iter()
            .map(|m| AdapterJson {
                from: m.from,
                to: m.to,
                from_type: m.from_type.clone(),
                to_type: m.to_type.clone(),
                mode: m.mode.lszcrypt_name(),
                given: m.given,
            })
            .collect(),
        domains: pairs(&p.domains),
        control_domains: pairs(&p.control_domains),
        sees_now: names(p.sees_now.apqns()),
        will_see: names(p.will_see.apqns()),
        warnings: p.warnings.clone(),
        files: file_list
            .into_iter()
            .map(|(name, text)| FileJson {
                name: name.clone(),
                text: text.clone(),
            })
            .collect(),
        steps: p
            .stages
            .iter()
            .map(|s| {
                let all: Vec<&GuestUpdate> = s
                    .writes
                    .iter()
                    .filter_map(|(_, u)| u.as_ref())
                    .chain(s.update.as_ref())
                    .collect();
                StepJson {
                    on: s.kind.side(),
                    stage: s.kind.name(),
                    says: says(s, p, from, to),
                    note: s.note.clone(),
                    commands: commands(s, p, &files, from, to, uri),
                    unplugged: names(all.iter().flat_map(|u| u.unplugged()).collect()),
                    plugged: names(all.iter().flat_map(|u| u.plugged()).collect()),
                }
            })
            .collect(),
    }
}

/// A refusal: its reasons on stderr (and as JSON on stdout with --json).
fn refused(cli: &Cli, r: &Refusal, from: &str, to: &str) -> CliError {
    if cli.json {
        return CliError::Printed {
            done: RefusedJson {
                guest: &r.guest,
                from: from.into(),
                to: to.into(),
                refused: &r.reasons,
            }
            .to_json(),
            message: r.to_string(),
        };
    }
    CliError::Failed(r.to_string())
}

fn plan(
    cli: &Cli,
    args: &MigrateArgs,
    from_run: Option<&Path>,
    to_run: Option<&Path>,
    uri: &str,
) -> Result<String> {
    let request = request(args)?;
    let (source, from) = read_side(&args.from, from_run, "source")?;
    let (target, to) = read_side(&args.to, to_run, "target")?;
    let p = migrate::plan(&source, &target, &request).map_err(|r| {
        let mut r = r;
        if args.from.is_dir() && from_run.is_none() && source.guest(&args.guest).is_none() {
            r.reasons.push(
                "(a sysfs root's running guests are libvirt's live XML: name its run directory \
                 with --from-run DIR)"
                    .into(),
            );
        }
        refused(cli, &r, &from.label, &to.label)
    })?;
    if cli.json {
        return Ok(plan_json(&p, &from, &to, uri).to_json());
    }
    Ok(summary(&p, &from, &to) + &script(&p, &from, &to, uri))
}

/// How a two-host commit ended, when it did not.
#[derive(Debug)]
enum PairError {
    /// A host changed since it was read; neither host was changed.
    Moved,
    /// It failed; the message says in what state it left each host.
    Failed(String),
}

/// What [`commit_pair`] needs of a claimed host (a [`Claim`], or a fake in
/// the tests).
trait Swap {
    fn host(&self) -> &Host;
    fn swap(&mut self, new: Host) -> Result<(), StoreError>;
    fn path(&self) -> &Path;
}

impl Swap for Claim {
    fn host(&self) -> &Host {
        Claim::host(self)
    }
    fn swap(&mut self, new: Host) -> Result<(), StoreError> {
        Claim::swap(self, new)
    }
    fn path(&self) -> &Path {
        Claim::path(self)
    }
}

/// Commits the source's new host, then the target's. The source goes
/// first: should the rest fail too, the guest is then stopped with its
/// devices unplugged, never running on both hosts. If the target cannot be
/// written, the source is put back (a compare and swap against what was
/// just written to it).
fn commit_pair(
    source: &mut dyn Swap,
    new_source: Host,
    target: &mut dyn Swap,
    new_target: Host,
    guest: &str,
) -> std::result::Result<(), PairError> {
    let old_source = source.host().clone();
    match source.swap(new_source) {
        Ok(()) => {}
        Err(StoreError::Moved(_)) => return Err(PairError::Moved),
        Err(e) => {
            return Err(PairError::Failed(format!(
                "the source could not be written: {e}; the target was not touched"
            )))
        }
    }
    let Err(e) = target.swap(new_target) else {
        return Ok(());
    };
    match source.swap(old_source) {
        Ok(()) if matches!(e, StoreError::Moved(_)) => Err(PairError::Moved),
        Ok(()) => Err(PairError::Failed(format!(
            "the target could not be written: {e}; the source was put back as it was, so \
             neither host changed"
        ))),
        Err(undo) => Err(PairError::Failed(format!(
            "the target could not be written: {e}; putting the source back failed too: {undo}. \
             The source ({}) now has guest {guest} stopped and its adapters unassigned; the \
             target ({}) is as it was. Start the guest again on the source and assign its \
             adapters back, or run the migration again",
            source.path().display(),
            target.path().display()
        ))),
    }
}

/// How often a run starts over when a host changed under it.
const ATTEMPTS: usize = 3;

fn carry_out(cli: &Cli, args: &MigrateArgs) -> Result<String> {
    let request = request(args)?;
    for (path, flag) in [(&args.from, "--from"), (&args.to, "--to")] {
        if path.is_dir() {
            return Err(CliError::Usage(format!(
                "{flag} {}: a sysfs root; migrate run moves a guest between emulated hosts \
                 (state files): on real hosts, run the steps of `apmatrix migrate plan`",
                path.display()
            )));
        }
    }
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from_real, to_real) = (real(&args.from), real(&args.to));
    if from_real == to_real {
        return Err(CliError::Usage(format!(
            "--from and --to are the same host ({})",
            from_real.display()
        )));
    }
    let (from_store, to_store) = (Store::new(args.from.clone()), Store::new(args.to.clone()));
    let (from_label, to_label) = (
        args.from.display().to_string(),
        args.to.display().to_string(),
    );
    for _ in 0..ATTEMPTS {
        // Always in the same order, so two runs in opposite directions
        // cannot each hold one host and wait for the other.
        let (mut src, mut dst) = if from_real < to_real {
            let src = from_store.claim()?;
            (src, to_store.claim()?)
        } else {
            let dst = to_store.claim()?;
            (from_store.claim()?, dst)
        };
        let p = migrate::plan(src.host(), dst.host(), &request)
            .map_err(|r| refused(cli, &r, &from_label, &to_label))?;
        match commit_pair(
            &mut src,
            p.source_after.clone(),
            &mut dst,
            p.target_after.clone(),
            &p.guest,
        ) {
            Ok(()) => {}
            Err(PairError::Moved) => continue,
            Err(PairError::Failed(why)) => return Err(CliError::Failed(why)),
        }
        let (from, to) = (state_file(from_label), state_file(to_label));
        if cli.json {
            return Ok(plan_json(&p, &from, &to, "qemu+ssh://DST/system").to_json());
        }
        return Ok(report(&p, &from, &to));
    }
    Err(CliError::Failed(format!(
        "{from_label} or {to_label} changed {ATTEMPTS} times while the migration was being \
         computed; nothing was written: try again"
    )))
}

/// What a run did, step by step, and what the guest sees now.
fn report(p: &Plan, from: &Side, to: &Side) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A claimed host in memory whose swaps fail when told to.
    struct Fake {
        host: Host,
        fail: Option<StoreError>,
        swaps: usize,
        path: PathBuf,
    }

    impl Fake {
        fn new(name: &str) -> Fake {
            Fake {
                host: Host::seed_example(),
                fail: None,
                swaps: 0,
                path: PathBuf::from(name),
            }
        }
    }

    impl Swap for Fake {
        fn host(&self) -> &Host {
            &self.host
        }
        fn swap(&mut self, new: Host) -> Result<(), StoreError> {
            if let Some(e) = self.fail.take() {
                return Err(e);
            }
            self.swaps += 1;
            self.host = new;
            Ok(())
        }
        fn path(&self) -> &Path {
            &self.path
        }
    }

    fn changed() -> Host {
        let mut h = Host::seed_example();
        h.start_guest("G", None, Default::default()).unwrap();
        h
    }

    #[test]
    fn both_hosts_are_committed_source_first() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        commit_pair(&mut s, changed(), &mut t, changed(), "G").unwrap();
        assert_eq!((s.host.clone(), t.host.clone()), (changed(), changed()));
        assert_eq!((s.swaps, t.swaps), (1, 1));
    }

    #[test]
    fn a_target_that_cannot_be_written_puts_the_source_back() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        t.fail = Some(StoreError::Stopped);
        let Err(PairError::Failed(why)) = commit_pair(&mut s, changed(), &mut t, changed(), "G")
        else {
            panic!("committed")
        };
        assert_eq!(
            why,
            "the target could not be written: the server has stopped; the source was put back \
             as it was, so neither host changed"
        );
        assert_eq!(
            (s.host.clone(), t.host.clone()),
            (Host::seed_example(), Host::seed_example())
        );
        assert_eq!(s.swaps, 2);
    }

    #[test]
    fn a_target_that_moved_puts_the_source_back_and_the_run_starts_over() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        t.fail = Some(StoreError::Moved(PathBuf::from("t")));
        assert!(matches!(
            commit_pair(&mut s, changed(), &mut t, changed(), "G"),
            Err(PairError::Moved)
        ));
        assert_eq!(s.host, Host::seed_example());
    }

    #[test]
    fn a_source_that_moved_leaves_the_target_untouched() {
        let (mut s, mut t) = (Fake::new("s"), Fake::new("t"));
        s.fail = Some(StoreError::Moved(PathBuf::from("s")));
        assert!(matches!(
            commit_pair(&mut s, changed(), &mut t, changed(), "G"),
            Err(PairError::Moved)
        ));
        assert_eq!((s.swaps, t.swaps), (0, 0));
    }

    /// The undo is a swap too: when it fails, the message says where each
    /// host is left.
    struct FailsSecondSwap(Fake);

    impl Swap for FailsSecondSwap {
        fn host(&self) -> &Host {
            self.0.host()
        }
        fn swap(&mut self, new: Host) -> Result<(), StoreError> {
            if self.0.swaps == 1 {
                return Err(StoreError::Moved(PathBuf::from("s")));
            }
            self.0.swap(new)
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    #[test]
    fn when_the_undo_fails_too_the_message_says_where_each_host_is_left() {
        let mut s = FailsSecondSwap(Fake::new("src.json"));
        let mut t = Fake::new("dst.json");
        t.fail = Some(StoreError::Stopped);
        let Err(PairError::Failed(why)) = commit_pair(&mut s, changed(), &mut t, changed(), "G")
        else {
            panic!("committed")
        };
        assert_eq!(
            why,
            "the target could not be written: the server has stopped; putting the source back \
             failed too: s changed since it was read (another change came first); nothing was \
             written to it. The source (src.json) now has guest G stopped and its adapters \
             unassigned; the target (dst.json) is as it was. Start the guest again on the \
             source and assign its adapters back, or run the migration again"
        );
        assert_eq!(s.0.host, changed());
    }

    #[test]
    fn shell_words_are_quoted_only_when_they_need_it() {
        assert_eq!(shell_word("Guest1-hostdev.xml"), "Guest1-hostdev.xml");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
