//! Property tests for the iSCSI PDU codec (RFC 7143 §11): every PDU type
//! round-trips through `Pdu::encode_header`/`Pdu::decode` and through
//! `frame::encode_pdu`/`frame::decode_pdu` in every digest mode; decoding
//! arbitrary bytes never panics; every `DecodeError` and `FrameError` path
//! is reached.
//!
//! The generators produce only values that have a wire representation:
//! bit fields within their width (ATTR 3 bits, CSG/NSG 2, SNACK Type 4, TMF
//! function and Logout reason 7), NSG zero without T, Data-In status fields
//! zero without S, SCSI Response residuals zero without their O/U bits.
//! Everything else is arbitrary.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use shardtgt_core::digest::crc32c;
use shardtgt_core::ids::{Cid, Isid, Itt, Lun, Tsih, Ttt};
use shardtgt_core::pdu::bhs::{Bhs, Opcode, BHS_LEN, EXT_CDB_MAX_LEN};
use shardtgt_core::pdu::frame::{decode_pdu, encode_pdu, padded, DigestMode, FrameError};
use shardtgt_core::pdu::*;
use shardtgt_core::serial::{CmdSn, StatSn};

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

fn lun() -> impl Strategy<Value = Lun> {
    any::<u64>().prop_map(Lun)
}
fn itt() -> impl Strategy<Value = Itt> {
    any::<u32>().prop_map(Itt)
}
fn ttt() -> impl Strategy<Value = Ttt> {
    any::<u32>().prop_map(Ttt)
}
fn cmdsn() -> impl Strategy<Value = CmdSn> {
    any::<u32>().prop_map(CmdSn)
}
fn statsn() -> impl Strategy<Value = StatSn> {
    any::<u32>().prop_map(StatSn)
}
fn isid() -> impl Strategy<Value = Isid> {
    (0u64..1 << 48).prop_map(Isid)
}

fn scsi_command() -> impl Strategy<Value = ScsiCommand> {
    (
        (any::<[bool; 4]>(), 0u8..8, lun(), itt(), any::<u32>()),
        (cmdsn(), statsn(), any::<[u8; 16]>()),
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=EXT_CDB_MAX_LEN)),
            proptest::option::of(any::<u32>()),
        ),
    )
        .prop_map(|(([i, f, r, w], attr, lun, itt, edtl), (cmdsn, expstatsn, cdb), (ext, bidi))| ScsiCommand {
            immediate: i,
            final_: f,
            read: r,
            write: w,
            attr: TaskAttr(attr),
            lun,
            itt,
            edtl,
            cmdsn,
            expstatsn,
            cdb,
            ext_cdb: ext.map(Vec::into_boxed_slice),
            bidi_read_len: bidi,
        })
}

/// A SCSI Command with at least one AHS.
fn scsi_command_with_ahs() -> impl Strategy<Value = ScsiCommand> {
    (scsi_command(), any::<u32>()).prop_map(|(mut cmd, bidi)| {
        if cmd.ext_cdb.is_none() && cmd.bidi_read_len.is_none() {
            cmd.bidi_read_len = Some(bidi);
        }
        cmd
    })
}

