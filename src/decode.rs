//! Decodes event JSON straight from the received buffer into Python objects: small events with a
//! parser of our own, large ones through orjson when it is installed (handed a view of the buffer,
//! not a copy).

use std::ffi::c_char;

use jiter::{Jiter, JiterResult, NumberAny, NumberInt, Peek};
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rustc_hash::FxHashMap;

/// Object keys up to this length are cached: event shapes repeat their keys in every record and
/// every invocation, so one string object serves them all.
const CACHED_KEY_MAX_LEN: usize = 64;
const KEY_CACHE_CAPACITY: usize = 4096;

/// Deeper nesting than this goes to the reference decoder, whose recursion limit is the stock
/// runtime's; events that deep are malformed or hostile, never the common case.
const MAX_NESTING: usize = 128;

/// Events of this size and more go to orjson, which builds objects faster than this module can
/// through the stable ABI. Smaller ones are parsed here: importing orjson costs a cold start about
/// as much as starting the interpreter, so it waits for an event that repays it.
const ORJSON_FROM_BYTES: usize = 16 * 1024;

/// orjson's `loads`, imported on first need.
enum Orjson {
    NotImported,
    Missing,
    Loads(Py<PyAny>),
}

/// A decoder whose key cache lives across invocations.
pub struct EventDecoder {
    /// Keyed with a hash much cheaper than the default one, which costs more than the lookup
    /// saves on short keys; the keys come from the event, but the cache is bounded and cleared.
    keys: FxHashMap<Box<str>, Py<PyString>>,
    orjson: Orjson,
    gc: Option<GcSwitch>,
}

/// The `gc` module's switches: a decode builds only fresh containers, which cannot be cyclic
/// garbage, so collections triggered by their allocation are pure cost and are held off meanwhile.
pub(crate) struct GcSwitch {
    disable: Py<PyAny>,
    enable: Py<PyAny>,
    is_enabled: Py<PyAny>,
}

impl GcSwitch {
    pub(crate) fn new(py: Python<'_>) -> Option<Self> {
        let gc = py.import("gc").ok()?;
        let switch = |name: &str| gc.getattr(name).ok().map(Bound::unbind);
        Some(Self {
            disable: switch("disable")?,
            enable: switch("enable")?,
            is_enabled: switch("isenabled")?,
        })
    }

    /// Runs `work` with collections held off, if they were on.
    pub(crate) fn paused<T>(&self, py: Python<'_>, work: impl FnOnce() -> T) -> T {
        let was_enabled = self
            .is_enabled
            .call0(py)
            .and_then(|flag| flag.is_truthy(py))
            .unwrap_or(false);
        if was_enabled {
            let _ = self.disable.call0(py);
        }
        let result = work();
        if was_enabled {
            let _ = self.enable.call0(py);
        }
        result
    }
}

impl EventDecoder {
    pub fn new(py: Python<'_>) -> Self {
        Self {
            keys: FxHashMap::default(),
            orjson: Orjson::NotImported,
            gc: GcSwitch::new(py),
        }
    }

