//! Entries rebuilt from what the persistent backends store: a `DatabaseCache` row's columns, and the
//! compact record `{"f", "i", "o"?, "e"?, "m", "c", "s"}` DiskCache and RedisCache keep. Each is decoded,
//! checked and keyed in one native call, which is most of a persistent hit's work after the storage read
//! itself (it was seven or eight Python calls).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::codec::{decode_error, decode_json};
use crate::entry::CacheEntry;
use crate::key::digest::KEY_SCHEME_VERSION;
use crate::key::entry_key_of;

/// The record's key scheme before records named theirs (DiskCache's `"s"`): all were scheme 1.
const SCHEME_BEFORE_FIELD: u32 = 1;

/// The entry of checked parts: func a str, inputs a dict of str names, metadata a dict, and func and
/// inputs computing `key` (a record copied under another key must not answer for it). `damaged(what)`
/// makes the `ValueDecodingError` naming the record.
fn checked_entry(
    py: Python<'_>,
    parts: [Bound<'_, PyAny>; 5],
    key: u128,
    damaged: &dyn Fn(&str) -> PyErr,
) -> PyResult<CacheEntry> {
    let [func, inputs, output, expected, metadata] = parts;
    let wrong = || damaged("the record's func, inputs or metadata have the wrong type");
    let func = func.cast_into::<PyString>().map_err(|_| wrong())?;
    let inputs = inputs.cast_into::<PyDict>().map_err(|_| wrong())?;
    let metadata = metadata.cast_into::<PyDict>().map_err(|_| wrong())?;
    if inputs.keys().iter().any(|k| !k.is_instance_of::<PyString>()) {
        return Err(wrong());
    }
    if entry_key_of(py, func.to_str()?, &inputs, false)? != key {
        return Err(damaged(
            "the record's func and inputs do not match the key it is stored under",
        ));
    }
    Ok(CacheEntry::new_raw(
        func.unbind(),
        inputs.unbind(),
        output.unbind(),
        expected.unbind(),
        Some(metadata.unbind()),
    ))
}

/// `damaged(what)`: a `ValueDecodingError` "<where()>: <what>" (`where` is called only for an error).
fn naming<'a, 'py>(py: Python<'py>, r#where: &'a Bound<'py, PyAny>) -> impl Fn(&str) -> PyErr + 'a
where
    'py: 'a,
{
    move |what: &str| match r#where.call0().and_then(|w| w.str()) {
        Ok(w) => decode_error(py, format!("{w}: {what}")),
        Err(err) => err,
    }
}

/// A JSON column's value: `...` (unset) for SQL NULL, else the decoded text.
fn column<'py>(py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if text.is_none() {
        return Ok(py.Ellipsis().into_bound(py));
    }
    Ok(decode_json(py, text)?.into_bound(py))
}

/// The entry a row `(func, inputs, output, expected, metadata, ...)` holds, stored under `key`.
/// Raises `ValueDecodingError` for damaged text, for a func, inputs or metadata of the wrong type, and
/// for a record whose func and inputs do not compute `key`; `where()` names the row in those messages.
#[pyfunction]
pub fn entry_of_columns(
    py: Python<'_>,
    row: &Bound<'_, PyAny>,
    key: u128,
    r#where: &Bound<'_, PyAny>,
) -> PyResult<CacheEntry> {
    let damaged = naming(py, r#where);
    if row.len()? < 5 {
        return Err(damaged("the row has fewer than five data columns"));
    }
    let parts = [
        row.get_item(0)?,
        column(py, &row.get_item(1)?)?,
        column(py, &row.get_item(2)?)?,
        column(py, &row.get_item(3)?)?,
        column(py, &row.get_item(4)?)?,
    ];
    checked_entry(py, parts, key, &damaged)
}

/// The entry a decoded compact record holds under `key`, or None for a record written under another
/// key scheme (not damage: a miss without a warning, overwritten by the next store). Raises
/// `ValueDecodingError` as `entry_of_columns` does, and for anything that is not such a record.
#[pyfunction]
pub fn entry_of_record(
    py: Python<'_>,
    record: &Bound<'_, PyAny>,
    key: u128,
    r#where: &Bound<'_, PyAny>,
) -> PyResult<Option<CacheEntry>> {
    let damaged = naming(py, r#where);
    let Ok(record) = record.cast::<PyDict>() else {
        return Err(damaged("not an oxicache record"));
    };
    let scheme = match record.get_item("s")? {
        Some(s) => s.eq(KEY_SCHEME_VERSION)?,
        None => SCHEME_BEFORE_FIELD == KEY_SCHEME_VERSION,
    };
    if !scheme {
        return Ok(None);
    }
    let (Some(func), Some(inputs)) = (record.get_item("f")?, record.get_item("i")?) else {
        return Err(damaged("not an oxicache record"));
    };
    let or_unset = |field: &str| -> PyResult<Bound<'_, PyAny>> {
        Ok(record.get_item(field)?.unwrap_or_else(|| py.Ellipsis().into_bound(py)))
    };
    let metadata = match record.get_item("m")? {
        Some(m) => m,
        None => PyDict::new(py).into_any(),
    };
    let parts = [func, inputs, or_unset("o")?, or_unset("e")?, metadata];
    checked_entry(py, parts, key, &damaged).map(Some)
}
