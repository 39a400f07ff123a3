//! Text `key=value` parsing and encoding (RFC 7143 §6.1).
//!
//! A (reassembled) text data segment is a sequence of `key=value` pairs,
//! each followed by one NUL. This module splits such a segment into pairs
//! with hard bounds (key length, value length, pair count), and parses the
//! value types of §6.1 (numerical-value, boolean-value, list-of-values).
//! It never interprets what a key means; that is [`super::negotiate`].

use std::fmt;

/// Longest key name (RFC 7143 §6.1: a standard-label "must not exceed 63
/// characters"); a longer key is an error.
pub const MAX_KEY_LEN: usize = 63;

/// Longest value the parser accepts, in bytes. RFC 7143 §6.1 requires every
/// implementation to receive at least 8192 bytes of key=value data in a
/// negotiation; no single value we understand is longer (a CHAP_C/CHAP_R of
/// 1024 binary bytes is 2050 characters in hex, RFC 7143 §12.1.3).
pub const MAX_VALUE_LEN: usize = 8192;

/// Most pairs one text data segment may carry (a bound of ours, not the RFC's).
pub const MAX_PAIRS: usize = 1024;

/// Longest simple-value, in bytes, unless a key says otherwise
/// (RFC 7143 §6.1: "the maximum length of a simple-value ... is 255 bytes").
pub const MAX_SIMPLE_VALUE_LEN: usize = 255;

/// Longest iSCSI name, in bytes (RFC 7143 §4.2.7.1: 223 bytes).
pub const MAX_ISCSI_NAME_LEN: usize = 223;

/// Reserved constant "Reject" (RFC 7143 §6.2).
pub const REJECT: &str = "Reject";
/// Reserved constant "Irrelevant" (RFC 7143 §6.2).
pub const IRRELEVANT: &str = "Irrelevant";
/// Reserved constant "NotUnderstood" (RFC 7143 §6.2).
pub const NOT_UNDERSTOOD: &str = "NotUnderstood";
/// Reserved constant "None" (RFC 7143 §6.2).
pub const NONE: &str = "None";

/// What is wrong with a text data segment (RFC 7143 §6.1).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TextError {
    /// Pair number `index` (0-based) has no `=`.
    MissingEquals {
        /// Pair index.
        index: usize,
    },
    /// Pair number `index` starts with `=`.
    EmptyKey {
        /// Pair index.
        index: usize,
    },
    /// A NUL follows a NUL before the end of the text (an empty pair).
    EmptyPair {
        /// Pair index.
        index: usize,
    },
    /// Key longer than [`MAX_KEY_LEN`] bytes.
    KeyTooLong {
        /// Pair index.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// Key contains a byte that is not printable ASCII.
    BadKeyChar {
        /// Pair index.
        index: usize,
    },
    /// Value longer than [`MAX_VALUE_LEN`] bytes.
    ValueTooLong {
        /// The key.
        key: String,
        /// Its value's length in bytes.
        len: usize,
    },
    /// Value is not UTF-8 (RFC 7143 §6.1: text is UTF-8).
    InvalidUtf8 {
        /// The key.
        key: String,
    },
    /// More than [`MAX_PAIRS`] pairs.
    TooManyPairs,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::MissingEquals { index } => write!(f, "text pair {index} has no '='"),
            TextError::EmptyKey { index } => write!(f, "text pair {index} has an empty key"),
            TextError::EmptyPair { index } => write!(f, "text pair {index} is empty"),
            TextError::KeyTooLong { index, len } => {
                write!(f, "text pair {index}: key of {len} bytes exceeds {MAX_KEY_LEN}")
            }
            TextError::BadKeyChar { index } => {
                write!(f, "text pair {index}: key has a non-printable byte")
            }
            TextError::ValueTooLong { key, len } => {
                write!(f, "{key}: value of {len} bytes exceeds {MAX_VALUE_LEN}")
            }
            TextError::InvalidUtf8 { key } => write!(f, "{key}: value is not UTF-8"),
            TextError::TooManyPairs => write!(f, "more than {MAX_PAIRS} text pairs"),
        }
    }
}

impl std::error::Error for TextError {}

