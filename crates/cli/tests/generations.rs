//! The seed document's shell commands on a host of each kernel generation,
//! under `apmatrix exec` (the emulated tree mounted as /sys), with the
//! differences asserted: the refused `echo +5 > apmask` (EADDRINUSE on seed,
//! EBUSY on dyn and new, accepted with the leaked APQN on old), stores while
//! a guest runs (EBUSY on old), which attributes exist, and on new a live
//! change written to `ap_config` exactly as ap-check writes it.

mod common;
use common::fuse_usable;

const UUID1: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
const UUID2: &str = "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0";

const SCRIPT: &str = r###"
exec 2>&1
set -u
step() { echo "## $*"; }
strip() { sed 's/.*: echo: write error: /write error: /'; }
type=/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough
m1=/sys/devices/vfio_ap/matrix/$UUID1
m2=/sys/devices/vfio_ap/matrix/$UUID2

step setup
echo -5,-6 > /sys/bus/ap/apmask
echo $UUID1 > $type/create
echo $UUID2 > $type/create
echo 5 > $m1/assign_adapter
echo 4 > $m1/assign_domain
echo 0xab > $m1/assign_domain
echo 6 > $m2/assign_adapter
echo 0x47 > $m2/assign_domain
cat $m1/matrix
apmatrix guest start Guest1 --mdev $UUID1 > /dev/null

step attributes
for f in /sys/bus/ap/scans /sys/bus/ap/bindings /sys/bus/ap/features \
         /sys/devices/vfio_ap/matrix/features $m1/guest_matrix $m1/ap_config \
         /sys/devices/ap/card05/05.0004/status; do
    test -e $f && echo "${f##*/}"
done

step running
( echo 0xab > $m1/unassign_domain ) 2>&1 | strip
cat $m1/matrix

step reclaim
( echo +5 > /sys/bus/ap/apmask ) 2>&1 | strip
cat /sys/bus/ap/apmask
apmatrix guest lszcrypt Guest1 | grep -c '^05\.'

step ap_config
if test -e $m1/ap_config; then
    cat $m1/ap_config
    # ap-check's own write: one line, three masks. Adapters 5 and 6 with
    # domains 4 and 0x47 would take 06.0047 from the other mdev: refused,
    # nothing changes.
    ( echo "$AP_SHARED" > $m1/ap_config ) 2>&1 | strip
    cat $m1/matrix
    # Domains 4 and 0xab: accepted, and the running guest sees 05.00ab.
    echo "$AP_GROWN" > $m1/ap_config
    cat $m1/matrix
    apmatrix guest lszcrypt Guest1 | grep '^05\.' | cut -c1-7
fi
"###;

/// An `ap_config` line as ap-check writes it: three masks of 64 hex digits
/// (no control domains here), without the newline `echo` adds.
fn ap_config(adapters: &[u8], domains: &[u8]) -> String {
    let mask = |ids: &[u8]| {
        let mut m = apmatrix_model::Mask256::EMPTY;
        for id in ids {
            m.set(*id);
        }
        m.to_string()
    };
    format!("{},{},{}", mask(adapters), mask(domains), mask(&[]))
}

/// `common::exec` with the two mdev UUIDs the scripts use.
fn exec(kernel: &str, script: &str, env: &[(&str, String)]) -> common::Ran {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![("UUID1", UUID1.to_string()), ("UUID2", UUID2.to_string())];
    all.extend(env.iter().cloned());
    common::exec(&dir.path().join("host.json"), kernel, script, &all)
}

/// A script's output split at its `## name` lines.
fn sections(text: &str) -> Vec<(String, Vec<String>)> {
    text.split("## ")
        .skip(1)
        .map(|s| {
            let mut lines = s.lines();
            let name = lines.next().unwrap().to_string();
            (name, lines.map(str::to_string).collect())
        })
        .collect()
}

/// SCRIPT on a fresh host of `kernel`; its sections by name.
fn run(kernel: &str) -> Vec<(String, Vec<String>)> {
    let env = [
        ("AP_SHARED", ap_config(&[5, 6], &[4, 0x47])),
        ("AP_GROWN", ap_config(&[5], &[4, 0xab])),
    ];
    sections(&exec(kernel, SCRIPT, &env).stdout)
}

