//! The exports, byte for byte: what the real tools write or print for the
//! same configuration (tools.md Part A §4, Part B §1, §2). The CLI's tests
//! run the tools themselves (crates/cli/tests/exports.rs, libvirt.rs).

use super::tests::{wanted, SEED_GUESTS};
use super::*;
use apmatrix_model::parse::parse_absolute_mask;
use apmatrix_model::Host;

#[test]
fn mdevctl_json_round_trips_in_write_order() {
    let w = wanted(SEED_GUESTS);
    let g1 = &w.mdevs[0];
    let text = export::mdevctl_json(g1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mdev_type"], "vfio_ap-passthrough");
    assert_eq!(v["start"], "manual");
    let attrs: Vec<String> = v["attrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let (k, v) = a.as_object().unwrap().iter().next().unwrap();
            format!("{k}={}", v.as_str().unwrap())
        })
        .collect();
    assert_eq!(
        attrs,
        [
            "assign_adapter=5",
            "assign_adapter=6",
            "assign_domain=0x04",
            "assign_domain=0xab",
            "assign_control_domain=0x04",
            "assign_control_domain=0xab"
        ]
    );
    let back = export::from_mdevctl_json(g1.uuid, &text).unwrap();
    assert_eq!(
        (back.adapters, back.domains, back.control_domains),
        (g1.adapters, g1.domains, g1.control_domains)
    );
    // mdevctl's README example, with an unassign replayed in order
    let readme = r#"{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[{"assign_adapter":"5"},{"assign_adapter":"6"},{"assign_domain":"0xab"},{"assign_control_domain":"0xab"},{"unassign_adapter":"6"}]}"#;
    let m = export::from_mdevctl_json(g1.uuid, readme).unwrap();
    assert!(m.autostart);
    assert_eq!(m.adapters.to_list(), "5");
    assert_eq!(m.domains.to_list(), "171");
    let ap_config = format!(
        r#"{{"mdev_type":"vfio_ap-passthrough","attrs":[{{"assign_adapter":"9"}},{{"ap_config":"0x04{z},0x0008{z},0x0008{z}"}}]}}"#,
        z = "0".repeat(60)
    );
    let m = export::from_mdevctl_json(g1.uuid, &ap_config).unwrap();
    assert_eq!(
        (
            m.adapters.to_list(),
            m.domains.to_list(),
            m.control_domains.to_list()
        ),
        ("5".to_string(), "12".to_string(), "12".to_string())
    );
    for bad in [
        r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"unassign_adapter":"5","assign_adapter":"5"}]}"#,
        r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"ap_config":"0x1,0x2"}]}"#,
        r#"{"mdev_type":"other"}"#,
        r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_adapter":"256"}]}"#,
        r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"frobnicate":"1"}]}"#,
    ] {
        assert!(export::from_mdevctl_json(g1.uuid, bad).is_err(), "{bad}");
    }
    let err = export::from_mdevctl_json(
        g1.uuid,
        r#"{"mdev_type":"vfio_ap-passthrough","start":"sometimes","attrs":[]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(r#"start "sometimes" is neither "auto" nor "manual""#),
        "{err}"
    );
}

