//! SendTargets (RFC 7143 §13.3 and Appendix C) and long text replies.
//!
//! [`send_targets`] builds the whole answer to one `SendTargets=<query>` as
//! text key=value data; [`TextReplyCursor`] hands a long answer out in
//! chunks no larger than the initiator's MaxRecvDataSegmentLength. The
//! caller owns the Text Response PDUs, the C bit and the target transfer
//! tag (RFC 7143 §11.11); this module never sees PDUs.

use super::keys::{push_key, REJECT};
use crate::target::{TargetConfig, TargetSet};

/// Append the answer to `SendTargets=<query>` to `out` (RFC 7143 Appendix C):
///
/// - `All`: every target `visible` admits, each as `TargetName=<name>`
///   followed by one `TargetAddress=<address>,<tpgt>` per portal. "All" is
///   only supported in a discovery session (`session_target` is `None`); in
///   a normal session the answer is `SendTargets=Reject`.
/// - an iSCSI target name: that target only, if it exists and is visible
///   (and, in a normal session, is the session's target); otherwise nothing.
/// - empty: the session's target in a normal session; nothing in a
///   discovery session.
///
/// `session_target` is the TargetName of a normal session, `None` for a
/// discovery session. Names compare case-insensitively
/// ([`TargetSet::target`]).
pub fn send_targets(
    query: &str,
    session_target: Option<&str>,
    targets: &TargetSet,
    visible: impl Fn(&TargetConfig) -> bool,
    out: &mut Vec<u8>,
) {
    let one = |name: &str, out: &mut Vec<u8>| {
        if let Some((_, t)) = targets.target(name) {
            if visible(t) {
                push_target(t, targets, out);
            }
        }
    };
    match (query, session_target) {
        ("All", None) => {
            for t in targets.targets.iter().filter(|t| visible(t)) {
                push_target(t, targets, out);
            }
        }
        ("All", Some(_)) => push_key(out, "SendTargets", REJECT),
        ("", Some(own)) => one(own, out),
        ("", None) => {}
        (name, None) => one(name, out),
        (name, Some(own)) => {
            if name.eq_ignore_ascii_case(own) {
                one(own, out);
            }
        }
    }
}

/// `TargetName=` and one `TargetAddress=address,tpgt` per portal (RFC 7143
/// §13.8: in a SendTargets response the portal group tag MUST be included).
fn push_target(t: &TargetConfig, targets: &TargetSet, out: &mut Vec<u8>) {
    push_key(out, "TargetName", &t.name);
    for p in &targets.portals {
        push_key(out, "TargetAddress", &format!("{},{}", p.address, p.tpgt));
    }
}

/// Hands out a long text answer in chunks (RFC 7143 §6.1: "key=value pairs
/// may span PDU boundaries"; §11.11.2: a Text Response with C=1 is followed
/// by an empty Text Request carrying its target transfer tag).
///
/// Each chunk is at most `max_len` bytes (the initiator's
/// MaxRecvDataSegmentLength). A chunk ends at a pair boundary when a whole
/// pair fits, and splits a pair only when one is longer than `max_len`.
/// The caller sets C=1 on every chunk but the last.
#[derive(Clone, Debug, Default)]
pub struct TextReplyCursor {
    data: Vec<u8>,
    pos: usize,
    finished: bool,
}

impl TextReplyCursor {
    /// A cursor over the whole encoded answer (RFC 7143 §6.1 text).
    pub fn new(data: Vec<u8>) -> Self {
        TextReplyCursor { data, pos: 0, finished: false }
    }

    /// The next chunk and whether more follow (the C bit, RFC 7143 §11.11.2), or `None` once the
    /// last chunk was handed out. An empty answer yields one empty chunk
    /// with `more == false`. `max_len` of 0 is treated as 1.
    pub fn next_chunk(&mut self, max_len: usize) -> Option<(&[u8], bool)> {
        if self.finished {
            return None;
        }
        let max_len = max_len.max(1);
        let start = self.pos;
        let rest = self.data.len() - start;
        let end = if rest <= max_len {
            self.data.len()
        } else {
            let window = crate::bytes::range(&self.data, start, max_len).unwrap_or_default();
            match window.iter().rposition(|&b| b == 0) {
                Some(nul) => start + nul + 1,
                None => start + max_len,
            }
        };
        self.pos = end;
        let more = end < self.data.len();
        self.finished = !more;
        Some((self.data.get(start..end).unwrap_or_default(), more))
    }

