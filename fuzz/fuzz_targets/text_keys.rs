//! Text key parsing and negotiation never panic on any key=value data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardtgt_core::login::keys::{parse_keys, push_key};
use shardtgt_core::login::negotiate::Negotiator;
use shardtgt_core::pdu::Stage;
use shardtgt_core::target::Limits;

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = parse_keys(data) else { return };
    // Round trip: what parses re-encodes to something that parses the same.
    let mut out = Vec::new();
    for (k, v) in &keys {
        push_key(&mut out, k, v);
    }
    assert_eq!(parse_keys(&out).ok().as_ref(), Some(&keys));
    let limits = Limits::default();
    for stage in [Stage::SECURITY, Stage::OPERATIONAL] {
        let mut n = Negotiator::new(&limits, 1, None);
        let mut resp = Vec::new();
        let _ = n.handle(stage, true, &keys, &mut resp);
        let _ = parse_keys(&resp);
    }
});
