//! Reading Python `str` objects as UTF-8 where the interpreter keeps them.

use std::ffi::c_char;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

// In CPython's C API since 3.3 and in the stable ABI since 3.10. The bindings declare it only when
// building for 3.10 and newer, but every interpreter this module loads into exports it, and the
// copying alternative (`PyUnicode_AsUTF8String`) costs a new bytes object per string.
extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// The UTF-8 text of `text`, read in place: no copy, and no allocation for ASCII text (the
/// interpreter caches the UTF-8 of other text with the string). A string with lone surrogates has
/// no UTF-8 and gives the interpreter's `UnicodeEncodeError`.
#[expect(unsafe_code, reason = "reads the interpreter's UTF-8 buffer of a live str")]
pub fn utf8<'a>(text: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `text` is a live str object and `size` a valid place for the length.
    let data = unsafe { PyUnicode_AsUTF8AndSize(text.as_ptr(), &raw mut size) };
    if data.is_null() {
        return Err(PyErr::fetch(text.py()));
    }
    let length = usize::try_from(size).unwrap_or_default();
    // SAFETY: the buffer belongs to the string object, which is immutable and kept alive for 'a by
    // the borrowed reference, and the interpreter only hands out valid UTF-8 here.
    Ok(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast::<u8>(), length)) })
}
