//! `apmatrix`: an emulated IBM Z crypto (AP) host you drive from the shell.

mod cli;
mod configure;
mod demo;
mod guest_cmd;
mod host_events;
mod lszcrypt;
mod matrix_html;
mod matrix_view;
mod mdev_cmd;
mod migrate_cmd;
mod output;
mod place_cmd;
mod private_net;
mod serve;
mod source;
mod status_cmd;
mod store;
mod style;
mod udev;

use std::process::ExitCode;

use apmatrix_model::{ApError, CpuModel, Effects, Host, Mask256, MaskKind, MatrixAxis, Topology};
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use uuid::Uuid;

use crate::cli::*;
use crate::guest_cmd::*;
use crate::mdev_cmd::*;
use crate::output::*;
use crate::store::{Store, StoreError};
use crate::style::Style;

/// Everything that makes a command fail.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Refused(#[from] ApError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An argument apmatrix rejects (clap rejects the others): status 2.
    #[error("{0}")]
    Usage(String),
    /// It could not be done: a file, the system, a configuration's
    /// problems. Status 1, as for a refusal.
    #[error("{0}")]
    Failed(String),
    /// Some steps of a multi-step command were applied before a refusal.
    #[error("{error}")]
    Partial { done: String, error: ApError },
    /// A command printed `done`, then failed (status 1) as the tool it
    /// emulates does (lszcrypt).
    #[error("{message}")]
    Printed { done: String, message: String },
}

