//! From canonical bytes to the 128-bit key (docs/key-scheme.md, section 3).

use super::encode::tag;

/// Bumped whenever any byte of the canonical encoding or the digest changes (golden vectors catch it).
/// Version 2: paths key their flavour (`W` for Windows paths), and a class no other process can name
/// gets a process-local identity (`L`) instead of its `module.qualname`.
pub const KEY_SCHEME_VERSION: u32 = 2;

/// Domain separation: a key can never equal a digest taken of the same bytes for another purpose.
const DOMAIN: &[u8] = b"oxicache-key-v1\x00";

/// The key of `(func, inputs)` given the already-encoded inputs dict: the first 16 bytes, read
/// big-endian, of BLAKE3(domain + encode((func, inputs))). The tuple header and the name are fed to the
/// hasher piecewise, so the inputs bytes are never copied.
pub fn entry_key(func: &str, inputs_bytes: &[u8]) -> u128 {
    let mut head = smallvec::SmallVec::<[u8; 128]>::new();
    head.extend_from_slice(DOMAIN);
    head.push(tag::TUPLE);
    head.push(2);
    head.push(tag::STR);
    let mut len = [0u8; 10];
    let n = varint_into(&mut len, func.len() as u64);
    head.extend_from_slice(&len[..n]);
    head.extend_from_slice(func.as_bytes());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&head);
    hasher.update(inputs_bytes);
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_be_bytes(first)
}

/// LEB128 of `n` into `out`; returns the number of bytes.
fn varint_into(out: &mut [u8; 10], mut n: u64) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    i + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_big_endian_prefix_of_blake3_over_the_pair() {
        // ("f", {}) -> t 02 s 01 'f' d 00
        let expected = blake3::hash(b"oxicache-key-v1\x00t\x02s\x01fd\x00");
        assert_eq!(entry_key("f", b"d\x00").to_be_bytes(), expected.as_bytes()[..16]);
    }

    #[test]
    fn long_names_use_multi_byte_lengths() {
        let name = "m".repeat(200);
        let mut pair = b"oxicache-key-v1\x00t\x02s\xc8\x01".to_vec();
        pair.extend_from_slice(name.as_bytes());
        pair.extend_from_slice(b"d\x00");
        assert_eq!(
            entry_key(&name, b"d\x00").to_be_bytes(),
            blake3::hash(&pair).as_bytes()[..16]
        );
    }
}
