//! CRC32C for HeaderDigest and DataDigest (RFC 7143 §13.1, Appendix B).

/// CRC32C (Castagnoli) of `data`, as placed in a header or data digest.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// CRC32C over several slices, as if they were one buffer (data segment
/// followed by its padding).
pub fn crc32c_parts(parts: &[&[u8]]) -> u32 {
    let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    for p in parts {
        d.update(p);
    }
    d.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3720_vectors() {
        // RFC 3720 Appendix B.4 test vectors (CRC32C, as iSCSI uses it).
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&inc), 0x46dd_794e);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(&dec), 0x113f_db5c);
    }

    #[test]
    fn parts_equal_whole() {
        let a = b"hello iscsi";
        assert_eq!(crc32c_parts(&[&a[..4], &a[4..]]), crc32c(a));
    }
}
