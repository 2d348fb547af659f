//! The built `apmatrix` binary, driven as a user drives it: the seed
//! walkthrough as separate invocations on one state file, concurrent
//! writers, writers killed mid-write, and lszcrypt output against golden
//! files derived from s390-tools' format rules (tools.md Part A §1).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use apmatrix_model::{CpuModel, Host, HostState, MaskKind, MatrixAxis, Topology, SEED};
use uuid::Uuid;

const UUIDS: [&str; 3] = [
    "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4",
    "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0",
    "d1a4b0a5-9c2e-4f2c-8f6a-5f3b2c1d0e9f",
];

struct Env {
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("host.json");
        Env { _dir: dir, state }
    }

    fn run(&self, args: &[&str]) -> Output {
        run_at(&self.state, args)
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "apmatrix {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects a refusal; returns stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "apmatrix {args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn load(&self) -> Host {
        load(&self.state)
    }
}

fn run_at(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apmatrix"))
        .arg("--host")
        .arg(state)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn load(state: &Path) -> Host {
    let text = std::fs::read_to_string(state).unwrap();
    let s: HostState = serde_json::from_str(&text).unwrap();
    Host::from_state(s).unwrap()
}

/// The walkthrough through the model directly, for comparison.
fn walkthrough_in_process() -> Host {
    let mut h = Host::seed_example();
    h.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    let u: Vec<Uuid> = UUIDS.iter().map(|s| s.parse().unwrap()).collect();
    for m in &u {
        h.create_mdev(*m).unwrap();
    }
    use MatrixAxis::{Adapter, Domain};
    for (m, steps) in [
        (
            u[0],
            vec![(Adapter, 5), (Adapter, 6), (Domain, 4), (Domain, 0xab)],
        ),
        (u[1], vec![(Adapter, 5), (Domain, 0x47), (Domain, 0xff)]),
        (u[2], vec![(Adapter, 6), (Domain, 0x47), (Domain, 0xff)]),
    ] {
        for (axis, id) in steps {
            h.assign(&m, axis, id).unwrap();
        }
    }
    for (g, m) in ["Guest1", "Guest2", "Guest3"].iter().zip(&u) {
        h.start_guest(g, Some(*m), CpuModel::default()).unwrap();
    }
    h
}

/// The walkthrough as separate CLI invocations.
fn walkthrough_cli(env: &Env) {
    env.ok(&["host", "init"]);
    env.ok(&["mask", "set", "apmask", "-5,-6"]);
    for u in UUIDS {
        assert_eq!(env.ok(&["mdev", "create", "--uuid", u]), format!("{u}\n"));
    }
    // ids in the document's order, using prefixes of the UUIDs
    env.ok(&[
        "mdev", "assign", "669d", "-a", "5", "-a", "6", "-d", "4", "-d", "0xab",
    ]);
    env.ok(&["mdev", "assign", "8da4", "-a", "5", "-d", "0x47,0xff"]);
    env.ok(&[
        "mdev",
        "assign",
        "d1a4",
        "--adapter",
        "6",
        "--domain",
        "0x47",
        "--domain",
        "0xff",
    ]);
    for (g, u) in ["Guest1", "Guest2", "Guest3"].iter().zip(UUIDS) {
        env.ok(&[
            "guest",
            "start",
            g,
            "--mdev",
            u,
            "--cpu",
            "host,ap=on,apqci=on,apft=on",
        ]);
    }
}

#[test]
fn seed_walkthrough_as_separate_invocations() {
    let env = Env::new();
    walkthrough_cli(&env);
    assert_eq!(env.load(), walkthrough_in_process());

    let show = env.ok(&["mdev", "show", UUIDS[0]]);
    assert!(
        show.contains("matrix:\n  05.0004\n  05.00ab\n  06.0004\n  06.00ab\n"),
        "{show}"
    );
    assert_eq!(
        env.ok(&["guest", "lszcrypt", "Guest2"]),
        "CARD.DOMAIN TYPE  MODE\n------------------------------\n05          CEX5C CCA-Coproc\n05.0047     CEX5C CCA-Coproc\n05.00ff     CEX5C CCA-Coproc\n"
    );

    // refusals: one line on stderr, errno first, nothing changed
    let before = env.load();
    let err = env.refused(&["mdev", "assign", "8da4", "-a", "6"]);
    assert!(
        err.starts_with(&format!(
            "apmatrix: EADDRINUSE: APQN 06.0047 (and 1 more) is already assigned to mdev {}, used by guest Guest3",
            UUIDS[2]
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
    let err = env.refused(&["mdev", "assign", "8da4", "-a", "4"]);
    assert!(
        err.starts_with("apmatrix: EADDRNOTAVAIL: APQN 04.0047 (and 1 more) is reserved for the host (apmask bit 4 and aqmask bit 71 are set)"),
        "{err}"
    );
    let err = env.refused(&["mdev", "assign", "8da4", "-d", "256"]);
    assert!(
        err.starts_with("apmatrix: ENODEV: domain 256 (0x100) is above"),
        "{err}"
    );
    let err = env.refused(&["mask", "set", "apmask", "+5"]);
    assert!(
        err.starts_with("apmatrix: EADDRINUSE: setting apmask to 0xfdff"),
        "{err}"
    );
    let err = env.refused(&["mask", "set", "aqmask", "0X41"]);
    assert!(
        err.starts_with("apmatrix: EINVAL: \"0X41\" is not valid for aqmask"),
        "{err}"
    );
    assert_eq!(env.load(), before);

    // hot unplug, then the refused and the accepted remove
    let out = env.ok(&["mdev", "unassign", "669d", "-a", "6"]);
    assert_eq!(
        out,
        "unassigned adapter 0x06\n  guest Guest1: hot unplug 06.0004 06.00ab\n"
    );
    let err = env.refused(&["mdev", "remove", "669d"]);
    assert!(
        err.starts_with(&format!(
            "apmatrix: EBUSY: mdev {} is in use by guest Guest1",
            UUIDS[0]
        )),
        "{err}"
    );
    env.ok(&["guest", "stop", "Guest1"]);
    env.ok(&["mdev", "remove", "669d"]);
    assert_eq!(env.load().mdev_count(), 2);
}

#[test]
fn multi_step_assign_stops_at_the_first_refusal_and_keeps_what_was_applied() {
    let env = Env::new();
    env.ok(&["host", "init"]);
    env.ok(&["mask", "set", "apmask", "-5"]);
    env.ok(&["mdev", "create", "--uuid", UUIDS[0]]);
    let out = env.run(&[
        "mdev", "assign", "669d", "-d", "4", "-a", "5", "-a", "4,6", "-d", "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "assigned domain 0x04\nassigned adapter 0x05\n"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("apmatrix: EADDRNOTAVAIL: APQN 04.0004 is reserved for the host"),
        "{err}"
    );
    assert_eq!(
        env.load()
            .mdev(&UUIDS[0].parse().unwrap())
            .unwrap()
            .matrix_text(),
        "05.0004\n"
    );
}

#[test]
fn lszcrypt_matches_the_golden_files() {
    let env = Env::new();
    walkthrough_cli(&env);
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (args, file) in [
        (&["lszcrypt"][..], "lszcrypt.txt"),
        (&["lszcrypt", "-V"][..], "lszcrypt-V.txt"),
    ] {
        let expected = std::fs::read_to_string(golden.join(file)).unwrap();
        assert_eq!(env.ok(args), expected, "{file}");
    }
    let bus = env.ok(&["lszcrypt", "-b"]);
    assert_eq!(
        bus,
        "ap_domain=0x04\nap_max_domain_id=0xff\nap_interrupts are enabled\nconfig_time=30 (seconds)\npoll_thread is disabled\npoll_timeout=250000 (nanoseconds)\n"
    );
    let domains = env.ok(&["lszcrypt", "-d"]);
    let lines: Vec<&str> = domains.lines().collect();
    assert_eq!(
        lines[0],
        "DOMAIN 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
    );
    assert_eq!(
        lines[2],
        "    00  .  .  .  .  B  B  B  .  .  .  .  .  .  .  .  ."
    );
    assert_eq!(
        lines[6],
        "    40  .  .  .  .  .  .  .  B  .  .  .  .  .  .  .  ."
    );
    assert_eq!(
        lines[17],
        "    f0  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  B"
    );
    assert_eq!(lines.len(), 22);
}

#[test]
fn json_output_and_views() {
    let env = Env::new();
    walkthrough_cli(&env);
    let rows: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "lszcrypt", "-V"])).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 21);
    assert_eq!(rows[8]["status"], "in use");
    let mdevs: serde_json::Value =
        serde_json::from_str(&env.ok(&["mdev", "list", "--json"])).unwrap();
    assert_eq!(mdevs[0]["guest"], "Guest1");
    assert_eq!(mdevs[0]["apqns"], 4);
    let map: serde_json::Value = serde_json::from_str(&env.ok(&["matrix", "--json"])).unwrap();
    let owners: Vec<&str> = map["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners.iter().filter(|o| **o == "host").count(), 6);
    assert_eq!(owners.iter().filter(|o| **o == "mdev").count(), 8);
    assert_eq!(owners.iter().filter(|o| **o == "free").count(), 4);
    let grid = env.ok(&["matrix"]);
    assert!(
        grid.contains("card04    H H H H H H \ncard05    a . . b a b \ncard06    a . . c a c \n"),
        "{grid}"
    );
    let masks = env.ok(&["mask", "show"]);
    assert!(
        masks.contains("default drivers pool (host, zcrypt):  adapters 0-4,7-255 x domains 0-255"),
        "{masks}"
    );
    assert_eq!(
        env.ok(&["mask", "cmdline"]),
        "ap.apmask=0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n"
    );
    let guests = env.ok(&["guest", "list"]);
    assert!(guests.contains("Guest3"), "{guests}");
    assert!(env.ok(&["completions", "bash"]).contains("apmatrix"));
}

#[test]
fn boot_cmdline_is_the_shortest_absolute_form() {
    let env = Env::new();
    env.ok(&["host", "init"]);
    assert!(env
        .ok(&["mask", "cmdline"])
        .starts_with("(no parameters needed"));
    env.ok(&["mask", "set", "apmask", "0xffff"]);
    env.ok(&["mask", "set", "aqmask", "0x40"]);
    assert_eq!(
        env.ok(&["mask", "cmdline"]),
        "ap.apmask=0xffff ap.aqmask=0x4\n"
    );
    env.ok(&["mask", "set", "aqmask", "0x"]);
    assert_eq!(
        env.ok(&["mask", "cmdline"]),
        "ap.apmask=0xffff ap.aqmask=0x0\n"
    );
}

#[test]
fn damaged_and_foreign_state_files_are_refused_and_kept() {
    let env = Env::new();
    let err = env.refused(&["lszcrypt"]);
    assert!(err.contains("no emulated host at"), "{err}");
    for text in ["", "{\"format\":1}", "garbage"] {
        std::fs::write(&env.state, text).unwrap();
        let err = env.refused(&["mask", "set", "apmask", "-5"]);
        assert!(err.contains("is not an apmatrix host state"), "{err}");
        let err = env.refused(&["host", "init"]);
        assert!(err.contains("use --force to replace it"), "{err}");
        assert_eq!(std::fs::read_to_string(&env.state).unwrap(), text);
    }
    env.ok(&["host", "init", "--force"]);
    env.load();
}

#[test]
fn host_init_from_a_description() {
    let env = Env::new();
    let desc = env.state.with_file_name("big.toml");
    std::fs::write(
        &desc,
        "name = \"two cards\"\nusage_domains = \"0-84\"\nmax_domain_id = 84\n[boot]\napmask = \"0x8\"\n[[card]]\nid = 0\ntype = \"CEX8C\"\n[[card]]\nid = 1\ntype = \"CEX7P\"\nconfig = false\n",
    )
    .unwrap();
    let out = env.ok(&["host", "init", "--from", desc.to_str().unwrap()]);
    assert!(out.contains("2 cards, 170 queues"), "{out}");
    let h = env.load();
    assert_eq!(h.apmask().iter().collect::<Vec<_>>(), vec![0]);
    std::fs::write(&desc, "usage_domains = \"0-300\"\n").unwrap();
    let err = env.refused(&["host", "init", "--force", "--from", desc.to_str().unwrap()]);
    assert!(err.contains("\"300\"") || err.contains("0-300"), "{err}");
}

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn concurrent_writers_lose_no_acknowledged_change() {
    let env = Env::new();
    let desc = env.state.with_file_name("grid.toml");
    let topology = Topology::synthetic(12, 12);
    std::fs::write(&desc, topology.to_toml()).unwrap();
    env.ok(&["host", "init", "--from", desc.to_str().unwrap()]);
    env.ok(&["mask", "set", "apmask", "0x"]);
    let mdevs: Vec<String> = (1..=8u128)
        .map(|i| Uuid::from_u128(i).to_string())
        .collect();
    for m in &mdevs {
        env.ok(&["mdev", "create", "--uuid", m]);
    }
    let acknowledged: Vec<Vec<(MatrixAxis, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = mdevs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let state = env.state.clone();
                scope.spawn(move || {
                    let mut rng = Lcg(i as u64 + 1);
                    let mut acked = Vec::new();
                    for _ in 0..200 {
                        let (flag, axis) = if rng.next(2) == 0 {
                            ("-a", MatrixAxis::Adapter)
                        } else {
                            ("-d", MatrixAxis::Domain)
                        };
                        let id = rng.next(12);
                        let out = run_at(&state, &["mdev", "assign", m, flag, &id.to_string()]);
                        match out.status.code() {
                            Some(0) => acked.push((axis, id)),
                            Some(1) => {
                                let err = String::from_utf8_lossy(&out.stderr);
                                assert!(
                                    err.starts_with("apmatrix: EADDRINUSE"),
                                    "unexpected refusal: {err}"
                                );
                            }
                            other => {
                                panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr))
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The final state loads (so it keeps every isolation invariant: the
    // loader refuses shared or host-owned APQNs) and has every
    // acknowledged assignment.
    let host = env.load();
    let mut total = 0;
    for (m, acked) in mdevs.iter().zip(&acknowledged) {
        let mdev = host.mdev(&m.parse().unwrap()).unwrap();
        for (axis, id) in acked {
            assert!(
                mdev.axis(*axis).contains(*id as u8),
                "mdev {m} lost {axis} {id}"
            );
            total += 1;
        }
    }
    assert!(
        total > 8,
        "the test should acknowledge assignments ({total})"
    );
    let apqns: usize = host.mdevs().map(|m| m.apqns().count()).sum();
    assert!(apqns <= 144);
}

#[test]
fn a_writer_killed_mid_write_leaves_a_state_that_loads() {
    let env = Env::new();
    // A large state makes each save take long enough to be interrupted.
    let mut host = Host::new(Topology::synthetic(256, 64), &SEED);
    host.set_mask(MaskKind::Apmask, apmatrix_model::Mask256::EMPTY)
        .unwrap();
    for i in 0..2000u128 {
        let m = Uuid::from_u128(i + 1);
        host.create_mdev(m).unwrap();
        host.assign(&m, MatrixAxis::Adapter, (i % 256) as u64)
            .unwrap();
        host.assign(&m, MatrixAxis::Domain, (i / 256) as u64)
            .unwrap();
    }
    std::fs::write(&env.state, serde_json::to_string(&host.to_state()).unwrap()).unwrap();
    let set = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_apmatrix"))
            .args([
                "--host",
                env.state.to_str().unwrap(),
                "mask",
                "set",
                "aqmask",
                value,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    assert!(set("-0x40").wait().unwrap().success());
    let dir = env.state.parent().unwrap().to_path_buf();
    let temporaries = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".tmp."))
    };
    // Each writer is stopped (SIGSTOP, waited for) where it is, then
    // classified while it cannot move: inside the write (its temporary file is there, the
    // rename not done) or outside it (before or after). Then it is killed.
    // Even rounds stop it at once (outside: it is still loading the state),
    // odd rounds once its temporary file appears (inside).
    let (mut inside, mut outside) = (0, 0);
    let mut round = 0;
    while round < 100 && (inside < 3 || outside < 3 || round < 20) {
        let before = load(&env.state).aqmask().contains(0x40);
        let value = if before { "-0x40" } else { "+0x40" };
        let mut child = set(value);
        if round % 2 == 1 {
            while !temporaries() && child.try_wait().unwrap().is_none() {}
        }
        // A child the loop above saw exit is reaped already: it finished.
        if child.try_wait().unwrap().is_none() {
            // SAFETY: kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
            // kill(2) only queues the signal: until the child has really
            // stopped it may still rename. Wait for the stop (or its exit),
            // leaving the child waitable (WNOWAIT) for the wait below.
            // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let flags = libc::WSTOPPED | libc::WEXITED | libc::WNOWAIT;
            // SAFETY: waitid(2) on our own child, not yet reaped, into
            // `info`, which outlives the call.
            let waited = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
            assert_eq!(waited, 0, "waitid: {}", std::io::Error::last_os_error());
        }
        let was_inside = temporaries();
        let _ = child.kill(); // SIGKILL, also of a stopped process
        let _ = child.wait();
        let loaded = load(&env.state);
        assert_eq!(loaded.mdev_count(), 2000, "round {round}");
        let after = loaded.aqmask().contains(0x40);
        if was_inside {
            inside += 1;
            assert_eq!(after, before, "round {round}: killed before its rename");
        } else {
            outside += 1;
        }
        round += 1;
    }
    assert!(
        inside > 0 && outside > 0,
        "kills inside the write {inside}, outside it {outside}"
    );
    // The next writer sweeps the temporary files killed writers left.
    assert!(set("-0x41").wait().unwrap().success());
    let leftovers: Vec<_> = std::fs::read_dir(env.state.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
