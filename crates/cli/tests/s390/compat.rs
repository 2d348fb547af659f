//! Where Debian's lszcrypt (2.35) prints other than v2.43, which apmatrix
//! follows: each difference of docs/lszcrypt.md as a rewrite of
//! apmatrix's output into what the older version prints, applied only
//! below the version that changed it.

use super::{Out, Scenario, Tools};

/// What an lszcrypt command line shows.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The device table; `all`: no DEVICE_IDS (every card, then the warning).
    Table {
        verbose: bool,
        all: bool,
    },
    Bus,
    Domains,
    /// `-s`, `-c`: the same in both versions.
    Other,
}

/// The kind of `args` (split on spaces): the first of -b/-c/-d/-s acts.
pub fn kind(args: &str) -> Kind {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut ids = false;
    let mut i = 0;
    while i < words.len() {
        match words[i] {
            "-b" | "--bus" => return Kind::Bus,
            "-d" | "--domains" => return Kind::Domains,
            "-s" | "--serial" | "-c" | "--capability" => return Kind::Other,
            "--" => ids |= i + 1 < words.len(),
            w if !w.starts_with('-') => ids = true,
            _ => {}
        }
        i += 1;
    }
    Kind::Table {
        verbose: words.contains(&"-V"),
        all: !ids,
    }
}

fn lines_map(text: &str, f: impl Fn(usize, &str) -> Option<String>) -> String {
    text.split_inclusive('\n')
        .enumerate()
        .filter_map(|(i, l)| f(i, l.strip_suffix('\n').unwrap_or(l)).map(|l| l + "\n"))
        .collect()
}

fn is_warning(line: &str) -> bool {
    line.starts_with("Warning: Default domain ")
}

/// QDEPTH (columns 63..69 of a -V row) plus one, as before v2.41.
fn depth_plus_one(line: &str) -> String {
    let Some(field) = line.get(63..69) else {
        return line.to_string();
    };
    let Ok(depth) = field.trim().parse::<u32>() else {
        return line.to_string();
    };
    format!(
        "{}{:>6}{}",
        &line[..63],
        format!("{:02}", depth + 1),
        &line[69..]
    )
}

/// `-b`'s domain lines as `0x%lx`, as before v2.42.
fn bus_line(line: &str) -> String {
    if let Some(v) = line.strip_prefix("ap_domain=") {
        if v == "-1 (not set)" {
            return "ap_domain=0xffffffffffffffff".into();
        }
        let hex = v.trim_end_matches(" (unavailable)");
        let n = u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap();
        return format!("ap_domain=0x{n:x}");
    }
    if let Some(v) = line.strip_prefix("ap_max_domain_id=0x") {
        return format!(
            "ap_max_domain_id=0x{:x}",
            u64::from_str_radix(v, 16).unwrap()
        );
    }
    line.to_string()
}

/// What lszcrypt `version` prints where v2.43 prints `out` for `args`, on
/// a tree with card devices or (`cards` false) without any.
pub fn older(version: (u32, u32), args: &str, cards: bool, out: &Out) -> Out {
    let before = |minor: u32| version < (2, minor);
    let mut o = out.clone();
    match kind(args) {
        Kind::Table { verbose, all } => {
            if all && !cards && before(42) && o.rc == 0 {
                return Out {
                    stdout: String::new(),
                    stderr: "lszcrypt: No crypto card devices found.\n".into(),
                    rc: 1,
                };
            }
            if verbose && before(41) {
                o.stdout = lines_map(&o.stdout, |i, l| {
                    Some(if i < 2 {
                        l.to_string()
                    } else {
                        depth_plus_one(l)
                    })
                });
            }
            if all && before(42) {
                o.stdout = lines_map(&o.stdout, |_, l| (!is_warning(l)).then(|| l.to_string()));
            }
        }
        Kind::Domains if before(42) => {
            o.stdout = lines_map(&o.stdout, |_, l| (!is_warning(l)).then(|| l.to_string()));
        }
        Kind::Bus if before(42) => {
            o.stdout = lines_map(&o.stdout, |_, l| Some(bus_line(l)));
        }
        _ => {}
    }
    o
}

