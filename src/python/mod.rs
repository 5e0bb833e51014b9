//! The Python binding: argument plumbing around the Runtime API client, the event decoder and the
//! result encoder, plus the invocation loop, which calls into Python once per invocation. The
//! event-record decoders are in `events`, the thumbnail functions in `image`.

mod events;
mod image;

use std::sync::Mutex;
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::decode::EventDecoder;
use crate::encode::JsonEncoder;
use crate::runtime_api::{Invocation as ApiInvocation, RuntimeApiClient, RuntimeApiError};
use crate::text::utf8;

/// The Python exception types, defined in `fastric.errors` so they can subclass stdlib types.
mod exceptions {
    pyo3::import_exception!(fastric.errors, RuntimeApiError);
}

impl From<RuntimeApiError> for PyErr {
    fn from(error: RuntimeApiError) -> Self {
        exceptions::RuntimeApiError::new_err((error.to_string(), error.status()))
    }
}

const BINARY_CONTENT_TYPE: &str = "application/unknown";
const JSON_CONTENT_TYPE: &str = "application/json";

/// What the runtime posts to `/error` for an invocation: built in Python, posted from Rust.
#[pyclass(module = "fastric._fastric", frozen)]
pub struct ErrorResponse {
    error_type: String,
    body: Vec<u8>,
    xray_cause: Option<String>,
}

#[pymethods]
impl ErrorResponse {
    #[new]
    #[pyo3(signature = (error_type, body, *, xray_cause=None))]
    fn new(error_type: String, body: Vec<u8>, xray_cause: Option<String>) -> Self {
        Self {
            error_type,
            body,
            xray_cause,
        }
    }

    #[getter]
    fn error_type(&self) -> &str {
        &self.error_type
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    #[getter]
    fn xray_cause(&self) -> Option<&str> {
        self.xray_cause.as_deref()
    }
}

/// A response to stream: chunks (`bytes` or `str`, among others) from an iterator, sent as they are
/// produced.
#[pyclass(module = "fastric._fastric", frozen)]
pub struct ResponseStream {
    chunks: Py<PyAny>,
    content_type: String,
    prelude: Option<Vec<u8>>,
}

#[pymethods]
impl ResponseStream {
    #[new]
    #[pyo3(signature = (chunks, *, content_type="application/octet-stream".to_owned(), prelude=None))]
    fn new(chunks: Py<PyAny>, content_type: String, prelude: Option<Vec<u8>>) -> Self {
        Self {
            chunks,
            content_type,
            prelude,
        }
    }

    #[getter]
    fn chunks(&self, py: Python<'_>) -> Py<PyAny> {
        self.chunks.clone_ref(py)
    }

    #[getter]
    fn content_type(&self) -> &str {
        &self.content_type
    }

    #[getter]
    fn prelude<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.prelude.as_deref().map(|prelude| PyBytes::new(py, prelude))
    }
}

/// What separates the JSON prelude of an HTTP integration response from its body.
const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// The headers of one invocation, as the handler contract needs them.
#[expect(clippy::struct_field_names, reason = "the names mirror the Runtime API headers")]
#[pyclass(module = "fastric._fastric", frozen, get_all)]
pub struct Invocation {
    request_id: String,
    deadline_ms: u64,
    invoked_function_arn: String,
    trace_id: Option<String>,
    client_context: Option<String>,
    cognito_identity: Option<String>,
    tenant_id: Option<String>,
    invocation_id: Option<String>,
    content_type: Option<String>,
}

impl Invocation {
    fn from_api(invocation: &ApiInvocation) -> Self {
        Self {
            request_id: invocation.request_id.clone(),
            deadline_ms: invocation.deadline_ms,
            invoked_function_arn: invocation.invoked_function_arn.clone(),
            trace_id: invocation.trace_id.clone(),
            client_context: invocation.client_context.clone(),
            cognito_identity: invocation.cognito_identity.clone(),
            tenant_id: invocation.tenant_id.clone(),
            invocation_id: invocation.invocation_id.clone(),
            content_type: invocation.content_type.clone(),
        }
    }
}

/// What the loop asks of Python, looked up once from the handler contract object.
struct Contract<'py> {
    invoke: Bound<'py, PyAny>,
    decode_fallback: Bound<'py, PyAny>,
    encode_fallback: Bound<'py, PyAny>,
    response_too_large: Bound<'py, PyAny>,
    next_failed: Bound<'py, PyAny>,
    post_failed: Bound<'py, PyAny>,
    stream_failed: Bound<'py, PyAny>,
}

