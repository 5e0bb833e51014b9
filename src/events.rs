//! The heavy parts of event-source records, decoded straight into Python values: DynamoDB
//! attribute values, base64 payloads, percent-encoded S3 object keys and HTTP header names.

use std::borrow::Cow;
use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, DecodeError, Engine};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PySet, PyString};

use crate::decode::GcSwitch;
use crate::text::utf8;

/// DynamoDB allows 32 levels of nesting; anything deeper is not an attribute value.
const MAX_DEPTH: usize = 64;

/// The standard alphabet, strict about the characters, lenient about padding and the unused bits
/// of the last character, which some producers get wrong and Python's decoder lets through.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why an event part could not be decoded.
#[derive(Debug)]
pub enum EventError {
    /// A value that does not have the shape its event source documents, and where it is.
    Shape { path: Vec<Segment>, message: String },
    /// A Python call failed for a reason of its own (memory, a mapping that raises).
    Python(PyErr),
}

/// One step of the path to a value inside an image: an attribute name or a list index.
#[derive(Debug)]
pub enum Segment {
    Name(String),
    Index(usize),
}

impl EventError {
    fn shape(message: impl Into<String>) -> Self {
        Self::Shape {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// Records that the error happened inside `segment`; called as the error unwinds, so the
    /// path is kept innermost first.
    fn within(mut self, segment: impl FnOnce() -> Segment) -> Self {
        if let Self::Shape { path, .. } = &mut self {
            path.push(segment());
        }
        self
    }
}

impl From<PyErr> for EventError {
    fn from(error: PyErr) -> Self {
        Self::Python(error)
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape { path, message } => {
                for (index, segment) in path.iter().rev().enumerate() {
                    match segment {
                        Segment::Name(name) if index == 0 => write!(f, "{name}")?,
                        Segment::Name(name) => write!(f, ".{name}")?,
                        Segment::Index(position) => write!(f, "[{position}]")?,
                    }
                }
                if !path.is_empty() {
                    f.write_str(": ")?;
                }
                f.write_str(message)
            }
            Self::Python(error) => write!(f, "{error}"),
        }
    }
}

/// A base64 payload that does not decode, described without the decoder's capitals and periods.
#[derive(Debug)]
pub struct Base64Error(DecodeError);

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DecodeError::InvalidByte(offset, byte) | DecodeError::InvalidLastSymbol(offset, byte) => {
                write!(f, "invalid base64: byte {byte:#04x} at offset {offset}")
            }
            DecodeError::InvalidLength(length) => {
                write!(f, "invalid base64: {length} symbols, one more than a multiple of 4")
            }
            DecodeError::InvalidPadding => f.write_str("invalid base64: wrong padding"),
        }
    }
}

/// Decodes standard base64 text.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, Base64Error> {
    BASE64.decode(text).map_err(Base64Error)
}

/// Decodes an S3 object key as S3 encodes it in event notifications: `+` is a space and `%xx` a
/// byte, the bytes being UTF-8. A `%` not followed by two hex digits stays as it is, and bytes that
/// are not UTF-8 become U+FFFD, as Python's `urllib.parse.unquote_plus` does.
pub fn unquote_plus(key: &str) -> Cow<'_, str> {
    if !key.bytes().any(|byte| byte == b'+' || byte == b'%') {
        return Cow::Borrowed(key);
    }
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escaped = match (byte, bytes.get(index + 1), bytes.get(index + 2)) {
            (b'%', Some(&high), Some(&low)) => hex_value(high).zip(hex_value(low)),
            _ => None,
        };
        if let Some((high, low)) = escaped {
            out.push(high << 4 | low);
            index += 3;
        } else {
            out.push(if byte == b'+' { b' ' } else { byte });
            index += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// Copies `headers` with every name in lower case, so lookups can ignore case. Names already in
/// lower case (all of them in HTTP API events) are reused rather than copied.
pub fn lower_keys<'py>(headers: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let py = headers.py();
    let lowered = PyDict::new(py);
    for (name, value) in headers.iter() {
        let Ok(text) = name.cast::<PyString>() else {
            lowered.set_item(name, value)?;
            continue;
        };
        let text = utf8(text)?;
        if text.bytes().any(|byte| byte.is_ascii_uppercase()) {
            lowered.set_item(PyString::new(py, &text.to_ascii_lowercase()), value)?;
        } else {
            lowered.set_item(name, value)?;
        }
    }
    Ok(lowered)
}

/// The type tags of DynamoDB attribute values.
#[derive(Clone, Copy)]
enum Tag {
    String,
    Number,
    Binary,
    Bool,
    Null,
    List,
    Map,
    StringSet,
    NumberSet,
    BinarySet,
}

