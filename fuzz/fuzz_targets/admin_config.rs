//! The parsers of `apmatrix-admin`: the configuration file
//! (`Config::from_toml`, then `resolve`), mdevctl's stored JSON
//! (`export::from_mdevctl_json`) and an mdev's `matrix` and
//! `control_domains` attributes (`parse_matrix`).
//!
//! Checks: nothing panics; a resolved configuration resolves again to an
//! equal `Wanted`, has one mdev per `[[mdev]]` with the UUID given or
//! derived from the name, and every mdev's `export::mdevctl_json` reads
//! back to the same assignments and autostart; an accepted mdevctl JSON
//! prints (`mdevctl_json`) to a text that reads back the same, and that
//! printout is a fixed point; an accepted matrix prints in the kernel's
//! form (`vfio::matrix_text`, `%04x` control domains) and reads back to an
//! equal `Matrix` (also upper-case), and is the union of its lines parsed
//! one by one. The printout is never compared with the input text: the
//! kernel prints the cross product of adapters and domains, so
//! `05.0004\n06.00ab\n` prints four lines, and `05.\n.0004\n` one.
//!
//! Input: a selector byte, then UTF-8 text. `c` (or any byte with
//! `b % 3 == 0`): the TOML configuration; `j` (`b % 3 == 1`): mdevctl JSON;
//! `m` (`b % 3 == 2`): `matrix`, a NUL, then `control_domains` (no NUL: no
//! control domains).
#![no_main]

use apmatrix_admin::export::{from_mdevctl_json, mdevctl_json};
use apmatrix_admin::{parse_matrix, Config, Matrix, WantedMdev, NAME_NAMESPACE};
use apmatrix_model::parse::parse_id_set;
use apmatrix_model::vfio::matrix_text;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// The UUID the mdevctl JSON inputs are read under (the file's name).
const JSON_UUID: Uuid = Uuid::from_u128(0x669d_9b23_fe1b_4ecd_be08_e42d_c3f5_d3c4);

enum Parser {
    Config,
    Mdevctl,
    Matrix,
}

fn parser(selector: u8) -> Parser {
    match selector {
        b'c' => Parser::Config,
        b'j' => Parser::Mdevctl,
        b'm' => Parser::Matrix,
        b => match b % 3 {
            0 => Parser::Config,
            1 => Parser::Mdevctl,
            _ => Parser::Matrix,
        },
    }
}

/// `mdevctl_json(m)` reads back (under `m`'s UUID) to the same assignments
/// and autostart, and prints the same again.
fn check_mdevctl_round_trip(m: &WantedMdev) {
    let printed = mdevctl_json(m);
    let back = from_mdevctl_json(m.uuid, &printed)
        .unwrap_or_else(|e| panic!("mdevctl_json output refused: {e}\n{printed}"));
    assert_eq!(back.uuid, m.uuid);
    assert_eq!(
        (
            back.adapters,
            back.domains,
            back.control_domains,
            back.autostart
        ),
        (m.adapters, m.domains, m.control_domains, m.autostart),
        "mdevctl JSON round trip changed the mdev:\n{printed}"
    );
    assert_eq!(mdevctl_json(&back), printed, "not a fixed point");
}

fn config(text: &str) {
    let config = match Config::from_toml(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.0.is_empty());
            return;
        }
    };
    let result = config.resolve();
    // Resolving is a function of the configuration.
    assert_eq!(config.resolve(), result, "resolve() twice differs");
    assert_eq!(config.clone().resolve(), result);
    let wanted = match result {
        Ok(w) => w,
        Err(e) => {
            assert!(!e.0.is_empty());
            return;
        }
    };
    assert_eq!(wanted.mdevs.len(), config.mdevs.len());
    for (c, m) in config.mdevs.iter().zip(&wanted.mdevs) {
        let uuid = c.uuid.unwrap_or_else(|| {
            let name = c.name.as_ref().expect("an mdev without uuid and name");
            Uuid::new_v5(&NAME_NAMESPACE, name.as_bytes())
        });
        assert_eq!(m.uuid, uuid);
        assert!(m.label.contains(&uuid.to_string()), "label {:?}", m.label);
        for (list, mask) in [
            (&c.adapters, m.adapters),
            (&c.domains, m.domains),
            (&c.control_domains, m.control_domains),
        ] {
            assert_eq!(parse_id_set(list).ok(), Some(mask), "{list:?}");
        }
        assert_eq!(m.guest, c.guest);
        assert_eq!(m.autostart, c.autostart);
        check_mdevctl_round_trip(m);
    }
}

fn mdevctl(text: &str) {
    match from_mdevctl_json(JSON_UUID, text) {
        Ok(m) => {
            assert_eq!(m.uuid, JSON_UUID);
            assert_eq!(m.guest, None);
            check_mdevctl_round_trip(&m);
        }
        Err(e) => assert!(
            e.0.contains(&JSON_UUID.to_string()),
            "error without the UUID: {e}"
        ),
    }
}

/// The kernel's printout of a matrix: `matrix` and `control_domains`.
fn print(m: &Matrix) -> (String, String) {
    let cdoms: String = m
        .control_domains
        .iter()
        .map(|d| format!("{d:04x}\n"))
        .collect();
    (matrix_text(&m.adapters, &m.domains), cdoms)
}

fn matrix(matrix: &str, cdoms: &str) {
    let Some(m) = parse_matrix(matrix, cdoms) else {
        return;
    };
    // Line by line: the matrix is the union of what each line gives.
    let mut union = Matrix::default();
    for line in matrix.lines() {
        let one = parse_matrix(line, "").unwrap_or_else(|| panic!("line {line:?} refused alone"));
        assert!(one.control_domains.is_empty());
        union.adapters = union.adapters.or(&one.adapters);
        union.domains = union.domains.or(&one.domains);
    }
    for line in cdoms.lines() {
        let one = parse_matrix("", line).unwrap_or_else(|| panic!("line {line:?} refused alone"));
        union.control_domains = union.control_domains.or(&one.control_domains);
    }
    assert_eq!(union, m, "not the union of its lines");

    // The kernel's printout reads back to the same matrix; so does it in
    // upper case.
    let (text, cdoms_text) = print(&m);
    let back = parse_matrix(&text, &cdoms_text)
        .unwrap_or_else(|| panic!("printout refused: {text:?} {cdoms_text:?}"));
    assert_eq!(
        back, m,
        "printout {text:?} {cdoms_text:?} reads back differently"
    );
    assert_eq!(
        parse_matrix(&text.to_uppercase(), &cdoms_text.to_uppercase()),
        Some(m.clone())
    );
    assert_eq!(print(&back), (text, cdoms_text));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match parser(selector) {
        Parser::Config => config(text),
        Parser::Mdevctl => mdevctl(text),
        Parser::Matrix => {
            let (m, c) = text.split_once('\0').unwrap_or((text, ""));
            matrix(m, c);
        }
    }
});
