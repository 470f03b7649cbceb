//! Three `toolgate serve` replicas behind a real load balancer (HAProxy, health-checking
//! `/readyz`) sharing a real Redis, under steady load: SIGTERM one replica (no call fails:
//! it fails its readiness and keeps serving until HAProxy has taken it out), SIGKILL
//! another (only calls in flight on it may fail; calls started a second later all
//! succeed), restart it; handshake-era sessions opened through the balancer keep working
//! whichever replica serves them; a cache entry filled through one replica is a hit
//! through another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::process::GatewayProcess;
use crate::support::redis::Redis;
use crate::support::{Answer, Recorded, Upstream, fixture, free_port, modern_headers, modern_meta};
use serde_json::{Value, json};

const CALLERS: usize = 8;
const SESSION_KEY: &str = "scale-out-test-session-key-0123456789";

/// A program from Debian's packages, which `./test.sh` installs.
fn program(name: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} is not installed: ./test.sh installs it (apt-get install {package})");
}

fn pets(r: &Recorded) -> Answer {
    match r.path() {
        "/api/pets" => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        _ => Answer::Json(200, json!({"id": 7, "name": "Rex"})),
    }
}

/// One replica's configuration: its own ports, the shared Redis and session key, and a
/// two seconds of readiness-off serving at shutdown (longer than HAProxy needs to notice).
fn replica_config(upstream: &Upstream, redis: &Redis, port: u16, admin: u16) -> String {
    format!(
        r#"listen: 127.0.0.1:{port}
admin: 127.0.0.1:{admin}
gateway:
  shutdown_delay: 2s
  shutdown_grace: 20s
  session: {{ key: "{SESSION_KEY}" }}
cache:
  shared: "{redis}"
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
    cache: {{ ttl: 5m }}
    operations:
      getPet: {{ cache: false }}
"#,
        redis = redis.url(),
        base = upstream.url(),
    )
}

struct Replica {
    config: PathBuf,
    port: u16,
    admin: u16,
    process: Option<GatewayProcess>,
}

