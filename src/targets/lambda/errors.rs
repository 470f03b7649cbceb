//! Why a Lambda call produced no answer, and what the operator or the model should do.
//! Messages name the function and the fix; they never carry credential values (AWS error
//! messages are cut to their first line and scrubbed of key ids and signatures).

use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::operation::invoke::InvokeError;
use serde_json::Value;

use super::{LambdaTarget, MAX_CLIENT_CONTEXT_BYTES, MAX_PAYLOAD_BYTES};
use crate::metrics::Outcome;

/// Why a Lambda call failed. Every variant becomes an `isError` tool result.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The function ran and returned an error (`X-Amz-Function-Error`, or the 500 answer of
    /// local emulators such as cargo-lambda).
    #[error(
        "the Lambda function returned an error ({kind})\nerrorType: {error_type}\nerrorMessage: {error_message}"
    )]
    Function {
        /// `Handled` or `Unhandled`.
        kind: String,
        /// The error's type (class) as the runtime reports it.
        error_type: String,
        /// The error's message.
        error_message: String,
    },
    /// The arguments are above Lambda's synchronous payload limit; nothing was sent.
    #[error(
        "the arguments are {bytes} bytes of JSON, above Lambda's limit of 6 MB ({MAX_PAYLOAD_BYTES} bytes) \
         for a synchronous invocation; the function was not called. Send less data (for example a reference to it)"
    )]
    PayloadTooLarge {
        /// Size of the serialized arguments.
        bytes: usize,
    },
    /// The arguments could not be serialized.
    #[error("cannot serialize the arguments: {0}")]
    Payload(String),
    /// The client context would exceed Lambda's limit.
    #[error(
        "the Lambda client context would be {bytes} bytes, above Lambda's limit of {MAX_CLIENT_CONTEXT_BYTES}"
    )]
    ContextTooLarge {
        /// Its base64 size.
        bytes: usize,
    },
    /// No such function, version or alias.
    #[error(
        "Lambda function {function} was not found in {region} (AWS: {message}). Check lambda.function, \
         lambda.qualifier and lambda.region of target `{target}`: the function, version or alias must exist in that \
         account and region"
    )]
    NotFound {
        /// Target name.
        target: String,
        /// The function as configured.
        function: String,
        /// The client's region.
        region: String,
        /// AWS's message, scrubbed.
        message: String,
    },
    /// The gateway's identity may not invoke the function.
    #[error(
        "access denied invoking Lambda function {function} in {region} (AWS: {message}). Grant \
         lambda:InvokeFunction on {resource} to the AWS identity the gateway runs as (its IAM role or user)"
    )]
    AccessDenied {
        /// The function as configured.
        function: String,
        /// The client's region.
        region: String,
        /// The resource to grant on (ARN pattern).
        resource: String,
        /// AWS's message, scrubbed.
        message: String,
    },
    /// No credentials, or credentials AWS rejects.
    #[error(
        "the gateway's AWS credentials are missing or were rejected ({message}). Configure credentials for the \
         standard AWS chain (environment, profile, SSO, web identity, ECS or EC2 metadata) where the gateway runs"
    )]
    Credentials {
        /// What failed, scrubbed.
        message: String,
    },
    /// Lambda refused the call (other 4xx, non-transient 5xx).
    #[error("Lambda answered HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Service {
        /// HTTP status.
        status: u16,
        /// AWS error code.
        code: Option<String>,
        /// AWS's message, scrubbed.
        message: String,
    },
    /// Throttled or transient failures until the attempts or the time ran out.
    #[error("{last} (gave up after {attempts} attempts with backoff)")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<LambdaError>,
    },
    /// Throttled (TooManyRequestsException, HTTP 429).
    #[error(
        "Lambda throttled the invocation (HTTP 429 {code}: {message}); raise the function's reserved or account \
         concurrency, or call again later"
    )]
    Throttled {
        /// AWS error code.
        code: String,
        /// AWS's message, scrubbed.
        message: String,
    },
    /// No answer within the timeout.
    #[error("the Lambda function did not answer within {timeout:?} ({attempts} attempt(s){})", last.as_ref().map(|l| format!("; last failure: {l}")).unwrap_or_default())]
    Timeout {
        /// The target's timeout.
        timeout: Duration,
        /// Attempts started.
        attempts: u32,
        /// The failure before the last attempt, if any.
        last: Option<Box<LambdaError>>,
    },
    /// Connecting or talking to the Invoke API failed.
    #[error("could not reach the Lambda Invoke API: {0}")]
    Transport(String),
}

