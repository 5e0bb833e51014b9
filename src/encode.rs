//! Encodes handler results to JSON bytes exactly as the stock runtime's encoder writes them
//! (`", "` and `": "` separators, insertion order, `NaN`/`Infinity`, optional ASCII escaping).
//! Only exact built-in types are handled here; anything else makes the encoder step aside so the
//! caller can use the reference encoder, which knows every rule for subclasses and other types.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Deeper nesting than this is left to the reference encoder, which reports cycles its own way.
const MAX_DEPTH: usize = 256;

/// The fast encoder stepped aside: a value it does not handle, or a Python error while reading
/// one. Either way the reference encoder decides, and reports any error in its own words.
#[derive(Debug)]
pub struct Unsupported;

impl From<PyErr> for Unsupported {
    fn from(_: PyErr) -> Self {
        Self
    }
}

pub struct JsonEncoder {
    pub ensure_ascii: bool,
}

impl JsonEncoder {
    pub fn encode(&self, value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        self.encode_value(value, out, 0)
    }

    fn encode_value(&self, value: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> Result<(), Unsupported> {
        if depth > MAX_DEPTH {
            return Err(Unsupported);
        }
        if let Ok(text) = value.cast_exact::<PyString>() {
            let text = text.to_cow().map_err(|_| Unsupported)?;
            write_string(&text, self.ensure_ascii, out);
        } else if value.is_none() {
            out.extend_from_slice(b"null");
        } else if let Ok(flag) = value.cast_exact::<PyBool>() {
            out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
        } else if let Ok(number) = value.cast_exact::<PyInt>() {
            write_int(number, out)?;
        } else if let Ok(number) = value.cast_exact::<PyFloat>() {
            write_float(number, out)?;
        } else if let Ok(dict) = value.cast_exact::<PyDict>() {
            self.write_dict(dict, out, depth)?;
        } else if let Ok(list) = value.cast_exact::<PyList>() {
            self.write_items(list.iter(), out, depth)?;
        } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
            self.write_items(tuple.iter(), out, depth)?;
        } else {
            return Err(Unsupported);
        }
        Ok(())
    }

    fn write_dict(&self, dict: &Bound<'_, PyDict>, out: &mut Vec<u8>, depth: usize) -> Result<(), Unsupported> {
        out.push(b'{');
        for (index, (key, value)) in dict.iter().enumerate() {
            if index > 0 {
                out.extend_from_slice(b", ");
            }
            let key = key.cast_exact::<PyString>().map_err(|_| Unsupported)?;
            write_string(&key.to_cow().map_err(|_| Unsupported)?, self.ensure_ascii, out);
            out.extend_from_slice(b": ");
            self.encode_value(&value, out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }

    fn write_items<'py>(
        &self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Unsupported> {
        out.push(b'[');
        for (index, item) in items.enumerate() {
            if index > 0 {
                out.extend_from_slice(b", ");
            }
            self.encode_value(&item, out, depth + 1)?;
        }
        out.push(b']');
        Ok(())
    }
}

fn write_int(number: &Bound<'_, PyInt>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    if let Ok(small) = number.extract::<i64>() {
        out.extend_from_slice(itoa::Buffer::new().format(small).as_bytes());
    } else {
        out.extend_from_slice(number.str()?.to_cow()?.as_bytes());
    }
    Ok(())
}

fn write_float(number: &Bound<'_, PyFloat>, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let value = number.value();
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        // Python's repr is the shortest text that reads back to the same float, in its own layout.
        out.extend_from_slice(number.repr()?.to_cow()?.as_bytes());
    }
    Ok(())
}

/// Writes a JSON string the way the reference encoder does: `"`, `\` and control characters are
/// always escaped; with `ensure_ascii` every character outside printable ASCII is `\uXXXX`
/// (lower-case hex, astral characters as surrogate pairs).
pub fn write_string(text: &str, ensure_ascii: bool, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let needs_escape = byte < 0x20 || byte == b'"' || byte == b'\\' || (ensure_ascii && byte >= 0x7f);
        if !needs_escape {
            continue;
        }
        out.extend_from_slice(&bytes[clean_from..index]);
        if byte >= 0x80 {
            // Only lead bytes start an escape; continuation bytes are consumed with them.
            if byte & 0xC0 == 0x80 {
                clean_from = index + 1;
                continue;
            }
            let character = text[index..].chars().next().unwrap_or('\u{fffd}');
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                write_unicode_escape(*unit, out);
            }
        } else {
            write_ascii_escape(byte, out);
        }
        clean_from = index + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

fn write_ascii_escape(byte: u8, out: &mut Vec<u8>) {
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => write_unicode_escape(u16::from(byte), out),
    }
}

fn write_unicode_escape(unit: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xF)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str, ensure_ascii: bool) -> String {
        let mut out = Vec::new();
        write_string(text, ensure_ascii, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_like_the_reference_encoder() {
        let cases = [
            ("plain", true, "\"plain\""),
            ("a\"b\\c", true, "\"a\\\"b\\\\c\""),
            ("\n\r\t\u{8}\u{c}\u{1}", true, "\"\\n\\r\\t\\b\\f\\u0001\""),
            ("\u{7f}", true, "\"\\u007f\""),
            ("\u{7f}", false, "\"\u{7f}\""),
            ("Zoë 🚀", true, "\"Zo\\u00eb \\ud83d\\ude80\""),
            ("Zoë 🚀", false, "\"Zoë 🚀\""),
            ("\u{2028}", true, "\"\\u2028\""),
            ("\u{2028}", false, "\"\u{2028}\""),
            ("é\n", false, "\"é\\n\""),
        ];
        for (text, ensure_ascii, expected) in cases {
            assert_eq!(
                escaped(text, ensure_ascii),
                expected,
                "{text:?} ensure_ascii={ensure_ascii}"
            );
        }
    }
}
