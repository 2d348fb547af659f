//! The next boot, simulated: the host's hardware comes up with the
//! persistent masks, then mdevctl starts every autostart definition in its
//! order (`start-parent-mdevs matrix`, run by udev when the matrix device
//! appears: tools.md Part B §1). Each start is what mdevctl does: ap-check's
//! pre-start checks where it is installed (tools.md Part A §3), then
//! `create` and each attribute written in order, and `remove` after the
//! first refused write. The writes go through the emulated sysfs, so the
//! kernel's rules and errnos are the model's.

use apmatrix_model::vfio::cross;
use apmatrix_model::{host_owns, Apqn, Host};
use serde::Serialize;
use uuid::Uuid;

use crate::definitions::Definition;
use crate::persistent::{apqns_text, BootMasks};
use crate::root::{EmulatedRoot, SysfsRoot};
use crate::Observed;

const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";

/// A write the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `create` or the attribute (`assign_domain`).
    pub attribute: String,
    pub value: String,
    /// The errno's name (`EADDRNOTAVAIL`).
    pub errno: String,
    pub message: String,
}

/// How one autostart definition fares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootStart {
    pub uuid: Uuid,
    pub started: bool,
    /// What ap-check's pre-start check prints against the host as the
    /// boot has made it so far (empty: it lets the start go on). Where
    /// ap-check is not installed, the words for why the kernel refuses.
    pub ap_check: Vec<String>,
    /// The kernel's refusal when the attributes are written (mdevctl then
    /// removes the mdev), if any.
    pub kernel: Option<Refusal>,
}

/// The errno's name, for messages: the ones the AP and vfio_ap stores give.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::EINVAL => "EINVAL",
        libc::ENODEV => "ENODEV",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ERANGE => "ERANGE",
        libc::ENOSPC => "ENOSPC",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        _ => return format!("errno {errno}"),
    }
    .to_string()
}

/// ap-check's pre-start verdict on `def` against the host as it is:
/// usage domains needed beside control domains; no APQN in another active
/// mdev; none the active masks give to the host.
fn ap_check(host: &Host, def: &Definition) -> Vec<String> {
    let m = &def.mdev;
    let mut out = Vec::new();
    if m.domains.is_empty() && !m.control_domains.is_empty() {
        out.push("At least one usage domain must be specified".to_string());
    }
    let apqns: Vec<Apqn> = cross(&m.adapters, &m.domains).collect();
    for other in host.mdevs().filter(|o| o.uuid != def.uuid) {
        let clash: Vec<Apqn> = apqns
            .iter()
            .copied()
            .filter(|q| other.contains(*q))
            .collect();
        if !clash.is_empty() {
            out.push(format!(
                "APQN {} already in use by {}",
                apqns_text(&clash),
                other.uuid
            ));
        }
    }
    let (apmask, aqmask) = (host.apmask(), host.aqmask());
    let owned: Vec<Apqn> = apqns
        .iter()
        .copied()
        .filter(|q| host_owns(&apmask, &aqmask, *q))
        .collect();
    if !owned.is_empty() {
        out.push(format!(
            "APQN {} is not allowed for vfio_ap-passthrough use by the active ap bus mask settings",
            apqns_text(&owned)
        ));
    }
    out
}

/// Starts `def` as mdevctl does; the refused write, if any.
fn start(root: &mut EmulatedRoot, def: &Definition) -> Option<Refusal> {
    let refusal = |attribute: &str, value: &str, e: crate::WriteFailure| Refusal {
        attribute: attribute.to_string(),
        value: value.to_string(),
        errno: errno_name(e.errno),
        message: e.message,
    };
    let uuid = def.uuid.to_string();
    if let Err(e) = root.write(CREATE, &uuid) {
        return Some(refusal("create", &uuid, e));
    }
    let dir = format!("devices/vfio_ap/matrix/{uuid}");
    for (name, value) in &def.attrs {
        if let Err(e) = root.write(&format!("{dir}/{name}"), value) {
            let _ = root.write(&format!("{dir}/remove"), "1");
            return Some(refusal(name, value, e));
        }
    }
    None
}

/// The host after the next boot, and how each autostart definition fared,
/// in mdevctl's order. `with_ap_check`: ap-check is installed as mdevctl's
/// callout, so a definition it refuses is never created (mdevctl stops at a
/// failed pre callout).
pub fn next_boot(
    seen: &Observed,
    masks: &BootMasks,
    definitions: &[Definition],
    with_ap_check: bool,
) -> (Host, Vec<BootStart>) {
    let mut root = EmulatedRoot {
        host: crate::predict::host_with_masks(seen, masks.apmask, masks.aqmask),
    };
    let mut out = Vec::new();
    for def in definitions.iter().filter(|d| d.mdev.autostart) {
        let ap_check = ap_check(&root.host, def);
        let stopped_by_callout = with_ap_check && !ap_check.is_empty();
        let kernel = if stopped_by_callout {
            None
        } else {
            start(&mut root, def)
        };
        out.push(BootStart {
            uuid: def.uuid,
            started: !stopped_by_callout && kernel.is_none(),
            ap_check,
            kernel,
        });
    }
    (root.host, out)
}