impl<'py> Contract<'py> {
    fn from_object(contract: &Bound<'py, PyAny>) -> PyResult<Self> {
        Ok(Self {
            invoke: contract.getattr("invoke")?,
            decode_fallback: contract.getattr("decode_fallback")?,
            encode_fallback: contract.getattr("encode_fallback")?,
            response_too_large: contract.getattr("response_too_large")?,
            next_failed: contract.getattr("next_failed")?,
            post_failed: contract.getattr("post_failed")?,
            stream_failed: contract.getattr("stream_failed")?,
        })
    }
}

/// The largest response body the Runtime API accepts for a buffered response.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

#[pyclass(module = "fastric._fastric")]
pub struct RuntimeClient {
    api: RuntimeApiClient,
    decoder: EventDecoder,
    body: Vec<u8>,
}

#[pymethods]
impl RuntimeClient {
    #[new]
    fn new(py: Python<'_>, address: &str, user_agent: &str) -> Self {
        Self {
            api: RuntimeApiClient::new(address, user_agent),
            decoder: EventDecoder::new(py),
            body: Vec::with_capacity(64 * 1024),
        }
    }

    #[getter]
    fn address(&self) -> &str {
        self.api.address()
    }

    /// Serves invocations until the Runtime API fails or the contract raises; never returns `Ok`.
    #[pyo3(signature = (contract, *, ensure_ascii))]
    fn run(&mut self, py: Python<'_>, contract: &Bound<'_, PyAny>, ensure_ascii: bool) -> PyResult<()> {
        let contract = Contract::from_object(contract)?;
        let encoder = JsonEncoder { ensure_ascii };
        loop {
            self.serve_one(py, &contract, &encoder)?;
        }
    }

    fn post_init_error(&mut self, py: Python<'_>, error_type: &str, body: &[u8]) -> PyResult<()> {
        let body = body.to_vec();
        let api = &mut self.api;
        py.detach(|| api.post_init_error(error_type, &body))
            .map_err(PyErr::from)
    }

    fn restore_next(&mut self, py: Python<'_>) -> PyResult<()> {
        let api = &mut self.api;
        py.detach(|| api.restore_next()).map_err(PyErr::from)
    }

    fn post_restore_error(&mut self, py: Python<'_>, error_type: &str, body: &[u8]) -> PyResult<()> {
        let body = body.to_vec();
        let api = &mut self.api;
        py.detach(|| api.post_restore_error(error_type, &body))
            .map_err(PyErr::from)
    }
}

impl RuntimeClient {
    fn serve_one(&mut self, py: Python<'_>, contract: &Contract<'_>, encoder: &JsonEncoder) -> PyResult<()> {
        // Wait for an event without holding the GIL.
        let mut invocation = self.next_invocation(py, contract)?;
        let headers = Py::new(py, Invocation::from_api(&invocation))?;

        // Decode the event from the received buffer; the reference decoder has the last word.
        let event = if invocation.is_json() {
            if let Some(event) = self.decoder.decode(py, &mut invocation.body) {
                event
            } else {
                let body = PyBytes::new(py, &invocation.body);
                contract.decode_fallback.call1((headers.clone_ref(py), body))?
            }
        } else {
            PyBytes::new(py, &invocation.body).into_any()
        };
        if let Ok(error) = event.cast::<ErrorResponse>() {
            return self.post_error(py, contract, &invocation, &headers, error.get());
        }

        // Run the handler; BaseException (sys.exit and the like) ends the loop as it propagates.
        let result = contract.invoke.call1((headers.clone_ref(py), event))?;

        // Post what the handler produced.
        self.deliver(py, contract, encoder, &invocation, &headers, &result)
    }

