//! Echoes what an AgentCore Gateway target function sees: the event (the tool's arguments)
//! and the custom fields of the client context (tool name, gateway, target, message ids).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let custom = context
        .client_context
        .as_ref()
        .map(|c| json!(c.custom))
        .unwrap_or(Value::Null);
    let tool = custom
        .get("bedrockAgentCoreToolName")
        .cloned()
        .unwrap_or(Value::Null);
    // As AgentCore's examples do: the tool name after the target prefix picks the behaviour.
    let local = tool
        .as_str()
        .and_then(|t| t.split("___").nth(1))
        .unwrap_or("");
    Ok(match local {
        "greet" => json!(format!(
            "Hello, {}!",
            payload.get("name").and_then(Value::as_str).unwrap_or("you")
        )),
        "list" => json!([1, 2, 3]),
        _ => json!({
            "toolName": tool,
            "event": payload,
            "custom": custom,
            "requestId": context.request_id,
        }),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
