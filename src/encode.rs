//! Encodes handler results to JSON bytes exactly as the stock runtime's encoder writes them
//! (`", "` and `": "` separators, insertion order, `NaN`/`Infinity`, optional ASCII escaping).
//! Only exact built-in types are handled here; anything else makes the encoder step aside so the
//! caller can use the reference encoder, which knows every rule for subclasses and other types.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::text::utf8;

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
            write_string(utf8(text)?, self.ensure_ascii, out);
        } else if value.is_none() {
            out.extend_from_slice(b"null");
        } else if let Ok(flag) = value.cast_exact::<PyBool>() {
            out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
        } else if let Ok(number) = value.cast_exact::<PyInt>() {
            write_int(number, out)?;
        } else if let Ok(number) = value.cast_exact::<PyFloat>() {
            write_float(number.value(), out);
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
            write_string(utf8(key)?, self.ensure_ascii, out);
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
        out.extend_from_slice(utf8(&number.str()?)?.as_bytes());
    }
    Ok(())
}

fn write_float(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        write_float_repr(value, out);
    }
}

/// Writes a finite float as Python's `repr` does: the shortest digits that read back to the same
/// value (the even one when two are equally near), positional from 1e-4 up to 1e16 with `.0` when
/// there is no fraction, else as `d.ddde±XX` with at least two exponent digits.
fn write_float_repr(value: f64, out: &mut Vec<u8>) {
    let mut formatter = ryu::Buffer::new();
    let (shortest, point) = ShortestDigits::of(formatter.format_finite(value));
    let digits = shortest.as_slice();
    let Some((&first, fraction)) = digits.split_first() else {
        return;
    };
    if value.is_sign_negative() {
        out.push(b'-');
    }
    let length = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if !(-4 < point && point <= 16) {
        out.push(first);
        if !fraction.is_empty() {
            out.push(b'.');
            out.extend_from_slice(fraction);
        }
        let exponent = point - 1;
        out.extend_from_slice(if exponent < 0 { b"e-" } else { b"e+" });
        if exponent.unsigned_abs() < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(exponent.unsigned_abs()).as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + point.unsigned_abs() as usize, b'0');
        out.extend_from_slice(digits);
    } else if point >= length {
        out.extend_from_slice(digits);
        out.resize(out.len() + (point - length).unsigned_abs() as usize, b'0');
        out.extend_from_slice(b".0");
    } else {
        let split = point.unsigned_abs() as usize;
        out.extend_from_slice(&digits[..split]);
        out.push(b'.');
        out.extend_from_slice(&digits[split..]);
    }
}

/// The significant digits of a formatted float and where its decimal point falls, counted from
/// the first digit: `0.0015` is `15` with the point at -2, `1.5e16` is `15` at 17.
struct ShortestDigits {
    digits: [u8; 24],
    length: usize,
}

impl ShortestDigits {
    fn of(text: &str) -> (Self, i32) {
        let text = text.strip_prefix('-').unwrap_or(text);
        let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
        let exponent = exponent.parse::<i32>().unwrap_or_default();
        let whole_digits = mantissa.find('.').unwrap_or(mantissa.len());
        let mut point = i32::try_from(whole_digits).unwrap_or_default() + exponent;
        let mut shortest = Self {
            digits: [0; 24],
            length: 0,
        };
        for byte in mantissa.bytes().filter(u8::is_ascii_digit) {
            if shortest.length == 0 && byte == b'0' {
                point -= 1;
                continue;
            }
            if let Some(slot) = shortest.digits.get_mut(shortest.length) {
                *slot = byte;
                shortest.length += 1;
            }
        }
        while shortest.length > 1 && shortest.digits[shortest.length - 1] == b'0' {
            shortest.length -= 1;
        }
        if shortest.length == 0 {
            // Zero: one digit, before the point.
            shortest.digits[0] = b'0';
            shortest.length = 1;
            point = 1;
        }
        (shortest, point)
    }

