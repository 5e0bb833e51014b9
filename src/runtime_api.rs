//! A minimal HTTP/1.1 client for the Lambda Runtime API: one kept-alive connection, one outstanding
//! request at a time, bodies read into buffers the caller can decode from without another copy.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long one blocking read may take before control returns to the caller, so that a waiting
/// `next` can let the interpreter handle signals. It is not a timeout on the request itself.
const READ_SLICE: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const API_PREFIX: &str = "/2018-06-01/runtime";
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 1024 * 1024;

#[derive(Debug)]
pub enum RuntimeApiError {
    /// The Runtime API could not be reached.
    Connect { address: String, source: io::Error },
    /// The connection failed or was closed in the middle of an exchange.
    Transport { action: &'static str, source: io::Error },
    /// The Runtime API answered with a status the call does not accept.
    Status {
        action: &'static str,
        status: u16,
        body: String,
    },
    /// The Runtime API answered something that is not a usable HTTP response.
    Protocol { action: &'static str, detail: String },
}

impl fmt::Display for RuntimeApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { address, source } => write!(f, "cannot connect to the Runtime API at {address}: {source}"),
            Self::Transport { action, source } => write!(f, "{action} failed: {source}"),
            Self::Status { action, status, body } => {
                write!(f, "{action} failed: the Runtime API answered {status}")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Self::Protocol { action, detail } => write!(f, "{action} failed: {detail}"),
        }
    }
}

impl std::error::Error for RuntimeApiError {}

