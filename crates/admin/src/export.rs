//! What the ecosystem consumes, from a configuration: mdevctl JSON (and
//! back), libvirt XML, QEMU arguments, persistent masks (tools.md Part A §4,
//! Part B). Each is what the tool itself writes or prints for the same
//! devices; the tests compare them with the real tools' output.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use apmatrix_model::vfio::MDEV_TYPE;
use apmatrix_model::{Mask256, MatrixAxis};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{id_value, ConfigError, WantedMdev};

/// The attributes in the order they are written (adapters, domains, control
/// domains), as mdevctl replays them.
fn attrs(m: &WantedMdev) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let matrix = m.matrix();
    for axis in MatrixAxis::ALL {
        for id in matrix.axis(axis).iter() {
            out.push((format!("assign_{}", axis.attr_word()), id_value(axis, id)));
        }
    }
    out
}

/// One mdev as mdevctl keeps it, its keys in mdevctl's order.
#[derive(Serialize)]
struct Stored {
    mdev_type: &'static str,
    start: &'static str,
    attrs: Vec<BTreeMap<String, String>>,
}

fn stored(m: &WantedMdev) -> Stored {
    Stored {
        mdev_type: MDEV_TYPE,
        start: if m.autostart { "auto" } else { "manual" },
        attrs: attrs(m)
            .into_iter()
            .map(|(k, v)| BTreeMap::from([(k, v)]))
            .collect(),
    }
}

/// mdevctl's stored form, byte for byte what `mdevctl define --jsonfile`
/// of it leaves in `/etc/mdevctl.d/matrix/<uuid>` (1.2.0 and 1.4.0): pretty
/// JSON with two-space indents, keys `mdev_type`, `start`, `attrs`, and no
/// newline at the end.
pub fn mdevctl_json(m: &WantedMdev) -> String {
    serde_json::to_string_pretty(&stored(m)).expect("JSON")
}

/// What `mdevctl list --defined --dumpjson` prints once every mdev is
/// defined: `[{"matrix": [{"<uuid>": {...}}, ...]}]` in UUID order (`[]`
/// for none), byte for byte as Debian's mdevctl 1.2.0 prints it; 1.4.0
/// prints the same without the final newline.
pub fn mdevctl_list_json(mdevs: &[WantedMdev]) -> String {
    let mut sorted: Vec<&WantedMdev> = mdevs.iter().collect();
    sorted.sort_by_key(|m| m.uuid);
    let devices: Vec<BTreeMap<String, Stored>> = sorted
        .into_iter()
        .map(|m| BTreeMap::from([(m.uuid.to_string(), stored(m))]))
        .collect();
    let parents: Vec<BTreeMap<&str, Vec<BTreeMap<String, Stored>>>> = if devices.is_empty() {
        Vec::new()
    } else {
        vec![BTreeMap::from([("matrix", devices)])]
    };
    serde_json::to_string_pretty(&parents).expect("JSON") + "\n"
}

/// Reads an mdevctl config back: the assignments it replays, in order
/// (`unassign_*` take ids away; `ap_config` sets the whole matrix).
pub fn from_mdevctl_json(uuid: Uuid, text: &str) -> Result<WantedMdev, ConfigError> {
    mdevctl_config(uuid, text).map(|(m, _)| m)
}

/// The same, with the attributes as mdevctl writes them at `start`: in
/// the file's order, names and values as stored.
pub fn mdevctl_config(
    uuid: Uuid,
    text: &str,
) -> Result<(WantedMdev, Vec<(String, String)>), ConfigError> {
    let bad = |why: String| ConfigError(format!("mdevctl config {uuid}: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let ty = v["mdev_type"].as_str().unwrap_or_default();
    if ty != MDEV_TYPE {
        return Err(bad(format!("mdev_type {ty:?} is not {MDEV_TYPE}")));
    }
    // mdevctl knows two start modes; anything else is not its file.
    let autostart = match &v["start"] {
        Value::String(s) if s == "auto" => true,
        Value::String(s) if s == "manual" => false,
        Value::Null => false,
        other => {
            return Err(bad(format!(
                "start {other} is neither \"auto\" nor \"manual\", mdevctl's two start modes"
            )))
        }
    };
    let mut m = WantedMdev {
        autostart,
        ..WantedMdev::empty(uuid)
    };
    let mut attrs = Vec::new();
    for attr in v["attrs"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some((name, value)) = attr
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return Err(bad(format!("attribute {attr} is not a one-key object")));
        };
        let value = value
            .as_str()
            .ok_or_else(|| bad(format!("{name}: the value must be a string")))?;
        attrs.push((name.clone(), value.to_string()));
        if name == "ap_config" {
            // The whole matrix at once: "<apm>,<aqm>,<adm>" (kernel.md §6).
            let masks: Vec<Mask256> = value
                .trim_end_matches('\n')
                .split(',')
                .map(|t| apmatrix_model::parse::parse_absolute_mask(t.as_bytes()))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("ap_config {value:?}: {e}")))?;
            let [apm, aqm, adm] = masks[..] else {
                return Err(bad(format!(
                    "ap_config {value:?}: expected three masks: adapters,domains,control domains"
                )));
            };
            (m.adapters, m.domains, m.control_domains) = (apm, aqm, adm);
            continue;
        }
        let id = apmatrix_model::parse::parse_kstrtoul(value.as_bytes())
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| bad(format!("{name} = {value:?} is not an id from 0 to 255")))?;
        let (assign, word) = match name.split_once('_') {
            Some(("assign", w)) => (true, w),
            Some(("unassign", w)) => (false, w),
            _ => return Err(bad(format!("attribute {name} is not an assignment"))),
        };
        let mask = match word {
            "adapter" => &mut m.adapters,
            "domain" => &mut m.domains,
            "control_domain" => &mut m.control_domains,
            _ => return Err(bad(format!("attribute {name} is not an assignment"))),
        };
        if assign {
            mask.set(id);
        } else {
            mask.clear(id);
        }
    }
    Ok((m, attrs))
}

