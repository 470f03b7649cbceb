//! Remote `$ref`s (`targets[].openapi.allow_remote_refs`): a main document on disk whose
//! references name documents served over HTTP by a recording server on 127.0.0.1, loaded
//! by the real gateway and called through it with an MCP client.
//!
//! Loading is synchronous and blocks the calling thread while it fetches, so the tests run
//! on a multi-thread runtime whose workers serve the documents meanwhile.

use std::path::PathBuf;

use crate::support::{Answer, Gateway, Recorded, Upstream, args, client, text_of};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use toolgate::openapi::Skipped;

/// The documents the main one refers to, by path.
fn schemas(r: &Recorded) -> Answer {
    match r.path() {
        // YAML, with a relative reference to a sibling document.
        "/schemas/pet.yaml" => Answer::Raw(
            200,
            "application/yaml",
            b"Pet:\n  type: object\n  required: [name]\n  properties:\n    id:\n      $ref: 'common.json#/Id'\n    name:\n      type: string\n      maxLength: 20\n".to_vec(),
        ),
        "/schemas/common.json" => Answer::Json(
            200,
            json!({
                "Id": {"type": "integer", "minimum": 1},
                "Limit": {"name": "limit", "in": "query", "schema": {"$ref": "#/Id"}}
            }),
        ),
        "/other/param.json" => Answer::Json(
            200,
            json!({"Verbose": {"name": "verbose", "in": "query", "schema": {"type": "boolean"}}}),
        ),
        // A relative redirect inside the prefix, to a document that is loaded anyway.
        "/schemas/moved.json" => {
            Answer::JsonWith(301, json!({}), vec![("location", "common.json")])
        }
        // A redirect out of the prefix.
        "/schemas/escape.json" => {
            Answer::JsonWith(302, json!({}), vec![("location", "/other/param.json")])
        }
        _ => Answer::Json(404, json!({"error": "no such document"})),
    }
}

/// The main document: one operation per case, plus one without remote references.
fn spec(server: &str) -> String {
    format!(
        r##"openapi: 3.0.3
info: {{title: remote refs, version: "1"}}
paths:
  /pets:
    post:
      operationId: createPet
      parameters:
        - $ref: "{server}/schemas/common.json#/Limit"
      requestBody:
        required: true
        content:
          application/json:
            schema: {{$ref: "{server}/schemas/pet.yaml#/Pet"}}
      responses: {{"200": {{description: ok}}}}
    get:
      operationId: listPets
      parameters:
        - $ref: "{server}/other/param.json#/Verbose"
      responses: {{"200": {{description: ok}}}}
  /gone:
    get:
      operationId: getGone
      parameters:
        - $ref: "{server}/schemas/missing.json#/P"
      responses: {{"200": {{description: ok}}}}
  /moved:
    get:
      operationId: getMoved
      parameters:
        - $ref: "{server}/schemas/moved.json#/Limit"
      responses: {{"200": {{description: ok}}}}
  /escape:
    get:
      operationId: getEscape
      parameters:
        - $ref: "{server}/schemas/escape.json#/Verbose"
      responses: {{"200": {{description: ok}}}}
  /health:
    get:
      operationId: health
      responses: {{"200": {{description: ok}}}}
"##
    )
}

/// A temp dir holding the main document, and the `gateway.yaml` for it with `extra`
/// lines under `openapi:`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(server: &Upstream) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("spec.yaml"), spec(&server.url())).unwrap();
        Setup { dir }
    }

    fn spec(&self) -> PathBuf {
        self.dir.path().join("spec.yaml")
    }

    /// The gateway configuration for the document, calling `api_base`.
    fn config(&self, api_base: &str, extra: &str) -> String {
        format!(
            "targets:\n  - name: api\n    openapi:\n      spec: {spec}\n      base_url: {api_base}\n{extra}    credentials: {{bearer: gateway-secret}}\n",
            spec = self.spec().display(),
        )
    }

    /// Loads the configuration: the tools' local names and inputSchemas, and the skipped.
    fn load(&self, extra: &str) -> (Vec<(String, Value)>, Vec<Skipped>) {
        let path = self.dir.path().join("gateway.yaml");
        std::fs::write(&path, self.config("http://127.0.0.1:9", extra)).unwrap();
        let loaded = toolgate::gateway::load(&path).unwrap_or_else(|e| panic!("loads: {e}"));
        let tools = loaded
            .catalog
            .tools()
            .iter()
            .map(|t| {
                let definition: Value = serde_json::from_str(t.definition.get()).unwrap();
                let name = t.name.trim_start_matches("api___").to_string();
                (name, definition["inputSchema"].clone())
            })
            .collect();
        let skipped = loaded.targets.into_iter().flat_map(|t| t.skipped).collect();
        (tools, skipped)
    }
}