impl LambdaError {
    /// How the call counts in metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            LambdaError::Function { .. } => Outcome::ToolError,
            LambdaError::PayloadTooLarge { .. } | LambdaError::Payload(_) => {
                Outcome::InvalidArguments
            }
            LambdaError::Timeout { .. } => Outcome::Timeout,
            LambdaError::GaveUp { last, .. } => last.outcome(),
            _ => Outcome::UpstreamError,
        }
    }

    /// The HTTP status of the Invoke API answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LambdaError::Function { .. } => Some(200),
            LambdaError::NotFound { .. } => Some(404),
            LambdaError::AccessDenied { .. } => Some(403),
            LambdaError::Throttled { .. } => Some(429),
            LambdaError::Service { status, .. } => Some(*status),
            LambdaError::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// What to do after a failed attempt.
pub(super) enum Attempt {
    /// Report this.
    Fatal(LambdaError),
    /// Try again after a backoff (at least `after` when Lambda says so).
    Retry {
        error: LambdaError,
        after: Option<Duration>,
    },
}

/// A function error from its payload (`{"errorType", "errorMessage", ...}`).
pub(super) fn function_error(kind: &str, body: &[u8]) -> LambdaError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    LambdaError::Function {
        kind: kind.to_string(),
        error_type: field("errorType").unwrap_or_else(|| "Unknown".into()),
        error_message: field("errorMessage")
            .unwrap_or_else(|| excerpt(&String::from_utf8_lossy(body), 1000)),
    }
}

/// Whether an error answer is a function error in the shape local emulators send (no AWS
/// error code, an `errorType` in the body).
fn emulated_function_error(raw: &HttpResponse) -> Option<LambdaError> {
    if raw.headers().get("x-amzn-errortype").is_some() {
        return None;
    }
    let body = raw.body().bytes()?;
    let parsed: Value = serde_json::from_slice(body).ok()?;
    parsed.get("errorType")?;
    let kind = raw
        .headers()
        .get("x-amz-function-error")
        .unwrap_or("Unhandled")
        .to_string();
    Some(function_error(&kind, body))
}

/// Sorts a failed attempt into retry or report.
pub(super) fn classify(
    target: &LambdaTarget,
    error: SdkError<InvokeError, HttpResponse>,
) -> Attempt {
    let function = target.function.display();
    let region = target.region.clone();
    match error {
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let status = raw.status().as_u16();
            if let Some(function_error) = emulated_function_error(raw) {
                return Attempt::Fatal(function_error);
            }
            let err = service.err();
            let code = err.code().map(str::to_string);
            let mut message = scrub(err.message().unwrap_or(""));
            if message.is_empty() {
                message = format!("HTTP {status} with no message");
            }
            let retry_after = match err {
                InvokeError::TooManyRequestsException(t) => t
                    .retry_after_seconds()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Duration::from_secs),
                _ => None,
            };
            let code_str = code.as_deref().unwrap_or("");
            match (status, code_str) {
                (429, _) | (_, "TooManyRequestsException") => Attempt::Retry {
                    error: LambdaError::Throttled {
                        code: code.unwrap_or_else(|| "TooManyRequestsException".into()),
                        message,
                    },
                    after: retry_after,
                },
                (404, _) | (_, "ResourceNotFoundException") => {
                    Attempt::Fatal(LambdaError::NotFound {
                        target: target.name.to_string(),
                        function,
                        region,
                        message,
                    })
                }
                (_, "AccessDeniedException") => Attempt::Fatal(LambdaError::AccessDenied {
                    resource: resource_arn(&target.function.function, &target.region),
                    function,
                    region,
                    message,
                }),
                (
                    _,
                    "UnrecognizedClientException"
                    | "InvalidSignatureException"
                    | "ExpiredTokenException"
                    | "IncompleteSignature"
                    | "MissingAuthenticationToken"
                    | "InvalidClientTokenId",
                ) => Attempt::Fatal(LambdaError::Credentials {
                    // These messages can quote the signed request: keep only the code.
                    message: format!("HTTP {status} {code_str}"),
                }),
                (403, _) => Attempt::Fatal(LambdaError::AccessDenied {
                    resource: resource_arn(&target.function.function, &target.region),
                    function,
                    region,
                    message: format!("HTTP 403 {code_str}"),
                }),
                (500 | 503 | 504, _)
                | (_, "ServiceException" | "EC2ThrottledException" | "ResourceNotReadyException") => {
                    Attempt::Retry {
                        error: LambdaError::Service {
                            status,
                            code,
                            message,
                        },
                        after: None,
                    }
                }
                _ => Attempt::Fatal(LambdaError::Service {
                    status,
                    code,
                    message,
                }),
            }
        }
        SdkError::DispatchFailure(d) => {
            let text = scrub(
                &d.as_connector_error()
                    .map(|c| DisplayErrorContext(c).to_string())
                    .unwrap_or_else(|| "the request could not be sent".into()),
            );
            if d.is_io() || d.is_timeout() {
                Attempt::Retry {
                    error: LambdaError::Transport(text),
                    after: None,
                }
            } else {
                Attempt::Fatal(LambdaError::Transport(text))
            }
        }
        SdkError::TimeoutError(_) => Attempt::Retry {
            error: LambdaError::Transport("the request timed out".into()),
            after: None,
        },
        other => {
            let text = scrub(&DisplayErrorContext(&other).to_string());
            if text.to_ascii_lowercase().contains("credential") {
                Attempt::Fatal(LambdaError::Credentials { message: text })
            } else {
                Attempt::Fatal(LambdaError::Transport(text))
            }
        }
    }
}

