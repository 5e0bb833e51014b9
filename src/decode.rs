//! Decodes event JSON straight from the received buffer into Python objects.

use std::collections::HashMap;

use jiter::{Jiter, JiterResult, NumberAny, NumberInt, Peek};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

/// Object keys up to this length are cached: event shapes repeat their keys in every record and
/// every invocation, so one string object serves them all.
const CACHED_KEY_MAX_LEN: usize = 64;
const KEY_CACHE_CAPACITY: usize = 4096;

/// A decoder whose key cache lives across invocations.
#[derive(Default)]
pub struct EventDecoder {
    keys: HashMap<Box<str>, Py<PyString>>,
}

impl EventDecoder {
    /// Decodes `body` with the stock runtime's rules (floats as `float`, exact big integers, the last
    /// of duplicate keys wins, `NaN`/`Infinity` rejected), or returns `None` when this parser cannot;
    /// the caller then asks the reference decoder, which either accepts what this one does not (a
    /// byte-order mark, lone surrogate escapes) or gives the stock runtime's exact error message.
    pub fn decode<'py>(&mut self, py: Python<'py>, body: &[u8]) -> Option<Bound<'py, PyAny>> {
        if self.keys.len() > KEY_CACHE_CAPACITY {
            self.keys.clear();
        }
        let mut jiter = Jiter::new(body);
        let value = self.value(py, &mut jiter).ok()?.ok()?;
        jiter.finish().ok()?;
        Some(value)
    }

    fn value<'py>(&mut self, py: Python<'py>, jiter: &mut Jiter<'_>) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let peek = jiter.peek()?;
        self.known_value(py, jiter, peek)
    }

    fn known_value<'py>(
        &mut self,
        py: Python<'py>,
        jiter: &mut Jiter<'_>,
        peek: Peek,
    ) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
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
            Peek::Array => self.array(py, jiter)?,
            Peek::Object => self.object(py, jiter)?,
            _ => match jiter.known_number(peek)? {
                NumberAny::Int(NumberInt::Int(number)) => Ok(pyo3::types::PyInt::new(py, number).into_any()),
                NumberAny::Int(NumberInt::BigInt(number)) => number.into_pyobject(py).map(Bound::into_any),
                NumberAny::Float(number) => Ok(pyo3::types::PyFloat::new(py, number).into_any()),
            },
        };
        Ok(value)
    }

    fn array<'py>(&mut self, py: Python<'py>, jiter: &mut Jiter<'_>) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let mut items = Vec::new();
        let mut next = jiter.known_array()?;
        while let Some(peek) = next {
            match self.known_value(py, jiter, peek)? {
                Ok(item) => items.push(item),
                Err(error) => return Ok(Err(error)),
            }
            next = jiter.array_step()?;
        }
        Ok(PyList::new(py, items).map(Bound::into_any))
    }

    fn object<'py>(&mut self, py: Python<'py>, jiter: &mut Jiter<'_>) -> JiterResult<PyResult<Bound<'py, PyAny>>> {
        let dict = PyDict::new(py);
        let mut next_key = jiter.known_object()?.map(|key| self.key(py, key));
        while let Some(key) = next_key {
            let value = match self.value(py, jiter)? {
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
