//! Progress bars for transfers: bytes, rate and time left, on standard error, only
//! when it is a terminal and the transfer is worth watching (over 1 MiB), and
//! never with `--quiet`. Scripts and pipes see nothing of it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use peervault_node::CopyProgress;

/// Transfers smaller than this finish before a bar would be readable.
const MIN_BYTES: u64 = 1024 * 1024;

/// A bar, or nothing when it should not be shown.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `total` bytes (unknown for standard input) labelled `what`.
    pub fn bytes(total: Option<u64>, what: &str, quiet: bool) -> Progress {
        let worth_it = total.is_none_or(|t| t > MIN_BYTES);
        if quiet || !worth_it || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}"
        } else {
            "{msg} {bytes} {binary_bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        Progress(Some(bar))
    }

    /// `done` bytes so far.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    /// Replaces the label (e.g. "copying to peers" once the bytes are in).
    pub fn note(&self, text: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(text.to_string());
        }
    }

    /// Shows the copies of a stored file durable so far.
    pub fn copies(&self, progress: CopyProgress) {
        self.note(&format!(
            "stored; {} of {} copies durable",
            progress.copies, progress.target
        ));
    }

    /// Removes the bar, leaving the line for the result.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that tells `on_read` how many bytes have been read from it so far,
/// after every read (for progress while a store runs).
pub struct Counted<R, F> {
    inner: R,
    done: u64,
    on_read: F,
}

impl<R, F: FnMut(u64)> Counted<R, F> {
    pub fn new(inner: R, on_read: F) -> Self {
        Self {
            inner,
            done: 0,
            on_read,
        }
    }
}

impl<R: tokio::io::AsyncRead + Unpin, F: FnMut(u64) + Unpin> tokio::io::AsyncRead
    for Counted<R, F>
{
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &polled {
            let read = (buf.filled().len() - before) as u64;
            self.done += read;
            let done = self.done;
            (self.on_read)(done);
        }
        polled
    }
}
