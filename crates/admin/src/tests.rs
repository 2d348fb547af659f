use super::*;
use apmatrix_model::{CpuModel, Host, MaskKind, MatrixAxis, SEED};
use uuid::Uuid;

/// The seed document's three guests as a configuration.
pub const SEED_GUESTS: &str = r#"
[masks]
derive = "adapters"      # adapters 05 and 06 leave the host: apmask -5,-6

[[mdev]]
name = "guest1"
adapters = "5,6"
domains = "4,0xab"
control_domains = "4,0xab"
guest = "Guest1"

[[mdev]]
name = "guest2"
adapters = "5"
domains = "0x47,0xff"
guest = "Guest2"

[[mdev]]
name = "guest3"
adapters = "6"
domains = "0x47,0xff"
guest = "Guest3"
"#;

pub(crate) fn wanted(text: &str) -> Wanted {
    Config::from_toml(text).unwrap().resolve().unwrap()
}

#[test]
fn the_seed_guests_apply_in_one_go_and_a_second_apply_changes_nothing() {
    let w = wanted(SEED_GUESTS);
    let mut root = EmulatedRoot {
        host: Host::seed_example(),
    };
    let applied = apply(&mut root, &w, false).unwrap();
    // apmask, 3 creates, 2+2+2, 1+2, 1+2 assignments
    assert_eq!(
        applied.steps.len(),
        1 + 3 + 6 + 3 + 3,
        "{:#?}",
        applied.steps
    );
    assert_eq!(
        applied.steps[0].shell("/sys"),
        format!("echo 0xf9{} > /sys/bus/ap/apmask", "f".repeat(62))
    );
    let again = apply(&mut root, &w, false).unwrap();
    assert!(again.steps.is_empty(), "{:#?}", again.steps);
    // the guests see what the document shows (with the card-type correction)
    let host = &mut root.host;
    for m in &w.mdevs {
        host.start_guest(
            m.guest.as_deref().unwrap(),
            Some(m.uuid),
            CpuModel::default(),
        )
        .unwrap();
    }
    let view = |g: &str| host.guest_view(g).unwrap().lszcrypt();
    let g1 = view("Guest1");
    for line in ["05.0004", "05.00ab", "06.0004", "06.00ab"] {
        assert!(g1.contains(line), "{g1}");
    }
    let g2 = view("Guest2");
    assert!(
        g2.lines()
            .any(|l| l.starts_with("05 ") && l.contains("CEX5C") && l.contains("CCA-Coproc")),
        "{g2}"
    );
    assert!(
        g2.contains("05.0047") && g2.contains("05.00ff") && !g2.contains("06"),
        "{g2}"
    );
    let g3 = view("Guest3");
    assert!(
        g3.lines()
            .any(|l| l.starts_with("06 ") && l.contains("CEX5A") && l.contains("Accelerator")),
        "{g3}"
    );
}

/// A root that refuses its n-th write (1-based) as the kernel would refuse one.
struct Refusing<R> {
    inner: R,
    refuse_at: usize,
    writes: usize,
}

impl<R: SysfsRoot> SysfsRoot for Refusing<R> {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.inner.read(path)
    }
    fn write(&mut self, path: &str, data: &str) -> Result<(), WriteFailure> {
        self.writes += 1;
        if self.writes == self.refuse_at {
            return Err(WriteFailure {
                errno: 16,
                message: format!("{path}: Device or resource busy"),
            });
        }
        self.inner.write(path, data)
    }
    fn list(&self, path: &str) -> std::io::Result<Vec<String>> {
        self.inner.list(path)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_link(&self, path: &str) -> std::io::Result<String> {
        self.inner.read_link(path)
    }
}

