//! A real Redis server for the shared-cache tests: `redis-server` (the Debian package;
//! `./test.sh` installs it) listening only on a unix socket in a temp dir, without
//! persistence, killed when dropped. It can be stopped, restarted on the same socket (so a
//! gateway's URL stays valid) and paused, to play an outage or a hang.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running (or stopped) `redis-server`.
pub struct Redis {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Server options beyond the test defaults (e.g. `--requirepass`).
    extra: Vec<String>,
}

impl Redis {
    /// Starts a server and waits until it answers on its socket.
    pub async fn start() -> Redis {
        Self::start_with(&[]).await
    }

    /// [`Redis::start`] with more `redis-server` options, kept across restarts (e.g.
    /// `["--requirepass", "secret"]`; the URL then needs `?pass=secret`).
    pub async fn start_with(options: &[&str]) -> Redis {
        let mut redis = Redis {
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra: options.iter().map(|o| o.to_string()).collect(),
        };
        redis.launch().await;
        redis
    }

    /// The unix socket it listens on (the same across restarts).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Its URL for `cache.shared`: `redis+unix:///<tempdir>/redis.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Whether the process is running (it may be paused).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit.
    /// Its data is gone; the socket file stays behind, refusing connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, then starts a fresh one on the same socket.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    /// Suspends the process (SIGSTOP): connections stay open and nothing answers, as with
    /// a hung or overloaded server.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("redis-server is running");
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal redis-server");
    }

    /// A connection of the test's own, to look at what the gateways wrote.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis-server")
    }

    async fn launch(&mut self) {
        let program = redis_server();
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&program)
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
            ])
            .arg(&log)
            .args(&self.extra)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings().await {
            let exited = self.child.as_mut().unwrap().try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "redis-server did not come up ({}): {}",
                    exited.map_or("no PONG within 10s".to_string(), |s| s.to_string()),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether the server answers PING over the socket now (`+PONG`, or `-NOAUTH` from
    /// one that wants a password: either way it serves).
    async fn pings(&self) -> bool {
        let Ok(mut stream) = tokio::net::UnixStream::connect(self.socket()).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
            Ok(Ok(_))
        ) && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused process dies of SIGKILL too; resuming first is harmless.
            // SAFETY: as in `signal`.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
        self.stop();
    }
}

/// `redis-server` from PATH, or a panic that says how to get it.
fn redis_server() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("redis-server"))
        .find(|p| is_executable(p))
        .unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH: the shared-cache tests run a real one; ./test.sh installs it (apt-get install redis-server)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
