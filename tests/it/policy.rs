//! Cedar authorization policies (`policy:`) with the test IdP's real tokens: a matrix of
//! callers x tools x argument values, proven by what the upstream receives; visibility in
//! `tools/list` and the search tool; `log_only`; `toolgate check` errors; reloads.

use crate::support::idp::Idp;
use crate::support::process::BIN;
use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};
use serde_json::{Value, json};

const RESOURCE: &str = "https://gateway.test/mcp";

/// agent-1 may refund below 100; nobody may delete a pet; any client holding the `admin`
/// scope may do anything else; everyone may list pets.
const POLICIES: &str = r#"
@id("small-refunds")
permit(principal, action == Action::"pay___createRefund", resource == Target::"pay")
when { principal has client_id && principal.client_id == "agent-1" && context.input.amount < 100 };

@id("list-pets")
permit(principal, action == Action::"api___listPets", resource);

permit(principal, action, resource)
when { principal has scopes && principal.scopes.contains("admin") && resource == Target::"api" };

@id("no-deletes")
forbid(principal, action == Action::"api___deletePet", resource);
"#;

fn answer(r: &Recorded) -> Answer {
    match r.path() {
        p if p.ends_with("/refunds") => Answer::Json(200, json!({"refunded": true})),
        p if p.ends_with("/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        _ => Answer::Json(200, json!({"id": 1, "name": "Rex"})),
    }
}

async fn gateway(idp: &Idp, upstream: &Upstream, mode: &str, policies: &str) -> Gateway {
    let yaml = format!(
        r#"
inbound:
  resource: {RESOURCE}
  jwt:
    discovery_url: {discovery}
    audiences: [{RESOURCE}]
policy:
  files: ["*.cedar"]
  mode: {mode}
gateway:
  search: {{ enabled: true }}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
  - name: pay
    openapi: {{ spec: refunds.yaml, base_url: "{base}/pay" }}
"#,
        discovery = idp.discovery_url(),
        base = upstream.url(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("main.cedar");
    std::fs::write(&file, policies).unwrap();
    Gateway::start(
        &yaml,
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            ("refunds.yaml", &fixture("refunds.yaml")),
            ("main.cedar", &file),
        ],
    )
    .await
}

async fn call(gateway: &Gateway, token: &str, tool: &str, arguments: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": modern_meta()}});
    let bearer = format!("Bearer {token}");
    let mut headers = modern_headers("tools/call", Some(tool));
    headers.push(("authorization", &bearer));
    let (status, _, body) = post_raw(&gateway.url(), &headers, body.to_string()).await;
    (status, body)
}

async fn listed(gateway: &Gateway, token: &str) -> Vec<String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": modern_meta()}});
    let bearer = format!("Bearer {token}");
    let mut headers = modern_headers("tools/list", None);
    headers.push(("authorization", &bearer));
    let (_, _, body) = post_raw(&gateway.url(), &headers, body.to_string()).await;
    body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn searched(gateway: &Gateway, token: &str, query: &str) -> Vec<String> {
    let (status, body) = call(
        gateway,
        token,
        "x_amz_bedrock_agentcore_search",
        json!({"query": query, "limit": 50}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"].to_string();
    [
        "pay___createRefund",
        "api___deletePet",
        "api___listPets",
        "api___getPet",
    ]
    .iter()
    .filter(|n| text.contains(*n))
    .map(|n| n.to_string())
    .collect()
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// One cell of the matrix: who, their token, the tool, the arguments, whether the call is
/// allowed, and the deciding policies of a deny.
type Case<'a> = (&'a str, &'a str, &'a str, Value, bool, Vec<&'a str>);

fn refund(amount: i64) -> Value {
    json!({"amount": amount, "currency": "EUR"})
}

#[tokio::test]
async fn the_policy_matrix_decides_calls_by_claims_tool_and_arguments() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(answer).await;
    let gateway = gateway(&idp, &upstream, "enforce", POLICIES).await;
    let agent1 = idp.token("agent-1", RESOURCE, "tools:read").await;
    let agent2 = idp.token("agent-2", RESOURCE, "tools:read").await;
    let admin = idp.token("agent-2", RESOURCE, "admin").await;
    let get = json!({"petId": "1"});
    // (caller, tool, arguments, allowed, deciding policies)
    let matrix: Vec<Case> = vec![
        (
            "agent-1",
            &agent1,
            "pay___createRefund",
            refund(99),
            true,
            vec!["small-refunds"],
        ),
        (
            "agent-1",
            &agent1,
            "pay___createRefund",
            refund(100),
            false,
            vec![],
        ),
        (
            "agent-1",
            &agent1,
            "pay___createRefund",
            refund(5000),
            false,
            vec![],
        ),
        (
            "agent-2",
            &agent2,
            "pay___createRefund",
            refund(1),
            false,
            vec![],
        ),
        (
            "admin",
            &admin,
            "pay___createRefund",
            refund(1),
            false,
            vec![],
        ),
        (
            "agent-1",
            &agent1,
            "api___listPets",
            json!({}),
            true,
            vec!["list-pets"],
        ),
        (
            "agent-2",
            &agent2,
            "api___listPets",
            json!({}),
            true,
            vec!["list-pets"],
        ),
        (
            "agent-1",
            &agent1,
            "api___getPet",
            get.clone(),
            false,
            vec![],
        ),
        (
            "admin",
            &admin,
            "api___getPet",
            get.clone(),
            true,
            vec!["main.cedar:9"],
        ),
        (
            "admin",
            &admin,
            "api___deletePet",
            get.clone(),
            false,
            vec!["no-deletes"],
        ),
        (
            "agent-1",
            &agent1,
            "api___deletePet",
            get.clone(),
            false,
            vec!["no-deletes"],
        ),
    ];
    let mut reached = 0;
    for (who, token, tool, arguments, allowed, policies) in &matrix {
        let before = upstream.count();
        let (status, body) = call(&gateway, token, tool, arguments.clone()).await;
        let case = format!("{who} {tool} {arguments}: {body}");
        if *allowed {
            reached += 1;
            assert_eq!(status, 200, "{case}");
            assert_eq!(body["result"]["isError"], false, "{case}");
            assert_eq!(upstream.count(), before + 1, "{case}");
        } else {
            assert_eq!(status, 403, "{case}");
            assert_eq!(
                upstream.count(),
                before,
                "a denied call reaches no upstream: {case}"
            );
            let expected = if policies.is_empty() {
                "denied by policy: no policy permits".to_string()
            } else {
                format!("denied by policy: {}", policies.join(", "))
            };
            assert_eq!(body["error"]["message"], expected, "{case}");
            assert_eq!(body["error"]["data"]["policies"], json!(policies), "{case}");
        }
    }
    assert_eq!(
        upstream.count(),
        reached,
        "only allowed calls reached the upstream"
    );
    let metrics = gateway.metrics_text().await;
    let denied = matrix.len() - reached;
    assert_eq!(
        sample(
            &metrics,
            "toolgate_policy_decisions_total{decision=\"allow\",mode=\"enforce\"}"
        ),
        reached as f64
    );
    assert_eq!(
        sample(
            &metrics,
            "toolgate_policy_decisions_total{decision=\"deny\",mode=\"enforce\"}"
        ),
        denied as f64
    );
}

#[tokio::test]
async fn tools_list_and_search_show_only_tools_some_call_could_use() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(answer).await;
    let gateway = gateway(&idp, &upstream, "enforce", POLICIES).await;
    let agent1 = idp.token("agent-1", RESOURCE, "tools:read").await;
    let agent2 = idp.token("agent-2", RESOURCE, "tools:read").await;
    let admin = idp.token("agent-2", RESOURCE, "admin").await;

    let one = listed(&gateway, &agent1).await;
    assert!(
        one.contains(&"pay___createRefund".to_string()),
        "some amounts are allowed: {one:?}"
    );
    assert!(one.contains(&"api___listPets".to_string()), "{one:?}");
    assert!(!one.contains(&"api___getPet".to_string()), "{one:?}");
    assert!(
        !one.contains(&"api___deletePet".to_string()),
        "forbidden for all: {one:?}"
    );

    let two = listed(&gateway, &agent2).await;
    assert!(!two.contains(&"pay___createRefund".to_string()), "{two:?}");
    assert!(two.contains(&"api___listPets".to_string()), "{two:?}");

    let boss = listed(&gateway, &admin).await;
    assert!(boss.contains(&"api___getPet".to_string()), "{boss:?}");
    assert!(
        !boss.contains(&"api___deletePet".to_string()),
        "forbid wins: {boss:?}"
    );
    assert!(
        !boss.contains(&"pay___createRefund".to_string()),
        "{boss:?}"
    );

    assert_eq!(
        searched(&gateway, &agent1, "refund").await,
        ["pay___createRefund"]
    );
    assert!(searched(&gateway, &agent2, "refund").await.is_empty());
    assert!(
        !searched(&gateway, &admin, "delete pet")
            .await
            .contains(&"api___deletePet".to_string())
    );
}

#[tokio::test]
async fn log_only_lets_denied_calls_through_and_counts_them() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(answer).await;
    let gateway = gateway(&idp, &upstream, "log_only", POLICIES).await;
    let agent2 = idp.token("agent-2", RESOURCE, "tools:read").await;
    let (status, body) = call(&gateway, &agent2, "pay___createRefund", refund(5000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.count(), 1);
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "toolgate_policy_decisions_total{decision=\"deny\",mode=\"log_only\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_reload_with_a_changed_policy_file_changes_decisions_and_a_broken_one_keeps_the_last() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(answer).await;
    let gateway = gateway(&idp, &upstream, "enforce", POLICIES).await;
    let agent1 = idp.token("agent-1", RESOURCE, "tools:read").await;
    assert_eq!(
        call(&gateway, &agent1, "pay___createRefund", refund(500))
            .await
            .0,
        403
    );

    gateway.write(
        "main.cedar",
        &POLICIES.replace("context.input.amount < 100", "context.input.amount < 1000"),
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        call(&gateway, &agent1, "pay___createRefund", refund(500))
            .await
            .0,
        200
    );

    gateway.write("main.cedar", "permit(principal, action, resource) when {");
    let (status, report) = gateway.reload().await;
    assert_ne!(status, 200, "{report}");
    assert!(report.to_string().contains("main.cedar:1:"), "{report}");
    assert_eq!(
        call(&gateway, &agent1, "pay___createRefund", refund(500))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&gateway, &agent1, "pay___createRefund", refund(5000))
            .await
            .0,
        403
    );
}

/// Runs `toolgate check` on a config with both targets and `policies` as `main.cedar`:
/// success, and stdout + stderr.
fn check(policies: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["refunds.yaml", "testapi.yaml"] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "policy:\n  files: [\"*.cedar\"]\ntargets:\n  - name: pay\n    openapi: { spec: refunds.yaml, base_url: \"http://127.0.0.1:9\" }\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: \"http://127.0.0.1:9\" }\n",
    )
    .unwrap();
    if let Some(text) = policies {
        std::fs::write(dir.path().join("main.cedar"), text).unwrap();
    }
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("gateway.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `toolgate check` parses and type-checks the policies against the schema generated from
/// the catalog, and points at `file:line:col` of each mistake.
#[test]
fn check_type_checks_policies_and_points_at_the_line_of_a_mistake() {
    let (ok, out) = check(Some(POLICIES));
    assert!(ok, "the test's own policies type-check: {out}");

    // A syntax error.
    let (ok, out) = check(Some(
        "permit(principal, action, resource);\n\npermit(principal, action, resource)\nwhen { context.input.amount < };\n",
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("main.cedar:4:"), "{out}");

    // A type error: `like` on a Long.
    let (ok, out) = check(Some(
        "permit(principal, action == Action::\"pay___createRefund\", resource)\nwhen {\n  context.input.amount like \"x\"\n};\n",
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("main.cedar:3:"), "{out}");

    // A misspelt argument.
    let (ok, out) = check(Some(
        "@id(\"typo\")\npermit(principal, action == Action::\"pay___createRefund\", resource)\nwhen { context.input.amout < 100 };\n",
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("main.cedar:3:") && out.contains("typo"),
        "{out}"
    );

    // No file matched.
    let (ok, out) = check(None);
    assert!(!ok, "{out}");
    assert!(out.contains("matches no file"), "{out}");
}
