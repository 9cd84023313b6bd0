//! Where log lines go: standard error, or above the prompt while it is open.
//!
//! A node's log lines arrive at any moment, from any thread. Written straight to
//! the terminal while the prompt waits for a line, they landed on the prompt
//! line itself (`PeerVault> 2026-12-06T... WARN cannot reach bootstrap peer`) and
//! garbled what the user was typing. While [`above_prompt`] is in force, each
//! line goes through the line editor's external printer instead, which clears
//! the prompt, prints the line and draws the prompt (and the typed text) again.

use std::io::{self, Write};
use std::sync::Mutex;

use rustyline::ExternalPrinter;
use tracing_subscriber::fmt::MakeWriter;

type Printer = Box<dyn ExternalPrinter + Send>;

/// The prompt's printer while the prompt is open.
static PRINTER: Mutex<Option<Printer>> = Mutex::new(None);

/// The log's writer: a line at a time, to the prompt's printer or to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOutput;

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One formatted log event, sent as a whole when dropped.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        if let Ok(mut printer) = PRINTER.lock()
            && let Some(printer) = printer.as_mut()
        {
            let text = String::from_utf8_lossy(&self.0);
            if printer.print(text.trim_end().to_string()).is_ok() {
                return;
            }
        }
        let _ = io::stderr().write_all(&self.0);
    }
}

/// Sends log lines above the prompt until the returned guard is dropped.
pub fn above_prompt(printer: impl ExternalPrinter + Send + 'static) -> AbovePrompt {
    if let Ok(mut slot) = PRINTER.lock() {
        *slot = Some(Box::new(printer));
    }
    AbovePrompt(())
}

/// While alive, log lines go above the prompt.
#[must_use]
pub struct AbovePrompt(());

impl Drop for AbovePrompt {
    fn drop(&mut self) {
        if let Ok(mut slot) = PRINTER.lock() {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl ExternalPrinter for Collect {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            self.0.lock().unwrap().push(msg);
            Ok(())
        }
    }

    #[test]
    fn whole_lines_go_to_the_prompt_while_it_is_open() {
        let seen = Collect::default();
        let guard = above_prompt(seen.clone());
        {
            let mut line = LogOutput.make_writer();
            write!(line, "2026-12-06 WARN ").unwrap();
            writeln!(line, "cannot reach bootstrap peer").unwrap();
        }
        drop(guard);
        // After the prompt closed, lines go to stderr again.
        writeln!(LogOutput.make_writer(), "to stderr").unwrap();
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["2026-12-06 WARN cannot reach bootstrap peer"]
        );
    }
}