#[test]
fn a_refused_step_rolls_back_to_the_exact_previous_state() {
    // Start from a host that already has something, so undo has work of
    // every kind: unassignments, mask bits, creates, assignments.
    let start = seed_guests_host();
    // Guest1 loses adapter 5, Guest3 domain 0xff, a new Guest4 gets 06.00ff,
    // and the pools switch from whole adapters to whole domains.
    let changed = SEED_GUESTS
        .replace("derive = \"adapters\"", "derive = \"domains\"")
        .replace("adapters = \"5,6\"", "adapters = \"6\"")
        .replace("domains = \"0x47,0xff\"\nguest = \"Guest3\"", "domains = \"0x47\"\nguest = \"Guest3\"")
        + "\n[[mdev]]\nname = \"guest4\"\nadapters = \"6\"\ndomains = \"0xff\"\nguest = \"Guest4\"\n";
    let w = wanted(&changed);
    let plan = plan(
        &w,
        &observe(&EmulatedRoot {
            host: start.clone(),
        })
        .unwrap(),
    );
    let kinds: Vec<&str> = plan
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap())
        .collect();
    for kind in [
        "unassign_adapter",
        "unassign_domain",
        "aqmask",
        "apmask",
        "create",
        "assign_adapter",
        "assign_domain",
    ] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let steps = plan.len();
    for refuse_at in 1..=steps {
        let mut root = Refusing {
            inner: EmulatedRoot {
                host: start.clone(),
            },
            refuse_at,
            writes: 0,
        };
        match apply(&mut root, &w, false) {
            Err(ApplyError::RolledBack { step, done, .. }) => {
                assert_eq!((step, done), (refuse_at, refuse_at - 1));
            }
            other => panic!("refusing write {refuse_at}: {other:?}"),
        }
        // the whole host, not just what the plan touched
        assert_eq!(root.inner.host, start, "refusing write {refuse_at}");
        assert_eq!(root.inner.host.to_state(), start.to_state());
    }
}

/// The seed host with the three guests' mdevs applied.
fn seed_guests_host() -> Host {
    let mut root = EmulatedRoot {
        host: Host::seed_example(),
    };
    apply(&mut root, &wanted(SEED_GUESTS), false).unwrap();
    root.host
}

#[test]
fn check_reports_every_problem_at_once() {
    let text = r#"
[[mdev]]
name = "a"
adapters = "4,5"
domains = "4"
guest = "G"

[[mdev]]
name = "b"
adapters = "5,0x20"
domains = "4"
guest = "G"

[[mdev]]
name = "c"
control_domains = "4"
"#;
    let seen = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    let problems = check(&wanted(text), &seen);
    let all = problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "guest G is given mdev a",
        "At least one usage domain must be specified",
        "APQN 04.0004 05.0004 are reserved for the host",
        "APQN 05.0004 already in use by mdev a",
        "there is no card 20",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert!(problems.iter().all(|p| !p.fix.is_empty()));
    // errors come first
    let first_warning = problems
        .iter()
        .position(|p| p.severity == Severity::Warning)
        .unwrap();
    assert!(problems[..first_warning]
        .iter()
        .all(|p| p.severity == Severity::Error));
    // and apply writes nothing
    let mut root = EmulatedRoot {
        host: Host::seed_example(),
    };
    assert!(matches!(
        apply(&mut root, &wanted(text), false),
        Err(ApplyError::Invalid(_))
    ));
    assert_eq!(root.host, Host::seed_example());
}

#[test]
fn bad_configuration_values_are_named() {
    let err = Config::from_toml("[[mdev]]\nname = \"x\"\nadapters = \"5,,6\"\n")
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(err.0.contains("adapters \"5,,6\""), "{}", err.0);
    let err = Config::from_toml("[[mdev]]\nadapters = \"5\"\n")
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(err.0.contains("uuid or a name"), "{}", err.0);
    let err = Config::from_toml("[[mdev]]\nname = \"x\"\nadapter = \"5\"\n").unwrap_err();
    assert!(err.0.contains("adapter"), "{}", err.0);
    // the same name always gives the same UUID
    assert_eq!(
        wanted("[[mdev]]\nname = \"x\"\n").mdevs[0].uuid,
        wanted("[[mdev]]\nname = \"x\"\nadapters = \"5\"\n").mdevs[0].uuid
    );
}

