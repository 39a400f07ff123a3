//! Provisioning status between a backend and GET LBA STATUS (SBC-4 §5.6).
//!
//! A backend answers [`super::BackendOp::MapStatus`] by filling its buffer
//! with [`RECORD_LEN`]-byte records, each a run of bytes starting where the
//! previous one ended (the first at the request's offset): byte count
//! (u64, little endian), then state (u64: [`MAPPED`] or [`DEALLOCATED`]).
//! A record with a count of 0, or the end of the buffer, ends the list; a
//! backend stops at the end of its store. [`put`] writes one record.
//!
//! [`descriptors`] turns records into LBA status descriptors: a block that
//! is only partly deallocated (filesystem blocks smaller than logical
//! blocks) counts as mapped, so a block is reported deallocated only when
//! all of it is. It never allocates beyond its output vector and never
//! fails: no records at all become one MAPPED run to the end of the LU.

/// Bytes per record.
pub const RECORD_LEN: usize = 16;
/// State of a run: mapped (holds data or may).
pub const MAPPED: u64 = 0;
/// State of a run: deallocated (reads as zeros, no storage behind it).
pub const DEALLOCATED: u64 = 1;

/// PROVISIONING STATUS of a descriptor (SBC-4 Table "LBA status descriptor").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Provisioning {
    /// 0h: mapped (or unknown).
    Mapped,
    /// 1h: deallocated.
    Deallocated,
}

impl Provisioning {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            Provisioning::Mapped => 0,
            Provisioning::Deallocated => 1,
        }
    }
}

/// Write record `i` (a run of `len` bytes in `state`) into `buf`; false
/// when the buffer has no room for it.
pub fn put(buf: &mut [u8], i: usize, len: u64, state: u64) -> bool {
    let at = i.saturating_mul(RECORD_LEN);
    let Some(r) = buf.get_mut(at..at.saturating_add(RECORD_LEN)) else { return false };
    let Ok::<&mut [u8; RECORD_LEN], _>(r) = r.try_into() else { return false };
    let (a, b) = r.split_at_mut(8);
    a.copy_from_slice(&len.to_le_bytes());
    b.copy_from_slice(&state.to_le_bytes());
    true
}

/// The records in `buf`: (byte count, state), up to the first empty one.
pub fn records(buf: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    buf.chunks_exact(RECORD_LEN)
        .map(|r| {
            let (a, b) = r.split_at(8);
            let word = |x: &[u8]| <[u8; 8]>::try_from(x).map_or(0, u64::from_le_bytes);
            (word(a), word(b))
        })
        .take_while(|&(n, _)| n > 0)
}

