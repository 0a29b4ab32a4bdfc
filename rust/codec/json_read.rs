//! The JSON encoding, reading side: a parser that builds Python objects directly (no intermediate
//! tree), reviving tagged objects (`{"$tuple": [...]}`, the tag key anywhere in the object) as it goes.
//!
//! Strict where the codec is exact: numbers are read from their literal (ints stay ints, and plain ints
//! outside the 64-bit range are refused since the codec writes those as `$int`; floats are correctly
//! rounded), NaN/Infinity literals and lone-surrogate escapes are refused, and nesting counts values,
//! not the parts of a tagged form (docs/value-codec.md).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFrozenSet, PyList, PySet, PyTuple};

use super::{decode_error, revive, MAX_DEPTH};

/// How deep a member of a tagged object sits: `fields` and `items` hold the tagged value's own contents
/// (their entries one level deeper, like a container's), an enum's `value` is one level deeper, and the
/// other members (`zone`, `fold`, `class`, `shape`, `data`) are parts, which are no levels at all.
fn member_depth(key: &[u8], depth: usize) -> usize {
    match key {
        b"fields" | b"items" => depth,
        b"value" => depth + 1,
        _ => 0,
    }
}

struct Parser<'a, 'py> {
    py: Python<'py>,
    data: &'a [u8],
    pos: usize,
    /// Scratch for strings with escapes.
    buf: Vec<u8>,
    /// Arrays and objects open right now: bounds the recursion whatever the value levels say (the parts
    /// of tagged forms do not count as levels, but they do nest).
    open: usize,
}

/// Arrays and objects nested deeper than this are refused outright (values nest at most MAX_DEPTH
/// levels, and a tagged form adds at most two JSON levels per value level).
const MAX_NESTING: usize = 3 * MAX_DEPTH + 8;

