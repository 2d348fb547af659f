//! The kernel's input parsers, reproduced from their observable behaviour
//! (kernel.md §2 for masks, §5 for `create`, §6 for the assign/unassign and
//! `remove` numbers), plus apmatrix's own id-list syntax.
//!
//! Every parser is all-or-nothing. sysfs hands the store function the
//! written bytes as a C string, so parsing stops at the first NUL byte.

use std::fmt;

use uuid::Uuid;

use crate::mask::Mask256;

/// A syntax error: where the input broke which rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{rule} (at byte {offset})")]
pub struct SyntaxError {
    /// Byte offset in the written input where the rule broke.
    pub offset: usize,
    /// The rule, in words.
    pub rule: String,
}

fn syntax(offset: usize, rule: impl Into<String>) -> SyntaxError {
    SyntaxError {
        offset,
        rule: rule.into(),
    }
}

/// The bytes the kernel's C parsers see: up to the first NUL.
pub fn c_str(input: &[u8]) -> &[u8] {
    match input.iter().position(|&b| b == 0) {
        Some(end) => &input[..end],
        None => input,
    }
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte {b:#04x}")
    }
}

// ---------------------------------------------------------------------------
// Masks (kernel.md §2)
// ---------------------------------------------------------------------------

/// Parses a write to `apmask` or `aqmask`: a leading `+` or `-` selects the
/// relative form, applied to `current`; anything else is the absolute hex
/// form, which starts from the empty mask.
pub fn parse_mask(input: &[u8], current: &Mask256) -> Result<Mask256, SyntaxError> {
    let s = c_str(input);
    match s.first() {
        Some(b'+') | Some(b'-') => apply_relative_mask(s, current),
        _ => parse_absolute_mask(s),
    }
}

/// The longest `ap_config` the kernel reads: three masks of 66 characters
/// and their separators (kernel.md §6); the rest of a write is ignored.
pub const AP_CONFIG_LEN: usize = 201;

/// An `ap_config` write (kernel.md §6): the first 201 bytes, split at every
/// `,` and newline; the first three pieces are the adapter, domain and
/// control-domain masks in the absolute form (an empty piece is an empty
/// mask), and any further pieces are ignored. Fewer than three pieces, or a
/// piece that is not a mask, is EINVAL; the reason names which.
pub fn parse_ap_config(input: &[u8]) -> Result<[Mask256; 3], String> {
    let text = c_str(&input[..input.len().min(AP_CONFIG_LEN)]);
    let pieces: Vec<&[u8]> = text.split(|&b| b == b',' || b == b'\n').collect();
    if pieces.len() < 3 {
        return Err(format!(
            "ap_config takes three masks separated by commas (adapters,domains,control domains); \
             this has {}",
            pieces.len()
        ));
    }
    let mut masks = [Mask256::EMPTY; 3];
    for (i, (mask, what)) in masks
        .iter_mut()
        .zip(["adapter", "domain", "control domain"])
        .enumerate()
    {
        *mask = parse_absolute_mask(pieces[i]).map_err(|e| format!("the {what} mask: {e}"))?;
    }
    Ok(masks)
}

/// The absolute form: optional `0x` (or a lone `x`), hex digits filling the
/// mask from bit 0 (left-aligned, so `0x41` is bits 1 and 7), one optional
/// newline. No digits at all gives the empty mask, as the kernel's code does.
pub fn parse_absolute_mask(input: &[u8]) -> Result<Mask256, SyntaxError> {
    let s = c_str(input);
    let mut pos = 0;
    if s.starts_with(b"0x") {
        pos = 1;
    }
    if s.get(pos) == Some(&b'x') {
        pos += 1;
    }
    let mut words = [0u64; 4];
    let mut bit = 0usize;
    while let Some(&b) = s.get(pos) {
        let Some(nibble) = (b as char).to_digit(16) else {
            break;
        };
        if bit >= 256 {
            return Err(syntax(
                pos,
                "more than 64 hex digits: the mask has 256 bits",
            ));
        }
        words[bit / 64] |= (nibble as u64) << (60 - bit % 64);
        bit += 4;
        pos += 1;
    }
    if s.get(pos) == Some(&b'\n') {
        pos += 1;
    }
    if let Some(&b) = s.get(pos) {
        let rule = if b == b'X' && pos == 1 {
            "'X' is not a hex digit: the prefix must be a lower-case 0x".to_string()
        } else if b == b'\n' {
            "only one trailing newline is allowed".to_string()
        } else {
            format!("{} is not a hex digit", show(b))
        };
        return Err(syntax(pos, rule));
    }
    Ok(Mask256::from_words(words))
}

