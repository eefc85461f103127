//! The one HTTP/1.1 client the stand-in needs (webhook deliveries and the SDK client): plain
//! `http://` over TCP, one connection per request, no TLS, so no crypto provider to install.

use std::io;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What the other side answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0:?} is not an absolute http:// URL (the stand-in speaks plain HTTP only)")]
    Url(String),
    #[error("could not connect to {authority}")]
    Connect {
        authority: String,
        #[source]
        source: io::Error,
    },
    #[error("the request could not be built")]
    Request(#[source] hyper::http::Error),
    #[error("the HTTP exchange failed")]
    Http(#[source] hyper::Error),
}

/// Sends one request to `url` and reads the whole answer.
pub(crate) async fn send(
    method: Method,
    url: &str,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<Reply, TransportError> {
    let uri: Uri = url.parse().map_err(|_| TransportError::Url(url.to_owned()))?;
    let authority = match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(authority)) => authority.as_str().to_owned(),
        _ => return Err(TransportError::Url(url.to_owned())),
    };
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let address = if uri.port().is_some() { authority.clone() } else { format!("{authority}:80") };
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|source| TransportError::Connect { authority: authority.clone(), source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(TransportError::Http)?;
    // The connection ends with the exchange; its own error surfaces through `send_request`.
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(target).header(HOST, authority);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body)).map_err(TransportError::Request)?;
    let response = sender.send_request(request).await.map_err(TransportError::Http)?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(TransportError::Http)?.to_bytes();
    Ok(Reply { status, body })
}
