//! `apmatrix`: an emulated IBM Z crypto (AP) host you drive from the shell.

mod configure;
mod demo;
mod lszcrypt;
mod matrix_view;
mod serve;
mod store;
mod style;

use std::path::PathBuf;
use std::process::ExitCode;

use apmatrix_model::{
    ApError, CpuModel, Effects, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED,
};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Serialize;
use uuid::Uuid;

use crate::store::{Store, StoreError};
use crate::style::{ColorChoice, Style};

/// Emulate, inspect and configure IBM Z crypto passthrough: the AP bus's
/// apmask and aqmask, vfio_ap mediated matrix devices (mdevs) and the KVM
/// guests using them, with the kernel's rules and errnos.
#[derive(Parser, Debug)]
#[command(name = "apmatrix", version, max_term_width = 100)]
struct Cli {
    /// The emulated host's state file [default: $APMATRIX_HOST, else
    /// $XDG_STATE_HOME/apmatrix/host.json, else ~/.local/state/apmatrix/host.json]
    #[arg(long, global = true, value_name = "FILE")]
    host: Option<PathBuf>,

    /// Print machine-readable JSON (commands that read)
    #[arg(long, global = true)]
    json: bool,

    /// Colour the output
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay the seed document's walkthrough on a fresh in-memory host
    Demo,
    /// Create or describe the emulated host
    #[command(subcommand)]
    Host(HostCommand),
    /// List crypto cards and queues like s390-tools' lszcrypt
    Lszcrypt {
        /// Verbose: all queues, with PENDING, HWTYPE, QDEPTH, FUNCTIONS, DRIVER
        #[arg(short = 'V', long)]
        verbose: bool,
        /// Show the AP bus attributes
        #[arg(short, long, conflicts_with_all = ["verbose", "domains"])]
        bus: bool,
        /// Show the usage and control domains
        #[arg(short, long, conflicts_with = "verbose")]
        domains: bool,
    },
    /// Show who owns each APQN: the host, free for vfio_ap, or which mdev and guest
    Matrix,
    /// Show or set the AP bus masks (apmask, aqmask)
    #[command(subcommand)]
    Mask(MaskCommand),
    /// Manage mediated matrix devices (mdevs)
    #[command(subcommand)]
    Mdev(MdevCommand),
    /// Start and stop emulated guests, and see what they see
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Serve the host as a live sysfs tree at DIR (DIR/bus/ap/apmask, DIR/devices/vfio_ap/matrix, ...) until interrupted
    ///
    /// DIR stands for /sys: point tools at it with SYSFS_ROOT=DIR (s390-tools)
    /// or MDEVCTL_ENV_ROOT=PARENT when DIR is PARENT/sys (mdevctl 1.3+).
    /// CLI commands run meanwhile change the same host. Needs root and /dev/fuse.
    Mount {
        /// An existing directory to mount the tree on
        dir: PathBuf,
    },
    /// Run a command with the emulated tree over /sys/bus/ap, /sys/devices/ap, /sys/devices/vfio_ap, /sys/class/mdev_bus and /sys/bus/mdev
    ///
    /// The command runs in a private mount namespace, so tools with hard-coded
    /// /sys paths (echo ... > /sys/bus/ap/apmask, mdevctl) use the emulated
    /// host; the rest of the system sees nothing. Exits with the command's
    /// status. Needs root and /dev/fuse.
    Exec {
        /// The command and its arguments
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Check a configuration file against the host: every problem at once, in APQN terms, with a fix
    Check {
        /// The configuration (TOML; see docs/configuration.md)
        config: PathBuf,
        /// Work on this sysfs root (/sys, or a mounted emulator) instead of the emulated host
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// Also check autostart mdevs against the persistent side, as ap-check does:
        /// DIR/mdevctl.d/matrix and DIR/udev/rules.d/41-ap.rules [default with --sysfs /sys: /etc]
        #[arg(long, value_name = "DIR")]
        etc: Option<PathBuf>,
    },
    /// Print the ordered sysfs writes that take the host to the configuration, as shell commands
    Plan {
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
    },
    /// Make the host match the configuration; on any refusal undo what was done
    Apply {
        config: PathBuf,
        #[arg(long, value_name = "DIR")]
        sysfs: Option<PathBuf>,
        /// Only say what would be written
        #[arg(long)]
        dry_run: bool,
    },
    /// Export a configuration for mdevctl, libvirt, QEMU or persistent masks
    Export {
        #[arg(value_enum)]
        format: configure::ExportFormat,
        config: PathBuf,
        /// mdevctl: write one file per mdev into DIR (e.g. /etc/mdevctl.d/matrix)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Read mdevctl's stored configs (a directory like /etc/mdevctl.d/matrix) and print them as a configuration
    Import {
        /// The directory holding one JSON file per mdev, named by UUID
        dir: PathBuf,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum HostCommand {
    /// Create the emulated host: the seed document's example host, or one described in a TOML file
    Init {
        /// A host description (see docs/host-description.md)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Replace an existing host
        #[arg(long)]
        force: bool,
    },
    /// Describe the host: cards, domains, maximum ids, mdevs, guests
    Show,
    /// Print the host's hardware as a host description (TOML)
    Topology,
}

#[derive(Subcommand, Debug)]
enum MaskCommand {
    /// Show both masks and the pools they define
    Show,
    /// Write a mask in either kernel form: absolute hex (0xf9ff...) or relative (-5,-6 / +0x47)
    Set {
        #[arg(value_enum)]
        mask: MaskArg,
        /// The value, exactly as it would be written to /sys/bus/ap/<mask>
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print the kernel parameters that would give the current masks at boot
    Cmdline,
}

#[derive(Copy, Clone, Debug, clap::ValueEnum)]
enum MaskArg {
    Apmask,
    Aqmask,
}

impl From<MaskArg> for MaskKind {
    fn from(m: MaskArg) -> Self {
        match m {
            MaskArg::Apmask => MaskKind::Apmask,
            MaskArg::Aqmask => MaskKind::Aqmask,
        }
    }
}

#[derive(Subcommand, Debug)]
enum MdevCommand {
    /// Create an mdev (like writing a UUID to .../vfio_ap-passthrough/create)
    Create {
        /// The UUID [default: a random one]
        #[arg(long)]
        uuid: Option<String>,
    },
    /// Assign adapters, domains and control domains, in the order given; stops at the first refusal
    Assign(MatrixIds),
    /// Unassign adapters, domains and control domains, in the order given
    Unassign(MatrixIds),
    /// Show an mdev's matrix and control domains
    Show {
        /// UUID or a unique prefix of it
        mdev: String,
    },
    /// List the mdevs
    List,
    /// Remove an mdev (refused while a guest uses it)
    Remove {
        /// UUID or a unique prefix of it
        mdev: String,
    },
}

#[derive(clap::Args, Debug)]
struct MatrixIds {
    /// UUID or a unique prefix of it
    mdev: String,
    /// Adapters: ids and ranges, decimal or 0x hex (5,6 or 0x04-0x06)
    #[arg(short, long = "adapter", value_name = "IDS")]
    adapter: Vec<String>,
    /// Usage domains: ids and ranges, decimal or 0x hex
    #[arg(short, long = "domain", value_name = "IDS")]
    domain: Vec<String>,
    /// Control domains: ids and ranges, decimal or 0x hex
    #[arg(short, long = "control-domain", value_name = "IDS")]
    control_domain: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum GuestCommand {
    /// Start a guest, optionally with an mdev (-device vfio-ap,sysfsdev=...)
    Start {
        name: String,
        /// The mdev: UUID or a unique prefix of it
        #[arg(long)]
        mdev: Option<String>,
        /// CPU model AP features, QEMU style
        #[arg(
            long,
            default_value = "ap=on,apqci=on,apft=on",
            value_name = "FEATURES"
        )]
        cpu: String,
    },
    /// Stop a guest
    Stop { name: String },
    /// Hot plug an mdev into a running guest
    Attach { name: String, mdev: String },
    /// Hot unplug the guest's mdev
    Detach { name: String },
    /// List running guests
    List,
    /// What lszcrypt inside the guest prints
    Lszcrypt { name: String },
}

/// Everything that makes a command fail.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Refused(#[from] ApError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    /// Some steps of a multi-step command were applied before a refusal.
    #[error("{error}")]
    Partial { done: String, error: ApError },
}

type Result<T, E = CliError> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let style = Style::new(cli.color);
    if let Command::Exec { command } = &cli.command {
        let store = Store::new(cli.host.clone().unwrap_or_else(store::default_path));
        return match serve::exec(store, command) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => report(&style, &e),
        };
    }
    match run(&cli, &matches, &style) {
        Ok(text) => emit(&text).unwrap_or(ExitCode::SUCCESS),
        Err(e) => {
            if let CliError::Partial { done, .. } = &e {
                if let Some(code) = emit(done) {
                    return code;
                }
            }
            report(&style, &e)
        }
    }
}

/// Prints to stdout. A reader that went away (`| head`) ends us quietly
/// with the status a shell tool killed by SIGPIPE has; `None` when printed.
fn emit(text: &str) -> Option<ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Some(ExitCode::from(141)),
        Err(_) => Some(ExitCode::FAILURE),
    }
}

