//! The seed document's walkthrough as a bash script of its literal commands
//! (`echo -5,-6 > /sys/bus/ap/apmask`, `uuidgen > create`, `cat matrix`,
//! `echo 1 > remove`, ...), run under `apmatrix exec` so that /sys is the
//! emulated host. Checks what the commands print, and the message bash
//! prints for each write the kernel refuses; then runs it on every other
//! kernel generation and asserts exactly where the output differs.

mod common;
use common::fuse_usable;

use std::process::Command;

const WALKTHROUGH: &str = r###"
exec 2>&1            # refusals interleave with the output, in order
set -u
step() { echo "## $*"; }

step apmask
echo -5,-6 > /sys/bus/ap/apmask
cat /sys/bus/ap/apmask
ls /sys/bus/ap/drivers/vfio_ap
cd /sys/bus/ap
echo 0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff \
> apmask
cat apmask

step aqmask
echo 0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff > apmask
echo -4,-0x47,-0xab,-0xff > /sys/bus/ap/aqmask
ls /sys/bus/ap/drivers/vfio_ap
echo 0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe \
> aqmask
cat aqmask
echo 0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff > aqmask
echo -5,-6 > /sys/bus/ap/apmask

step create
cd /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
uuidgen > create
uuidgen > create
uuidgen > create
cat available_instances
ls devices | wc -l
set -- $(ls devices)
uuid1=$1 uuid2=$2 uuid3=$3

step guest1
cd /sys/devices/vfio_ap/matrix/$uuid1
echo 5 > assign_adapter
echo 6 > assign_adapter
echo 4 > assign_domain
echo 0xab > assign_domain
echo 4 > assign_control_domain
echo 0xab > assign_control_domain
cat matrix
cat control_domains

step guest2
cd /sys/devices/vfio_ap/matrix/$uuid2
echo 5 > assign_adapter
echo 0x47 > assign_domain
echo 0xff > assign_domain
cat matrix

step guest3
cd /sys/devices/vfio_ap/matrix/$uuid3
echo 6 > assign_adapter
echo 0x47 > assign_domain
echo 0xff > assign_domain
cat matrix

step refusals
echo 4 > assign_adapter
echo 0xab > assign_domain
echo 256 > assign_domain
echo 08 > assign_domain
echo +5 > /sys/bus/ap/apmask
cat /sys/bus/ap/apmask

step adapters-without-domains
cd /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
echo 0bb7a40c-6a8e-4a3b-9f7e-4d2b1f9c7a11 > create
cd /sys/devices/vfio_ap/matrix/0bb7a40c-6a8e-4a3b-9f7e-4d2b1f9c7a11
echo 4 > assign_adapter
echo 5 > assign_adapter
echo 6 > assign_adapter
echo 22 > assign_adapter
echo 23 > assign_adapter
cat matrix
echo 4 > assign_domain
echo 0 > unassign_adapter
echo 4 > unassign_adapter
echo 5 > unassign_adapter
echo 6 > unassign_adapter
echo 1 > remove
ls /sys/devices/vfio_ap/matrix | grep -c -- -

step remove-while-running
apmatrix guest start guest1 --mdev $uuid1 > /dev/null
cd /sys/devices/vfio_ap/matrix/$uuid1
if [ "${WAITS:-0}" = 1 ]; then
    # From 5.15 the write waits for the guest: killed while it waits
    timeout 1 sh -c 'echo 1 > remove'; echo "waited, killed: $?"
else
    echo 1 > remove
fi
ls /sys/bus/mdev/devices | wc -l
apmatrix guest stop guest1 > /dev/null
echo 1 > remove
ls /sys/bus/mdev/devices | wc -l
test -e /sys/devices/vfio_ap/matrix/$uuid1 || echo gone
"###;

/// WALKTHROUGH on a fresh host of `kernel`, by section.
fn walkthrough(host: &std::path::Path, kernel: &str) -> Vec<(String, Vec<String>)> {
    let waits = apmatrix_model::profile::for_kernel(kernel)
        .unwrap()
        .remove_while_running
        == apmatrix_model::profile::RemoveWhileRunning::WaitForRelease;
    let env = [("WAITS", if waits { "1" } else { "0" }.to_string())];
    let text = common::exec(host, kernel, WALKTHROUGH, &env).stdout;
    text.split("## ")
        .skip(1)
        .map(|s| {
            let mut lines = s.lines();
            let name = lines.next().unwrap().to_string();
            // bash's messages carry the script's line numbers; drop them
            let body = lines
                .map(|l| match l.find(": echo: write error: ") {
                    Some(i) => format!("write error: {}", &l[i + ": echo: write error: ".len()..]),
                    None => l.to_string(),
                })
                .collect();
            (name, body)
        })
        .collect()
}

