//! The daemon's client: HTTP/1.1 with JSON bodies over its unix socket, one connection per call.

use super::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use mini_shim::connection_limits::read_limited;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

/// The largest answer read from the daemon (every listing of a large cluster fits).
pub const MAX_ANSWER: usize = 64 << 20;

/// A client of the daemon listening on one socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A response body read frame by frame (the log stream).
pub struct Stream {
    body: Incoming,
    request: String,
    socket: PathBuf,
}

impl Stream {
    /// The next piece of the body; `None` at its end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::Transport {
                        socket: self.socket.clone(),
                        detail: format!("reading the answer to {}: {e}", self.request),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

impl Client {
    /// A client of the daemon at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket it calls.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn transport(&self, detail: String) -> Error {
        Error::Transport {
            socket: self.socket.clone(),
            detail,
        }
    }

    /// Sends one request; a non-2xx answer becomes [`Error::Api`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Response<Incoming>, Error> {
        let request = format!("{method} {path}");
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| Error::Unreachable {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(format!("{request}: {e}")))?;
        // The connection's own errors surface through the request and body futures below.
        tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "mini-sched");
        let bytes = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let req = builder
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| Error::Usage(format!("cannot build the request {request}: {e}")))?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| self.transport(format!("{request}: {e}")))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = collect(response, &request, self).await?;
        Err(
            match serde_json::from_slice::<crate::api::ErrorBody>(&body) {
                Ok(e) => Error::Api {
                    status: status.as_u16(),
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => Error::Api {
                    status: status.as_u16(),
                    code: String::new(),
                    message: format!(
                        "{request}: {status}: {}",
                        String::from_utf8_lossy(&body).trim()
                    ),
                },
            },
        )
    }

    /// Sends one request and reads the whole answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Vec<u8>, Error> {
        let request = format!("{method} {path}");
        let response = self.send(method, path, body).await?;
        collect(response, &request, self).await
    }

    /// `GET path`, its JSON answer decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let body = self.call(Method::GET, path, None).await?;
        decode(&body, &format!("GET {path}"))
    }

    /// `GET path`, the answer's bytes as received.
    pub async fn get_raw(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON (or no body), its JSON answer decoded.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let body = body.map(|b| {
            (
                "application/json",
                serde_json::to_vec(b).expect("request bodies serialize"),
            )
        });
        let answer = self.call(Method::POST, path, body).await?;
        decode(&answer, &format!("POST {path}"))
    }

    /// `POST path` with a text body (a workload spec), its JSON answer decoded.
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> Result<T, Error> {
        let body = Some(("text/plain; charset=utf-8", text.into_bytes()));
        let answer = self.call(Method::POST, path, body).await?;
        decode(&answer, &format!("POST {path}"))
    }

    /// `DELETE path`, its JSON answer decoded.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let answer = self.call(Method::DELETE, path, None).await?;
        decode(&answer, &format!("DELETE {path}"))
    }

    /// `GET path`, the answer read as it arrives.
    pub async fn stream(&self, path: &str) -> Result<Stream, Error> {
        let response = self.send(Method::GET, path, None).await?;
        Ok(Stream {
            body: response.into_body(),
            request: format!("GET {path}"),
            socket: self.socket.clone(),
        })
    }
}

/// The whole answer, at most [`MAX_ANSWER`] bytes.
async fn collect(
    response: Response<Incoming>,
    request: &str,
    client: &Client,
) -> Result<Vec<u8>, Error> {
    let bytes = read_limited(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| client.transport(format!("reading the answer to {request}: {e}")))?;
    Ok(bytes.to_vec())
}

fn decode<T: DeserializeOwned>(body: &[u8], request: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Unreadable {
        request: request.to_string(),
        detail: e.to_string(),
    })
}

/// Percent-encodes `text` for a path segment or a query value: everything but unreserved
/// characters (letters, digits, `-._~`).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_paths() {
        assert_eq!(encode("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(encode("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable() {
        let dir = std::env::temp_dir().join(format!("mini-sched-cli-{}", std::process::id()));
        let client = Client::new(dir.join("absent.sock"));
        let err = client
            .get::<serde_json::Value>("/v1/nodes")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.sock"), "{err}");
    }
}
