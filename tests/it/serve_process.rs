//! `toolgate serve` as a real process under load: reloads (SIGHUP and `POST /admin/reload`,
//! alternately valid and broken) while 64 callers keep calling lose no call; `--watch`
//! reloads on a file change; SIGTERM lets every call in flight finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::process::GatewayProcess;
use crate::support::{Answer, Recorded, Upstream, fixture, free_port, modern_headers, modern_meta};
use serde_json::{Value, json};

const CALLERS: usize = 64;

fn pets(_: &Recorded) -> Answer {
    Answer::Json(200, json!({"id": 7, "name": "Rex"}))
}

/// gateway.yaml: the test API plus an `extra` target built from `extra.json`.
fn config(upstream: &Upstream, admin: u16, broken: bool) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: 127.0.0.1:{admin}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{base}/api\" }}\n  - name: extra\n    openapi: {{ spec: extra.json, base_url: \"{base}/x\" }}\n{typo}",
        base = upstream.url(),
        typo = if broken { "    timout: 5s\n" } else { "" }
    )
}

fn extra_spec(version: usize) -> String {
    let op = format!("op{version}");
    json!({"openapi": "3.0.3", "info": {"title": "Extra", "version": "1"},
        "paths": {format!("/{op}"): {"get": {"operationId": op,
            "responses": {"200": {"description": "ok"}}}}}})
    .to_string()
}

/// One tools/call over a fresh request; `Err` describes a failed call.
async fn call(client: &reqwest::Client, url: &str, id: usize) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "api___getPet", "arguments": {"petId": "7"}, "_meta": modern_meta()}});
    let mut request = client.post(url).body(body.to_string());
    for (k, v) in modern_headers("tools/call", Some("api___getPet")) {
        request = request.header(k, v);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != 200 || value["result"]["isError"] != false {
        return Err(format!("{status}: {value}"));
    }
    Ok(())
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_call() {
    let upstream = Upstream::start(pets).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    std::fs::write(dir.path().join("extra.json"), extra_spec(0)).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(&upstream, admin, false)).unwrap();
    let gateway = tokio::task::block_in_place(|| GatewayProcess::spawn(&path, &[]));
    let url = gateway.url.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for caller in 0..CALLERS {
        let (stop, calls, url) = (stop.clone(), calls.clone(), url.clone());
        callers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n == 0 {
                if let Err(e) = call(&client, &url, caller * 1_000_000 + n).await {
                    failures.push(e);
                }
                n += 1;
                calls.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }

    let http = reqwest::Client::new();
    let reload_url = format!("http://127.0.0.1:{admin}/admin/reload");
    let mut seen = 0;
    for round in 0..10 {
        // Each reload lands among calls: wait until another CALLERS calls have completed.
        while calls.load(Ordering::Relaxed) < seen + CALLERS {
            tokio::task::yield_now().await;
        }
        seen = calls.load(Ordering::Relaxed);
        let broken = round % 2 == 1;
        if !broken {
            std::fs::write(dir.path().join("extra.json"), extra_spec(round)).unwrap();
        }
        std::fs::write(&path, config(&upstream, admin, broken)).unwrap();
        if round % 4 < 2 {
            let from = gateway.log_len();
            gateway.signal(libc::SIGHUP);
            let line = tokio::task::block_in_place(|| {
                gateway.wait_for_log_from(from, "configuration reload", Duration::from_secs(30))
            });
            assert_eq!(line.contains("reload failed"), broken, "{line}");
        } else {
            let response = http.post(&reload_url).send().await.unwrap();
            assert_eq!(response.status() == 200, !broken);
            let report: Value = response.json().await.unwrap();
            assert_eq!(
                report["outcome"],
                if broken { "error" } else { "ok" },
                "{report}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for caller in callers {
        failures.extend(caller.await.unwrap());
    }
    let total = calls.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total >= 10 * CALLERS, "{total}");

    let metrics = http
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, "toolgate_config_reloads_total{outcome=\"ok\"}"),
        5.0
    );
    assert_eq!(
        sample(&metrics, "toolgate_config_reloads_total{outcome=\"error\"}"),
        5.0
    );
    // The last valid round (8) is what is served.
    assert!(metrics.contains("tool=\"extra___op8\""), "{metrics}");
    let (status, _) = tokio::task::block_in_place(|| gateway.terminate());
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_a_document_changes() {
    let upstream = Upstream::start(pets).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    std::fs::write(dir.path().join("extra.json"), extra_spec(1)).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(&upstream, free_port(), false)).unwrap();
    let gateway = tokio::task::block_in_place(|| {
        GatewayProcess::spawn_with(&path, &["--watch", "--watch-interval", "100ms"], &[])
    });
    let from = gateway.log_len();
    // A different size, so that the change shows even within one mtime tick.
    std::fs::write(dir.path().join("extra.json"), extra_spec(12345)).unwrap();
    let line = tokio::task::block_in_place(|| {
        gateway.wait_for_log_from(from, "configuration reloaded", Duration::from_secs(30))
    });
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["trigger"], "watch", "{line}");
    assert_eq!(line["rebuilt"], 1, "only the edited target: {line}");
    let (status, _) = tokio::task::block_in_place(|| gateway.terminate());
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_every_call_in_flight_finish() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let upstream =
        Upstream::start(move |_| Answer::After(gate.clone(), json!({"id": 7, "name": "Rex"})))
            .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    std::fs::write(dir.path().join("extra.json"), extra_spec(1)).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(&upstream, free_port(), false)).unwrap();
    let gateway = tokio::task::block_in_place(|| GatewayProcess::spawn(&path, &[]));
    let mut calls = Vec::new();
    for id in 0..CALLERS {
        let url = gateway.url.clone();
        calls.push(tokio::spawn(async move {
            call(&reqwest::Client::new(), &url, id).await
        }));
    }
    upstream.wait_for(CALLERS).await;
    let from = gateway.log_len();
    gateway.signal(libc::SIGTERM);
    tokio::task::block_in_place(|| {
        gateway.wait_for_log_from(from, "shutting down", Duration::from_secs(30))
    });
    release.notify_waiters();
    let mut failed = Vec::new();
    for call in calls {
        if let Err(e) = call.await.unwrap() {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {CALLERS} in-flight calls lost: {failed:?}",
        failed.len()
    );
    let (status, log) = tokio::task::block_in_place(|| gateway.terminate());
    assert!(status.success(), "{status}");
    assert!(
        log.iter().any(|l| l.contains("all connections closed")),
        "{log:?}"
    );
}
