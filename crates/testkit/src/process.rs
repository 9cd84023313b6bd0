//! A `peervault` node process, driven from outside.
//!
//! The process gets a clean environment (no `PEERVAULT_KEY`, `RUST_LOG` or
//! colours from the caller's shell), writes everything it prints to a log file
//! beside its data dir, and counts as ready once its control socket accepts a
//! connection (what every client command needs, and the last thing a node sets
//! up). It is killed when its handle drops.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// How to start a node: the program and everything it is given.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `peervault` binary.
    pub bin: PathBuf,
    /// Runs the binary through another program (`ip netns exec NAME`).
    pub wrapper: Vec<OsString>,
    pub data_dir: PathBuf,
    /// Flags after `--data-dir`.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Where the process's output goes (appended: a restart keeps the earlier
    /// runs' lines).
    pub log: PathBuf,
}

impl Launch {
    /// `bin` on `data_dir`, its log beside the data dir (`<data dir>.log`).
    pub fn new(bin: impl Into<PathBuf>, data_dir: &Path) -> Launch {
        Launch {
            bin: bin.into(),
            wrapper: Vec::new(),
            data_dir: data_dir.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            log: data_dir.with_extension("log"),
        }
    }

    /// Adds flags.
    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Launch {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Launch {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the node inside network namespace `netns` (`ip netns exec`).
    pub fn in_netns(mut self, netns: &str) -> Launch {
        self.wrapper = ["ip", "netns", "exec", netns]
            .into_iter()
            .map(OsString::from)
            .collect();
        self
    }

    /// The command, not yet spawned.
    fn command(&self) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(&self.bin);
                cmd
            }
            None => Command::new(&self.bin),
        };
        cmd.env_remove("PEERVAULT_KEY")
            .env_remove("PEERVAULT_JOIN")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args);
        cmd
    }
}

/// Why a node did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("the node exited with {status}:\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("the node did not answer within {within:?}:\n{log}")]
    Timeout { within: Duration, log: String },
}

/// A running (or exited) node process; killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    launch: Launch,
    child: Option<Child>,
    paused: bool,
}

/// How much of the log an error shows.
const LOG_TAIL_BYTES: usize = 6000;

impl NodeProcess {
    /// Starts the node without waiting for it (for tests of start-up failures).
    pub fn spawn(launch: Launch) -> Result<NodeProcess, StartError> {
        let mut node = NodeProcess {
            launch,
            child: None,
            paused: false,
        };
        node.spawn_again()?;
        Ok(node)
    }

    /// Starts the node and waits until its control socket answers.
    pub fn start(launch: Launch, within: Duration) -> Result<NodeProcess, StartError> {
        let mut node = NodeProcess::spawn(launch)?;
        node.wait_ready(within)?;
        Ok(node)
    }

    fn spawn_again(&mut self) -> Result<(), StartError> {
        let spawn_error = |source| StartError::Spawn {
            bin: self.launch.bin.clone(),
            source,
        };
        if let Some(parent) = self.launch.log.parent() {
            std::fs::create_dir_all(parent).map_err(spawn_error)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.launch.log)
            .map_err(spawn_error)?;
        let child = self
            .launch
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn_error)?)
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// Waits until the control socket accepts a connection, failing early if
    /// the process exits.
    pub fn wait_ready(&mut self, within: Duration) -> Result<(), StartError> {
        let socket = self.launch.data_dir.join("control.sock");
        let deadline = Instant::now() + within;
        loop {
            // Paths too long for sockaddr_un are reached through /proc by the
            // client; here it is enough that the node has bound the socket.
            let too_long = socket.as_os_str().len() > 107;
            if (too_long && socket.exists()) || UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                return Err(StartError::Exited {
                    status,
                    log: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(StartError::Timeout {
                    within,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.launch.data_dir
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How it exited, if it has.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// True while the process has not exited (a paused one is running).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exit_status().is_none()
    }

    /// Everything the node printed, all runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.launch.log).unwrap_or_default()
    }

    /// The end of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let mut start = text.len().saturating_sub(LOG_TAIL_BYTES);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid().and_then(|p| Pid::from_raw(p as i32)) {
            let _ = kill_process(pid, signal);
        }
    }

    /// SIGSTOP: the process freezes with its sockets open and answers nothing.
    pub fn pause(&mut self) {
        self.signal(Signal::STOP);
        self.paused = true;
    }

    /// True between [`NodeProcess::pause`] and [`NodeProcess::resume`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub fn resume(&mut self) {
        self.signal(Signal::CONT);
        self.paused = false;
    }

    /// Waits for the process to exit by itself; `None` if it did not within
    /// `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit_status() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit (at most `within`); `None` if it did not
    /// stop.
    pub fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.paused {
            self.resume();
        }
        self.child.as_ref()?;
        self.signal(Signal::TERM);
        self.wait_exit(within)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process if it runs, then starts it again on its data dir and
    /// waits until it answers.
    pub fn restart(&mut self, within: Duration) -> Result<(), StartError> {
        self.kill9();
        self.spawn_again()?;
        self.wait_ready(within)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