#[test]
fn libvirt_qemu_and_mask_exports() {
    let w = wanted(SEED_GUESTS);
    let g2 = &w.mdevs[1];
    // As virsh nodedev-dumpxml prints the defined device (libvirt 9.0),
    // less its iommuGroup line.
    let xml = "<device>
  <name>mdev_e7a0b091_e814_57d3_ad85_0b2cc5bd6486_matrix</name>
  <parent>ap_matrix</parent>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>e7a0b091-e814-57d3-ad85-0b2cc5bd6486</uuid>
    <parent_addr>matrix</parent_addr>
    <attr name='assign_adapter' value='5'/>
    <attr name='assign_domain' value='0x47'/>
    <attr name='assign_domain' value='0xff'/>
  </capability>
</device>
";
    assert_eq!(export::libvirt_nodedev_xml(g2), xml);
    assert_eq!(
        export::libvirt_nodedev_name(g2),
        "mdev_e7a0b091_e814_57d3_ad85_0b2cc5bd6486_matrix"
    );
    assert_eq!(
        export::libvirt_hostdev_xml(g2),
        format!("<hostdev mode='subsystem' type='mdev' model='vfio-ap'>\n  <source>\n    <address uuid='{}'/>\n  </source>\n</hostdev>\n", g2.uuid)
    );
    assert_eq!(
        export::qemu_args(g2),
        format!(
            "-cpu host,ap=on,apqci=on,apft=on -device vfio-ap,sysfsdev=/sys/bus/mdev/devices/{}\n",
            g2.uuid
        )
    );
    let seen = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    let (ap, aq) = target_masks(&w, &seen);
    assert_eq!(
        export::kernel_parameters(ap, aq),
        format!(
            "ap.apmask=0xf9{} ap.aqmask=0x{}\n",
            "f".repeat(62),
            "f".repeat(64)
        )
    );
}

/// A mask as the kernel takes it: `0x` and 64 hex digits.
fn mask(hex: &str) -> apmatrix_model::Mask256 {
    assert_eq!(hex.len(), 66, "{hex}");
    parse_absolute_mask(hex.as_bytes()).unwrap()
}