/// Says why a command failed, on stderr (if anyone is listening), and
/// gives the README's status for it.
fn report(style: &Style, e: &CliError) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}: {}", style.error("apmatrix"), e);
    ExitCode::FAILURE
}

/// Runs a command; returns what it prints on success.
fn run(cli: &Cli, matches: &ArgMatches, style: &Style) -> Result<String> {
    let store = || Store::new(cli.host.clone().unwrap_or_else(store::default_path));
    let json = |value: &dyn erased::Json| Ok(value.to_json());
    match &cli.command {
        Command::Demo => Ok(demo::run(style)),
        Command::Mount { dir } => serve::mount(store(), dir),
        Command::Check { config, sysfs, etc } => {
            configure::check(store(), config, sysfs.as_deref(), etc.as_deref())
        }
        Command::Plan { config, sysfs } => configure::plan(store(), config, sysfs.as_deref()),
        Command::Apply {
            config,
            sysfs,
            dry_run,
        } => configure::apply(store(), config, sysfs.as_deref(), *dry_run),
        Command::Export {
            format,
            config,
            dir,
        } => configure::export(store(), *format, config, dir.as_deref()),
        Command::Import { dir } => configure::import(dir),
        Command::Exec { .. } => unreachable!("handled in main"),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "apmatrix", &mut out);
            Ok(String::from_utf8(out).expect("completion scripts are UTF-8"))
        }
        Command::Host(HostCommand::Init { from, force }) => {
            let topology = match from {
                None => Topology::seed_example(),
                Some(path) => {
                    let text = configure::read_text(path)?;
                    Topology::from_toml(&text)
                        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
                }
            };
            let (host, warnings) = Host::boot(topology, &SEED);
            let store = store();
            store.init(&host, *force)?;
            let mut out = String::new();
            for w in warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push_str(&format!(
                "created host {:?} at {}: {} cards, {} queues\n",
                host.topology().name,
                store.path().display(),
                host.topology().cards.len(),
                host.topology().queue_count()
            ));
            Ok(out)
        }
        Command::Host(HostCommand::Show) => {
            let host = store().load()?;
            if cli.json {
                return json(&host_summary(&host));
            }
            Ok(host_text(&host))
        }
        Command::Host(HostCommand::Topology) => Ok(store().load()?.topology().to_toml()),
        Command::Lszcrypt {
            verbose,
            bus,
            domains,
        } => {
            let host = store().load()?;
            if cli.json {
                return json(&lszcrypt::rows(&host, *verbose));
            }
            Ok(if *bus {
                lszcrypt::bus(&host)
            } else if *domains {
                lszcrypt::domains(&host)
            } else {
                lszcrypt::table(&host, *verbose)
            })
        }
        Command::Matrix => {
            let host = store().load()?;
            if cli.json {
                return json(&matrix_view::build(&host));
            }
            Ok(matrix_view::render(&host, style))
        }
        Command::Mask(MaskCommand::Show) => {
            let host = store().load()?;
            if cli.json {
                return json(&mask_summary(&host));
            }
            Ok(matrix_view::pools(&host))
        }
        Command::Mask(MaskCommand::Set { mask, value }) => {
            let kind = MaskKind::from(*mask);
            let effects = store().update(|h| h.write_mask(kind, value.as_bytes()))??;
            let mut out = if effects.reprobed {
                format!("{kind} set\n")
            } else {
                format!("{kind} unchanged: nothing was re-probed\n")
            };
            out.push_str(&describe_effects(&effects));
            Ok(out)
        }
        Command::Mask(MaskCommand::Cmdline) => {
            let host = store().load()?;
            Ok(format!("{}\n", boot_cmdline(&host)))
        }
        Command::Mdev(cmd) => mdev_command(cli, cmd, matches, &store()),
        Command::Guest(cmd) => guest_command(cli, cmd, &store()),
    }
}

