//! The JSON encoding, writing side: plain JSON where JSON can say it, tagged objects
//! (`{"$tuple": [...]}`) where it cannot (docs/value-codec.md), written as Python's
//! `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` would write it. Reading is in
//! `json_read.rs`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::snapshot;

use super::encode::{self, Blob, Format, Wrapper};
use super::{parts, EncodeResult};

// ---- writing ---------------------------------------------------------------------------------------

/// Bytes that need an escape in a JSON string: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// True when one of the 8 bytes of `word` needs an escape. Exact: `(x - ONES*n) & !x & HIGHS` is non-zero
/// iff some byte of x is below n (n <= 0x80; the borrows only ever flag a byte after a true one).
#[inline(always)]
fn word_needs_escape(word: u64) -> bool {
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS != 0;
    below(word, 0x20) || below(word ^ (ONES * b'"' as u64), 1) || below(word ^ (ONES * b'\\' as u64), 1)
}

/// The index of the first byte at or after `from` that needs an escape (LLM replies are kilobytes of text
/// with a newline every few dozen bytes): sixteen bytes per step with SSE2, which every x86-64 has.
#[cfg(target_arch = "x86_64")]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut i = from;
    // SAFETY: SSE2 is part of the x86-64 baseline; each unaligned load reads bytes[i..i + 16], in bounds.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let last_control = _mm_set1_epi8(0x1f);
        while i + 16 <= bytes.len() {
            let v = _mm_loadu_si128(bytes.as_ptr().add(i).cast::<__m128i>());
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, last_control), v); // v <= 0x1f, unsigned
            let special = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash));
            let mask = _mm_movemask_epi8(_mm_or_si128(control, special)) as u32;
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    next_escape_by_words(bytes, i)
}

#[cfg(not(target_arch = "x86_64"))]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    next_escape_by_words(bytes, from)
}

/// `next_escape` eight bytes per step (the tail of the SSE2 scan, and other architectures).
fn next_escape_by_words(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 8 <= bytes.len() {
        let word = u64::from_ne_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if word_needs_escape(word) {
            break;
        }
        i += 8;
    }
    (i..bytes.len()).find(|&j| NEEDS_ESCAPE[bytes[j] as usize])
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Python's `repr(float)` for a finite value: the shortest digits that round-trip (from ryu), laid out
/// by Python's rules (exponent form when the decimal point is more than 16 places right or 4 left of
/// the first digit: `1e+16`, `1e-05`, `0.0001`, `123.0`).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(v);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = 0.DIGITS x 10^decpt, DIGITS without leading or trailing zeros (at most 17 + padding)
    let mut all = [0u8; 40];
    let total = int_part.len() + frac_part.len();
    all[..int_part.len()].copy_from_slice(int_part.as_bytes());
    all[int_part.len()..total].copy_from_slice(frac_part.as_bytes());
    let leading = all[..total].iter().take_while(|&&d| d == b'0').count();
    let trailing = all[leading..total].iter().rev().take_while(|&&d| d == b'0').count();
    let digits = &all[leading..total - trailing];
    let decpt = int_part.len() as i32 + exponent - leading as i32;
    if negative {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
        return;
    }
    let n = digits.len() as i32;
    if decpt <= -4 || decpt > 16 {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let e = decpt - 1;
        out.extend_from_slice(if e < 0 { b"e-" } else { b"e+" });
        if e.abs() < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(e.abs()).as_bytes());
    } else if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-decpt) as usize));
        out.extend_from_slice(digits);
    } else if decpt >= n {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (decpt - n) as usize));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..decpt as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[decpt as usize..]);
    }
}

/// A float: its repr, or a `$float` tag for NaN and the infinities (JSON has no literal for them).
fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        write_f64(out, v);
    } else {
        open_tag(out, "float");
        write_str(
            out,
            if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            },
        );
        out.push(b'}');
    }
}

/// A str value: a JSON string, or `{"$str16": [UTF-16 code units]}` when it holds lone surrogates.
fn write_str_value(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> EncodeResult {
    match s.to_str() {
        Ok(text) => write_str(out, text),
        Err(_) => {
            let units: Vec<u8> = s.call_method1("encode", ("utf-16-le", "surrogatepass"))?.extract()?;
            open_tag(out, "str16");
            out.push(b'[');
            for (i, pair) in units.chunks_exact(2).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let unit = u16::from_le_bytes([pair[0], pair[1]]);
                out.extend_from_slice(itoa::Buffer::new().format(unit).as_bytes());
            }
            out.extend_from_slice(b"]}");
        }
    }
    Ok(())
}