fn section(sections: &[(String, Vec<String>)], name: &str) -> Vec<String> {
    sections
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no section {name} in {sections:?}"))
        .1
        .clone()
}

#[test]
fn the_documents_commands_on_every_generation() {
    if !fuse_usable() {
        return;
    }
    let without_5_6 = format!("0xf9{}", "f".repeat(62));
    for kernel in ["seed", "5.10", "5.15", "6.8", "6.12"] {
        let s = run(kernel);
        let old = kernel.starts_with("5.");
        let new = kernel == "6.12";
        assert_eq!(section(&s, "setup"), ["05.0004", "05.00ab"], "{kernel}");

        let mut attributes: Vec<&str> = Vec::new();
        if !old {
            attributes.extend(["scans", "bindings"]);
        }
        if new {
            attributes.extend(["features", "features"]);
        }
        if !old {
            attributes.push("guest_matrix");
        }
        if new {
            attributes.push("ap_config");
        }
        if !old {
            attributes.push("status");
        }
        assert_eq!(section(&s, "attributes"), attributes, "{kernel}");

        // kernel.md §6/§8: OLD refuses every store while the guest runs.
        let running = section(&s, "running");
        if old {
            assert_eq!(
                running,
                ["write error: Device or resource busy", "05.0004", "05.00ab"]
            );
        } else {
            assert_eq!(running, ["05.0004"], "{kernel}: hot unplug");
        }

        // kernel.md §3 "Errno by era".
        let reclaim = section(&s, "reclaim");
        match kernel {
            "seed" => assert_eq!(
                reclaim,
                [
                    "write error: Address already in use",
                    without_5_6.as_str(),
                    "1"
                ]
            ),
            "5.10" | "5.15" => {
                // Accepted: adapter 5 is the host's again, yet the running
                // guest still lists both of its queues: the leak.
                let with_5 = format!("0xfd{}", "f".repeat(62));
                assert_eq!(reclaim, [with_5.as_str(), "2"]);
            }
            _ => assert_eq!(
                reclaim,
                [
                    "write error: Device or resource busy",
                    without_5_6.as_str(),
                    "1"
                ],
                "{kernel}"
            ),
        }

        let ap_config = section(&s, "ap_config");
        if !new {
            assert!(ap_config.is_empty(), "{kernel}: {ap_config:?}");
            continue;
        }
        let zero = "0".repeat(64);
        assert_eq!(
            ap_config,
            [
                format!("0x04{},0x08{},0x{zero}", &zero[2..], &zero[2..]),
                "write error: Address already in use".to_string(),
                "05.0004".to_string(),
                "05.0004".to_string(),
                "05.00ab".to_string(),
                "05.0004".to_string(),
                "05.00ab".to_string(),
            ]
        );
    }
}

const EVENTS: &str = r###"
exec 2>&1
set -u
step() { echo "## $*"; }
m1=/sys/devices/vfio_ap/matrix/$UUID1
echo -5,-6 > /sys/bus/ap/apmask
echo $UUID1 > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
echo 5 > $m1/assign_adapter
echo 6 > $m1/assign_adapter
echo 4 > $m1/assign_domain
apmatrix guest start Guest1 --mdev $UUID1 > /dev/null

step deconfigured
apmatrix host card 6 config off
cat /sys/devices/ap/card06/config
apmatrix guest lszcrypt Guest1 | awk '/^0/ { print $1 }'
apmatrix host scan
cat /sys/devices/ap/card06/config
apmatrix guest lszcrypt Guest1 | awk '/^0/ { print $1 }'
cat $m1/matrix
cat $m1/guest_matrix

step configured
apmatrix host card 6 config on | cut -d';' -f1
apmatrix guest lszcrypt Guest1 | awk '/^0/ { print $1 }'
cat /sys/bus/ap/scans
echo 1 > /sys/bus/ap/scans
cat /sys/bus/ap/scans
apmatrix guest lszcrypt Guest1 | awk '/^0/ { print $1 }'

step adapter
apmatrix host adapter 6 remove --scan
test -e /sys/devices/ap/card06 || echo "card06 gone"
cat $m1/matrix
apmatrix host adapter 6 add --type CEX5A | cut -d';' -f1
test -e /sys/devices/ap/card06 || echo "card06 not yet"
echo 1 > /sys/bus/ap/scans
readlink /sys/devices/ap/card06/06.0004/driver
apmatrix guest lszcrypt Guest1 | awk '/^0/ { print $1 }'

