//! Small bounds-checked byte helpers shared by the codec and the SCSI
//! emulation, so that no index or slice in the core can panic on input from
//! the network (the crate denies `clippy::indexing_slicing` outside tests).
//! They never allocate.

/// Copy as much of `src` as fits into the front of `out`; returns the number
/// of bytes copied (`min(out.len(), src.len())`).
#[inline]
pub(crate) fn copy_prefix(out: &mut [u8], src: &[u8]) -> usize {
    let n = out.len().min(src.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), src.get(..n)) {
        dst.copy_from_slice(src);
    }
    n
}

/// `data[start..start + len]`, or `None` when that range is not inside
/// `data` (or `start + len` overflows).
#[inline]
pub(crate) fn range(data: &[u8], start: usize, len: usize) -> Option<&[u8]> {
    data.get(start..start.checked_add(len)?)
}

/// Mutable form of [`range`].
#[inline]
pub(crate) fn range_mut(data: &mut [u8], start: usize, len: usize) -> Option<&mut [u8]> {
    data.get_mut(start..start.checked_add(len)?)
}

/// The first `len` bytes of `data`, or all of it when shorter.
#[inline]
pub(crate) fn prefix(data: &[u8], len: usize) -> &[u8] {
    data.get(..len).unwrap_or(data)
}

/// Mutable form of [`prefix`].
#[inline]
pub(crate) fn prefix_mut(data: &mut [u8], len: usize) -> &mut [u8] {
    let n = len.min(data.len());
    let (head, _) = data.split_at_mut(n);
    head
}

/// Copy `src[src_at..src_at + len]` to `dst[dst_at..dst_at + len]`; returns
/// `false` (and copies nothing) when either range does not fit.
#[inline]
pub(crate) fn copy_range(dst: &mut [u8], dst_at: usize, src: &[u8], src_at: usize, len: usize) -> bool {
    match (range_mut(dst, dst_at, len), range(src, src_at, len)) {
        (Some(d), Some(s)) => {
            d.copy_from_slice(s);
            true
        }
        _ => false,
    }
}