impl<'a, 'py> Parser<'a, 'py> {
    fn fail(&self, what: &str) -> PyErr {
        decode_error(self.py, format!("invalid cached JSON at byte {}: {what}", self.pos))
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.data.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> PyResult<()> {
        self.ws();
        if self.peek() != Some(byte) {
            return Err(self.fail(&format!("expected '{}'", byte as char)));
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> PyResult<()> {
        if self.data[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.fail("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(self.fail(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.ws();
        let py = self.py;
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                self.open += 1;
                if self.open > MAX_NESTING {
                    return Err(self.fail("nested too deeply"));
                }
                let v = if open == b'{' {
                    self.object(depth)
                } else {
                    self.array(depth)
                };
                self.open -= 1;
                v
            }
            Some(b'"') => {
                let bytes = self.string()?;
                let obj = super::new_str(py, bytes_of(bytes, &self.buf, self.data))?;
                Ok(obj.into_bound(py))
            }
            Some(b't') => {
                self.literal(b"true")?;
                Ok(pyo3::types::PyBool::new(py, true).to_owned().into_any())
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Ok(pyo3::types::PyBool::new(py, false).to_owned().into_any())
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(py.None().into_bound(py))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.fail("unexpected character")),
            None => Err(self.fail("unexpected end")),
        }
    }

    /// A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    fn number(&mut self) -> PyResult<Bound<'py, PyAny>> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            p.pos - from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.data[int_start] == b'0') {
            return Err(self.fail("invalid number"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            float = true;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        // SAFETY: the scanned bytes are ASCII.
        let text = unsafe { std::str::from_utf8_unchecked(&self.data[start..self.pos]) };
        let py = self.py;
        if float {
            let v: f64 = text.parse().map_err(|_| self.fail("invalid number"))?;
            let Ok(v) = v.into_pyobject(py);
            return Ok(v.into_any());
        }
        if let Ok(v) = text.parse::<i64>() {
            let Ok(v) = v.into_pyobject(py);
            return Ok(v.into_any());
        }
        if let Ok(v) = text.parse::<u64>() {
            let Ok(v) = v.into_pyobject(py);
            return Ok(v.into_any());
        }
        Err(self.fail(&format!(
            "the integer {text} is outside the 64-bit range (this codec writes such ints as $int)"
        )))
    }

    /// A string's UTF-8 bytes: a slice of the input when it has no escapes, else decoded into `buf`.
    fn string(&mut self) -> PyResult<StrRef> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'"') => {
                    let s = StrRef::Input(start, self.pos);
                    self.pos += 1;
                    return Ok(s);
                }
                Some(b'\\') => break,
                Some(0x00..=0x1f) => return Err(self.fail("a control character in a string")),
                Some(_) => self.pos += 1,
                None => return Err(self.fail("an unterminated string")),
            }
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.data[start..self.pos]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(StrRef::Buf);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.fail("an unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => self.buf.push(b'"'),
                        b'\\' => self.buf.push(b'\\'),
                        b'/' => self.buf.push(b'/'),
                        b'b' => self.buf.push(0x08),
                        b'f' => self.buf.push(0x0c),
                        b'n' => self.buf.push(b'\n'),
                        b'r' => self.buf.push(b'\r'),
                        b't' => self.buf.push(b'\t'),
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xd800..0xdc00).contains(&c) {
                                // a high surrogate must be followed by a low one
                                if !self.data[self.pos..].starts_with(b"\\u") {
                                    return Err(
                                        self.fail("a lone surrogate escape (such strings are stored as $str16)")
                                    );
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(self.fail("a lone surrogate escape"));
                                }
                                c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
                            } else if (0xdc00..0xe000).contains(&c) {
                                return Err(self.fail("a lone surrogate escape"));
                            }
                            let ch = char::from_u32(c).ok_or_else(|| self.fail("an invalid escape"))?;
                            let mut utf8 = [0u8; 4];
                            self.buf.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                        }
                        _ => return Err(self.fail("an invalid escape")),
                    }
                }
                Some(0x00..=0x1f) => return Err(self.fail("a control character in a string")),
                Some(b) => {
                    self.buf.push(b);
                    self.pos += 1;
                }
                None => return Err(self.fail("an unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> PyResult<u32> {
        let hex = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.fail("a short \\u escape"))?;
        let text = std::str::from_utf8(hex).map_err(|_| self.fail("a bad \\u escape"))?;
        let v = u32::from_str_radix(text, 16).map_err(|_| self.fail("a bad \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    /// After an opening bracket: true (and consumed) when `close` follows at once.
    fn empty(&mut self, close: u8) -> bool {
        self.ws();
        let empty = self.peek() == Some(close);
        self.pos += usize::from(empty);
        empty
    }

    /// After an item: true when a `,` (another item) follows, false at `close`; both consumed.
    fn more(&mut self, close: u8) -> PyResult<bool> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.fail(&format!("expected ',' or '{}'", close as char))),
        }
    }

    fn array(&mut self, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        self.pos += 1;
        let mut items: Vec<Py<PyAny>> = Vec::new();
        if !self.empty(b']') {
            loop {
                items.push(self.value(depth + 1)?.unbind());
                if !self.more(b']')? {
                    break;
                }
            }
        }
        Ok(PyList::new(self.py, items)?.into_any())
    }

    /// A plain object, or a tagged value (one `$` key, anywhere in the object).
    fn object(&mut self, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        self.pos += 1;
        let members = PyDict::new(py);
        let mut tagged: Option<(String, Bound<'py, PyAny>)> = None;
        if self.empty(b'}') {
            return Ok(members.into_any());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a string key"));
            }
            let key = self.string()?;
            let key_bytes = bytes_of(key, &self.buf, self.data);
            if let Some(tag) = key_bytes.strip_prefix(b"$") {
                let tag = String::from_utf8(tag.to_vec()).map_err(|_| self.fail("a bad tag"))?;
                self.expect(b':')?;
                if let Some((first, _)) = &tagged {
                    return Err(self.fail(&format!("two tags (${first}, ${tag}) in one object")));
                }
                // The tag's value is the tagged value's own contents (a tuple's items sit one level
                // deeper) or its parts (a complex's two floats), which are no levels at all.
                let value = match tag.as_str() {
                    "dict" => self.pairs(depth)?,
                    "complex" | "timedelta" | "str16" => self.value(0)?,
                    _ => self.value(depth)?,
                };
                tagged = Some((tag, value));
            } else {
                let member_level = if tagged.is_some() {
                    member_depth(key_bytes, depth)
                } else {
                    depth + 1
                };
                let k = super::key_str(py, key_bytes)?;
                self.expect(b':')?;
                let v = self.value(member_level)?;
                members.set_item(k, v)?;
            }
            if !self.more(b'}')? {
                break;
            }
        }
        match tagged {
            Some((tag, value)) => untag(py, &tag, value, &members),
            None => Ok(members.into_any()),
        }
    }

    /// The value of a `$dict` tag: `[[key, value], ...]`, keys and values one level deeper (the pairs'
    /// own arrays are parts of the form).
    fn pairs(&mut self, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        let dict = PyDict::new(self.py);
        self.expect(b'[')?;
        if self.empty(b']') {
            return Ok(dict.into_any());
        }
        loop {
            self.expect(b'[')?;
            let k = self.value(depth + 1)?;
            self.expect(b',')?;
            let v = self.value(depth + 1)?;
            self.expect(b']')
                .map_err(|_| self.fail("a $dict pair must have two items"))?;
            dict.set_item(k, v)
                .map_err(|e| self.fail(&format!("an unusable dict key ({e})")))?;
            if !self.more(b']')? {
                return Ok(dict.into_any());
            }
        }
    }
}

