//! Stamped blocks for integrity runs (`--verify`).
//!
//! Every 512-byte piece of a written buffer carries:
//! ```text
//!  0..8    sector number (byte offset / 512), little-endian
//!  8..16   generation (how many times this session wrote the region)
//!  16..24  run tag (random per run, so old data is never mistaken for new)
//!  24..508 filler derived from the three above
//!  508..512 CRC32C of bytes 0..508
//! ```
//! A read is checked against the session's model of what it last wrote
//! (regions never written in this run are not checked).

use shardtgt_core::digest::crc32c;

use crate::workload::Rng;

/// Bytes per stamp.
pub const STAMP: usize = 512;

/// Fill `buf` (a multiple of 512 bytes) with stamps for sectors starting at `sector`.
pub fn stamp(buf: &mut [u8], sector: u64, generation: u64, tag: u64) {
    for (i, blk) in buf.chunks_exact_mut(STAMP).enumerate() {
        let s = sector + i as u64;
        blk[0..8].copy_from_slice(&s.to_le_bytes());
        blk[8..16].copy_from_slice(&generation.to_le_bytes());
        blk[16..24].copy_from_slice(&tag.to_le_bytes());
        let mut r = Rng::new(s ^ generation.rotate_left(32) ^ tag);
        for w in blk[24..504].chunks_exact_mut(8) {
            w.copy_from_slice(&r.next_u64().to_le_bytes());
        }
        blk[504..508].copy_from_slice(&(r.next_u64() as u32).to_le_bytes());
        let crc = crc32c(&blk[..508]);
        blk[508..512].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Check `buf` against the stamps [`stamp`] would write; `None` when it
/// matches, else a description of the first bad piece.
pub fn check(buf: &[u8], sector: u64, generation: u64, tag: u64) -> Option<String> {
    for (i, blk) in buf.chunks_exact(STAMP).enumerate() {
        let s = sector + i as u64;
        let u = |r: core::ops::Range<usize>| u64::from_le_bytes(blk[r].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(blk[508..512].try_into().unwrap_or_default());
        if crc != crc32c(&blk[..508]) {
            return Some(format!("sector {s}: checksum mismatch (torn or foreign data)"));
        }
        let (got_s, got_g, got_t) = (u(0..8), u(8..16), u(16..24));
        if got_t != tag {
            return Some(format!("sector {s}: data from another run (tag {got_t:#x})"));
        }
        if got_s != s {
            return Some(format!("sector {s}: holds sector {got_s}'s data (misplaced write)"));
        }
        if got_g != generation {
            return Some(format!("sector {s}: generation {got_g}, expected {generation} (stale or lost write)"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_then_check() {
        let mut b = vec![0u8; 4096];
        stamp(&mut b, 80, 3, 0xabc);
        assert_eq!(check(&b, 80, 3, 0xabc), None);
        assert!(check(&b, 80, 2, 0xabc).unwrap().contains("generation"));
        assert!(check(&b, 88, 3, 0xabc).unwrap().contains("misplaced"));
        assert!(check(&b, 80, 3, 0xabd).unwrap().contains("another run"));
        b[1000] ^= 1;
        assert!(check(&b, 80, 3, 0xabc).unwrap().contains("checksum"));
        assert!(check(&[0u8; 512], 0, 1, 1).unwrap().contains("checksum"));
    }
}