/// The name libvirt gives an mdev: `mdev_<uuid with underscores>_<parent>`
/// (its parent's sysfs name, `matrix`).
pub fn libvirt_nodedev_name(m: &WantedMdev) -> String {
    format!("mdev_{}_matrix", m.uuid.to_string().replace('-', "_"))
}

/// libvirt node-device XML for `virsh nodedev-define` (formatnode.rst),
/// as libvirt 9.0 formats the defined device (`virsh nodedev-dumpxml`): its
/// name, the parent device `ap_matrix`, and in the mdev capability the type,
/// the UUID, the parent's address (`matrix`, which libvirt fills in itself)
/// and the attributes in write order. libvirt also prints an
/// `<iommuGroup number='0'/>` before the attributes of an mdev that is not
/// started; the group is the kernel's to choose at start, so it is left out
/// here. Autostart is not part of libvirt's XML: `virsh nodedev-autostart`.
pub fn libvirt_nodedev_xml(m: &WantedMdev) -> String {
    let mut out = format!(
        "<device>\n  <name>{}</name>\n  <parent>ap_matrix</parent>\n  <capability type='mdev'>\n",
        libvirt_nodedev_name(m)
    );
    let _ = writeln!(out, "    <type id='{MDEV_TYPE}'/>");
    let _ = writeln!(out, "    <uuid>{}</uuid>", m.uuid);
    out.push_str("    <parent_addr>matrix</parent_addr>\n");
    for (name, value) in attrs(m) {
        let _ = writeln!(out, "    <attr name='{name}' value='{value}'/>");
    }
    out.push_str("  </capability>\n</device>\n");
    out
}

/// The domain's device element (libvirt allows one vfio-ap hostdev).
pub fn libvirt_hostdev_xml(m: &WantedMdev) -> String {
    format!(
        "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  <source>\n    <address uuid='{}'/>\n  </source>\n</hostdev>\n",
        m.uuid
    )
}

/// QEMU's arguments for the guest of this mdev.
pub fn qemu_args(m: &WantedMdev) -> String {
    format!(
        "-cpu host,ap=on,apqci=on,apft=on -device vfio-ap,sysfsdev=/sys/bus/mdev/devices/{}\n",
        m.uuid
    )
}

/// The masks as kernel parameters (set at IPL).
pub fn kernel_parameters(apmask: Mask256, aqmask: Mask256) -> String {
    format!("ap.apmask={apmask} ap.aqmask={aqmask}\n")
}

/// The masks as persistent udev rules: byte for byte the file
/// `chzdev --type ap -p apmask=... aqmask=...` of s390-tools v2.43 writes to
/// `/etc/udev/rules.d/41-ap.rules` (tools.md Part A §4), header, rules, key
/// order and blank lines. Debian's s390-tools 2.35 writes the same file
/// without the `ACTION=="add"` line; this follows v2.43. ap-check, and
/// `apmatrix check --etc`, read the masks back from the two `ATTR{...}`
/// lines ([`crate::persistent::rule_masks`]).
pub fn udev_rule(apmask: Mask256, aqmask: Mask256) -> String {
    format!(
        "# Generated by chzdev\n\
         ACTION==\"add\", DEVPATH==\"/bus/ap\", ATTR{{bindings_complete_count}}!=\"0\", GOTO=\"cfg_ap\"\n\
         ACTION==\"change\", SUBSYSTEM==\"ap\", DEVPATH==\"/devices/ap\", ENV{{BINDINGS}}==\"complete\", ENV{{COMPLETECOUNT}}==\"1\", GOTO=\"cfg_ap\"\n\
         GOTO=\"end_ap\"\n\
         \n\
         LABEL=\"cfg_ap\"\n\
         \n\
         ATTR{{../../bus/ap/apmask}}=\"{apmask}\"\n\
         ATTR{{../../bus/ap/aqmask}}=\"{aqmask}\"\n\
         RUN{{builtin}}+=\"kmod load vfio_ap\"\n\
         \n\
         LABEL=\"end_ap\"\n"
    )
}
