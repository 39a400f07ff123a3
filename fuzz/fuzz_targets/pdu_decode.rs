//! PDU decode → encode → decode must agree, and decoding never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, DigestMode};

fuzz_target!(|data: &[u8]| {
    for digests in [DigestMode { header: false, data: false }, DigestMode { header: true, data: true }] {
        if let Ok(Some(f)) = decode_pdu(data, digests, 1 << 24) {
            let mut out = Vec::new();
            encode_pdu(&f.pdu, &data[f.data.clone()], digests, &mut out);
            let again = decode_pdu(&out, digests, 1 << 24).expect("re-decode").expect("complete");
            assert_eq!(again.pdu, f.pdu, "decode(encode(x)) != x");
            assert_eq!(&out[again.data.clone()], &data[f.data.clone()]);
        }
    }
});
