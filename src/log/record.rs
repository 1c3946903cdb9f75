//! Segment record framing. Spec code: no I/O.
//!
//! ```text
//! record = len:u32 LE ‖ crc:u32 LE ‖ entry[len]
//! crc    = CRC-32C(len as 4 LE bytes ‖ entry)
//! ```
//! The checksum covers the length too, so a torn or zero-filled header is caught, not read
//! as a huge or empty record. A CRC (not a cryptographic hash) is enough: it guards against
//! torn writes and media errors; tampering is what the signed Merkle tree catches.

/// Bytes before each entry.
pub const HEADER_BYTES: usize = 8;
/// Largest entry: the tlog-tiles entry bundle prefixes each entry with a `u16` length.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

fn checksum(len: u32, entry: &[u8]) -> u32 {
    let c = crc32c::crc32c(&len.to_le_bytes());
    crc32c::crc32c_append(c, entry)
}

/// Appends one framed record to `out`. The caller has checked `entry.len() <= MAX_ENTRY_BYTES`.
pub fn encode(entry: &[u8], out: &mut Vec<u8>) {
    debug_assert!(entry.len() <= MAX_ENTRY_BYTES);
    let len = entry.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, entry).to_le_bytes());
    out.extend_from_slice(entry);
}

/// What is at some offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record whose checksum holds; `next` is the offset after it.
    Record { entry: &'a [u8], next: usize },
    /// Fewer bytes than a header or than the length announces: the end of the data, or a
    /// torn write.
    Incomplete,
    /// A length over the limit or a checksum that does not match.
    Corrupt,
}

/// Decodes the record starting at `buf[at..]`.
pub fn decode(buf: &[u8], at: usize) -> Decoded<'_> {
    let Some(rest) = buf.get(at..) else {
        return Decoded::Incomplete;
    };
    if rest.len() < HEADER_BYTES {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len as usize > MAX_ENTRY_BYTES {
        return Decoded::Corrupt;
    }
    let end = HEADER_BYTES + len as usize;
    if rest.len() < end {
        return Decoded::Incomplete;
    }
    let entry = &rest[HEADER_BYTES..end];
    if checksum(len, entry) != crc {
        return Decoded::Corrupt;
    }
    Decoded::Record {
        entry,
        next: at + end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_every_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode(b"hello", &mut buf);
        assert_eq!(
            decode(&buf, 0),
            Decoded::Record {
                entry: b"hello",
                next: buf.len()
            }
        );
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode(&b, 0), Decoded::Record { .. }),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn every_truncation_is_incomplete_and_zeroes_are_corrupt() {
        let mut buf = Vec::new();
        encode(&[7u8; 100], &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], 0), Decoded::Incomplete, "cut {cut}");
        }
        assert_eq!(decode(&[0u8; 64], 0), Decoded::Corrupt);
        let mut big = Vec::new();
        big.extend_from_slice(&(70_000u32).to_le_bytes());
        big.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&big, 0), Decoded::Corrupt);
    }
}