fn scsi_response() -> impl Strategy<Value = ScsiResponse> {
    (
        (any::<[bool; 4]>(), any::<u8>(), any::<u8>(), itt(), any::<u32>()),
        (statsn(), cmdsn(), cmdsn(), any::<u32>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(([bo, bu, o, u], response, status, itt, snack_tag), (statsn, expcmdsn, maxcmdsn, expdatasn, br, r))| {
                ScsiResponse {
                    bidi_overflow: bo,
                    bidi_underflow: bu,
                    overflow: o,
                    underflow: u,
                    response,
                    status,
                    itt,
                    snack_tag,
                    statsn,
                    expcmdsn,
                    maxcmdsn,
                    expdatasn,
                    bidi_residual: if bo || bu { br } else { 0 },
                    residual: if o || u { r } else { 0 },
                }
            },
        )
}

fn tmf_request() -> impl Strategy<Value = TmfRequest> {
    ((any::<bool>(), 0u8..128, lun(), itt(), itt()), (cmdsn(), statsn(), cmdsn(), any::<u32>())).prop_map(
        |((immediate, f, lun, itt, rtt), (cmdsn, expstatsn, refcmdsn, expdatasn))| TmfRequest {
            immediate,
            function: TmfFunction(f),
            lun,
            itt,
            rtt,
            cmdsn,
            expstatsn,
            refcmdsn,
            expdatasn,
        },
    )
}

fn tmf_response() -> impl Strategy<Value = TmfResponse> {
    (any::<u8>(), itt(), statsn(), cmdsn(), cmdsn()).prop_map(|(r, itt, statsn, expcmdsn, maxcmdsn)| TmfResponse {
        response: TmfResponseCode(r),
        itt,
        statsn,
        expcmdsn,
        maxcmdsn,
    })
}

fn login_request() -> impl Strategy<Value = LoginRequest> {
    (
        (any::<bool>(), any::<bool>(), 0u8..4, 0u8..4, any::<u8>(), any::<u8>()),
        (isid(), any::<u16>(), itt(), any::<u16>(), cmdsn(), statsn()),
    )
        .prop_map(|((t, c, csg, nsg, vmax, vmin), (isid, tsih, itt, cid, cmdsn, expstatsn))| LoginRequest {
            transit: t,
            continue_: c,
            csg: Stage(csg),
            nsg: Stage(if t { nsg } else { 0 }),
            version_max: vmax,
            version_min: vmin,
            isid,
            tsih: Tsih(tsih),
            itt,
            cid: Cid(cid),
            cmdsn,
            expstatsn,
        })
}

fn login_response() -> impl Strategy<Value = LoginResponse> {
    (
        (any::<bool>(), any::<bool>(), 0u8..4, 0u8..4, any::<u8>(), any::<u8>()),
        (isid(), any::<u16>(), itt(), statsn(), cmdsn(), cmdsn(), any::<u16>()),
    )
        .prop_map(|((t, c, csg, nsg, vmax, vact), (isid, tsih, itt, statsn, expcmdsn, maxcmdsn, st))| {
            LoginResponse {
                transit: t,
                continue_: c,
                csg: Stage(csg),
                nsg: Stage(if t { nsg } else { 0 }),
                version_max: vmax,
                version_active: vact,
                isid,
                tsih: Tsih(tsih),
                itt,
                statsn,
                expcmdsn,
                maxcmdsn,
                status: LoginStatus(st),
            }
        })
}

fn text_request() -> impl Strategy<Value = TextRequest> {
    (any::<[bool; 3]>(), lun(), itt(), ttt(), cmdsn(), statsn()).prop_map(
        |([i, f, c], lun, itt, ttt, cmdsn, expstatsn)| TextRequest {
            immediate: i,
            final_: f,
            continue_: c,
            lun,
            itt,
            ttt,
            cmdsn,
            expstatsn,
        },
    )
}

fn text_response() -> impl Strategy<Value = TextResponse> {
    (any::<[bool; 2]>(), lun(), itt(), ttt(), statsn(), cmdsn(), cmdsn()).prop_map(
        |([f, c], lun, itt, ttt, statsn, expcmdsn, maxcmdsn)| TextResponse {
            final_: f,
            continue_: c,
            lun,
            itt,
            ttt,
            statsn,
            expcmdsn,
            maxcmdsn,
        },
    )
}

fn data_out() -> impl Strategy<Value = DataOut> {
    (any::<bool>(), lun(), itt(), ttt(), statsn(), any::<u32>(), any::<u32>()).prop_map(
        |(final_, lun, itt, ttt, expstatsn, datasn, buffer_offset)| DataOut {
            final_,
            lun,
            itt,
            ttt,
            expstatsn,
            datasn,
            buffer_offset,
        },
    )
}

fn data_in() -> impl Strategy<Value = DataIn> {
    (
        (any::<[bool; 5]>(), any::<u8>(), lun(), itt(), ttt()),
        (statsn(), cmdsn(), cmdsn(), any::<u32>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(|(([f, a, o, u, s], status, lun, itt, ttt), (statsn, expcmdsn, maxcmdsn, datasn, off, res))| {
            DataIn {
                final_: f,
                ack: a,
                overflow: s && o,
                underflow: s && u,
                has_status: s,
                status: if s { status } else { 0 },
                lun,
                itt,
                ttt,
                statsn: if s { statsn } else { StatSn(0) },
                expcmdsn,
                maxcmdsn,
                datasn,
                buffer_offset: off,
                residual: if s { res } else { 0 },
            }
        })
}

fn logout_request() -> impl Strategy<Value = LogoutRequest> {
    (any::<bool>(), 0u8..128, itt(), any::<u16>(), cmdsn(), statsn()).prop_map(
        |(immediate, reason, itt, cid, cmdsn, expstatsn)| LogoutRequest {
            immediate,
            reason: LogoutReason(reason),
            itt,
            cid: Cid(cid),
            cmdsn,
            expstatsn,
        },
    )
}

fn logout_response() -> impl Strategy<Value = LogoutResponse> {
    (any::<u8>(), itt(), statsn(), cmdsn(), cmdsn(), any::<u16>(), any::<u16>()).prop_map(
        |(response, itt, statsn, expcmdsn, maxcmdsn, time2wait, time2retain)| LogoutResponse {
            response,
            itt,
            statsn,
            expcmdsn,
            maxcmdsn,
            time2wait,
            time2retain,
        },
    )
}

fn snack() -> impl Strategy<Value = Snack> {
    (0u8..16, lun(), itt(), ttt(), statsn(), any::<u32>(), any::<u32>()).prop_map(
        |(snack_type, lun, itt, ttt, expstatsn, begrun, runlength)| Snack {
            snack_type,
            lun,
            itt,
            ttt,
            expstatsn,
            begrun,
            runlength,
        },
    )
}

fn nop_out() -> impl Strategy<Value = NopOut> {
    (any::<bool>(), lun(), itt(), ttt(), cmdsn(), statsn())
        .prop_map(|(immediate, lun, itt, ttt, cmdsn, expstatsn)| NopOut { immediate, lun, itt, ttt, cmdsn, expstatsn })
}

fn nop_in() -> impl Strategy<Value = NopIn> {
    (lun(), itt(), ttt(), statsn(), cmdsn(), cmdsn()).prop_map(|(lun, itt, ttt, statsn, expcmdsn, maxcmdsn)| NopIn {
        lun,
        itt,
        ttt,
        statsn,
        expcmdsn,
        maxcmdsn,
    })
}

fn r2t() -> impl Strategy<Value = R2t> {
    ((lun(), itt(), ttt(), statsn(), cmdsn()), (cmdsn(), any::<u32>(), any::<u32>(), any::<u32>())).prop_map(
        |((lun, itt, ttt, statsn, expcmdsn), (maxcmdsn, r2tsn, off, len))| R2t {
            lun,
            itt,
            ttt,
            statsn,
            expcmdsn,
            maxcmdsn,
            r2tsn,
            buffer_offset: off,
            desired_len: len,
        },
    )
}

fn async_message() -> impl Strategy<Value = AsyncMessage> {
    ((lun(), statsn(), cmdsn(), cmdsn()), (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>(), any::<u16>()))
        .prop_map(|((lun, statsn, expcmdsn, maxcmdsn), (event, vcode, param1, param2, param3))| AsyncMessage {
            lun,
            statsn,
            expcmdsn,
            maxcmdsn,
            event,
            vcode,
            param1,
            param2,
            param3,
        })
}

fn reject() -> impl Strategy<Value = Reject> {
    (any::<u8>(), statsn(), cmdsn(), cmdsn(), any::<u32>()).prop_map(|(reason, statsn, expcmdsn, maxcmdsn, datasn)| {
        Reject { reason: RejectReason(reason), statsn, expcmdsn, maxcmdsn, datasn }
    })
}

/// Any PDU of any type, both directions.
fn any_pdu() -> impl Strategy<Value = Pdu> {
    prop_oneof![
        nop_out().prop_map(Pdu::from).boxed(),
        scsi_command().prop_map(Pdu::from).boxed(),
        tmf_request().prop_map(Pdu::from).boxed(),
        login_request().prop_map(Pdu::from).boxed(),
        text_request().prop_map(Pdu::from).boxed(),
        data_out().prop_map(Pdu::from).boxed(),
        logout_request().prop_map(Pdu::from).boxed(),
        snack().prop_map(Pdu::from).boxed(),
        nop_in().prop_map(Pdu::from).boxed(),
        scsi_response().prop_map(Pdu::from).boxed(),
        tmf_response().prop_map(Pdu::from).boxed(),
        login_response().prop_map(Pdu::from).boxed(),
        text_response().prop_map(Pdu::from).boxed(),
        data_in().prop_map(Pdu::from).boxed(),
        logout_response().prop_map(Pdu::from).boxed(),
        r2t().prop_map(Pdu::from).boxed(),
        async_message().prop_map(Pdu::from).boxed(),
        reject().prop_map(Pdu::from).boxed(),
    ]
}

fn any_digests() -> impl Strategy<Value = DigestMode> {
    (any::<bool>(), any::<bool>()).prop_map(|(header, data)| DigestMode { header, data })
}

/// Decode a header produced by `encode_header` (BHS + AHS only).
fn decode_header(wire: &[u8]) -> Result<Pdu, DecodeError> {
    let bhs = Bhs::from_slice(wire).expect("48 bytes");
    Pdu::decode(&bhs, &wire[BHS_LEN..])
}

/// `cases` cases; failures are saved beside this file in
/// `pdu_roundtrip.proptest-regressions` (commit it) and replayed first.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn header_round_trips(pdu in any_pdu(), data_len in 0u32..1 << 24) {
        let mut wire = Vec::new();
        pdu.encode_header(data_len, &mut wire);
        let bhs = Bhs::from_slice(&wire).unwrap();
        prop_assert_eq!(bhs.opcode(), pdu.opcode());
        prop_assert_eq!(bhs.immediate(), pdu.immediate());
        prop_assert_eq!(bhs.data_len(), data_len);
        prop_assert_eq!(bhs.total_ahs_len(), wire.len() - BHS_LEN);
        prop_assert_eq!(bhs.itt(), pdu.itt().0);
        let back = decode_header(&wire).unwrap();
        prop_assert_eq!(&back, &pdu);
        prop_assert_eq!(back.itt(), pdu.itt());
        // Re-encoding the decoded header gives the same bytes.
        let mut again = Vec::new();
        back.encode_header(data_len, &mut again);
        prop_assert_eq!(again, wire);
    }

    #[test]
    fn frame_round_trips(
        pdu in any_pdu(),
        data in proptest::collection::vec(any::<u8>(), 0..600),
        digests in any_digests(),
        trailing in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut wire = Vec::new();
        encode_pdu(&pdu, &data, digests, &mut wire);
        let len = wire.len();
        prop_assert_eq!(len % 4, 0);
        wire.extend_from_slice(&trailing);
        let f = decode_pdu(&wire, digests, data.len() as u32).unwrap().unwrap();
        prop_assert_eq!(&f.pdu, &pdu);
        prop_assert_eq!(&wire[f.data.clone()], &data[..]);
        prop_assert_eq!(f.len, len);
        prop_assert_eq!(f.bhs.data_len() as usize, data.len());
        // Padding is zero.
        prop_assert!(wire[f.data.end..f.data.start + padded(data.len())].iter().all(|&b| b == 0));
    }

    #[test]
    fn frames_decode_back_to_back(
        pdus in proptest::collection::vec(
            (any_pdu(), proptest::collection::vec(any::<u8>(), 0..64)), 1..6),
        digests in any_digests(),
    ) {
        let mut wire = Vec::new();
        for (p, d) in &pdus {
            encode_pdu(p, d, digests, &mut wire);
        }
        let mut at = 0;
        for (p, d) in &pdus {
            let f = decode_pdu(&wire[at..], digests, 64).unwrap().unwrap();
            prop_assert_eq!(&f.pdu, p);
            prop_assert_eq!(&wire[at + f.data.start..at + f.data.end], &d[..]);
            at += f.len;
        }
        prop_assert_eq!(at, wire.len());
        prop_assert_eq!(decode_pdu(&wire[at..], digests, 64), Ok(None));
    }

    #[test]
    fn extended_cdb_of_any_length(
        mut cmd in scsi_command(),
        cdb_len in 16usize..=260,
        bidi in proptest::option::of(any::<u32>()),
        digests in any_digests(),
    ) {
        cmd.ext_cdb = (cdb_len > 16).then(|| vec![0x5a; cdb_len - 16].into_boxed_slice());
        cmd.bidi_read_len = bidi;
        let mut wire = Vec::new();
        encode_pdu(&Pdu::from(cmd.clone()), &[], digests, &mut wire);
        let f = decode_pdu(&wire, digests, 0).unwrap().unwrap();
        let Pdu::ScsiCommand(back) = f.pdu else { panic!("not a SCSI Command") };
        prop_assert_eq!(back.cdb_len(), cdb_len.max(16));
        prop_assert_eq!(back.ahs_len(), cmd.ahs_len());
        prop_assert_eq!(back, cmd);
    }
}

// ---------------------------------------------------------------------------
// Never panic on input
// ---------------------------------------------------------------------------

/// AHS bytes that look like AHSs: each an AHSLength near the real sizes,
/// an AHSType that is often 1 or 2, and a body of the claimed length (or
/// not), concatenated and cut at a random point.
fn plausible_ahs() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        prop_oneof![Just(5u16), 0u16..8, 0u16..300, any::<u16>()],
        prop_oneof![1u8..3, any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..260),
        any::<bool>(),
    )
        .prop_map(|(len, ty, mut body, exact)| {
            if exact {
                // A well-formed AHS: body of the claimed length, padded to 4.
                body.resize(usize::from(len.min(300)), 0);
                body.resize(padded(3 + body.len()) - 3, 0);
            }
            let mut a = len.to_be_bytes().to_vec();
            a.push(ty);
            a.extend_from_slice(&body);
            a
        });
    (proptest::collection::vec(one, 0..5), any::<prop::sample::Index>(), any::<bool>()).prop_map(
        |(ahss, cut, whole)| {
            let all: Vec<u8> = ahss.concat();
            let cut = if whole { all.len() } else { cut.index(all.len() + 1) };
            all[..cut].to_vec()
        },
    )
}

