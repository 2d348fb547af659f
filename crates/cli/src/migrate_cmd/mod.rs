//! `apmatrix migrate plan | run GUEST --from SRC --to DST`: a guest with AP
//! devices moved to another host (issue 15). The decision and the proof
//! on copies are `apmatrix_admin::migrate`'s; this module reads both sides
//! (`side.rs`), prints the procedure (`procedure.rs`, `script.rs`, or
//! `json.rs` with `--json`), and for `run` commits both emulated hosts,
//! all or nothing (`commit.rs`).

mod commit;
mod json;
mod procedure;
mod script;
mod side;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apmatrix_admin::migrate::{self, Refusal, Request};

use crate::cli::{Cli, MigrateArgs, MigrateCommand};
use crate::output::erased::Json as _;
use crate::store::Store;
use crate::{CliError, Result};

use commit::{commit_pair, PairError};
use side::{read_side, state_file};

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

/// A refusal: its reasons on stderr (and as JSON on stdout with --json).
fn refused(cli: &Cli, r: &Refusal, from: &str, to: &str) -> CliError {
    if cli.json {
        return CliError::Printed {
            done: json::refused_json(r, from, to),
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
        return Ok(json::plan_json(&p, &from, &to, uri).to_json());
    }
    Ok(script::summary(&p, &from, &to) + &script::script(&p, &from, &to, uri))
}

/// How often a run starts over when a host changed under it.
const ATTEMPTS: usize = 3;

/// Both sides' paths, resolved: `run` takes two state files of two hosts.
fn two_state_files(args: &MigrateArgs) -> Result<(PathBuf, PathBuf)> {
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
    Ok((from_real, to_real))
}

fn carry_out(cli: &Cli, args: &MigrateArgs) -> Result<String> {
    let request = request(args)?;
    let (from_real, to_real) = two_state_files(args)?;
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
            return Ok(json::plan_json(&p, &from, &to, "qemu+ssh://DST/system").to_json());
        }
        return Ok(script::report(&p, &from, &to));
    }
    Err(CliError::Failed(format!(
        "{from_label} or {to_label} changed {ATTEMPTS} times while the migration was being \
         computed; nothing was written: try again"
    )))
}
