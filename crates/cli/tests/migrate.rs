//! `apmatrix migrate plan | run`: a guest with AP devices moved between two
//! emulated hosts of different card layouts, through the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const U: &str = "669d9b23-fe1b-4ecb-be08-a2fabca99b71";
const OTHER: &str = "8da4b1d8-3e14-4ad1-8f0e-5d2a3c4b5e6f";
const M: &str = "/sys/devices/vfio_ap/matrix";

/// A host description of these cards and usage domains 4, 0x47, 0xab.
fn description(cards: &[(u8, &str)]) -> String {
    let mut text = "name = \"t\"\nusage_domains = \"4,0x47,0xab\"\n".to_string();
    for (id, ty) in cards {
        text.push_str(&format!("[[card]]\nid = {id}\ntype = \"{ty}\"\n"));
    }
    text
}

/// An emulated host `name` of these cards, each given to vfio_ap.
fn host(dir: &Path, name: &str, cards: &[(u8, &str)]) -> PathBuf {
    let toml = dir.join(format!("{name}.toml"));
    std::fs::write(&toml, description(cards)).unwrap();
    let path = dir.join(format!("{name}.json"));
    succeeded(apmatrix(
        &path,
        &["host", "init", "--from", toml.to_str().unwrap()],
    ));
    let vfio: Vec<String> = cards.iter().map(|(id, _)| format!("-{id}")).collect();
    succeeded(apmatrix(&path, &["mask", "set", "apmask", &vfio.join(",")]));
    path
}

/// The source: cards 05 (CEX8C) and 06 (CEX8P); Guest1 runs on an mdev of
/// adapters 5, 6 x domains 4, 0xab with control domain 4.
fn source(dir: &Path) -> PathBuf {
    let src = host(dir, "src", &[(5, "CEX8C"), (6, "CEX8P")]);
    succeeded(apmatrix(&src, &["mdev", "create", "--uuid", U]));
    succeeded(apmatrix(
        &src,
        &["mdev", "assign", U, "-a", "5,6", "-d", "4,0xab", "-c", "4"],
    ));
    succeeded(apmatrix(&src, &["guest", "start", "Guest1", "--mdev", U]));
    src
}

/// `apmatrix migrate ARGS` (no --host: each side is named).
fn migrate(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("migrate")
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The header and the rows of a listing, the rows sorted.
fn rows_sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let rows = lines.split_off(2);
    let mut rows = rows;
    rows.sort();
    lines.extend(rows);
    lines
}

const SEES_ON_TARGET: &str = "CARD.DOMAIN TYPE  MODE\n------------------------------\n\
06          CEX8P EP11-Coproc\n06.0004     CEX8P EP11-Coproc\n06.00ab     CEX8P EP11-Coproc\n\
07          CEX8C CCA-Coproc\n07.0004     CEX8C CCA-Coproc\n07.00ab     CEX8C CCA-Coproc\n";