    /// Decodes `body` with the stock runtime's rules (floats as `float`, the last of duplicate keys
    /// wins, `NaN`/`Infinity` rejected), or returns `None` when this decoder cannot; the caller then
    /// asks the reference decoder, which either accepts what this one does not (integers beyond 64
    /// bits for orjson, a byte-order mark, lone surrogate escapes) or gives the stock runtime's exact
    /// error message.
    pub fn decode<'py>(&mut self, py: Python<'py>, body: &mut Vec<u8>) -> Option<Bound<'py, PyAny>> {
        self.with_collections_held(py, |decoder| {
            if decoder.suits_orjson(body) {
                if let Some(loads) = decoder.orjson_loads(py) {
                    return loads_from_view(py, &loads, body);
                }
            }
            decoder.parse(py, body)
        })
    }

    /// Decodes a `bytes` object as [`Self::decode`] decodes a received body.
    pub fn decode_bytes<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyBytes>) -> Option<Bound<'py, PyAny>> {
        let body = data.as_bytes();
        self.with_collections_held(py, |decoder| {
            if decoder.suits_orjson(body) {
                if let Some(loads) = decoder.orjson_loads(py) {
                    return loads.call1((data,)).ok();
                }
            }
            decoder.parse(py, body)
        })
    }

    fn with_collections_held<T>(&mut self, py: Python<'_>, work: impl FnOnce(&mut Self) -> T) -> T {
        let gc = self.gc.take();
        let result = match &gc {
            Some(gc) => gc.paused(py, || work(self)),
            None => work(self),
        };
        self.gc = gc;
        result
    }

    /// Whether orjson should decode `body`: a large event without integers beyond 64 bits, which
    /// orjson would read as floats (a long run of digits anywhere, in a string too, rules it out).
    fn suits_orjson(&self, body: &[u8]) -> bool {
        body.len() >= ORJSON_FROM_BYTES && !matches!(self.orjson, Orjson::Missing) && !has_long_digit_run(body)
    }

    fn orjson_loads<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        if let Orjson::NotImported = self.orjson {
            self.orjson = match py.import("orjson").and_then(|module| module.getattr("loads")) {
                Ok(loads) => Orjson::Loads(loads.unbind()),
                Err(_) => Orjson::Missing,
            };
        }
        match &self.orjson {
            Orjson::Loads(loads) => Some(loads.bind(py).clone()),
            Orjson::NotImported | Orjson::Missing => None,
        }
    }

    fn parse<'py>(&mut self, py: Python<'py>, body: &[u8]) -> Option<Bound<'py, PyAny>> {
        if self.keys.len() > KEY_CACHE_CAPACITY {
            self.keys.clear();
        }
        let mut jiter = Jiter::new(body);
        let value = self.value(py, &mut jiter, 0).ok()?.ok()?;
        jiter.finish().ok()?;
        Some(value)
    }

    fn value<'py>(
        &mut self,
        py: Python<'py>,
        jiter: &mut Jiter<'_>,
        depth: usize,
    ) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let peek = jiter.peek()?;
        self.known_value(py, jiter, peek, depth)
    }

    fn known_value<'py>(
        &mut self,
        py: Python<'py>,
        jiter: &mut Jiter<'_>,
        peek: Peek,
        depth: usize,
    ) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        if depth > MAX_NESTING && matches!(peek, Peek::Array | Peek::Object) {
            // The reference decoder decides, and fails where the stock runtime's would.
            return Ok(Err(PyValueError::new_err("nested too deeply for the native decoder")));
        }
        let value = match peek {
            Peek::Null => {
                jiter.known_null()?;
                Ok(py.None().into_bound(py))
            }
            Peek::True | Peek::False => {
                let flag = jiter.known_bool(peek)?;
                Ok(pyo3::types::PyBool::new(py, flag).to_owned().into_any())
            }
            Peek::String => Ok(PyString::new(py, jiter.known_str()?).into_any()),
            Peek::Array => self.array(py, jiter, depth + 1)?,
            Peek::Object => self.object(py, jiter, depth + 1)?,
            _ => match jiter.known_number(peek)? {
                NumberAny::Int(NumberInt::Int(number)) => Ok(pyo3::types::PyInt::new(py, number).into_any()),
                NumberAny::Int(NumberInt::BigInt(number)) => number.into_pyobject(py).map(Bound::into_any),
                NumberAny::Float(number) => Ok(pyo3::types::PyFloat::new(py, number).into_any()),
            },
        };
        Ok(value)
    }

    fn array<'py>(
        &mut self,
        py: Python<'py>,
        jiter: &mut Jiter<'_>,
        depth: usize,
    ) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let mut items = Vec::new();
        let mut next = jiter.known_array()?;
        while let Some(peek) = next {
            match self.known_value(py, jiter, peek, depth)? {
                Ok(item) => items.push(item),
                Err(error) => return Ok(Err(error)),
            }
            next = jiter.array_step()?;
        }
        Ok(PyList::new(py, items).map(Bound::into_any))
    }

    fn object<'py>(
        &mut self,
        py: Python<'py>,
        jiter: &mut Jiter<'_>,
        depth: usize,
    ) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let dict = PyDict::new(py);
        let mut next_key = jiter.known_object()?.map(|key| self.key(py, key));
        while let Some(key) = next_key {
            let value = match self.value(py, jiter, depth)? {
                Ok(value) => value,
                Err(error) => return Ok(Err(error)),
            };
            if let Err(error) = dict.set_item(key, value) {
                return Ok(Err(error));
            }
            next_key = jiter.next_key()?.map(|key| self.key(py, key));
        }
        Ok(Ok(dict.into_any()))
    }

    fn key<'py>(&mut self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if key.len() > CACHED_KEY_MAX_LEN {
            return PyString::new(py, key);
        }
        if let Some(cached) = self.keys.get(key) {
            return cached.bind(py).clone();
        }
        let string = PyString::new(py, key);
        self.keys.insert(key.into(), string.clone().unbind());
        string
    }
}