impl Tag {
    fn name(self) -> &'static str {
        match self {
            Self::String => "S",
            Self::Number => "N",
            Self::Binary => "B",
            Self::Bool => "BOOL",
            Self::Null => "NULL",
            Self::List => "L",
            Self::Map => "M",
            Self::StringSet => "SS",
            Self::NumberSet => "NS",
            Self::BinarySet => "BS",
        }
    }

    /// Reads the tag in place: tags are read once per attribute value, the commonest operation
    /// of the whole decoder.
    fn of(key: &Bound<'_, PyString>) -> Option<Self> {
        Self::from_text(utf8(key).ok()?.as_bytes())
    }

    fn from_text(text: &[u8]) -> Option<Self> {
        Some(match text {
            b"S" => Self::String,
            b"N" => Self::Number,
            b"B" => Self::Binary,
            b"BOOL" => Self::Bool,
            b"NULL" => Self::Null,
            b"L" => Self::List,
            b"M" => Self::Map,
            b"SS" => Self::StringSet,
            b"NS" => Self::NumberSet,
            b"BS" => Self::BinarySet,
            _ => return None,
        })
    }
}

static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// Images with at most this many top-level attributes are decoded with collections left on.
const SMALL_IMAGE_ATTRIBUTES: usize = 32;
static GC: PyOnceLock<Option<GcSwitch>> = PyOnceLock::new();

/// Turns DynamoDB attribute values, as stream records carry them, into Python values: `S` to
/// `str`, `N` to `Decimal`, `B` (base64 text) to `bytes`, `BOOL`, `NULL` to `None`, `L` to
/// `list`, `M` to `dict`, and `SS`/`NS`/`BS` to `set`s of those.
pub struct AttributeDecoder<'py> {
    py: Python<'py>,
    decimal: Bound<'py, PyAny>,
}

