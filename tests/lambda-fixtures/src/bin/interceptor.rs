//! A request interceptor with AgentCore Gateway's contract: upper-cases the `petId`
//! argument of a `tools/call`, and answers directly (an error result, no upstream call)
//! when the argument is `deny`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let mut message = event.payload["mcp"]["gatewayRequest"]["body"].clone();
    let pet = message["params"]["arguments"]["petId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if pet == "deny" {
        return Ok(json!({"interceptorOutputVersion": "1.0", "mcp": {
            "transformedGatewayResponse": {"statusCode": 200, "body": {
                "jsonrpc": "2.0", "id": message["id"],
                "result": {"isError": true, "content": [{"type": "text", "text": "denied by the interceptor"}]}}}}}));
    }
    message["params"]["arguments"]["petId"] = json!(pet.to_uppercase());
    Ok(json!({"interceptorOutputVersion": "1.0", "mcp": {
        "transformedGatewayRequest": {"body": message}}}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