#[test]
fn matrix_forms_parse() {
    let m = parse_matrix("05.0004\n06.00ab\n", "0004\n").unwrap();
    assert_eq!(m.adapters.to_list(), "5-6");
    assert_eq!(m.domains.to_list(), "4,171");
    assert_eq!(m.control_domains.to_list(), "4");
    assert_eq!(parse_matrix("05.\n", "").unwrap().adapters.to_list(), "5");
    assert_eq!(
        parse_matrix(".00ff\n", "").unwrap().domains.to_list(),
        "255"
    );
    assert!(parse_matrix("junk\n", "").is_none());
}

/// Every readable attribute and every name under `dir`, links not followed:
/// a full dump of what a sysfs tree shows.
fn dump(dir: &std::path::Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let kind = e.file_type().unwrap();
        if kind.is_symlink() {
            out.push(format!(
                "{} -> {}",
                path.display(),
                std::fs::read_link(&path).unwrap().display()
            ));
        } else if kind.is_dir() {
            out.push(format!("{}/", path.display()));
            dump(&path, out);
        } else {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("<{e}>"));
            out.push(format!("{} = {text:?}", path.display()));
        }
    }
}

#[test]
fn a_refused_step_through_a_mounted_tree_leaves_the_tree_as_it_was() {
    if !apmatrix_fuse::usable_for_tests() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = seed_guests_host();
    let _session =
        apmatrix_fuse::spawn(apmatrix_fuse::MemoryBackend::new(start), dir.path()).unwrap();
    let mut before = Vec::new();
    dump(dir.path(), &mut before);
    assert!(before.len() > 300, "{}", before.len());
    let changed = SEED_GUESTS
        .replace("derive = \"adapters\"", "derive = \"domains\"")
        .replace("adapters = \"5,6\"", "adapters = \"6\"")
        + "\n[[mdev]]\nname = \"guest4\"\nadapters = \"4\"\ndomains = \"5\"\n";
    let w = wanted(&changed);
    let steps = plan(&w, &observe(&DirRoot::new(dir.path())).unwrap()).len();
    assert!(steps >= 5, "{steps}");
    for refuse_at in [1, steps / 2, steps] {
        let mut root = Refusing {
            inner: DirRoot::new(dir.path()),
            refuse_at,
            writes: 0,
        };
        assert!(matches!(
            apply(&mut root, &w, false),
            Err(ApplyError::RolledBack { .. })
        ));
        let mut after = Vec::new();
        dump(dir.path(), &mut after);
        assert_eq!(after, before, "refusing write {refuse_at} of {steps}");
    }
    // and without a refusal it applies, then has nothing left to do
    apply(&mut DirRoot::new(dir.path()), &w, false).unwrap();
    assert!(apply(&mut DirRoot::new(dir.path()), &w, false)
        .unwrap()
        .steps
        .is_empty());
}

#[test]
fn guest_views_are_predicted_from_what_sysfs_shows() {
    let seen = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    let views = predict::guest_views(&seen, &wanted(SEED_GUESTS)).unwrap();
    let names: Vec<&str> = views.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(names, ["Guest1", "Guest2", "Guest3"]);
    // the same views as on the emulated host itself
    let mut root = EmulatedRoot {
        host: Host::seed_example(),
    };
    apply(&mut root, &wanted(SEED_GUESTS), false).unwrap();
    for (guest, view) in &views {
        let m = wanted(SEED_GUESTS)
            .mdevs
            .into_iter()
            .find(|m| m.guest.as_deref() == Some(guest))
            .unwrap();
        let mut h = root.host.clone();
        h.start_guest(guest, Some(m.uuid), CpuModel::default())
            .unwrap();
        assert_eq!(&h.guest_view(guest).unwrap().lszcrypt(), view, "{guest}");
    }
    assert!(
        views[1].1.contains("05          CEX5C CCA-Coproc"),
        "{}",
        views[1].1
    );
}

