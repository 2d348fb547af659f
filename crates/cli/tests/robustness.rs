//! What a careless or hostile environment does to the CLI: closed pipes,
//! special files where a file is expected, a killed `exec`, missing
//! programs. Each ends with a clear message and the README's status.

mod common;
use common::{fuse_usable, BIN};

use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs apmatrix with a stdout whose reader has already gone: every write
/// fails with EPIPE, deterministically.
fn run_into_closed_pipe(host: &Path, args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made and are owned here only.
    let (reader, writer) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    let child = Command::new(BIN)
        .arg("--host")
        .arg(host)
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_went_away_ends_the_output_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    assert!(run(&["--host", host.to_str().unwrap(), "host", "init"])
        .status
        .success());
    for args in [
        &["completions", "bash"][..],
        &["--json", "mdev", "list"][..],
        &["lszcrypt", "-V"][..],
    ] {
        let out = run_into_closed_pipe(&host, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} said: {stderr}");
    }
}

/// Waits for a child with a generous bound, so that a hang fails the test
/// instead of stalling the suite (the verdict is the output, not the time).
fn output_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{command:?} did not return");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn special_files_are_refused_by_name_not_read_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    assert!(run(&["--host", host.to_str().unwrap(), "host", "init"])
        .status
        .success());
    let fifo = tmp.path().join("config.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let imports = tmp.path().join("mdevctl.d");
    std::fs::create_dir(&imports).unwrap();
    std::os::unix::fs::symlink(
        "/dev/zero",
        imports.join("669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4"),
    )
    .unwrap();
    let h = host.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--host", h, "check", "/dev/zero"],
            "/dev/zero: not a regular file (it is a character device)",
        ),
        (
            &["--host", h, "check", fifo.to_str().unwrap()],
            "not a regular file (it is a FIFO)",
        ),
        (
            &["--host", "/dev/zero", "mask", "show"],
            "refusing /dev/zero: it is not a regular file (it is a character device)",
        ),
        (
            &["--host", fifo.to_str().unwrap(), "mask", "show"],
            "is not a regular file (it is a FIFO)",
        ),
        (
            &["import", imports.to_str().unwrap()],
            "not a regular file (it is a character device)",
        ),
        (
            &[
                "--host",
                h,
                "host",
                "init",
                "--force",
                "--from",
                "/dev/zero",
            ],
            "/dev/zero: not a regular file",
        ),
    ];
    for (args, expect) in cases {
        let mut command = Command::new(BIN);
        command.args(args);
        let out = output_within(command, Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
    // A directory given as the state: refused before anything is made.
    let dir = tmp.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let out = run(&["--host", dir.to_str().unwrap(), "host", "init", "--force"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is not a regular file (it is a directory)"),
        "{stderr}"
    );
    assert!(!tmp.path().join("adir.lock").exists());
}

#[test]
fn host_descriptions_name_a_bad_id_and_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let desc = tmp.path().join("host.toml");
    for (text, expect) in [
        (
            "usage_domains = \"1\"\n[[card]]\nid = -1\ntype = \"CEX5C\"\n",
            "-1 is not an id: ids are whole numbers from 0 to 255",
        ),
        (
            "usage_domains = \"1\"\n[[card]]\nid = 5.0\ntype = \"CEX5C\"\n",
            "(write 5, not 5.0)",
        ),
        (
            "usage_domains = \"1\"\napxa = false\n[[card]]\nid = 64\ntype = \"CEX5C\"\n",
            "card 40 (adapter 64) is above the host's maximum adapter number 63",
        ),
    ] {
        std::fs::write(&desc, text).unwrap();
        let out = run(&[
            "--host",
            host.to_str().unwrap(),
            "host",
            "init",
            "--from",
            desc.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expect),
            "{text}: {stderr}"
        );
        assert!(!stderr.contains("untagged"), "{stderr}");
        assert!(!host.exists());
    }
}

fn exec_dirs_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("apmatrix-exec-{pid}-")))
        .collect()
}

/// Whether a process is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn exec_leaves_nothing_behind_and_its_command_dies_with_it() {
    if !fuse_usable() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let h = host.to_str().unwrap();
    assert!(run(&["--host", h, "host", "init"]).status.success());
    // A missing program: apmatrix's own failure, status 1, said plainly.
    let out = run(&["--host", h, "exec", "--", "/no/such/program"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot run /no/such/program"), "{stderr}");
    // The command's own status comes back as it is.
    assert_eq!(
        run(&["--host", h, "exec", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    // kill -9 of exec: its command dies too, and nothing is left in /tmp.
    let pidfile = tmp.path().join("child.pid");
    let mut exec = Command::new(BIN)
        .args(["--host", h, "exec", "--", "sh", "-c"])
        .arg(format!(
            "cat /sys/bus/ap/apmask > /dev/null && echo $$ > {} && exec sleep 1000",
            pidfile.display()
        ))
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&pidfile).map_or(true, |t| !t.ends_with('\n')) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exec's command never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        exec_dirs_of(exec.id()).is_empty(),
        "exec left its work directory in /tmp"
    );
    exec.kill().unwrap();
    exec.wait().unwrap();
    let start = Instant::now();
    while !gone(child) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "exec's command {child} outlived it"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(exec_dirs_of(exec.id()).is_empty());
    // and the host is usable at once
    assert!(run(&["--host", h, "mask", "show"]).status.success());
}

#[test]
fn exit_statuses_are_the_readmes_0_done_1_refused_or_failed_2_bad_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let h = host.to_str().unwrap();
    assert!(run(&["--host", h, "host", "init"]).status.success());
    let m = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
    assert!(run(&["--host", h, "mdev", "create", "--uuid", m])
        .status
        .success());
    let cases: [(&[&str], i32, &str); 7] = [
        (&["--host", h, "mdev", "assign", m, "-a", "5"], 0, ""),
        // refused by the kernel's rules
        (
            &["--host", h, "mdev", "assign", m, "-d", "4"],
            1,
            "EADDRNOTAVAIL",
        ),
        // failed: a file that is not there
        (&["--host", h, "check", "/no/such.toml"], 1, "/no/such.toml"),
        // bad usage: apmatrix's own argument checks, and clap's
        (
            &["--host", h, "mdev", "assign", "ffff", "-a", "5"],
            2,
            "no mdev matches \"ffff\"",
        ),
        (&["--host", h, "mdev", "assign", m], 2, "nothing to do"),
        (
            &["--host", h, "guest", "start", "G", "--cpu", "bogus=on"],
            2,
            "--cpu",
        ),
        (
            &["--host", h, "mdev", "frobnicate"],
            2,
            "unrecognized subcommand",
        ),
    ];
    for (args, code, says) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
