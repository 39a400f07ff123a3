//! INQUIRY (SPC-4 §6.6): standard data and the vital product data pages of
//! a direct-access block device (SPC-4 §7.8, SBC-4 VPD pages).

use super::cdb;
use super::commands::{max_transfer_blocks, Exec};
use super::sense::Sense;
use super::writer::DataIn;
use super::{LuInfo, Outcome};
use crate::bytes::prefix;

/// Version descriptors of the standard INQUIRY data (SPC-4 §6.6.2, table
/// "Version descriptor values"): SAM-5, iSCSI, SPC-4, SBC-3, SBC-4 (all "no
/// version claimed"). SBC-3 is listed because libiscsi's test tool looks
/// for it to decide that SBC-3 features (READ CAPACITY(16), Block Limits
/// page length 3Ch) are claimed.
pub(crate) const VERSION_DESCRIPTORS: [u16; 5] = [0x00a0, 0x0960, 0x0460, 0x04c0, 0x0600];

/// Peripheral qualifier 000b, device type 00h (direct access block device).
const PQ_PDT: u8 = 0x00;
/// Peripheral qualifier 011b (no device on this LUN), device type 1Fh.
const PQ_PDT_NO_LU: u8 = 0x7f;

/// INQUIRY (SPC-4 §6.6). CMDDT set → INVALID FIELD IN CDB byte 1 bit 1;
/// EVPD 0 with a page code → INVALID FIELD IN CDB byte 2; an unsupported
/// VPD page → INVALID FIELD IN CDB byte 2. The allocation length is 16 bits
/// (bytes 3..5). For a LUN without an LU the standard data carries
/// peripheral qualifier 011b / type 1Fh and only VPD page 00h exists.
pub(crate) fn inquiry(ex: &mut Exec<'_, '_>) -> Outcome {
    let cdb = ex.ctx.cdb;
    let b1 = cdb::u8_at(cdb, 1);
    let page = cdb::u8_at(cdb, 2);
    let alloc = usize::from(cdb::be16(cdb, 3));
    if b1 & 0x02 != 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(1, Some(1)));
    }
    let evpd = b1 & 0x01 != 0;
    if !evpd && page != 0 {
        return Outcome::check_condition(Sense::invalid_field_in_cdb(2, None));
    }
    let lu = ex.ctx.lu;
    let tpgt = ex.nexus.tpgt;
    let mut w = DataIn::new(ex.buf, alloc);
    if !evpd {
        standard(&mut w, lu);
        return Outcome::good(w.data_len());
    }
    let ok = match lu {
        None if page == 0x00 => {
            w.bytes(&[PQ_PDT_NO_LU, 0x00, 0, 1, 0x00]);
            true
        }
        None => false,
        Some(lu) => match page {
            0x00 => {
                supported_pages(&mut w, lu);
                true
            }
            0x80 => {
                unit_serial_number(&mut w, lu);
                true
            }
            0x83 => {
                device_identification(&mut w, lu, tpgt);
                true
            }
            0xb0 => {
                block_limits(&mut w, lu);
                true
            }
            0xb1 => {
                block_device_characteristics(&mut w, lu);
                true
            }
            0xb2 if lu.thin => {
                logical_block_provisioning(&mut w);
                true
            }
            _ => false,
        },
    };
    if ok {
        Outcome::good(w.data_len())
    } else {
        Outcome::check_condition(Sense::invalid_field_in_cdb(2, None))
    }
}

