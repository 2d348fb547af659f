//! `apmatrix guest ...`: start, stop, attach, detach, list, lszcrypt.

use crate::*;

pub(crate) fn guest_command(cli: &Cli, cmd: &GuestCommand, store: &Store) -> Result<String> {
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
        GuestCommand::List(from) => {
            let host = from.host(store)?;
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
        GuestCommand::Lszcrypt { name, from } => {
            let host = from.host(store)?;
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
