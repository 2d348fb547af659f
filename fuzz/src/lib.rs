//! Shared pieces of the fuzz targets: independent reference implementations
//! of the kernel rules (kernel.md §2, §5, §6), written from the spec text
//! and not from the model's code, plus small helpers.
//!
//! The references work on `[bool; 256]` indexed by id, so they do not depend
//! on [`Mask256`]'s word layout either.

use apmatrix_model::Mask256;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::IntoDeserializer;
use serde::Deserialize;

/// A mask as 256 flags, index = id.
pub type Bits = [bool; 256];

/// The flags of a model mask.
pub fn bits_of(m: &Mask256) -> Bits {
    std::array::from_fn(|id| m.contains(id as u8))
}

/// The model mask with these flags.
pub fn mask_of(bits: &Bits) -> Mask256 {
    (0..=255u8).filter(|&id| bits[id as usize]).collect()
}

/// What a sysfs store sees of a write: the bytes before the first NUL.
pub fn until_nul(input: &[u8]) -> &[u8] {
    input.split(|&b| b == 0).next().unwrap_or(input)
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u64),
        b'a'..=b'f' => Some((b - b'a' + 10) as u64),
        b'A'..=b'F' => Some((b - b'A' + 10) as u64),
        _ => None,
    }
}

/// The radix C's base-0 conversions pick and how many prefix bytes they
/// skip: `0x`/`0X` followed by a hex digit is hex, a leading `0` octal,
/// anything else decimal.
fn base0_radix(s: &[u8]) -> (u64, usize) {
    match s {
        [b'0', b'x' | b'X', h, ..] if hex_value(*h).is_some() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    }
}

/// The digits of `radix` at the start of `s`.
fn digit_run(s: &[u8], radix: u64) -> usize {
    s.iter()
        .take_while(|&&b| hex_value(b).is_some_and(|d| d < radix))
        .count()
}

/// `simple_strtoul(s, &end, 0)`: (value with wrap-around, bytes consumed
/// including the prefix); consumed is 0 when there is no digit.
pub fn ref_simple_strtoul(s: &[u8]) -> (u64, usize) {
    let (radix, skip) = base0_radix(s);
    let n = digit_run(&s[skip..], radix);
    if n == 0 {
        return (0, 0);
    }
    let value = s[skip..skip + n].iter().fold(0u64, |acc, &b| {
        acc.wrapping_mul(radix)
            .wrapping_add(hex_value(b).expect("digit"))
    });
    (value, skip + n)
}

/// kernel.md §2, absolute form (`ap_hex2bitmap`), on the bytes before NUL.
pub fn ref_absolute_mask(input: &[u8]) -> Option<Bits> {
    let s = until_nul(input);
    let mut i = 0;
    if s.len() >= 2 && s[0] == b'0' && s[1] == b'x' {
        i = 1;
    }
    if s.get(i) == Some(&b'x') {
        i += 1;
    }
    let mut bits = [false; 256];
    let mut bit = 0;
    while bit < 256 {
        let Some(v) = s.get(i).copied().and_then(hex_value) else {
            break;
        };
        for k in 0..4 {
            bits[bit + k] = v & (8 >> k) != 0;
        }
        bit += 4;
        i += 1;
    }
    if s.get(i) == Some(&b'\n') {
        i += 1;
    }
    (i == s.len()).then_some(bits)
}

/// kernel.md §2, relative form (`modify_bitmap`) applied to `base`.
pub fn ref_relative_mask(input: &[u8], base: &Bits) -> Option<Bits> {
    let s = until_nul(input);
    let mut bits = *base;
    let mut i = 0;
    while i < s.len() {
        let sign = s[i];
        if sign != b'+' && sign != b'-' {
            return None;
        }
        i += 1;
        let (first, n) = ref_simple_strtoul(&s[i..]);
        if n == 0 || first >= 256 {
            return None;
        }
        i += n;
        let mut last = first;
        if s.get(i) == Some(&b'-') {
            i += 1;
            let (end, n) = ref_simple_strtoul(&s[i..]);
            if n == 0 || first > end || end >= 256 {
                return None;
            }
            i += n;
            last = end;
        }
        for id in first..=last {
            bits[id as usize] = sign == b'+';
        }
        while matches!(s.get(i), Some(b',' | b'\n')) {
            i += 1;
        }
    }
    Some(bits)
}

