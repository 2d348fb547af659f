//! The persistent side, as ap-check checks it before `mdevctl define`
//! (tools.md Part A §3): autostart mdevs stored by mdevctl
//! (`<etc>/mdevctl.d/matrix/<uuid>`) and the masks of the chzdev udev rule
//! (`<etc>/udev/rules.d/41-ap.rules`). Only autostart mdevs are checked:
//! manual ones are not started at boot.

use std::path::Path;

use apmatrix_model::parse::parse_absolute_mask;
use apmatrix_model::topology::BootParameters;
use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, Mask256};

use crate::{Problem, Severity, Wanted, WantedMdev};

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
pub(crate) fn apqns_text(apqns: &[Apqn]) -> String {
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
    let defs = crate::definitions::read_definitions(etc);
    for (path, why) in &defs.unreadable {
        out.push(Problem {
            severity: Severity::Warning,
            message: format!("{}: {why}", path.display()),
            fix: "repair or remove that mdevctl config".into(),
        });
    }
    let stored: Vec<&WantedMdev> = defs
        .list
        .iter()
        .map(|d| &d.mdev)
        .filter(|m| m.autostart)
        .collect();
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
        for other in stored.iter().filter(|o| o.uuid != m.uuid) {
            let uuid = other.uuid;
            let clash: Vec<Apqn> = apqns
                .iter()
                .copied()
                .filter(|q| other.contains(*q))
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

/// The masks the next boot gives, and where each comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootMasks {
    pub apmask: Mask256,
    pub aqmask: Mask256,
    /// `41-ap.rules`, `kernel command line` or `kernel default`, per mask.
    pub apmask_from: String,
    pub aqmask_from: String,
    /// What the kernel would ignore on the command line (a bad value).
    pub warnings: Vec<String>,
}

/// The kernel command line's `ap.apmask=` and `ap.aqmask=` (the last of
/// each, as the kernel's parameter parsing keeps it).
pub fn cmdline_parameters(cmdline: &str) -> BootParameters {
    let mut boot = BootParameters::default();
    for word in cmdline.split_ascii_whitespace() {
        if let Some(v) = word.strip_prefix("ap.apmask=") {
            boot.apmask = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("ap.aqmask=") {
            boot.aqmask = Some(v.to_string());
        }
    }
    boot
}

/// The masks at the next boot: the kernel sets them from its command line
/// (all ones where a parameter is absent) when the AP bus comes up; then
/// udev runs the chzdev rule, whose masks replace those (kernel.md §2,
/// tools.md Part A §4). `rules` is 41-ap.rules' text, if there is one.
pub fn boot_masks(rules: Option<&str>, cmdline: &BootParameters) -> BootMasks {
    let (ap_boot, aq_boot, warnings) = cmdline.masks();
    let (ap_rule, aq_rule) = rules.map(rule_masks).unwrap_or((None, None));
    let from = |rule: bool, param: &Option<String>| {
        if rule {
            "41-ap.rules"
        } else if param.is_some() {
            "kernel command line"
        } else {
            "kernel default"
        }
        .to_string()
    };
    BootMasks {
        apmask_from: from(ap_rule.is_some(), &cmdline.apmask),
        aqmask_from: from(aq_rule.is_some(), &cmdline.aqmask),
        apmask: ap_rule.unwrap_or(ap_boot),
        aqmask: aq_rule.unwrap_or(aq_boot),
        warnings: warnings
            .iter()
            .map(|w| {
                format!(
                    "{}={:?}: {}; the kernel leaves that mask empty",
                    w.param, w.value, w.error
                )
            })
            .collect(),
    }
}
