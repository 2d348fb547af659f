//! `apmatrix host card|domain|adapter|scan`: the hardware and the HMC
//! acting on a running host, for fault injection. The LPAR's configuration
//! changes at once; the bus, its devices and vfio_ap see it at the next bus
//! scan (kernel.md §9), which `--scan` runs at once, as the machine's
//! configuration-change notification makes the kernel do.

use apmatrix_model::{AdapterId, ApError, Card, Effects, Op};

use crate::cli::{AddRemove, CardEvent, HostCommand, OnOff};
use crate::output::{describe_effects, waiting_for_scan};
use crate::store::Store;
use crate::{CliError, Result};

const WHEN: &str = "the bus sees it at its next scan (every config_time seconds, \
                    apmatrix host scan, or echo 1 > /sys/bus/ap/scans)";

/// Runs one host event; `cmd` is one of the event subcommands.
pub(crate) fn run(cmd: &HostCommand, store: &Store) -> Result<String> {
    // `scan`: None for an event that takes effect at once and no scan
    // asked; otherwise whether to scan now (false: it waits for a scan).
    let (op, what, scan) = match cmd {
        HostCommand::Card {
            adapter,
            event,
            state,
            scan,
        } => {
            let (adapter, on) = (AdapterId(*adapter), *state == OnOff::On);
            let op = match event {
                CardEvent::Config => Op::SetLparCardConfig {
                    adapter,
                    configured: on,
                },
                CardEvent::Online => Op::SetCardOnline {
                    adapter,
                    online: on.into(),
                },
                CardEvent::Checkstop => Op::SetCardCheckstop {
                    adapter,
                    chkstop: on,
                },
            };
            let what = format!("card{adapter}: {event:?} {state:?}").to_lowercase();
            // Only `config` waits for a scan; the others take effect at
            // once, and `--scan` then just scans after them.
            let waits = matches!(event, CardEvent::Config);
            (op, what, (waits || scan.scan).then_some(scan.scan))
        }
        HostCommand::Domain {
            domain,
            change,
            scan,
        } => {
            let present = *change == AddRemove::Add;
            let verb = if present { "gains" } else { "loses" };
            let op = Op::SetLparDomain {
                domain: *domain,
                present,
            };
            let what = format!("the LPAR {verb} usage domain {domain:#04x}");
            (op, what, Some(scan.scan))
        }
        HostCommand::Adapter {
            adapter,
            change,
            card_type,
            scan,
        } => {
            let adapter = AdapterId(*adapter);
            let (op, what) = match (change, card_type) {
                (AddRemove::Add, Some((hwtype, mode))) => {
                    let card = Card::new(adapter, *hwtype, *mode);
                    let what = format!("the LPAR gains adapter {adapter}, a {}", card.type_name());
                    let op = Op::AddLparAdapter {
                        adapter,
                        hwtype: *hwtype,
                        mode: *mode,
                    };
                    (op, what)
                }
                (AddRemove::Add, None) => {
                    return Err(CliError::Usage(format!(
                        "adapter {adapter} add needs the card's type: --type CEX8C (CEX4A .. CEX8P)"
                    )))
                }
                (AddRemove::Remove, Some(_)) => {
                    return Err(CliError::Usage(
                        "--type is for an adapter the LPAR gains, not one it loses".into(),
                    ))
                }
                (AddRemove::Remove, None) => (
                    Op::RemoveLparAdapter { adapter },
                    format!("the LPAR loses adapter {adapter}"),
                ),
            };
            (op, what, Some(scan.scan))
        }
        HostCommand::Scan => {
            let (scans, adopted, effects) = store.update(|h| {
                let adopted = waiting_for_scan(h);
                let effects = h.apply(&Op::Rescan)?;
                Ok::<_, ApError>((h.scans(), adopted, effects))
            })??;
            return Ok(scan_report(scans, &adopted, &effects));
        }
        _ => unreachable!("only host events come here"),
    };
    let (effects, scans, adopted) = store.update(|h| {
        let mut effects = h.apply(&op)?;
        let mut adopted = Vec::new();
        if scan == Some(true) {
            adopted = waiting_for_scan(h);
            let scanned = h.apply(&Op::Rescan)?;
            effects.rebinds.extend(scanned.rebinds);
            effects.guest_updates.extend(scanned.guest_updates);
        }
        Ok::<_, ApError>((effects, h.scans(), adopted))
    })??;
    Ok(match scan {
        None => format!("{what}\n{}", describe_effects(&effects)),
        Some(false) => format!("{what}; {WHEN}\n"),
        Some(true) => format!("{what}\n{}", scan_report(scans, &adopted, &effects)),
    })
}

/// A scan's report: the HMC changes it adopted, then what moved.
fn scan_report(scans: u64, adopted: &[String], effects: &Effects) -> String {
    let seen = if adopted.is_empty() {
        String::new()
    } else {
        format!(": {}", adopted.join(", "))
    };
    format!("bus scan {scans} done{seen}\n{}", describe_effects(effects))
}