/// kernel.md §2: a leading `+`/`-` selects the relative form.
pub fn ref_mask(input: &[u8], base: &Bits) -> Option<Bits> {
    match until_nul(input).first() {
        Some(b'+' | b'-') => ref_relative_mask(input, base),
        _ => ref_absolute_mask(input),
    }
}

/// The outcome of `kstrtoul(buf, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefNumber {
    Value(u64),
    Invalid,
    Overflow,
}

/// kernel.md §6 `kstrtoul(buf, 0)`: one optional `+`, radix by prefix,
/// digits, one optional trailing newline, nothing else; more than
/// 2^64 - 1 is ERANGE (reported even when junk follows the digits).
pub fn ref_kstrtoul(input: &[u8]) -> RefNumber {
    let s = until_nul(input);
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (radix, skip) = base0_radix(s);
    let body = &s[skip..];
    let n = digit_run(body, radix);
    if n == 0 {
        return RefNumber::Invalid;
    }
    let value = body[..n].iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(radix)?
            .checked_add(hex_value(b).expect("digit"))
    });
    let Some(value) = value else {
        return RefNumber::Overflow;
    };
    match &body[n..] {
        b"" | b"\n" => RefNumber::Value(value),
        _ => RefNumber::Invalid,
    }
}

/// kernel.md §5: `create` takes 36 or 37 bytes whose first 36 are a UUID in
/// 8-4-4-4-12 form, hex of either case.
pub fn ref_create_uuid_ok(input: &[u8]) -> bool {
    (input.len() == 36 || input.len() == 37)
        && input[..36].iter().enumerate().all(|(i, &b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// `Apqn::from_str`'s documented rule: adapter (1-2 hex digits), a dot,
/// domain (1-4 hex digits), both at most 0xff.
pub fn ref_apqn(text: &str) -> Option<(u8, u8)> {
    let (a, d) = text.split_once('.')?;
    let hex = |t: &str, max_len: usize| -> Option<u8> {
        if t.is_empty() || t.len() > max_len {
            return None;
        }
        let v = t
            .bytes()
            .try_fold(0u32, |acc, b| Some(acc * 16 + hex_value(b)? as u32))?;
        u8::try_from(v).ok()
    };
    Some((hex(a, 2)?, hex(d, 4)?))
}

/// The serialised form of a mask: `0x` and exactly 64 hex digits.
pub fn ref_mask_text_ok(text: &str) -> bool {
    text.strip_prefix("0x")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Runs a type's serde `Deserialize` on a bare string.
pub fn deserialize_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ValueError> {
    let d: StrDeserializer<'de, ValueError> = text.into_deserializer();
    T::deserialize(d)
}

/// A TOML string literal holding `text` (escaped as needed).
pub fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The base mask and the written bytes of a `mask`/`boot_mask` input: a
/// first byte `E` means the empty base, `F` the full one, `R` the next 32
/// bytes as raw words (bit 0 = MSB of the first byte); any other input is
/// written whole onto the empty mask.
pub fn split_base(data: &[u8]) -> (Mask256, &[u8]) {
    match data.split_first() {
        Some((b'E', rest)) => (Mask256::EMPTY, rest),
        Some((b'F', rest)) => (Mask256::FULL, rest),
        Some((b'R', rest)) => {
            let n = rest.len().min(32);
            let mut raw = [0u8; 32];
            raw[..n].copy_from_slice(&rest[..n]);
            let words = std::array::from_fn(|i| {
                u64::from_be_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
            });
            (Mask256::from_words(words), &rest[n..])
        }
        _ => (Mask256::EMPTY, data),
    }
}

/// The kernel's `isspace` (lib/ctype.c): `\t \n \v \f \r`, the space, and
/// byte 0xa0 (Latin-1 no-break space, `_S|_SP` in the kernel's table).
/// `sscanf` skips these before a number.
pub fn kernel_isspace(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0xa0)
}

/// `sscanf(buf, "%i")` (`any_base`) or `sscanf(buf, "%d")` into a C `int`:
/// leading white space skipped, an optional `-` (the kernel's vsscanf takes
/// no `+`), radix by prefix (`%i`) or
/// 10 (`%d`), digits, anything after them ignored. The value is kept modulo
/// 2^32 all along (the same as wrapping a 64-bit `simple_strtoll` and then
/// truncating to `int`). `None` when no digit follows (nothing converted).
pub fn ref_scanf_int(input: &[u8], any_base: bool) -> Option<i32> {
    let s = until_nul(input);
    let start = s
        .iter()
        .position(|&b| !kernel_isspace(b))
        .unwrap_or(s.len());
    let mut rest = &s[start..];
    let mut negative = false;
    if let Some((b'-', tail)) = rest.split_first() {
        negative = true;
        rest = tail;
    }
    let (radix, skip) = if any_base { base0_radix(rest) } else { (10, 0) };
    let body = &rest[skip..];
    let n = digit_run(body, radix);
    if n == 0 {
        return None;
    }
    let magnitude = body[..n].iter().fold(0u32, |acc, &b| {
        acc.wrapping_mul(radix as u32)
            .wrapping_add(hex_value(b).expect("digit") as u32)
    });
    let value = if negative {
        0u32.wrapping_sub(magnitude)
    } else {
        magnitude
    };
    Some(i32::from_ne_bytes(value.to_ne_bytes()))
}

/// `kstrtobool`: `1`/`y`/`Y` true, `0`/`n`/`N` false, or `o`/`O` followed by
/// `n`/`N` (on, true) or `f`/`F` (off, false); the kernel looks no further
/// than those two bytes. Anything else is EINVAL.
pub fn ref_kstrtobool(input: &[u8]) -> Option<bool> {
    let s = until_nul(input);
    let lower = |i: usize| s.get(i).map(u8::to_ascii_lowercase);
    match lower(0)? {
        b'1' | b'y' => Some(true),
        b'0' | b'n' => Some(false),
        b'o' => match lower(1) {
            Some(b'n') => Some(true),
            Some(b'f') => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The mdev UUID the `sysfs_write` target's fixed paths name.
pub const SYSFS_MDEV: &str = "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4";

/// The writable attributes the `sysfs_write` target picks from, relative to
/// the sysfs root. The mdev ones exist only while that mdev does; the
/// queue's `online` only while cex4queue holds the queue.
pub const SYSFS_WRITE_PATHS: &[&str] = &[
    "bus/ap/apmask",
    "bus/ap/aqmask",
    "bus/ap/ap_domain",
    "bus/ap/config_time",
    "bus/ap/poll_thread",
    "bus/ap/poll_timeout",
    "bus/ap/scans",
    "devices/ap/card05/online",
    "devices/ap/card05/config",
    "devices/ap/card04/04.0004/online",
    "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/assign_adapter",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/assign_domain",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/assign_control_domain",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/unassign_adapter",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/unassign_domain",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/unassign_control_domain",
    "devices/vfio_ap/matrix/669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4/remove",
];

/// Selector values beyond the fixed paths that mean "a path from the input".
const RAW_PATH_SLOTS: usize = 2;

/// Where one `sysfs_write` step writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPath<'a> {
    /// An entry of [`SYSFS_WRITE_PATHS`].
    Fixed(usize),
    /// Bytes from the input, read as UTF-8 (lossily).
    Raw(&'a [u8]),
}

/// One write(2) of the `sysfs_write` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step<'a> {
    pub path: StepPath<'a>,
    pub data: &'a [u8],
}

impl Step<'_> {
    pub fn path_text(&self) -> std::borrow::Cow<'_, str> {
        match self.path {
            StepPath::Fixed(i) => SYSFS_WRITE_PATHS[i].into(),
            StepPath::Raw(bytes) => String::from_utf8_lossy(bytes),
        }
    }
}

/// A length byte and that many bytes (fewer at the end of the input).
fn take_chunk<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let Some((&len, tail)) = rest.split_first() else {
        return &[];
    };
    let (chunk, tail) = tail.split_at((len as usize).min(tail.len()));
    *rest = tail;
    chunk
}

/// The steps of a `sysfs_write` input. Each step is a selector byte `s`,
/// then, when `s % 20` is 18 or 19, a length byte and that many bytes of
/// path, then a length byte and that many bytes of data; `s % 20` below 18
/// picks [`SYSFS_WRITE_PATHS`]`[s % 20]` instead of a path from the input.
/// A short input ends the last step early (missing bytes are empty).
pub fn sysfs_steps(input: &[u8]) -> Vec<Step<'_>> {
    let mut rest = input;
    let mut steps = Vec::new();
    while let Some((&sel, tail)) = rest.split_first() {
        rest = tail;
        let sel = sel as usize % (SYSFS_WRITE_PATHS.len() + RAW_PATH_SLOTS);
        let path = if sel < SYSFS_WRITE_PATHS.len() {
            StepPath::Fixed(sel)
        } else {
            StepPath::Raw(take_chunk(&mut rest))
        };
        let data = take_chunk(&mut rest);
        steps.push(Step { path, data });
    }
    steps
}

/// The input bytes of `steps` ([`sysfs_steps`] reads them back); paths
/// and data longer than 255 bytes do not fit.
pub fn encode_sysfs_steps(steps: &[Step<'_>]) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.push(u8::try_from(bytes.len()).expect("at most 255 bytes"));
        out.extend_from_slice(bytes);
    };
    let mut out = Vec::new();
    for step in steps {
        match step.path {
            StepPath::Fixed(i) => {
                assert!(i < SYSFS_WRITE_PATHS.len());
                out.push(i as u8);
            }
            StepPath::Raw(path) => {
                out.push(SYSFS_WRITE_PATHS.len() as u8);
                chunk(&mut out, path);
            }
        }
        chunk(&mut out, step.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(b: &Bits) -> Vec<usize> {
        (0..256).filter(|&i| b[i]).collect()
    }

    #[test]
    fn references_follow_kernel_md_examples() {
        let empty = [false; 256];
        let full = [true; 256];
        assert_eq!(ids(&ref_absolute_mask(b"0x41").unwrap()), vec![1, 7]);
        assert_eq!(ids(&ref_absolute_mask(b"x41\n").unwrap()), vec![1, 7]);
        assert!(ref_absolute_mask(b"0X41").is_none());
        assert!(ref_absolute_mask(b"0x41\n\n").is_none());
        assert_eq!(ref_absolute_mask(b"").unwrap(), empty);
        assert_eq!(
            ids(&ref_relative_mask(b"+0,-6,+0x47,-0xf0", &empty).unwrap()),
            vec![0, 0x47]
        );
        assert_eq!(ids(&ref_relative_mask(b"+010", &empty).unwrap()), vec![8]);
        let m = ref_relative_mask(b"-5,-6\n", &full).unwrap();
        assert_eq!(m.iter().filter(|b| !**b).count(), 2);
        for bad in [&b"+08"[..], b"+1 ,+2", b"+3-1", b"+256", b"+1-", b"+-1"] {
            assert!(ref_relative_mask(bad, &empty).is_none(), "{bad:?}");
        }
        assert_eq!(ref_kstrtoul(b"0X41\n"), RefNumber::Value(0x41));
        assert_eq!(ref_kstrtoul(b"+010"), RefNumber::Value(8));
        assert_eq!(ref_kstrtoul(b"08"), RefNumber::Invalid);
        assert_eq!(ref_kstrtoul(b"0x"), RefNumber::Invalid);
        assert_eq!(ref_kstrtoul(b"18446744073709551616"), RefNumber::Overflow);
        assert_eq!(ref_apqn("05.00ab"), Some((5, 0xab)));
        assert_eq!(ref_apqn("05.0100"), None);
        assert!(ref_create_uuid_ok(
            b"669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4\n"
        ));
    }

    #[test]
    fn split_base_forms() {
        assert_eq!(split_base(b"F-5"), (Mask256::FULL, &b"-5"[..]));
        assert_eq!(split_base(b"0x41"), (Mask256::EMPTY, &b"0x41"[..]));
        let mut raw = vec![b'R', 0x80];
        raw.extend([0u8; 31]);
        raw.extend(b"+1");
        assert_eq!(split_base(&raw), (Mask256::single(0), &b"+1"[..]));
    }

    #[test]
    fn scanf_and_kstrtobool_references() {
        assert_eq!(ref_scanf_int(b"6\n", true), Some(6));
        assert_eq!(ref_scanf_int(b" \t0x2F junk", true), Some(0x2f));
        assert_eq!(ref_scanf_int(b"\x0b\xa05", false), Some(5));
        assert_eq!(ref_scanf_int(b"010", true), Some(8));
        assert_eq!(ref_scanf_int(b"010", false), Some(10));
        assert_eq!(ref_scanf_int(b"0x10", false), Some(0));
        assert_eq!(ref_scanf_int(b"0xg", true), Some(0));
        assert_eq!(ref_scanf_int(b"08", true), Some(0));
        assert_eq!(ref_scanf_int(b"-1", true), Some(-1));
        assert_eq!(ref_scanf_int(b"+7", false), None);
        assert_eq!(ref_scanf_int(b"-2147483648", false), Some(i32::MIN));
        assert_eq!(ref_scanf_int(b"2147483648", false), Some(i32::MIN));
        assert_eq!(ref_scanf_int(b"4294967297", false), Some(1));
        assert_eq!(ref_scanf_int(b"18446744073709551617", false), Some(1));
        assert_eq!(ref_scanf_int(b"-0xffffffff", true), Some(1));
        for bad in [
            &b""[..],
            b"\n",
            b"x1",
            b"-",
            b"+ 1",
            b"--1",
            b"+-1",
            b"\x001",
            b"0x",
        ] {
            let want = if bad == b"0x" { Some(0) } else { None };
            assert_eq!(ref_scanf_int(bad, true), want, "{bad:?}");
        }
        for (input, want) in [
            (&b"1"[..], Some(true)),
            (b"Yes", Some(true)),
            (b"oN\n", Some(true)),
            (b"n", Some(false)),
            (b"OFF", Some(false)),
            (b"of", Some(false)),
            (b"o", None),
            (b"true", None),
            (b" 1", None),
            (b"", None),
            (b"\x001", None),
        ] {
            assert_eq!(ref_kstrtobool(input), want, "{input:?}");
        }
    }

    #[test]
    fn sysfs_steps_read_back() {
        let steps = [
            Step {
                path: StepPath::Fixed(0),
                data: b"-5,-6\n",
            },
            Step {
                path: StepPath::Raw(b"bus/ap/devices/card05/online"),
                data: b"",
            },
            Step {
                path: StepPath::Fixed(SYSFS_WRITE_PATHS.len() - 1),
                data: b"1\n",
            },
        ];
        assert_eq!(sysfs_steps(&encode_sysfs_steps(&steps)), steps);
        assert_eq!(
            steps[2].path_text(),
            format!("devices/vfio_ap/matrix/{SYSFS_MDEV}/remove")
        );
        // Selectors wrap; a short input ends the step.
        assert_eq!(
            sysfs_steps(&[20 + 3, 9, b'1']),
            [Step {
                path: StepPath::Fixed(3),
                data: b"1"
            }]
        );
        assert_eq!(
            sysfs_steps(&[19, 2, b'a', b'/', 4]),
            [Step {
                path: StepPath::Raw(b"a/"),
                data: b""
            }]
        );
        for p in SYSFS_WRITE_PATHS {
            if p.contains("matrix/6") {
                assert!(p.contains(SYSFS_MDEV));
            }
        }
    }
}