/// C's `simple_strtoul(s, &end, 0)`: base from the prefix (`0x`/`0X` and a
/// hex digit: 16; a leading `0`: 8; else 10), no sign, no white space,
/// silent wrap-around on overflow. Returns the value and the digits consumed
/// (0 when there were none), the `0x` prefix included.
pub fn simple_strtoul(s: &[u8]) -> (u64, usize) {
    let (base, skip) = radix_of(s);
    let (value, digits, _overflow) = parse_digits(&s[skip..], base);
    if digits == 0 {
        (0, 0)
    } else {
        (value, skip + digits)
    }
}

/// The kernel's `_parse_integer_fixup_radix` for base 0.
fn radix_of(s: &[u8]) -> (u32, usize) {
    match s {
        [b'0', x, h, ..] if (*x | 0x20) == b'x' && h.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    }
}

/// Digits valid in `base`, accumulated with wrap-around; reports overflow.
fn parse_digits(s: &[u8], base: u32) -> (u64, usize, bool) {
    let mut value: u64 = 0;
    let mut overflow = false;
    let mut n = 0;
    for &b in s {
        let Some(d) = (b as char).to_digit(16).filter(|&d| d < base) else {
            break;
        };
        let (v, o1) = value.overflowing_mul(base as u64);
        let (v, o2) = v.overflowing_add(d as u64);
        overflow |= o1 || o2;
        value = v;
        n += 1;
    }
    (value, n, overflow)
}

/// The relative form: `+N`, `-N`, `+A-B` terms separated by runs of `,`
/// and newlines; numbers as C `strtoul` base 0 reads them (so `+010` is 8).
pub fn apply_relative_mask(input: &[u8], base: &Mask256) -> Result<Mask256, SyntaxError> {
    let s = c_str(input);
    let mut mask = *base;
    let mut pos = 0;
    while pos < s.len() {
        let sign = s[pos];
        if sign != b'+' && sign != b'-' {
            return Err(syntax(
                pos,
                format!("expected '+' or '-' to start a term, found {}", show(sign)),
            ));
        }
        pos += 1;
        let (first, used) = simple_strtoul(&s[pos..]);
        if used == 0 {
            return Err(syntax(
                pos,
                format!("expected a number after '{}'", sign as char),
            ));
        }
        if first >= 256 {
            return Err(syntax(
                pos,
                format!("bit {first} is out of range: the mask has bits 0-255"),
            ));
        }
        pos += used;
        let mut last = first;
        if s.get(pos) == Some(&b'-') {
            pos += 1;
            let (end, used) = simple_strtoul(&s[pos..]);
            if used == 0 {
                return Err(syntax(pos, "expected the number that ends the range"));
            }
            if end >= 256 {
                return Err(syntax(
                    pos,
                    format!("bit {end} is out of range: the mask has bits 0-255"),
                ));
            }
            if first > end {
                return Err(syntax(
                    pos,
                    format!("the range {first}-{end} runs backwards"),
                ));
            }
            pos += used;
            last = end;
        }
        for id in first as u8..=last as u8 {
            if sign == b'+' {
                mask.set(id);
            } else {
                mask.clear(id);
            }
        }
        while matches!(s.get(pos), Some(b',') | Some(b'\n')) {
            pos += 1;
        }
    }
    Ok(mask)
}

/// The value of an `ap.apmask=` / `ap.aqmask=` boot parameter: the mask is
/// cleared first and the value parsed onto it, so `+`/`-` terms apply to the
/// empty mask. The kernel ignores a parse error and leaves the mask empty;
/// callers that follow it use `unwrap_or(Mask256::EMPTY)` and may warn.
pub fn parse_boot_mask(value: &str) -> Result<Mask256, SyntaxError> {
    parse_mask(value.as_bytes(), &Mask256::EMPTY)
}

// ---------------------------------------------------------------------------
// Numbers (kernel.md §6: kstrtoul(buf, 0))
// ---------------------------------------------------------------------------

/// Why [`parse_kstrtoul`] refused its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// EINVAL.
    Invalid(SyntaxError),
    /// ERANGE: more than 2^64 - 1.
    Overflow,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::Invalid(e) => e.fmt(f),
            NumberError::Overflow => f.write_str("the number is larger than 2^64 - 1"),
        }
    }
}