/// Where a parsed string's bytes are.
#[derive(Clone, Copy)]
enum StrRef {
    Input(usize, usize),
    Buf,
}

fn bytes_of<'b>(s: StrRef, buf: &'b [u8], data: &'b [u8]) -> &'b [u8] {
    match s {
        StrRef::Input(a, b) => &data[a..b],
        StrRef::Buf => buf,
    }
}

/// The value of a complete JSON encoding (surrounding whitespace allowed).
pub fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let mut parser = Parser {
        py,
        data,
        pos: 0,
        buf: Vec::new(),
        open: 0,
    };
    let value = parser.value(0)?;
    parser.ws();
    if parser.pos != data.len() {
        return Err(parser.fail("trailing characters after the value"));
    }
    Ok(value.unbind())
}

fn bad(py: Python<'_>, tag: &str, what: &str) -> PyErr {
    decode_error(py, format!("invalid \"${tag}\" object in cached JSON: {what}"))
}

fn member<'py>(py: Python<'py>, tag: &str, rest: &Bound<'py, PyDict>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    rest.get_item(name)?
        .ok_or_else(|| bad(py, tag, &format!("missing \"{name}\"")))
}

fn text(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    v.extract::<String>().map_err(|_| bad(py, tag, "expected a string"))
}

fn b64(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    BASE64
        .decode(text(py, tag, v)?)
        .map_err(|_| bad(py, tag, "invalid base64"))
}

fn list<'py>(py: Python<'py>, tag: &str, v: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    v.cast::<PyList>()
        .cloned()
        .map_err(|_| bad(py, tag, "expected an array"))
}

/// The members a tag takes besides its own key.
fn members_of(tag: &str) -> Option<&'static [&'static str]> {
    Some(match tag {
        "tuple" | "set" | "frozenset" | "dict" | "int" | "float" | "str16" | "bytes" | "bytearray" | "keybytes"
        | "ellipsis" | "complex" | "date" | "timedelta" | "decimal" | "uuid" => &[],
        "datetime" | "time" => &["zone", "fold"],
        "path" => &["class"],
        "enum" => &["value"],
        "dataclass" | "pydantic" => &["fields"],
        "namedtuple" => &["items"],
        "ndarray" => &["shape", "data"],
        "npscalar" => &["data"],
        _ => return None,
    })
}

fn exact_float(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>) -> PyResult<f64> {
    if !v.is_exact_instance_of::<pyo3::types::PyFloat>() {
        return Err(bad(py, tag, "expected floats"));
    }
    v.extract()
}

fn exact_ints(py: Python<'_>, tag: &str, v: &Bound<'_, PyAny>, n: Option<usize>) -> PyResult<Vec<i64>> {
    let items = list(py, tag, v)?;
    if n.is_some_and(|n| n != items.len()) {
        return Err(bad(py, tag, "wrong number of parts"));
    }
    items
        .iter()
        .map(|i| {
            if !i.is_exact_instance_of::<pyo3::types::PyInt>() {
                return Err(bad(py, tag, "expected ints"));
            }
            i.extract::<i64>().map_err(|_| bad(py, tag, "an int part out of range"))
        })
        .collect()
}

