//! The parsers of the layers `apmatrix status` reads beside sysfs
//! (`apmatrix_admin::running`, `apmatrix_admin::persistent`): libvirt's
//! live domain XML, a QEMU command line, the kernel command line and the
//! chzdev udev rule.
//!
//! Checks: nothing panics; a guest has a non-empty name; CPU features, when
//! given, are the three AP features in QEMU's order and QEMU's words, and
//! `CpuModel::from_features` takes them; the kernel command line's values
//! are words of the input; each boot mask comes from where its label says
//! (the rule's mask where the rule sets one, else the parameter's parse,
//! else all ones), and parsing is deterministic.
//!
//! Input: a selector byte, then UTF-8 text. `x` (`b % 3 == 0`): a domain
//! XML; `q` (`b % 3 == 1`): a QEMU command line, arguments separated by
//! NUL; `c` (`b % 3 == 2`): a kernel command line, a NUL, then a rule file.
#![no_main]

use apmatrix_admin::persistent::{boot_masks, cmdline_parameters, rule_masks};
use apmatrix_admin::running::{parse_domain_xml, parse_qemu_args, RunningGuest};
use apmatrix_model::parse::parse_boot_mask;
use apmatrix_model::{CpuModel, Mask256};
use libfuzzer_sys::fuzz_target;

fn check_guest(g: &RunningGuest) {
    assert!(!g.name.is_empty());
    if let Some(cpu) = &g.cpu {
        let parts: Vec<&str> = cpu.split(',').collect();
        assert_eq!(parts.len(), 3, "{cpu}");
        for (part, feature) in parts.iter().zip(["ap", "apqci", "apft"]) {
            let (name, value) = part.split_once('=').expect("feature=value");
            assert_eq!(name, feature, "{cpu}");
            assert!(value == "on" || value == "off", "{cpu}");
        }
        CpuModel::from_features(cpu).unwrap_or_else(|e| panic!("{cpu}: {e}"));
    }
}

fn domain_xml(text: &str) {
    let first = parse_domain_xml(text);
    assert_eq!(first, parse_domain_xml(text));
    if let Some(g) = first {
        check_guest(&g);
    }
}

fn qemu(text: &str) {
    let args: Vec<String> = text.split('\0').map(str::to_string).collect();
    if let Some(g) = parse_qemu_args(&args) {
        check_guest(&g);
        assert!(text.contains(&g.name), "{:?} is not in the command line", g.name);
    }
}

fn boot(cmdline: &str, rule: &str) {
    let params = cmdline_parameters(cmdline);
    let words: Vec<&str> = cmdline.split_ascii_whitespace().collect();
    for (name, value) in [("ap.apmask=", &params.apmask), ("ap.aqmask=", &params.aqmask)] {
        if let Some(v) = value {
            assert!(words.contains(&format!("{name}{v}").as_str()), "{name}{v}");
        }
    }
    let (ap_rule, aq_rule) = rule_masks(rule);
    let masks = boot_masks(Some(rule), &params);
    for (mask, from, rule_mask, param) in [
        (masks.apmask, &masks.apmask_from, ap_rule, &params.apmask),
        (masks.aqmask, &masks.aqmask_from, aq_rule, &params.aqmask),
    ] {
        let expected = match (rule_mask, param) {
            (Some(m), _) => {
                assert_eq!(from, "41-ap.rules");
                m
            }
            (None, Some(v)) => {
                assert_eq!(from, "kernel command line");
                parse_boot_mask(v).unwrap_or(Mask256::EMPTY)
            }
            (None, None) => {
                assert_eq!(from, "kernel default");
                Mask256::FULL
            }
        };
        assert_eq!(mask, expected);
    }
    assert_eq!(boot_masks(Some(rule), &params), masks);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector {
        b'x' => domain_xml(text),
        b'q' => qemu(text),
        b'c' => {
            let (cmdline, rule) = text.split_once('\0').unwrap_or((text, ""));
            boot(cmdline, rule);
        }
        b => match b % 3 {
            0 => domain_xml(text),
            1 => qemu(text),
            _ => {
                let (cmdline, rule) = text.split_once('\0').unwrap_or((text, ""));
                boot(cmdline, rule);
            }
        },
    }
});
