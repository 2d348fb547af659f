//! The message udevd broadcasts to its monitors (libudev's "udev" netlink
//! group): a 40-byte header, then `KEY=VALUE` properties, each ending in a
//! NUL (docs/research/uevents.md §4.1).
//!
//! The header's filter hashes let a monitor's socket filter drop messages
//! of subsystems it did not ask for without reading them, so they must be
//! right for `udevadm monitor --subsystem-match=ap` to see anything.

/// The prefix every such message starts with.
pub const PREFIX: &[u8; 8] = b"libudev\0";
/// The magic that follows it, in network byte order.
pub const MAGIC: u32 = 0xfeed_cafe;
/// The header's size, and so where the properties start.
pub const HEADER_SIZE: usize = 40;

/// One message with these properties (in order), for a device of
/// `subsystem` and, if it has one, `devtype`.
pub fn encode(properties: &[(String, String)], subsystem: &str, devtype: Option<&str>) -> Vec<u8> {
    let mut blob = Vec::new();
    for (key, value) in properties {
        blob.extend_from_slice(key.as_bytes());
        blob.push(b'=');
        blob.extend_from_slice(value.as_bytes());
        blob.push(0);
    }
    let mut message = Vec::with_capacity(HEADER_SIZE + blob.len());
    message.extend_from_slice(PREFIX);
    message.extend_from_slice(&MAGIC.to_be_bytes());
    // Sizes and offsets are in the sender's byte order; hashes are not.
    message.extend_from_slice(&(HEADER_SIZE as u32).to_ne_bytes());
    message.extend_from_slice(&(HEADER_SIZE as u32).to_ne_bytes());
    message.extend_from_slice(&(blob.len() as u32).to_ne_bytes());
    message.extend_from_slice(&murmur_hash2(subsystem.as_bytes()).to_be_bytes());
    message.extend_from_slice(
        &devtype
            .map_or(0, |t| murmur_hash2(t.as_bytes()))
            .to_be_bytes(),
    );
    // No tags: an empty bloom filter (high and low halves).
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    debug_assert_eq!(message.len(), HEADER_SIZE);
    message.extend_from_slice(&blob);
    message
}

/// The properties of a message `encode` made, or `None` if it is not one.
#[cfg(test)]
pub fn decode(message: &[u8]) -> Option<Vec<(String, String)>> {
    if message.len() < HEADER_SIZE
        || &message[..8] != PREFIX
        || message[8..12] != MAGIC.to_be_bytes()
    {
        return None;
    }
    let offset = u32::from_ne_bytes(message[16..20].try_into().ok()?) as usize;
    let blob = message.get(offset..)?;
    blob.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let text = std::str::from_utf8(s).ok()?;
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// MurmurHash2 (32-bit, seed 0), the hash udev's filters use.
pub fn murmur_hash2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_hash2_gives_the_reference_values() {
        // Austin Appleby's MurmurHash2, seed 0, little-endian reads.
        assert_eq!(murmur_hash2(b""), 0);
        assert_eq!(murmur_hash2(b"a"), 0x92685f5e);
        assert_eq!(murmur_hash2(b"abcd"), 0x26873021);
    }

    #[test]
    fn a_message_has_the_header_libudev_checks_and_round_trips() {
        let props = vec![
            ("ACTION".to_string(), "add".to_string()),
            ("DEVPATH".to_string(), "/devices/ap/card05".to_string()),
            ("SUBSYSTEM".to_string(), "ap".to_string()),
            ("SEQNUM".to_string(), "7".to_string()),
        ];
        let m = encode(&props, "ap", Some("ap_card"));
        assert_eq!(&m[..8], b"libudev\0");
        assert_eq!(m[8..12], [0xfe, 0xed, 0xca, 0xfe]);
        assert_eq!(u32::from_ne_bytes(m[16..20].try_into().unwrap()), 40);
        let blob_len = u32::from_ne_bytes(m[20..24].try_into().unwrap()) as usize;
        assert_eq!(m.len(), 40 + blob_len);
        assert_eq!(m[24..28], murmur_hash2(b"ap").to_be_bytes());
        assert_eq!(m[28..32], murmur_hash2(b"ap_card").to_be_bytes());
        assert_eq!(*m.last().unwrap(), 0, "each property ends in NUL");
        assert_eq!(decode(&m), Some(props));
        assert_eq!(
            decode(b"add@/devices/ap\0ACTION=add\0"),
            None,
            "a kernel message"
        );
    }
}