/// The Python value of a tagged object `{"$tag": value, **members}`.
fn untag<'py>(
    py: Python<'py>,
    tag: &str,
    value: Bound<'py, PyAny>,
    rest: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(expected) = members_of(tag) else {
        return Err(decode_error(py, format!("unknown tag \"${tag}\" in cached JSON")));
    };
    if rest.len() != expected.len() || expected.iter().any(|m| !rest.contains(m).unwrap_or(false)) {
        return Err(bad(py, tag, &format!("expected exactly the members {expected:?}")));
    }
    let obj: Py<PyAny> = match tag {
        "tuple" => PyTuple::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "set" => PySet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "frozenset" => PyFrozenSet::new(py, list(py, tag, &value)?.iter())?.into_any().unbind(),
        "dict" => value.unbind(), // built by PairsSeed
        "int" => {
            let digits = text(py, tag, &value)?;
            let body = digits.strip_prefix('-').unwrap_or(&digits);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(py, tag, "expected decimal digits"));
            }
            py.get_type::<pyo3::types::PyInt>().call1((digits,))?.unbind()
        }
        "float" => {
            let v = match text(py, tag, &value)?.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => return Err(bad(py, tag, &format!("unknown float {other:?}"))),
            };
            let Ok(v) = v.into_pyobject(py);
            v.into_any().unbind()
        }
        "str16" => {
            let units = exact_ints(py, tag, &value, None)?;
            if units.iter().any(|u| !(0..=0xffff).contains(u)) {
                return Err(bad(py, tag, "code units must be 0..65535"));
            }
            let bytes: Vec<u8> = units.iter().flat_map(|&u| (u as u16).to_le_bytes()).collect();
            PyBytes::new(py, &bytes)
                .call_method1("decode", ("utf-16-le", "surrogatepass"))?
                .unbind()
        }
        "bytes" => PyBytes::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "bytearray" => PyByteArray::new(py, &b64(py, tag, &value)?).into_any().unbind(),
        "keybytes" => revive::revive_keybytes(py, &b64(py, tag, &value)?)?,
        "ellipsis" if value.is_none() => py.Ellipsis(),
        "ellipsis" => return Err(bad(py, tag, "expected null")),
        "complex" => {
            let parts = list(py, tag, &value)?;
            if parts.len() != 2 {
                return Err(bad(py, tag, "expected [real, imag]"));
            }
            let re = exact_float(py, tag, &parts.get_item(0)?)?;
            let im = exact_float(py, tag, &parts.get_item(1)?)?;
            pyo3::types::PyComplex::from_doubles(py, re, im).into_any().unbind()
        }
        "datetime" | "time" => {
            let zone = member(py, tag, rest, "zone")?;
            let zone: Option<String> = if zone.is_none() {
                None
            } else {
                Some(text(py, tag, &zone)?)
            };
            let fold = member(py, tag, rest, "fold")?;
            if !fold.is_exact_instance_of::<pyo3::types::PyInt>() {
                return Err(bad(py, tag, "fold must be 0 or 1"));
            }
            let fold: u8 = match fold.extract::<i64>() {
                Ok(f @ 0..=1) => f as u8,
                _ => return Err(bad(py, tag, "fold must be 0 or 1")),
            };
            revive::revive_time(py, tag == "datetime", &text(py, tag, &value)?, zone.as_deref(), fold)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "date" => revive::revive_date(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "timedelta" => {
            let parts = exact_ints(py, tag, &value, Some(3))?;
            revive::revive_timedelta(py, parts[0], parts[1], parts[2]).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "decimal" => revive::revive_decimal(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "uuid" => revive::revive_uuid_str(py, &text(py, tag, &value)?).map_err(|e| bad(py, tag, &e.to_string()))?,
        "path" => {
            let class = text(py, tag, &member(py, tag, rest, "class")?)?;
            revive::revive_path(py, &class, &value)?
        }
        "enum" => revive::revive_enum(py, &text(py, tag, &value)?, &member(py, tag, rest, "value")?)?,
        "dataclass" | "pydantic" => {
            let fields = member(py, tag, rest, "fields")?;
            let fields = fields
                .cast::<PyDict>()
                .map_err(|_| bad(py, tag, "expected an object of fields"))?;
            let name = text(py, tag, &value)?;
            if tag == "dataclass" {
                revive::revive_dataclass(py, &name, fields)?
            } else {
                revive::revive_pydantic(py, &name, fields)?
            }
        }
        "namedtuple" => {
            let items = member(py, tag, rest, "items")?;
            revive::revive_namedtuple(py, &text(py, tag, &value)?, &list(py, tag, &items)?)?
        }
        "ndarray" => {
            let shape = exact_ints(py, tag, &member(py, tag, rest, "shape")?, None)?;
            if shape.iter().any(|&d| d < 0) {
                return Err(bad(py, tag, "a negative dimension"));
            }
            let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            revive::revive_ndarray(py, &text(py, tag, &value)?, &shape, &data)
                .map_err(|e| bad(py, tag, &e.to_string()))?
        }
        "npscalar" => {
            let data = b64(py, tag, &member(py, tag, rest, "data")?)?;
            revive::revive_npscalar(py, &text(py, tag, &value)?, &data).map_err(|e| bad(py, tag, &e.to_string()))?
        }
        _ => return Err(bad(py, tag, "an unknown tag")), // members_of knows every tag: not reached
    };
    Ok(obj.into_bound(py))
}
