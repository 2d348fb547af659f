//! Another local user against root's host: in a world-writable sticky
//! directory (like /tmp) and in a 0777 one, an unprivileged user plants
//! symlinks, journals, sockets and locks under every name apmatrix uses,
//! and tries to hold the lock. Root's state never changes by their doing,
//! no file outside the state is touched, and each refusal says why.

mod common;
use common::{apmatrix as root_cli, fuse_usable, Served, BIN};

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOBODY: u32 = 65534;

/// A shell command run as the unprivileged user.
fn as_nobody(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything under a directory: names, owners, modes, contents.
fn dump(dir: &Path) -> Vec<(PathBuf, u32, u32, Vec<u8>)> {
    let mut all: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            (p, m.uid(), m.mode(), content)
        })
        .collect();
    all.sort();
    all
}

struct Scene {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    shared: PathBuf,
    open: PathBuf,
}

/// `outside/victim` (root's file the attacker would like changed),
/// `shared/` (1777) and `open/` (0777).
fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(outside.join("victim"), "root's own data\n").unwrap();
    let shared = tmp.path().join("shared");
    let open = tmp.path().join("open");
    for (dir, mode) in [(&shared, 0o1777), (&open, 0o777)] {
        fs::create_dir(dir).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
    }
    Scene {
        _tmp: tmp,
        outside,
        shared,
        open,
    }
}

fn may_run() -> bool {
    // The same condition as the FUSE tests: root (to be root and nobody).
    fuse_usable()
}

