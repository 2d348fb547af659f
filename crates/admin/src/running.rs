//! The guests running on a host, as the hypervisor's side shows them:
//! libvirt's live domain XML (`<run>/libvirt/qemu/<name>.xml`, a
//! `<domstatus>` around the `<domain>`) and QEMU processes' command lines
//! (`<proc>/<pid>/cmdline`: `-name`, `-cpu`, `-device vfio-ap,sysfsdev=`).
//! sysfs does not say which guest has an mdev open; these do.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use uuid::Uuid;

/// A running guest and the mdev its vfio-ap device names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningGuest {
    pub name: String,
    /// The mdev of its `vfio-ap` device, if it has one.
    pub mdev: Option<Uuid>,
    /// Its CPU model's AP features as QEMU spells them (`ap=on,apqci=on,
    /// apft=on`), when the source says; otherwise QEMU's default for a
    /// host-model CPU, which has all three.
    pub cpu: Option<String>,
    /// Where it was seen: the XML file or `pid N`.
    pub source: String,
}

/// The most one domain XML or command line may hold.
const LIMIT: u64 = 4 << 20;

/// The AP features of an s390 CPU model, in QEMU's order.
const AP_FEATURES: [&str; 3] = ["ap", "apqci", "apft"];

/// The guests of libvirt's live XML under `run` (`/run`), by name.
pub fn libvirt_guests(run: &Path) -> Vec<RunningGuest> {
    let dir = run.join("libvirt/qemu");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<RunningGuest> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".xml"))
        // libvirt writes these as root; a file someone else could have
        // planted says nothing.
        .filter(|e| fs::metadata(e.path()).is_ok_and(|m| trusted(&m)))
        .filter_map(|e| {
            let text = crate::files::read_text(&e.path(), LIMIT).ok()?;
            let mut g = parse_domain_xml(&text)?;
            g.source = e.path().display().to_string();
            Some(g)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The first child element of `n` named `tag`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(tag))
}

/// A domain (or a `<domstatus>` holding one): its name, its vfio-ap
/// hostdev's mdev and its CPU's AP features. `None` if it is not a domain.
pub fn parse_domain_xml(text: &str) -> Option<RunningGuest> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let domain = if root.has_tag_name("domain") {
        root
    } else {
        root.children().find(|n| n.has_tag_name("domain"))?
    };
    let name = child(domain, "name")?.text()?.trim().to_string();
    if name.is_empty() {
        return None;
    }
    let mdev = child(domain, "devices").and_then(|devices| {
        devices
            .children()
            .filter(|h| {
                h.has_tag_name("hostdev")
                    && h.attribute("type") == Some("mdev")
                    && h.attribute("model") == Some("vfio-ap")
            })
            .find_map(|h| {
                let address = child(child(h, "source")?, "address")?;
                Uuid::try_parse(address.attribute("uuid")?).ok()
            })
    });
    let cpu = child(domain, "cpu").and_then(|cpu| {
        let mut said = BTreeMap::new();
        for f in cpu.children().filter(|f| f.has_tag_name("feature")) {
            let (Some(name), Some(policy)) = (f.attribute("name"), f.attribute("policy")) else {
                continue;
            };
            if AP_FEATURES.contains(&name) {
                let on = matches!(policy, "require" | "force" | "optional");
                said.insert(name, on);
            }
        }
        features_text(&said)
    });
    Some(RunningGuest {
        name,
        mdev,
        cpu,
        source: String::new(),
    })
}

