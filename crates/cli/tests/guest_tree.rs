//! `apmatrix exec --guest NAME`: the AP bus tree a guest's own kernel
//! builds from its CRYCB (kernel.md §7, §8), for the seed document's three
//! guests; a hot plug shows there only after the guest's own bus scan, and
//! its writes change its bus only.

mod common;
use common::fuse_usable;

use std::ffi::OsStr;
use std::path::Path;

/// What a guest's tree shows: its queues under the bus, their drivers and
/// each card's type, its masks, and whether vfio_ap is there.
const LOOK: &str = r#"
set -eu
echo "devices: $(ls /sys/bus/ap/devices | tr '\n' ' ')"
for c in /sys/devices/ap/card*; do echo "$(basename $c) $(cat $c/type)"; done
echo "cex4queue: $(ls /sys/bus/ap/drivers/cex4queue | grep -v -e bind -e uevent | tr '\n' ' ')"
echo "drivers: $(ls /sys/bus/ap/drivers | tr '\n' ' ')"
test -e /sys/devices/vfio_ap/matrix/mdev_supported_types && echo "vfio_ap: present" || echo "vfio_ap: none"
"#;

fn in_guest(host: &Path, guest: &str, script: &str) -> String {
    let args: [&OsStr; 3] = ["bash".as_ref(), "-c".as_ref(), script.as_ref()];
    common::in_guest(host, guest, &args)
}

#[test]
fn each_seed_guest_sees_its_own_queues_bound_to_its_zcrypt() {
    if !fuse_usable() {
        eprintln!("skipping: needs root and /dev/fuse");
        return;
    }
    let (_tmp, host) = common::seed_guests_host();
    let expected = [
        (
            "Guest1",
            "devices: 05.0004 05.00ab 06.0004 06.00ab card05 card06 \n\
             card05 CEX5C\ncard06 CEX5A\n\
             cex4queue: 05.0004 05.00ab 06.0004 06.00ab \n",
        ),
        (
            "Guest2",
            "devices: 05.0047 05.00ff card05 \ncard05 CEX5C\ncex4queue: 05.0047 05.00ff \n",
        ),
        (
            "Guest3",
            "devices: 06.0047 06.00ff card06 \ncard06 CEX5A\ncex4queue: 06.0047 06.00ff \n",
        ),
    ];
    for (guest, listing) in expected {
        let seen = in_guest(&host, guest, LOOK);
        assert_eq!(
            seen,
            format!("{listing}drivers: cex4card cex4queue \nvfio_ap: none\n"),
            "{guest}"
        );
    }
}

/// A hot plug on the host, then the guest's view before and after its scan;
/// then the guest's own mask write, which must leave the host alone.
const HOT_PLUG: &str = r#"
set -eu
apmatrix mdev assign $U1 -d 6 > /dev/null
echo "before scan: $(ls /sys/devices/ap/card05 | grep '^05\.' | tr '\n' ' ')"
echo 1 > /sys/bus/ap/scans
echo "after scan: $(ls /sys/devices/ap/card05 | grep '^05\.' | tr '\n' ' ')"
echo -0xab > /sys/bus/ap/aqmask
echo "05.00ab driver: $(basename $(readlink /sys/devices/ap/card05/05.00ab/driver 2>/dev/null) 2>/dev/null || echo none)"
"#;

#[test]
fn a_hot_plug_shows_in_the_guest_after_its_own_scan_and_its_masks_are_its_own() {
    if !fuse_usable() {
        eprintln!("skipping: needs root and /dev/fuse");
        return;
    }
    let (_tmp, host) = common::seed_guests_host();
    // Domain 6 is the host's; free it for vfio_ap from the host first.
    common::succeeded(common::apmatrix(&host, &["mask", "set", "aqmask", "-6"]));
    let masks = || common::succeeded(common::apmatrix(&host, &["--json", "mask", "show"]));
    let host_masks = masks();
    let script = HOT_PLUG.replace("$U1", common::SEED_GUEST_UUIDS[0]);
    let seen = in_guest(&host, "Guest1", &script);
    assert_eq!(
        seen,
        "before scan: 05.0004 05.00ab \n\
         after scan: 05.0004 05.0006 05.00ab \n\
         05.00ab driver: none\n"
    );
    // The host still gives 05.00ab to the guest, and its masks are as set.
    let matrix = common::succeeded(common::apmatrix(&host, &["guest", "lszcrypt", "Guest1"]));
    assert!(matrix.contains("05.00ab"), "{matrix}");
    assert_eq!(masks(), host_masks, "the guest's mask write is the guest's");
    // A guest that is not running cannot be served.
    let out = common::apmatrix(&host, &["exec", "--guest", "Guest9", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no running guest \"Guest9\""),
        "{out:?}"
    );
}
