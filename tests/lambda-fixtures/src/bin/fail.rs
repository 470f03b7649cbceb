//! Always fails: the runtime reports the error to Lambda, which answers the caller with a
//! function error (`errorType`, `errorMessage`).

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;

#[derive(Debug)]
struct OrderNotFound(String);

impl std::fmt::Display for OrderNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} does not exist", self.0)
    }
}

impl From<OrderNotFound> for Diagnostic {
    fn from(e: OrderNotFound) -> Diagnostic {
        Diagnostic {
            error_type: "OrderNotFound".into(),
            error_message: e.to_string(),
        }
    }
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, OrderNotFound> {
    let id = event
        .payload
        .get("orderId")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    Err(OrderNotFound(id))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