    /// Whether every chunk was handed out (the last one had C=0, RFC 7143 §11.11.2).
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Bytes not yet handed out (of the RFC 7143 §6.1 text).
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::keys::parse_keys;
    use crate::target::Portal;

    fn set() -> TargetSet {
        let t = |n: &str| TargetConfig { name: n.to_string(), ..Default::default() };
        TargetSet {
            targets: vec![t("iqn.2026-01.io.shardtgt:a"), t("iqn.2026-01.io.shardtgt:b")],
            portals: vec![
                Portal { address: "10.0.0.1:3260".into(), tpgt: 1 },
                Portal { address: "[::1]:3260".into(), tpgt: 2 },
            ],
            ..Default::default()
        }
    }

    fn run(q: &str, own: Option<&str>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        send_targets(q, own, &set(), |_| true, &mut out);
        parse_keys(&out).unwrap()
    }

    #[test]
    fn all_in_discovery() {
        let p = run("All", None);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], ("TargetName".into(), "iqn.2026-01.io.shardtgt:a".into()));
        assert_eq!(p[1], ("TargetAddress".into(), "10.0.0.1:3260,1".into()));
        assert_eq!(p[2], ("TargetAddress".into(), "[::1]:3260,2".into()));
        assert_eq!(p[3].1, "iqn.2026-01.io.shardtgt:b");
    }

    #[test]
    fn all_in_normal_session_is_rejected() {
        assert_eq!(run("All", Some("iqn.2026-01.io.shardtgt:a")), vec![("SendTargets".into(), "Reject".into())]);
    }

    #[test]
    fn named_and_empty() {
        assert_eq!(run("IQN.2026-01.io.shardtgt:b", None).len(), 3);
        assert_eq!(run("iqn.2026-01.io.shardtgt:zzz", None), vec![]);
        assert_eq!(run("", None), vec![]);
        let own = Some("iqn.2026-01.io.shardtgt:a");
        let p = run("", own);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].1, "iqn.2026-01.io.shardtgt:a");
        assert_eq!(run("iqn.2026-01.io.shardtgt:b", own), vec![]);
        assert_eq!(run("iqn.2026-01.io.shardtgt:a", own).len(), 3);
    }

    #[test]
    fn visibility_filter() {
        let mut out = Vec::new();
        send_targets("All", None, &set(), |t| t.name.ends_with(":b"), &mut out);
        let p = parse_keys(&out).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].1, "iqn.2026-01.io.shardtgt:b");
        out.clear();
        send_targets("iqn.2026-01.io.shardtgt:a", None, &set(), |t| t.name.ends_with(":b"), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn cursor_chunks_reassemble() {
        let mut out = Vec::new();
        send_targets("All", None, &set(), |_| true, &mut out);
        for max in [1usize, 7, 16, 40, 512, 100_000] {
            let mut c = TextReplyCursor::new(out.clone());
            let mut joined = Vec::new();
            let mut n = 0;
            while let Some((chunk, more)) = c.next_chunk(max) {
                assert!(chunk.len() <= max);
                assert!(!chunk.is_empty());
                joined.extend_from_slice(chunk);
                n += 1;
                assert_eq!(more, !c.is_done());
            }
            assert_eq!(joined, out, "max {max}");
            assert!(n >= out.len().div_ceil(max));
            assert_eq!(c.remaining(), 0);
        }
    }

    #[test]
    fn cursor_prefers_pair_boundaries() {
        let mut c = TextReplyCursor::new(b"A=1\0B=22\0C=333\0".to_vec());
        assert_eq!(c.next_chunk(10), Some((&b"A=1\0B=22\0"[..], true)));
        assert_eq!(c.next_chunk(10), Some((&b"C=333\0"[..], false)));
        assert_eq!(c.next_chunk(10), None);
    }

    #[test]
    fn cursor_empty_answer() {
        let mut c = TextReplyCursor::new(Vec::new());
        assert_eq!(c.next_chunk(512), Some((&b""[..], false)));
        assert_eq!(c.next_chunk(512), None);
        assert_eq!(c.next_chunk(0), None);
    }
}