/// Standard INQUIRY data (SPC-4 §6.6.2), 96 bytes: VERSION 06h (SPC-4),
/// HISUP, RESPONSE DATA FORMAT 2, TPGS 01b (implicit ALUA), CMDQUE, T10
/// vendor / product / revision padded with spaces, and
/// [`VERSION_DESCRIPTORS`].
fn standard(w: &mut DataIn<'_>, lu: Option<&LuInfo>) {
    const LEN: u8 = 96;
    w.u8(if lu.is_some() { PQ_PDT } else { PQ_PDT_NO_LU });
    w.u8(0); // RMB 0: not removable
    w.u8(0x06); // VERSION: SPC-4
    w.u8(0x12); // HISUP, RESPONSE DATA FORMAT 2
    w.u8(LEN - 5); // ADDITIONAL LENGTH
    w.u8(if lu.is_some() { 0x10 } else { 0 }); // TPGS 01b: implicit ALUA
    w.u8(0);
    w.u8(if lu.is_some() { 0x02 } else { 0 }); // CMDQUE
    let (vendor, product, revision) =
        lu.map_or(("", "", ""), |l| (l.vendor.as_str(), l.product.as_str(), l.revision.as_str()));
    w.ascii(vendor, 8);
    w.ascii(product, 16);
    w.ascii(revision, 4);
    w.zeros(20); // vendor specific
    w.zeros(2); // CLOCKING/QAS/IUS, reserved
    for i in 0..8 {
        w.u16(VERSION_DESCRIPTORS.get(i).copied().unwrap_or(0));
    }
    w.zeros(22);
}

/// VPD page header: qualifier/type, page code, 16-bit page length (patched
/// by [`end_page`]).
fn begin_page(w: &mut DataIn<'_>, page: u8) {
    w.u8(PQ_PDT);
    w.u8(page);
    w.u16(0);
}

fn end_page(w: &mut DataIn<'_>) {
    let len = w.pos() - 4;
    w.patch_u16(2, u16::try_from(len).unwrap_or(u16::MAX));
}

/// Supported VPD Pages (SPC-4 §7.8), ascending.
fn supported_pages(w: &mut DataIn<'_>, lu: &LuInfo) {
    begin_page(w, 0x00);
    w.bytes(&[0x00, 0x80, 0x83, 0xb0, 0xb1]);
    if lu.thin {
        w.u8(0xb2);
    }
    end_page(w);
}

/// Longest unit serial number we report (the page length of VPD 80h is one
/// byte in SPC-2 era initiators; keep it there).
const SERIAL_MAX: usize = 251;

/// Unit Serial Number (SPC-4 §7.8): the serial, ASCII.
fn unit_serial_number(w: &mut DataIn<'_>, lu: &LuInfo) {
    begin_page(w, 0x80);
    let n = lu.serial.len().min(SERIAL_MAX);
    w.ascii(&lu.serial, n);
    end_page(w);
}

/// 64-bit FNV-1a, to derive the NAA identifier extension from the serial.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The LU's NAA designation descriptor (header + 16 bytes): NAA, binary,
/// association LU (VPD 83h; EXTENDED COPY matches CSCD descriptors on it).
pub(crate) fn naa_designator(lu: &LuInfo) -> [u8; 20] {
    let mut d = [0u8; 20];
    d[..4].copy_from_slice(&[0x01, 0x03, 0x00, 0x10]);
    d[4..12].copy_from_slice(&((6u64 << 60) | (lu.naa_id & 0x0fff_ffff_ffff_ffff)).to_be_bytes());
    d[12..].copy_from_slice(&fnv1a64(lu.serial.as_bytes()).to_be_bytes());
    d
}

/// Code set / protocol identifier byte: iSCSI (5h) with code set `cs`.
const fn iscsi(cs: u8) -> u8 {
    0x50 | cs
}

