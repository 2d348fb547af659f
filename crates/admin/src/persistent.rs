//! The persistent side, as ap-check checks it before `mdevctl define`
//! (tools.md Part A §3): autostart mdevs stored by mdevctl
//! (`<etc>/mdevctl.d/matrix/<uuid>`) and the masks of the chzdev udev rule
//! (`<etc>/udev/rules.d/41-ap.rules`). Only autostart mdevs are checked:
//! manual ones are not started at boot.

use std::fs;
use std::path::Path;

use apmatrix_model::parse::parse_absolute_mask;
use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, Mask256};
use uuid::Uuid;

use crate::export::from_mdevctl_json;
use crate::{Problem, Severity, Wanted};

/// The masks a 41-ap.rules sets, if it sets them (`ATTR{...apmask}="0x..."`).
pub fn rule_masks(text: &str) -> (Option<Mask256>, Option<Mask256>) {
    let find = |name: &str| {
        text.lines().find_map(|line| {
            let at = line.find(&format!("{name}}}=\""))?;
            let rest = &line[at + name.len() + 3..];
            let value = &rest[..rest.find('"')?];
            parse_absolute_mask(value.as_bytes()).ok()
        })
    };
    (find("apmask"), find("aqmask"))
}

/// APQNs as ap-check names them in its messages (`5.4`: decimal, no
/// padding), not in the kernel's form.
fn apqns_text(apqns: &[Apqn]) -> String {
    apqns
        .iter()
        .map(|a| format!("{}.{}", a.adapter.0, a.domain.0))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Problems of the configuration's autostart mdevs against what `etc`
/// holds. Masks not set by the rule fall back to `active` (as ap-check does).
pub fn check_persistent(wanted: &Wanted, etc: &Path, active: (Mask256, Mask256)) -> Vec<Problem> {
    let mut out = Vec::new();
    let dir = etc.join("mdevctl.d/matrix");
    let mut stored: Vec<(Uuid, Mask256, Mask256)> = Vec::new();
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let Ok(uuid) = Uuid::try_parse(&e.file_name().to_string_lossy()) else {
                continue;
            };
            let text = match crate::files::read_text(&e.path(), crate::files::TEXT_LIMIT) {
                Ok(text) => text,
                Err(err) => {
                    out.push(Problem {
                        severity: Severity::Warning,
                        message: format!("{}: {err}", e.path().display()),
                        fix: "repair or remove that mdevctl config".into(),
                    });
                    continue;
                }
            };
            match from_mdevctl_json(uuid, &text) {
                Ok(m) if m.autostart => stored.push((uuid, m.adapters, m.domains)),
                Ok(_) => {}
                Err(err) => out.push(Problem {
                    severity: Severity::Warning,
                    message: format!("{}: {err}", e.path().display()),
                    fix: "repair or remove that mdevctl config".into(),
                }),
            }
        }
    }
    let rules_path = etc.join("udev/rules.d/41-ap.rules");
    let rules = match crate::files::read_text(&rules_path, crate::files::TEXT_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            out.push(Problem {
                severity: Severity::Warning,
                message: format!("{}: {e}", rules_path.display()),
                fix: "repair or remove that rule file".into(),
            });
            String::new()
        }
    };
    let (ap, aq) = rule_masks(&rules);
    let (apmask, aqmask) = (ap.unwrap_or(active.0), aq.unwrap_or(active.1));
    for m in wanted.mdevs.iter().filter(|m| m.autostart) {
        let apqns: Vec<Apqn> = cross(&m.adapters, &m.domains).collect();
        for (uuid, a, d) in stored.iter().filter(|(u, _, _)| *u != m.uuid) {
            let clash: Vec<Apqn> = apqns
                .iter()
                .copied()
                .filter(|q| a.contains(q.adapter.0) && d.contains(q.domain.0))
                .collect();
            if !clash.is_empty() {
                out.push(Problem {
                    severity: Severity::Error,
                    message: format!(
                        "mdev {}: APQN {} is defined for autostart by {uuid} ({})",
                        m.label,
                        apqns_text(&clash),
                        dir.join(uuid.to_string()).display()
                    ),
                    fix: "only one autostart mdev may hold an APQN: change one of them, or make one manual".into(),
                });
            }
        }
        let host: Vec<Apqn> = apqns
            .iter()
            .copied()
            .filter(|q| host_owns(&apmask, &aqmask, *q))
            .collect();
        if !host.is_empty() {
            out.push(Problem {
                severity: Severity::Error,
                message: format!(
                    "mdev {}: APQN {} is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings; it would fail to start at boot",
                    m.label,
                    apqns_text(&host)
                ),
                fix: "persist masks that free it (apmatrix export udev CONFIG > /etc/udev/rules.d/41-ap.rules, or chzdev -t ap -p)".into(),
            });
        }
    }
    out
}
