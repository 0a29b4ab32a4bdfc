//! The binary encoding: MessagePack, with extension types for what it lacks (docs/value-codec.md).
//! Exact forms: smallest int/str/bin/array/map headers, every extension as ext 32.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyString, PyTuple};

use crate::snapshot;

use super::encode::{self, Blob, Format, Wrapper};
use super::{decode_error, ext, parts, revive, EncodeResult, MAX_DEPTH};

// ---- writing ---------------------------------------------------------------------------------------

#[inline]
fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if v <= u8::MAX as u64 {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u16::MAX as u64 {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u32::MAX as u64 {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i8::MIN as i64 {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i16::MIN as i64 {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline]
fn write_header(out: &mut Vec<u8>, len: usize, fix: Option<(u8, usize)>, forms: [u8; 3]) {
    match fix {
        Some((base, limit)) if len < limit => out.push(base | len as u8),
        _ if len <= u8::MAX as usize && forms[0] != 0 => out.extend_from_slice(&[forms[0], len as u8]),
        _ if len <= u16::MAX as usize => {
            out.push(forms[1]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(forms[2]);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
}

#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    write_header(out, s.len(), Some((0xa0, 32)), [0xd9, 0xda, 0xdb]);
    out.extend_from_slice(s.as_bytes());
}

#[inline]
fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    write_header(out, b.len(), None, [0xc4, 0xc5, 0xc6]);
    out.extend_from_slice(b);
}

#[inline]
fn write_array_header(out: &mut Vec<u8>, len: usize) {
    write_header(out, len, Some((0x90, 16)), [0, 0xdc, 0xdd]);
}

#[inline]
fn write_map_header(out: &mut Vec<u8>, len: usize) {
    write_header(out, len, Some((0x80, 16)), [0, 0xde, 0xdf]);
}

/// Writes an ext 32 around what `body` writes (its length is patched in afterwards).
fn write_ext(out: &mut Vec<u8>, code: i8, body: impl FnOnce(&mut Vec<u8>)) {
    let mark = open_ext(out, code);
    body(out);
    close_ext(out, mark);
}

fn open_ext(out: &mut Vec<u8>, code: i8) -> usize {
    out.push(0xc9);
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, code as u8]);
    at
}

fn close_ext(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 5) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn write_raw_ext(out: &mut Vec<u8>, code: i8, bytes: &[u8]) {
    write_ext(out, code, |o| o.extend_from_slice(bytes));
}

/// The MessagePack layout of each part.
pub struct MsgPack;

impl Format for MsgPack {
    #[inline]
    fn none(out: &mut Vec<u8>) {
        out.push(0xc0);
    }

    #[inline]
    fn boolean(out: &mut Vec<u8>, v: bool) {
        out.push(if v { 0xc3 } else { 0xc2 });
    }

    #[inline]
    fn int(out: &mut Vec<u8>, v: i64) {
        write_int(out, v);
    }

    #[inline]
    fn uint(out: &mut Vec<u8>, v: u64) {
        write_uint(out, v);
    }

    fn bigint(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult {
        write_raw_ext(out, ext::BIGINT, &parts::bigint_bytes(obj)?);
        Ok(())
    }

    #[inline]
    fn float(out: &mut Vec<u8>, v: f64) {
        out.push(0xcb);
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// UTF-8, or ext 21 (UTF-8 with surrogatepass) when the str holds lone surrogates.
    #[inline]
    fn str(out: &mut Vec<u8>, s: &Bound<'_, PyString>) -> EncodeResult {
        match s.to_str() {
            Ok(text) => write_str(out, text),
            Err(_) => write_raw_ext(out, ext::SURROGATE_STR, &parts::surrogate_bytes(s)?),
        }
        Ok(())
    }

    fn blob(out: &mut Vec<u8>, kind: Blob, bytes: &[u8]) {
        match kind {
            Blob::Bytes => write_bin(out, bytes),
            Blob::ByteArray => write_raw_ext(out, ext::BYTEARRAY, bytes),
            Blob::KeyBytes => write_raw_ext(out, ext::KEYBYTES, bytes),
        }
    }

    fn ellipsis(out: &mut Vec<u8>) {
        write_ext(out, ext::ELLIPSIS, |_| {});
    }

    fn complex(out: &mut Vec<u8>, re: f64, im: f64) {
        write_ext(out, ext::COMPLEX, |o| {
            o.extend_from_slice(&re.to_be_bytes());
            o.extend_from_slice(&im.to_be_bytes());
        });
    }

    fn time(out: &mut Vec<u8>, datetime: bool, parts: &parts::TimeParts) {
        write_ext(out, if datetime { ext::DATETIME } else { ext::TIME }, |o| {
            write_array_header(o, 3);
            write_str(o, &parts.iso);
            match &parts.zone {
                Some(z) => write_str(o, z),
                None => o.push(0xc0),
            }
            write_uint(o, parts.fold as u64);
        });
    }

    fn date(out: &mut Vec<u8>, iso: &str) {
        write_ext(out, ext::DATE, |o| write_str(o, iso));
    }

    fn timedelta(out: &mut Vec<u8>, days: i64, seconds: i64, micros: i64) {
        write_ext(out, ext::TIMEDELTA, |o| {
            write_array_header(o, 3);
            write_int(o, days);
            write_int(o, seconds);
            write_int(o, micros);
        });
    }

    fn decimal(out: &mut Vec<u8>, text: &str) {
        write_ext(out, ext::DECIMAL, |o| write_str(o, text));
    }

    fn uuid(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> EncodeResult {
        let bytes: Vec<u8> = obj.getattr("bytes")?.extract()?;
        write_raw_ext(out, ext::UUID, &bytes);
        Ok(())
    }

    fn path(out: &mut Vec<u8>, class: &str, text: &Bound<'_, PyString>) -> EncodeResult {
        let mark = open_ext(out, ext::PATH);
        write_array_header(out, 2);
        write_str(out, class);
        Self::str(out, text)?;
        close_ext(out, mark);
        Ok(())
    }

    fn ndarray(out: &mut Vec<u8>, dtype: &str, shape: &[usize], data: &[u8]) {
        write_ext(out, ext::NDARRAY, |o| {
            write_array_header(o, 3);
            write_str(o, dtype);
            write_array_header(o, shape.len());
            for d in shape {
                write_uint(o, *d as u64);
            }
            write_bin(o, data);
        });
    }

    fn npscalar(out: &mut Vec<u8>, dtype: &str, data: &[u8]) {
        write_ext(out, ext::NPSCALAR, |o| {
            write_array_header(o, 2);
            write_str(o, dtype);
            write_bin(o, data);
        });
    }

    /// ext(code) holding the value, or `[name, value]` for a named class.
    fn open(out: &mut Vec<u8>, wrapper: Wrapper, name: Option<&str>) -> usize {
        let mark = open_ext(out, wrapper.code);
        if let Some(name) = name {
            write_array_header(out, 2);
            write_str(out, name);
        }
        mark
    }

    fn close(out: &mut Vec<u8>, mark: usize) {
        close_ext(out, mark);
    }

    #[inline]
    fn array_start(out: &mut Vec<u8>, len: usize) {
        write_array_header(out, len);
    }

    #[inline]
    fn array_next(_out: &mut Vec<u8>, _index: usize) {}

    #[inline]
    fn array_end(_out: &mut Vec<u8>) {}

    fn dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, items: &snapshot::Pairs<'_>, depth: usize) -> EncodeResult {
        write_map_header(out, items.len());
        for (k, v) in items {
            encode::dict_key::<Self>(out, dict, k, depth)?;
            encode::dict_value::<Self>(out, dict, v, depth, || encode::key_repr(k))?;
        }
        Ok(())
    }
}

/// Appends the binary encoding of `obj` to `out`.
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> EncodeResult {
    encode::encode::<MsgPack>(obj, out, depth)
}

// ---- reading ---------------------------------------------------------------------------------------

struct Reader<'a, 'py> {
    py: Python<'py>,
    data: &'a [u8],
    pos: usize,
}

impl<'a, 'py> Reader<'a, 'py> {
    fn fail(&self, what: &str) -> PyErr {
        decode_error(
            self.py,
            format!("invalid binary cache data at byte {}: {what}", self.pos),
        )
    }

    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(self.fail("truncated"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> PyResult<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn text(&mut self, n: usize) -> PyResult<&'a str> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| self.fail("invalid UTF-8 in a string"))
    }

    /// A plain str (the fixed parts of extensions).
    fn string(&mut self) -> PyResult<&'a str> {
        let b = self.byte()?;
        let n = match b {
            0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(self.fail("expected a string")),
        };
        self.text(n)
    }

    fn optional_string(&mut self) -> PyResult<Option<&'a str>> {
        if self.data.get(self.pos) == Some(&0xc0) {
            self.pos += 1;
            return Ok(None);
        }
        self.string().map(Some)
    }

    fn array_len(&mut self) -> PyResult<usize> {
        let b = self.byte()?;
        Ok(match b {
            0x90..=0x9f => (b & 0x0f) as usize,
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err(self.fail("expected an array")),
        })
    }

    fn map_len(&mut self) -> PyResult<usize> {
        let b = self.byte()?;
        Ok(match b {
            0x80..=0x8f => (b & 0x0f) as usize,
            0xde => self.be(2)? as usize,
            0xdf => self.be(4)? as usize,
            _ => return Err(self.fail("expected a map")),
        })
    }

    fn expect_array(&mut self, n: usize) -> PyResult<()> {
        if self.array_len()? != n {
            return Err(self.fail("an extension has the wrong number of parts"));
        }
        Ok(())
    }

    /// An int part of an extension (not a bool, not a float).
    fn int(&mut self) -> PyResult<i64> {
        let v = self.value(0)?;
        let v = v.bind(self.py);
        if !v.is_exact_instance_of::<pyo3::types::PyInt>() {
            return Err(self.fail("expected an int"));
        }
        v.extract().map_err(|_| self.fail("an int part out of range"))
    }

    fn bin(&mut self) -> PyResult<&'a [u8]> {
        let b = self.byte()?;
        let n = match b {
            0xc4 => self.be(1)? as usize,
            0xc5 => self.be(2)? as usize,
            0xc6 => self.be(4)? as usize,
            _ => return Err(self.fail("expected bytes")),
        };
        self.take(n)
    }

    fn items(&mut self, n: usize, depth: usize) -> PyResult<Vec<Py<PyAny>>> {
        // Each item takes at least one byte: a length beyond the data left is damage, not a reason to
        // allocate.
        if n > self.data.len() - self.pos {
            return Err(self.fail("a length exceeds the data"));
        }
        (0..n).map(|_| self.value(depth + 1)).collect()
    }

    /// A list of the next `n` values, filled in place.
    fn list(&mut self, n: usize, depth: usize) -> PyResult<Py<PyAny>> {
        if n > self.data.len() - self.pos {
            return Err(self.fail("a length exceeds the data"));
        }
        // SAFETY: a new list of n NULL slots; each slot is set once with a new reference. If an item fails,
        // the list is dropped with its remaining slots NULL, which list_dealloc allows.
        unsafe {
            let list = Bound::from_owned_ptr_or_err(self.py, ffi::PyList_New(n as ffi::Py_ssize_t))?.unbind();
            for i in 0..n {
                let item = self.value(depth + 1)?;
                ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
            }
            Ok(list)
        }
    }

    /// A map key: short strs come from the key cache.
    fn key(&mut self, depth: usize) -> PyResult<Py<PyAny>> {
        let n = match self.data.get(self.pos) {
            Some(&b @ 0xa0..=0xbf) => {
                self.pos += 1;
                (b & 0x1f) as usize
            }
            Some(0xd9) => {
                self.pos += 1;
                self.be(1)? as usize
            }
            _ => return self.value(depth + 1),
        };
        super::key_str(self.py, self.take(n)?)
    }

    fn map(&mut self, n: usize, depth: usize) -> PyResult<Bound<'py, PyDict>> {
        if n > self.data.len() - self.pos {
            return Err(self.fail("a length exceeds the data"));
        }
        let dict = PyDict::new(self.py);
        for _ in 0..n {
            let k = self.key(depth)?;
            let v = self.value(depth + 1)?;
            dict.set_item(k, v)
                .map_err(|e| self.fail(&format!("unusable dict key ({e})")))?;
        }
        Ok(dict)
    }

    fn value(&mut self, depth: usize) -> PyResult<Py<PyAny>> {
        if depth > MAX_DEPTH {
            return Err(self.fail(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let py = self.py;
        let b = self.byte()?;
        let obj: Py<PyAny> = match b {
            0x00..=0x7f => (b as i64).into_pyobject(py)?.into_any().unbind(),
            0xe0..=0xff => (b as i8 as i64).into_pyobject(py)?.into_any().unbind(),
            0xcc => self.be(1)?.into_pyobject(py)?.into_any().unbind(),
            0xcd => self.be(2)?.into_pyobject(py)?.into_any().unbind(),
            0xce => self.be(4)?.into_pyobject(py)?.into_any().unbind(),
            0xcf => self.be(8)?.into_pyobject(py)?.into_any().unbind(),
            0xd0 => (self.be(1)? as u8 as i8 as i64).into_pyobject(py)?.into_any().unbind(),
            0xd1 => (self.be(2)? as u16 as i16 as i64)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            0xd2 => (self.be(4)? as u32 as i32 as i64)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            0xd3 => (self.be(8)? as i64).into_pyobject(py)?.into_any().unbind(),
            0xc0 => py.None(),
            0xc2 => false.into_pyobject(py)?.to_owned().into_any().unbind(),
            0xc3 => true.into_pyobject(py)?.to_owned().into_any().unbind(),
            0xca => (f32::from_bits(self.be(4)? as u32) as f64)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            0xcb => f64::from_bits(self.be(8)?).into_pyobject(py)?.into_any().unbind(),
            0xa0..=0xbf => super::new_str(py, self.take((b & 0x1f) as usize)?)?,
            0xd9..=0xdb => {
                let n = self.be(1 << (b - 0xd9))? as usize;
                super::new_str(py, self.take(n)?)?
            }
            0xc4..=0xc6 => {
                let n = self.be(1 << (b - 0xc4))? as usize;
                PyBytes::new(py, self.take(n)?).into_any().unbind()
            }
            0x90..=0x9f => self.list((b & 0x0f) as usize, depth)?,
            0xdc | 0xdd => {
                let n = self.be(if b == 0xdc { 2 } else { 4 })? as usize;
                self.list(n, depth)?
            }
            0x80..=0x8f => self.map((b & 0x0f) as usize, depth)?.into_any().unbind(),
            0xde | 0xdf => {
                let n = self.be(if b == 0xde { 2 } else { 4 })? as usize;
                self.map(n, depth)?.into_any().unbind()
            }
            0xd4..=0xd8 => {
                let n = 1usize << (b - 0xd4);
                let code = self.byte()? as i8;
                self.ext(code, n, depth)?
            }
            0xc7..=0xc9 => {
                let n = self.be(1 << (b - 0xc7))? as usize;
                let code = self.byte()? as i8;
                self.ext(code, n, depth)?
            }
            _ => return Err(self.fail(&format!("unknown type byte 0x{b:02x}"))),
        };
        Ok(obj)
    }

    /// An extension value whose payload is the next `n` bytes.
    fn ext(&mut self, code: i8, n: usize, depth: usize) -> PyResult<Py<PyAny>> {
        let py = self.py;
        if n > self.data.len() - self.pos {
            return Err(self.fail("truncated extension"));
        }
        let end = self.pos + n;
        let obj = match code {
            ext::BIGINT => revive::revive_bigint(py, self.take(n)?)?,
            ext::TUPLE | ext::SET | ext::FROZENSET => {
                let len = self.array_len()?;
                let items = self.items(len, depth)?;
                match code {
                    ext::TUPLE => PyTuple::new(py, items)?.into_any().unbind(),
                    ext::SET => PySet::new(py, items)
                        .map_err(|e| self.fail(&format!("unusable set item ({e})")))?
                        .into_any()
                        .unbind(),
                    _ => PyFrozenSet::new(py, items)
                        .map_err(|e| self.fail(&format!("unusable set item ({e})")))?
                        .into_any()
                        .unbind(),
                }
            }
            ext::ELLIPSIS if n == 0 => py.Ellipsis(),
            ext::ELLIPSIS => return Err(self.fail("an ellipsis with a payload")),
            ext::COMPLEX | ext::UUID if n != 16 => return Err(self.fail("a complex or uuid that is not 16 bytes")),
            ext::BYTEARRAY => PyByteArray::new(py, self.take(n)?).into_any().unbind(),
            ext::COMPLEX => {
                let re = f64::from_bits(self.be(8)?);
                let im = f64::from_bits(self.be(8)?);
                pyo3::types::PyComplex::from_doubles(py, re, im).into_any().unbind()
            }
            ext::DATETIME | ext::TIME => {
                self.expect_array(3)?;
                let iso = self.string()?;
                let zone = self.optional_string()?;
                let fold = self.int()?;
                if !(0..=1).contains(&fold) {
                    return Err(self.fail("fold must be 0 or 1"));
                }
                revive::revive_time(py, code == ext::DATETIME, iso, zone, fold as u8)
                    .map_err(|e| self.fail(&format!("bad date/time ({e})")))?
            }
            ext::DATE => {
                let iso = self.string()?;
                revive::revive_date(py, iso).map_err(|e| self.fail(&format!("bad date ({e})")))?
            }
            ext::TIMEDELTA => {
                self.expect_array(3)?;
                let (d, s, us) = (self.int()?, self.int()?, self.int()?);
                revive::revive_timedelta(py, d, s, us).map_err(|e| self.fail(&format!("bad timedelta ({e})")))?
            }
            ext::DECIMAL => {
                let text = self.string()?;
                revive::revive_decimal(py, text).map_err(|e| self.fail(&format!("bad decimal ({e})")))?
            }
            ext::UUID => {
                let bytes = self.take(n)?;
                revive::revive_uuid_bytes(py, bytes).map_err(|e| self.fail(&format!("bad uuid ({e})")))?
            }
            ext::PATH => {
                self.expect_array(2)?;
                let class = self.string()?;
                let text = self.value(depth)?;
                revive::revive_path(py, class, text.bind(py))?
            }
            ext::ENUM => {
                self.expect_array(2)?;
                let name = self.string()?;
                let value = self.value(depth + 1)?;
                revive::revive_enum(py, name, value.bind(py))?
            }
            ext::DATACLASS | ext::PYDANTIC => {
                self.expect_array(2)?;
                let name = self.string()?;
                let n = self.map_len()?;
                let fields = self.map(n, depth)?;
                let fields = &fields;
                if code == ext::DATACLASS {
                    revive::revive_dataclass(py, name, fields)?
                } else {
                    revive::revive_pydantic(py, name, fields)?
                }
            }
            ext::NAMEDTUPLE => {
                self.expect_array(2)?;
                let name = self.string()?;
                let n = self.array_len()?;
                let items = self.list(n, depth)?;
                let items = items.bind(py).cast::<PyList>()?;
                revive::revive_namedtuple(py, name, items)?
            }
            ext::NDARRAY => {
                self.expect_array(3)?;
                let dtype = self.string()?;
                let dims = self.array_len()?;
                let shape = (0..dims)
                    .map(|_| self.int().map(|d| d as usize))
                    .collect::<PyResult<Vec<_>>>()?;
                let data = self.bin()?;
                revive::revive_ndarray(py, dtype, &shape, data).map_err(|e| self.fail(&format!("bad array ({e})")))?
            }
            ext::NPSCALAR => {
                self.expect_array(2)?;
                let dtype = self.string()?;
                let data = self.bin()?;
                revive::revive_npscalar(py, dtype, data).map_err(|e| self.fail(&format!("bad numpy scalar ({e})")))?
            }
            ext::SURROGATE_STR => revive::str_from_surrogate_bytes(py, self.take(n)?)?,
            ext::KEYBYTES => revive::revive_keybytes(py, self.take(n)?)?,
            _ => return Err(self.fail(&format!("unknown extension type {code}"))),
        };
        if self.pos != end {
            return Err(self.fail("an extension's length does not match its contents"));
        }
        Ok(obj)
    }
}

/// The value of a complete binary encoding (trailing bytes are an error).
pub fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let mut reader = Reader { py, data, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != data.len() {
        return Err(reader.fail("trailing bytes after the value"));
    }
    Ok(value)
}