fn names(tools: &[(String, Value)]) -> Vec<&str> {
    let mut names: Vec<&str> = tools.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names
}

/// The reason an operation was skipped for (panics when it was not).
fn reason<'a>(skipped: &'a [Skipped], operation_id: &str) -> &'a str {
    skipped
        .iter()
        .find(|s| s.operation.contains(operation_id))
        .map(|s| s.reason.as_str())
        .unwrap_or_else(|| panic!("{operation_id} was not skipped: {skipped:?}"))
}

/// Request paths the server received, sorted.
fn fetched(server: &Upstream) -> Vec<String> {
    let mut paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_refs_are_refused_by_default_naming_the_key() {
    let server = Upstream::start(schemas).await;
    let setup = Setup::new(&server);
    let (tools, skipped) = setup.load("");
    assert_eq!(names(&tools), ["health"]);
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    for s in &skipped {
        assert!(s.reason.contains("allow_remote_refs"), "{s:?}");
        assert!(s.reason.contains(&server.url()), "names the URL: {s:?}");
    }
    assert!(
        reason(&skipped, "createPet").contains("remote $refs are refused by default"),
        "{skipped:?}"
    );
    // Nothing was fetched. `allow_remote_refs: false` is the same.
    assert_eq!(server.count(), 0);
    let (tools, _) = setup.load("      allow_remote_refs: false\n");
    assert_eq!(names(&tools), ["health"]);
    assert_eq!(server.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_with_true_each_document_is_fetched_once_without_credentials() {
    let server = Upstream::start(schemas).await;
    let setup = Setup::new(&server);
    let (tools, skipped) = setup.load("      allow_remote_refs: true\n");
    assert_eq!(
        names(&tools),
        ["createPet", "getEscape", "getMoved", "health", "listPets"]
    );

    // The remote schema, with its relative reference resolved against its URL, and the
    // remote parameter whose schema refers within its own document.
    let create = &tools.iter().find(|(n, _)| n == "createPet").unwrap().1;
    assert_eq!(
        create["properties"]["id"],
        json!({"type": "integer", "minimum": 1})
    );
    assert_eq!(
        create["properties"]["name"],
        json!({"type": "string", "maxLength": 20})
    );
    assert_eq!(
        create["properties"]["limit"],
        json!({"type": "integer", "minimum": 1})
    );
    assert_eq!(create["required"], json!(["name"]));
    let escape = &tools.iter().find(|(n, _)| n == "getEscape").unwrap().1;
    assert_eq!(escape["properties"]["verbose"], json!({"type": "boolean"}));

    // A 404 skips only the operation that uses the document, naming URL and status.
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let gone = reason(&skipped, "getGone");
    assert!(
        gone.contains(&format!("{}/schemas/missing.json", server.url())),
        "{gone}"
    );
    assert!(gone.contains("HTTP 404 Not Found"), "{gone}");

    // common.json is named by the main document, by pet.yaml and by a redirect, and
    // fetched once; param.json by the main document and a redirect, fetched once.
    assert_eq!(
        fetched(&server),
        [
            "/other/param.json",
            "/schemas/common.json",
            "/schemas/escape.json",
            "/schemas/missing.json",
            "/schemas/moved.json",
            "/schemas/pet.yaml",
        ]
    );
    // The target's credentials are for its API, never for these fetches.
    for r in server.requests() {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("authorization"), None, "{}", r.uri);
        assert_eq!(r.header("cookie"), None, "{}", r.uri);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_prefixes_allow_only_what_they_cover_redirects_included() {
    let server = Upstream::start(schemas).await;
    let setup = Setup::new(&server);
    let (tools, skipped) = setup.load(&format!(
        "      allow_remote_refs: [\"{}/schemas/\"]\n",
        server.url()
    ));
    assert_eq!(names(&tools), ["createPet", "getMoved", "health"]);
    let list = reason(&skipped, "listPets");
    assert!(
        list.contains(&format!("{}/other/param.json", server.url())),
        "{list}"
    );
    assert!(
        list.contains("not under any URL prefix of `allow_remote_refs`"),
        "{list}"
    );
    let escape = reason(&skipped, "getEscape");
    assert!(
        escape.contains(&format!("redirected to {}/other/param.json", server.url())),
        "{escape}"
    );
    assert!(escape.contains("allow_remote_refs"), "{escape}");
    assert!(reason(&skipped, "getGone").contains("HTTP 404"));
    // Nothing outside the prefix was requested, not even by following the redirect.
    assert!(
        fetched(&server).iter().all(|p| p.starts_with("/schemas/")),
        "{:?}",
        fetched(&server)
    );

    // A prefix is a whole path segment: `/schema` does not cover `/schemas/...`.
    let (tools, skipped) = setup.load(&format!(
        "      allow_remote_refs: [\"{}/schema\"]\n",
        server.url()
    ));
    assert_eq!(names(&tools), ["health"]);
    assert!(reason(&skipped, "createPet").contains("not under any URL prefix"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_prefix_is_a_located_config_error() {
    let server = Upstream::start(schemas).await;
    let setup = Setup::new(&server);
    let path = setup.dir.path().join("gateway.yaml");
    let config = setup.config(
        "http://127.0.0.1:9",
        "      allow_remote_refs: [\"file:///srv/schemas/\"]\n",
    );
    std::fs::write(&path, config).unwrap();
    let e = toolgate::gateway::load(&path).unwrap_err().to_string();
    assert!(e.contains("gateway.yaml:6:"), "{e}");
    assert!(e.contains("allow_remote_refs"), "{e}");
    assert!(e.contains("not an http(s) URL"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_built_from_remote_schemas_validate_and_call_through_the_gateway() {
    let server = Upstream::start(schemas).await;
    let api = Upstream::start(|r| Answer::Json(200, json!({"created": r.json()}))).await;
    let setup = Setup::new(&server);
    let yaml = setup.config(&api.url(), "      allow_remote_refs: true\n");
    let gateway = Gateway::start(&yaml, &[]).await;
    let mcp = client(&gateway.url(), crate::support::Lifecycle::Discover).await;
    let at_load = server.count();
    assert!(at_load > 0);

    let tools = mcp.list_all_tools().await.unwrap();
    let create = tools.iter().find(|t| t.name == "api___createPet").unwrap();
    assert_eq!(
        Value::Object((*create.input_schema).clone())["properties"]["id"],
        json!({"type": "integer", "minimum": 1})
    );

    // The remote schema's constraints are enforced before any request.
    let result = mcp
        .call_tool(
            CallToolRequestParams::new("api___createPet")
                .with_arguments(args(json!({"id": 0, "name": "Rex"}))),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
    assert_eq!(api.count(), 0);

    let result = mcp
        .call_tool(
            CallToolRequestParams::new("api___createPet")
                .with_arguments(args(json!({"id": 7, "name": "Rex", "limit": 3}))),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let sent = api.requests().pop().unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri, "/pets?limit=3");
    assert_eq!(sent.json(), json!({"id": 7, "name": "Rex"}));
    assert_eq!(sent.header("authorization"), Some("Bearer gateway-secret"));
    mcp.cancel().await.unwrap();

    // Documents were fetched at load time only: listing and calling fetched nothing.
    assert_eq!(server.count(), at_load);
}