#[test]
fn persistent_checks_match_ap_checks() {
    let etc = tempfile::tempdir().unwrap();
    let text = SEED_GUESTS.replace("guest = \"Guest2\"", "guest = \"Guest2\"\nautostart = true");
    let w = wanted(&text);
    let g2 = &w.mdevs[1];
    let seen = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    let active = (seen.apmask, seen.aqmask);
    // no rule: the active masks (all host's) apply, as in ap-check
    let p = persistent::check_persistent(&w, etc.path(), active);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("APQN 5.71 5.255 is not defined for vfio_ap-passthrough use by the persistent ap bus mask settings"), "{}", p[0]);
    // a rule that frees adapters 5 and 6, and another autostart mdev on 05.0047
    std::fs::create_dir_all(etc.path().join("udev/rules.d")).unwrap();
    let (ap, aq) = target_masks(&w, &seen);
    std::fs::write(
        etc.path().join("udev/rules.d/41-ap.rules"),
        export::udev_rule(ap, aq),
    )
    .unwrap();
    assert_eq!(
        persistent::rule_masks(&export::udev_rule(ap, aq)),
        (Some(ap), Some(aq))
    );
    std::fs::create_dir_all(etc.path().join("mdevctl.d/matrix")).unwrap();
    let other = Uuid::from_u128(9);
    std::fs::write(
        etc.path().join(format!("mdevctl.d/matrix/{other}")),
        r#"{"mdev_type":"vfio_ap-passthrough","start":"auto","attrs":[{"assign_adapter":"5"},{"assign_domain":"0x47"}]}"#,
    )
    .unwrap();
    // its own stored config is not a clash
    std::fs::write(
        etc.path().join(format!("mdevctl.d/matrix/{}", g2.uuid)),
        export::mdevctl_json(g2),
    )
    .unwrap();
    let p = persistent::check_persistent(&w, etc.path(), active);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message
            .contains(&format!("APQN 5.71 is defined for autostart by {other}")),
        "{}",
        p[0]
    );
}