/// Split a reassembled text data segment into `(key, value)` pairs, in order
/// (RFC 7143 §6.1). Every pair must be NUL-terminated, but a missing final
/// NUL and trailing padding NULs are tolerated. Key names are at most
/// [`MAX_KEY_LEN`] bytes of printable ASCII, values at most
/// [`MAX_VALUE_LEN`] bytes of UTF-8, and there are at most [`MAX_PAIRS`]
/// pairs. Duplicates are kept (whether they are allowed depends on the key,
/// RFC 7143 §6.2).
pub fn parse_keys(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let body = crate::bytes::prefix(data, end);
    let mut out = Vec::new();
    if body.is_empty() {
        return Ok(out);
    }
    for (index, item) in body.split(|&b| b == 0).enumerate() {
        if out.len() >= MAX_PAIRS {
            return Err(TextError::TooManyPairs);
        }
        if item.is_empty() {
            return Err(TextError::EmptyPair { index });
        }
        let eq = item.iter().position(|&b| b == b'=').ok_or(TextError::MissingEquals { index })?;
        let (key, value) = item.split_at(eq);
        let value = value.get(1..).unwrap_or_default();
        if key.is_empty() {
            return Err(TextError::EmptyKey { index });
        }
        if key.len() > MAX_KEY_LEN {
            return Err(TextError::KeyTooLong { index, len: key.len() });
        }
        if !key.iter().all(u8::is_ascii_graphic) {
            return Err(TextError::BadKeyChar { index });
        }
        // Checked above: printable ASCII is UTF-8.
        let key = String::from_utf8_lossy(key).into_owned();
        if value.len() > MAX_VALUE_LEN {
            return Err(TextError::ValueTooLong { key, len: value.len() });
        }
        let value = match std::str::from_utf8(value) {
            Ok(v) => v.to_owned(),
            Err(_) => return Err(TextError::InvalidUtf8 { key }),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Append `key=value` and its NUL terminator to `out` (RFC 7143 §6.1).
pub fn push_key(out: &mut Vec<u8>, key: &str, value: &str) {
    out.reserve(key.len() + value.len() + 2);
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value.as_bytes());
    out.push(0);
}

/// Encode a list of pairs as a text data segment (RFC 7143 §6.1).
pub fn encode_keys<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        push_key(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// Parse a numerical-value (RFC 7143 §6.1): a decimal-constant ("0" or
/// digits without a leading zero) or a hex-constant ("0x"/"0X" and one or
/// more hex digits), less than 2^64. Anything else is `None`.
pub fn parse_number(v: &str) -> Option<u64> {
    let b = v.as_bytes();
    if let Some(digits) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).filter(|d| !d.is_empty()) {
        if !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let significant = digits.trim_start_matches('0');
        if significant.len() > 16 {
            return None;
        }
        if significant.is_empty() {
            return Some(0);
        }
        return u64::from_str_radix(significant, 16).ok();
    }
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b.first() == Some(&b'0') {
        return None;
    }
    v.parse::<u64>().ok()
}

/// Parse a boolean-value (RFC 7143 §6.1): exactly "Yes" or "No".
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// The boolean-value string for `b` (RFC 7143 §6.1).
pub fn bool_str(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// Split a list-of-values (RFC 7143 §6.1: values separated by commas).
/// `None` if the list or any item in it is empty.
pub fn parse_list(v: &str) -> Option<Vec<&str>> {
    if v.is_empty() {
        return None;
    }
    let items: Vec<&str> = v.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return None;
    }
    Some(items)
}

/// Whether `v` is one of the constants that RFC 7143 §6.2 reserves for
/// answers ("Reject", "Irrelevant", "NotUnderstood"); proposing one of them
/// is a protocol error.
pub fn is_reserved_answer(v: &str) -> bool {
    v == REJECT || v == IRRELEVANT || v == NOT_UNDERSTOOD
}

/// Whether `k` is a standard-label (RFC 7143 §6.1): a capital letter, then
/// letters, digits, '.', '-', '+', '@' or '_', at most 63 characters.
pub fn is_standard_label(k: &str) -> bool {
    let Some((first, rest)) = k.as_bytes().split_first() else { return false };
    k.len() <= MAX_KEY_LEN
        && first.is_ascii_uppercase()
        && rest.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'@' | b'_'))
}

/// Whether `k` is an extension key: private "X-..." or IANA-registered
/// "X#..." (RFC 7143 §6.2, §13.22).
pub fn is_extension_key(k: &str) -> bool {
    k.starts_with("X-") || k.starts_with("X#")
}