/// `ap=..,apqci=..,apft=..` from what a source said of some of them; the
/// rest are on, as in QEMU's host-model CPU. `None` if it said nothing.
fn features_text(said: &BTreeMap<&str, bool>) -> Option<String> {
    if said.is_empty() {
        return None;
    }
    let on = |f: &str| {
        if said.get(f).copied().unwrap_or(true) {
            "on"
        } else {
            "off"
        }
    };
    Some(
        AP_FEATURES
            .iter()
            .map(|f| format!("{f}={}", on(f)))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// The QEMU processes under `proc` (`/proc`) that are guests: every process
/// whose command line has `-name`, with its vfio-ap device and AP features.
pub fn qemu_guests(proc: &Path) -> Vec<RunningGuest> {
    let Ok(entries) = fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(bytes) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if bytes.len() as u64 > LIMIT {
            continue;
        }
        let args: Vec<String> = bytes
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if let Some(mut g) = parse_qemu_args(&args) {
            g.source = format!("pid {pid}");
            // Any user can start a process whose arguments name someone's
            // mdev: only one that holds a VFIO group (or iommufd) open has it.
            if g.mdev.is_some() && !holds_vfio(&e.path()) {
                g.mdev = None;
                g.source
                    .push_str(" (holds no VFIO device: its vfio-ap argument is not believed)");
            }
            out.push(g);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A QEMU command line's guest: `-name guest=NAME,...` (or `-name NAME`),
/// `-device vfio-ap,sysfsdev=PATH` (or its JSON form) and `-cpu
/// MODEL,ap=on,...`. `None` if it names no guest or is not QEMU's.
pub fn parse_qemu_args(args: &[String]) -> Option<RunningGuest> {
    let program = args.first()?;
    if !program.rsplit('/').next()?.starts_with("qemu") {
        return None;
    }
    let mut name = None;
    let mut mdev = None;
    let mut said = BTreeMap::new();
    for pair in args.windows(2) {
        let (flag, value) = (pair[0].as_str(), pair[1].as_str());
        match flag {
            "-name" => {
                let first = value.split(',').next().unwrap_or_default();
                name = Some(first.strip_prefix("guest=").unwrap_or(first).to_string());
            }
            "-device" => {
                if let Some(path) = vfio_ap_sysfsdev(value) {
                    mdev = path
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .and_then(|u| Uuid::try_parse(u).ok());
                }
            }
            "-cpu" => {
                for item in value.split(',').skip(1) {
                    let (f, v) = item.split_once('=').unwrap_or((item, "on"));
                    if let Some(f) = AP_FEATURES.iter().find(|a| **a == f) {
                        said.insert(*f, matches!(v, "on" | "true" | "yes"));
                    }
                }
            }
            _ => {}
        }
    }
    Some(RunningGuest {
        name: name.filter(|n| !n.is_empty())?,
        mdev,
        cpu: features_text(&said),
        source: String::new(),
    })
}

/// The `sysfsdev` of a `-device` value if the device is vfio-ap: the
/// `driver,key=value` form or libvirt's JSON form.
fn vfio_ap_sysfsdev(value: &str) -> Option<String> {
    if value.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(value).ok()?;
        return (v["driver"] == "vfio-ap")
            .then(|| v["sysfsdev"].as_str().map(str::to_string))
            .flatten();
    }
    let mut items = value.split(',');
    (items.next()? == "vfio-ap")
        .then(|| {
            items.find_map(|i| {
                i.strip_prefix("sysfsdev=")
                    .map(|p| p.trim_matches('"').to_string())
            })
        })
        .flatten()
}

/// The process (`<proc>/<pid>`) has a VFIO group or iommufd open, as a
/// QEMU with a vfio-ap device does. Unreadable descriptors (another user's
/// process, without privilege) count as not.
fn holds_vfio(process: &Path) -> bool {
    let Ok(fds) = fs::read_dir(process.join("fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| {
            let t = target.to_string_lossy();
            (t.starts_with("/dev/vfio/") && t != "/dev/vfio/vfio") || t == "/dev/iommu"
        })
    })
}

/// A file only root or this user could have written: owned by one of them
/// and not writable by group or others.
fn trusted(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    (meta.uid() == 0 || meta.uid() == me) && meta.mode() & 0o022 == 0
}

/// Both sources together, one guest per name (libvirt's word first: it
/// knows the domain's CPU as defined).
pub fn running_guests(run: &Path, proc: &Path) -> Vec<RunningGuest> {
    let mut by_name: BTreeMap<String, RunningGuest> = BTreeMap::new();
    for g in qemu_guests(proc) {
        by_name.insert(g.name.clone(), g);
    }
    for g in libvirt_guests(run) {
        by_name.insert(g.name.clone(), g);
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "90c6c135-ad44-41d0-b1b7-bae47de48627";

    #[test]
    fn a_live_domain_names_its_vfio_ap_mdev_and_cpu_features() {
        let xml = format!(
            "<domstatus state='running' pid='42'><domain type='kvm' id='1'>\
             <name>guest1</name><cpu mode='host-model'><feature policy='disable' name='apft'/>\
             <feature policy='require' name='vx'/></cpu><devices>\
             <hostdev mode='subsystem' type='pci'><source><address uuid='{U}'/></source></hostdev>\
             <hostdev mode='subsystem' type='mdev' model='vfio-ap'>\
             <source><address uuid='{U}'/></source></hostdev></devices></domain></domstatus>"
        );
        let g = parse_domain_xml(&xml).unwrap();
        assert_eq!(g.name, "guest1");
        assert_eq!(g.mdev, Some(Uuid::parse_str(U).unwrap()));
        assert_eq!(g.cpu.as_deref(), Some("ap=on,apqci=on,apft=off"));
        let plain = parse_domain_xml("<domain><name>g2</name><devices/></domain>").unwrap();
        assert_eq!((plain.mdev, plain.cpu), (None, None));
        assert!(parse_domain_xml("<network><name>x</name></network>").is_none());
        assert!(parse_domain_xml("<domain><name>").is_none());
    }

    #[test]
    fn a_qemu_process_has_its_mdev_only_while_it_holds_a_vfio_group() {
        let proc = tempfile::tempdir().unwrap();
        let argv = format!(
            "qemu-system-s390x\0-name\0guest=g1\0-device\0vfio-ap,sysfsdev=/sys/bus/mdev/devices/{U}\0"
        );
        for pid in ["100", "200"] {
            fs::create_dir_all(proc.path().join(pid).join("fd")).unwrap();
            fs::write(proc.path().join(pid).join("cmdline"), &argv).unwrap();
        }
        std::os::unix::fs::symlink("/dev/vfio/7", proc.path().join("100/fd/31")).unwrap();
        std::os::unix::fs::symlink("/dev/vfio/vfio", proc.path().join("200/fd/30")).unwrap();
        fs::create_dir(proc.path().join("self")).unwrap();
        let guests = qemu_guests(proc.path());
        let seen: Vec<(&str, Option<Uuid>)> =
            guests.iter().map(|g| (g.source.as_str(), g.mdev)).collect();
        assert_eq!(
            seen,
            [
                ("pid 100", Some(Uuid::parse_str(U).unwrap())),
                (
                    "pid 200 (holds no VFIO device: its vfio-ap argument is not believed)",
                    None
                )
            ]
        );
    }

    #[test]
    fn libvirt_xml_that_others_could_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().join("libvirt/qemu");
        fs::create_dir_all(&dir).unwrap();
        let xml = format!(
            "<domain><name>NAME</name><devices><hostdev type='mdev' model='vfio-ap'>\
             <source><address uuid='{U}'/></source></hostdev></devices></domain>"
        );
        for name in ["good", "planted"] {
            let path = dir.join(format!("{name}.xml"));
            fs::write(&path, xml.replace("NAME", name)).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        fs::set_permissions(dir.join("planted.xml"), fs::Permissions::from_mode(0o666)).unwrap();
        fs::write(dir.join("notes.txt"), "x").unwrap();
        let names: Vec<String> = libvirt_guests(run.path())
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["good"]);
    }

    #[test]
    fn a_qemu_command_line_names_its_guest_device_and_cpu() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let g = parse_qemu_args(&args(&[
            "/usr/bin/qemu-system-s390x",
            "-name",
            "guest=g1,debug-threads=on",
            "-cpu",
            "z15,ap=on,apqci=off",
            "-device",
            &format!("vfio-ap,sysfsdev=/sys/devices/vfio_ap/matrix/{U}"),
        ]))
        .unwrap();
        assert_eq!(g.name, "g1");
        assert_eq!(g.mdev, Some(Uuid::parse_str(U).unwrap()));
        assert_eq!(g.cpu.as_deref(), Some("ap=on,apqci=off,apft=on"));
        let json = parse_qemu_args(&args(&[
            "qemu-kvm",
            "-name",
            "g2",
            "-device",
            &format!(
                r#"{{"driver":"vfio-ap","id":"hostdev0","sysfsdev":"/sys/bus/mdev/devices/{U}"}}"#
            ),
        ]))
        .unwrap();
        assert_eq!(
            (json.name.as_str(), json.mdev),
            ("g2", Uuid::parse_str(U).ok())
        );
        assert!(parse_qemu_args(&args(&["/bin/sleep", "-name", "x"])).is_none());
        assert!(parse_qemu_args(&args(&["qemu-system-s390x", "-m", "1G"])).is_none());
    }
}
