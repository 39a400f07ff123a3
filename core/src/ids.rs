//! Typed identifiers (RFC 7143 §11). Each wraps the wire value so that two
//! kinds of ID cannot be swapped by accident.

use core::fmt;

/// Initiator task tag (RFC 7143 §11.1.4). 0xffffffff is reserved.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Itt(pub u32);

impl Itt {
    /// The reserved value 0xffffffff ("no task").
    pub const RESERVED: Itt = Itt(0xffff_ffff);
}

/// Target transfer tag (RFC 7143 §11.7.4). 0xffffffff means "none".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Ttt(pub u32);

impl Ttt {
    /// The reserved value 0xffffffff ("no transfer tag").
    pub const RESERVED: Ttt = Ttt(0xffff_ffff);
}

/// Target session identifying handle (RFC 7143 §11.12.6). 0 during leading login.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Tsih(pub u16);

/// Connection ID (RFC 7143 §11.12.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Cid(pub u16);

/// Initiator session ID: 6 bytes (RFC 7143 §11.12.5), kept in the low 48 bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Isid(pub u64);

impl Isid {
    /// From the 6 wire bytes.
    pub fn from_bytes(b: [u8; 6]) -> Self {
        let mut v = [0u8; 8];
        v[2..].copy_from_slice(&b);
        Isid(u64::from_be_bytes(v))
    }
    /// To the 6 wire bytes.
    pub fn to_bytes(self) -> [u8; 6] {
        let v = self.0.to_be_bytes();
        let mut b = [0u8; 6];
        b.copy_from_slice(&v[2..]);
        b
    }
}

impl fmt::Debug for Isid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Isid({:012x})", self.0)
    }
}

/// Logical unit number in its 8-byte wire form (SAM-5 §4.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lun(pub u64);

impl Lun {
    /// Encode a LUN index (0..16383) with peripheral (< 256) or flat
    /// (>= 256) addressing, as SAM-5 §4.7 and Linux initiators expect.
    pub fn from_index(index: u16) -> Self {
        let index = index & 0x3fff;
        let first: u16 = if index < 256 { index } else { 0x4000 | index };
        Lun(u64::from(first) << 48)
    }
    /// The LUN index for peripheral or flat addressing; `None` for other
    /// address methods or a non-zero second level.
    pub fn index(self) -> Option<u16> {
        if self.0 & 0x0000_ffff_ffff_ffff != 0 {
            return None;
        }
        let first = (self.0 >> 48) as u16;
        match first >> 14 {
            0 if first >> 8 == 0 => Some(first & 0xff),
            1 => Some(first & 0x3fff),
            _ => None,
        }
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => write!(f, "Lun({i})"),
            None => write!(f, "Lun({:#018x})", self.0),
        }
    }
}

/// Logical block address (SBC-4 §4.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub struct Lba(pub u64);

/// Which shard (core) owns something.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ShardId(pub u16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_addressing_round_trips() {
        for i in [0u16, 1, 255, 256, 1000, 16383] {
            assert_eq!(Lun::from_index(i).index(), Some(i));
        }
        assert_eq!(Lun::from_index(1).0, 0x0001_0000_0000_0000);
        assert_eq!(Lun::from_index(256).0, 0x4100_0000_0000_0000);
        assert_eq!(Lun(0x0000_0000_0000_0001).index(), None);
        assert_eq!(Lun(0x8000_0000_0000_0000).index(), None);
    }

    #[test]
    fn isid_round_trips() {
        let b = [0x80, 1, 2, 3, 4, 5];
        assert_eq!(Isid::from_bytes(b).to_bytes(), b);
    }
}