    fn as_slice(&self) -> &[u8] {
        &self.digits[..self.length]
    }
}

/// Writes a JSON string the way the reference encoder does: `"`, `\` and control characters are
/// always escaped; with `ensure_ascii` every character outside printable ASCII is `\uXXXX`
/// (lower-case hex, astral characters as surrogate pairs).
pub fn write_string(text: &str, ensure_ascii: bool, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut position = 0;
    while position < bytes.len() {
        let clean = position + clean_run(&bytes[position..], ensure_ascii);
        out.extend_from_slice(&bytes[position..clean]);
        position = clean;
        let Some(&byte) = bytes.get(position) else { break };
        if byte < 0x80 {
            write_ascii_escape(byte, out);
            position += 1;
        } else {
            // Runs end on character boundaries, so this is the first byte of a character.
            let character = text
                .get(position..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('\u{fffd}');
            let mut units = [0u16; 2];
            for unit in character.encode_utf16(&mut units) {
                write_unicode_escape(*unit, out);
            }
            position += character.len_utf8();
        }
    }
    out.push(b'"');
}

/// The length of the leading run of `bytes` that is written as it is. Eight bytes are checked at a
/// time: each test below sets the top bit of a byte that needs escaping, and although a borrow or
/// carry can also mark bytes after a marked one, the first marked byte is always a true one.
fn clean_run(bytes: &[u8], ensure_ascii: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const TOP_BITS: u64 = 0x8080_8080_8080_8080;
    let is_zero = |word: u64| word.wrapping_sub(ONES) & !word & TOP_BITS;
    let mut chunks = bytes.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word_bytes);
        let control = word.wrapping_sub(ONES * 0x20) & !word & TOP_BITS;
        let quote = is_zero(word ^ (ONES * u64::from(b'"')));
        let backslash = is_zero(word ^ (ONES * u64::from(b'\\')));
        // With `ensure_ascii`, DEL (0x7f becomes 0x80 when one is added) and every non-ASCII byte.
        let outside_ascii = if ensure_ascii {
            (word | word.wrapping_add(ONES)) & TOP_BITS
        } else {
            0
        };
        let marked = control | quote | backslash | outside_ascii;
        if marked != 0 {
            return start + (marked.trailing_zeros() / 8) as usize;
        }
        start += 8;
    }
    let needs_escape = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\' || (ensure_ascii && byte >= 0x7f);
    start
        + chunks
            .remainder()
            .iter()
            .position(|&byte| needs_escape(byte))
            .unwrap_or(chunks.remainder().len())
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
    fn floats_are_laid_out_like_python_repr() {
        let cases = [
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (100.0, "100.0"),
            (123.45, "123.45"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (5e-324, "5e-324"),
            (1.797_693_134_862_315_7e308, "1.7976931348623157e+308"),
            (-2.5e-100, "-2.5e-100"),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            write_float_repr(value, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn clean_runs_end_at_the_first_byte_to_escape() {
        let naive = |bytes: &[u8], ensure_ascii: bool| {
            bytes
                .iter()
                .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\' || (ensure_ascii && byte >= 0x7f))
                .unwrap_or(bytes.len())
        };
        // Every byte value at every place of a two-word buffer, next to another byte value that a
        // borrow or carry could disturb.
        for ensure_ascii in [false, true] {
            for first in [b'a', 0x00, 0x1f, 0x20, b'"', b'\\', 0x7f, 0x80, 0xff] {
                for byte in 0..=255u8 {
                    for place in 0..34 {
                        let mut buffer = vec![b'x'; 19];
                        let (earlier, later) = if place % 2 == 0 { (byte, first) } else { (first, byte) };
                        buffer[place / 2] = earlier;
                        buffer[place / 2 + 1] = later;
                        assert_eq!(
                            clean_run(&buffer, ensure_ascii),
                            naive(&buffer, ensure_ascii),
                            "{buffer:?} ensure_ascii={ensure_ascii}"
                        );
                    }
                }
            }
        }
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
