//! Lambda targets end to end: an rmcp client → toolgate → the real Lambda Invoke API.
//!
//! - `cargo lambda watch` (from the `cargo-lambda` package) serves the Invoke API on
//!   loopback and runs the real `lambda_runtime` functions of `tests/lambda-fixtures/`.
//! - A recording HTTP server answers exactly as AWS does where cargo-lambda differs:
//!   function errors as 200 + `X-Amz-Function-Error`, throttling (429), transient 5xx,
//!   unknown functions (404) and access denied (403).
//!
//! The SDK signs with static test credentials from the environment of this process.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{
    Answer, Gateway, Recorded, Upstream, all_lifecycles, client, fixture, post_raw,
};
use base64::Engine;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const SECRET: &str = "toolgate-test-secret-value";
const KEY_ID: &str = "AKIDTOOLGATETEST";

/// Static test credentials for the SDK's standard chain (its environment provider), and
/// nothing else of the developer's AWS setup. Set by a constructor that runs before the test
/// harness starts any thread, so no test reads the environment while it changes.
#[ctor::ctor(unsafe)]
fn aws_test_env() {
    // SAFETY: runs before `main`, while the process has one thread.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", KEY_ID);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/toolgate-test");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/toolgate-test");
        for var in [
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_LAMBDA",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            std::env::remove_var(var);
        }
    }
}

use crate::support::{args, text_of};

// ---------------------------------------------------------------------------------------
// cargo lambda watch

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lambda-fixtures")
}

/// The `cargo-lambda` binary: `$CARGO_LAMBDA`, else the fixtures' venv (installed on first
/// use by `tests/lambda-fixtures/install.sh`).
fn cargo_lambda() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CARGO_LAMBDA") {
            return PathBuf::from(bin);
        }
        let bin = fixtures_dir().join(".venv/bin/cargo-lambda");
        if !bin.exists() {
            // The Lambda tests need a real Invoke API emulator: cargo-lambda, from PyPI.
            let status = Command::new(fixtures_dir().join("install.sh"))
                .status()
                .unwrap_or_else(|e| {
                    panic!("cannot run tests/lambda-fixtures/install.sh (needs bash and python3): {e}")
                });
            assert!(
                status.success(),
                "cargo-lambda is needed by the Lambda tests and could not be installed: \
                 tests/lambda-fixtures/install.sh (python3 -m venv + pip install cargo-lambda) failed; \
                 run ./test.sh, or set CARGO_LAMBDA to a cargo-lambda binary"
            );
        }
        bin
    })
    .clone()
}

/// Builds the fixture functions once per test run (cached in their ignored target/), so
/// that the first invocation does not wait for a compile.
fn build_fixtures() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--locked", "--bins", "--quiet"])
            .current_dir(fixtures_dir())
            .env("CARGO_TARGET_DIR", fixtures_dir().join("target"))
            .status()
            .expect("run cargo build for tests/lambda-fixtures");
        assert!(status.success(), "building the Lambda fixtures failed");
    });
}