impl RuntimeApiError {
    /// The HTTP status the Runtime API answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, RuntimeApiError>;

/// One event as the Runtime API delivered it, with every header the runtime uses.
#[derive(Debug, Default, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: Option<String>,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub tenant_id: Option<String>,
    pub invocation_id: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Invocation {
    /// Whether the body is JSON: Lambda sends `application/json`, parameters such as a charset
    /// included, and a missing content type is taken as JSON too since every invoke path sends it.
    pub fn is_json(&self) -> bool {
        self.content_type.as_deref().is_none_or(|value| {
            let media_type = value.split(';').next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case("application/json")
        })
    }
}

/// The parts of a response the runtime acts on.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Where a response is in being read; kept across read slices so a wait can be resumed.
#[derive(Default)]
struct Reader {
    buffer: Vec<u8>,
    /// What each read lands in before it joins `buffer`: zeroed once, so reads do not pay for
    /// clearing fresh space every time.
    scratch: Vec<u8>,
}

pub struct RuntimeApiClient {
    address: String,
    user_agent: String,
    stream: Option<TcpStream>,
    reader: Reader,
    request: Vec<u8>,
}

impl RuntimeApiClient {
    pub fn new(address: &str, user_agent: &str) -> Self {
        Self {
            address: address.to_owned(),
            user_agent: user_agent.to_owned(),
            stream: None,
            reader: Reader::default(),
            request: Vec::with_capacity(4096),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `GET /invocation/next`; the reply is collected by [`Self::poll_next`].
    pub fn send_next(&mut self) -> Result<()> {
        const ACTION: &str = "getting the next invocation";
        self.request.clear();
        write_request_head(
            &mut self.request,
            "GET",
            "/invocation/next",
            &self.address,
            &self.user_agent,
        );
        self.request.extend_from_slice(b"\r\n");
        self.send(ACTION)
    }

    /// Reads the reply to `next` for at most one read slice; `None` means it has not arrived yet.
    pub fn poll_next(&mut self) -> Result<Option<Invocation>> {
        const ACTION: &str = "getting the next invocation";
        let Some(response) = self.poll_response(ACTION)? else {
            return Ok(None);
        };
        if !(200..300).contains(&response.status) {
            return Err(status_error(ACTION, &response));
        }
        invocation_from(response).map(Some)
    }

    pub fn post_response(
        &mut self,
        request_id: &str,
        invocation_id: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<()> {
        let path = format!("/invocation/{request_id}/response");
        let headers = [
            ("Content-Type", Some(content_type)),
            ("Lambda-Runtime-Invocation-Id", invocation_id),
        ];
        self.post(
            "posting the invocation response",
            &path,
            &headers,
            body,
            Accept::Success,
        )
    }

    pub fn post_error(
        &mut self,
        request_id: &str,
        invocation_id: Option<&str>,
        error_type: &str,
        xray_cause: Option<&str>,
        body: &[u8],
    ) -> Result<()> {
        let path = format!("/invocation/{request_id}/error");
        let headers = [
            ("Content-Type", Some("application/json")),
            ("Lambda-Runtime-Function-Error-Type", Some(error_type)),
            ("Lambda-Runtime-Function-XRay-Error-Cause", xray_cause),
            ("Lambda-Runtime-Invocation-Id", invocation_id),
        ];
        self.post("posting the invocation error", &path, &headers, body, Accept::Success)
    }

    /// Starts a streamed response: the body follows in chunks written by [`Self::write_chunk`], and
    /// [`Self::finish_streaming_response`] ends it, with the error trailers if the stream failed.
    pub fn begin_streaming_response(
        &mut self,
        request_id: &str,
        invocation_id: Option<&str>,
        content_type: &str,
    ) -> Result<()> {
        const ACTION: &str = "streaming the invocation response";
        self.request.clear();
        let path = format!("/invocation/{request_id}/response");
        write_request_head(&mut self.request, "POST", &path, &self.address, &self.user_agent);
        let headers = [
            ("Content-Type", Some(content_type)),
            ("Lambda-Runtime-Function-Response-Mode", Some("streaming")),
            ("Transfer-Encoding", Some("chunked")),
            (
                "Trailer",
                Some("Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"),
            ),
            ("Lambda-Runtime-Invocation-Id", invocation_id),
        ];
        write_headers(&mut self.request, &headers);
        self.request.extend_from_slice(b"\r\n");
        self.send(ACTION)
    }

    /// Sends one chunk of a streamed response; blocks while the reader is slower than the handler.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        const ACTION: &str = "streaming the invocation response";
        if data.is_empty() {
            // An empty chunk would end the body.
            return Ok(());
        }
        self.request.clear();
        self.request
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        self.request.extend_from_slice(data);
        self.request.extend_from_slice(b"\r\n");
        self.write_request(ACTION)
    }

    /// Ends a streamed response, with `trailers` (name, value) when the stream failed part-way.
    pub fn finish_streaming_response(&mut self, trailers: &[(&str, Option<&str>)]) -> Result<()> {
        const ACTION: &str = "streaming the invocation response";
        self.request.clear();
        self.request.extend_from_slice(b"0\r\n");
        write_headers(&mut self.request, trailers);
        self.request.extend_from_slice(b"\r\n");
        self.write_request(ACTION)?;
        let response = self.wait_response(ACTION)?;
        check_status(ACTION, &response, Accept::Success)
    }

    pub fn post_init_error(&mut self, error_type: &str, body: &[u8]) -> Result<()> {
        let headers = [("Lambda-Runtime-Function-Error-Type", Some(error_type))];
        self.post(
            "posting the init error",
            "/init/error",
            &headers,
            body,
            Accept::Exactly(202),
        )
    }

    /// Blocks until `GET /restore/next` answers: the restore signal of a snapshotted function.
    pub fn restore_next(&mut self) -> Result<()> {
        const ACTION: &str = "getting the restore signal";
        self.request.clear();
        write_request_head(
            &mut self.request,
            "GET",
            "/restore/next",
            &self.address,
            &self.user_agent,
        );
        self.request.extend_from_slice(b"\r\n");
        self.send(ACTION)?;
        let response = self.wait_response(ACTION)?;
        check_status(ACTION, &response, Accept::Exactly(200))
    }

    pub fn post_restore_error(&mut self, error_type: &str, body: &[u8]) -> Result<()> {
        let headers = [("Lambda-Runtime-Function-Error-Type", Some(error_type))];
        self.post(
            "posting the restore error",
            "/restore/error",
            &headers,
            body,
            Accept::Exactly(202),
        )
    }

    fn post(
        &mut self,
        action: &'static str,
        path: &str,
        headers: &[(&str, Option<&str>)],
        body: &[u8],
        accept: Accept,
    ) -> Result<()> {
        self.request.clear();
        write_request_head(&mut self.request, "POST", path, &self.address, &self.user_agent);
        write_headers(&mut self.request, headers);
        write_header(
            &mut self.request,
            "Content-Length",
            itoa::Buffer::new().format(body.len()),
        );
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        self.send(action)?;
        let response = self.wait_response(action)?;
        check_status(action, &response, accept)
    }

    /// Writes the prepared request, reconnecting once if a kept-alive connection turned out closed.
    fn send(&mut self, action: &'static str) -> Result<()> {
        self.reader.buffer.clear();
        if let Some(stream) = self.stream.as_mut() {
            if stream.write_all(&self.request).is_ok() {
                return Ok(());
            }
            self.disconnect();
        }
        self.connect()?;
        let (Some(stream), request) = (self.stream.as_mut(), &self.request) else {
            return Err(RuntimeApiError::Protocol {
                action,
                detail: "no connection".into(),
            });
        };
        stream
            .write_all(request)
            .map_err(|source| RuntimeApiError::Transport { action, source })
    }

    /// Writes the prepared bytes on the open connection, in the middle of a request.
    fn write_request(&mut self, action: &'static str) -> Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(RuntimeApiError::Protocol {
                action,
                detail: "the connection is closed".into(),
            });
        };
        if let Err(source) = stream.write_all(&self.request) {
            self.disconnect();
            return Err(RuntimeApiError::Transport { action, source });
        }
        Ok(())
    }