/// `{"$tag":` (the caller writes the value and the closing brace).
fn open_tag(out: &mut Vec<u8>, tag: &str) {
    out.extend_from_slice(b"{\"$");
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_b64(out: &mut Vec<u8>, tag: &str, bytes: &[u8]) {
    open_tag(out, tag);
    write_str(out, &BASE64.encode(bytes));
    out.push(b'}');
}

/// A plain key: an exact str, valid UTF-8, not starting with "$" (so the object can't read as a tag).
fn plain_key<'a>(k: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !k.is_exact_instance_of::<PyString>() {
        return None;
    }
    // SAFETY: exact str; the borrowed UTF-8 lives as long as the str.
    let s = unsafe { k.cast_unchecked::<PyString>() }.to_str().ok()?;
    (!s.starts_with('$')).then_some(s)
}

/// A plain object when every key can be a plain key, else `{"$dict": [[key, value], ...]}`.
fn write_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, items: &snapshot::Pairs<'_>, depth: usize) -> EncodeResult {
    // Written as a plain object in one pass; a key that can't be a plain key rewinds to the tagged form.
    /// Why the plain pass stopped: a key that needs the tagged form, or an encoding error.
    enum Stop {
        NotPlain,
        Failed(super::EncodeError),
    }
    let start = out.len();
    out.push(b'{');
    let plain = items.iter().enumerate().try_for_each(|(i, (k, v))| {
        let Some(key) = plain_key(k) else {
            return Err(Stop::NotPlain);
        };
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        encode::dict_value::<Json>(out, dict, v, depth, || format!("{key:?}")).map_err(Stop::Failed)
    });
    match plain {
        Ok(()) => {
            out.push(b'}');
            return Ok(());
        }
        Err(Stop::Failed(e)) => return Err(e),
        Err(Stop::NotPlain) => {}
    }
    out.truncate(start);
    open_tag(out, "dict");
    out.push(b'[');
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        encode::dict_key::<Json>(out, dict, k, depth)?;
        out.push(b',');
        encode::dict_value::<Json>(out, dict, v, depth, || encode::key_repr(k))?;
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    Ok(())
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// `{"$tag":"text"}`.
fn write_tagged_str(out: &mut Vec<u8>, tag: &str, text: &str) {
    open_tag(out, tag);
    write_str(out, text);
    out.push(b'}');
}

/// The tagged-JSON layout of each part.
pub struct Json;

impl Format for Json {
    #[inline]
    fn none(out: &mut Vec<u8>) {
        out.extend_from_slice(b"null");
    }

    #[inline]
    fn boolean(out: &mut Vec<u8>, v: bool) {
        out.extend_from_slice(if v { b"true" } else { b"false" });
    }

    #[inline]
    fn int(out: &mut Vec<u8>, v: i64) {
        write_int(out, v);
    }

    #[inline]
    fn uint(out: &mut Vec<u8>, v: u64) {
        write_int(out, v);
    }

