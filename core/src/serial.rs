//! Serial-number arithmetic for 32-bit sequence numbers (RFC 1982), as
//! RFC 7143 §4.2.2.1 requires for CmdSN, StatSN and DataSN comparisons.

/// Defines a 32-bit sequence-number newtype compared with RFC 1982 arithmetic.
macro_rules! serial_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// The next number (wrapping).
            #[must_use]
            pub fn next(self) -> Self {
                Self(self.0.wrapping_add(1))
            }
            /// `self + n` (wrapping).
            #[must_use]
            pub fn plus(self, n: u32) -> Self {
                Self(self.0.wrapping_add(n))
            }
            /// RFC 1982 "less than": `self` precedes `other`.
            pub fn lt(self, other: Self) -> bool {
                serial_lt(self.0, other.0)
            }
            /// RFC 1982 "less than or equal".
            pub fn le(self, other: Self) -> bool {
                self == other || serial_lt(self.0, other.0)
            }
            /// RFC 1982 "greater than".
            pub fn gt(self, other: Self) -> bool {
                serial_lt(other.0, self.0)
            }
            /// Distance from `other` forward to `self` (wrapping).
            pub fn distance_from(self, other: Self) -> u32 {
                self.0.wrapping_sub(other.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

/// RFC 1982 §3.2 comparison for SERIAL_BITS = 32: `a < b`.
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < (1 << 31)
}

serial_type!(
    /// Command sequence number (RFC 7143 §4.2.2.1).
    CmdSn
);
serial_type!(
    /// Status sequence number (RFC 7143 §4.2.2.2).
    StatSn
);
serial_type!(
    /// Data/R2T sequence number (RFC 7143 §4.2.2.3).
    DataSn
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(CmdSn(u32::MAX).lt(CmdSn(0)));
        assert!(CmdSn(0).gt(CmdSn(u32::MAX)));
        assert!(CmdSn(5).le(CmdSn(5)));
        assert!(!CmdSn(5).lt(CmdSn(5)));
        assert_eq!(CmdSn(u32::MAX).next(), CmdSn(0));
        assert_eq!(CmdSn(3).distance_from(CmdSn(u32::MAX)), 4);
    }

    #[test]
    fn half_space_is_not_less() {
        // RFC 1982: a and a + 2^31 are undefined; we answer "not less" both ways.
        assert!(!serial_lt(0, 1 << 31));
        assert!(serial_lt(0, (1 << 31) - 1));
    }
}