    fn connect(&mut self) -> Result<()> {
        let connect_error = |source| RuntimeApiError::Connect {
            address: self.address.clone(),
            source,
        };
        let addresses = self.address.to_socket_addrs().map_err(connect_error)?;
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(connect_error)?;
                    stream.set_read_timeout(Some(READ_SLICE)).map_err(connect_error)?;
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(error) => last_error = error,
            }
        }
        Err(connect_error(last_error))
    }

    fn disconnect(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn wait_response(&mut self, action: &'static str) -> Result<Response> {
        loop {
            if let Some(response) = self.poll_response(action)? {
                return Ok(response);
            }
        }
    }

    /// Reads for at most one read slice and returns the response once it is complete.
    fn poll_response(&mut self, action: &'static str) -> Result<Option<Response>> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(RuntimeApiError::Protocol {
                action,
                detail: "no request is outstanding".into(),
            });
        };
        loop {
            if let Some(response) = parse_response(&mut self.reader.buffer, action)? {
                if !response.keep_alive {
                    self.disconnect();
                }
                return Ok(Some(response));
            }
            match read_more(stream, &mut self.reader) {
                Ok(0) => {
                    self.disconnect();
                    let source = io::Error::new(io::ErrorKind::UnexpectedEof, "the Runtime API closed the connection");
                    return Err(RuntimeApiError::Transport { action, source });
                }
                Ok(_) => {}
                Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return Ok(None),
                Err(source) => {
                    self.disconnect();
                    return Err(RuntimeApiError::Transport { action, source });
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Accept {
    Success,
    Exactly(u16),
}

fn check_status(action: &'static str, response: &Response, accept: Accept) -> Result<()> {
    let accepted = match accept {
        Accept::Success => (200..300).contains(&response.status),
        Accept::Exactly(status) => response.status == status,
    };
    if accepted {
        Ok(())
    } else {
        Err(status_error(action, response))
    }
}

fn status_error(action: &'static str, response: &Response) -> RuntimeApiError {
    let body = String::from_utf8_lossy(&response.body).trim().to_owned();
    RuntimeApiError::Status {
        action,
        status: response.status,
        body,
    }
}

fn write_request_head(out: &mut Vec<u8>, method: &str, path: &str, host: &str, user_agent: &str) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(API_PREFIX.as_bytes());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(out, "Host", host);
    write_header(out, "User-Agent", user_agent);
    write_header(out, "Accept", "*/*");
}

/// Writes the headers that have a value. A value cannot carry a line break; such a value is left
/// out rather than letting it split the request.
fn write_headers(out: &mut Vec<u8>, headers: &[(&str, Option<&str>)]) {
    for (name, value) in headers {
        if let Some(value) = value.filter(|value| !value.contains(['\r', '\n'])) {
            write_header(out, name, value);
        }
    }
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn read_more(stream: &mut TcpStream, reader: &mut Reader) -> io::Result<usize> {
    const CHUNK: usize = 64 * 1024;
    if reader.scratch.len() < CHUNK {
        reader.scratch.resize(CHUNK, 0);
    }
    let received = stream.read(&mut reader.scratch)?;
    reader.buffer.extend_from_slice(&reader.scratch[..received]);
    Ok(received)
}

/// Parses a complete response out of `buffer`, leaving any bytes after it in place.
fn parse_response(buffer: &mut Vec<u8>, action: &'static str) -> Result<Option<Response>> {
    let protocol_error = |detail: String| RuntimeApiError::Protocol { action, detail };
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut header_slots);
    let head_len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEADER_BYTES => {
            return Err(protocol_error("the response headers are too large".into()));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(protocol_error(format!("malformed response: {error}"))),
    };
    let status = parsed.code.unwrap_or_default();
    let http_10 = parsed.version == Some(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|header| {
            let value = String::from_utf8_lossy(header.value).trim().to_owned();
            (header.name.to_owned(), value)
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let keep_alive = match find("Connection") {
        Some(value) if value.eq_ignore_ascii_case("close") => false,
        Some(value) if value.eq_ignore_ascii_case("keep-alive") => true,
        _ => !http_10,
    };
    let chunked = find("Transfer-Encoding").is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));

    let body = if chunked {
        match decode_chunked(&buffer[head_len..]).map_err(protocol_error)? {
            Some((body, consumed)) => {
                buffer.drain(..head_len + consumed);
                body
            }
            None => return Ok(None),
        }
    } else {
        let length = match find("Content-Length") {
            Some(value) => value
                .parse::<usize>()
                .map_err(|_| protocol_error(format!("invalid Content-Length {value:?}")))?,
            None if status == 204 || status == 304 || (100..200).contains(&status) => 0,
            // Without a length the body runs to the end of the connection; the Runtime API always
            // sends one, so this is treated as an empty body on a closing connection.
            None => 0,
        };
        if buffer.len() < head_len + length {
            buffer.reserve(head_len + length - buffer.len());
            return Ok(None);
        }
        let mut body = buffer.split_off(head_len);
        let rest = body.split_off(length);
        *buffer = rest;
        body
    };
    let keep_alive = keep_alive && (chunked || find("Content-Length").is_some() || status == 204);
    Ok(Some(Response {
        status,
        headers,
        body,
        keep_alive,
    }))
}

/// Decodes a chunked body; `None` while it is incomplete, else the body and the bytes consumed.
fn decode_chunked(data: &[u8]) -> std::result::Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut position = 0;
    loop {
        let Some(line_end) = find_crlf(&data[position..]) else {
            return Ok(None);
        };
        let size_line = std::str::from_utf8(&data[position..position + line_end]).map_err(|e| e.to_string())?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("invalid chunk size {size_text:?}"))?;
        position += line_end + 2;
        if size == 0 {
            // Skip trailers up to the empty line that ends the message.
            loop {
                let Some(end) = find_crlf(&data[position..]) else {
                    return Ok(None);
                };
                position += end + 2;
                if end == 0 {
                    return Ok(Some((body, position)));
                }
            }
        }
        if data.len() < position + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[position..position + size]);
        position += size + 2;
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|pair| pair == b"\r\n")
}

