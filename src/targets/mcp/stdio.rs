//! An upstream MCP server the gateway spawns and talks to over stdio (one JSON-RPC message
//! per line). One process serves every caller; requests are multiplexed by id. The process
//! is supervised: when it exits, the calls waiting on it fail at once, and the next request
//! starts it again, waiting at least the current backoff (1 s, doubling to 30 s while it
//! keeps failing). Its stderr goes to the log, line by line, bounded in length and rate.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, mpsc};

use super::Progress;
use super::wire::{self, InFlight, McpError};
use crate::mcp::{LEGACY_VERSIONS, MODERN_VERSION};

/// Longest stderr line logged (the rest is cut).
const MAX_STDERR_LINE: usize = 2048;
/// Most stderr lines logged per minute; beyond, they are counted and summarized.
const STDERR_LINES_PER_MINUTE: u32 = 120;
/// Longest message line read from the server.
const MAX_LINE: usize = 16 << 20;

/// How to start the server.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// One running process.
struct Running {
    writer: mpsc::Sender<Vec<u8>>,
    pending: Arc<InFlight>,
    version: &'static str,
    alive: Arc<std::sync::atomic::AtomicBool>,
    child: Arc<tokio::sync::Mutex<Child>>,
}

impl Drop for StdioUpstream {
    /// A target that is gone (removed or changed by a reload) stops its process: its reader
    /// task would otherwise keep it alive.
    fn drop(&mut self) {
        if let Ok(mut current) = self.current.try_lock()
            && let Some(running) = current.take()
            && let Ok(mut child) = running.child.try_lock()
        {
            let _ = child.start_kill();
        }
    }
}

/// A supervised stdio server.
pub(super) struct StdioUpstream {
    target: Arc<str>,
    launch: Launch,
    forced: Option<&'static str>,
    current: tokio::sync::Mutex<Option<Arc<Running>>>,
    next_id: AtomicU64,
    /// When the process may be started again, and the backoff after that.
    restart: Mutex<(Instant, Duration)>,
    /// Signalled on `notifications/tools/list_changed`.
    list_changed: Arc<Notify>,
    meta: String,
}

impl StdioUpstream {
    pub(super) fn new(
        target: Arc<str>,
        launch: Launch,
        forced: Option<&str>,
        list_changed: Arc<Notify>,
    ) -> Self {
        Self {
            target,
            launch,
            forced: forced.and_then(|v| {
                crate::mcp::SUPPORTED_VERSIONS
                    .iter()
                    .copied()
                    .find(|s| *s == v)
            }),
            current: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            restart: Mutex::new((Instant::now(), Duration::from_secs(1))),
            list_changed,
            meta: wire::modern_meta(),
        }
    }

