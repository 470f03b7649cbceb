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
    Ok(json!({
        "toolName": custom.get("bedrockAgentCoreToolName").cloned().unwrap_or(Value::Null),
        "event": payload,
        "custom": custom,
        "requestId": context.request_id,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
