//! `apmatrix mdev ...`: create, assign, unassign, show, list, remove.

use crate::*;

/// Finds an mdev by UUID or unique UUID prefix.
pub(crate) fn resolve_mdev(host: &Host, text: &str) -> Result<Uuid> {
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

pub(crate) fn mdev_command(
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
        MdevCommand::Show { mdev, from } => {
            let host = from.host(store)?;
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
        MdevCommand::List(from) => {
            let host = from.host(store)?;
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
        MdevCommand::Remove { mdev, timeout } => remove(store, mdev, *timeout),
    }
}

/// The ids of `--adapter`, `--domain` and `--control-domain` in the order
/// they were given on the command line.
pub(crate) fn ordered_ids(sub: &ArgMatches, ids: &MatrixIds) -> Result<Vec<(MatrixAxis, u64)>> {
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

/// `mdev remove`: on kernels whose `remove` waits while a guest uses the
/// mdev (kernel.md §5, ≈5.15 on), waits too, saying for whom, up to
/// `timeout` seconds; nothing is removed if the guest keeps it.
fn remove(store: &Store, mdev: &str, timeout: u64) -> Result<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let mut told = false;
    loop {
        let attempt = store.update(|h| {
            let uuid = resolve_mdev(h, mdev)?;
            h.remove_mdev(&uuid)?;
            Ok::<_, CliError>(uuid)
        })?;
        match attempt {
            Ok(removed) => return Ok(format!("removed mdev {removed}\n")),
            Err(CliError::Refused(ApError::RemoveWaitsForRelease { mdev, guest })) => {
                if std::time::Instant::now() >= deadline {
                    return Err(CliError::Failed(format!(
                        "EBUSY: mdev {mdev} is still in use by guest {guest} after {timeout} s; \
                         nothing was removed (stop the guest: apmatrix guest stop {guest})"
                    )));
                }
                if !told {
                    crate::style::say(format_args!(
                        "apmatrix: waiting up to {timeout} s for guest {guest} to release mdev {mdev} \
                         (as this kernel's remove does)"
                    ));
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}
