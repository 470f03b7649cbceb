//! Answers a JSON string (a text result for the MCP client).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<String, Error> {
    let name = event.payload.get("name").and_then(Value::as_str).unwrap_or("you");
    Ok(format!("Hello, {name}!"))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
