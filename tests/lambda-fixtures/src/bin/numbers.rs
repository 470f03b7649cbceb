//! Answers a JSON array (wrapped as `{"result": [...]}` by a tool whose outputSchema is an
//! array schema).

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let count = event.payload.get("count").and_then(Value::as_u64).unwrap_or(3);
    Ok(json!((1..=count).collect::<Vec<u64>>()))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