/// The ARN to grant `lambda:InvokeFunction` on: the configured ARN, or a pattern with the
/// region for a name (the account is the gateway's).
fn resource_arn(function: &str, region: &str) -> String {
    if function.starts_with("arn:") {
        format!("{function} (and its versions and aliases: {function}:*)")
    } else if let Some((account, name)) = function.split_once(":function:") {
        format!("arn:aws:lambda:{region}:{account}:function:{name}")
    } else {
        format!("arn:aws:lambda:{region}:<account>:function:{function}")
    }
}

/// First line of an AWS message, bounded, with access key ids and signature material cut.
pub(super) fn scrub(message: &str) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    let mut out = String::with_capacity(first.len());
    for word in first.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let lower = word.to_ascii_lowercase();
        let key_id = word
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .get(..4)
            .is_some_and(|p| matches!(p, "AKIA" | "ASIA" | "AIDA" | "AROA"));
        if key_id
            || lower.contains("credential=")
            || lower.contains("signature=")
            || lower.contains("token") && word.len() > 40
        {
            out.push_str("<redacted>");
        } else {
            out.push_str(word);
        }
    }
    excerpt(&out, 500)
}

fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_key_ids_and_extra_lines() {
        let s =
            scrub("The security token AKIAIOSFODNN7EXAMPLE is bad Credential=AKIA/2024\nline two");
        assert!(!s.contains("AKIAIOSFODNN7EXAMPLE"), "{s}");
        assert!(!s.contains("Credential="), "{s}");
        assert!(!s.contains("line two"), "{s}");
    }

    #[test]
    fn function_errors_read_the_payload() {
        let e = function_error(
            "Unhandled",
            br#"{"errorType":"OrderNotFound","errorMessage":"order 42 does not exist","stackTrace":[]}"#,
        );
        let text = e.to_string();
        assert!(text.contains("errorType: OrderNotFound"), "{text}");
        assert!(
            text.contains("errorMessage: order 42 does not exist"),
            "{text}"
        );
        assert_eq!(e.outcome(), Outcome::ToolError);
    }

    #[test]
    fn grant_resource_names_the_function() {
        assert_eq!(
            resource_arn("orders", "eu-west-1"),
            "arn:aws:lambda:eu-west-1:<account>:function:orders"
        );
        assert_eq!(
            resource_arn("123456789012:function:orders", "eu-west-1"),
            "arn:aws:lambda:eu-west-1:123456789012:function:orders"
        );
    }
}