/// `CPython`'s flag for a read-only memoryview (`PyBUF_READ`), part of the stable ABI.
const PYBUF_READ: std::ffi::c_int = 0x100;

/// Calls `loads` on a read-only memoryview of `body`, so the bytes are parsed where they were received.
#[expect(unsafe_code, reason = "a memoryview over Rust-owned memory has no safe constructor")]
fn loads_from_view<'py>(py: Python<'py>, loads: &Bound<'py, PyAny>, body: &mut Vec<u8>) -> Option<Bound<'py, PyAny>> {
    let length = ffi::Py_ssize_t::try_from(body.len()).ok()?;
    // SAFETY: the view points into `body`, which is alive for the whole call; afterwards the view is
    // released, so nothing can read through it, or, if something still holds it, the memory is kept.
    let view = unsafe {
        let pointer = ffi::PyMemoryView_FromMemory(body.as_mut_ptr().cast::<c_char>(), length, PYBUF_READ);
        Bound::from_owned_ptr_or_err(py, pointer).ok()?
    };
    let decoded = loads.call1((&view,));
    if view.call_method0("release").is_err() {
        // A buffer export outlives the call: the memory under it must stay valid for good.
        std::mem::forget(std::mem::replace(body, body.clone()));
    }
    decoded.ok()
}

/// Whether `data` holds 19 or more digits in a row: the shortest integer that may not fit 64 bits.
///
/// Such a run always covers a whole aligned eight-byte word, so only words that are all digits are
/// looked at closely, and the scan of a megabyte takes microseconds rather than a millisecond.
fn has_long_digit_run(data: &[u8]) -> bool {
    const LONGEST_SAFE_RUN: usize = 18;
    const WORD: usize = 8;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    let all_digits = |chunk: &[u8]| {
        let mut word_bytes = [0u8; WORD];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word_bytes);
        // Digits are 0x30 to 0x39: a high nibble of 3, and a low nibble that does not carry when 6
        // is added. A carry out of a non-digit byte can only spoil a word that fails anyway.
        word & HIGH_NIBBLES == THREES && word.wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == THREES
    };
    // The end of the last run measured, so a long run is measured once.
    let mut measured_to = 0;
    for (index, chunk) in data.chunks_exact(WORD).enumerate() {
        let start = index * WORD;
        if start < measured_to || !all_digits(chunk) {
            continue;
        }
        let before = data[..start]
            .iter()
            .rev()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let after = data[start..].iter().take_while(|byte| byte.is_ascii_digit()).count();
        if before + after > LONGEST_SAFE_RUN {
            return true;
        }
        measured_to = start + after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_are_found() {
        assert!(!has_long_digit_run(b"{\"a\": 922337203685477580, \"b\": \"123\"}"));
        assert!(has_long_digit_run(b"{\"a\": 9223372036854775808}"));
        assert!(has_long_digit_run(b"[0.1234567890123456789]"));
        assert!(!has_long_digit_run(b""));
    }

    #[test]
    fn digit_runs_are_measured_wherever_they_fall() {
        for offset in 0..24 {
            for length in 1..40 {
                let mut data = vec![b'x'; 80];
                data[offset..offset + length].fill(b'7');
                assert_eq!(
                    has_long_digit_run(&data),
                    length > 18,
                    "offset {offset} length {length}"
                );
                // Bytes next to the digits that a carry could confuse: '/' and ':' border them.
                data[offset + length] = b':';
                if offset > 0 {
                    data[offset - 1] = b'/';
                }
                assert_eq!(
                    has_long_digit_run(&data),
                    length > 18,
                    "offset {offset} length {length}"
                );
            }
        }
    }
}