    /// Waits for the next event, retrying for as long as the contract's `next_failed` allows.
    fn next_invocation(&mut self, py: Python<'_>, contract: &Contract<'_>) -> PyResult<ApiInvocation> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let error = match self.try_next(py) {
                Ok(invocation) => return Ok(invocation),
                Err(NextError::Interrupted(error)) => return Err(error),
                Err(NextError::Api(error)) => PyErr::from(error),
            };
            let delay = contract.next_failed.call1((error.value(py), attempt))?;
            if delay.is_none() {
                return Err(error);
            }
            let delay = Duration::try_from_secs_f64(delay.extract::<f64>()?).unwrap_or_default();
            py.detach(|| std::thread::sleep(delay));
        }
    }

    fn try_next(&mut self, py: Python<'_>) -> Result<ApiInvocation, NextError> {
        let api = &mut self.api;
        py.detach(|| api.send_next()).map_err(NextError::Api)?;
        loop {
            if let Some(invocation) = py.detach(|| api.poll_next()).map_err(NextError::Api)? {
                return Ok(invocation);
            }
            py.check_signals().map_err(NextError::Interrupted)?;
        }
    }

    fn deliver(
        &mut self,
        py: Python<'_>,
        contract: &Contract<'_>,
        encoder: &JsonEncoder,
        invocation: &ApiInvocation,
        headers: &Py<Invocation>,
        result: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        if let Ok(error) = result.cast::<ErrorResponse>() {
            return self.post_error(py, contract, invocation, headers, error.get());
        }
        if let Ok(stream) = result.cast::<ResponseStream>() {
            return self.stream(py, contract, invocation, headers, stream.get());
        }
        self.body.clear();
        let content_type = if let Ok(raw) = result.cast::<PyBytes>() {
            self.body.extend_from_slice(raw.as_bytes());
            BINARY_CONTENT_TYPE
        } else if encoder.encode(result, &mut self.body).is_ok() {
            JSON_CONTENT_TYPE
        } else {
            // The reference encoder decides what the fast one stepped aside from.
            let fallback = contract.encode_fallback.call1((headers.clone_ref(py), result))?;
            if let Ok(error) = fallback.cast::<ErrorResponse>() {
                return self.post_error(py, contract, invocation, headers, error.get());
            }
            let payload = fallback
                .cast::<PyBytes>()
                .map_err(|_| PyValueError::new_err("encode_fallback must return bytes or an ErrorResponse"))?;
            self.body.clear();
            self.body.extend_from_slice(payload.as_bytes());
            JSON_CONTENT_TYPE
        };

        // A response the platform would refuse is reported as the error Lambda gives for it.
        if self.body.len() > MAX_RESPONSE_BYTES {
            let error = contract
                .response_too_large
                .call1((headers.clone_ref(py), self.body.len()))?;
            let error = error.cast::<ErrorResponse>()?;
            return self.post_error(py, contract, invocation, headers, error.get());
        }

        let Self { api, body, .. } = self;
        let (request_id, invocation_id) = (&invocation.request_id, invocation.invocation_id.as_deref());
        let posted = py.detach(|| api.post_response(request_id, invocation_id, content_type, body));
        Self::after_post(py, contract, headers, posted)
    }

    /// Streams a response chunk by chunk. The request opens with the first chunk, so a stream that
    /// fails before producing anything is reported as an ordinary error; a failure after that goes
    /// into the trailers, as Lambda's other runtimes report it.
    fn stream(
        &mut self,
        py: Python<'_>,
        contract: &Contract<'_>,
        invocation: &ApiInvocation,
        headers: &Py<Invocation>,
        stream: &ResponseStream,
    ) -> PyResult<()> {
        let mut chunks = stream.chunks.bind(py).try_iter()?;
        let mut next_chunk =
            move || -> PyResult<Option<Vec<u8>>> { chunks.next().map(|chunk| chunk_bytes(&chunk?)).transpose() };

        // The first chunk comes before the request opens.
        let first = match next_chunk() {
            Ok(first) => first,
            Err(error) => {
                let failure = Self::stream_failure(py, contract, headers, error)?;
                return self.post_error(py, contract, invocation, headers, failure.get());
            }
        };
        let (request_id, invocation_id) = (&invocation.request_id, invocation.invocation_id.as_deref());
        let content_type = stream.content_type.as_str();
        let api = &mut self.api;
        let mut opened = py.detach(|| api.begin_streaming_response(request_id, invocation_id, content_type));
        if let (Ok(()), Some(prelude)) = (&opened, &stream.prelude) {
            let mut head = prelude.clone();
            head.extend_from_slice(&PRELUDE_DELIMITER);
            opened = py.detach(|| api.write_chunk(&head));
        }

        // Each chunk goes out as soon as the handler yields it, with the GIL released meanwhile;
        // while the reader is slow the write blocks and the handler is not asked for more.
        let mut written = opened;
        let mut chunk = first;
        let mut failure = None;
        while written.is_ok() {
            let Some(data) = chunk.take() else { break };
            written = py.detach(|| api.write_chunk(&data));
            if written.is_err() {
                // The reader is gone: the handler is not asked for more.
                break;
            }
            match next_chunk() {
                Ok(next) => chunk = next,
                Err(error) => {
                    failure = Some(Self::stream_failure(py, contract, headers, error)?);
                    break;
                }
            }
        }

        // End the body, with the error in the trailers if the handler failed part-way.
        let finished = written.and_then(|()| {
            let failure = failure.as_ref().map(Bound::get);
            let error_body = failure.map(|failure| BASE64_STANDARD.encode(&failure.body));
            let trailers = [
                (
                    "Lambda-Runtime-Function-Error-Type",
                    failure.map(|failure| failure.error_type.as_str()),
                ),
                ("Lambda-Runtime-Function-Error-Body", error_body.as_deref()),
            ];
            py.detach(|| api.finish_streaming_response(&trailers))
        });
        Self::after_post(py, contract, headers, finished)
    }

    /// Turns an exception raised by the stream into the error to report; anything that is not an
    /// `Exception` (an exit, an interrupt) ends the loop instead.
    fn stream_failure<'py>(
        py: Python<'py>,
        contract: &Contract<'py>,
        headers: &Py<Invocation>,
        error: PyErr,
    ) -> PyResult<Bound<'py, ErrorResponse>> {
        if !error.is_instance_of::<PyException>(py) {
            return Err(error);
        }
        // The value carries its traceback, so the report names the handler's frames.
        let failure = contract
            .stream_failed
            .call1((headers.clone_ref(py), error.into_value(py)))?;
        Ok(failure.cast_into::<ErrorResponse>()?)
    }

    fn post_error(
        &mut self,
        py: Python<'_>,
        contract: &Contract<'_>,
        invocation: &ApiInvocation,
        headers: &Py<Invocation>,
        error: &ErrorResponse,
    ) -> PyResult<()> {
        let api = &mut self.api;
        let (request_id, invocation_id) = (&invocation.request_id, invocation.invocation_id.as_deref());
        let cause = error.xray_cause.as_deref();
        let posted = py.detach(|| api.post_error(request_id, invocation_id, &error.error_type, cause, &error.body));
        Self::after_post(py, contract, headers, posted)
    }

    /// A failed post goes to the contract's `post_failed`, which either lets the loop go on or raises.
    fn after_post(
        py: Python<'_>,
        contract: &Contract<'_>,
        headers: &Py<Invocation>,
        posted: Result<(), RuntimeApiError>,
    ) -> PyResult<()> {
        if let Err(error) = posted {
            let error = PyErr::from(error);
            contract.post_failed.call1((headers.clone_ref(py), error.value(py)))?;
        }
        Ok(())
    }
}