impl<'py> AttributeDecoder<'py> {
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        let decimal = DECIMAL.import(py, "decimal", "Decimal")?.clone();
        Ok(Self { py, decimal })
    }

    /// Decodes a map of attribute names to attribute values (an image, or the `M` of one).
    pub fn image(&self, image: &Bound<'py, PyAny>) -> Result<Bound<'py, PyDict>, EventError> {
        // Holding collections off costs three calls into the `gc` module, more than the
        // collections a typical item's few dozen values would trigger.
        if image.len().is_ok_and(|attributes| attributes <= SMALL_IMAGE_ATTRIBUTES) {
            return self.map(image, 0);
        }
        self.collections_held_off(|| self.map(image, 0))
    }

    /// Decodes one attribute value.
    pub fn value(&self, value: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, EventError> {
        self.collections_held_off(|| self.typed(value, 0))
    }

    /// A decode builds only fresh containers, which cannot be cyclic garbage: collections their
    /// allocation would trigger are pure cost.
    fn collections_held_off<T>(&self, work: impl FnOnce() -> T) -> T {
        match GC.get_or_init(self.py, || GcSwitch::new(self.py)) {
            Some(gc) => gc.paused(self.py, work),
            None => work(),
        }
    }

    fn map(&self, image: &Bound<'py, PyAny>, depth: usize) -> Result<Bound<'py, PyDict>, EventError> {
        let image = image
            .cast::<PyDict>()
            .map_err(|_| EventError::shape(format!("expected an object of attributes, found {}", type_name(image))))?;
        let decoded = PyDict::new(self.py);
        for (name, value) in image.iter() {
            let value = self
                .typed(&value, depth)
                .map_err(|error| error.within(|| Segment::Name(name.to_string())))?;
            decoded.set_item(name, value)?;
        }
        Ok(decoded)
    }

    fn typed(&self, value: &Bound<'py, PyAny>, depth: usize) -> Result<Bound<'py, PyAny>, EventError> {
        if depth > MAX_DEPTH {
            return Err(EventError::shape(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let (tag, inner) = single_entry(value)?;
        let expected = |what: &str| {
            EventError::shape(format!(
                "{} value must be {what}, found {}",
                tag.name(),
                type_name(&inner)
            ))
        };
        Ok(match tag {
            Tag::String => inner
                .cast::<PyString>()
                .map_err(|_| expected("a string"))?
                .clone()
                .into_any(),
            Tag::Number => self.number(&inner)?,
            Tag::Binary => binary(&inner)?,
            Tag::Bool => inner
                .cast::<PyBool>()
                .map_err(|_| expected("a boolean"))?
                .clone()
                .into_any(),
            Tag::Null => self.py.None().into_bound(self.py),
            Tag::Map => self.map(&inner, depth + 1)?.into_any(),
            Tag::List => {
                let items = inner.cast::<PyList>().map_err(|_| expected("a list"))?;
                let mut decoded = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let item = self
                        .typed(&item, depth + 1)
                        .map_err(|error| error.within(|| Segment::Index(index)))?;
                    decoded.push(item);
                }
                PyList::new(self.py, decoded)?.into_any()
            }
            Tag::StringSet | Tag::NumberSet | Tag::BinarySet => self.set(tag, &inner)?.into_any(),
        })
    }

    fn set(&self, tag: Tag, inner: &Bound<'py, PyAny>) -> Result<Bound<'py, PySet>, EventError> {
        let items = inner.cast::<PyList>().map_err(|_| {
            EventError::shape(format!(
                "{} value must be a list, found {}",
                tag.name(),
                type_name(inner)
            ))
        })?;
        let decoded = PySet::empty(self.py)?;
        for (index, item) in items.iter().enumerate() {
            let item = match tag {
                Tag::NumberSet => self.number(&item),
                Tag::BinarySet => binary(&item),
                _ => item.cast_into::<PyString>().map(Bound::into_any).map_err(|error| {
                    let found = type_name(error.into_inner().as_any());
                    EventError::shape(format!("SS items must be strings, found {found}"))
                }),
            };
            decoded.add(item.map_err(|error| error.within(|| Segment::Index(index)))?)?;
        }
        Ok(decoded)
    }

    fn number(&self, text: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, EventError> {
        if !text.is_instance_of::<PyString>() {
            return Err(EventError::shape(format!(
                "N value must be a string, found {}",
                type_name(text)
            )));
        }
        self.decimal
            .call1((text,))
            .map_err(|_| EventError::shape(format!("N value {} is not a number", describe(text))))
    }
}

/// The one `(type tag, value)` entry of an attribute value.
fn single_entry<'py>(value: &Bound<'py, PyAny>) -> Result<(Tag, Bound<'py, PyAny>), EventError> {
    let not_typed = || {
        EventError::shape(format!(
            "expected an attribute value such as {{\"S\": \"text\"}}, found {}",
            describe(value)
        ))
    };
    let tagged = value.cast::<PyDict>().map_err(|_| not_typed())?;
    if tagged.len() != 1 {
        return Err(not_typed());
    }
    let (key, inner) = tagged.iter().next().ok_or_else(not_typed)?;
    let tag = key.cast::<PyString>().ok().and_then(Tag::of).ok_or_else(|| {
        EventError::shape(format!(
            "unknown attribute type {}: expected S, N, B, BOOL, NULL, L, M, SS, NS or BS",
            describe(&key)
        ))
    })?;
    Ok((tag, inner))
}

/// `B` values are base64 text in stream records; bytes given as such (as boto3 clients return
/// them) are kept.
fn binary<'py>(value: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, EventError> {
    if value.is_instance_of::<PyBytes>() {
        return Ok(value.clone());
    }
    let text = value
        .cast::<PyString>()
        .map_err(|_| EventError::shape(format!("B value must be base64 text, found {}", type_name(value))))?;
    let decoded =
        decode_base64(utf8(text)?.as_bytes()).map_err(|error| EventError::shape(format!("B value is {error}")))?;
    Ok(PyBytes::new(value.py(), &decoded).into_any())
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "an object".to_owned(), |name| name.to_string())
}

/// A short `repr` for error messages: enough to recognise the value, never the whole of it.
fn describe(value: &Bound<'_, PyAny>) -> String {
    const LIMIT: usize = 60;
    let text = value.repr().map_or_else(|_| type_name(value), |repr| repr.to_string());
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unquoted_like_urllib() {
        let cases = [
            ("plain/key.jpg", "plain/key.jpg"),
            (
                "uploads/summer+trip/caf%C3%A9+%281%29.jpg",
                "uploads/summer trip/café (1).jpg",
            ),
            ("100%25+sure", "100% sure"),
            ("bad%zzescape%4", "bad%zzescape%4"),
            ("not%FFutf8", "not\u{fffd}utf8"),
            ("%2B", "+"),
        ];
        for (key, expected) in cases {
            assert_eq!(unquote_plus(key), expected, "{key}");
        }
    }

    #[test]
    fn base64_is_strict_about_symbols_only() {
        assert_eq!(decode_base64(b"aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64(b"aGk").unwrap(), b"hi");
        assert_eq!(decode_base64(b"aGl=").unwrap(), b"hi");
        assert_eq!(
            decode_base64(b"aG!=").unwrap_err().to_string(),
            "invalid base64: byte 0x21 at offset 2"
        );
        assert_eq!(
            decode_base64(b"abcde").unwrap_err().to_string(),
            "invalid base64: 5 symbols, one more than a multiple of 4"
        );
    }

    #[test]
    fn tags_are_known_by_name() {
        for name in ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"] {
            assert_eq!(Tag::from_text(name.as_bytes()).map(Tag::name), Some(name));
        }
        assert!(Tag::from_text(b"s").is_none());
        assert!(Tag::from_text(b"NUL").is_none());
    }

    #[test]
    fn paths_read_outermost_first() {
        let error = EventError::shape("N value must be a string, found int")
            .within(|| Segment::Index(2))
            .within(|| Segment::Name("scores".into()))
            .within(|| Segment::Name("NewImage".into()));
        assert_eq!(
            error.to_string(),
            "NewImage.scores[2]: N value must be a string, found int"
        );
    }
}
