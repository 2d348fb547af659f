//! `apmatrix mount DIR`: the live tree and CLI commands share one host;
//! SIGINT unmounts cleanly; `kill -9` of the server in the middle of writes
//! loses no write that returned.

mod common;
use common::{apmatrix, fresh_host, fuse_usable, is_mounted, sh, succeeded, Served};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn cli(host: &Path, args: &[&str]) -> String {
    succeeded(apmatrix(host, args))
}

#[test]
fn tree_and_cli_share_the_host_and_sigint_unmounts() {
    if !fuse_usable() {
        return;
    }
    let (_tmp, host, dir) = fresh_host();
    let mut served = Served::start(&host, &dir);
    let d = dir.display();
    // a write through the tree, seen by the CLI
    assert!(sh(&format!("echo -5,-6 > {d}/bus/ap/apmask"))
        .status
        .success());
    assert!(cli(&host, &["mask", "show"]).contains(&format!("0xf9{}", "f".repeat(62))));
    // CLI commands, seen by the tree at once
    let uuid = "0bb7a40c-6a8e-4a3b-9f7e-4d2b1f9c7a11";
    cli(&host, &["mdev", "create", "--uuid", uuid]);
    cli(
        &host,
        &[
            "mdev",
            "assign",
            uuid,
            "--adapter",
            "5",
            "--domain",
            "4,0xab",
        ],
    );
    let matrix =
        std::fs::read_to_string(dir.join(format!("devices/vfio_ap/matrix/{uuid}/matrix"))).unwrap();
    assert_eq!(matrix, "05.0004\n05.00ab\n");
    cli(&host, &["guest", "start", "g1", "--mdev", uuid]);
    let status = std::fs::read_to_string(dir.join("devices/ap/card05/05.0004/status")).unwrap();
    assert_eq!(status, "in use\n");
    // hot plug through the tree reaches the guest the CLI started
    assert!(sh(&format!(
        "echo 6 > {d}/devices/vfio_ap/matrix/{uuid}/assign_adapter"
    ))
    .status
    .success());
    let view = cli(&host, &["guest", "lszcrypt", "g1"]);
    assert!(view.contains("06.00ab"), "{view}");
    // SIGINT: clean unmount, exit 0, state kept
    let status = served.signal(libc::SIGINT);
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&dir));
    assert!(cli(&host, &["mdev", "show", uuid]).contains("06.00ab"));
}

#[test]
fn kill_9_mid_writes_loses_no_returned_write() {
    if !fuse_usable() {
        return;
    }
    let (tmp, host, dir) = fresh_host();
    let log = tmp.path().join("done.log");
    let mut interrupted_rounds = 0;
    for round in 0..6u64 {
        let mut served = Served::start(&host, &dir);
        // Create mdevs one by one, logging each UUID once its write returned.
        let mut writer = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for i in $(seq 1 5000); do u=$(cat /proc/sys/kernel/random/uuid); \
                 echo $u > {}/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create || exit 3; \
                 echo $u >> {}; done",
                dir.display(),
                log.display()
            ))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once this round has returned a few writes (not after a fixed
        // time: on a busy machine that may be before the first), then at a
        // point that varies by round.
        let returned =
            |log: &std::path::Path| std::fs::read_to_string(log).map_or(0, |t| t.lines().count());
        let wanted = (round as usize + 1) * 5;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while returned(&log) < wanted && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(round * 7));
        served.signal(libc::SIGKILL);
        // 3: a write failed because the server died (the others: all done)
        if writer.wait().unwrap().code() == Some(3) {
            interrupted_rounds += 1;
        }
        drop(served);
        // Every logged UUID is in the state; each round the kill cut short
        // may add the one write it had in flight (made durable, not yet
        // answered), so the extras add up over the rounds.
        let logged: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        let listed: serde_json::Value =
            serde_json::from_str(&cli(&host, &["--json", "mdev", "list"])).unwrap();
        let uuids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["uuid"].as_str().unwrap())
            .collect();
        for u in &logged {
            assert!(
                uuids.contains(&u.as_str()),
                "round {round}: {u} was created but is lost"
            );
        }
        assert!(
            uuids.len() >= logged.len() && uuids.len() <= logged.len() + interrupted_rounds,
            "round {round}: {} in the state, {} logged, {interrupted_rounds} rounds cut short",
            uuids.len(),
            logged.len()
        );
    }
    assert!(
        interrupted_rounds > 0,
        "the server was never killed mid-writes"
    );
    let logged = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        logged > 20,
        "only {logged} writes returned before the kills"
    );
}

/// `umount DIR` from outside ends the server, even when another server
/// mounts DIR at once (the kernel may give the new mount the old one's
/// device number, so DIR's device says nothing).
#[test]
fn an_unmount_from_outside_ends_the_server_whatever_is_mounted_there_next() {
    if !fuse_usable() {
        return;
    }
    let (_tmp, host, dir) = fresh_host();
    let (_tmp2, other, _) = fresh_host();
    let mut first = Served::start(&host, &dir);
    assert!(sh(&format!("umount {}", dir.display())).status.success());
    let mut second = Served::start(&other, &dir);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while first.running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the unmounted server still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The new one serves on, and the first one's host is free again.
    assert!(second.running());
    assert!(dir.join("bus/ap/apmask").exists());
    cli(&host, &["mask", "show"]);
}