fn invocation_from(response: Response) -> Result<Invocation> {
    let mut invocation = Invocation {
        deadline_ms: response.header("Lambda-Runtime-Deadline-Ms").map_or(0, leading_number),
        invoked_function_arn: response
            .header("Lambda-Runtime-Invoked-Function-Arn")
            .unwrap_or_default()
            .to_owned(),
        trace_id: response.header("Lambda-Runtime-Trace-Id").map(str::to_owned),
        client_context: response.header("Lambda-Runtime-Client-Context").map(str::to_owned),
        cognito_identity: response.header("Lambda-Runtime-Cognito-Identity").map(str::to_owned),
        tenant_id: non_empty(response.header("Lambda-Runtime-Aws-Tenant-Id")),
        invocation_id: non_empty(response.header("Lambda-Runtime-Invocation-Id")),
        content_type: response.header("Content-Type").map(str::to_owned),
        ..Invocation::default()
    };
    invocation.request_id = match response.header("Lambda-Runtime-Aws-Request-Id") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            return Err(RuntimeApiError::Protocol {
                action: "getting the next invocation",
                detail: "the reply has no Lambda-Runtime-Aws-Request-Id header".into(),
            });
        }
    };
    invocation.body = response.body;
    Ok(invocation)
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|value| !value.is_empty()).map(str::to_owned)
}

