//! Progress bars for transfers: bytes, rate and time left, on standard error, only
//! when it is a terminal and the transfer is worth watching (over 1 MiB), and
//! never with `--quiet`. Scripts and pipes see nothing of it.
//!
//! Sizes and rates are written as every other figure of PeerVault is
//! ([`HumanSize`]: "MB", 1024-based), not in indicatif's "MiB". The rate is
//! measured over the last few seconds by [`RateWindow`] and the bar is redrawn
//! on a timer, so a stalled transfer says "stalled" instead of showing the
//! last rate it had (indicatif's estimate only moves when bytes arrive).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::style::ProgressTracker;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use peervault_node::{CopyProgress, HumanSize};

/// Transfers smaller than this finish before a bar would be readable.
const MIN_BYTES: u64 = 1024 * 1024;

/// How far back the shown rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// With no byte for this long, the bar says the transfer is stalled.
const STALL_AFTER: Duration = Duration::from_secs(2);

/// How often the bar is redrawn even when no byte arrived.
const REDRAW: Duration = Duration::from_millis(250);

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
            "{msg} [{bar:30}] {done}/{size} {rate}"
        } else {
            "{msg} {done} {rate}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            let style = style
                .progress_chars("=> ")
                .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", HumanSize(s.pos()));
                })
                .with_key("size", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{}", HumanSize(s.len().unwrap_or(0)));
                })
                .with_key("rate", RateKey(RateWindow::default()));
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar.enable_steady_tick(REDRAW);
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

/// The rate of the last [`RATE_WINDOW`] of a transfer, from samples of its
/// position.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    samples: VecDeque<(Instant, u64)>,
    /// When the position last moved.
    moved: Option<Instant>,
    len: Option<u64>,
}

impl RateWindow {
    /// Records that `pos` bytes of `len` (if known) are done at `now`.
    pub fn sample(&mut self, pos: u64, len: Option<u64>, now: Instant) {
        self.len = len;
        if self.samples.back().is_none_or(|&(_, last)| last != pos) {
            self.moved = Some(now);
        }
        self.samples.push_back((now, pos));
        while let Some(&(at, _)) = self.samples.front() {
            if now.duration_since(at) > RATE_WINDOW && self.samples.len() > 2 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes per second over the window, `None` before there is one.
    pub fn per_second(&self) -> Option<f64> {
        let (&(first, from), &(last, to)) = (self.samples.front()?, self.samples.back()?);
        let seconds = last.duration_since(first).as_secs_f64();
        (seconds > 0.2).then(|| to.saturating_sub(from) as f64 / seconds)
    }

    /// What the bar shows: the rate and time left, or how long nothing arrived.
    pub fn describe(&self, now: Instant) -> String {
        let stalled = self
            .moved
            .map(|at| now.duration_since(at))
            .filter(|d| *d >= STALL_AFTER);
        if let Some(for_how_long) = stalled {
            return format!("stalled {}s", for_how_long.as_secs());
        }
        let Some(rate) = self.per_second() else {
            return String::new();
        };
        let mut text = format!("{}/s", HumanSize(rate as u64));
        let done = self.samples.back().map_or(0, |&(_, pos)| pos);
        if let Some(left) = self
            .len
            .map(|len| len.saturating_sub(done))
            .filter(|_| rate >= 1.0)
        {
            let _ = write!(text, " {}s left", (left as f64 / rate).ceil() as u64);
        }
        text
    }
}

/// The bar's `{rate}` key.
#[derive(Clone)]
struct RateKey(RateWindow);

impl ProgressTracker for RateKey {
    fn clone_box(&self) -> Box<dyn ProgressTracker> {
        Box::new(self.clone())
    }

    fn tick(&mut self, state: &ProgressState, now: Instant) {
        self.0.sample(state.pos(), state.len(), now);
    }

    fn reset(&mut self, _: &ProgressState, _: Instant) {
        self.0 = RateWindow::default();
    }

    fn write(&self, _: &ProgressState, w: &mut dyn std::fmt::Write) {
        let _ = w.write_str(&self.0.describe(Instant::now()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_transfer_says_so_instead_of_its_last_rate() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut window = RateWindow::default();
        // 1 MB every 100 ms for a second: 10 MB/s, in MB as every figure is.
        for step in 0..=10 {
            window.sample(step << 20, Some(100 << 20), at(step * 100));
        }
        let shown = window.describe(at(1000));
        assert!(shown.starts_with("10.00 MB/s"), "{shown}");
        assert!(shown.ends_with(" 9s left"), "{shown}");
        // Then nothing arrives: the redraws keep sampling the same position.
        for tick in 0..12 {
            window.sample(10 << 20, Some(100 << 20), at(1250 + tick * 250));
        }
        assert_eq!(window.describe(at(4000)), "stalled 3s");
        // Bytes again: a rate, from the window's samples only.
        window.sample(11 << 20, Some(100 << 20), at(4100));
        let shown = window.describe(at(4100));
        assert!(
            shown.ends_with("left") && !shown.contains("stalled"),
            "{shown}"
        );
    }

    #[test]
    fn no_rate_before_there_is_a_window() {
        let now = Instant::now();
        let mut window = RateWindow::default();
        assert_eq!(window.describe(now), "");
        window.sample(5, None, now);
        assert_eq!(window.describe(now), "");
    }
}