    /// The revision the running process speaks, if one runs.
    pub(super) async fn version(&self) -> Option<&'static str> {
        self.current
            .lock()
            .await
            .as_ref()
            .filter(|r| r.alive.load(Ordering::Relaxed))
            .map(|r| r.version)
    }

    /// Sends one request and returns its result, starting the process when none runs.
    pub(super) async fn request(
        &self,
        method: &str,
        params: &[u8],
        timeout: Duration,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let work = async {
            let running = self.running().await?;
            self.call(&running, method, Some(params), progress).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(McpError::Timeout(timeout)))
    }

    /// Sends request `method` and waits for its answer. When the wait is given up (the
    /// caller went away, or the timeout passed), the server is sent
    /// `notifications/cancelled`: stdio has no stream to close.
    async fn call(
        &self,
        running: &Running,
        method: &str,
        params: Option<&[u8]>,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let meta = (running.version == MODERN_VERSION).then_some(self.meta.as_str());
        let token = progress.map(|(t, _)| t);
        let mut line = wire::frame_with_progress(Some(id), method, params, meta, token);
        line.push(b'\n');
        let rx = running.pending.wait(id, progress);
        if running.writer.send(line).await.is_err() {
            running.pending.forget(id, token);
            return Err(McpError::Transport(format!(
                "`{}` is not running",
                self.launch.command
            )));
        }
        let mut guard = Cancel {
            running,
            id,
            token,
            armed: method != "initialize",
        };
        let outcome = rx.await;
        guard.armed = false;
        running.pending.forget(id, token);
        outcome.unwrap_or_else(|_| {
            Err(McpError::Transport(format!(
                "`{}` exited",
                self.launch.command
            )))
        })
    }

    /// The live process, started (and initialized) when none is.
    async fn running(&self) -> Result<Arc<Running>, McpError> {
        let mut current = self.current.lock().await;
        if let Some(r) = current.as_ref()
            && r.alive.load(Ordering::Relaxed)
        {
            return Ok(r.clone());
        }
        *current = None;
        let wait = {
            let restart = self.restart.lock().expect("not poisoned");
            restart.0.saturating_duration_since(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match self.start().await {
            Ok(running) => {
                *self.restart.lock().expect("not poisoned") =
                    (Instant::now(), Duration::from_secs(1));
                let running = Arc::new(running);
                *current = Some(running.clone());
                Ok(running)
            }
            Err(e) => {
                let mut restart = self.restart.lock().expect("not poisoned");
                let backoff = restart.1;
                *restart = (
                    Instant::now() + backoff,
                    (backoff * 2).min(Duration::from_secs(30)),
                );
                Err(e)
            }
        }
    }

    /// Spawns the process, starts its reader, writer and stderr tasks, and initializes it.
    async fn start(&self) -> Result<Running, McpError> {
        let launch = &self.launch;
        let mut command = Command::new(&launch.command);
        command
            .args(&launch.args)
            .current_dir(&launch.cwd)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
            if let Some(v) = std::env::var_os(key) {
                command.env(key, v);
            }
        }
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let mut child = command.spawn().map_err(|e| {
            McpError::Transport(format!(
                "cannot start `{}` (in {}): {e}",
                launch.command,
                launch.cwd.display()
            ))
        })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let pending: Arc<InFlight> = Arc::default();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (writer, mut lines) = mpsc::channel::<Vec<u8>>(64);
        let child = Arc::new(tokio::sync::Mutex::new(child));

        // Writer: one line at a time, in order.
        let writer_alive = alive.clone();
        tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(line) = lines.recv().await {
                if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
                    writer_alive.store(false, Ordering::Relaxed);
                    break;
                }
            }
        });

        // Reader: responses to their callers; requests of the server answered; the end of
        // the process fails every waiting call.
        let (reader_pending, reader_alive, reply) =
            (pending.clone(), alive.clone(), writer.clone());
        let (list_changed, target, program) = (
            self.list_changed.clone(),
            self.target.clone(),
            launch.command.clone(),
        );
        let reaped = child.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.len() > MAX_LINE => break,
                    Ok(_) => handle_line(&line, &reader_pending, &reply, &list_changed).await,
                }
            }
            reader_alive.store(false, Ordering::Relaxed);
            reader_pending.fail_all(&McpError::Transport(format!("`{program}` exited")));
            let status = reaped.lock().await.wait().await;
            tracing::warn!(target = %target, ?status, "upstream MCP server `{program}` exited; it is started again on the next request");
        });

        // Stderr: into the log, bounded.
        let (target, program) = (self.target.clone(), launch.command.clone());
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            let mut window = Instant::now();
            let (mut logged, mut dropped) = (0u32, 0u64);
            while let Ok(Some(line)) = reader.next_line().await {
                if window.elapsed() >= Duration::from_secs(60) {
                    if dropped > 0 {
                        tracing::info!(target = %target, dropped, "stderr of `{program}`: lines not logged in the last minute");
                    }
                    (window, logged, dropped) = (Instant::now(), 0, 0);
                }
                if logged >= STDERR_LINES_PER_MINUTE {
                    dropped += 1;
                    continue;
                }
                logged += 1;
                let cut = match line.char_indices().nth(MAX_STDERR_LINE) {
                    Some((i, _)) => &line[..i],
                    None => &line[..],
                };
                tracing::info!(target = %target, "stderr of `{program}`: {cut}");
            }
        });

        let mut running = Running {
            writer,
            pending,
            version: self.forced.unwrap_or(LEGACY_VERSIONS[0]),
            alive,
            child,
        };
        if running.version == MODERN_VERSION {
            return Ok(running);
        }
        let params = format!(
            "{{\"protocolVersion\":\"{}\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"toolgate\",\"version\":\"{}\"}}}}",
            running.version,
            crate::VERSION
        );
        let init = tokio::time::timeout(
            Duration::from_secs(30),
            self.call(&running, "initialize", Some(params.as_bytes()), None),
        )
        .await
        .unwrap_or(Err(McpError::Timeout(Duration::from_secs(30))));
        let result = match init {
            Ok(result) => result,
            // A server that only speaks 2026-07-28 has no handshake.
            Err(McpError::Rpc(e)) if e.code == -32601 && self.forced.is_none() => {
                running.version = MODERN_VERSION;
                return Ok(running);
            }
            Err(e) => return Err(e),
        };
        let version = serde_json::from_str::<serde_json::Value>(result.get())
            .ok()
            .and_then(|r| r.get("protocolVersion")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        running.version = LEGACY_VERSIONS
            .iter()
            .copied()
            .find(|v| *v == version)
            .ok_or_else(|| {
                McpError::Protocol(format!(
                    "the server speaks protocol `{version}`, which the gateway does not"
                ))
            })?;
        let mut note = wire::frame(None, "notifications/initialized", None, None);
        note.push(b'\n');
        running
            .writer
            .send(note)
            .await
            .map_err(|_| McpError::Transport("the server exited during the handshake".into()))?;
        Ok(running)
    }
}

/// Tells the server that the gateway stopped waiting for request `id`, when dropped while
/// still armed.
struct Cancel<'a> {
    running: &'a Running,
    id: u64,
    token: Option<u64>,
    armed: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        if self.armed && self.running.pending.forget(self.id, self.token) {
            let mut line = wire::cancelled(self.id);
            line.push(b'\n');
            // Dropped when the writer is backed up: the answer is ignored either way.
            let _ = self.running.writer.try_send(line);
        }
    }
}

/// One line from the server: a response goes to its caller; a list-changed notification
/// wakes the refresher; a request is answered (`ping`) or refused.
async fn handle_line(
    line: &[u8],
    pending: &InFlight,
    reply: &mpsc::Sender<Vec<u8>>,
    list_changed: &Notify,
) {
    let Ok(message) = serde_json::from_slice::<wire::Incoming>(line) else {
        return;
    };
    if pending.deliver(&message) {
        return;
    }
    match (&message.method, message.id) {
        (None, Some(_)) => {}
        (Some(method), None) => {
            if method == "notifications/tools/list_changed" {
                list_changed.notify_one();
            }
        }
        (Some(method), Some(id)) => {
            let answer = if method == "ping" {
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{{}}}}\n",
                    id.get()
                )
            } else {
                format!(
                    "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{{\"code\":-32601,\"message\":\"the gateway does not serve {method}\"}}}}\n",
                    id.get()
                )
            };
            let _ = reply.send(answer.into_bytes()).await;
        }
        (None, None) => {}
    }
}
