//! Decoding canonical bytes back into Python values, for the lossless subset of the encoding (builtins).
//!
//! The in-memory store keeps only the canonical bytes of a call's inputs when they are lossless; iteration
//! rebuilds `entry.inputs` from them instead of holding the argument objects alive.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyList, PySet, PyString, PyTuple};

use super::encode::tag;

pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

fn corrupt(what: &str) -> PyErr {
    PyValueError::new_err(format!("corrupt canonical key bytes: {what}"))
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Decoder { data, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    fn byte(&mut self) -> PyResult<u8> {
        let b = *self.data.get(self.pos).ok_or_else(|| corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn varint(&mut self) -> PyResult<usize> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(value).map_err(|_| corrupt("length overflow"));
            }
        }
        Err(corrupt("varint too long"))
    }

    fn f64_payload(&mut self) -> PyResult<f64> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(f64::from_bits(u64::from_be_bytes(raw)))
    }

    pub fn str_payload(&mut self) -> PyResult<&'a [u8]> {
        let n = self.varint()?;
        self.take(n)
    }

    pub fn value<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.byte()?;
        Ok(match t {
            tag::NONE => py.None().into_bound(py),
            tag::TRUE => true.into_pyobject(py)?.to_owned().into_any(),
            tag::FALSE => false.into_pyobject(py)?.to_owned().into_any(),
            tag::ELLIPSIS => py.Ellipsis().into_bound(py),
            tag::INT => {
                let n = self.varint()?;
                let bytes = self.take(n)?;
                if n <= 8 {
                    // Sign-extend the little-endian two's complement bytes.
                    let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut raw = [fill; 8];
                    raw[..n].copy_from_slice(bytes);
                    i64::from_le_bytes(raw).into_pyobject(py)?.into_any()
                } else {
                    let kwargs = PyDict::new(py);
                    kwargs.set_item("signed", true)?;
                    py.get_type::<pyo3::types::PyInt>().call_method(
                        "from_bytes",
                        (PyBytes::new(py, bytes), "little"),
                        Some(&kwargs),
                    )?
                }
            }
            tag::FLOAT => PyFloat::new(py, self.f64_payload()?).into_any(),
            tag::COMPLEX => {
                let re = self.f64_payload()?;
                let im = self.f64_payload()?;
                PyComplex::from_doubles(py, re, im).into_any()
            }
            tag::STR => {
                let bytes = self.str_payload()?;
                match std::str::from_utf8(bytes) {
                    Ok(s) => PyString::new(py, s).into_any(),
                    Err(_) => PyBytes::new(py, bytes).call_method1("decode", ("utf-8", "surrogatepass"))?,
                }
            }
            tag::BYTES => {
                let n = self.varint()?;
                PyBytes::new(py, self.take(n)?).into_any()
            }
            tag::BYTEARRAY => {
                let n = self.varint()?;
                PyByteArray::new(py, self.take(n)?).into_any()
            }
            tag::TUPLE | tag::LIST | tag::SET | tag::FROZENSET => {
                let count = self.varint()?;
                let mut items = Vec::with_capacity(count.min(1 << 16));
                for _ in 0..count {
                    items.push(self.value(py)?);
                }
                match t {
                    tag::TUPLE => PyTuple::new(py, items)?.into_any(),
                    tag::LIST => PyList::new(py, items)?.into_any(),
                    tag::SET => PySet::new(py, items)?.into_any(),
                    _ => PyFrozenSet::new(py, items)?.into_any(),
                }
            }
            tag::DICT => self.dict(py)?.into_any(),
            other => return Err(corrupt(&format!("tag {:?} is not decodable", other as char))),
        })
    }

    pub fn dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let count = self.varint()?;
        let dict = PyDict::new(py);
        for _ in 0..count {
            let k = self.value(py)?;
            let v = self.value(py)?;
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }
}

/// Decodes an inputs dict written by `Encoder::write_dict` (tag included).
pub fn decode_dict<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let mut dec = Decoder::new(data);
    if dec.byte()? != tag::DICT {
        return Err(corrupt("expected a dict"));
    }
    let dict = dec.dict(py)?;
    if !dec.at_end() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(dict)
}