/// Every kind of problem check reports, byte for byte, on two hosts: the
/// seed host with an mdev the configuration leaves alone, and a host
/// without APXA (ids up to 63 and 15) with a CEX3 card.
#[test]
fn check_messages_are_as_recorded() {
    let mut seed = Host::seed_example();
    let alone = Uuid::from_u128(0x77);
    seed.write_mask(MaskKind::Apmask, b"-5,-6").unwrap();
    seed.create_mdev(alone).unwrap();
    seed.assign(&alone, MatrixAxis::Adapter, 5).unwrap();
    seed.assign(&alone, MatrixAxis::Domain, 0x47).unwrap();
    let on_seed = r#"
[masks]
apmask = "0-5,7-255"

[[mdev]]
name = "a"
adapters = "4,5"
domains = "4"
guest = "G"

[[mdev]]
name = "b"
adapters = "5,6,0x20"
domains = "4,0x47,0x99"
control_domains = "0x98"
guest = "G"

[[mdev]]
name = "b"
adapters = "6"
domains = "4"

[[mdev]]
name = "c"
control_domains = "4"
"#;
    let small = small_host(false);
    let on_small = r#"
[masks]
apmask = "0"

[[mdev]]
name = "d"
adapters = "1,2,0x40"
domains = "1,0x10"
control_domains = "0x11"
"#;
    let mut all = String::new();
    for (host, text) in [(seed, on_seed), (Host::new(small, &SEED), on_small)] {
        let seen = observe(&EmulatedRoot { host }).unwrap();
        for p in check(&wanted(text), &seen) {
            all.push_str(&p.to_string());
            all.push('\n');
        }
        all.push_str("--\n");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check-messages.txt");
    if std::env::var_os("APMATRIX_BLESS").is_some() {
        std::fs::write(&path, &all).unwrap();
    }
    assert_eq!(all, std::fs::read_to_string(&path).unwrap());
}

/// check asks the model under the host's own profile: with OLD's rules
/// (availability = bound to vfio_ap, masks may take queues back) the same
/// configuration on the same host gets other verdicts than under the seed's.
#[test]
fn check_follows_the_hosts_profile() {
    use apmatrix_model::profile::OLD;
    let small = small_host(true);
    let alone = Uuid::from_u128(0x77);
    let text = r#"
[masks]
apmask = "0,2"

[[mdev]]
name = "d"
adapters = "1"
domains = "1"
"#;
    let mut verdicts = Vec::new();
    let mut warnings = Vec::new();
    for profile in [&SEED, &OLD] {
        let mut host = Host::new(small.clone(), profile);
        host.write_mask(MaskKind::Apmask, b"0").unwrap();
        host.create_mdev(alone).unwrap();
        host.assign(&alone, MatrixAxis::Adapter, 2).unwrap();
        host.assign(&alone, MatrixAxis::Domain, 3).unwrap();
        let seen = observe(&EmulatedRoot { host }).unwrap();
        assert_eq!(seen.profile.name, profile.name);
        let problems = check(&wanted(text), &seen);
        let of = |severity| {
            problems
                .iter()
                .filter(|p| p.severity == severity)
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
        };
        verdicts.push(of(Severity::Error));
        warnings.push(of(Severity::Warning));
    }
    // seed: the CEX3 queue is free per the masks (no error), but apmask
    // would take 02.0003 from the mdev left alone.
    assert_eq!(verdicts[0].len(), 1, "{:?}", verdicts[0]);
    assert!(verdicts[0][0].contains("would give the host APQN 02.0003"));
    // old: masks may take it back, and do, leaving it to the guest too:
    // host and guest would share it, so an error all the same (apply must
    // not do it); the CEX3 queue is bound to no driver, so it cannot be
    // assigned.
    assert!(warnings.iter().flatten().all(|w| !w.contains("02.0003")));
    assert!(verdicts[0].iter().all(|w| !w.contains("accepts that")));
    assert_eq!(verdicts[1].len(), 2, "{:?}", verdicts[1]);
    assert!(
        verdicts[1]
            .iter()
            .any(|w| w.contains("APQN 02.0003") && w.contains("this kernel (old) accepts that")),
        "{:?}",
        verdicts[1]
    );
    assert!(
        verdicts[1]
            .iter()
            .any(|v| v.contains("APQN 01.0001 is not bound to the vfio_ap driver (EADDRNOTAVAIL)")),
        "{:?}",
        verdicts[1]
    );
}

/// OLD refuses every assign and unassign while a guest uses the mdev, and
/// its sysfs does not tell which are in use: an apply that meets the EBUSY
/// undoes what it did and says what to do; once the guest is stopped the
/// same apply goes through.
#[test]
fn apply_on_old_stops_at_a_running_guest_and_says_so() {
    use apmatrix_model::profile::OLD;
    let mut root = EmulatedRoot {
        host: Host::new(apmatrix_model::Topology::seed_example(), &OLD),
    };
    let seed = wanted(SEED_GUESTS);
    apply(&mut root, &seed, false).unwrap();
    let mut host = root.host.clone();
    let guest1 = seed.mdevs[0].uuid; // the first [[mdev]], guest1
    host.start_guest("Guest1", Some(guest1), CpuModel::default())
        .unwrap();
    let mut root = EmulatedRoot { host: host.clone() };
    let grown = SEED_GUESTS.replacen("domains = \"4,0xab\"", "domains = \"4,5,0xab\"", 1);
    let err = apply(&mut root, &wanted(&grown), false).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ApplyError::RolledBack { .. }), "{text}");
    assert!(text.contains("EBUSY"), "{text}");
    assert!(
        text.contains("the old kernel changes no mdev while a guest uses it: stop the guest"),
        "{text}"
    );
    assert_eq!(root.host, host, "nothing changed");
    root.host.stop_guest("Guest1").unwrap();
    apply(&mut root, &wanted(&grown), false).unwrap();
}