/// Whether `v` is an acceptable iSCSI name (RFC 7143 §4.2.7): 1 to 223
/// bytes, an `iqn.`, `eui.` or `naa.` type designator, and no whitespace
/// or control characters. (We do not run the full stringprep profile.)
pub fn is_valid_iscsi_name(v: &str) -> bool {
    if v.is_empty() || v.len() > MAX_ISCSI_NAME_LEN {
        return false;
    }
    let prefix_ok = v
        .get(..4)
        .map(|p| p.eq_ignore_ascii_case("iqn.") || p.eq_ignore_ascii_case("eui.") || p.eq_ignore_ascii_case("naa."))
        .unwrap_or(false);
    prefix_ok && v.len() > 4 && !v.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '=')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_terminated_pairs() {
        let p = parse_keys(b"A=1\0B=two\0").unwrap();
        assert_eq!(p, pairs(&[("A", "1"), ("B", "two")]));
    }

    #[test]
    fn tolerates_missing_final_nul_and_padding() {
        assert_eq!(parse_keys(b"A=1\0B=2").unwrap(), pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(parse_keys(b"A=1\0\0\0\0").unwrap(), pairs(&[("A", "1")]));
        assert_eq!(parse_keys(b"").unwrap(), vec![]);
        assert_eq!(parse_keys(b"\0\0\0").unwrap(), vec![]);
    }

    #[test]
    fn empty_value_and_equals_in_value() {
        assert_eq!(parse_keys(b"SendTargets=\0X-a=b=c\0").unwrap(), pairs(&[("SendTargets", ""), ("X-a", "b=c")]));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_keys(b"A\0"), Err(TextError::MissingEquals { index: 0 }));
        assert_eq!(parse_keys(b"A=1\0=2\0"), Err(TextError::EmptyKey { index: 1 }));
        assert_eq!(parse_keys(b"A=1\0\0B=2\0"), Err(TextError::EmptyPair { index: 1 }));
        assert_eq!(parse_keys(b"A B=1\0"), Err(TextError::BadKeyChar { index: 0 }));
        assert_eq!(parse_keys(b"A=\xff\xfe\0"), Err(TextError::InvalidUtf8 { key: "A".into() }));
    }

    #[test]
    fn key_length_bound() {
        let k63 = "K".repeat(63);
        let ok = format!("{k63}=v\0");
        assert_eq!(parse_keys(ok.as_bytes()).unwrap()[0].0, k63);
        let k64 = "K".repeat(64);
        let bad = format!("{k64}=v\0");
        assert_eq!(parse_keys(bad.as_bytes()), Err(TextError::KeyTooLong { index: 0, len: 64 }));
    }

    #[test]
    fn value_length_bound() {
        let ok = format!("A={}\0", "v".repeat(MAX_VALUE_LEN));
        assert_eq!(parse_keys(ok.as_bytes()).unwrap()[0].1.len(), MAX_VALUE_LEN);
        let bad = format!("A={}\0", "v".repeat(MAX_VALUE_LEN + 1));
        assert_eq!(
            parse_keys(bad.as_bytes()),
            Err(TextError::ValueTooLong { key: "A".into(), len: MAX_VALUE_LEN + 1 })
        );
    }

    #[test]
    fn pair_count_bound() {
        let mut ok = Vec::new();
        for i in 0..MAX_PAIRS {
            push_key(&mut ok, &format!("X-k{i}"), "v");
        }
        assert_eq!(parse_keys(&ok).unwrap().len(), MAX_PAIRS);
        push_key(&mut ok, "X-one-more", "v");
        assert_eq!(parse_keys(&ok), Err(TextError::TooManyPairs));
    }

    #[test]
    fn push_and_encode_round_trip() {
        let mut out = Vec::new();
        push_key(&mut out, "MaxBurstLength", "262144");
        assert_eq!(out, b"MaxBurstLength=262144\0");
        let enc = encode_keys(&[("A", "1"), ("B", "")]);
        assert_eq!(parse_keys(&enc).unwrap(), pairs(&[("A", "1"), ("B", "")]));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("8192"), Some(8192));
        assert_eq!(parse_number("0x2000"), Some(8192));
        assert_eq!(parse_number("0X2000"), Some(8192));
        assert_eq!(parse_number("0x0000000000000000ff"), Some(255));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number("0xffffffffffffffff"), Some(u64::MAX));
        for bad in [
            "",
            "08192",
            "+1",
            "-1",
            "1 ",
            "0x",
            "0x+1",
            "0xg",
            "18446744073709551616",
            "0x10000000000000000",
            "1e3",
            "Yes",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn booleans_and_lists() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("No"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_bool(""), None);
        assert_eq!(bool_str(true), "Yes");
        assert_eq!(parse_list("CRC32C,None"), Some(vec!["CRC32C", "None"]));
        assert_eq!(parse_list("None"), Some(vec!["None"]));
        assert_eq!(parse_list(""), None);
        assert_eq!(parse_list("CRC32C,,None"), None);
        assert_eq!(parse_list("CRC32C,"), None);
    }

    #[test]
    fn labels_and_names() {
        assert!(is_standard_label("MaxBurstLength"));
        assert!(is_standard_label("CHAP_A"));
        assert!(!is_standard_label("maxBurstLength"));
        assert!(!is_standard_label(&"A".repeat(64)));
        assert!(is_extension_key("X-com.example.foo"));
        assert!(is_extension_key("X#NodeArchitecture"));
        assert!(!is_extension_key("Xfoo"));
        assert!(is_valid_iscsi_name("iqn.2026-01.io.shardtgt:disk1"));
        assert!(is_valid_iscsi_name("eui.020000023B040506"));
        assert!(is_valid_iscsi_name("naa.52004567BA64678D"));
        assert!(!is_valid_iscsi_name("iqn."));
        assert!(!is_valid_iscsi_name("disk1"));
        assert!(!is_valid_iscsi_name("iqn.2026-01.io x"));
        assert!(!is_valid_iscsi_name(&format!("iqn.{}", "a".repeat(220))));
        assert!(is_reserved_answer("Reject"));
        assert!(!is_reserved_answer("None"));
    }
}
