use super::*;

fn ids(m: &Mask256) -> Vec<u8> {
    m.iter().collect()
}

fn abs(s: &str) -> Result<Mask256, SyntaxError> {
    parse_mask(s.as_bytes(), &Mask256::FULL)
}

// --- absolute form, kernel.md §2 -------------------------------------

#[test]
fn absolute_is_left_aligned() {
    assert_eq!(ids(&abs("0x41").unwrap()), vec![1, 7]);
    assert_eq!(ids(&abs("0x8").unwrap()), vec![0]);
    assert_eq!(ids(&abs("0x41\n").unwrap()), vec![1, 7]);
}

#[test]
fn absolute_prefixes() {
    let expect = abs("0x41").unwrap();
    assert_eq!(abs("x41").unwrap(), expect);
    assert_eq!(abs("41").unwrap(), expect);
    let err = abs("0X41").unwrap_err();
    assert_eq!(err.offset, 1);
    assert!(err.rule.contains("lower-case 0x"), "{err}");
    // hex digits of either case
    assert_eq!(abs("0xAB").unwrap(), abs("0xab").unwrap());
}

#[test]
fn absolute_empty_forms_give_zero_mask() {
    for s in ["", "\n", "0x", "0x\n", "x", "0"] {
        assert_eq!(abs(s).unwrap(), Mask256::EMPTY, "{s:?}");
    }
}

#[test]
fn absolute_full_length_and_overflow() {
    let full = format!("0x{}", "f".repeat(64));
    assert_eq!(abs(&full).unwrap(), Mask256::FULL);
    assert_eq!(abs(&format!("{full}\n")).unwrap(), Mask256::FULL);
    let long = format!("0x{}", "f".repeat(65));
    let err = abs(&long).unwrap_err();
    assert!(err.rule.contains("more than 64 hex digits"), "{err}");
}

#[test]
fn absolute_rejections() {
    for s in [
        "0x41,", "0x41 ", " 0x41", "0x41\n\n", "0x4g", "0x41\nx", "-", "0xx1",
    ] {
        // "-" alone is relative; everything else absolute
        assert!(abs(s).is_err(), "{s:?} should be EINVAL");
    }
    assert!(abs("0x41\n\n")
        .unwrap_err()
        .rule
        .contains("one trailing newline"));
}

#[test]
fn parsing_stops_at_nul() {
    assert_eq!(
        parse_mask(b"0x41\0garbage", &Mask256::EMPTY).unwrap(),
        abs("0x41").unwrap()
    );
    assert_eq!(parse_kstrtoul(b"5\0x").unwrap(), 5);
}

// --- seed document examples ------------------------------------------

#[test]
fn seed_apmask_example_leaves_0_and_6_to_vfio_ap() {
    // "0x7dff..." : every bit but 0 and 6 is set.
    let m = abs(&format!("0x7dff{}", "f".repeat(60))).unwrap();
    let cleared: Vec<u8> = m.complement().iter().collect();
    assert_eq!(cleared, vec![0, 6]);
}

#[test]
fn seed_relative_example() {
    // Starting from the default all-ones mask: +0,-6,+0x47,-0xf0.
    let m = parse_mask(b"+0,-6,+0x47,-0xf0", &Mask256::FULL).unwrap();
    let cleared: Vec<u8> = m.complement().iter().collect();
    assert_eq!(cleared, vec![6, 0xf0]);
    // from empty: exactly 0 and 0x47
    let m = parse_mask(b"+0,-6,+0x47,-0xf0", &Mask256::EMPTY).unwrap();
    assert_eq!(ids(&m), vec![0, 0x47]);
}

#[test]
fn seed_walkthrough_forms_agree() {
    let rel = parse_mask(b"-5,-6", &Mask256::FULL).unwrap();
    let absolute = abs(&format!("0xf9{}", "f".repeat(62))).unwrap();
    assert_eq!(rel, absolute);
    let rel = parse_mask(b"-4,-0x47,-0xab,-0xff", &Mask256::FULL).unwrap();
    let absolute =
        abs("0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe").unwrap();
    assert_eq!(rel, absolute);
}

// --- relative form ----------------------------------------------------