fn plan_text(src: &str, dst: &str) -> String {
    format!(
        "guest Guest1 can move from {src} to {dst} with its AP devices
  adapter 05 (CEX8C) -> 07 (CEX8C), CCA coprocessor
  adapter 06 (CEX8P) -> 06 (CEX8P), EP11 coprocessor
  usage domains: 0x04, 0xab (the same numbers)
  control domains: 0x04 (the same numbers)
  mdev on the target: {U} (the source's UUID)
  it sees now:          05.0004 05.00ab 06.0004 06.00ab
  and on the target:    06.0004 06.00ab 07.0004 07.00ab

# 1. on the source ({src}): unassign the guest's adapters from mdev {U}; the guest sees its AP devices go (hot unplug)
echo 5 > {M}/{U}/unassign_adapter
#  guest Guest1: hot unplug 05.0004 05.00ab
echo 6 > {M}/{U}/unassign_adapter
#  guest Guest1: hot unplug 06.0004 06.00ab

# 2. on the source: detach the vfio-ap device, which QEMU cannot migrate
cat > Guest1-hostdev.xml <<'EOF'
<hostdev mode='subsystem' type='mdev' model='vfio-ap'>
  <source>
    <address uuid='{U}'/>
  </source>
</hostdev>
EOF
virsh detach-device Guest1 Guest1-hostdev.xml --live
#  guest Guest1: control domains now -

# 3. migrate Guest1 live; it keeps its CPU model (ap=on,apqci=on,apft=on)
virsh migrate --live Guest1 qemu+ssh://DST/system

# 4. on the target ({dst}): create mdev {U} and assign the guest's matrix
#    the same as a configuration, for `apmatrix check` or, instead of the writes below, `apmatrix --host {dst} apply Guest1-migrate.toml`:
cat > Guest1-migrate.toml <<'EOF'
# Guest1's AP devices, moved from {src} (mdev {U}): for apmatrix check and apply on the target
[[mdev]]
uuid = \"{U}\"
adapters = \"0x06-0x07\"
domains = \"0x04,0xab\"
control_domains = \"0x04\"
guest = \"Guest1\"
EOF
echo {U} > {M}/mdev_supported_types/vfio_ap-passthrough/create
echo 6 > {M}/{U}/assign_adapter
echo 7 > {M}/{U}/assign_adapter
echo 0x04 > {M}/{U}/assign_domain
echo 0xab > {M}/{U}/assign_domain
echo 0x04 > {M}/{U}/assign_control_domain

# 5. on the target: attach the vfio-ap device; the guest sees its AP devices again (hot plug)
virsh attach-device Guest1 Guest1-hostdev.xml --live
#  guest Guest1: hot plug 06.0004 06.00ab 07.0004 07.00ab
#  guest Guest1: control domains now 0x04

# afterwards the source's mdev {U} is left with domains 0x04,0xab and no guest: remove it (echo 1 > {M}/{U}/remove) or give it to another guest
"
    )
}

#[test]
fn plan_shows_the_steps_and_run_moves_the_guest_to_the_renumbered_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(tmp.path(), "dst", &[(7, "CEX8C"), (6, "CEX8P")]);
    let before = succeeded(apmatrix(&src, &["guest", "lszcrypt", "Guest1"]));
    assert_eq!(
        before,
        "CARD.DOMAIN TYPE  MODE\n------------------------------\n\
         05          CEX8C CCA-Coproc\n05.0004     CEX8C CCA-Coproc\n05.00ab     CEX8C CCA-Coproc\n\
         06          CEX8P EP11-Coproc\n06.0004     CEX8P EP11-Coproc\n06.00ab     CEX8P EP11-Coproc\n"
    );
    let plan = succeeded(migrate(&[
        "plan",
        "Guest1",
        "--from",
        s(&src),
        "--to",
        s(&dst),
    ]));
    assert_eq!(plan, plan_text(s(&src), s(&dst)));
    // The plan changes nothing, and its configuration is one the target's
    // check accepts, predicting what the guest will see.
    let config = tmp.path().join("Guest1-migrate.toml");
    let toml = plan
        .split("cat > Guest1-migrate.toml <<'EOF'\n")
        .nth(1)
        .unwrap();
    std::fs::write(&config, toml.split("EOF\n").next().unwrap()).unwrap();
    let checked = succeeded(apmatrix(&dst, &["check", s(&config)]));
    assert_eq!(
        checked,
        format!(
            "{}: 1 mdev(s), no errors, 0 warning(s)\n\n# Guest1 will see:\n{SEES_ON_TARGET}",
            config.display()
        )
    );

    let ran = succeeded(migrate(&[
        "run",
        "Guest1",
        "--from",
        s(&src),
        "--to",
        s(&dst),
    ]));
    assert_eq!(
        ran,
        format!(
            "migrated guest Guest1 from {src} to {dst}
source: echo 5 > {M}/{U}/unassign_adapter
  guest Guest1: hot unplug 05.0004 05.00ab
source: echo 6 > {M}/{U}/unassign_adapter
  guest Guest1: hot unplug 06.0004 06.00ab
source: detached the vfio-ap device of mdev {U} from Guest1
  guest Guest1: control domains now -
source: Guest1 stopped; target: Guest1 started with the same CPU model (ap=on,apqci=on,apft=on)
target: echo {U} > {M}/mdev_supported_types/vfio_ap-passthrough/create
target: echo 6 > {M}/{U}/assign_adapter
target: echo 7 > {M}/{U}/assign_adapter
target: echo 0x04 > {M}/{U}/assign_domain
target: echo 0xab > {M}/{U}/assign_domain
target: echo 0x04 > {M}/{U}/assign_control_domain
target: attached the vfio-ap device of mdev {U} to Guest1
  guest Guest1: hot plug 06.0004 06.00ab 07.0004 07.00ab
  guest Guest1: control domains now 0x04
Guest1 sees on the target:
{SEES_ON_TARGET}",
            src = src.display(),
            dst = dst.display()
        )
    );
    // What the guest sees on the target is what it saw on the source,
    // with card 05 renumbered 07.
    let after = succeeded(apmatrix(&dst, &["guest", "lszcrypt", "Guest1"]));
    assert_eq!(after, SEES_ON_TARGET);
    assert_eq!(
        rows_sorted(&after),
        rows_sorted(&before.replace("05", "07"))
    );
    assert_eq!(
        succeeded(apmatrix(&dst, &["guest", "list"])),
        format!(
            "NAME             MDEV                                  CPU                       APQNS\n\
             Guest1           {U}  ap=on,apqci=on,apft=on    4\n"
        )
    );
    // It is gone from the source, whose mdev keeps its domains only.
    assert_eq!(succeeded(apmatrix(&src, &["guest", "list"])), "no guests\n");
    let left: serde_json::Value =
        serde_json::from_str(&succeeded(apmatrix(&src, &["--json", "mdev", "show", U]))).unwrap();
    assert_eq!(
        (&left["adapters"], &left["domains"], &left["guest"]),
        (
            &serde_json::json!("-"),
            &serde_json::json!("0x04,0xab"),
            &serde_json::Value::Null
        )
    );
    // Nothing is left to move.
    let again = migrate(&["run", "Guest1", "--from", s(&src), "--to", s(&dst)]);
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "apmatrix: guest Guest1 cannot move to the target with its AP devices:\n  \
         no guest Guest1 runs on the source\n"
    );
}