/// A BHS that is often a SCSI Command whose TotalAHSLength matches the AHS
/// bytes, so the AHS parser sees arbitrary or plausible AHS contents.
fn hostile_header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        any::<[u8; 48]>(),
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..1100), plausible_ahs()],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(bhs, ahs, force_cmd, fit)| {
            let mut bhs = bhs.to_vec();
            if force_cmd {
                bhs[0] = (bhs[0] & 0xc0) | Opcode::SCSI_COMMAND.0;
            }
            if fit {
                bhs[4] = (ahs.len() / 4).min(255) as u8;
            }
            (bhs, ahs)
        })
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn pdu_decode_never_panics((bhs, ahs) in hostile_header()) {
        let b = Bhs::from_slice(&bhs).unwrap();
        if let Ok(pdu) = Pdu::decode(&b, &ahs) {
            // Whatever decodes also encodes (its values are in range).
            let mut out = Vec::new();
            pdu.encode_header(b.data_len(), &mut out);
            prop_assert_eq!(out[0] & 0x3f, bhs[0] & 0x3f);
        }
    }

    #[test]
    fn decode_pdu_never_panics(
        buf in proptest::collection::vec(any::<u8>(), 0..2048),
        digests in any_digests(),
        max in any::<u32>(),
    ) {
        if let Ok(Some(f)) = decode_pdu(&buf, digests, max) {
            prop_assert!(f.len <= buf.len());
            prop_assert!(f.data.start <= f.data.end && f.data.end <= f.len);
            prop_assert!(f.bhs.data_len() <= max);
        }
    }

    #[test]
    fn decode_pdu_of_hostile_headers_never_panics(
        (bhs, ahs) in hostile_header(),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        digests in any_digests(),
    ) {
        let mut buf = bhs;
        buf.extend_from_slice(&ahs);
        buf.extend_from_slice(&tail);
        let _ = decode_pdu(&buf, digests, u32::MAX);
    }
}