/// On a kernel with `ap_config` (NEW) a plan changes each mdev in whole-
/// matrix writes: the seed configuration is one `ap_config` per mdev; a
/// change that moves an APQN from one mdev to another first shrinks the
/// giver, so no write is refused; and the result reads back as asked.
#[test]
fn plans_write_whole_matrices_where_the_kernel_has_ap_config() {
    use apmatrix_model::profile::NEW;
    let mut root = EmulatedRoot {
        host: Host::new(apmatrix_model::Topology::seed_example(), &NEW),
    };
    let w = wanted(SEED_GUESTS);
    let applied = apply(&mut root, &w, false).unwrap();
    let configs: Vec<&Step> = applied
        .steps
        .iter()
        .filter(|s| s.path.ends_with("/ap_config"))
        .collect();
    assert_eq!(configs.len(), 3, "{:#?}", applied.steps);
    assert!(applied.steps.iter().all(|s| !s.path.contains("assign_")));
    for step in &configs {
        assert_eq!(step.value.len(), 200, "three masks, ap-check's form");
    }
    assert!(plan(&w, &observe(&root).unwrap()).is_empty());
    // guest2 gives 05.00ff to a new guest4.
    let moved = SEED_GUESTS.replacen("domains = \"0x47,0xff\"", "domains = \"0x47\"", 1)
        + "\n[[mdev]]\nname = \"guest4\"\nadapters = \"5\"\ndomains = \"0xff\"\n";
    let w2 = wanted(&moved);
    let steps = plan(&w2, &observe(&root).unwrap());
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| s.path.rsplit('/').next().unwrap())
        .collect();
    // guest2 shrinks first, then guest4 is made and gets its matrix.
    assert_eq!(kinds, ["ap_config", "create", "ap_config"], "{steps:#?}");
    apply(&mut root, &w2, false).unwrap();
    assert!(plan(&w2, &observe(&root).unwrap()).is_empty());
    // The seed host plans per attribute, as before.
    let seed = observe(&EmulatedRoot {
        host: Host::seed_example(),
    })
    .unwrap();
    assert!(plan(&w, &seed)
        .iter()
        .all(|s| !s.path.ends_with("/ap_config")));
}

/// A root that does not say which kernel it is (as a real /sys or a
/// mounted tree): observe tells the generation from the attributes present.
#[test]
fn the_generation_is_told_from_the_attributes() {
    struct Anonymous(EmulatedRoot);
    impl SysfsRoot for Anonymous {
        fn read(&self, path: &str) -> std::io::Result<String> {
            self.0.read(path)
        }
        fn write(&mut self, path: &str, data: &str) -> Result<(), WriteFailure> {
            self.0.write(path, data)
        }
        fn list(&self, path: &str) -> std::io::Result<Vec<String>> {
            self.0.list(path)
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn read_link(&self, path: &str) -> std::io::Result<String> {
            self.0.read_link(path)
        }
    }
    use apmatrix_model::profile::{DYN, NEW, OLD};
    for (profile, seen_as) in [
        (&OLD, "old"),
        (&SEED, "seed"),
        (&DYN, "seed"),
        (&NEW, "new"),
    ] {
        let root = Anonymous(EmulatedRoot {
            host: Host::new(apmatrix_model::Topology::seed_example(), profile),
        });
        assert_eq!(root.kernel_profile(), None);
        assert_eq!(
            observe(&root).unwrap().profile.name,
            seen_as,
            "{}",
            profile.name
        );
    }
}

/// A small host: a CEX3C (hwtype 9) and a CEX7C, usage and control domains
/// 0-3; without APXA its ids stop at 63 and 15.
fn small_host(apxa: bool) -> apmatrix_model::Topology {
    let text = format!(
        "name = \"small\"\napxa = {apxa}\nusage_domains = \"0-3\"\ncontrol_domains = \"0-3\"\n\n\
         [[card]]\nid = 1\ntype = \"CEX3C\"\n\n[[card]]\nid = 2\ntype = \"CEX7C\"\n"
    );
    apmatrix_model::Topology::from_toml(&text).unwrap()
}