/// Device Identification (SPC-4 §7.8.6):
/// - logical unit: NAA IEEE Registered Extended (type 3, NAA 6h): the high
///   8 bytes are [`LuInfo::naa_id`] with its NAA nibble forced to 6h, the
///   identifier extension is a 64-bit FNV-1a hash of the serial number;
/// - logical unit: T10 vendor ID (type 1): vendor (8 bytes) + serial;
/// - target port (PIV, iSCSI): relative target port (type 4), target port
///   group (type 5), SCSI name string (type 8) `<target name>,t,0x<TPGT
///   as 4 hex digits>` as RFC 7143 names a target port (and Linux LIO
///   writes it);
/// - target device (PIV, iSCSI): SCSI name string with the target name.
///
/// SCSI name strings are UTF-8, null-terminated and padded with nulls to a
/// multiple of 4 bytes (SPC-4 §7.8.6.11). The name designators are left out
/// when [`LuInfo::target_name`] is empty.
fn device_identification(w: &mut DataIn<'_>, lu: &LuInfo, tpgt: u16) {
    begin_page(w, 0x83);
    w.bytes(&naa_designator(lu));
    // T10 vendor ID, ASCII, association LU.
    let n = lu.serial.len().min(200);
    w.bytes(&[0x02, 0x01, 0x00, (8 + n) as u8]);
    w.ascii(&lu.vendor, 8);
    w.ascii(&lu.serial, n);
    // The nexus's target port: with ALUA port groups (one per portal
    // group, see super::alua) both identifiers are its portal group tag.
    let (rel_port, group) = if lu.port_groups.is_empty() { (lu.rel_port_id, lu.port_group) } else { (tpgt, tpgt) };
    // Relative target port, binary, PIV, association target port.
    w.bytes(&[iscsi(1), 0x94, 0x00, 0x04, 0, 0]);
    w.u16(rel_port);
    // Target port group.
    w.bytes(&[iscsi(1), 0x95, 0x00, 0x04, 0, 0]);
    w.u16(group);
    if !lu.target_name.is_empty() {
        scsi_name_string(w, 0x98, &lu.target_name, Some(tpgt));
        scsi_name_string(w, 0xa8, &lu.target_name, None);
    }
    end_page(w);
}

/// One SCSI name string designator (type 8, UTF-8, iSCSI) with designator
/// byte 1 `assoc_type` (PIV | association | type).
fn scsi_name_string(w: &mut DataIn<'_>, assoc_type: u8, name: &str, tpgt: Option<u16>) {
    // ",t,0x" and four hex digits.
    let suffix_len = if tpgt.is_some() { 9 } else { 0 };
    // Content + NUL, padded to 4, at most 252 bytes.
    let name_len = name.len().min(251 - suffix_len);
    let content = name_len + suffix_len;
    let padded = (content + 1 + 3) & !3;
    w.bytes(&[iscsi(3), assoc_type, 0x00, padded as u8]);
    w.bytes(prefix(name.as_bytes(), name_len));
    if let Some(t) = tpgt {
        w.bytes(b",t,0x");
        for shift in [12u16, 8, 4, 0] {
            w.u8(b"0123456789abcdef".get(usize::from((t >> shift) & 0xf)).copied().unwrap_or(b'0'));
        }
    }
    w.zeros(padded - content);
}

/// Block Limits (SBC-4 VPD B0h), page length 3Ch: MAXIMUM COMPARE AND
/// WRITE LENGTH, OPTIMAL TRANSFER LENGTH GRANULARITY (one physical block,
/// [`super::commands::lbppbe`]), MAXIMUM TRANSFER
/// LENGTH [`max_transfer_blocks`], the UNMAP limits (thin LUs only), the
/// MAXIMUM WRITE SAME LENGTH and the atomic write limits of
/// [`super::ext::limits`].
fn block_limits(w: &mut DataIn<'_>, lu: &LuInfo) {
    let (unmap_lbas, unmap_desc, ws_max, atomic_max) = super::ext::limits(lu);
    begin_page(w, 0xb0);
    w.u8(0); // WSNZ 0: WRITE SAME with 0 blocks covers the rest of the LU
    w.u8(super::ext::CAW_BLOCKS_MAX); // MAXIMUM COMPARE AND WRITE LENGTH
    w.u16(1 << super::commands::lbppbe(lu)); // OPTIMAL TRANSFER LENGTH GRANULARITY: a physical block
    w.u32(max_transfer_blocks(lu.block_size)); // MAXIMUM TRANSFER LENGTH
    w.u32(0); // OPTIMAL TRANSFER LENGTH
    w.u32(0); // MAXIMUM PREFETCH LENGTH
    w.u32(if lu.thin { unmap_lbas } else { 0 }); // MAXIMUM UNMAP LBA COUNT
    w.u32(if lu.thin { unmap_desc } else { 0 }); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
    w.u32(if lu.thin { 1 } else { 0 }); // OPTIMAL UNMAP GRANULARITY
    w.u32(0); // UGAVALID, UNMAP GRANULARITY ALIGNMENT
    w.u64(ws_max); // MAXIMUM WRITE SAME LENGTH
    w.u32(atomic_max); // MAXIMUM ATOMIC TRANSFER LENGTH
    w.u32(1); // ATOMIC ALIGNMENT
    w.u32(1); // ATOMIC TRANSFER LENGTH GRANULARITY
    w.u32(0); // MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY
    w.u32(0); // MAXIMUM ATOMIC BOUNDARY SIZE
    end_page(w);
}

