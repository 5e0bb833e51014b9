//! The binding of the event-source decoders: argument plumbing, and the one place where their
//! errors become Python exceptions.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::events::{self, AttributeDecoder, Base64Error, EventError};
use crate::text::utf8;

mod exceptions {
    pyo3::import_exception!(fastric.errors, EventDecodeError);
}

impl From<EventError> for PyErr {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Python(error) => error,
            shape @ EventError::Shape { .. } => exceptions::EventDecodeError::new_err(shape.to_string()),
        }
    }
}

impl From<Base64Error> for PyErr {
    fn from(error: Base64Error) -> Self {
        exceptions::EventDecodeError::new_err(error.to_string())
    }
}

/// Decodes a DynamoDB image (attribute names to attribute values) into a dict of Python values.
#[pyfunction]
pub fn dynamodb_image<'py>(py: Python<'py>, image: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    Ok(AttributeDecoder::new(py)?.image(image)?)
}

/// Decodes one DynamoDB attribute value into a Python value.
#[pyfunction]
pub fn dynamodb_value<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(AttributeDecoder::new(py)?.value(value)?)
}

/// Decodes standard base64 text into bytes.
#[pyfunction]
pub fn b64decode<'py>(py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyBytes>> {
    let decoded = events::decode_base64(utf8(text)?.as_bytes())?;
    Ok(PyBytes::new(py, &decoded))
}

/// Decodes an S3 object key from an event notification, returning `key` itself when it has
/// nothing to decode.
#[pyfunction]
pub fn unquote_plus<'py>(key: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    let text = utf8(key)?;
    Ok(match events::unquote_plus(text) {
        std::borrow::Cow::Borrowed(_) => key.clone(),
        std::borrow::Cow::Owned(decoded) => PyString::new(key.py(), &decoded),
    })
}

/// Copies a dict of HTTP headers with lower-case names.
#[pyfunction]
pub fn lower_keys<'py>(headers: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    events::lower_keys(headers)
}
