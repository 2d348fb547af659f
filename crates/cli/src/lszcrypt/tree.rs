//! How lszcrypt reads a sysfs tree: the first line of an attribute, its
//! number as C's `sscanf` reads it, whether a path is a directory or
//! readable, a device's driver; and the C parsers its arguments go through.

use apmatrix_admin::SysfsRoot;

/// A sysfs root as lszcrypt sees it.
pub(super) struct Tree<'a> {
    pub(super) root: &'a dyn SysfsRoot,
}

/// Which kind of driver a device's `driver` link names (lszcrypt's two
/// patterns, `cex[0-9](card|queue)` and `vfio.ap`, unanchored).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum DriverKind {
    Zcrypt,
    Vfio,
}

impl Tree<'_> {
    /// The first line of an attribute, without its newline.
    pub(super) fn line(&self, path: &str) -> Option<String> {
        let text = self.root.read(path).ok()?;
        Some(text.split('\n').next().unwrap_or("").to_string())
    }

    /// `%ld` of an attribute.
    pub(super) fn long(&self, path: &str) -> Option<i64> {
        scan_decimal(&self.root.read(path).ok()?).map(|(v, _)| v)
    }

    /// `%lx` of an attribute.
    pub(super) fn hex(&self, path: &str) -> Option<u64> {
        scan_hex(&self.root.read(path).ok()?).map(|(v, _)| v)
    }

    /// `%ld` of an attribute that can be read, else -1 (lszcrypt's "unset").
    pub(super) fn flag(&self, path: &str) -> i64 {
        self.long(path).unwrap_or(-1)
    }

    pub(super) fn readable(&self, path: &str) -> bool {
        self.root.read(path).is_ok()
    }

    pub(super) fn is_dir(&self, path: &str) -> bool {
        self.root.list(path).is_ok()
    }

    /// The names in a directory that contain a match of `matches`, sorted.
    pub(super) fn scan(&self, dir: &str, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let mut names: Vec<String> = self
            .root
            .list(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| matches(n))
            .collect();
        names.sort();
        names
    }

    /// The card directories (`card[0-9a-fA-F]+`, unanchored) under devices/ap.
    pub(super) fn cards(&self) -> Vec<String> {
        self.scan("devices/ap", |n| {
            n.match_indices("card")
                .any(|(i, _)| n[i + 4..].starts_with(|c: char| c.is_ascii_hexdigit()))
        })
    }

    /// The basename of a device's `driver` link and its kind, if it is one
    /// of lszcrypt's drivers.
    pub(super) fn driver(&self, device: &str) -> Option<(String, DriverKind)> {
        let target = self.root.read_link(&format!("{device}/driver")).ok()?;
        let (_, name) = target.rsplit_once('/')?;
        let zcrypt = name.match_indices("cex").any(|(i, _)| {
            let rest = &name[i + 3..];
            rest.starts_with(|c: char| c.is_ascii_digit())
                && (rest[1..].starts_with("card") || rest[1..].starts_with("queue"))
        });
        let vfio = name
            .match_indices("vfio")
            .any(|(i, _)| name.get(i + 5..i + 7) == Some("ap"));
        match (zcrypt, vfio) {
            (true, _) => Some((name.to_string(), DriverKind::Zcrypt)),
            (false, true) => Some((name.to_string(), DriverKind::Vfio)),
            _ => None,
        }
    }

    /// A path as the tool names it in messages (`/sys/devices/ap/card05`).
    pub(super) fn shown(&self, path: &str) -> String {
        apmatrix_admin::root::shown(self.root, path)
    }

    /// `Warning: Default domain 0x.. is not available.` when `ap_domain` is
    /// negative or not in `ap_usage_domain_mask` (≥ v2.42).
    pub(super) fn default_domain_warning(&self) -> String {
        let mask = self.line("bus/ap/ap_usage_domain_mask").unwrap_or_default();
        match self.long("bus/ap/ap_domain") {
            Some(d) if d < 0 || mask_bit(&mask, d) != Some(true) => {
                format!(
                    "Warning: Default domain 0x{:02x} is not available.\n",
                    d as u64
                )
            }
            _ => String::new(),
        }
    }
}

/// Bit `bit` of a sysfs mask (`0x` and hex digits, bit 0 leftmost); `None`
/// past its end or at a character that is not hex.
pub(super) fn mask_bit(mask: &str, bit: i64) -> Option<bool> {
    let digits = mask.strip_prefix("0x").unwrap_or(mask).as_bytes();
    let mut i = 0;
    let mut bit = bit;
    while i < digits.len() && bit >= 4 {
        i += 1;
        bit -= 4;
    }
    let nibble = (*digits.get(i)? as char).to_digit(16)?;
    Some(nibble & (0x8 >> bit) != 0)
}

fn skip_space(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
}

