//! From canonical bytes to the 128-bit key (docs/key-scheme.md, section 3).

use super::encode::{tag, write_str, write_varint};

/// Bumped whenever any byte of the canonical encoding or the digest changes (golden vectors catch it).
pub const KEY_SCHEME_VERSION: u32 = 1;

/// Domain separation: a key can never equal a digest taken of the same bytes for another purpose.
const DOMAIN: &[u8] = b"oxicache-key-v1\x00";

/// First 16 bytes of BLAKE3(domain + key_bytes), read big-endian.
pub fn digest128(key_bytes: &[u8]) -> u128 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    hasher.update(key_bytes);
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_be_bytes(first)
}

/// Canonical bytes of the pair `(func, inputs)` given the already-encoded inputs dict.
pub fn entry_key_bytes(func: &str, inputs_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inputs_bytes.len() + func.len() + 8);
    out.push(tag::TUPLE);
    write_varint(&mut out, 2);
    write_str(&mut out, func);
    out.extend_from_slice(inputs_bytes);
    out
}

/// The key of `(func, inputs)` given the already-encoded inputs dict.
pub fn entry_key(func: &str, inputs_bytes: &[u8]) -> u128 {
    digest128(&entry_key_bytes(func, inputs_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_big_endian_prefix_of_blake3() {
        let expected = blake3::hash(b"oxicache-key-v1\x00abc");
        let key = digest128(b"abc");
        assert_eq!(key.to_be_bytes(), expected.as_bytes()[..16]);
    }

    #[test]
    fn entry_key_bytes_is_a_two_tuple() {
        // ("f", {}) -> t 02 s 01 'f' d 00
        assert_eq!(entry_key_bytes("f", b"d\x00"), b"t\x02s\x01fd\x00".to_vec());
    }
}