/// The bytes of one streamed chunk: `bytes`, `bytearray`, `memoryview` or `str` (sent as UTF-8).
fn chunk_bytes(chunk: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(text) = chunk.cast::<PyString>() {
        return Ok(utf8(text)?.as_bytes().to_vec());
    }
    if let Ok(bytes) = chunk.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = chunk.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if chunk.is_instance_of::<PyMemoryView>() {
        // The buffer protocol is not in the stable ABI before 3.11; `tobytes` is.
        let copy = chunk.call_method0("tobytes")?;
        return Ok(copy.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let kind = chunk.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "a streamed chunk must be bytes, bytearray, memoryview or str, not {kind}"
    )))
}

/// Why waiting for the next event stopped: the Runtime API failed, or a signal handler raised.
enum NextError {
    Api(RuntimeApiError),
    Interrupted(PyErr),
}

/// Encodes `value` as the stock runtime would, or returns `None` when the value needs the
/// reference encoder (types other than exact built-in JSON types, lone surrogates, deep nesting).
#[pyfunction]
#[pyo3(signature = (value, *, ensure_ascii))]
fn encode_json<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, ensure_ascii: bool) -> Option<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    JsonEncoder { ensure_ascii }.encode(value, &mut out).ok()?;
    Some(PyBytes::new(py, &out))
}

/// Decodes event JSON, or returns `None` when the reference decoder must decide.
#[pyfunction]
fn decode_json<'py>(py: Python<'py>, data: &Bound<'py, PyBytes>) -> Option<Bound<'py, PyAny>> {
    // One decoder serves every call, keeping its key cache; a call made while it is busy (from a
    // finalizer that runs during a decode, say) gets a decoder of its own.
    static SHARED: PyOnceLock<Mutex<EventDecoder>> = PyOnceLock::new();
    let shared = SHARED.get_or_init(py, || Mutex::new(EventDecoder::new(py)));
    match shared.try_lock() {
        Ok(mut decoder) => decoder.decode_bytes(py, data),
        Err(_) => EventDecoder::new(py).decode_bytes(py, data),
    }
}

#[pymodule]
pub mod _fastric {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{decode_json, encode_json, ErrorResponse, Invocation, ResponseStream, RuntimeClient};

    #[pymodule_export]
    use super::events::{b64decode, dynamodb_image, dynamodb_value, lower_keys, unquote_plus};

    #[pymodule_export]
    use super::image::{thumbnail, thumbnails};

    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add("DEFAULT_MAX_PIXELS", crate::image::DEFAULT_MAX_PIXELS)?;
        module.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