/// An optional sign, as `sscanf` and `strtol` take one: (negative, rest).
fn sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// Digits of `radix` at the start of `s`: their value (saturating, as
/// strtoul's ULONG_MAX) and how many there were.
fn digits(s: &str, radix: u32) -> (u64, usize) {
    let n = s.chars().take_while(|c| c.is_digit(radix)).count();
    let value = s[..n].chars().fold(0u64, |v, c| {
        v.checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(c.to_digit(radix).unwrap_or(0))))
            .unwrap_or(u64::MAX)
    });
    (value, n)
}

/// `sscanf`'s `%x` (glibc): spaces, a sign, an optional `0x` (which alone
/// reads as 0), hex digits. The value wraps as the unsigned conversion does.
pub(super) fn scan_hex(s: &str) -> Option<(u64, &str)> {
    let (negative, s) = sign(skip_space(s));
    let (value, rest) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(after) => {
            let (v, n) = digits(after, 16);
            (v, &after[n..])
        }
        None => {
            let (v, n) = digits(s, 16);
            if n == 0 {
                return None;
            }
            (v, &s[n..])
        }
    };
    Some((
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        rest,
    ))
}

/// `sscanf`'s `%ld`.
pub(super) fn scan_decimal(s: &str) -> Option<(i64, &str)> {
    let (negative, s) = sign(skip_space(s));
    let (v, n) = digits(s, 10);
    if n == 0 {
        return None;
    }
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    Some((if negative { -v } else { v }, &s[n..]))
}

/// `sscanf(s, "%x.%x")` into two `int`s: how many matched, and the values.
pub(super) fn scan_hex_pair(s: &str) -> (usize, i32, i32) {
    let Some((a, rest)) = scan_hex(s) else {
        return (0, -1, -1);
    };
    let a = a as u32 as i32;
    match rest.strip_prefix('.').and_then(scan_hex) {
        Some((d, _)) => (2, a, d as u32 as i32),
        None => (1, a, -1),
    }
}

/// `strtol(s, &end, 0)` that must use all of `s`: decimal, `0x` hex or
/// `0` octal, as `int`.
pub(super) fn strtol_whole(s: &str) -> Option<i32> {
    let (negative, t) = sign(skip_space(s));
    let (radix, t) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if h.starts_with(|c: char| c.is_ascii_hexdigit()) {
            (16, h)
        } else {
            // "0x" without hex digits: strtol reads the 0 and stops at x.
            return None;
        }
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let (v, n) = digits(t, radix);
    if n == 0 || n != t.len() {
        return None;
    }
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    // strtol saturates at LONG_MAX; the tool keeps it in an int.
    Some((if negative { -v } else { v }) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_as_sscanf_reads_it() {
        assert_eq!(scan_hex_pair("5"), (1, 5, -1));
        assert_eq!(scan_hex_pair("0x5"), (1, 5, -1));
        assert_eq!(scan_hex_pair("5.47"), (2, 5, 0x47));
        assert_eq!(scan_hex_pair("5.0x47"), (2, 5, 0x47));
        assert_eq!(scan_hex_pair("05."), (1, 5, -1));
        assert_eq!(scan_hex_pair("5.x"), (1, 5, -1));
        assert_eq!(scan_hex_pair("0x"), (1, 0, -1));
        assert_eq!(scan_hex_pair("0xg"), (1, 0, -1));
        assert_eq!(scan_hex_pair(" +5"), (1, 5, -1));
        assert_eq!(scan_hex_pair("-1"), (1, -1, -1));
        assert_eq!(scan_hex_pair("1ff"), (1, 0x1ff, -1));
        assert_eq!(scan_hex_pair(".0047"), (0, -1, -1));
        assert_eq!(scan_hex_pair("x5"), (0, -1, -1));
        assert_eq!(scan_hex_pair(""), (0, -1, -1));
    }

    #[test]
    fn strtol_takes_bases_and_wants_everything() {
        assert_eq!(strtol_whole("5"), Some(5));
        assert_eq!(strtol_whole("10"), Some(10));
        assert_eq!(strtol_whole("0x10"), Some(16));
        assert_eq!(strtol_whole("010"), Some(8));
        assert_eq!(strtol_whole("09"), None);
        assert_eq!(strtol_whole("5."), None);
        assert_eq!(strtol_whole("zz"), None);
        assert_eq!(strtol_whole("0x"), None);
        assert_eq!(strtol_whole("-1"), Some(-1));
    }

    #[test]
    fn mask_bits_from_the_left() {
        let mask = "0x8100000000000000000000000000000000000000000000000000000000000001";
        assert_eq!(mask_bit(mask, 0), Some(true));
        assert_eq!(mask_bit(mask, 1), Some(false));
        assert_eq!(mask_bit(mask, 7), Some(true));
        assert_eq!(mask_bit(mask, 255), Some(true));
        assert_eq!(mask_bit(mask, 256), None);
        assert_eq!(mask_bit("not supported", 0), None);
    }
}