// ---------------------------------------------------------------------------
// Error paths
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn any_header_bit_flip_is_caught(
        pdu in any_pdu(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        encode_pdu(&pdu, &data, DigestMode::BOTH, &mut wire);
        let header_len = BHS_LEN + Bhs::from_slice(&wire).unwrap().total_ahs_len() + 4;
        let i = bit.index(header_len * 8);
        wire[i / 8] ^= 1 << (i % 8);
        let r = decode_pdu(&wire, DigestMode::BOTH, 1 << 20);
        if i / 8 == 4 {
            // TotalAHSLength changed: the digest is looked for elsewhere,
            // possibly beyond the buffer.
            prop_assert!(matches!(r, Ok(None) | Err(FrameError::HeaderDigest { .. })), "{r:?}");
        } else {
            let ok = matches!(r, Err(FrameError::HeaderDigest { .. }));
            prop_assert!(ok, "{:?}", r);
        }
    }

    #[test]
    fn any_data_bit_flip_is_caught(
        pdu in any_pdu(),
        data in proptest::collection::vec(any::<u8>(), 1..300),
        header_digest in any::<bool>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let digests = DigestMode { header: header_digest, data: true };
        let mut wire = Vec::new();
        encode_pdu(&pdu, &data, digests, &mut wire);
        let start = wire.len() - padded(data.len()) - 4;
        // Any bit of the data, its padding or the digest itself.
        let i = bit.index((wire.len() - start) * 8);
        wire[start + i / 8] ^= 1 << (i % 8);
        let r = decode_pdu(&wire, digests, 1 << 20);
        prop_assert!(matches!(r, Err(FrameError::DataDigest { .. })), "{:?}", r);
    }

    #[test]
    fn every_truncation_asks_for_more(
        pdu in any_pdu(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
        digests in any_digests(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        encode_pdu(&pdu, &data, digests, &mut wire);
        let cut = cut.index(wire.len());
        prop_assert_eq!(decode_pdu(&wire[..cut], digests, 64), Ok(None));
        // The typed decoder with a short AHS says Truncated.
        let bhs = Bhs::from_slice(&wire).unwrap();
        if bhs.total_ahs_len() > 0 {
            let short = cut.min(bhs.total_ahs_len() - 1);
            prop_assert_eq!(
                Pdu::decode(&bhs, &wire[BHS_LEN..BHS_LEN + short]),
                Err(DecodeError::Truncated)
            );
        }
    }

    #[test]
    fn data_longer_than_the_limit(
        pdu in any_pdu(),
        len in 1usize..2000,
        digests in any_digests(),
    ) {
        let data = vec![0xa5; len];
        let mut wire = Vec::new();
        encode_pdu(&pdu, &data, digests, &mut wire);
        let hdr = BHS_LEN + Bhs::from_slice(&wire).unwrap().total_ahs_len() + digests.header_len();
        let max = len as u32 - 1;
        // Reported as soon as the header is in, and on the whole PDU.
        prop_assert_eq!(decode_pdu(&wire[..hdr], digests, max), Err(FrameError::DataTooLong(len as u32)));
        prop_assert_eq!(decode_pdu(&wire, digests, max), Err(FrameError::DataTooLong(len as u32)));
        prop_assert!(decode_pdu(&wire, digests, len as u32).unwrap().is_some());
    }

    #[test]
    fn ahs_lengths_that_lie(
        cmd in scsi_command_with_ahs(),
        delta in 1usize..8,
        grow in any::<bool>(),
    ) {
        // TotalAHSLength says more or fewer words than the AHSs hold.
        let mut wire = Vec::new();
        Pdu::from(cmd.clone()).encode_header(0, &mut wire);
        let words = wire[4] as usize; // at least 2, at most 64
        let new_words = if grow { words + delta } else { words.saturating_sub(delta) };
        wire[4] = new_words as u8;
        wire.resize(BHS_LEN + new_words * 4, 0);
        let r = decode_header(&wire);
        if grow {
            // Extra zero words parse as empty AHSs of reserved code 0 and are
            // skipped; the command itself is intact.
            prop_assert_eq!(r, Ok(Pdu::from(cmd)));
        } else {
            // Cutting exactly between AHSs drops the later ones; cutting
            // inside one is a lie the parser must catch.
            let ext_words = cmd.ext_cdb.as_ref().map_or(0, |e| padded(4 + e.len()) / 4);
            let mut expect = cmd.clone();
            if new_words == 0 {
                expect.ext_cdb = None;
                expect.bidi_read_len = None;
                prop_assert_eq!(r, Ok(Pdu::from(expect)));
            } else if new_words == ext_words {
                expect.bidi_read_len = None;
                prop_assert_eq!(r, Ok(Pdu::from(expect)));
            } else {
                prop_assert_eq!(r, Err(DecodeError::BadAhs));
            }
        }
    }

    #[test]
    fn ahs_length_field_that_lies(
        mut cmd in scsi_command(),
        ext in proptest::collection::vec(any::<u8>(), 0..=EXT_CDB_MAX_LEN),
        extra in 1u16..2000,
    ) {
        cmd.ext_cdb = Some(ext.into_boxed_slice());
        let mut wire = Vec::new();
        Pdu::from(cmd).encode_header(0, &mut wire);
        // The first AHS (Extended CDB) claims more bytes than the area holds.
        let total = wire.len() - BHS_LEN;
        let claimed = (total as u16).saturating_add(extra);
        wire[BHS_LEN..BHS_LEN + 2].copy_from_slice(&claimed.to_be_bytes());
        prop_assert_eq!(decode_header(&wire), Err(DecodeError::BadAhs));
        // And through the framer, with a valid header digest so that only the
        // AHS parser can object.
        let mut framed = wire.clone();
        framed.extend_from_slice(&crc32c(&wire).to_le_bytes());
        prop_assert_eq!(
            decode_pdu(&framed, DigestMode::HEADER, 0),
            Err(FrameError::Decode(DecodeError::BadAhs))
        );
    }
}

#[test]
fn unknown_opcodes_through_the_framer() {
    for op in (0u8..64).filter(|&op| Opcode(op).name().is_none()) {
        let mut wire = vec![0u8; BHS_LEN];
        wire[0] = op;
        assert_eq!(decode_pdu(&wire, DigestMode::NONE, 0), Err(FrameError::Decode(DecodeError::UnknownOpcode(op))));
    }
}

#[test]
fn bidi_ahs_with_wrong_length() {
    let cmd = ScsiCommand { bidi_read_len: Some(4096), ..Default::default() };
    let mut wire = Vec::new();
    Pdu::from(cmd).encode_header(0, &mut wire);
    assert_eq!(&wire[BHS_LEN..BHS_LEN + 4], &[0, 5, 2, 0]);
    for bad in [0u8, 1, 4] {
        wire[BHS_LEN + 1] = bad;
        assert_eq!(decode_header(&wire), Err(DecodeError::BadAhs), "AHSLength {bad}");
    }
}

#[test]
#[should_panic(expected = "extended CDB")]
fn cdb_longer_than_260_is_a_caller_bug() {
    let cmd = ScsiCommand { ext_cdb: Some(vec![0; EXT_CDB_MAX_LEN + 1].into_boxed_slice()), ..Default::default() };
    Pdu::from(cmd).encode_header(0, &mut Vec::new());
}

#[test]
#[should_panic(expected = "data segment length")]
fn data_of_16_mib_is_a_caller_bug() {
    encode_pdu(&Pdu::from(NopIn::default()), &vec![0; 1 << 24], DigestMode::NONE, &mut Vec::new());
}

#[test]
fn errors_display() {
    let e = FrameError::HeaderDigest { expected: 1, got: 2 };
    assert!(e.to_string().contains("header digest"));
    let e = FrameError::Decode(DecodeError::BadAhs);
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(FrameError::from(DecodeError::Truncated), FrameError::Decode(DecodeError::Truncated));
}