impl Replica {
    fn start(&mut self) {
        self.process = Some(GatewayProcess::spawn(&self.config, &[]));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `tools/call`s this replica has answered (successful or not).
    async fn calls(&self) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("toolgate_tool_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// HAProxy in the foreground, health-checking every replica's `/readyz` every 100 ms and
/// retrying a request another replica when a connection fails (which a POST may: it was
/// never delivered).
struct Balancer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(replicas: &[Replica]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("  server r{i} 127.0.0.1:{} check\n", r.port))
            .collect();
        let config = format!(
            r#"global
  maxconn 2000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  retries 3
  option redispatch 1
  option http-buffer-request
  retry-on conn-failure
frontend mcp
  bind 127.0.0.1:{port}
  default_backend toolgate
backend toolgate
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 100ms fall 1 rise 1
{servers}"#
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(program("haproxy", "haproxy"))
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        Balancer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds, failing after `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One call, in the stateless revision or in a handshake-era session.
async fn call(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    id: usize,
) -> Result<(), String> {
    let mut request = client.post(url);
    let body = match session {
        None => {
            for (k, v) in modern_headers("tools/call", Some("api___getPet")) {
                request = request.header(k, v);
            }
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "api___getPet", "arguments": {"petId": "7"}, "_meta": modern_meta()}})
        }
        Some(session) => {
            request = request
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .header("mcp-session-id", session);
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "api___getPet", "arguments": {"petId": "7"}}})
        }
    };
    let response = request
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != 200 || value["result"]["isError"] != false {
        return Err(format!("{status}: {value}"));
    }
    Ok(())
}

async fn open_session(url: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "load", "version": "1"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string()
}

/// Calls that ended, with when they started and whether they failed.
#[derive(Default)]
struct Ledger {
    done: AtomicUsize,
    failures: Mutex<Vec<(Instant, String)>>,
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_haproxy_survive_sigterm_and_sigkill_and_share_cache_and_sessions() {
    let upstream = Upstream::start(pets).await;
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| {
            let (port, admin) = (free_port(), free_port());
            let config = dir.path().join(format!("replica{i}.yaml"));
            std::fs::write(&config, replica_config(&upstream, &redis, port, admin)).unwrap();
            Replica {
                config,
                port,
                admin,
                process: None,
            }
        })
        .collect();
    tokio::task::block_in_place(|| replicas.iter_mut().for_each(Replica::start));
    let balancer = tokio::task::block_in_place(|| Balancer::start(&replicas));
    let lb = balancer.url();
    let http = reqwest::Client::new();
    until("HAProxy to answer", Duration::from_secs(20), || async {
        http.get(lb.replace("/mcp", "/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // Steady load: half the callers stateless, half in a session opened through the
    // balancer (so served by whichever replica HAProxy picks).
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Ledger::default());
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let session = if caller % 2 == 1 {
            Some(open_session(&lb).await)
        } else {
            None
        };
        let (stop, ledger, lb) = (stop.clone(), ledger.clone(), lb.clone());
        callers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                if let Err(e) = call(&client, &lb, session.as_deref(), caller * 1_000_000 + n).await
                {
                    ledger.failures.lock().unwrap().push((started, e));
                }
                ledger.done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let failures = || ledger.failures.lock().unwrap().len();
    let after = |n: usize| {
        let ledger = ledger.clone();
        let from = ledger.done.load(Ordering::Relaxed);
        async move {
            until("more calls", Duration::from_secs(60), || {
                let ledger = ledger.clone();
                async move { ledger.done.load(Ordering::Relaxed) >= from + n }
            })
            .await;
        }
    };
    // Every replica takes part.
    for r in &replicas {
        until(
            "every replica to serve calls",
            Duration::from_secs(30),
            || async { r.calls().await > 0.0 },
        )
        .await;
    }
    assert_eq!(failures(), 0, "{:?}", ledger.failures.lock().unwrap());

    // SIGTERM: readiness fails first, HAProxy stops sending, in-flight calls finish.
    let terminated = replicas[0].process.take().unwrap();
    let (status, log) = tokio::task::block_in_place(|| terminated.terminate());
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        log.iter().any(|l| l.contains("readiness off")),
        "it drained with readiness off:\n{}",
        log.join("\n")
    );
    after(4 * CALLERS).await;
    assert_eq!(
        failures(),
        0,
        "no call fails on a graceful stop: {:?}",
        ledger.failures.lock().unwrap()
    );

    // SIGKILL: calls in flight on the killed replica may fail, later ones may not.
    let killed = replicas[1].process.take().unwrap();
    let killed_at = Instant::now();
    killed.signal(libc::SIGKILL);
    drop(killed);
    let settled = killed_at + Duration::from_secs(1);
    until(
        "a second of calls after the kill",
        Duration::from_secs(60),
        || async { Instant::now() > settled },
    )
    .await;
    after(4 * CALLERS).await;
    let lost: Vec<(Instant, String)> = ledger.failures.lock().unwrap().clone();
    assert!(
        lost.len() <= CALLERS,
        "at most one call per caller was in flight on the killed replica: {lost:?}"
    );
    assert!(
        lost.iter().all(|(started, _)| *started < settled),
        "calls started a second after the kill all succeed: {lost:?}"
    );
    eprintln!("calls lost to SIGKILL: {}", lost.len());

    // Both come back on their ports; HAProxy sends them traffic again; nothing fails.
    tokio::task::block_in_place(|| {
        replicas[0].start();
        replicas[1].start();
    });
    for r in &replicas[..2] {
        until(
            "a restarted replica to serve calls",
            Duration::from_secs(30),
            || async { r.calls().await > 0.0 },
        )
        .await;
    }
    after(4 * CALLERS).await;
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await.unwrap();
    }
    let total = ledger.done.load(Ordering::Relaxed);
    assert_eq!(
        ledger.failures.lock().unwrap().len(),
        lost.len(),
        "no failure outside the kill"
    );
    eprintln!("calls made: {total}");

    // The shared cache: filled through one replica, a hit through another.
    let list = |url: String| async move {
        let (status, _, body) = crate::support::post_raw(
            &url,
            &modern_headers("tools/call", Some("api___listPets")),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "api___listPets", "arguments": {}, "_meta": modern_meta()}})
            .to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["isError"], false, "{body}");
    };
    let upstream_lists = || {
        upstream
            .requests()
            .iter()
            .filter(|r| r.path() == "/api/pets")
            .count()
    };
    list(replicas[2].url()).await;
    assert_eq!(upstream_lists(), 1);
    list(replicas[1].url()).await;
    assert_eq!(
        upstream_lists(),
        1,
        "the restarted replica was served from Redis"
    );
    let metrics = replicas[1].metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_cache_shared_total{outcome="hit",target="api"}"#
        ),
        1.0,
        "{metrics}"
    );
    drop(balancer);
}

/// The Kubernetes manifests agree with each other and with the gateway: the ConfigMap's
/// configuration passes `toolgate check` with the Secret's variables, the pod outlives its
/// drain (`shutdown_delay` + `shutdown_grace` < `terminationGracePeriodSeconds`), readiness
/// is what drains, and the PodDisruptionBudget covers the Deployment's pods.
#[test]
fn the_kubernetes_manifests_drain_within_the_grace_period_and_keep_a_budget() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let read = |name: &str| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(root.join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let kustomization = read("kustomization.yaml");
    let resources: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for name in [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
    ] {
        assert!(resources.contains(&name), "kustomization lists {name}");
        assert!(root.join(name).exists());
    }
    let deployment = read("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let pdb = read("pdb.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the budget selects the Deployment's pods");
    }
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");

    let configmap = read("configmap.yaml");
    let gateway_yaml = configmap["data"]["gateway.yaml"].as_str().unwrap();
    let config: Value = serde_saphyr::from_str(gateway_yaml).unwrap();
    let seconds = |key: &str| -> u64 {
        let text = config["gateway"][key]
            .as_str()
            .unwrap_or_else(|| panic!("gateway.{key} is set"));
        text.strip_suffix('s').unwrap().parse().unwrap()
    };
    let drain = seconds("shutdown_delay") + seconds("shutdown_grace");
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        drain < grace,
        "shutdown_delay + shutdown_grace ({drain}s) must end before Kubernetes kills the pod ({grace}s)"
    );
    // Every ${VAR} the configuration uses comes from the Deployment's environment.
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for var in ["TOOLGATE_SESSION_KEY", "PETSTORE_TOKEN"] {
        assert!(
            gateway_yaml.contains(&format!("${{{var}}}")) && env.contains(&var),
            "{var}"
        );
    }
    let secret = read("secret.example.yaml");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml).unwrap();
    std::fs::write(
        dir.path().join("specs/petstore.yaml"),
        configmap["data"]["petstore.yaml"].as_str().unwrap(),
    )
    .unwrap();
    let mut check = Command::new(crate::support::process::BIN);
    check
        .args(["check", "--config"])
        .arg(dir.path().join("gateway.yaml"));
    for (k, v) in secret["stringData"].as_object().unwrap() {
        check.env(k, v.as_str().unwrap());
    }
    let out = check.output().unwrap();
    assert!(
        out.status.success(),
        "toolgate check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
