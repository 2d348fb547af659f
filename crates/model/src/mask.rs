//! The 256-bit masks of the AP architecture (apmask, aqmask, APM, AQM, ADM).
//!
//! Bit 0 is the leftmost bit (kernel.md §1): the kernel stores them with
//! `set_bit_inv` and prints four 64-bit words, most significant first, so
//! word `i / 64` holds bit `i` at position `63 - i % 64`. With that layout the
//! kernel's `"0x%016lx%016lx%016lx%016lx\n"` is simply the words in order.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set of ids 0..=255 with the kernel's bit order.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct Mask256([u64; 4]);

impl Mask256 {
    /// No id set.
    pub const EMPTY: Mask256 = Mask256([0; 4]);
    /// Every id set: the boot default of apmask and aqmask.
    pub const FULL: Mask256 = Mask256([u64::MAX; 4]);

    #[inline]
    const fn word_bit(id: u8) -> (usize, u64) {
        ((id >> 6) as usize, 1u64 << (63 - (id & 63)))
    }

    /// The mask with only `id` set.
    pub const fn single(id: u8) -> Self {
        let (w, b) = Self::word_bit(id);
        let mut words = [0u64; 4];
        words[w] = b;
        Mask256(words)
    }

    /// The mask with `first..=last` set (empty if `first > last`).
    pub fn range(first: u8, last: u8) -> Self {
        let mut m = Self::EMPTY;
        for id in first..=last {
            m.set(id);
        }
        m
    }

    /// The raw words, first word holds bits 0..=63 with bit 0 as its MSB.
    pub const fn words(&self) -> [u64; 4] {
        self.0
    }

    /// The mask of four raw words, laid out as [`Mask256::words`] gives them.
    pub const fn from_words(words: [u64; 4]) -> Self {
        Mask256(words)
    }

    /// Whether `id` is set.
    #[inline]
    pub fn contains(&self, id: u8) -> bool {
        let (w, b) = Self::word_bit(id);
        self.0[w] & b != 0
    }

    /// Sets `id`.
    #[inline]
    pub fn set(&mut self, id: u8) {
        let (w, b) = Self::word_bit(id);
        self.0[w] |= b;
    }

    /// Clears `id`.
    #[inline]
    pub fn clear(&mut self, id: u8) {
        let (w, b) = Self::word_bit(id);
        self.0[w] &= !b;
    }

    /// Whether no id is set.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// Whether the two masks share an id.
    #[inline]
    pub fn intersects(&self, other: &Mask256) -> bool {
        (0..4).any(|i| self.0[i] & other.0[i] != 0)
    }

    /// Whether every id of `self` is set in `other`.
    #[inline]
    pub fn is_subset_of(&self, other: &Mask256) -> bool {
        (0..4).all(|i| self.0[i] & !other.0[i] == 0)
    }