/// chzdev's rules file (s390-tools v2.43, tools.md Part A §4) around two
/// masks, written out here rather than built the way export builds it.
fn chzdev_rules(apmask: &str, aqmask: &str) -> String {
    [
        "# Generated by chzdev",
        r#"ACTION=="add", DEVPATH=="/bus/ap", ATTR{bindings_complete_count}!="0", GOTO="cfg_ap""#,
        r#"ACTION=="change", SUBSYSTEM=="ap", DEVPATH=="/devices/ap", ENV{BINDINGS}=="complete", ENV{COMPLETECOUNT}=="1", GOTO="cfg_ap""#,
        r#"GOTO="end_ap""#,
        "",
        r#"LABEL="cfg_ap""#,
        "",
        &format!(r#"ATTR{{../../bus/ap/apmask}}="{apmask}""#),
        &format!(r#"ATTR{{../../bus/ap/aqmask}}="{aqmask}""#),
        r#"RUN{builtin}+="kmod load vfio_ap""#,
        "",
        r#"LABEL="end_ap""#,
        "",
    ]
    .join("\n")
}

/// The seed guests' masks (adapters 05 and 06 to vfio_ap) give tools.md's
/// verbatim file: the one `chzdev --type ap -p apmask=0-4,7-255
/// aqmask=0-255` wrote.
#[test]
fn udev_rules_for_the_seed_guests_are_chzdevs_file() {
    let w = wanted(SEED_GUESTS);
    let seen = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    let (ap, aq) = target_masks(&w, &seen);
    let verbatim = "# Generated by chzdev
ACTION==\"add\", DEVPATH==\"/bus/ap\", ATTR{bindings_complete_count}!=\"0\", GOTO=\"cfg_ap\"
ACTION==\"change\", SUBSYSTEM==\"ap\", DEVPATH==\"/devices/ap\", ENV{BINDINGS}==\"complete\", ENV{COMPLETECOUNT}==\"1\", GOTO=\"cfg_ap\"
GOTO=\"end_ap\"

LABEL=\"cfg_ap\"

ATTR{../../bus/ap/apmask}=\"0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"
ATTR{../../bus/ap/aqmask}=\"0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"
RUN{builtin}+=\"kmod load vfio_ap\"

LABEL=\"end_ap\"
";
    assert_eq!(export::udev_rule(ap, aq), verbatim);
    assert_eq!(
        persistent::rule_masks(verbatim),
        (Some(ap), Some(aq)),
        "ap-check's reading of it"
    );
}

/// Masks with gaps in both, none at all, all: each written as chzdev
/// writes it, and read back as it was.
#[test]
fn udev_rules_for_masks_with_gaps_read_back_as_written() {
    let z = "0".repeat(64);
    let f = "f".repeat(64);
    let cases = [
        // apmask 0-3,8,10-255; aqmask 0-5,7-70,72-254
        (
            format!("0xf0bf{}", "ff".repeat(30)),
            format!("0xfd{}fe{}fe", "ff".repeat(7), "ff".repeat(22)),
        ),
        // everything to vfio_ap; adapters only
        (format!("0x{z}"), format!("0x{f}")),
        // the seed document's boot example, ap.apmask=0xffff ap.aqmask=0x40
        (
            format!("0xffff{}", "0".repeat(60)),
            format!("0x40{}", "0".repeat(62)),
        ),
    ];
    assert_eq!(mask(&cases[0].0).to_list(), "0-3,8,10-255");
    assert_eq!(mask(&cases[0].1).to_list(), "0-5,7-70,72-254");
    assert_eq!(mask(&cases[2].1).to_list(), "1");
    for (ap, aq) in &cases {
        let (apm, aqm) = (mask(ap), mask(aq));
        let text = export::udev_rule(apm, aqm);
        assert_eq!(text, chzdev_rules(ap, aq));
        assert_eq!(persistent::rule_masks(&text), (Some(apm), Some(aqm)));
    }
}

/// Guest2's mdev as mdevctl stores it (no newline at the end), written out.
const GUEST2_STORED: &str = r#"{
  "mdev_type": "vfio_ap-passthrough",
  "start": "manual",
  "attrs": [
    {
      "assign_adapter": "5"
    },
    {
      "assign_domain": "0x47"
    },
    {
      "assign_domain": "0xff"
    }
  ]
}"#;

#[test]
fn mdevctl_json_is_mdevctls_stored_file() {
    let w = wanted(SEED_GUESTS);
    assert_eq!(export::mdevctl_json(&w.mdevs[1]), GUEST2_STORED);
    let auto =
        wanted(&SEED_GUESTS.replace("guest = \"Guest2\"", "guest = \"Guest2\"\nautostart = true"));
    assert_eq!(
        export::mdevctl_json(&auto.mdevs[1]),
        GUEST2_STORED.replace("\"manual\"", "\"auto\"")
    );
    let bare = wanted("[[mdev]]\nname = \"bare\"\n");
    assert_eq!(
        export::mdevctl_json(&bare.mdevs[0]),
        "{\n  \"mdev_type\": \"vfio_ap-passthrough\",\n  \"start\": \"manual\",\n  \"attrs\": []\n}"
    );
}

/// `mdevctl list -d --dumpjson`: one parent, the devices in UUID order
/// whatever the configuration's order, each indented under its UUID.
#[test]
fn mdevctl_list_json_is_mdevctls_dumpjson() {
    let text = SEED_GUESTS
        .replace(
            "name = \"guest2\"",
            "name = \"guest2\"\nuuid = \"00000000-0000-4000-8000-000000000002\"",
        )
        .replace(
            "name = \"guest1\"",
            "name = \"guest1\"\nuuid = \"ffffffff-0000-4000-8000-000000000001\"",
        );
    let w = wanted(&text);
    let indented = |s: &str| s.replace('\n', "\n        ");
    let guest1 = indented(&export::mdevctl_json(&w.mdevs[0]));
    let guest3 = indented(&export::mdevctl_json(&w.mdevs[2]));
    let want = format!(
        "[\n  {{\n    \"matrix\": [\n      {{\n        \"00000000-0000-4000-8000-000000000002\": {}\n      }},\n      {{\n        \"{}\": {guest3}\n      }},\n      {{\n        \"ffffffff-0000-4000-8000-000000000001\": {guest1}\n      }}\n    ]\n  }}\n]\n",
        indented(GUEST2_STORED),
        w.mdevs[2].uuid,
    );
    assert_eq!(export::mdevctl_list_json(&w.mdevs), want);
    assert_eq!(export::mdevctl_list_json(&[]), "[]\n");
}