step checkstop
apmatrix host card 5 checkstop on
cat /sys/devices/ap/card05/chkstop /sys/devices/ap/card05/online
apmatrix guest lszcrypt Guest1 | grep -c '^05'
apmatrix host card 5 checkstop off
cat /sys/devices/ap/card05/online
apmatrix host card 0x20 config off || true
"###;

/// Host events from the CLI while the tree is mounted (issue on
/// generations, "host events"): a card deconfigured on the HMC under a
/// running guest leaves the guest at the next scan while the mdev's matrix
/// keeps it (kernel.md §6 "Queue removed from host"), and comes back after
/// a scan when configured again; an adapter the LPAR loses takes its card
/// and queues away at the scan and returns when added back; a check-stopped
/// card reads offline but stays with its guest.
#[test]
fn card_events_under_a_running_guest() {
    if !fuse_usable() {
        return;
    }
    let sections = sections(&exec("new", EVENTS, &[]).stdout);
    assert_eq!(
        section(&sections, "deconfigured"),
        [
            "card06: config off; the bus sees it at its next scan (every config_time seconds, \
             apmatrix host scan, or echo 1 > /sys/bus/ap/scans)",
            "1",
            "05",
            "05.0004",
            "06",
            "06.0004",
            "bus scan 2 done: card06 deconfigured",
            "  guest Guest1: hot unplug 06.0004",
            "0",
            "note: adapter 06 is assigned but its card is deconfigured, so the guest does not get it",
            "05",
            "05.0004",
            "05.0004",
            "06.0004",
            "05.0004",
        ]
    );
    assert_eq!(
        section(&sections, "configured"),
        [
            "card06: config on",
            "note: adapter 06 is assigned but its card is deconfigured, so the guest does not get it",
            "05",
            "05.0004",
            "2",
            "3",
            "05",
            "05.0004",
            "06",
            "06.0004",
        ]
    );
    assert_eq!(
        section(&sections, "adapter"),
        [
            "the LPAR loses adapter 06",
            "bus scan 4 done: adapter 06 removed",
            "  rebound vfio_ap -> no driver: 06.0004 06.0005 06.0006 06.0047 06.00ab 06.00ff",
            "  guest Guest1: hot unplug 06.0004",
            "card06 gone",
            "05.0004",
            "06.0004",
            "the LPAR gains adapter 06, a CEX5A",
            "card06 not yet",
            "../../../../bus/ap/drivers/vfio_ap",
            "05",
            "05.0004",
            "06",
            "06.0004",
        ]
    );
    let checkstop = section(&sections, "checkstop");
    assert_eq!(checkstop[..4], ["card05: checkstop on", "1", "0", "2"]);
    assert_eq!(checkstop[4..6], ["card05: checkstop off", "1"]);
    assert!(
        checkstop[6].contains("ENODEV") && checkstop[6].contains("20"),
        "{checkstop:?}"
    );
}

/// A usage domain added to the LPAR from the CLI shows in the mounted tree
/// only after a bus scan: a write to /sys/bus/ap/scans (kernel.md §9).
#[test]
fn a_domain_added_to_the_lpar_appears_after_a_scan() {
    if !fuse_usable() {
        return;
    }
    let script = r#"
        set -e
        count() { ls /sys/bus/ap/devices | grep -c '\.0007$' || true; }
        apmatrix host domain 7 add > /dev/null
        count
        cat /sys/bus/ap/bindings
        echo 1 > /sys/bus/ap/scans
        count
        cat /sys/bus/ap/bindings
        readlink /sys/devices/ap/card05/05.0007/driver
        apmatrix host domain 7 remove > /dev/null
        apmatrix host scan | head -1
        count
    "#;
    let text = exec("seed", script, &[]).stdout;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "0",
            "18/18 (complete)",
            "3",
            "21/21 (complete)",
            "../../../../bus/ap/drivers/cex4queue",
            "bus scan 3 done: usage domains 0x07 removed",
            "0"
        ]
    );
}

