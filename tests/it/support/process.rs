//! The gateway as users run it: `toolgate serve` as a child process, ready once it prints
//! its endpoint, with its log lines collected, and stopped by a signal.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The gateway binary built with the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_toolgate");

/// Log lines of a process, as they arrive.
#[derive(Default)]
struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    grew: Condvar,
}

/// A running `toolgate serve`, killed when dropped.
pub struct GatewayProcess {
    child: Child,
    /// `http://127.0.0.1:<port>/mcp`, as the process printed it.
    pub url: String,
    lines: Arc<Lines>,
}

impl GatewayProcess {
    /// Starts `toolgate serve --log-format json --config <config>` with `env` added, and
    /// waits (up to a minute) until it prints its endpoint.
    pub fn spawn(config: &Path, env: &[(&str, &str)]) -> GatewayProcess {
        Self::spawn_with(config, &[], env)
    }

    /// [`GatewayProcess::spawn`] with more `serve` arguments (e.g. `--watch`).
    pub fn spawn_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> GatewayProcess {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start toolgate serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Lines::default());
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lines.lock().unwrap().0.push(line);
                sink.grew.notify_all();
            }
            sink.lines.lock().unwrap().1 = true;
            sink.grew.notify_all();
        });
        let mut process = GatewayProcess {
            child,
            url: String::new(),
            lines,
        };
        let banner = process.wait_for_log("MCP endpoint: ", Duration::from_secs(60));
        process.url = banner
            .trim()
            .strip_prefix("MCP endpoint: ")
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the banner names the endpoint")
            .to_string();
        process
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "kill({signal})"
        );
    }

    /// The first log line at or after line `from` that contains `needle`, waiting for it
    /// up to `timeout` (panics with the log when it does not come).
    pub fn wait_for_log_from(&self, from: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lines.lines.lock().unwrap();
        loop {
            if let Some(line) = guard.0.iter().skip(from).find(|l| l.contains(needle)) {
                return line.clone();
            }
            let now = Instant::now();
            if guard.1 || now >= deadline {
                panic!(
                    "toolgate never logged {needle:?}; its log:\n{}",
                    guard.0.join("\n")
                );
            }
            guard = self
                .lines
                .grew
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// [`GatewayProcess::wait_for_log_from`] the first line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_from(0, needle, timeout)
    }

    /// How many log lines have arrived so far.
    pub fn log_len(&self) -> usize {
        self.lines.lines.lock().unwrap().0.len()
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lines.lock().unwrap().0.clone()
    }

    /// SIGTERM, then waits for the exit and the end of the log.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let mut guard = self.lines.lines.lock().unwrap();
        while !guard.1 {
            guard = self.lines.grew.wait(guard).unwrap();
        }
        (status, guard.0.clone())
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