/// Block Device Characteristics (SBC-4 VPD B1h), page length 3Ch: MEDIUM
/// ROTATION RATE 0001h (non-rotating medium), product type and form factor
/// not reported; WABEREQ 01b (reads after a SANITIZE BLOCK ERASE succeed,
/// returning zeros) where BLOCK ERASE is offered ([`LuInfo::deallocate`]),
/// else 00b.
fn block_device_characteristics(w: &mut DataIn<'_>, lu: &LuInfo) {
    begin_page(w, 0xb1);
    w.u16(0x0001);
    w.u8(0); // PRODUCT TYPE
    w.u8(if lu.deallocate { 0x40 } else { 0 }); // WABEREQ, WACEREQ, NOMINAL FORM FACTOR
    w.zeros(56);
    end_page(w);
}

/// Logical Block Provisioning (SBC-4 VPD B2h), only for thin LUs: LBPU,
/// LBPWS, LBPWS10 (UNMAP and WRITE SAME with UNMAP), LBPRZ 001b (unmapped
/// blocks read as zeros), PROVISIONING TYPE 010b (thin).
fn logical_block_provisioning(w: &mut DataIn<'_>) {
    begin_page(w, 0xb2);
    w.u8(0); // THRESHOLD EXPONENT
    w.u8(0xe4); // LBPU, LBPWS, LBPWS10, LBPRZ 001b, ANC_SUP 0, DP 0
    w.u8(0x02); // PROVISIONING TYPE: thin
    w.u8(0);
    end_page(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_string_padding() {
        let mut buf = [0xeeu8; 64];
        let mut w = DataIn::new(&mut buf, 64);
        scsi_name_string(&mut w, 0x98, "iqn.x", Some(0x1a));
        // "iqn.x,t,0x001a" = 14 chars + NUL = 15 → 16.
        assert_eq!(w.pos(), 4 + 16);
        assert_eq!(&buf[..4], &[0x53, 0x98, 0, 16]);
        assert_eq!(&buf[4..18], b"iqn.x,t,0x001a");
        assert_eq!(&buf[18..20], &[0, 0]);

        let mut buf = [0xeeu8; 64];
        let mut w = DataIn::new(&mut buf, 64);
        scsi_name_string(&mut w, 0xa8, "iqn.abc", None);
        // 7 chars + NUL = 8.
        assert_eq!(w.pos(), 12);
        assert_eq!(&buf[..12], b"\x53\xa8\x00\x08iqn.abc\0");
    }

    #[test]
    fn long_names_stay_within_a_byte_length() {
        let name = "x".repeat(400);
        let mut buf = [0u8; 300];
        let mut w = DataIn::new(&mut buf, 300);
        scsi_name_string(&mut w, 0x98, &name, Some(1));
        let pos = w.pos();
        let len = usize::from(buf[3]);
        assert_eq!(len % 4, 0);
        assert!(len <= 252);
        assert_eq!(pos, 4 + len);
        assert_eq!(buf[4 + len - 1], 0);
    }
}