    fn bigint(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult {
        write_tagged_str(out, "int", &obj.str()?.to_string());
        Ok(())
    }

    #[inline]
    fn float(out: &mut Vec<u8>, v: f64) {
        write_float(out, v);
    }

    #[inline]
    fn str(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> EncodeResult {
        write_str_value(out, s)
    }

    fn blob(out: &mut Vec<u8>, kind: Blob, bytes: &[u8]) {
        let tag = match kind {
            Blob::Bytes => "bytes",
            Blob::ByteArray => "bytearray",
            Blob::KeyBytes => "keybytes",
        };
        write_b64(out, tag, bytes);
    }

    fn ellipsis(out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"$ellipsis\":null}");
    }

    fn complex(out: &mut Vec<u8>, re: f64, im: f64) {
        open_tag(out, "complex");
        out.push(b'[');
        write_float(out, re);
        out.push(b',');
        write_float(out, im);
        out.extend_from_slice(b"]}");
    }

    fn time(out: &mut Vec<u8>, datetime: bool, parts: &parts::TimeParts) {
        open_tag(out, if datetime { "datetime" } else { "time" });
        write_str(out, &parts.iso);
        out.extend_from_slice(b",\"zone\":");
        write_opt_str(out, parts.zone.as_deref());
        out.extend_from_slice(b",\"fold\":");
        out.push(b'0' + parts.fold);
        out.push(b'}');
    }

    fn date(out: &mut Vec<u8>, iso: &str) {
        write_tagged_str(out, "date", iso);
    }

    fn timedelta(out: &mut Vec<u8>, days: i64, seconds: i64, micros: i64) {
        open_tag(out, "timedelta");
        out.extend_from_slice(format!("[{days},{seconds},{micros}]}}").as_bytes());
    }

    fn decimal(out: &mut Vec<u8>, text: &str) {
        write_tagged_str(out, "decimal", text);
    }

    fn uuid(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult {
        write_tagged_str(out, "uuid", &obj.str()?.to_string());
        Ok(())
    }

    fn path(out: &mut Vec<u8>, class: &str, text: &Bound<'_, PyString>) -> EncodeResult {
        open_tag(out, "path");
        write_str_value(out, text)?;
        out.extend_from_slice(b",\"class\":");
        write_str(out, class);
        out.push(b'}');
        Ok(())
    }

    fn ndarray(out: &mut Vec<u8>, dtype: &str, shape: &[usize], data: &[u8]) {
        open_tag(out, "ndarray");
        write_str(out, dtype);
        out.extend_from_slice(b",\"shape\":[");
        for (i, d) in shape.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_int(out, *d);
        }
        out.extend_from_slice(b"],\"data\":");
        write_str(out, &BASE64.encode(data));
        out.push(b'}');
    }

    fn npscalar(out: &mut Vec<u8>, dtype: &str, data: &[u8]) {
        open_tag(out, "npscalar");
        write_str(out, dtype);
        out.extend_from_slice(b",\"data\":");
        write_str(out, &BASE64.encode(data));
        out.push(b'}');
    }

    /// `{"$tag":value}`, or `{"$tag":"name","member":value}` for a named class.
    fn open(out: &mut Vec<u8>, wrapper: Wrapper, name: Option<&str>) -> usize {
        open_tag(out, wrapper.tag);
        if let (Some(name), Some(member)) = (name, wrapper.member) {
            write_str(out, name);
            out.extend_from_slice(b",\"");
            out.extend_from_slice(member.as_bytes());
            out.extend_from_slice(b"\":");
        }
        0
    }

    fn close(out: &mut Vec<u8>, _mark: usize) {
        out.push(b'}');
    }

    #[inline]
    fn array_start(out: &mut Vec<u8>, _len: usize) {
        out.push(b'[');
    }

    #[inline]
    fn array_next(out: &mut Vec<u8>, index: usize) {
        if index > 0 {
            out.push(b',');
        }
    }

    #[inline]
    fn array_end(out: &mut Vec<u8>) {
        out.push(b']');
    }

    fn dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, items: &snapshot::Pairs<'_>, depth: usize) -> EncodeResult {
        write_dict(out, dict, items, depth)
    }
}

/// Appends the JSON encoding of `obj` to `out`.
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> EncodeResult {
    encode::encode::<Json>(obj, out, depth)
}

#[cfg(test)]
mod escape_scan_tests {
    use super::*;

    #[test]
    fn the_scans_find_exactly_the_bytes_the_table_names() {
        // Every byte value at every offset of a 20-byte run of text, ASCII and UTF-8 continuation bytes
        // around it: the first escape found is the first byte the table names.
        for filler in [b'a', 0x7f, 0x80, 0xe4, b'!', b'#', b'[', b']'] {
            for b in 0..=255u8 {
                for at in 0..40 {
                    let mut bytes = vec![filler; 40];
                    bytes[at] = b;
                    let naive = bytes.iter().position(|&x| NEEDS_ESCAPE[x as usize]);
                    assert_eq!(next_escape(&bytes, 0), naive, "byte {b:#x} at {at} in {filler:#x}");
                    assert_eq!(
                        next_escape_by_words(&bytes, 0),
                        naive,
                        "byte {b:#x} at {at} in {filler:#x}"
                    );
                    for from in [1, 7, 17] {
                        let after = bytes.iter().skip(from).position(|&x| NEEDS_ESCAPE[x as usize]);
                        assert_eq!(next_escape(&bytes, from), after.map(|p| p + from), "from {from}");
                    }
                }
            }
        }
    }
}
