//! The Python binding: argument plumbing around the Runtime API client, the event decoder and the
//! result encoder, plus the invocation loop, which calls into Python once per invocation. The
//! thumbnail functions are in `image`.

mod image;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::decode::EventDecoder;
use crate::encode::JsonEncoder;
use crate::runtime_api::{Invocation as ApiInvocation, RuntimeApiClient, RuntimeApiError};

/// The Python exception types, defined in `fastric.errors` so they can subclass stdlib types.
mod exceptions {
    pyo3::import_exception!(fastric.errors, RuntimeApiError);
}

impl From<RuntimeApiError> for PyErr {
    fn from(error: RuntimeApiError) -> Self {
        exceptions::RuntimeApiError::new_err(error.to_string())
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

/// The Python callables the loop calls: the handler contract and the reference codecs.
struct Callbacks<'py> {
    invoke: Bound<'py, PyAny>,
    decode_fallback: Bound<'py, PyAny>,
    encode_fallback: Bound<'py, PyAny>,
}

#[pyclass(module = "fastric._fastric")]
pub struct RuntimeClient {
    api: RuntimeApiClient,
    decoder: EventDecoder,
    body: Vec<u8>,
}

#[pymethods]
impl RuntimeClient {
    #[new]
    fn new(address: &str, user_agent: &str) -> Self {
        Self {
            api: RuntimeApiClient::new(address, user_agent),
            decoder: EventDecoder::default(),
            body: Vec::with_capacity(64 * 1024),
        }
    }

    #[getter]
    fn address(&self) -> &str {
        self.api.address()
    }

    /// Serves invocations until the Runtime API fails or a callback raises; never returns `Ok`.
    #[pyo3(signature = (invoke, decode_fallback, encode_fallback, *, ensure_ascii))]
    fn run(
        &mut self,
        py: Python<'_>,
        invoke: Bound<'_, PyAny>,
        decode_fallback: Bound<'_, PyAny>,
        encode_fallback: Bound<'_, PyAny>,
        ensure_ascii: bool,
    ) -> PyResult<()> {
        let callbacks = Callbacks {
            invoke,
            decode_fallback,
            encode_fallback,
        };
        let encoder = JsonEncoder { ensure_ascii };
        loop {
            self.serve_one(py, &callbacks, &encoder)?;
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
    fn serve_one(&mut self, py: Python<'_>, callbacks: &Callbacks<'_>, encoder: &JsonEncoder) -> PyResult<()> {
        // Wait for an event without holding the GIL.
        let invocation = self.next_invocation(py)?;
        let headers = Py::new(py, Invocation::from_api(&invocation))?;

        // Decode the event from the received buffer; the reference decoder has the last word.
        let event = if invocation.is_json() {
            if let Some(event) = self.decoder.decode(py, &invocation.body) {
                event
            } else {
                let body = PyBytes::new(py, &invocation.body);
                callbacks.decode_fallback.call1((headers.clone_ref(py), body))?
            }
        } else {
            PyBytes::new(py, &invocation.body).into_any()
        };
        if let Ok(error) = event.cast::<ErrorResponse>() {
            return self.post_error(py, &invocation, error.get());
        }

        // Run the handler; BaseException (sys.exit and the like) ends the loop as it propagates.
        let result = callbacks.invoke.call1((headers.clone_ref(py), event))?;

        // Post what the handler produced.
        self.deliver(py, &invocation, &headers, &result, callbacks, encoder)
    }

    fn next_invocation(&mut self, py: Python<'_>) -> PyResult<ApiInvocation> {
        let api = &mut self.api;
        py.detach(|| api.send_next())?;
        loop {
            if let Some(invocation) = py.detach(|| api.poll_next())? {
                return Ok(invocation);
            }
            py.check_signals()?;
        }
    }

    fn deliver(
        &mut self,
        py: Python<'_>,
        invocation: &ApiInvocation,
        headers: &Py<Invocation>,
        result: &Bound<'_, PyAny>,
        callbacks: &Callbacks<'_>,
        encoder: &JsonEncoder,
    ) -> PyResult<()> {
        if let Ok(error) = result.cast::<ErrorResponse>() {
            return self.post_error(py, invocation, error.get());
        }
        if let Ok(raw) = result.cast::<PyBytes>() {
            self.body.clear();
            self.body.extend_from_slice(raw.as_bytes());
            return self.post_body(py, invocation, BINARY_CONTENT_TYPE);
        }

        self.body.clear();
        if encoder.encode(result, &mut self.body).is_ok() {
            return self.post_body(py, invocation, JSON_CONTENT_TYPE);
        }

        // The reference encoder decides what the fast one stepped aside from.
        let fallback = callbacks.encode_fallback.call1((headers.clone_ref(py), result))?;
        if let Ok(error) = fallback.cast::<ErrorResponse>() {
            return self.post_error(py, invocation, error.get());
        }
        let payload = fallback
            .cast::<PyBytes>()
            .map_err(|_| PyValueError::new_err("the result encoder must return bytes or an ErrorResponse"))?;
        self.body.clear();
        self.body.extend_from_slice(payload.as_bytes());
        self.post_body(py, invocation, JSON_CONTENT_TYPE)
    }

    fn post_body(&mut self, py: Python<'_>, invocation: &ApiInvocation, content_type: &str) -> PyResult<()> {
        let Self { api, body, .. } = self;
        let (request_id, invocation_id) = (&invocation.request_id, invocation.invocation_id.as_deref());
        py.detach(|| api.post_response(request_id, invocation_id, content_type, body))?;
        Ok(())
    }

    fn post_error(&mut self, py: Python<'_>, invocation: &ApiInvocation, error: &ErrorResponse) -> PyResult<()> {
        let api = &mut self.api;
        let (request_id, invocation_id) = (&invocation.request_id, invocation.invocation_id.as_deref());
        let cause = error.xray_cause.as_deref();
        py.detach(|| api.post_error(request_id, invocation_id, &error.error_type, cause, &error.body))?;
        Ok(())
    }
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
fn decode_json<'py>(py: Python<'py>, data: &[u8]) -> Option<Bound<'py, PyAny>> {
    EventDecoder::default().decode(py, data)
}

#[pymodule]
pub mod _fastric {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{decode_json, encode_json, ErrorResponse, Invocation, RuntimeClient};

    #[pymodule_export]
    use super::image::{thumbnail, thumbnails};

    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add("DEFAULT_MAX_PIXELS", crate::image::DEFAULT_MAX_PIXELS)?;
        module.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
