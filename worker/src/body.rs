//! The one body type of every request and response in a pipeline, and ways to make one.
//!
//! Apps, filters and the server all speak `http::Request<Body>` / `http::Response<Body>`, so a
//! filter can wrap any app and the proxy can stream a client's body upstream unchanged. A
//! [`Body`] is a boxed `http_body::Body` of `Bytes` frames; it need not be `Sync`, so a stream
//! produced by any async code fits. (It is a struct rather than a type alias of the boxed body
//! so that trait-object lifetimes never leak into service signatures.)

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An error inside a body stream (the client went away, the upstream failed, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request and response.
#[derive(Debug)]
pub struct Body(UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    /// Any body with `Bytes` frames.
    pub fn new<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body(body.map_err(Into::into).boxed_unsync())
    }

    /// A body holding `data`.
    pub fn full(data: impl Into<Bytes>) -> Body {
        Body::new(Full::new(data.into()))
    }

    /// An empty body.
    pub fn empty() -> Body {
        Body::new(Empty::<Bytes>::new())
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A body holding `data`.
pub fn full(data: impl Into<Bytes>) -> Body {
    Body::full(data)
}

/// A body that yields `chunks` one frame at a time (each poll returns the next).
pub fn chunks(chunks: impl IntoIterator<Item = Bytes>) -> Body {
    frames(chunks.into_iter().map(|chunk| Ok(Frame::data(chunk))))
}

/// A body that yields `frames` (data, trailers or an error) one at a time.
pub fn frames(frames: impl IntoIterator<Item = Result<Frame<Bytes>, BoxError>>) -> Body {
    Body::new(Frames(frames.into_iter().collect()))
}

/// The body behind [`frames`].
#[derive(Debug)]
struct Frames(std::collections::VecDeque<Result<Frame<Bytes>, BoxError>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front())
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}