/// The kernel's `kstrtoul(buf, 0, &v)` as used by `assign_*`, `unassign_*`
/// and `remove`: an optional `+`, base by prefix, one optional trailing
/// newline and nothing else.
pub fn parse_kstrtoul(input: &[u8]) -> Result<u64, NumberError> {
    let s = c_str(input);
    let mut pos = 0;
    if s.first() == Some(&b'+') {
        pos = 1;
    }
    let (base, skip) = radix_of(&s[pos..]);
    pos += skip;
    let (value, digits, overflow) = parse_digits(&s[pos..], base);
    if digits == 0 {
        let rule = match s.get(pos) {
            None => "expected a number".to_string(),
            Some(&b) => format!("{} does not start a number", show(b)),
        };
        return Err(NumberError::Invalid(syntax(pos, rule)));
    }
    if overflow {
        return Err(NumberError::Overflow);
    }
    pos += digits;
    if s.get(pos) == Some(&b'\n') {
        pos += 1;
    }
    if let Some(&b) = s.get(pos) {
        let rule = match (b, base) {
            (b'\n', _) => "only one trailing newline is allowed".to_string(),
            (b'8' | b'9', 8) => format!(
                "{} is not an octal digit (a leading 0 makes the number octal)",
                show(b)
            ),
            _ => format!("{} is not part of a base-{base} number", show(b)),
        };
        return Err(NumberError::Invalid(syntax(pos, rule)));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------
// UUIDs written to `create` (kernel.md §5)
// ---------------------------------------------------------------------------

/// A write to `mdev_supported_types/<type>/create`: exactly 36 or 37 bytes,
/// the first 36 a UUID in 8-4-4-4-12 hex form (either case). The mdev core
/// does not look at the 37th byte (normally the newline of `echo`).
pub fn parse_create_uuid(input: &[u8]) -> Result<Uuid, SyntaxError> {
    if input.len() != 36 && input.len() != 37 {
        return Err(syntax(
            input.len().min(36),
            format!(
                "a UUID is 36 characters, optionally followed by a newline; {} bytes were written",
                input.len()
            ),
        ));
    }
    for (i, &b) in input[..36].iter().enumerate() {
        let ok = if matches!(i, 8 | 13 | 18 | 23) {
            b == b'-'
        } else {
            b.is_ascii_hexdigit()
        };
        if !ok {
            let expected = if matches!(i, 8 | 13 | 18 | 23) {
                "'-'"
            } else {
                "a hex digit"
            };
            return Err(syntax(
                i,
                format!(
                    "expected {expected} in the 8-4-4-4-12 UUID form, found {}",
                    show(b)
                ),
            ));
        }
    }
    let text = std::str::from_utf8(&input[..36]).expect("checked ASCII");
    Ok(Uuid::parse_str(text).expect("checked 8-4-4-4-12 form"))
}

// ---------------------------------------------------------------------------
// apmatrix's own id lists (host descriptions, command line)
// ---------------------------------------------------------------------------

/// Error of [`parse_id_list`]: names the item and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{item:?} in {list:?}: {rule}")]
pub struct IdListError {
    /// The whole list as written.
    pub list: String,
    /// The item that broke the rule.
    pub item: String,
    /// The rule it broke.
    pub rule: String,
}

/// apmatrix's list syntax for adapters and domains: items separated by
/// commas (white space around them is ignored), each a number or an
/// inclusive range `A-B`; numbers are decimal or `0x` hex. Order is kept
/// (ranges expand ascending), so a command can apply ids in the given order.
/// Single numbers may exceed 255 so that the kernel's own refusal (ENODEV)
/// can be reported; range bounds must be at most 255.
pub fn parse_id_list(text: &str) -> Result<Vec<u64>, IdListError> {
    let mut ids = Vec::new();
    if text.trim().is_empty() {
        return Ok(ids);
    }
    for raw in text.split(',') {
        let item = raw.trim();
        let err = |rule: String| IdListError {
            list: text.to_string(),
            item: item.to_string(),
            rule,
        };
        if item.is_empty() {
            return Err(err("empty item: remove the extra comma".into()));
        }
        let number = |t: &str| -> Result<u64, IdListError> {
            let t = t.trim();
            // Digits only: Rust's parsers would also take a leading '+'.
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u64::from_str_radix(hex, 16).ok()
                }
                None if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse().ok(),
                _ => None,
            };
            parsed.ok_or_else(|| {
                err(format!(
                    "{t:?} is not a number (decimal, or hex with a 0x prefix)"
                ))
            })
        };
        // A '-' after the first character separates a range.
        match item.get(1..).and_then(|rest| rest.find('-')).map(|i| i + 1) {
            Some(dash) => {
                let first = number(&item[..dash])?;
                let last = number(&item[dash + 1..])?;
                if first > 255 || last > 255 {
                    return Err(err("range bounds must be 0-255".into()));
                }
                if first > last {
                    return Err(err(format!("the range {first}-{last} runs backwards")));
                }
                ids.extend(first..=last);
            }
            None => ids.push(number(item)?),
        }
    }
    Ok(ids)
}