#[test]
fn relative_kernel_examples() {
    let e = Mask256::EMPTY;
    assert_eq!(
        ids(&parse_mask(b"+0-15", &e).unwrap()),
        (0..=15).collect::<Vec<u8>>()
    );
    assert_eq!(
        parse_mask(b"-0x47", &Mask256::FULL).unwrap().complement(),
        Mask256::single(71)
    );
    assert_eq!(ids(&parse_mask(b"+010", &e).unwrap()), vec![8]);
    assert_eq!(ids(&parse_mask(b"+1,,+2\n", &e).unwrap()), vec![1, 2]);
    let m = parse_mask(b"+0-255,-128", &e).unwrap();
    assert_eq!(m.count(), 255);
    assert!(!m.contains(128));
    assert_eq!(ids(&parse_mask(b"+0X1f", &e).unwrap()), vec![31]);
    assert_eq!(ids(&parse_mask(b"+1\n+2", &e).unwrap()), vec![1, 2]);
    assert_eq!(
        ids(&parse_mask(b"-1-2", &Mask256::range(0, 3)).unwrap()),
        vec![0, 3]
    );
}

#[test]
fn relative_kernel_rejections() {
    for s in [
        "+08", "+1 ,+2", "+3-1", "+256", "+1-", "+-1", "+1,x", "+", "-", "+0x", "+1-256", "+1;+2",
        "+0x100",
    ] {
        assert!(parse_mask(s.as_bytes(), &Mask256::EMPTY).is_err(), "{s:?}");
    }
    // a leading space makes it the absolute form, which rejects it too
    assert!(parse_mask(b" +1", &Mask256::EMPTY).is_err());
}

#[test]
fn relative_is_all_or_nothing() {
    let base = Mask256::range(0, 3);
    assert!(parse_mask(b"-0,-1,+999", &base).is_err());
    // the caller's mask is untouched by construction (returned by value)
    assert_eq!(base, Mask256::range(0, 3));
}

#[test]
fn relative_huge_numbers_wrap_like_simple_strtoul() {
    // 2^64 wraps to 0, which is a valid bit
    assert_eq!(
        ids(&parse_mask(b"+18446744073709551616", &Mask256::EMPTY).unwrap()),
        vec![0]
    );
    assert!(parse_mask(b"+18446744073709551615", &Mask256::EMPTY).is_err());
}

#[test]
fn simple_strtoul_prefixes() {
    assert_eq!(simple_strtoul(b"0x1fz"), (31, 4));
    assert_eq!(simple_strtoul(b"0xg"), (0, 1)); // octal 0, stops at x
    assert_eq!(simple_strtoul(b"017"), (15, 3));
    assert_eq!(simple_strtoul(b"08"), (0, 1));
    assert_eq!(simple_strtoul(b"x"), (0, 0));
    assert_eq!(simple_strtoul(b""), (0, 0));
}

// --- boot parameters --------------------------------------------------

#[test]
fn boot_parameter_example() {
    // ap.apmask=0xffff ap.aqmask=0x40: adapters 0-15 x domain 1
    assert_eq!(parse_boot_mask("0xffff").unwrap(), Mask256::range(0, 15));
    assert_eq!(ids(&parse_boot_mask("0x40").unwrap()), vec![1]);
    // relative terms apply to the cleared mask
    assert_eq!(ids(&parse_boot_mask("+3,+5").unwrap()), vec![3, 5]);
    assert_eq!(parse_boot_mask("-3").unwrap(), Mask256::EMPTY);
    assert!(parse_boot_mask("0xzz").is_err());
}

// --- kstrtoul ---------------------------------------------------------

#[test]
fn kstrtoul_accepts() {
    for (s, v) in [
        ("5", 5u64),
        ("5\n", 5),
        ("+5", 5),
        ("0x1f", 31),
        ("0X1F", 31),
        ("010", 8),
        ("0", 0),
        ("0\n", 0),
        ("255", 255),
        ("18446744073709551615", u64::MAX),
        ("0xab\n", 0xab),
    ] {
        assert_eq!(parse_kstrtoul(s.as_bytes()), Ok(v), "{s:?}");
    }
}