/// `cargo lambda watch` on a free loopback port, stopped (with the functions it started)
/// when dropped.
pub(crate) struct LambdaWatch {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LambdaWatch {
    pub(crate) fn start() -> LambdaWatch {
        build_fixtures();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = fixtures_dir().join(format!("target/watch-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(cargo_lambda());
        command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .current_dir(fixtures_dir())
            .env("CARGO_TARGET_DIR", fixtures_dir().join("target"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start cargo lambda watch");
        let mut watch = LambdaWatch { child, port, log };
        watch.wait_ready(Duration::from_secs(120));
        watch
    }

    /// Waits until the Invoke API accepts connections (or the process exits, or time runs out).
    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut pause = Duration::from_millis(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("cargo lambda watch exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch not listening on {} after {limit:?}:\n{}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: signals the process group this test started (cargo lambda and its functions).
        unsafe {
            libc::kill(-group, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left of the group is killed.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn rest_api(r: &Recorded) -> Answer {
    match r.path() {
        p if p.starts_with("/api/pets/") => {
            Answer::Json(200, json!({"id": 7, "name": "Rex", "tag": "dog"}))
        }
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cargo_lambda_functions_are_tools_next_to_openapi_tools() {
    let watch = tokio::task::spawn_blocking(LambdaWatch::start)
        .await
        .unwrap();
    let upstream = Upstream::start(rest_api).await;
    let yaml = format!(
        r#"
gateway:
  name: demo-gateway
targets:
  - name: api
    openapi:
      spec: testapi.yaml
      base_url: {rest}/api
      include: {{ operations: [getPet] }}
  - name: orders
    lambda:
      function: echo
      region: us-east-1
      endpoint_url: {lambda}
      tools: lambda-tools.json
      exclude: {{ tools: [internal_only] }}
      timeout: 120s
  - name: greeter
    lambda:
      function: greet
      region: us-east-1
      endpoint_url: {lambda}
      timeout: 120s
      tools:
        - name: greet
          description: Say hello.
          inputSchema: {{ type: object, properties: {{ name: {{ type: string }} }} }}
  - name: numbers
    lambda:
      function: numbers:$LATEST
      region: us-east-1
      endpoint_url: {lambda}
      timeout: 120s
      tools:
        - name: list
          description: List numbers.
          inputSchema: {{ type: object, properties: {{ count: {{ type: integer }} }} }}
          outputSchema: {{ type: array, items: {{ type: integer }} }}
  - name: broken
    lambda:
      function: fail
      region: us-east-1
      endpoint_url: {lambda}
      timeout: 120s
      tools:
        - name: cancel_order
          description: Cancel an order.
          inputSchema:
            type: object
            properties: {{ orderId: {{ type: string }} }}
"#,
        rest = upstream.url(),
        lambda = watch.url(),
    );
    let gateway = Gateway::start(
        &yaml,
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            ("lambda-tools.json", &fixture("lambda-tools.json")),
        ],
    )
    .await;

    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let tools = mcp.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "api___getPet",
            "orders___get_order",
            "greeter___greet",
            "numbers___list",
            "broken___cancel_order"
        ]
    );
    let get_order = tools
        .iter()
        .find(|t| t.name == "orders___get_order")
        .unwrap();
    assert_eq!(get_order.input_schema["required"], json!(["orderId"]));
    assert_eq!(
        get_order.description.as_deref(),
        Some("Look up an order by id.")
    );
    let list = tools.iter().find(|t| t.name == "numbers___list").unwrap();
    assert_eq!(
        list.output_schema.as_ref().unwrap()["properties"]["result"]["type"],
        "array"
    );

    // The OpenAPI tool on the same endpoint.
    let pet = mcp
        .call_tool(
            CallToolRequestParams::new("api___getPet").with_arguments(args(json!({"petId": "7"}))),
        )
        .await
        .unwrap();
    assert_eq!(pet.is_error, Some(false), "{}", text_of(&pet));
    assert_eq!(pet.structured_content.unwrap()["name"], "Rex");

    // The function sees the arguments as its event.
    let event = json!({"orderId": "o-42", "expand": ["lines", "customer"]});
    let result = mcp
        .call_tool(
            CallToolRequestParams::new("orders___get_order").with_arguments(args(event.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        result.is_error,
        Some(false),
        "{}\n{}",
        text_of(&result),
        watch.log_text()
    );
    let seen = result
        .structured_content
        .clone()
        .expect("structured answer");
    assert_eq!(
        serde_json::from_str::<Value>(&text_of(&result)).unwrap(),
        seen
    );
    assert_eq!(seen["event"], event);
    assert!(!seen["requestId"].as_str().unwrap().is_empty());
    // cargo-lambda 1.9.2 does not pass the Invoke API's X-Amz-Client-Context on to the
    // function (it forwards only its own `lambda-runtime-client-context` request header,
    // base64-encoded, which lambda_runtime cannot parse): the function sees no client
    // context there. The recorded-AWS tests check the header on the wire; should a later
    // cargo-lambda pass it on, it must carry exactly AgentCore's fields.
    let custom = &seen["custom"];
    if !custom.is_null() {
        assert_eq!(seen["toolName"], "orders___get_order");
        assert_eq!(custom["bedrockAgentCoreToolName"], "orders___get_order");
        assert_eq!(custom["bedrockAgentCoreMessageVersion"], "1.0");
        assert_eq!(custom["bedrockAgentCoreGatewayId"], "demo-gateway");
        assert_eq!(custom["bedrockAgentCoreTargetId"], "orders");
        assert_eq!(custom.as_object().unwrap().len(), 7, "{custom}");
    }

    // A string payload is text; a non-object payload with an outputSchema is wrapped.
    let greet = mcp
        .call_tool(
            CallToolRequestParams::new("greeter___greet")
                .with_arguments(args(json!({"name": "Ada"}))),
        )
        .await
        .unwrap();
    assert_eq!(greet.is_error, Some(false), "{}", text_of(&greet));
    assert_eq!(text_of(&greet), "Hello, Ada!");
    assert_eq!(greet.structured_content, None);
    let listed = mcp
        .call_tool(CallToolRequestParams::new("numbers___list").with_arguments(args(json!({}))))
        .await
        .unwrap();
    assert_eq!(listed.is_error, Some(false), "{}", text_of(&listed));
    assert_eq!(
        listed.structured_content,
        Some(json!({"result": [1, 2, 3]}))
    );

    // A failing function (cargo-lambda answers HTTP 500 where AWS answers 200 +
    // X-Amz-Function-Error): an isError result with errorType and errorMessage.
    let failed = mcp
        .call_tool(
            CallToolRequestParams::new("broken___cancel_order")
                .with_arguments(args(json!({"orderId": "o-9"}))),
        )
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    let text = text_of(&failed);
    assert!(text.contains("errorType: "), "{text}");
    assert!(text.contains("OrderNotFound"), "{text}");
    assert!(
        text.contains("errorMessage: order o-9 does not exist"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");

    mcp.cancel().await.unwrap();
    drop(gateway);
    tokio::task::spawn_blocking(move || drop(watch))
        .await
        .unwrap();
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

// ---------------------------------------------------------------------------------------
// AWS's own answers, recorded

/// Answers the Invoke API as AWS does, by function name: `echo` echoes its event,
/// `boom` fails (200 + X-Amz-Function-Error), `busy` is throttled twice, `flaky` fails
/// once with a 500 ServiceException, `hot` is always throttled, `nope` does not exist,
/// `denied` may not be invoked.
fn aws(counts: Arc<AtomicUsize>) -> impl Fn(&Recorded) -> Answer + Send + Sync + 'static {
    move |r: &Recorded| {
        let function = r
            .path()
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|p| p.strip_suffix("/invocations"))
            .and_then(|p| p.rsplit("%3A").next())
            .unwrap_or("")
            .to_string();
        let n = counts.fetch_add(1, Ordering::SeqCst);
        let ok = |body: Value| {
            Answer::JsonWith(
                200,
                body,
                vec![
                    ("x-amz-executed-version", "$LATEST"),
                    ("x-amzn-requestid", "b3f1e2d4-0000-4000-8000-000000000001"),
                ],
            )
        };
        match function.as_str() {
            "echo" => ok(r.json()),
            "boom" => Answer::JsonWith(
                200,
                json!({"errorType": "OrderNotFound", "errorMessage": "order 42 does not exist",
                       "trace": ["OrderNotFound: order 42 does not exist", "    at handler (/var/task/index.js:3:9)"]}),
                vec![
                    ("x-amz-function-error", "Unhandled"),
                    ("x-amz-executed-version", "$LATEST"),
                ],
            ),
            "busy" | "hot" if function == "hot" || n < 2 => Answer::JsonWith(
                429,
                json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "CallerRateLimitExceeded"}),
                vec![("x-amzn-errortype", "TooManyRequestsException")],
            ),
            "flaky" if n < 1 => Answer::JsonWith(
                500,
                json!({"Type": "Service", "Message": "An internal error occurred."}),
                vec![("x-amzn-errortype", "ServiceException")],
            ),
            "busy" | "flaky" => ok(json!({"ok": true, "attempt": n + 1})),
            "slow" => Answer::Hang,
            "denied" => Answer::JsonWith(
                403,
                json!({"Message": "User: arn:aws:sts::123456789012:assumed-role/gateway/i-0abc is not authorized to perform: lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:denied because no identity-based policy allows the lambda:InvokeFunction action"}),
                vec![("x-amzn-errortype", "AccessDeniedException")],
            ),
            _ => Answer::JsonWith(
                404,
                json!({"Type": "User", "Message": format!("Function not found: arn:aws:lambda:us-east-1:123456789012:function:{function}")}),
                vec![("x-amzn-errortype", "ResourceNotFoundException")],
            ),
        }
    }
}

/// A gateway with one target per function of the recorded server.
async fn recorded(
    functions: &[(&str, &str)],
    extra: &str,
) -> (Upstream, Gateway, Arc<AtomicUsize>) {
    let counts = Arc::new(AtomicUsize::new(0));
    let upstream = Upstream::start(aws(counts.clone())).await;
    let mut yaml = format!("gateway:\n  name: recorded\n{extra}targets:\n");
    for (target, settings) in functions {
        yaml.push_str(&format!(
            "  - name: {target}\n    lambda:\n      region: us-east-1\n      endpoint_url: {url}\n{settings}      tools:\n        - {{name: run, description: Run., inputSchema: {{type: object}}}}\n",
            url = upstream.url()
        ));
    }
    let gateway = Gateway::start(&yaml, &[]).await;
    (upstream, gateway, counts)
}

async fn call(gateway: &Gateway, tool: &str, arguments: Value) -> rmcp::model::CallToolResult {
    let mcp = client(&gateway.url(), all_lifecycles().remove(2).1).await;
    let result = mcp
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap();
    mcp.cancel().await.unwrap();
    result
}

#[tokio::test]
async fn the_invoke_request_is_signed_and_carries_the_agentcore_context() {
    let (upstream, gateway, _) = recorded(
        &[(
            "orders",
            "      function: 123456789012:function:echo\n      qualifier: live\n",
        )],
        "",
    )
    .await;
    let result = call(&gateway, "orders___run", json!({"orderId": "o-1", "n": 2})).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    assert_eq!(
        result.structured_content,
        Some(json!({"orderId": "o-1", "n": 2}))
    );
    let r = upstream.requests().pop().unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path(),
        "/2015-03-31/functions/123456789012%3Afunction%3Aecho/invocations"
    );
    assert_eq!(r.query(), "Qualifier=live");
    assert_eq!(r.header("x-amz-invocation-type"), Some("RequestResponse"));
    assert_eq!(r.json(), json!({"orderId": "o-1", "n": 2}));
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/lambda/aws4_request"), "{auth}");
    let context = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-amz-client-context").unwrap())
        .unwrap();
    let context: Value = serde_json::from_slice(&context).unwrap();
    let custom = &context["custom"];
    assert_eq!(custom["bedrockAgentCoreToolName"], "orders___run");
    assert_eq!(custom["bedrockAgentCoreTargetId"], "orders");
    assert_eq!(custom["bedrockAgentCoreGatewayId"], "recorded");
    assert_eq!(custom["bedrockAgentCoreMessageVersion"], "1.0");
    assert!(
        custom["bedrockAgentCoreMcpMessageId"].is_string(),
        "{context}"
    );
    for key in ["bedrockAgentCoreAwsRequestId", "bedrockAgentCoreSessionId"] {
        let id = custom[key].as_str().unwrap();
        assert!(uuid_like(id), "{key}: {id}");
    }
    assert_eq!(custom.as_object().unwrap().len(), 7, "{custom}");

    // The exact JSON-RPC id (string or number) and the client's Mcp-Session-Id.
    for (id, session, expected_session) in [
        (json!("req-77"), Some("session-abc"), Some("session-abc")),
        (json!(901), None, None),
    ] {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        if let Some(s) = session {
            headers.push(("mcp-session-id", s));
        }
        let (status, _, body) = post_raw(
            &gateway.url(),
            &headers,
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "orders___run", "arguments": {"orderId": "o-1"}}})
            .to_string(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["isError"], false, "{body}");
        let r = upstream.requests().pop().unwrap();
        let context = base64::engine::general_purpose::STANDARD
            .decode(r.header("x-amz-client-context").unwrap())
            .unwrap();
        let custom = serde_json::from_slice::<Value>(&context).unwrap()["custom"].clone();
        let expected_id = match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(custom["bedrockAgentCoreMcpMessageId"], expected_id.as_str());
        match expected_session {
            Some(s) => assert_eq!(custom["bedrockAgentCoreSessionId"], s),
            None => assert!(uuid_like(
                custom["bedrockAgentCoreSessionId"].as_str().unwrap()
            )),
        }
    }
}

#[tokio::test]
async fn aws_function_errors_are_tool_errors_and_not_retried() {
    let (upstream, gateway, _) = recorded(&[("orders", "      function: boom\n")], "").await;
    let result = call(&gateway, "orders___run", json!({})).await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("returned an error (Unhandled)"), "{text}");
    assert!(text.contains("errorType: OrderNotFound"), "{text}");
    assert!(
        text.contains("errorMessage: order 42 does not exist"),
        "{text}"
    );
    assert_eq!(upstream.count(), 1);
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("orders___run") && l.contains("tool_error") && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn throttling_and_transient_errors_are_retried_with_backoff() {
    let (upstream, gateway, _) = recorded(&[("orders", "      function: busy\n")], "").await;
    let result = call(&gateway, "orders___run", json!({})).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    assert_eq!(
        result.structured_content,
        Some(json!({"ok": true, "attempt": 3}))
    );
    assert_eq!(upstream.count(), 3);

    let (upstream, gateway, _) = recorded(&[("orders", "      function: flaky\n")], "").await;
    let result = call(&gateway, "orders___run", json!({})).await;
    assert_eq!(
        result.structured_content,
        Some(json!({"ok": true, "attempt": 2}))
    );
    assert_eq!(upstream.count(), 2);

    // Always throttled: retries stop within the timeout and say so.
    let (upstream, gateway, _) = recorded(
        &[("orders", "      function: hot\n      timeout: 1500ms\n")],
        "",
    )
    .await;
    let started = Instant::now();
    let result = call(&gateway, "orders___run", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("throttled"), "{text}");
    assert!(text.contains("TooManyRequestsException"), "{text}");
    assert!(upstream.count() >= 2, "{}", upstream.count());
}

#[tokio::test]
async fn a_function_that_does_not_answer_times_out() {
    let (upstream, gateway, _) = recorded(
        &[("orders", "      function: slow\n      timeout: 300ms\n")],
        "",
    )
    .await;
    let result = call(&gateway, "orders___run", json!({})).await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("did not answer within 300ms"), "{text}");
    assert_eq!(upstream.count(), 1);
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("orders___run") && l.contains("\"timeout\"") && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_functions_and_access_denied_tell_the_operator_what_to_fix() {
    let (upstream, gateway, _) = recorded(
        &[
            ("missing", "      function: nope\n"),
            (
                "locked",
                "      function: arn:aws:lambda:us-east-1:123456789012:function:denied\n",
            ),
        ],
        "",
    )
    .await;
    let result = call(&gateway, "missing___run", json!({})).await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(
        text.contains("Lambda function nope was not found in us-east-1"),
        "{text}"
    );
    assert!(text.contains("lambda.function"), "{text}");
    assert!(text.contains("Function not found"), "{text}");

    let result = call(&gateway, "locked___run", json!({})).await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(
        text.contains(
            "Grant lambda:InvokeFunction on arn:aws:lambda:us-east-1:123456789012:function:denied"
        ),
        "{text}"
    );
    assert!(!text.contains(SECRET) && !text.contains(KEY_ID), "{text}");
    // Neither is retried.
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn payloads_over_six_megabytes_are_refused_before_the_call() {
    let (upstream, gateway, _) = recorded(
        &[("orders", "      function: echo\n")],
        "  max_body: 16MiB\n",
    )
    .await;
    let big = "x".repeat(6 * 1024 * 1024 + 1);
    let result = call(&gateway, "orders___run", json!({ "data": big })).await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("above Lambda's limit of 6 MB"), "{text}");
    assert!(text.contains("the function was not called"), "{text}");
    assert_eq!(upstream.count(), 0);
    // Just under the limit goes through.
    let fits = "x".repeat(6 * 1024 * 1024 - 100);
    let result = call(&gateway, "orders___run", json!({ "data": fits })).await;
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn lambda_answers_are_cached_like_openapi_answers() {
    let (upstream, gateway, _) = recorded(&[("orders", "      function: echo\n")], "").await;
    drop(gateway);
    let yaml = format!(
        "targets:\n  - name: orders\n    cache: {{ ttl: 60s }}\n    lambda:\n      function: echo\n      region: us-east-1\n      endpoint_url: {}\n      tools:\n        - {{name: a, description: A., inputSchema: {{type: object}}}}\n        - {{name: b, description: B., inputSchema: {{type: object}}}}\n    operations:\n      b: {{ cache: false }}\n",
        upstream.url()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    for _ in 0..2 {
        let r = call(&gateway, "orders___a", json!({"k": 1})).await;
        assert_eq!(r.structured_content, Some(json!({"k": 1})));
        call(&gateway, "orders___b", json!({"k": 1})).await;
    }
    // `a` once (then from the cache), `b` twice.
    assert_eq!(upstream.count(), 3);
}

// ---------------------------------------------------------------------------------------
// Load-time checks

fn load_error(yaml: &str, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).unwrap();
    toolgate::gateway::load(&config)
        .map(|_| ())
        .expect_err("the configuration must be rejected")
        .to_string()
}

#[test]
fn tool_definition_errors_name_the_file_and_the_json_pointer() {
    let tools = r#"[{"name": "ok", "description": "d", "inputSchema": {"type": "object"}},
                    {"name": "bad", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {"type": 12}}}}]"#;
    let yaml = "targets:\n  - name: t\n    lambda:\n      function: f\n      region: us-east-1\n      tools: tools.json\n";
    let e = load_error(yaml, &[("tools.json", tools)]);
    assert!(e.contains("tools.json"), "{e}");
    assert!(e.contains("/1/inputSchema: not a valid JSON Schema"), "{e}");

    let e = load_error(yaml, &[("tools.json", "[{\"name\": \"x\",}]")]);
    assert!(e.contains("tools.json:1:"), "{e}");

    let inline = "targets:\n  - name: t\n    lambda:\n      function: f\n      region: us-east-1\n      tools:\n        - {name: a, description: d, inputSchema: {type: object}}\n        - {name: a, description: d, inputSchema: {type: object}}\n";
    let e = load_error(inline, &[]);
    assert!(e.contains("gateway.yaml:7:"), "{e}");
    assert!(
        e.contains("lambda.tools/1/name: tool `a` is already defined at /0"),
        "{e}"
    );
}

#[test]
fn lambda_sections_are_checked_at_load() {
    let both = "targets:\n  - name: t\n    openapi: {spec: x.yaml}\n    lambda: {function: f, region: us-east-1, tools: []}\n";
    assert!(load_error(both, &[]).contains("takes exactly one"));
    let arn = "targets:\n  - name: t\n    lambda:\n      function: arn:aws:lambda:eu-west-1:123456789012:function:f\n      region: us-east-1\n      tools: [{name: a, description: d, inputSchema: {type: object}}]\n";
    let e = load_error(arn, &[]);
    assert!(
        e.contains("gateway.yaml:5:") && e.contains("differs from the function ARN's region"),
        "{e}"
    );
    let bad = "targets:\n  - name: t\n    lambda:\n      function: not a function\n      region: us-east-1\n      tools: [{name: a, description: d, inputSchema: {type: object}}]\n";
    let e = load_error(bad, &[]);
    assert!(
        e.contains("gateway.yaml:4:") && e.contains("partial ARN"),
        "{e}"
    );
    let no_region = "targets:\n  - name: t\n    lambda:\n      function: f\n      tools: [{name: a, description: d, inputSchema: {type: object}}]\n";
    let e = load_error(no_region, &[]);
    assert!(
        e.contains("no AWS region") && e.contains("AWS_REGION"),
        "{e}"
    );
    let creds = "targets:\n  - name: t\n    credentials: {bearer: x}\n    lambda:\n      function: f\n      region: us-east-1\n      tools: [{name: a, description: d, inputSchema: {type: object}}]\n";
    assert!(load_error(creds, &[]).contains("take no `credentials`"));
    let typo = "targets:\n  - name: t\n    lambda:\n      fucntion: f\n";
    let e = load_error(typo, &[]);
    assert!(
        e.contains("gateway.yaml:4:") && e.contains("did you mean `function`"),
        "{e}"
    );
}