/// [`parse_id_list`] for sets of ids that must all be 0..=255.
pub fn parse_id_set(text: &str) -> Result<Mask256, IdListError> {
    let ids = parse_id_list(text)?;
    let mut mask = Mask256::EMPTY;
    for id in ids {
        let id = u8::try_from(id).map_err(|_| IdListError {
            list: text.to_string(),
            item: id.to_string(),
            rule: "ids are 0-255".into(),
        })?;
        mask.set(id);
    }
    Ok(mask)
}

// ---------------------------------------------------------------------------
// sscanf("%i") / sscanf("%d") and kstrtobool, as the bus and card attributes
// parse their input (kernel.md §1, §4)
// ---------------------------------------------------------------------------

/// The integer `sscanf(buf, "%i")` (`any_base`) or `sscanf(buf, "%d")` reads
/// into a C `int`: leading white space skipped (the kernel's `isspace`,
/// which includes `\v`, `\f` and 0xa0), an optional `-` (the kernel's
/// vsscanf takes no `+`), base 0 or 10, the value wrapped to 32 bits as
/// `simple_strtol` does; whatever follows the digits is ignored. `None` when
/// no digit is there (sscanf converts nothing and the store returns EINVAL).
pub fn parse_scanf_int(input: &[u8], any_base: bool) -> Option<i32> {
    let s = c_str(input);
    let kernel_space = |b: &&u8| matches!(**b, b'\t'..=b'\r' | b' ' | 0xa0);
    let mut pos = s.iter().take_while(kernel_space).count();
    let negative = s.get(pos) == Some(&b'-');
    if negative {
        pos += 1;
    }
    let (base, skip) = if any_base {
        radix_of(&s[pos..])
    } else {
        (10, 0)
    };
    let (value, digits, _) = parse_digits(&s[pos + skip..], base);
    if digits == 0 {
        return None;
    }
    let value = value as u32 as i32;
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// A write to a device's `uevent` (`kobject_synth_uevent`): an action, then
/// optionally a UUID and `KEY=VALUE` arguments with alphanumeric keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticUevent {
    /// The action to announce.
    pub action: crate::uevent::Action,
    /// The UUID given (`SYNTH_UUID=`), as written.
    pub uuid: Option<String>,
    /// The arguments after it (`SYNTH_ARG_KEY=VALUE`).
    pub args: Vec<(String, String)>,
}

/// Parses a write to `uevent` as the driver core does: its string functions
/// stop at a NUL, one trailing newline is dropped, words are separated by
/// spaces; `None` (EINVAL) for an unknown action, a second word that is not
/// a UUID, or an argument that is not `KEY=VALUE` with an alphanumeric KEY.
pub fn parse_synthetic_uevent(input: &[u8]) -> Option<SyntheticUevent> {
    let input = c_str(input);
    let text = input.strip_suffix(b"\n").unwrap_or(input);
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let action = crate::uevent::Action::from_name(words.next()?.as_bytes())?;
    let uuid = match words.next() {
        None => None,
        Some(word) => {
            // uuid_is_valid: the 36-character hyphenated form only.
            if word.len() != 36 || uuid::Uuid::try_parse(word).is_err() {
                return None;
            }
            Some(word.to_string())
        }
    };
    let mut args = Vec::new();
    for arg in words {
        let (key, value) = arg.split_once('=')?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        args.push((key.to_string(), value.to_string()));
    }
    Some(SyntheticUevent { action, uuid, args })
}

/// Whether a write to a device's `uevent` is one the driver core takes.
pub fn parse_uevent_action(input: &[u8]) -> bool {
    parse_synthetic_uevent(input).is_some()
}

/// The kernel's `kstrtobool`: the first character decides (`1`/`y`/`Y`,
/// `0`/`n`/`N`), or `on`/`off` in either case; anything else is EINVAL.
pub fn parse_kstrtobool(input: &[u8]) -> Option<bool> {
    let s = c_str(input);
    match s {
        [b'1' | b'y' | b'Y', ..] => Some(true),
        [b'0' | b'n' | b'N', ..] => Some(false),
        [b'o' | b'O', b'n' | b'N', ..] => Some(true),
        [b'o' | b'O', b'f' | b'F', ..] => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