#[test]
fn kstrtoul_rejects() {
    for s in [
        "", "\n", " 5", "5 ", "-1", "0x", "08", "5\n\n", "+", "++5", "5,6", "0x\n", "abc", "1e3",
    ] {
        assert!(
            matches!(parse_kstrtoul(s.as_bytes()), Err(NumberError::Invalid(_))),
            "{s:?}"
        );
    }
    assert_eq!(
        parse_kstrtoul(b"18446744073709551616"),
        Err(NumberError::Overflow)
    );
    assert_eq!(
        parse_kstrtoul(b"0x10000000000000000"),
        Err(NumberError::Overflow)
    );
    let NumberError::Invalid(e) = parse_kstrtoul(b"08").unwrap_err() else {
        panic!()
    };
    assert!(e.rule.contains("octal"), "{e}");
}

// --- create ------------------------------------------------------------

#[test]
fn create_uuid_forms() {
    let u = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";
    assert_eq!(parse_create_uuid(u.as_bytes()).unwrap().to_string(), u);
    assert!(parse_create_uuid(format!("{u}\n").as_bytes()).is_ok());
    // the 37th byte is not inspected by the mdev core
    assert!(parse_create_uuid(format!("{u}x").as_bytes()).is_ok());
    let upper = u.to_uppercase();
    assert_eq!(
        parse_create_uuid(upper.as_bytes()).unwrap().to_string(),
        u,
        "either case, printed lower-case"
    );
    for bad in [
        "",
        "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c",
        "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4\n\n",
        "669d9b23xfe1b-4ecd-be08-e42dc3f5d3c4",
        "669d9b23-fe1b-4ecd-be08-e42dc3f5d3cg",
        "{69d9b23-fe1b-4ecd-be08-e42dc3f5d3c}",
        "669d9b23fe1b4ecdbe08e42dc3f5d3c4\n\n\n\n",
    ] {
        assert!(parse_create_uuid(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

// --- id lists ----------------------------------------------------------

#[test]
fn id_lists() {
    assert_eq!(
        parse_id_list("4-6, 0x47,0xab ,255").unwrap(),
        vec![4, 5, 6, 71, 171, 255]
    );
    assert_eq!(parse_id_list("").unwrap(), Vec::<u64>::new());
    assert_eq!(parse_id_list("6,5").unwrap(), vec![6, 5]);
    assert_eq!(parse_id_list("300").unwrap(), vec![300]);
    for bad in [
        "1,,2", "x", "5-3", "0-256", "1-", "-1", "0x", "1 2", "+5", "0x+5", "1-+5",
    ] {
        let e = parse_id_list(bad).unwrap_err();
        assert_eq!(e.list, bad);
    }
    assert!(parse_id_set("300").is_err());
    assert_eq!(parse_id_set("0-2").unwrap(), Mask256::range(0, 2));
}

#[test]
fn scanf_int_reads_like_sscanf() {
    assert_eq!(parse_scanf_int(b"6\n", true), Some(6));
    assert_eq!(parse_scanf_int(b"  0x2f junk", true), Some(0x2f));
    assert_eq!(parse_scanf_int(b"010", true), Some(8));
    assert_eq!(parse_scanf_int(b"010", false), Some(10));
    assert_eq!(parse_scanf_int(b"0x10", false), Some(0));
    assert_eq!(parse_scanf_int(b"-1", true), Some(-1));
    assert_eq!(parse_scanf_int(b"+7", false), None);
    assert_eq!(parse_scanf_int(b"\x0b\xa05", false), Some(5));
    assert_eq!(parse_scanf_int(b"4294967297", false), Some(1));
    for bad in [&b""[..], b"\n", b"x1", b"-", b"+ 1", b"--1"] {
        assert_eq!(parse_scanf_int(bad, true), None, "{bad:?}");
    }
}

#[test]
fn kstrtobool_forms() {
    for t in [&b"1"[..], b"y", b"Yes", b"on", b"ON\n", b"1junk"] {
        assert_eq!(parse_kstrtobool(t), Some(true), "{t:?}");
    }
    for f in [&b"0"[..], b"n", b"No", b"off", b"oFf"] {
        assert_eq!(parse_kstrtobool(f), Some(false), "{f:?}");
    }
    for bad in [&b""[..], b"2", b"o", b"true", b" 1"] {
        assert_eq!(parse_kstrtobool(bad), None, "{bad:?}");
    }
}
