//! A stream whose reading and writing halves may be polled by two tasks.
//!
//! Why: streams propose their protocol with their first bytes (lazy
//! negotiation, see [`crate::network::start`]), and such a stream confirms
//! its protocol on its first read, which also flushes what was written. A
//! Yamux stream keeps one waker for room to send, so when a lane's reading
//! task flushed, it took the wake-up its writing task was waiting for, and the
//! writer waited for ever with its request already sent: a read through a
//! lane timed out after 20 s in one run in four of the hostile read test.
//! Every poll of a [`SplitSafe`] stream registers a waker that wakes both
//! halves; a wake-up a half did not need costs it one poll.
//!
//! Why it is never polled after an error: a stream whose lazy negotiation
//! failed (the peer refused the protocol, or the connection reset before it
//! confirmed) is left in a state that panics when polled again, and with two
//! halves the other one polls it next: a lane's writer closing after its
//! reader saw the refusal. Once a poll fails, every later poll gives the same
//! kind of error without touching the stream.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures::{AsyncRead, AsyncWrite};

/// `S`, with every poll waking both the reader and the writer.
#[derive(Debug)]
pub struct SplitSafe<S> {
    inner: S,
    halves: Arc<Halves>,
    waker: Waker,
    /// The kind of the first error a poll returned.
    failed: Option<io::ErrorKind>,
}

/// The last waker of each half.
#[derive(Debug, Default)]
struct Halves {
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
}

impl Halves {
    fn set(slot: &Mutex<Option<Waker>>, waker: &Waker) {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

impl Wake for Halves {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for slot in [&self.read, &self.write] {
            let waker = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<S> SplitSafe<S> {
    pub fn new(inner: S) -> Self {
        let halves = Arc::new(Halves::default());
        let waker = Waker::from(halves.clone());
        Self {
            inner,
            halves,
            waker,
            failed: None,
        }
    }

    /// Polls the inner stream with the waker of both halves, `cx`'s being
    /// `reading`'s or the writer's, unless a poll failed before.
    fn with_both<T>(
        &mut self,
        cx: &mut Context<'_>,
        reading: bool,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(kind, "the stream failed before")));
        }
        let slot = match reading {
            true => &self.halves.read,
            false => &self.halves.write,
        };
        Halves::set(slot, cx.waker());
        let mut both = Context::from_waker(&self.waker);
        let polled = poll(Pin::new(&mut self.inner), &mut both);
        if let Poll::Ready(Err(e)) = &polled {
            self.failed = Some(e.kind());
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SplitSafe<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.with_both(cx, true, |inner, cx| inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SplitSafe<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with_both(cx, false, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with_both(cx, false, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with_both(cx, false, |inner, cx| inner.poll_close(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A stream that keeps one waker, whichever half polled last, as a
    /// Yamux stream keeps one for room to send.
    #[derive(Default)]
    struct OneWaker(Option<Waker>);

    impl AsyncRead for OneWaker {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.0 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl AsyncWrite for OneWaker {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0 = Some(cx.waker().clone());
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A stream whose first read fails and that panics when polled again, as
    /// a lazily negotiated stream does once its negotiation failed.
    #[derive(Default)]
    struct FailsOnce(bool);

    impl AsyncRead for FailsOnce {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            assert!(!self.0, "polled after it failed");
            self.0 = true;
            Poll::Ready(Err(io::Error::other("protocol refused")))
        }
    }

    impl AsyncWrite for FailsOnce {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            assert!(!self.0, "polled after it failed");
            Poll::Ready(Ok(1))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            assert!(!self.0, "polled after it failed");
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            assert!(!self.0, "polled after it failed");
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn after_an_error_the_stream_is_never_polled_again() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let mut stream = SplitSafe::new(FailsOnce::default());
        let mut buf = [0u8; 4];
        let read = Pin::new(&mut stream).poll_read(&mut cx, &mut buf);
        assert!(matches!(read, Poll::Ready(Err(_))));
        assert!(matches!(
            Pin::new(&mut stream).poll_write(&mut cx, b"x"),
            Poll::Ready(Err(_))
        ));
        assert!(matches!(
            Pin::new(&mut stream).poll_close(&mut cx),
            Poll::Ready(Err(_))
        ));
        assert!(matches!(
            Pin::new(&mut stream).poll_read(&mut cx, &mut buf),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn a_wake_up_taken_by_the_reader_also_wakes_the_writer() {
        let (reader, writer) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (reader_waker, writer_waker) =
            (Waker::from(reader.clone()), Waker::from(writer.clone()));
        let mut stream = SplitSafe::new(OneWaker::default());
        let mut buf = [0u8; 4];
        let write = Pin::new(&mut stream).poll_write(&mut Context::from_waker(&writer_waker), b"x");
        assert!(write.is_pending());
        // The reader polls last: the inner stream now holds its waker only.
        let read =
            Pin::new(&mut stream).poll_read(&mut Context::from_waker(&reader_waker), &mut buf);
        assert!(read.is_pending());
        stream.inner.0.take().expect("a waker").wake();
        assert_eq!(reader.0.load(Ordering::SeqCst), 1, "the reader was woken");
        assert_eq!(writer.0.load(Ordering::SeqCst), 1, "so was the writer");
    }
}