#[test]
fn a_sticky_shared_directory_keeps_roots_host_from_planted_files() {
    if !may_run() {
        return;
    }
    let s = scene();
    let host = s.shared.join("host.json");
    let p = |suffix: &str| format!("{}{suffix}", host.display());
    let victim = s.outside.join("victim");
    let outside_before = dump(&s.outside);

    // Before root ever runs: a symlinked lock, pointing at root's file and
    // at a file the attacker would like root to create.
    let out = as_nobody(&format!(
        "ln -s {} {} && ln -s {}/made-by-root {}",
        victim.display(),
        p(".lock"),
        s.outside.display(),
        p(".journal")
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = root_cli(&host, &["host", "init"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("host.json.lock") && err.contains("is a symbolic link"),
        "{err}"
    );
    assert!(!host.exists(), "nothing may be made beside a planted lock");
    fs::remove_file(p(".lock")).unwrap();

    // The planted journal link is not followed (root's save removes the
    // name; planted again, the next command refuses it).
    let out = root_cli(&host, &["host", "init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::symlink_metadata(p(".journal")).is_err());
    let out = as_nobody(&format!("ln -s {} {}", victim.display(), p(".journal")));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = root_cli(&host, &["mask", "set", "apmask", "-5"]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("journal") && err.contains("symbolic link"),
        "{err}"
    );
    fs::remove_file(p(".journal")).unwrap();
    assert!(root_cli(&host, &["mask", "set", "apmask", "-5"])
        .status
        .success());
    let state = fs::read(&host).unwrap();
    assert_eq!(fs::metadata(&host).unwrap().mode() & 0o777, 0o600);

    // The attacker cannot read the snapshot (so not its token), cannot
    // open the lock (so cannot hold it), cannot replace root's files.
    for script in [
        format!("cat {}", host.display()),
        format!("flock -n -x {} true", p(".lock")),
        format!("exec 9< {}", p(".lock")),
        format!("rm -f {}", p(".lock")),
        format!("mv {} {}.x", host.display(), host.display()),
        format!("echo {{}} > {}", host.display()),
    ] {
        let out = as_nobody(&script);
        assert!(!out.status.success(), "{script} succeeded as nobody");
    }

    // A journal planted by the attacker, even one naming the snapshot's
    // token, is refused by name, not replayed.
    let token = serde_json::from_slice::<serde_json::Value>(&state).unwrap()["saved_as"]
        .as_str()
        .unwrap()
        .to_string();
    let out = as_nobody(&format!(
        "printf '%s\\n%s\\n' '{{\"apmatrix_journal\":1,\"continues\":\"{token}\"}}' \
         '{{\"op\":\"set_mask\",\"mask\":\"apmask\",\"value\":\"{}\"}}' > {} && chmod 600 {}",
        "0".repeat(64),
        p(".journal"),
        p(".journal")
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [&["mask", "show"][..], &["mdev", "create"][..]] {
        let out = root_cli(&host, args);
        let err = stderr(&out);
        assert!(
            !out.status.success()
                && err.contains("host.json.journal")
                && err.contains("belongs to uid 65534"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(fs::read(&host).unwrap(), state, "root's state changed");
    fs::remove_file(p(".journal")).unwrap();

    // Temporaries under guessable names (the old scheme's) are neither
    // followed nor removed; root's saves go on.
    let out = as_nobody(&format!(
        "ln -s {v} {h}.tmp.1 && ln -s {v} {h}.tmp.12345.journal && : > {h}.tmp.planted",
        v = victim.display(),
        h = host.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root_cli(&host, &["mask", "set", "apmask", "-6"])
        .status
        .success());
    assert!(fs::symlink_metadata(p(".tmp.1")).is_ok());

    // A fake server at the socket's name: root's commands (holding the
    // free lock) never ask it; root's server will not start over it.
    let out = as_nobody(&format!(
        "/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"{}\")'",
        p(".sock")
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = root_cli(&host, &["mask", "show"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    if fuse_usable() {
        let sys = s._tmp.path().join("sys");
        fs::create_dir(&sys).unwrap();
        let out = Command::new(BIN)
            .args([
                "--host",
                host.to_str().unwrap(),
                "mount",
                sys.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            !out.status.success() && err.contains("in the way of the server's socket"),
            "{err}"
        );
        fs::remove_file(p(".sock")).unwrap();
        // With the name free, root serves, and the attacker cannot connect.
        let _served = Served::start(&host, &sys);
        let out = as_nobody(&format!(
            "/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"{}\")'",
            p(".sock")
        ));
        assert!(!out.status.success(), "nobody connected to root's server");
        // Even through an opened door, the server checks who asks.
        fs::set_permissions(p(".sock"), fs::Permissions::from_mode(0o666)).unwrap();
        let out = as_nobody(&format!(
            "/usr/bin/python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); \
             s.connect(\"{}\"); s.sendall(b\"{{\\\"request\\\":\\\"get\\\"}}\\n\"); \
             print(s.recv(65536).decode())'",
            p(".sock")
        ));
        let reply = String::from_utf8_lossy(&out.stdout);
        assert!(
            reply.contains("only root and the host's owner") && !reply.contains("apmask"),
            "{reply} {}",
            stderr(&out)
        );
        assert!(root_cli(&host, &["mask", "show"]).status.success());
    }

    // A symlinked --host made by the attacker is not followed.
    let out = as_nobody(&format!(
        "ln -s {} {}/evil.json",
        victim.display(),
        s.shared.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = root_cli(&s.shared.join("evil.json"), &["host", "init", "--force"]);
    let err = stderr(&out);
    assert!(
        !out.status.success()
            && err.contains("owned by uid 65534")
            && err.contains("does not follow"),
        "{err}"
    );
    assert_eq!(
        dump(&s.outside),
        outside_before,
        "a file outside the state changed"
    );
}

#[test]
fn a_directory_others_can_write_is_refused_with_the_fix() {
    if !may_run() {
        return;
    }
    let s = scene();
    let host = s.open.join("host.json");
    let out = root_cli(&host, &["host", "init"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("a directory other users can write (mode 0777)") && err.contains("chmod go-w"),
        "{err}"
    );
    assert!(
        dump(&s.open).is_empty(),
        "root made files in a 0777 directory"
    );
    // A state someone put there is not read either.
    fs::set_permissions(&s.open, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(root_cli(&host, &["host", "init"]).status.success());
    fs::set_permissions(&s.open, fs::Permissions::from_mode(0o777)).unwrap();
    let before = dump(&s.open);
    let out = as_nobody(&format!(
        "ln -s /etc/passwd {}/host.json.journal",
        s.open.display()
    ));
    assert!(out.status.success());
    for args in [&["mask", "show"][..], &["mask", "set", "apmask", "-5"][..]] {
        let out = root_cli(&host, args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("mode 0777"), "{}", stderr(&out));
    }
    let mut after = dump(&s.open);
    after.retain(|(p, ..)| !p.ends_with("host.json.journal"));
    assert_eq!(after, before, "root changed files in a 0777 directory");
}
