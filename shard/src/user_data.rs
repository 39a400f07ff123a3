//! The 64-bit `user_data` a shard attaches to every io_uring entry, and its
//! decoding when the completion comes back.
//!
//! ```text
//!  63                32 31             8 7        0
//! ┌────────────────────┬────────────────┬──────────┐
//! │ generation (32)    │ slot (24)      │ kind (8) │   Recv / Send / Cancel of a connection
//! ├────────────────────┴───┬────────────┼──────────┤
//! │ cookie (40)            │ backend(16)│ kind (8) │   an entry a backend queued
//! └────────────────────────┴────────────┴──────────┘
//! ```
//! The generation makes a late completion for a closed and reused slot
//! recognisable. Kind 0 is never used, so a zeroed entry cannot be mistaken
//! for a real one.

/// Largest number of connection slots a shard can address.
pub const MAX_SLOTS: u32 = 1 << 24;
/// Largest number of backends a shard can address.
pub const MAX_BACKENDS: usize = 1 << 16;

const KIND_WAKE: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_CANCEL: u64 = 4;
const KIND_BACKEND: u64 = 5;

/// A connection operation kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnOp {
    /// Receive into the core's receive buffer.
    Recv,
    /// Send the core's transmit bytes.
    Send,
    /// An ASYNC_CANCEL we issued for one of the connection's operations.
    Cancel,
}

/// What a completion belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UserData {
    /// The shard's wake-up poll on its eventfd.
    Wake,
    /// An operation of the connection in `slot` at `gen`.
    Conn {
        /// Which operation.
        op: ConnOp,
        /// Slot index.
        slot: u32,
        /// Slot generation.
        gen: u32,
    },
    /// An entry queued by backend `backend`, with its own cookie.
    Backend {
        /// Backend index.
        backend: u16,
        /// The backend's cookie (40 bits).
        cookie: u64,
    },
}

impl UserData {
    /// Encode. Slot and cookie must be in range (asserted: a bug otherwise).
    pub fn encode(self) -> u64 {
        match self {
            UserData::Wake => KIND_WAKE,
            UserData::Conn { op, slot, gen } => {
                assert!(slot < MAX_SLOTS);
                let kind = match op {
                    ConnOp::Recv => KIND_RECV,
                    ConnOp::Send => KIND_SEND,
                    ConnOp::Cancel => KIND_CANCEL,
                };
                kind | (u64::from(slot) << 8) | (u64::from(gen) << 32)
            }
            UserData::Backend { backend, cookie } => {
                assert!(cookie <= shardtgt_backends::COOKIE_MAX);
                KIND_BACKEND | (u64::from(backend) << 8) | (cookie << 24)
            }
        }
    }

    /// Decode; `None` for a value this shard never produced.
    pub fn decode(v: u64) -> Option<UserData> {
        let slot = ((v >> 8) & 0xFF_FFFF) as u32;
        let gen = (v >> 32) as u32;
        let conn = |op| Some(UserData::Conn { op, slot, gen });
        match v & 0xFF {
            KIND_WAKE if v == KIND_WAKE => Some(UserData::Wake),
            KIND_RECV => conn(ConnOp::Recv),
            KIND_SEND => conn(ConnOp::Send),
            KIND_CANCEL => conn(ConnOp::Cancel),
            KIND_BACKEND => Some(UserData::Backend { backend: ((v >> 8) & 0xFFFF) as u16, cookie: v >> 24 }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let cases = [
            UserData::Wake,
            UserData::Conn { op: ConnOp::Recv, slot: 0, gen: 0 },
            UserData::Conn { op: ConnOp::Send, slot: MAX_SLOTS - 1, gen: u32::MAX },
            UserData::Conn { op: ConnOp::Cancel, slot: 12345, gen: 7 },
            UserData::Backend { backend: 0, cookie: 0 },
            UserData::Backend { backend: u16::MAX, cookie: shardtgt_backends::COOKIE_MAX },
        ];
        for c in cases {
            assert_eq!(UserData::decode(c.encode()), Some(c), "{c:?}");
        }
        // Distinct operations of one slot never collide.
        let r = UserData::Conn { op: ConnOp::Recv, slot: 5, gen: 9 }.encode();
        let s = UserData::Conn { op: ConnOp::Send, slot: 5, gen: 9 }.encode();
        let r2 = UserData::Conn { op: ConnOp::Recv, slot: 5, gen: 10 }.encode();
        assert!(r != s && r != r2);
    }

    #[test]
    fn unknown_values_decode_to_none() {
        assert_eq!(UserData::decode(0), None);
        assert_eq!(UserData::decode(0xFF), None);
        assert_eq!(UserData::decode(KIND_WAKE | 0x100), None);
    }

    #[test]
    #[should_panic]
    fn slot_out_of_range_is_a_bug() {
        let _ = UserData::Conn { op: ConnOp::Recv, slot: MAX_SLOTS, gen: 0 }.encode();
    }
}
