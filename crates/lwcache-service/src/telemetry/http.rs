//! A small blocking HTTP/1.1 client for OTLP/HTTP.
//!
//! The SDK exports from threads of its own and waits on each export, so a
//! blocking client is right there and needs no async runtime. One request
//! per connection (`Connection: close`): exports are seconds apart, and a
//! connection that cannot outlive its request cannot go stale. Plain
//! `http://` only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// The largest response body read; OTLP answers are a few bytes.
const MAX_BODY: u64 = 4 * 1024 * 1024;
/// The largest response head read.
const MAX_HEAD_LINE: u64 = 16 * 1024;

/// Why an OTLP URL cannot be used, or `Ok`.
pub(super) fn check_url(url: &str) -> Result<(), &'static str> {
    let uri: opentelemetry_http::Request<()> = Request::builder()
        .uri(url)
        .body(())
        .map_err(|_| "not a valid URL")?;
    let uri = uri.uri();
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err("https is not supported: point it at a collector over http://");
        }
        _ => return Err("expected an http:// URL"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host");
    }
    Ok(())
}

/// The client the OTLP exporters use.
#[derive(Debug, Clone)]
pub(super) struct Client {
    timeout: Duration,
}

impl Client {
    /// A client whose connect, write and read each give up after `timeout`.
    pub(super) fn new(timeout: Duration) -> Self {
        Client { timeout }
    }
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("unsupported URL {0}: only http:// with a host is supported")]
    Url(String),
    #[error("cannot connect to {0}")]
    Connect(String),
    #[error("I/O error talking to the OTLP endpoint: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
}

#[async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        Ok(self.post(&request)?)
    }
}

impl Client {
    fn post(&self, request: &Request<Bytes>) -> Result<Response<Bytes>, Error> {
        let uri = request.uri();
        let host = match (uri.scheme_str(), uri.host()) {
            (Some("http"), Some(host)) if !host.is_empty() => host,
            _ => return Err(Error::Url(uri.to_string())),
        };
        let port = uri.port_u16().unwrap_or(80);
        let mut stream = self.connect(host, port)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;

        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let authority = uri.authority().map_or(host, |a| a.as_str());
        let body = request.body();
        let mut head = Vec::with_capacity(256);
        write!(
            head,
            "{} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
            request.method(),
            body.len()
        )?;
        for (name, value) in request.headers() {
            let name = name.as_str();
            if ["host", "content-length", "connection", "transfer-encoding"].contains(&name) {
                continue;
            }
            // Header values cannot hold CR or LF: `http` refuses them.
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        stream.write_all(&head)?;
        stream.write_all(body)?;
        stream.flush()?;
        read_response(BufReader::new(stream))
    }

    fn connect(&self, host: &str, port: u16) -> Result<TcpStream, Error> {
        let target = format!("{host}:{port}");
        // `Uri::host` keeps an IPv6 literal's brackets; the resolver wants
        // them off.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = (bare, port).to_socket_addrs()?;
        for addr in addrs {
            if let Ok(stream) = TcpStream::connect_timeout(&addr, self.timeout) {
                return Ok(stream);
            }
        }
        Err(Error::Connect(target))
    }
}

fn read_line(reader: &mut impl BufRead) -> Result<String, Error> {
    let mut line = Vec::new();
    reader.take(MAX_HEAD_LINE).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(Error::Malformed("a line is unterminated or too long"));
    }
    let line = String::from_utf8(line).map_err(|_| Error::Malformed("a line is not UTF-8"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_response(mut reader: impl BufRead) -> Result<Response<Bytes>, Error> {
    let status_line = read_line(&mut reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(Error::Malformed("no status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Malformed("not an HTTP/1.x response"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| Error::Malformed("the status code is not a number"))?;
    let mut builder = Response::builder().status(status);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for _ in 0..256 {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            let body = match (chunked, length) {
                (true, _) => read_chunked(&mut reader)?,
                (false, Some(n)) if n > MAX_BODY => {
                    return Err(Error::Malformed("the body is too large"));
                }
                (false, Some(n)) => {
                    let mut body = Vec::new();
                    reader.take(n).read_to_end(&mut body)?;
                    if body.len() as u64 != n {
                        return Err(Error::Malformed("the body ended early"));
                    }
                    body
                }
                (false, None) => {
                    let mut body = Vec::new();
                    reader.take(MAX_BODY).read_to_end(&mut body)?;
                    body
                }
            };
            return builder
                .body(Bytes::from(body))
                .map_err(|_| Error::Malformed("a header is not valid HTTP"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(Error::Malformed("a header has no colon"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| Error::Malformed("Content-Length is not a number"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
        builder = builder.header(name, value);
    }
    Err(Error::Malformed("too many headers"))
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| Error::Malformed("a chunk size is not hex"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + size > MAX_BODY {
            return Err(Error::Malformed("the body is too large"));
        }
        let before = body.len();
        reader.take(size).read_to_end(&mut body)?;
        if (body.len() - before) as u64 != size {
            return Err(Error::Malformed("a chunk ended early"));
        }
        if !read_line(reader)?.is_empty() {
            return Err(Error::Malformed("a chunk is not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        assert_eq!(check_url("http://127.0.0.1:4318/v1/traces"), Ok(()));
        assert!(check_url("https://collector:4318/v1/traces").is_err());
        assert!(check_url("collector:4318").is_err());
        assert!(check_url("http:///v1/traces").is_err());
    }

    #[test]
    fn responses_with_a_length_chunks_or_none_are_read() {
        let fixed = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcIGNORED"[..])
            .expect("valid");
        assert_eq!(
            (fixed.status().as_u16(), &fixed.body()[..]),
            (200, &b"abc"[..])
        );
        let chunked = read_response(
            &b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n"[..],
        )
        .expect("valid");
        assert_eq!(
            (chunked.status().as_u16(), &chunked.body()[..]),
            (400, &b"abc"[..])
        );
        let to_eof = read_response(&b"HTTP/1.0 204 No Content\r\n\r\nxy"[..]).expect("valid");
        assert_eq!(&to_eof.body()[..], b"xy");
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        ] {
            assert!(
                read_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