/// Serialising any `Serialize` through one function.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            let mut s = serde_json::to_string_pretty(self).expect("serialisable");
            s.push('\n');
            s
        }
    }
}
use erased::Json as _;

/// Finds an mdev by UUID or unique UUID prefix.
fn resolve_mdev(host: &Host, text: &str) -> Result<Uuid> {
    if let Ok(u) = Uuid::parse_str(text) {
        return Ok(u);
    }
    let wanted = text.to_ascii_lowercase();
    let matching: Vec<Uuid> = host
        .mdevs()
        .map(|m| m.uuid)
        .filter(|u| u.to_string().starts_with(&wanted))
        .collect();
    match matching.as_slice() {
        [one] if !wanted.is_empty() => Ok(*one),
        [] | [_] => Err(CliError::Usage(format!(
            "no mdev matches {text:?}: give its UUID or a unique prefix (see `apmatrix mdev list`)"
        ))),
        many => Err(CliError::Usage(format!(
            "{text:?} matches {} mdevs ({}); give more of the UUID",
            many.len(),
            many.iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn mdev_command(
    cli: &Cli,
    cmd: &MdevCommand,
    matches: &ArgMatches,
    store: &Store,
) -> Result<String> {
    match cmd {
        MdevCommand::Create { uuid } => {
            let uuid = match uuid {
                Some(text) => text.clone(),
                None => Uuid::new_v4().to_string(),
            };
            let created = store.update(|h| h.write_create(uuid.as_bytes()))??;
            Ok(created.map_or(String::new(), |u| format!("{u}\n")))
        }
        MdevCommand::Assign(ids) | MdevCommand::Unassign(ids) => {
            let assign = matches!(cmd, MdevCommand::Assign(_));
            let sub = matches
                .subcommand_matches("mdev")
                .and_then(|m| m.subcommand_matches(if assign { "assign" } else { "unassign" }))
                .expect("clap parsed this subcommand");
            let steps = ordered_ids(sub, ids)?;
            if steps.is_empty() {
                return Err(CliError::Usage(
                    "nothing to do: give --adapter, --domain or --control-domain".into(),
                ));
            }
            let verb = if assign { "assigned" } else { "unassigned" };
            let mut out = String::new();
            let outcome = store.update(|h| {
                out.clear(); // from a run on a host that moved meanwhile
                let uuid = resolve_mdev(h, &ids.mdev)?;
                for (axis, id) in &steps {
                    let effects = if assign {
                        h.assign(&uuid, *axis, *id)
                    } else {
                        h.unassign(&uuid, *axis, *id)
                    };
                    match effects {
                        Ok(effects) => {
                            out.push_str(&format!("{verb} {axis} {id:#04x}\n"));
                            out.push_str(&describe_effects(&effects));
                        }
                        Err(error) if out.is_empty() => return Err(CliError::Refused(error)),
                        Err(error) => {
                            return Err(CliError::Partial {
                                done: std::mem::take(&mut out),
                                error,
                            })
                        }
                    }
                }
                Ok(())
            })?;
            outcome.map(|()| out)
        }
        MdevCommand::Show { mdev } => {
            let host = store.load()?;
            let uuid = resolve_mdev(&host, mdev)?;
            let m = host.mdev(&uuid).ok_or(ApError::NoSuchMdev(uuid))?;
            if cli.json {
                return Ok(mdev_summary(&host, m).to_json());
            }
            let guest = host
                .guest_of(&uuid)
                .map_or("none".to_string(), str::to_string);
            let matrix = m.matrix_text();
            let controls = m.control_domains_text();
            Ok(format!(
                "mdev {uuid}\nguest: {guest}\nadapters: {}\ndomains: {}\ncontrol domains: {}\nmatrix:\n{}control_domains:\n{}",
                m.adapters.to_hex_list(),
                m.domains.to_hex_list(),
                m.control_domains.to_hex_list(),
                indent(&matrix),
                indent(&controls),
            ))
        }
        MdevCommand::List => {
            let host = store.load()?;
            let list: Vec<MdevSummary> = host.mdevs().map(|m| mdev_summary(&host, m)).collect();
            if cli.json {
                return Ok(list.to_json());
            }
            if list.is_empty() {
                return Ok("no mdevs\n".into());
            }
            let mut out = format!(
                "{:<36}  {:<14} {:<14} {:<14} {:>5}  GUEST\n",
                "UUID", "ADAPTERS", "DOMAINS", "CONTROL", "APQNS"
            );
            for s in list {
                out.push_str(&format!(
                    "{:<36}  {:<14} {:<14} {:<14} {:>5}  {}\n",
                    s.uuid,
                    s.adapters,
                    s.domains,
                    s.control_domains,
                    s.apqns,
                    s.guest.as_deref().unwrap_or("-")
                ));
            }
            Ok(out)
        }
        MdevCommand::Remove { mdev } => {
            let removed = store.update(|h| {
                let uuid = resolve_mdev(h, mdev)?;
                h.remove_mdev(&uuid)?;
                Ok::<_, CliError>(uuid)
            })??;
            Ok(format!("removed mdev {removed}\n"))
        }
    }
}

/// The ids of `--adapter`, `--domain` and `--control-domain` in the order
/// they were given on the command line.
fn ordered_ids(sub: &ArgMatches, ids: &MatrixIds) -> Result<Vec<(MatrixAxis, u64)>> {
    let mut steps: Vec<(usize, MatrixAxis, u64)> = Vec::new();
    for (arg, axis, values) in [
        ("adapter", MatrixAxis::Adapter, &ids.adapter),
        ("domain", MatrixAxis::Domain, &ids.domain),
        (
            "control_domain",
            MatrixAxis::ControlDomain,
            &ids.control_domain,
        ),
    ] {
        let indices = sub
            .indices_of(arg)
            .map(|i| i.collect::<Vec<_>>())
            .unwrap_or_default();
        for (index, text) in indices.into_iter().zip(values) {
            let list = apmatrix_model::parse::parse_id_list(text)
                .map_err(|e| CliError::Usage(format!("--{}: {e}", arg.replace('_', "-"))))?;
            for (k, id) in list.into_iter().enumerate() {
                steps.push((index * 1024 + k, axis, id));
            }
        }
    }
    steps.sort_by_key(|s| s.0);
    Ok(steps.into_iter().map(|(_, axis, id)| (axis, id)).collect())
}

fn guest_command(cli: &Cli, cmd: &GuestCommand, store: &Store) -> Result<String> {
    match cmd {
        GuestCommand::Start { name, mdev, cpu } => {
            let cpu =
                CpuModel::from_features(cpu).map_err(|e| CliError::Usage(format!("--cpu: {e}")))?;
            let effects = store.update(|h| {
                let uuid = mdev.as_deref().map(|m| resolve_mdev(h, m)).transpose()?;
                Ok::<_, CliError>(h.start_guest(name, uuid, cpu)?)
            })??;
            Ok(format!(
                "started guest {name}\n{}",
                describe_effects(&effects)
            ))
        }
        GuestCommand::Stop { name } => {
            store.update(|h| h.stop_guest(name))??;
            Ok(format!("stopped guest {name}\n"))
        }
        GuestCommand::Attach { name, mdev } => {
            let effects = store.update(|h| {
                let uuid = resolve_mdev(h, mdev)?;
                Ok::<_, CliError>(h.attach_mdev(name, &uuid)?)
            })??;
            Ok(describe_effects(&effects))
        }
        GuestCommand::Detach { name } => {
            let effects = store.update(|h| h.detach_mdev(name))??;
            Ok(describe_effects(&effects))
        }
        GuestCommand::List => {
            let host = store.load()?;
            let mut rows = Vec::new();
            for g in host.guests() {
                let view = host.guest_view(&g.name)?;
                rows.push(GuestSummary {
                    name: g.name.clone(),
                    mdev: g.mdev,
                    cpu: g.cpu.features(),
                    visible_apqns: view.apqns().len(),
                });
            }
            if cli.json {
                return Ok(rows.to_json());
            }
            if rows.is_empty() {
                return Ok("no guests\n".into());
            }
            let mut out = format!("{:<16} {:<36}  {:<25} APQNS\n", "NAME", "MDEV", "CPU");
            for r in rows {
                out.push_str(&format!(
                    "{:<16} {:<36}  {:<25} {}\n",
                    r.name,
                    r.mdev.map_or("-".to_string(), |u| u.to_string()),
                    r.cpu,
                    r.visible_apqns
                ));
            }
            Ok(out)
        }
        GuestCommand::Lszcrypt { name } => {
            let host = store.load()?;
            let view = host.guest_view(name)?;
            if cli.json {
                return Ok(view.to_json());
            }
            for note in &view.notes {
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("note: {note}\n"),
                );
            }
            Ok(view.lszcrypt())
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// What a change did besides itself: rebinds and hot (un)plugs.
pub(crate) fn describe_effects(effects: &Effects) -> String {
    let mut out = String::new();
    for r in &effects.rebinds {
        out.push_str(&format!("  rebound {r}\n"));
    }
    for u in &effects.guest_updates {
        let list = |v: Vec<apmatrix_model::Apqn>| {
            v.iter()
                .map(|q| q.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (plugged, unplugged) = (u.plugged(), u.unplugged());
        if !plugged.is_empty() {
            out.push_str(&format!(
                "  guest {}: hot plug {}\n",
                u.guest,
                list(plugged)
            ));
        }
        if !unplugged.is_empty() {
            out.push_str(&format!(
                "  guest {}: hot unplug {}\n",
                u.guest,
                list(unplugged)
            ));
        }
        if u.before.adm != u.after.adm {
            out.push_str(&format!(
                "  guest {}: control domains now {}\n",
                u.guest,
                u.after.adm.to_hex_list()
            ));
        }
    }
    out
}

/// The shortest absolute form of a mask as a boot parameter value: the
/// absolute form is left-aligned, so trailing zero digits can be dropped.
fn boot_value(mask: &Mask256) -> String {
    let digits = mask.to_string();
    let trimmed = digits.trim_end_matches('0');
    if trimmed == "0x" || trimmed.is_empty() {
        "0x0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Kernel parameters that give the current masks at boot; a mask left at
/// all ones (the default) needs none.
fn boot_cmdline(host: &Host) -> String {
    let mut parts = Vec::new();
    for (name, mask) in [("ap.apmask", host.apmask()), ("ap.aqmask", host.aqmask())] {
        if mask != Mask256::FULL {
            parts.push(format!("{name}={}", boot_value(&mask)));
        }
    }
    if parts.is_empty() {
        "(no parameters needed: both masks are at their default, all ones)".to_string()
    } else {
        parts.join(" ")
    }
}

#[derive(Serialize)]
struct MdevSummary {
    uuid: Uuid,
    adapters: String,
    domains: String,
    control_domains: String,
    apqns: usize,
    guest: Option<String>,
    matrix: Vec<String>,
}

fn mdev_summary(host: &Host, m: &apmatrix_model::Mdev) -> MdevSummary {
    MdevSummary {
        uuid: m.uuid,
        adapters: m.adapters.to_hex_list(),
        domains: m.domains.to_hex_list(),
        control_domains: m.control_domains.to_hex_list(),
        apqns: m.apqns().count(),
        guest: host.guest_of(&m.uuid).map(str::to_string),
        matrix: m.matrix_text().lines().map(str::to_string).collect(),
    }
}

#[derive(Serialize)]
struct GuestSummary {
    name: String,
    mdev: Option<Uuid>,
    cpu: String,
    visible_apqns: usize,
}

#[derive(Serialize)]
struct MaskSummary {
    apmask: Mask256,
    aqmask: Mask256,
    host_adapters: String,
    host_domains: String,
    queues_for_host: usize,
    queues_for_vfio_ap: usize,
    queues_unbound: u32,
    boot_cmdline: String,
}

fn mask_summary(host: &Host) -> MaskSummary {
    let (bound, total) = host.bindings_count();
    MaskSummary {
        apmask: host.apmask(),
        aqmask: host.aqmask(),
        host_adapters: host.apmask().to_list(),
        host_domains: host.aqmask().to_list(),
        queues_for_host: host
            .queues_bound_to(apmatrix_model::Driver::Cex4Queue)
            .len(),
        queues_for_vfio_ap: host.queues_bound_to(apmatrix_model::Driver::VfioAp).len(),
        queues_unbound: total - bound,
        boot_cmdline: boot_cmdline(host),
    }
}

#[derive(Serialize)]
struct HostSummary {
    name: String,
    profile: &'static str,
    max_adapter_id: u8,
    max_domain_id: u8,
    usage_domains: String,
    control_domains: String,
    cards: Vec<CardSummary>,
    queues: usize,
    mdevs: usize,
    guests: usize,
    available_instances: u32,
}

#[derive(Serialize)]
struct CardSummary {
    id: String,
    #[serde(rename = "type")]
    type_name: String,
    mode: &'static str,
    hwtype: u8,
    online: bool,
    config: bool,
    chkstop: bool,
}

fn host_summary(host: &Host) -> HostSummary {
    let t = host.topology();
    HostSummary {
        name: t.name.clone(),
        profile: host.profile().name,
        max_adapter_id: t.max_adapter_id(),
        max_domain_id: t.max_domain_id(),
        usage_domains: t.usage_domains.to_hex_list(),
        control_domains: t.control_domains.to_hex_list(),
        cards: t
            .cards
            .values()
            .map(|c| CardSummary {
                id: c.id.to_string(),
                type_name: c.type_name(),
                mode: c.mode.lszcrypt_name(),
                hwtype: c.hwtype,
                online: c.online,
                config: c.config,
                chkstop: c.chkstop,
            })
            .collect(),
        queues: t.queue_count(),
        mdevs: host.mdev_count(),
        guests: host.guests().count(),
        available_instances: host.available_instances(),
    }
}

fn host_text(host: &Host) -> String {
    let s = host_summary(host);
    let mut out = format!(
        "host {:?} (kernel profile {})\nmaximum adapter id {:#04x}, maximum domain id {:#04x}\nusage domains:   {}\ncontrol domains: {}\n",
        s.name, s.profile, s.max_adapter_id, s.max_domain_id, s.usage_domains, s.control_domains
    );
    out.push_str(&format!(
        "cards ({}, {} queues):\n",
        s.cards.len(),
        s.queues
    ));
    for c in &s.cards {
        let state = if !c.config {
            "deconfigured"
        } else if c.chkstop {
            "check-stopped"
        } else if c.online {
            "online"
        } else {
            "offline"
        };
        out.push_str(&format!(
            "  card{}  {}  {:<11}  hwtype {:>2}  {state}\n",
            c.id, c.type_name, c.mode, c.hwtype
        ));
    }
    out.push_str(&format!(
        "mdevs: {} (available instances {}), guests: {}\n",
        s.mdevs, s.available_instances, s.guests
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_values_drop_trailing_zero_digits() {
        assert_eq!(boot_value(&Mask256::range(0, 15)), "0xffff");
        assert_eq!(boot_value(&Mask256::single(1)), "0x4");
        assert_eq!(boot_value(&Mask256::EMPTY), "0x0");
        assert_eq!(
            boot_value(&Mask256::single(255)),
            format!("0x{}1", "0".repeat(63))
        );
    }
}