type Result<T, E = CliError> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let style = Style::new(cli.color);
    if let Command::Exec {
        command,
        scans,
        guest,
        host_network,
    } = &cli.command
    {
        let store = Store::new(cli.host.clone().unwrap_or_else(store::default_path));
        let options = store::ServerOptions {
            periodic_scans: !scans.no_periodic_scans,
            // Events only in a network namespace of exec's own.
            udev_events: !*host_network,
            guest: guest.guest.clone(),
        };
        return match serve::exec(store, command, options) {
            Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
            Err(e) => report(&style, &e),
        };
    }
    match run(&cli, &matches, &style) {
        Ok(text) => emit(&text).unwrap_or(ExitCode::SUCCESS),
        Err(e) => {
            if let CliError::Partial { done, .. } | CliError::Printed { done, .. } = &e {
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
/// gives the README's status for it: 1 refused or failed, 2 bad usage.
fn report(style: &Style, e: &CliError) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}: {}", style.error("apmatrix"), e);
    match e {
        CliError::Usage(_) => ExitCode::from(2),
        CliError::Refused(_)
        | CliError::Store(_)
        | CliError::Failed(_)
        | CliError::Partial { .. }
        | CliError::Printed { .. } => ExitCode::FAILURE,
    }
}

/// `apmatrix lszcrypt`: on the state file's host or on `--sysfs DIR`.
fn lszcrypt_command(
    cli: &Cli,
    args: &LszcryptArgs,
    matches: &ArgMatches,
    store: &Store,
) -> Result<String> {
    use lszcrypt::Action;
    // The first of -b, -c, -d, -s on the command line acts.
    let sub = matches.subcommand_matches("lszcrypt");
    let first = |id: &str| sub.and_then(|m| m.index_of(id)).unwrap_or(usize::MAX);
    let action = [
        (args.bus, first("bus"), Action::Bus),
        (args.domains, first("domains"), Action::Domains),
        (args.serial, first("serial"), Action::Serials),
        (
            args.capability.is_some(),
            first("capability"),
            Action::Capability(args.capability.clone().unwrap_or_default()),
        ),
    ]
    .into_iter()
    .filter(|(given, _, _)| *given)
    .min_by_key(|(_, index, _)| *index)
    .map_or(Action::Table, |(_, _, a)| a);
    let options = lszcrypt::Options {
        verbose: args.verbose,
        accel: args.accelonly,
        cca: args.ccaonly,
        ep11: args.ep11only,
        cards: args.cardonly,
        queues: args.queueonly,
        ids: args.ids.clone(),
    };
    let (listing, rows) = match &args.sysfs {
        Some(dir) => {
            if let Err(e) = std::fs::read_dir(dir) {
                return Err(CliError::Failed(format!(
                    "Could not access directory: {}: {}",
                    dir.display(),
                    e.to_string().split(" (os error").next().unwrap_or_default()
                )));
            }
            lszcrypt::run(&apmatrix_admin::DirRoot::new(dir), &action, &options)
        }
        None => {
            let root = apmatrix_admin::EmulatedRoot {
                host: store.load()?,
            };
            lszcrypt::run(&root, &action, &options)
        }
    };
    match listing.failure {
        Some(message) => Err(CliError::Printed {
            done: listing.text,
            message,
        }),
        None if cli.json && action == Action::Table => Ok(erased::Json::to_json(&rows)),
        None => Ok(listing.text),
    }
}

/// Runs a command; returns what it prints on success.
fn run(cli: &Cli, matches: &ArgMatches, style: &Style) -> Result<String> {
    let store = || Store::new(cli.host.clone().unwrap_or_else(store::default_path));
    let json = |value: &dyn erased::Json| Ok(value.to_json());
    match &cli.command {
        Command::Demo { kernel } => Ok(demo::run(style, kernel)),
        Command::Mount { dir, scans, guest } => {
            let options = store::ServerOptions {
                periodic_scans: !scans.no_periodic_scans,
                udev_events: false,
                guest: guest.guest.clone(),
            };
            serve::mount(store(), dir, options)
        }
        Command::Check {
            config,
            sysfs,
            etc,
            kernel,
        } => configure::check(
            store(),
            config,
            sysfs.as_deref(),
            *kernel,
            etc.as_deref(),
            cli.json,
        ),
        Command::Plan {
            config,
            sysfs,
            kernel,
        } => configure::plan(store(), config, sysfs.as_deref(), *kernel, cli.json),
        Command::Apply {
            config,
            sysfs,
            dry_run,
            kernel,
        } => configure::apply(store(), config, sysfs.as_deref(), *kernel, *dry_run),
        Command::Place {
            demands,
            sysfs,
            kernel,
            strategy,
        } => place_cmd::run(
            &store(),
            demands,
            sysfs.as_deref(),
            *kernel,
            *strategy,
            cli.json,
        ),
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
        Command::Host(HostCommand::Init {
            from,
            force,
            kernel,
        }) => {
            let topology = match from {
                None => Topology::seed_example(),
                Some(path) => {
                    let text = configure::read_text(path)?;
                    Topology::from_toml(&text)
                        .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?
                }
            };
            let (host, warnings) = Host::boot(topology, kernel);
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
        Command::Host(HostCommand::Show(from)) => {
            let host = from.host(&store())?;
            if cli.json {
                return json(&host_summary(&host));
            }
            Ok(host_text(&host))
        }
        Command::Host(HostCommand::Topology(from)) => {
            let mut topology = from.host(&store())?.topology().clone();
            if let Some(dir) = &from.sysfs {
                // sysfs carries no name: say where it was read.
                topology.name = format!("observed at {}", dir.display());
            }
            Ok(topology.to_toml())
        }
        Command::Lszcrypt(args) => lszcrypt_command(cli, args, matches, &store()),
        Command::Status { from, persistent } => {
            let status = status_cmd::gather(&store(), from, persistent)?;
            if cli.json {
                return json(&status);
            }
            Ok(status_cmd::render(&status, style))
        }
        Command::Matrix {
            from,
            html: Some(file),
            persistent,
        } => {
            let status = status_cmd::gather(&store(), from, persistent)?;
            let title = match &from.sysfs {
                Some(dir) => format!("apmatrix matrix: {}", dir.display()),
                None => format!("apmatrix matrix: {}", store().path().display()),
            };
            configure::write_file(file, &matrix_html::page(&status, &title))?;
            Ok(format!("wrote {}\n", file.display()))
        }
        Command::Matrix { from, .. } => {
            let host = from.host(&store())?;
            if cli.json {
                return json(&matrix_view::build(&host));
            }
            Ok(matrix_view::render(&host, style))
        }
        Command::Host(
            event @ (HostCommand::Card { .. }
            | HostCommand::Domain { .. }
            | HostCommand::Adapter { .. }
            | HostCommand::Scan),
        ) => host_events::run(event, &store()),
        Command::Mask(MaskCommand::Show(from)) => {
            let host = from.host(&store())?;
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
        Command::Mask(MaskCommand::Cmdline(from)) => {
            let host = from.host(&store())?;
            Ok(format!("{}\n", boot_cmdline(&host)))
        }
        Command::Mdev(cmd) => mdev_command(cli, cmd, matches, &store()),
        Command::Guest(cmd) => guest_command(cli, cmd, &store()),
        Command::Migrate(cmd) => migrate_cmd::run(cli, cmd),
    }
}