/// LBA status descriptors (LBA, blocks, status) from `lba` on, at most
/// `max` of them, none past `capacity` blocks, each at most 2^32 - 1 blocks
/// long, adjacent runs of one status merged; the first starts at `lba`.
/// `records` start at byte `lba * block_size`.
pub fn descriptors(
    records: impl Iterator<Item = (u64, u64)>,
    lba: u64,
    capacity: u64,
    block_size: u32,
    max: usize,
) -> Vec<(u64, u32, Provisioning)> {
    let bs = u64::from(block_size.max(1));
    let mut out: Vec<(u64, u64, Provisioning)> = Vec::new();
    let mut pos = lba.saturating_mul(bs);
    // Blocks are assigned to runs in order: `next` is the first block not yet
    // reported. A mapped run claims every block it touches; a deallocated
    // run only the blocks it covers whole.
    let mut next = lba;
    let push = |out: &mut Vec<(u64, u64, Provisioning)>, end: u64, p: Provisioning, next: &mut u64| {
        let end = end.min(capacity);
        if end <= *next {
            return;
        }
        match out.last_mut() {
            Some(last) if last.2 == p => last.1 += end - *next,
            _ => out.push((*next, end - *next, p)),
        }
        *next = end;
    };
    for (len, state) in records {
        let start = pos;
        pos = pos.saturating_add(len);
        if state == DEALLOCATED {
            // Blocks before the first whole one were touched by the
            // previous (mapped) run, or are this run's partial head.
            let first_whole = start.div_ceil(bs);
            if first_whole > next {
                push(&mut out, first_whole, Provisioning::Mapped, &mut next);
            }
            push(&mut out, pos / bs, Provisioning::Deallocated, &mut next);
        } else {
            push(&mut out, pos.div_ceil(bs), Provisioning::Mapped, &mut next);
        }
        if next >= capacity {
            break;
        }
    }
    if out.is_empty() {
        push(&mut out, capacity, Provisioning::Mapped, &mut next);
    }
    let mut split = Vec::with_capacity(out.len().min(max));
    for (at, mut n, p) in out {
        let mut at = at;
        while n > 0 && split.len() < max {
            let k = n.min(u64::from(u32::MAX));
            split.push((at, k as u32, p));
            at += k;
            n -= k;
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(list: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; (list.len() + 1) * RECORD_LEN];
        for (i, &(n, s)) in list.iter().enumerate() {
            assert!(put(&mut b, i, n, s));
        }
        b
    }

    #[test]
    fn records_roundtrip_and_stop_at_an_empty_one() {
        let b = recs(&[(4096, MAPPED), (8192, DEALLOCATED)]);
        assert_eq!(records(&b).collect::<Vec<_>>(), vec![(4096, MAPPED), (8192, DEALLOCATED)]);
        let mut small = [0u8; 20];
        assert!(put(&mut small, 0, 1, MAPPED));
        assert!(!put(&mut small, 1, 1, MAPPED), "no room for a second record");
    }

    #[test]
    fn runs_become_block_descriptors() {
        use Provisioning::*;
        let b = recs(&[(8 * 512, MAPPED), (16 * 512, DEALLOCATED), (512, MAPPED)]);
        let d = descriptors(records(&b), 0, 100, 512, 10);
        assert_eq!(d, vec![(0, 8, Mapped), (8, 16, Deallocated), (24, 1, Mapped)]);
        // Starting mid-way: the records start at the requested LBA.
        let d = descriptors(records(&b), 50, 100, 512, 10);
        assert_eq!(d[0], (50, 8, Mapped));
        // At most `max` descriptors.
        assert_eq!(descriptors(records(&b), 0, 100, 512, 2).len(), 2);
    }

    #[test]
    fn partly_deallocated_blocks_count_as_mapped() {
        use Provisioning::*;
        // 4096-byte blocks over 1024-byte filesystem blocks: a hole from
        // 1024 to 9216 covers only block 1 whole.
        let b = recs(&[(1024, MAPPED), (8192, DEALLOCATED), (1024, MAPPED)]);
        let d = descriptors(records(&b), 0, 10, 4096, 10);
        assert_eq!(d, vec![(0, 1, Mapped), (1, 1, Deallocated), (2, 1, Mapped)]);
        // A hole smaller than a block leaves everything mapped, merged.
        let b = recs(&[(512, MAPPED), (1024, DEALLOCATED), (2560, MAPPED)]);
        assert_eq!(descriptors(records(&b), 0, 10, 4096, 10), vec![(0, 1, Mapped)]);
    }

    #[test]
    fn capacity_long_runs_and_no_records() {
        use Provisioning::*;
        let b = recs(&[(1 << 50, DEALLOCATED)]);
        let d = descriptors(records(&b), 0, (1u64 << 33) + 5, 512, 10);
        assert_eq!(d[0], (0, u32::MAX, Deallocated));
        assert_eq!(d.iter().map(|x| u64::from(x.1)).sum::<u64>(), (1u64 << 33) + 5, "cut at the capacity");
        assert!(d.iter().all(|x| x.2 == Deallocated));
        assert_eq!(descriptors(records(&[]), 7, 100, 512, 10), vec![(7, 93, Mapped)]);
    }
}