/// apmatrix's message prefix as lszcrypt's.
fn as_lszcrypt(stderr: &str) -> String {
    lines_map(stderr, |_, l| {
        Some(match l.strip_prefix("apmatrix: ") {
            Some(rest) => format!("lszcrypt: {rest}"),
            None => l.to_string(),
        })
    })
}

/// Runs the real lszcrypt and `apmatrix lszcrypt` (on the state file and
/// on `--sysfs /sys`) with each of `args` after `setup`, and asserts:
/// apmatrix on the state file and on the tree print the same; the real
/// tool prints, byte for byte, what apmatrix does, rewritten by [`older`];
/// and the rewrite changes something exactly where the outputs differ.
/// Returns the argument lists whose outputs differ by design.
pub fn compare_lszcrypt(
    tools: &Tools,
    s: &Scenario,
    setup: &str,
    cards: bool,
    args: &[&str],
) -> Vec<String> {
    let mut cases = Vec::new();
    for a in args {
        cases.push(format!("real lszcrypt {a}"));
        cases.push(format!("apmatrix lszcrypt {a}"));
        cases.push(format!("apmatrix lszcrypt --sysfs /sys {a}"));
    }
    let outs = s.run(tools, setup, &cases);
    let mut differing = Vec::new();
    for (a, o) in args.iter().zip(outs.chunks(3)) {
        let (real, state, tree) = (&o[0], &o[1], &o[2]);
        assert_eq!(
            state, tree,
            "lszcrypt {a}: the state file and --sysfs /sys differ"
        );
        let mut ours = state.clone();
        ours.stderr = as_lszcrypt(&ours.stderr);
        let expected = older(tools.version, a, cards, &ours);
        assert_eq!(
            real.stdout, expected.stdout,
            "lszcrypt {a}: stdout\nreal:\n{}\napmatrix:\n{}",
            real.stdout, ours.stdout
        );
        assert_eq!(real.stderr, expected.stderr, "lszcrypt {a}: stderr");
        assert_eq!(real.rc, expected.rc, "lszcrypt {a}: exit status");
        if expected != ours {
            assert_ne!(
                *real, ours,
                "lszcrypt {a}: a documented difference that is not there"
            );
            differing.push(a.to_string());
        }
    }
    differing
}

#[test]
fn rewrites_are_the_documented_ones() {
    let v235 = (2, 35);
    let row = "04       CEX5P EP11-Coproc online            0        0     11     08 S----XN-F- cex4card   ";
    assert_eq!(depth_plus_one(row), row.replace("     08 S", "     09 S"));
    assert_eq!(bus_line("ap_domain=0x04"), "ap_domain=0x4");
    assert_eq!(bus_line("ap_domain=0x07 (unavailable)"), "ap_domain=0x7");
    assert_eq!(
        bus_line("ap_domain=-1 (not set)"),
        "ap_domain=0xffffffffffffffff"
    );
    assert_eq!(bus_line("ap_max_domain_id=0x0f"), "ap_max_domain_id=0xf");
    assert_eq!(
        kind("-V .4"),
        Kind::Table {
            verbose: true,
            all: false
        }
    );
    assert_eq!(
        kind("--queueonly -V"),
        Kind::Table {
            verbose: true,
            all: true
        }
    );
    assert_eq!(
        kind("-- -1"),
        Kind::Table {
            verbose: false,
            all: false
        }
    );
    assert_eq!(kind("-d -b"), Kind::Domains);
    let header = Out {
        stdout: "H\n-\nWarning: Default domain 0x07 is not available.\n".into(),
        stderr: String::new(),
        rc: 0,
    };
    assert_eq!(older(v235, "", true, &header).stdout, "H\n-\n");
    assert_eq!(older(v235, "5", true, &header), header);
    assert_eq!(older(v235, "", false, &header).rc, 1);
    assert_eq!(older((2, 43), "", false, &header), header);
}