/// Runs plan and run, both refused with `reasons`, and checks that neither
/// state file changed by a byte.
fn refused_untouched(src: &Path, dst: &Path, extra: &[&str], reasons: &str) {
    let files = |p: &Path| std::fs::read(p).unwrap();
    let (src_before, dst_before) = (files(src), files(dst));
    for verb in ["plan", "run"] {
        let mut args = vec![verb, "Guest1", "--from", s(src), "--to", s(dst)];
        args.extend(extra);
        let out = migrate(&args);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        assert_eq!(out.stdout, b"", "{verb}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!(
                "apmatrix: guest Guest1 cannot move to the target with its AP devices:\n{reasons}"
            ),
            "{verb}"
        );
    }
    assert_eq!(files(src), src_before);
    assert_eq!(files(dst), dst_before);
    for p in [src, dst] {
        let mut journal = p.as_os_str().to_os_string();
        journal.push(".journal");
        assert!(!Path::new(&journal).exists());
    }
}

#[test]
fn a_target_whose_card_is_only_an_accelerator_is_refused_and_both_hosts_are_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(tmp.path(), "dst", &[(7, "CEX8A"), (6, "CEX8P")]);
    refused_untouched(
        &src,
        &dst,
        &[],
        "  adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is CEX8P \
         (EP11 coprocessor); adapter 07 is CEX8A (accelerator)\n",
    );
    // --json says the same on stdout, still refused.
    let out = migrate(&[
        "--json",
        "plan",
        "Guest1",
        "--from",
        s(&src),
        "--to",
        s(&dst),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "guest": "Guest1",
            "from": s(&src),
            "to": s(&dst),
            "refused": ["adapter 05 (CEX8C, CCA coprocessor) has no match on the target: \
                         adapter 06 is CEX8P (EP11 coprocessor); adapter 07 is CEX8A (accelerator)"]
        })
    );
}

