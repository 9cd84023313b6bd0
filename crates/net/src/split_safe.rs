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
        }
    }

    /// Polls the inner stream with the waker of both halves, `cx`'s being
    /// `reading`'s or the writer's.
    fn with_both<T>(
        &mut self,
        cx: &mut Context<'_>,
        reading: bool,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T>
    where
        S: Unpin,
    {
        let slot = match reading {
            true => &self.halves.read,
            false => &self.halves.write,
        };
        Halves::set(slot, cx.waker());
        let mut both = Context::from_waker(&self.waker);
        poll(Pin::new(&mut self.inner), &mut both)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SplitSafe<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with_both(cx, true, |inner, cx| inner.poll_read(cx, buf))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SplitSafe<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with_both(cx, false, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with_both(cx, false, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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
        ) -> Poll<std::io::Result<usize>> {
            self.0 = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl AsyncWrite for OneWaker {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0 = Some(cx.waker().clone());
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
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
