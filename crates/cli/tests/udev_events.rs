//! Live udev events under `apmatrix exec`: a real libudev client
//! (`udevadm monitor`) in exec's private network namespace sees each change
//! of the host as the kernel and udevd would announce it
//! (docs/research/uevents.md §3), and nothing reaches the host's namespace.

mod common;
use common::{fuse_usable, BIN};

use std::os::fd::OwnedFd;
use std::process::Command;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const UUID: &str = "0b1d5f5a-7e3c-4d8e-9a44-3d2f0c6e5b71";

/// Starts `udevadm monitor` on the ap and mdev subsystems (so its socket
/// filter must accept our header's hashes), waits until it listens, makes
/// changes through the tree, and waits for the last one's event before
/// printing all it saw. The matrix's event is filtered out by subsystem.
const SCRIPT: &str = r#"
set -eu
mon=$WORK/monitor.txt
stdbuf -oL udevadm monitor --udev --property \
    --subsystem-match=ap --subsystem-match=mdev > "$mon" 2>&1 &
monpid=$!
trap 'kill $monpid 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^UDEV - the event' "$mon" && break; sleep 0.05; done
grep -q '^UDEV - the event' "$mon" || { echo "udevadm monitor did not start:"; cat "$mon"; exit 1; }
echo -0x5 > /sys/bus/ap/apmask
echo "$UUID" > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
echo change > /sys/devices/vfio_ap/matrix/uevent
echo 1 > /sys/devices/vfio_ap/matrix/$UUID/remove
echo 0 > /sys/devices/ap/card06/config
echo change > /sys/devices/ap/uevent
for _ in $(seq 600); do grep -q '^SYNTH_UUID=0' "$mon" && break; sleep 0.05; done
kill $monpid
wait $monpid || true
cat "$mon"
"#;

/// The monitor's events as `action devpath KEY=VALUE...` (without the keys
/// every event has), and their SEQNUMs.
fn events(monitor: &str) -> (Vec<String>, Vec<u64>) {
    let mut out = Vec::new();
    let mut seqnums = Vec::new();
    for block in monitor.split("\n\n").filter(|b| b.starts_with("UDEV  [")) {
        let mut action = String::new();
        let mut devpath = String::new();
        let mut keys = Vec::new();
        for line in block.lines().skip(1) {
            let (k, v) = line.split_once('=').expect("KEY=VALUE");
            match k {
                "ACTION" => action = v.to_string(),
                "DEVPATH" => devpath = v.to_string(),
                "SUBSYSTEM" | "USEC_INITIALIZED" => {}
                "SEQNUM" => seqnums.push(v.parse::<u64>().unwrap()),
                _ => keys.push(line.to_string()),
            }
        }
        let mut e = format!("{action} {devpath}");
        for k in keys {
            e.push(' ');
            e.push_str(&k);
        }
        out.push(e);
    }
    (out, seqnums)
}

fn expected() -> Vec<String> {
    let mut e = Vec::new();
    let domains = ["0004", "0005", "0006", "0047", "00ab", "00ff"];
    for (n, d) in domains.iter().enumerate() {
        let q = format!("/devices/ap/card05/05.{d}");
        e.push(format!("unbind {q} DEVTYPE=ap_queue MODE=cca"));
        e.push(format!("bind {q} DEVTYPE=ap_queue DRIVER=vfio_ap MODE=cca"));
        e.push(format!(
            "change /devices/ap BINDINGS=complete COMPLETECOUNT={}",
            n + 2
        ));
    }
    // Bit 5 (the sixth from the left) cleared.
    e.push(format!("change /devices/ap APMASK=0xfb{}", "f".repeat(62)));
    let mdev = format!("/devices/vfio_ap/matrix/{UUID}");
    e.push(format!("add {mdev}"));
    e.push(format!("bind {mdev} DRIVER=vfio_ap_mdev"));
    e.push(format!("unbind {mdev}"));
    e.push(format!("remove {mdev}"));
    e.push(
        "change /devices/ap/card06 CONFIG=0 DEVTYPE=ap_card DRIVER=cex4card DEV_TYPE=000B \
         MODALIAS=ap:t0B MODE=accel"
            .into(),
    );
    for d in domains {
        e.push(format!(
            "change /devices/ap/card06/06.{d} CONFIG=0 DEVTYPE=ap_queue DRIVER=cex4queue MODE=accel"
        ));
    }
    e.push("change /devices/ap SYNTH_UUID=0".into());
    e
}

#[test]
fn udevadm_monitor_under_exec_sees_each_change_in_the_kernels_order() {
    if !fuse_usable() {
        eprintln!("skipping: needs root and /dev/fuse");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let env = [
        ("WORK", tmp.path().display().to_string()),
        ("UUID", UUID.to_string()),
    ];
    let ran = common::exec(&host, "dyn", SCRIPT, &env);
    let (seen, seqnums) = events(&ran.stdout);
    assert_eq!(seen, expected(), "{}", ran.stdout);
    // One SEQNUM per event sent: the matrix's, which the subsystem filter
    // kept from the monitor, is the one gap (after the mdev's bind).
    let gaps: Vec<usize> = (1..seqnums.len())
        .filter(|i| seqnums[*i] != seqnums[i - 1] + 1)
        .collect();
    assert_eq!(gaps, [21], "{seqnums:?}");
    assert_eq!(seqnums[21], seqnums[20] + 2);
}

/// A socket on the host's (this test's) namespace in udev's group: what a
/// libudev monitor of the host would receive.
fn host_udev_listener() -> OwnedFd {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        Some(netlink::KOBJECT_UEVENT),
    )
    .unwrap();
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 2)).unwrap();
    fd
}

/// Messages about the emulated devices that reached the listener (a real
/// udevd of the machine may broadcast about its own devices meanwhile).
fn ours(listener: &OwnedFd) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = rustix::net::recv(listener, &mut buf[..], RecvFlags::DONTWAIT) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("DEVPATH=/devices/ap") || text.contains("DEVPATH=/devices/vfio_ap") {
            seen.push(text.replace('\0', " "));
        }
    }
    seen
}

fn net_namespace_of_exec(host: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--host", host.to_str().unwrap(), "exec", "--no-periodic-scans"])
        .args(extra)
        .args(["--", "sh", "-c"])
        .arg("echo -0x4 > /sys/bus/ap/apmask; echo +0x4 > /sys/bus/ap/apmask; readlink /proc/self/ns/net")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn no_udev_event_reaches_the_hosts_namespace() {
    if !fuse_usable() {
        eprintln!("skipping: needs root and /dev/fuse");
        return;
    }
    let listener = host_udev_listener();
    // The listener works: a message to udev's group in this namespace arrives.
    let probe = host_udev_listener();
    let hello = b"libudev\0DEVPATH=/devices/ap/probe\0";
    rustix::net::sendto(
        &probe,
        hello,
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 2),
    )
    .unwrap();
    assert_eq!(
        ours(&listener).len(),
        1,
        "the listener must hear this namespace"
    );

    let (_tmp, host, _dir) = common::fresh_host();
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let own = own.to_str().unwrap();
    let private = net_namespace_of_exec(&host, &[]);
    assert_ne!(private, own, "exec runs in a network namespace of its own");
    let kept = net_namespace_of_exec(&host, &["--host-network"]);
    assert_eq!(kept, own, "--host-network keeps the host's");
    // Both runs re-probed 6 queues twice; exec has returned, so anything it
    // sent here would be queued on the listener by now.
    assert_eq!(ours(&listener), Vec::<String>::new());
}