#[test]
fn domains_taken_by_another_mdev_on_the_target_are_refused_naming_the_apqns() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(tmp.path(), "dst", &[(7, "CEX8C"), (6, "CEX8P")]);
    succeeded(apmatrix(&dst, &["mdev", "create", "--uuid", OTHER]));
    succeeded(apmatrix(
        &dst,
        &["mdev", "assign", OTHER, "-a", "6,7", "-d", "0xab"],
    ));
    succeeded(apmatrix(
        &dst,
        &["guest", "start", "Resident", "--mdev", OTHER],
    ));
    refused_untouched(
        &src,
        &dst,
        &[],
        &format!(
            "  adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is \
             CEX8P (EP11 coprocessor); APQN 07.00ab is already assigned to mdev {OTHER} (guest \
             Resident)\n  adapter 06 (CEX8P, EP11 coprocessor) has no match on the target: APQN \
             06.00ab is already assigned to mdev {OTHER} (guest Resident); adapter 07 is CEX8C \
             (CCA coprocessor)\n"
        ),
    );
}

#[test]
fn a_domain_mapping_moves_the_guest_to_free_domains_with_the_master_key_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(tmp.path(), "dst", &[(7, "CEX8C"), (6, "CEX8P")]);
    succeeded(apmatrix(&dst, &["mdev", "create", "--uuid", OTHER]));
    succeeded(apmatrix(
        &dst,
        &["mdev", "assign", OTHER, "-a", "6,7", "-d", "0xab"],
    ));
    let warning = "warning: domain 0xab becomes domain 0x47 on the target: secure keys live in \
                   domains (a CCA or EP11 key is wrapped by its domain's master key), so the \
                   target's domain 0x47 needs the same master keys as the source's 0xab, or the \
                   guest's secure keys stop working\n";
    let args = [
        "Guest1",
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--domains",
        "0xab=0x47",
    ];
    let plan = succeeded(migrate(&[&["plan"][..], &args].concat()));
    let summary: String = plan.split("\n\n").next().unwrap().to_string() + "\n";
    assert_eq!(
        summary,
        format!(
            "guest Guest1 can move from {} to {} with its AP devices
  adapter 05 (CEX8C) -> 07 (CEX8C), CCA coprocessor
  adapter 06 (CEX8P) -> 06 (CEX8P), EP11 coprocessor
  usage domains: 0x04 -> 0x04, 0xab -> 0x47
  control domains: 0x04 (the same numbers)
  mdev on the target: {U} (the source's UUID)
  it sees now:          05.0004 05.00ab 06.0004 06.00ab
  and on the target:    06.0004 06.0047 07.0004 07.0047
{warning}",
            src.display(),
            dst.display()
        )
    );
    let ran = succeeded(migrate(&[&["run"][..], &args].concat()));
    assert!(
        ran.contains(&format!("\n{warning}Guest1 sees on the target:\n")),
        "{ran}"
    );
    assert_eq!(
        succeeded(apmatrix(&dst, &["guest", "lszcrypt", "Guest1"])),
        "CARD.DOMAIN TYPE  MODE\n------------------------------\n\
         06          CEX8P EP11-Coproc\n06.0004     CEX8P EP11-Coproc\n06.0047     CEX8P EP11-Coproc\n\
         07          CEX8C CCA-Coproc\n07.0004     CEX8C CCA-Coproc\n07.0047     CEX8C CCA-Coproc\n"
    );
}