/// Reads the leading decimal digits, as `strtoul` does: `"12abc"` is 12 and junk is 0.
fn leading_number(text: &str) -> u64 {
    text.bytes().take_while(u8::is_ascii_digit).fold(0u64, |value, digit| {
        value.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Option<Response> {
        let mut buffer = raw.to_vec();
        parse_response(&mut buffer, "test").unwrap()
    }

    #[test]
    fn content_length_body_is_read_and_the_rest_kept() {
        let mut buffer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP".to_vec();
        let response = parse_response(&mut buffer, "test").unwrap().unwrap();
        assert_eq!(response.body, b"{}");
        assert!(response.keep_alive);
        assert_eq!(buffer, b"HTTP");
    }

    #[test]
    fn partial_responses_wait_for_more() {
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Len").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n").is_none());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n3;x=y\r\na\":\r\n2\r\n1}\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(parse(raw).unwrap().body, b"{\"a\":1}");
    }

    #[test]
    fn connection_close_is_honoured() {
        let response = parse(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!response.keep_alive);
    }

    #[test]
    fn malformed_responses_are_errors() {
        let mut buffer = b"NOT HTTP\r\n\r\n".to_vec();
        assert!(parse_response(&mut buffer, "test").is_err());
        let mut buffer = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec();
        assert!(parse_response(&mut buffer, "test").is_err());
    }

    #[test]
    fn invocation_headers_are_read() {
        let raw = b"HTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id: r1\r\nLambda-Runtime-Deadline-Ms: 12abc\r\n\
            Lambda-Runtime-Aws-Tenant-Id: \r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}";
        let invocation = invocation_from(parse(raw).unwrap()).unwrap();
        assert_eq!(invocation.request_id, "r1");
        assert_eq!(invocation.deadline_ms, 12);
        assert_eq!(invocation.invoked_function_arn, "");
        assert_eq!(invocation.tenant_id, None);
        assert!(invocation.is_json());
    }

    #[test]
    fn a_reply_without_request_id_is_an_error() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert!(invocation_from(parse(raw).unwrap()).is_err());
    }

    #[test]
    fn json_detection_follows_the_media_type() {
        let with = |content_type: Option<&str>| Invocation {
            content_type: content_type.map(str::to_owned),
            ..Invocation::default()
        };
        assert!(with(None).is_json());
        assert!(with(Some("application/json")).is_json());
        assert!(with(Some("Application/JSON ; charset=utf-8")).is_json());
        assert!(!with(Some("application/octet-stream")).is_json());
    }

    #[test]
    fn leading_number_reads_like_strtoul() {
        assert_eq!(leading_number("1700000000000"), 1_700_000_000_000);
        assert_eq!(leading_number("junk"), 0);
        assert_eq!(leading_number(""), 0);
    }
}
