//! `export nodedev` read back by libvirt: a private libvirtd (Debian's
//! 9.0.0, node-device driver only; common/libvirt.rs) defines every file of
//! `export nodedev --dir`, sets autostart where the configuration asks, and
//! `virsh nodedev-dumpxml` then prints each file back, right after the
//! define and again after a restart of libvirtd (when all it knows comes
//! from mdevctl). virsh 9.0 has no `--inactive`; for a device that is
//! defined but not started its plain dumpxml is the definition.
//!
//! The one normalisation: libvirt prints `<iommuGroup number='0'/>` for an
//! mdev that is not started (the kernel gives the group at start; the
//! export leaves it out), and virsh ends its output with an empty line.
//! Both are checked to be there, then removed.
//!
//! And what libvirt stored through mdevctl is `export mdevctl` exactly.

use std::path::Path;

mod common;
use common::libvirt::{self, Mdevctl};
use common::{apmatrix as run, succeeded as ok};

/// The defines, each dumped at once, the autostarts, and for every device
/// what libvirt shows after a restart.
///
/// libvirt re-reads `mdevctl list --defined` whenever /etc/mdevctl.d
/// changes, and such a refresh drops the defined devices its list lacks. A
/// refresh for one define can therefore drop the next define's device, if
/// its list ran before that device's file was written, until the next
/// refresh brings it back. So each define after the first is made in a
/// fresh libvirtd, where no refresh of an earlier write can be pending (a
/// daemon reads mdevctl before it answers): the dump right after it sees
/// the device as libvirt parsed it from the export, whatever the timing.
/// After the last restart all libvirt knows comes from mdevctl, and nothing
/// changes any more.
const BODY: &str = r#"
mkdir "$OUT/defined" "$OUT/restarted"
first=yes
for f in "$NODEDEV"/*.xml; do
    n=$(basename "$f" .xml)
    [ -n "$first" ] || restart_libvirtd
    first=
    virsh_nd nodedev-define "$f" >>"$OUT/define.out"
    virsh_nd nodedev-dumpxml "$n" >"$OUT/defined/$n.xml"
done
for n in $AUTOSTART; do
    virsh_nd nodedev-autostart "$n" >>"$OUT/autostart.out"
done
mdevctl list -d --dumpjson >"$OUT/mdevctl.json"
restart_libvirtd
for f in "$NODEDEV"/*.xml; do
    n=$(basename "$f" .xml)
    virsh_nd nodedev-dumpxml "$n" >"$OUT/restarted/$n.xml"
    virsh_nd nodedev-info "$n" >"$OUT/restarted/$n.info"
done
virsh_nd nodedev-list --all --cap mdev >"$OUT/restarted/list"
"#;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// virsh's dumpxml of a defined mdev, less the two things the export does
/// not have (see the module doc); panics if they are not there.
fn normalised(dumped: &str, name: &str) -> String {
    let body = dumped
        .strip_suffix("</device>\n\n")
        .unwrap_or_else(|| panic!("{name}: no empty line after the document: {dumped:?}"));
    let group = "    <iommuGroup number='0'/>\n";
    assert_eq!(dumped.matches(group).count(), 1, "{name}: {dumped}");
    format!("{body}</device>\n").replacen(group, "", 1)
}

/// The round trip for one configuration with one mdevctl.
fn libvirt_reads_back(config_text: &str, mdevctl: &Mdevctl) {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let config = base.join("config.toml");
    std::fs::write(&config, config_text).unwrap();
    let c = config.to_str().unwrap();
    let scratch = base.join("scratch.json");
    ok(run(&scratch, &["host", "init"]));
    let nodedev = base.join("nodedev");
    ok(run(
        &scratch,
        &["export", "nodedev", c, "--dir", nodedev.to_str().unwrap()],
    ));
    let listed = ok(run(&scratch, &["export", "mdevctl", c]));
    // The mdevs and whether each starts at boot, from the stored form.
    let mdevctl_dir = base.join("mdevctl");
    ok(run(
        &scratch,
        &[
            "export",
            "mdevctl",
            c,
            "--dir",
            mdevctl_dir.to_str().unwrap(),
        ],
    ));
    let mut mdevs: Vec<(String, bool)> = std::fs::read_dir(&mdevctl_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let uuid = e.file_name().into_string().unwrap();
            let auto = read(&e.path()).contains("\"start\": \"auto\"");
            (format!("mdev_{}_matrix", uuid.replace('-', "_")), auto)
        })
        .collect();
    mdevs.sort();
    let autostart: Vec<&str> = mdevs.iter().filter(|m| m.1).map(|m| m.0.as_str()).collect();
    assert!(!mdevs.is_empty());
    let out = base.join("out");
    let work = base.join("work");
    std::fs::create_dir(&out).unwrap();
    std::fs::create_dir(&work).unwrap();
    libvirt::run(
        &base.join("host.json"),
        "seed",
        mdevctl,
        &work,
        BODY,
        &[
            ("NODEDEV", nodedev.display().to_string()),
            ("OUT", out.display().to_string()),
            ("AUTOSTART", autostart.join(" ")),
        ],
    );
    let v = mdevctl.version();

    // libvirt named each device as the export does, and ran our mdevctl.
    let defined = read(&out.join("define.out"));
    let calls = read(&work.join("mdevctl-calls"));
    for (name, auto) in &mdevs {
        let file = nodedev.join(format!("{name}.xml"));
        assert!(
            defined.contains(&format!(
                "Node device '{name}' defined from '{}'",
                file.display()
            )),
            "{v}: {defined}"
        );
        let uuid = name["mdev_".len()..name.len() - "_matrix".len()].replace('_', "-");
        assert!(
            calls.contains(&format!(
                "define --parent=matrix --jsonfile=/dev/stdin --uuid={uuid}"
            )),
            "{v}: {calls}"
        );
        assert_eq!(
            calls.contains(&format!("modify --uuid {uuid} --auto")),
            *auto,
            "{v}: {calls}"
        );
    }

    for phase in ["defined", "restarted"] {
        let dir = out.join(phase);
        for (name, _) in &mdevs {
            let exported = read(&nodedev.join(format!("{name}.xml")));
            let dumped = read(&dir.join(format!("{name}.xml")));
            assert_eq!(normalised(&dumped, name), exported, "{v}, {phase}: {name}");
        }
    }
    // After the restart: every device, defined, not started, autostart as
    // the configuration says (before it, libvirt's view of autostart may
    // lag behind mdevctl's: the same refreshes).
    let restarted = out.join("restarted");
    let names: Vec<&str> = mdevs.iter().map(|m| m.0.as_str()).collect();
    let mut listed_names: Vec<String> = read(&restarted.join("list"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    listed_names.sort();
    assert_eq!(listed_names, names, "{v}");
    for (name, auto) in &mdevs {
        let info = read(&restarted.join(format!("{name}.info")));
        let want = if *auto { "yes" } else { "no" };
        for line in [
            format!("Name:           {name}"),
            "Parent:         ap_matrix".into(),
            "Active:         no".into(),
            "Persistent:     yes".into(),
            format!("Autostart:      {want}"),
        ] {
            assert!(info.lines().any(|l| l == line), "{v}: {line:?} in {info}");
        }
    }

    // What libvirt stored through mdevctl is the mdevctl export.
    let stored = read(&out.join("mdevctl.json"));
    let stored = match mdevctl {
        Mdevctl::Debian => stored,
        Mdevctl::V14(_) => stored + "\n",
    };
    assert_eq!(stored, listed, "{v}: mdevctl list -d --dumpjson");
}

fn mdevctls() -> Vec<Mdevctl> {
    let mut out = vec![Mdevctl::Debian];
    match common::mdevctl_14() {
        Some(p) => out.push(Mdevctl::V14(p)),
        None => assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "APMATRIX_REQUIRE_FUSE is set but mdevctl 1.4.0 is missing (APMATRIX_MDEVCTL_14)"
        ),
    }
    out
}

#[test]
fn libvirt_defines_the_nodedev_exports_and_prints_them_back() {
    if !common::can_run("the libvirt test", &libvirt::missing(&Mdevctl::Debian)) {
        return;
    }
    let before: Vec<_> = std::fs::read_dir("/etc/mdevctl.d/matrix")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let run_libvirt = Path::new("/run/libvirt").exists();
    for mdevctl in mdevctls() {
        libvirt_reads_back(&common::seed_guests(), &mdevctl);
        libvirt_reads_back(common::MDEV_MIX, &mdevctl);
    }
    let after: Vec<_> = std::fs::read_dir("/etc/mdevctl.d/matrix")
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(after, before, "the machine's /etc/mdevctl.d changed");
    assert_eq!(
        Path::new("/run/libvirt").exists(),
        run_libvirt,
        "the machine's /run/libvirt changed"
    );
}