#[test]
fn given_adapters_and_uuid_are_kept_and_the_json_plan_has_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(
        tmp.path(),
        "dst",
        &[(7, "CEX8C"), (8, "CEX8C"), (6, "CEX8P")],
    );
    let out = succeeded(migrate(&[
        "--json",
        "plan",
        "Guest1",
        "--from",
        s(&src),
        "--to",
        s(&dst),
        "--adapters",
        "5=8",
        "--uuid",
        OTHER,
        "--uri",
        "qemu+ssh://target.example/system",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["guest"], "Guest1");
    assert_eq!(v["cpu"], "ap=on,apqci=on,apft=on");
    assert_eq!(
        v["source_mdev"],
        serde_json::json!({"uuid": U, "adapters": [5, 6], "domains": [4, 171], "control_domains": [4]})
    );
    assert_eq!(
        v["target_mdev"],
        serde_json::json!({"uuid": OTHER, "adapters": [6, 8], "domains": [4, 171], "control_domains": [4]})
    );
    assert_eq!(
        v["adapters"],
        serde_json::json!([
            {"from": 5, "to": 8, "from_type": "CEX8C", "to_type": "CEX8C", "mode": "CCA-Coproc", "given": true},
            {"from": 6, "to": 6, "from_type": "CEX8P", "to_type": "CEX8P", "mode": "EP11-Coproc", "given": false}
        ])
    );
    assert_eq!(
        v["domains"],
        serde_json::json!([{"from": 4, "to": 4}, {"from": 171, "to": 171}])
    );
    assert_eq!(
        v["will_see"],
        serde_json::json!(["06.0004", "06.00ab", "08.0004", "08.00ab"])
    );
    let names: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Guest1-hostdev.xml",
            "Guest1-hostdev-target.xml",
            "Guest1-migrate.toml"
        ]
    );
    assert!(v["files"][1]["text"]
        .as_str()
        .unwrap()
        .contains(&format!("<address uuid='{OTHER}'/>")));
    let steps: Vec<(String, String, Vec<String>)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["on"].as_str().unwrap().to_string(),
                s["stage"].as_str().unwrap().to_string(),
                s["commands"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let own = |v: Vec<String>| v;
    assert_eq!(
        steps,
        [
            (
                "source".into(),
                "unplug".into(),
                own(vec![
                    format!("echo 5 > {M}/{U}/unassign_adapter"),
                    format!("echo 6 > {M}/{U}/unassign_adapter"),
                ])
            ),
            (
                "source".into(),
                "detach".into(),
                own(vec![
                    "virsh detach-device Guest1 Guest1-hostdev.xml --live".into()
                ])
            ),
            (
                "hypervisor".into(),
                "migrate".into(),
                own(vec![
                    "virsh migrate --live Guest1 qemu+ssh://target.example/system".into()
                ])
            ),
            (
                "target".into(),
                "assign".into(),
                own(vec![
                    format!("echo {OTHER} > {M}/mdev_supported_types/vfio_ap-passthrough/create"),
                    format!("echo 6 > {M}/{OTHER}/assign_adapter"),
                    format!("echo 8 > {M}/{OTHER}/assign_adapter"),
                    format!("echo 0x04 > {M}/{OTHER}/assign_domain"),
                    format!("echo 0xab > {M}/{OTHER}/assign_domain"),
                    format!("echo 0x04 > {M}/{OTHER}/assign_control_domain"),
                ])
            ),
            (
                "target".into(),
                "attach".into(),
                own(vec![
                    "virsh attach-device Guest1 Guest1-hostdev-target.xml --live".into()
                ])
            ),
        ]
    );
    assert_eq!(
        v["steps"][0]["unplugged"],
        serde_json::json!(["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    assert_eq!(
        v["steps"][4]["plugged"],
        serde_json::json!(["06.0004", "06.00ab", "08.0004", "08.00ab"])
    );
}

#[test]
fn run_refuses_sysfs_roots_and_one_host_named_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let out = migrate(&["run", "Guest1", "--from", s(&src), "--to", s(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "apmatrix: --to {}: a sysfs root; migrate run moves a guest between emulated hosts \
             (state files): on real hosts, run the steps of `apmatrix migrate plan`\n",
            tmp.path().display()
        )
    );
    let twice = tmp.path().join(".").join("src.json");
    let out = migrate(&["run", "Guest1", "--from", s(&src), "--to", s(&twice)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "apmatrix: --from and --to are the same host ({})\n",
            src.display()
        )
    );
}

/// Writes libvirt's live XML of a guest on `mdev` under `run`.
fn live_xml(run: &Path, guest: &str, mdev: &str) {
    let qemu = run.join("libvirt/qemu");
    std::fs::create_dir_all(&qemu).unwrap();
    std::fs::write(
        qemu.join(format!("{guest}.xml")),
        format!(
            "<domstatus state='running' pid='4242'><domain type='kvm'><name>{guest}</name>\
             <devices><hostdev mode='subsystem' type='mdev' model='vfio-ap'>\
             <source><address uuid='{mdev}'/></source></hostdev></devices></domain></domstatus>\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_served_target_is_changed_through_its_server_and_plan_reads_mounted_trees() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dst = host(tmp.path(), "dst", &[(7, "CEX8C"), (6, "CEX8P")]);
    let (src_sys, dst_sys, run) = (
        tmp.path().join("src-sys"),
        tmp.path().join("dst-sys"),
        tmp.path().join("run"),
    );
    for d in [&src_sys, &dst_sys] {
        std::fs::create_dir(d).unwrap();
    }
    live_xml(&run, "Guest1", U);
    let expected = plan_text(s(&src), s(&dst));
    {
        let _src_tree = Served::start_with(&src, &src_sys, &["--no-periodic-scans"]);
        let _dst_tree = Served::start_with(&dst, &dst_sys, &["--no-periodic-scans"]);
        // The same plan from the trees, the source's guest from libvirt's XML.
        let plan = succeeded(migrate(&[
            "plan",
            "Guest1",
            "--from",
            s(&src_sys),
            "--from-run",
            s(&run),
            "--to",
            s(&dst_sys),
        ]));
        let (from, to) = (s(&src_sys), s(&dst_sys));
        let want = expected
            .replace(s(&src), from)
            .replace(s(&dst), to)
            .replace(
                &format!("{M}/{U}/unassign"),
                &format!("{from}/devices/vfio_ap/matrix/{U}/unassign"),
            )
            .replace(
                &format!("(echo 1 > {M}"),
                &format!("(echo 1 > {from}/devices/vfio_ap/matrix"),
            )
            .replace(
                &format!("apmatrix --host {to} apply"),
                &format!("apmatrix apply --sysfs {to}"),
            )
            .replace(&format!("{M}/"), &format!("{to}/devices/vfio_ap/matrix/"));
        assert_eq!(plan, want);
        // Without the run directory the source shows no guest.
        let out = migrate(&["plan", "Guest1", "--from", s(&src_sys), "--to", s(&dst_sys)]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "apmatrix: guest Guest1 cannot move to the target with its AP devices:\n  \
             no guest Guest1 runs on the source\n  (a sysfs root's running guests are \
             libvirt's live XML: name its run directory with --from-run DIR)\n"
        );
        // Run between the served hosts: each changes through its server,
        // and its tree shows it at once.
        succeeded(migrate(&[
            "run",
            "Guest1",
            "--from",
            s(&src),
            "--to",
            s(&dst),
        ]));
        let matrix =
            std::fs::read_to_string(dst_sys.join(format!("devices/vfio_ap/matrix/{U}/matrix")))
                .unwrap();
        assert_eq!(matrix, "06.0004\n06.00ab\n07.0004\n07.00ab\n");
        let left =
            std::fs::read_to_string(src_sys.join(format!("devices/vfio_ap/matrix/{U}/matrix")))
                .unwrap();
        assert_eq!(left, ".0004\n.00ab\n");
    }
    // Once the servers are gone, the state files hold the same.
    assert_eq!(
        succeeded(apmatrix(&dst, &["guest", "lszcrypt", "Guest1"])),
        SEES_ON_TARGET
    );
    assert_eq!(succeeded(apmatrix(&src, &["guest", "list"])), "no guests\n");
}