    /// The ids set in both.
    #[inline]
    pub fn and(&self, other: &Mask256) -> Mask256 {
        Mask256(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    /// The ids set in either.
    #[inline]
    pub fn or(&self, other: &Mask256) -> Mask256 {
        Mask256(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    /// `self` without the ids of `other`.
    #[inline]
    pub fn and_not(&self, other: &Mask256) -> Mask256 {
        Mask256(std::array::from_fn(|i| self.0[i] & !other.0[i]))
    }

    /// The ids not set.
    #[inline]
    pub fn complement(&self) -> Mask256 {
        Mask256(std::array::from_fn(|i| !self.0[i]))
    }

    /// Keeps only ids `0..=max`.
    pub fn truncated(&self, max: u8) -> Mask256 {
        self.and(&Mask256::range(0, max))
    }

    /// How many ids are set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The lowest set id.
    pub fn first(&self) -> Option<u8> {
        self.iter().next()
    }

    /// The highest set id.
    pub fn last(&self) -> Option<u8> {
        (0..4).rev().find_map(|w| {
            let word = self.0[w];
            (word != 0).then(|| (w as u32 * 64 + 63 - word.trailing_zeros()) as u8)
        })
    }

    /// Set ids in ascending order.
    pub fn iter(&self) -> Ids {
        Ids {
            words: self.0,
            word: 0,
        }
    }

    /// The kernel's sysfs form: `0x` + 64 lower-case hex digits + newline.
    pub fn to_sysfs(&self) -> String {
        format!("{self}\n")
    }

    /// A compact list of the set ids in decimal with ranges, as chzdev and
    /// lszdev show masks: `0,2-255`; `-` when empty.
    pub fn to_list(&self) -> String {
        self.format_ranges(|id| id.to_string(), "-")
    }

    /// Like [`Mask256::to_list`], in `0x` hex: `0x05-0x06,0xab`.
    pub fn to_hex_list(&self) -> String {
        self.format_ranges(|id| format!("{id:#04x}"), "-")
    }

    fn format_ranges(&self, fmt_id: impl Fn(u8) -> String, empty: &str) -> String {
        let mut parts = Vec::new();
        let mut ids = self.iter().peekable();
        while let Some(start) = ids.next() {
            let mut end = start;
            while ids.peek() == Some(&end.wrapping_add(1)) && end != 255 {
                end = ids.next().expect("peeked");
            }
            parts.push(if start == end {
                fmt_id(start)
            } else {
                format!("{}-{}", fmt_id(start), fmt_id(end))
            });
        }
        if parts.is_empty() {
            empty.to_string()
        } else {
            parts.join(",")
        }
    }
}

impl FromIterator<u8> for Mask256 {
    fn from_iter<T: IntoIterator<Item = u8>>(iter: T) -> Self {
        let mut m = Mask256::EMPTY;
        for id in iter {
            m.set(id);
        }
        m
    }
}

/// Iterator over the set ids of a [`Mask256`], ascending.
pub struct Ids {
    words: [u64; 4],
    word: usize,
}

impl Iterator for Ids {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        while self.word < 4 {
            let w = self.words[self.word];
            if w != 0 {
                let pos = w.leading_zeros();
                self.words[self.word] &= !(1u64 << (63 - pos));
                return Some((self.word as u32 * 64 + pos) as u8);
            }
            self.word += 1;
        }
        None
    }
}

impl fmt::Display for Mask256 {
    /// `0x` + 64 lower-case hex digits, no newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:016x}{:016x}{:016x}{:016x}",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl fmt::Debug for Mask256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mask256[{}]", self.to_list())
    }
}

/// Masks serialise as the kernel prints them (without the newline), so state
/// files are readable and diffable.
impl Serialize for Mask256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mask256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text
            .strip_prefix("0x")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a 256-bit mask: expected 0x followed by 64 hex digits"
                ))
            })?;
        let mut words = [0u64; 4];
        for (i, word) in words.iter_mut().enumerate() {
            *word = u64::from_str_radix(&digits[i * 16..i * 16 + 16], 16)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(Mask256(words))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_zero_is_leftmost() {
        assert_eq!(
            Mask256::single(0).to_sysfs(),
            "0x8000000000000000000000000000000000000000000000000000000000000000\n"
        );
        assert_eq!(
            Mask256::single(255).to_string(),
            "0x0000000000000000000000000000000000000000000000000000000000000001"
        );
        assert_eq!(Mask256::FULL.to_string(), format!("0x{}", "f".repeat(64)));
    }

    #[test]
    fn iteration_is_ascending_and_complete() {
        let m: Mask256 = [255u8, 0, 64, 63, 128, 7].into_iter().collect();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 7, 63, 64, 128, 255]);
        assert_eq!(m.count(), 6);
        assert_eq!(m.first(), Some(0));
        assert_eq!(m.last(), Some(255));
        assert_eq!(Mask256::EMPTY.last(), None);
        assert_eq!(Mask256::FULL.iter().count(), 256);
    }

    #[test]
    fn set_algebra() {
        let a = Mask256::range(0, 9);
        let b = Mask256::range(5, 20);
        assert_eq!(a.and(&b), Mask256::range(5, 9));
        assert_eq!(a.or(&b), Mask256::range(0, 20));
        assert_eq!(a.and_not(&b), Mask256::range(0, 4));
        assert!(a.intersects(&b));
        assert!(!a.intersects(&Mask256::range(10, 11)));
        assert!(Mask256::range(2, 3).is_subset_of(&a));
        assert!(!b.is_subset_of(&a));
        assert_eq!(a.complement().count(), 246);
        assert_eq!(Mask256::FULL.truncated(15), Mask256::range(0, 15));
    }

    #[test]
    fn lists() {
        let m: Mask256 = [0u8, 2, 3, 4, 255].into_iter().collect();
        assert_eq!(m.to_list(), "0,2-4,255");
        assert_eq!(m.to_hex_list(), "0x00,0x02-0x04,0xff");
        assert_eq!(Mask256::EMPTY.to_list(), "-");
        assert_eq!(Mask256::FULL.to_list(), "0-255");
    }

    #[test]
    fn serde_round_trip_and_rejection() {
        let m: Mask256 = [1u8, 7, 200].into_iter().collect();
        let json = serde_json_like(&m);
        assert_eq!(json, m.to_string());
        let back: Mask256 = toml::from_str::<Wrapper>(&format!("m = \"{m}\""))
            .unwrap()
            .m;
        assert_eq!(back, m);
        let err = toml::from_str::<Wrapper>("m = \"0x12\"").unwrap_err();
        assert!(err.to_string().contains("is not a 256-bit mask"), "{err}");
    }

    #[derive(Debug, Deserialize)]
    struct Wrapper {
        m: Mask256,
    }

    fn serde_json_like(m: &Mask256) -> String {
        #[derive(Serialize)]
        struct W {
            m: Mask256,
        }
        let text = toml::to_string(&W { m: *m }).unwrap();
        text.trim()
            .strip_prefix("m = \"")
            .unwrap()
            .strip_suffix('"')
            .unwrap()
            .to_string()
    }
}