const REMOVE: &str = r###"
set -u
m1=/sys/devices/vfio_ap/matrix/$UUID1
echo -5 > /sys/bus/ap/apmask
echo $UUID1 > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
echo 5 > $m1/assign_adapter
apmatrix guest start Guest1 --mdev $UUID1 > /dev/null
# A writer killed while it waits removes nothing.
timeout 1 sh -c "echo 1 > $m1/remove"
echo "killed: $?"
test -e $m1 && echo "still there"
# The CLI waits as the kernel does, up to its timeout.
apmatrix mdev remove $UUID1 --timeout 1 2>&1 | sed 's/ [0-9a-f-]\{36\}/ UUID/g'
if [ "$WAITS" = 1 ]; then
    # A waiting writer finishes once the guest lets go (a writer the
    # scheduler starts only after the stop finishes at once: same output).
    (echo 1 > $m1/remove 2>/dev/null; echo "remove: $?") &
    apmatrix guest stop Guest1 > /dev/null
    wait
else
    (echo 1 > $m1/remove) 2>/dev/null; echo "remove: $?"
    apmatrix guest stop Guest1 > /dev/null
    echo 1 > $m1/remove; echo "remove: $?"
fi
test -e $m1 || echo "gone"
"###;

/// kernel.md §5: since ≈5.15 a write to `remove` while the guest runs
/// waits until the guest releases the device (old-5.15, dyn, new); the write blocks
/// in the mounted tree until `apmatrix guest stop` from another process,
/// a writer killed meanwhile removes nothing, and the CLI's own
/// `mdev remove` waits up to its timeout. Before 5.15 and on seed it is EBUSY.
#[test]
fn remove_waits_for_the_guest_on_new() {
    if !fuse_usable() {
        return;
    }
    for kernel in ["new", "5.15", "seed", "5.10"] {
        let waiting = matches!(kernel, "new" | "5.15");
        let waits = if waiting { "1" } else { "0" };
        let ran = exec(kernel, REMOVE, &[("WAITS", waits.to_string())]);
        let (text, errors) = (ran.stdout, ran.stderr);
        let lines: Vec<&str> = text.lines().collect();
        if waiting {
            assert_eq!(
                lines,
                [
                    "killed: 124",
                    "still there",
                    "apmatrix: waiting up to 1 s for guest Guest1 to release mdev UUID (as this kernel's remove does)",
                    "apmatrix: EBUSY: mdev UUID is still in use by guest Guest1 after 1 s; nothing was removed (stop the guest: apmatrix guest stop Guest1)",
                    "remove: 0",
                    "gone",
                ],
                "{errors}"
            );
        } else {
            // Refused at once, and the mdev stays.
            assert_eq!(
                lines,
                [
                    "killed: 1",
                    "still there",
                    "apmatrix: EBUSY: mdev UUID is in use by guest Guest1; stop the guest before removing it",
                    "remove: 1",
                    "remove: 0",
                    "gone",
                ],
                "{kernel}"
            );
        }
    }
}

/// `check --sysfs DIR` tells the generation from the tree, and `--kernel`
/// overrides it: masks that would take an APQN from an mdev left alone are
/// an error where the kernel refuses the write, and an error naming the
/// leak where it accepts it (old: host and guest would share the queue).
#[test]
fn check_on_a_tree_follows_its_generation_or_kernel() {
    if !fuse_usable() {
        return;
    }
    let script = r#"
        m1=/sys/devices/vfio_ap/matrix/$UUID1
        echo -5 > /sys/bus/ap/apmask
        echo $UUID1 > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
        echo 5 > $m1/assign_adapter
        echo 4 > $m1/assign_domain
        t=$(mktemp -d)
        printf '[masks]\napmask = "0-255"\n' > $t/all-to-host.toml
        apmatrix check $t/all-to-host.toml --sysfs /sys > $t/seen.txt 2>&1; echo "tree: $?"
        grep -c 'error: the masks would give the host APQN 05.0004' $t/seen.txt
        apmatrix check $t/all-to-host.toml --sysfs /sys --kernel 5.15 > $t/old.txt 2>&1; echo "5.15: $?"
        grep -c 'error: .*APQN 05.0004.*this kernel (old-5.15) accepts that' $t/old.txt
        rm -r $t
    "#;
    let text = exec("seed", script, &[]).stdout;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["tree: 1", "1", "5.15: 1", "1"],
        "{text}"
    );
}
