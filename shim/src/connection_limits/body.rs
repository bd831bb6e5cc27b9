//! Reading a whole body, request or answer, with a size limit (and a deadline): a peer that
//! sends without end or more slowly than it announced costs a bounded amount of memory and
//! time.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use std::time::Duration;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It is larger than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// It did not arrive in time.
    #[error("the body did not arrive within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The connection broke.
    #[error("{0}")]
    Broken(String),
}

/// The whole of `body`, refused as soon as it grows past `max` bytes.
pub async fn read_limited<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge(max)),
        Err(e) => Err(BodyError::Broken(e.to_string())),
    }
}

/// The whole of `body`, at most `max` bytes, all of it within `timeout`.
pub async fn read_body<B>(body: B, max: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::time::timeout(timeout, read_limited(body, max))
        .await
        .map_err(|_| BodyError::TimedOut(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::body::Frame;
    use std::convert::Infallible;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body that sends this chunk for ever, or (`None`) never sends anything.
    struct Unending(Option<Bytes>);

    impl Body for Unending {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match &self.0 {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk.clone())))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(read_limited(body, 5).await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_limit() {
        let e = read_limited(Unending(Some(Bytes::from(vec![0u8; 64 << 10]))), 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(e, BodyError::TooLarge(n) if n == 1 << 20), "{e}");
    }

    #[tokio::test]
    async fn a_body_that_never_ends_times_out() {
        let e = read_body(Unending(None), 1 << 20, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(e, BodyError::TimedOut(_)), "{e}");
        assert!(e.to_string().contains("within 50ms"), "{e}");
    }
}
