//! The command line as users run it: `check`, `tools` and `serve` of the shipped
//! gateway.yaml (the first-run demo), as a real process.

use std::path::Path;
use std::process::Command;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::support::free_port;
use crate::support::process::{BIN, GatewayProcess};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_shipped_config() {
    let (code, stdout, stderr) = run(&["check", "--config", "gateway.yaml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("OK, 4 tools from 1 targets"), "{stdout}");
    assert!(stdout.contains("target restaurants"), "{stdout}");
}

#[test]
fn check_reports_problems_with_their_location() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, "listen: 127.0.0.1:8000\ntargets:\n  - name: a\n    openapi:\n      spec: x.yaml\n      base_ulr: http://x\n").unwrap();
    let (code, _, stderr) = run(&["check", "--config", typo.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("typo.yaml:6:7"), "{stderr}");
    assert!(stderr.contains("did you mean `base_url`"), "{stderr}");

    let missing = dir.path().join("missing.yaml");
    std::fs::write(
        &missing,
        "targets:\n  - name: a\n    openapi: { spec: nowhere.yaml }\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("nowhere.yaml") && stderr.contains("target `a`"),
        "{stderr}"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        dir.path().join("bad-spec.yaml"),
        "openapi: 3.0.0\npaths: [1, 2\n",
    )
    .unwrap();
    std::fs::write(&broken, "targets:\n  - name: a\n    openapi: { spec: bad-spec.yaml, base_url: http://127.0.0.1:1 }\n").unwrap();
    let (code, _, stderr) = run(&["check", "--config", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("bad-spec.yaml"), "{stderr}");

    let (code, _, stderr) = run(&[
        "check",
        "--config",
        dir.path().join("absent.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("absent.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn tools_converts_a_document_without_config() {
    let (code, stdout, stderr) = run(&["tools", "--openapi", "specs/restaurants.yaml", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "restaurants___searchRestaurants",
            "restaurants___getRestaurant",
            "restaurants___getMenu",
            "restaurants___createReservation"
        ]
    );
    assert_eq!(out["skipped"], json!([]));
    let booking = &out["tools"][3];
    assert_eq!(
        booking["inputSchema"]["required"],
        json!(["restaurantId", "name", "partySize", "time"])
    );
    assert!(booking["outputSchema"].is_object());
    assert_eq!(booking["annotations"]["readOnlyHint"], false);
    // A document with no absolute server is listed against a placeholder, with a warning.
    let no_server = crate::support::corpus("oai/callback-example.yaml");
    if no_server.exists() {
        let (code, stdout, stderr) =
            run(&["tools", "--openapi", no_server.to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains("no absolute server URL") && stderr.contains("--base-url"),
            "{stderr}"
        );
        assert!(
            !serde_json::from_str::<Value>(&stdout).unwrap()["tools"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    let (code, stdout, _) = run(&["tools", "--openapi", "specs/restaurants.yaml"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("restaurants___getMenu") && stdout.contains("4 tools, 0 skipped"),
        "{stdout}"
    );
}

/// The first run: the shipped gateway.yaml, served as a process, answers an MCP client
/// through the demo API, and stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_runs_the_shipped_demo_end_to_end() {
    let (mcp_port, api_port) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(root().join("gateway.yaml")).unwrap();
    let spec = root().join("specs/restaurants.yaml");
    let config = shipped
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{mcp_port}"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{api_port}"))
        .replace("specs/restaurants.yaml", spec.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config).unwrap();
    let gateway = GatewayProcess::spawn(&path, &[]);
    let url = gateway.url.clone();
    assert_eq!(url, format!("http://127.0.0.1:{mcp_port}/mcp"));

    let mcp = crate::support::client(&url, crate::support::Lifecycle::Auto).await;
    let tools = mcp.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 4);
    let found = mcp
        .call_tool(
            CallToolRequestParams::new("restaurants___searchRestaurants").with_arguments(
                json!({"city": "Portland", "maxPriceLevel": 2})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(found.is_error, Some(false));
    assert_eq!(
        found.structured_content.as_ref().unwrap()["results"][0]["name"],
        "Casa Oaxaca"
    );
    mcp.cancel().await.unwrap();

    let (status, rest) = gateway.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    // One structured log line per tool call, without the arguments.
    let call_line: Value = rest
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "tool call")
        .expect("a JSON log line for the call");
    assert_eq!(call_line["tool"], "restaurants___searchRestaurants");
    assert_eq!(call_line["target_name"], "restaurants");
    assert_eq!(call_line["outcome"], "ok");
    assert_eq!(call_line["status"], 200);
    assert_eq!(call_line["cache"], "off");
    assert!(
        call_line["duration_us"].as_u64().is_some() && call_line["upstream_us"].as_u64().is_some()
    );
    assert!(
        !rest.iter().any(|l| l.contains("Portland")),
        "arguments are not logged by default"
    );
}

#[test]
fn operations_can_be_renamed_and_redescribed_and_typos_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("tests/fixtures/testapi.yaml"),
        dir.path().join("testapi.yaml"),
    )
    .unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n    operations:\n      getPet: { rename: fetchPet, description: \"Look a pet up by id.\" }\n      getPett: { cache: false }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["tools", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let tools = out["tools"].as_array().unwrap();
    let fetch = tools
        .iter()
        .find(|t| t["name"] == "api___fetchPet")
        .expect("the renamed tool");
    assert_eq!(fetch["description"], "Look a pet up by id.");
    assert!(!tools.iter().any(|t| t["name"] == "api___getPet"));
    let (code, stdout, _) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("operations.getPett matches no operation"),
        "{stdout}"
    );

    std::fs::write(
        &config,
        "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n    operations:\n      getPet: { rename: listPets }\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("`listPets` is already the name of another operation"),
        "{stderr}"
    );
}

#[test]
fn path_globs_deprecation_content_type_and_budget_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
      "servers": [{"url": "http://127.0.0.1:9"}],
      "paths": {
        "/pets": {"get": {"operationId": "listPets", "responses": {"200": {"description": "ok"}}}},
        "/pets/{id}": {"get": {"operationId": "getPet", "description": "LONG",
          "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
          "responses": {"200": {"description": "ok"}}}},
        "/old": {"get": {"operationId": "oldList", "deprecated": true, "responses": {"200": {"description": "ok"}}}},
        "/admin/users": {"get": {"operationId": "listUsers", "responses": {"200": {"description": "ok"}}}},
        "/upload": {"post": {"operationId": "upload", "responses": {"200": {"description": "ok"}},
          "requestBody": {"content": {
            "application/json": {"schema": {"type": "object", "properties": {"url": {"type": "string"}}}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}}}}
      }}"#;
    std::fs::write(
        dir.path().join("api.json"),
        spec.replace("LONG", &"word ".repeat(200)),
    )
    .unwrap();
    let config = dir.path().join("gateway.yaml");
    let tools = |yaml: &str| {
        std::fs::write(&config, yaml).unwrap();
        let (code, stdout, stderr) =
            run(&["tools", "--config", config.to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{stderr}");
        let out: Value = serde_json::from_str(&stdout).unwrap();
        out
    };
    let names = |out: &Value| -> Vec<String> {
        out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };

    let out = tools(
        "targets:\n  - name: api\n    openapi:\n      spec: api.json\n      exclude: { paths: [\"/admin/**\"] }\n      description_budget: 200\n    operations:\n      upload: { content_type: multipart/form-data }\n",
    );
    assert_eq!(
        names(&out),
        ["api___listPets", "api___getPet", "api___upload"]
    );
    let skipped = out["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["operation"], "GET /old (oldList)");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("include_deprecated")
    );
    let get_pet = &out["tools"][1];
    let description = get_pet["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 100, "{description}");
    assert!(description.ends_with('…'));
    let upload = &out["tools"][2];
    assert!(upload["inputSchema"]["properties"]["file"].is_object());
    assert!(upload["inputSchema"]["properties"].get("url").is_none());

    let out = tools(
        "targets:\n  - name: api\n    openapi:\n      spec: api.json\n      include: { paths: [\"/pets/*\", \"/old\"] }\n      include_deprecated: true\n",
    );
    assert_eq!(names(&out), ["api___getPet", "api___oldList"]);
    assert!(out["skipped"].as_array().unwrap().is_empty());

    std::fs::write(
        &config,
        "targets:\n  - name: api\n    openapi: { spec: api.json }\n    operations:\n      upload: { content_type: text/csv }\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("operations.upload.content_type is `text/csv`, but the operation's request body offers only application/json, multipart/form-data"),
        "{stderr}"
    );
}