#[test]
fn seed_walkthrough_runs_verbatim_under_exec() {
    if !fuse_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host.json");
    let sections = walkthrough(&host, "seed");
    let section = |name: &str| -> Vec<String> {
        sections
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no section {name} in:\n{sections:?}"))
            .1
            .clone()
    };
    let f64 = "f".repeat(64);
    let vfio_5_6: Vec<String> = ["05", "06"]
        .iter()
        .flat_map(|a| ["0004", "0005", "0006", "0047", "00ab", "00ff"].map(|d| format!("{a}.{d}")))
        .collect();
    let mut expect = vec![format!("0xf9{}", &f64[2..])];
    expect.extend(vfio_5_6.iter().cloned());
    expect.push(format!("0xf9{}", &f64[2..]));
    assert_eq!(section("apmask"), expect);

    let mut expect: Vec<String> = ["04", "05", "06"]
        .iter()
        .flat_map(|a| ["0004", "0047", "00ab", "00ff"].map(|d| format!("{a}.{d}")))
        .collect();
    expect.push("0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe".into());
    assert_eq!(section("aqmask"), expect);

    assert_eq!(section("create"), ["65533", "3"]);
    assert_eq!(
        section("guest1"),
        ["05.0004", "05.00ab", "06.0004", "06.00ab", "0004", "00ab"]
    );
    assert_eq!(section("guest2"), ["05.0047", "05.00ff"]);
    assert_eq!(section("guest3"), ["06.0047", "06.00ff"]);
    assert_eq!(
        section("refusals"),
        [
            // adapter 4 x domains 0x47, 0xff: the host's (apmask bit 4)
            "write error: Cannot assign requested address".to_string(),
            // 06.00ab is guest1's
            "write error: Address already in use".to_string(),
            "write error: No such device".to_string(),
            "write error: Invalid argument".to_string(),
            "write error: Address already in use".to_string(),
            format!("0xf9{}", &f64[2..]),
        ]
    );
    assert_eq!(
        section("adapters-without-domains"),
        [
            "04.",
            "05.",
            "06.",
            "16.",
            "17.",
            // 04.0004 is the host's; unassigning adapters never fails
            "write error: Cannot assign requested address",
            "3"
        ]
    );
    assert_eq!(
        section("remove-while-running"),
        ["write error: Device or resource busy", "3", "2", "gone"]
    );
    // The state file holds the end of the walkthrough.
    let show = Command::new(common::BIN)
        .args(["--host", host.to_str().unwrap(), "--json", "mdev", "list"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

/// The same walkthrough on every other generation, with what differs from
/// the seed's run asserted section by section (kernel.md's rules by era);
/// every other section prints exactly what it does on seed.
#[test]
fn the_walkthrough_on_every_generation_differs_only_where_the_kernel_does() {
    if !fuse_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = walkthrough(&dir.path().join("seed.json"), "seed");
    for kernel in ["old", "old-5.15", "dyn", "new"] {
        let run = walkthrough(&dir.path().join(format!("{kernel}.json")), kernel);
        let names: Vec<&String> = run.iter().map(|(n, _)| n).collect();
        assert_eq!(names, seed.iter().map(|(n, _)| n).collect::<Vec<_>>());
        let differing: Vec<(&str, Vec<&str>)> = run
            .iter()
            .zip(&seed)
            .filter(|(r, s)| r != s)
            .map(|(r, _)| (r.0.as_str(), r.1.iter().map(String::as_str).collect()))
            .collect();
        let old = kernel.starts_with("old");
        let mut expected = Vec::new();
        // The four assign refusals come out as on seed; `echo +5 > apmask`
        // and the apmask read after it differ.
        let refusals = |apmask_write: &[&'static str], apmask: &'static str| {
            let mut lines = vec![
                "write error: Cannot assign requested address",
                "write error: Address already in use",
                "write error: No such device",
                "write error: Invalid argument",
            ];
            lines.extend(apmask_write);
            lines.push(apmask);
            lines
        };
        if old {
            // §3: `echo +5 > apmask` is accepted, taking adapter 5 back
            // from the two mdevs that have it (the leak).
            let apmask = "0xfdffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
            expected.push(("refusals", refusals(&[], apmask)));
            // §6 OLD: an adapter needs a queue bound to vfio_ap: 04 is the
            // host's, 05 too now, 0x16 and 0x17 have no card; then 06.0004
            // is guest1's (EADDRINUSE, not the seed's EADDRNOTAVAIL for
            // the host's 04.0004: adapter 4 was never assigned).
            let mut a = vec!["write error: Cannot assign requested address"; 4];
            a.extend(["06.", "write error: Address already in use", "3"]);
            expected.push(("adapters-without-domains", a));
        } else {
            // §3: mainline's in_use check refuses with EBUSY.
            let busy = ["write error: Device or resource busy"];
            let apmask = "0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
            expected.push(("refusals", refusals(&busy, apmask)));
        }
        if kernel != "old" {
            // §5: from 5.15 `remove` waits for the guest.
            expected.push((
                "remove-while-running",
                vec!["waited, killed: 124", "3", "2", "gone"],
            ));
        }
        assert_eq!(differing, expected, "{kernel}");
    }
}
