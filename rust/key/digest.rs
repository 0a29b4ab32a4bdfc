//! From canonical bytes to the 128-bit key (docs/key-scheme.md, section 3).

use super::encode::tag;

/// Bumped whenever any byte of the canonical encoding or the digest changes (golden vectors catch it).
/// Version 2: paths key their flavour (`W` for Windows paths), and a class no other process can name
/// gets a process-local identity (`L`) instead of its `module.qualname`.
pub const KEY_SCHEME_VERSION: u32 = 2;

/// Domain separation: a key can never equal a digest taken of the same bytes for another purpose.
const DOMAIN: &[u8] = b"oxicache-key-v1\x00";

/// BLAKE3's chunk length: the pair's bytes up to this size are hashed from one contiguous buffer.
const ONE_CHUNK: usize = 1024;

/// The bytes hashed before the inputs' encoding: the domain, the pair's tuple header and `func`'s `s`
/// encoding (so the hashed bytes are domain + encode((func, inputs))).
pub fn write_head(out: &mut Vec<u8>, func: &str) {
    out.extend_from_slice(DOMAIN);
    out.push(tag::TUPLE);
    out.push(2);
    out.push(tag::STR);
    let mut len = [0u8; 10];
    let n = varint_into(&mut len, func.len() as u64);
    out.extend_from_slice(&len[..n]);
    out.extend_from_slice(func.as_bytes());
}

/// The key of a buffer holding `write_head`'s bytes then the inputs' encoding: the first 16 bytes, read
/// big-endian, of BLAKE3 over it. Hashing one contiguous buffer lets BLAKE3 compress a single chunk
/// directly and spread longer inputs over SIMD lanes from their first chunk (an incremental hasher fed
/// head and inputs separately does neither: its set-up alone was a third of a small key's time).
pub fn key_of_pair(pair: &[u8]) -> u128 {
    let digest = blake3::hash(pair);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_be_bytes(first)
}

/// The key of `(func, inputs)` given the already-encoded inputs dict (see `key_of_pair`). A pair up to one
/// chunk is assembled in the thread's scratch buffer; a longer one is fed to the hasher piecewise rather
/// than copied.
pub fn entry_key(func: &str, inputs_bytes: &[u8]) -> u128 {
    super::encode::with_scratch(|pair| {
        write_head(pair, func);
        if pair.len() + inputs_bytes.len() <= ONE_CHUNK {
            pair.extend_from_slice(inputs_bytes);
            return key_of_pair(pair);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(pair);
        hasher.update(inputs_bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        u128::from_be_bytes(first)
    })
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
    fn one_piece_and_incremental_hashing_agree_across_the_chunk_boundary() {
        // Pairs of 990 to 1100 bytes: both sides of the one-chunk fast path give BLAKE3 of the whole pair.
        for n in 960..1080 {
            let inputs: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut pair = b"oxicache-key-v1\x00t\x02s\x01f".to_vec();
            pair.extend_from_slice(&inputs);
            assert_eq!(
                entry_key("f", &inputs).to_be_bytes(),
                blake3::hash(&pair).as_bytes()[..16],
                "n={n}"
            );
        }
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
