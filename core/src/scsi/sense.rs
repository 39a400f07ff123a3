//! Sense data (SPC-4 §4.5): keys, additional sense codes, fixed and descriptor formats.

/// Sense key (SPC-4 §4.5.6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SenseKey(pub u8);

/// Additional sense code and qualifier, ASC in the high byte (SPC-4 §4.5.6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Asc(pub u16);

/// One sense condition.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sense {
    /// Sense key.
    pub key: SenseKey,
    /// ASC/ASCQ.
    pub asc: Asc,
}
