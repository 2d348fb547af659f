//! The exports (tools.md Part A §4, Part B §1, §2).

use super::tests::{wanted, SEED_GUESTS};
use super::*;
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
    let xml = export::libvirt_nodedev_xml(g2);
    let name = format!("mdev_{}_matrix", g2.uuid.to_string().replace('-', "_"));
    assert!(
        xml.starts_with(&format!(
            "<device>\n  <name>{name}</name>\n  <parent>ap_matrix</parent>\n  <capability type='mdev'>\n    <type id='vfio_ap-passthrough'/>\n"
        )),
        "{xml}"
    );
    assert!(xml.contains(&format!("<uuid>{}</uuid>", g2.uuid)));
    let attr_lines: Vec<&str> = xml.lines().filter(|l| l.contains("<attr ")).collect();
    assert_eq!(
        attr_lines,
        [
            "    <attr name='assign_adapter' value='5'/>",
            "    <attr name='assign_domain' value='0x47'/>",
            "    <attr name='assign_domain' value='0xff'/>"
        ]
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
    let rule = export::udev_rule(ap, aq);
    assert!(
        rule.contains(&format!(
            "ATTR{{../../bus/ap/apmask}}=\"0xf9{}\"",
            "f".repeat(62)
        )),
        "{rule}"
    );
}
