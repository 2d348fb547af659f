//! The bus's periodic scan in the mounted tree (kernel.md §1 `config_time`,
//! §9): an HMC change shows without anyone asking for a scan, within
//! `config_time` seconds; `--no-periodic-scans` leaves it waiting.

mod common;
use common::{fuse_usable, BIN};

use std::process::Command;

/// Waits (up to a minute, far beyond the 5 s config_time) for domain 7's
/// queues; prints what it saw either way, so the verdict is about whether
/// the scan came, not about how fast.
const SCRIPT: &str = r#"
set -eu
echo 5 > /sys/bus/ap/config_time
before=$(cat /sys/bus/ap/scans)
apmatrix host domain 7 add > /dev/null
for _ in $(seq 240); do
    test -e /sys/devices/ap/card05/05.0007 && break
    [ "$PERIODIC" = 1 ] || break
    sleep 0.25
done
test -e /sys/devices/ap/card05/05.0007 && echo "05.0007 appeared" || echo "05.0007 not there"
after=$(cat /sys/bus/ap/scans)
[ "$after" -gt "$before" ] && echo "scanned" || echo "not scanned"
"#;

fn run(periodic: bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    common::succeeded(common::apmatrix(&host, &["host", "init"]));
    let mut exec = vec!["--host", host.to_str().unwrap(), "exec"];
    if !periodic {
        exec.push("--no-periodic-scans");
    }
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let out = Command::new(BIN)
        .args(exec)
        .args(["--", "bash", "-c", SCRIPT])
        .env("PATH", path)
        .env("APMATRIX_HOST", &host)
        .env("PERIODIC", if periodic { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn an_hmc_change_shows_at_the_next_periodic_scan() {
    if !fuse_usable() {
        return;
    }
    assert_eq!(run(true), "05.0007 appeared\nscanned\n");
    assert_eq!(run(false), "05.0007 not there\nnot scanned\n");
}
