//! Lambda targets: AWS Lambda functions served as MCP tools, with AgentCore Gateway's event
//! contract (the event is the arguments object; `ClientContext.custom` carries the
//! `bedrockAgentCore*` fields), so functions written for AgentCore run unchanged.
//!
//! [`Clients`] builds one Invoke API client per region and endpoint at load time (standard
//! AWS credential chain); [`LambdaTarget::invoke`] makes one `RequestResponse` call with
//! jittered exponential backoff on throttling and transient failures, within the timeout.

pub mod settings;
pub mod tools;

mod errors;
mod invoke;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::catalog::ToolAnnotations;
use crate::config::{Config, ConfigError, TargetConfig};
use crate::gateway::LoadError;
use crate::targets::{
    Binding, CallContext, CallFailure, LoadContext, TargetTools, ToolSpec, UpstreamAnswer,
};

pub use errors::LambdaError;
pub use invoke::CallIds;
pub(crate) use invoke::build_clients;
pub use settings::{FunctionRef, LambdaTargetConfig, ToolFilter, ToolsSource};
pub use tools::LambdaToolSpec;

/// Lambda's limit on a synchronous invocation's request payload: 6 MB.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Lambda's limit on the base64 `ClientContext` of an invocation.
pub const MAX_CLIENT_CONTEXT_BYTES: usize = 3583;

/// One Lambda target: the function, its client and its limits.
pub struct LambdaTarget {
    /// Target name (`bedrockAgentCoreTargetId`, metrics label).
    pub name: Arc<str>,
    /// Gateway name (`bedrockAgentCoreGatewayId`).
    pub gateway: Arc<str>,
    /// The function invoked.
    pub function: FunctionRef,
    /// The region the client signs for.
    pub region: String,
    /// Time for one call, retries included.
    pub timeout: Duration,
    client: aws_sdk_lambda::Client,
}

impl std::fmt::Debug for LambdaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaTarget")
            .field("name", &self.name)
            .field("function", &self.function.display())
            .field("region", &self.region)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What identifies an Invoke API client: region (none = the standard chain's) and endpoint.
type ClientKey = (Option<String>, Option<String>);

/// The Invoke API clients of a configuration, one per region and endpoint, built at load.
#[derive(Default)]
pub struct Clients {
    clients: HashMap<ClientKey, (aws_sdk_lambda::Client, String)>,
}

impl Clients {
    /// Builds the clients every Lambda target of `config` needs (none when there is none).
    /// The standard chain (environment, profile, SSO, web identity, ECS/EC2 metadata) is
    /// set up here but asks for credentials only on the first call.
    pub fn build(config: &Config, path: &Path) -> Result<Clients, ConfigError> {
        let mut keys: Vec<(ClientKey, &TargetConfig)> = Vec::new();
        for target in &config.targets {
            let Some(lambda) = &target.lambda else {
                continue;
            };
            let resolved = lambda.value.validate(path, &target.name.value)?;
            let key = (
                resolved.region,
                lambda.value.endpoint_url.as_ref().map(|e| e.value.clone()),
            );
            if !keys.iter().any(|(k, _)| *k == key) {
                keys.push((key, target));
            }
        }
        if keys.is_empty() {
            return Ok(Clients::default());
        }
        let wanted: Vec<ClientKey> = keys.iter().map(|(k, _)| k.clone()).collect();
        // The SDK's configuration loader is async and load time is not: run it on a
        // runtime of its own, on a thread of its own (it works inside or outside tokio).
        let built = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(invoke::build_clients(wanted)))
            })
            .join()
        });
        let built = match built {
            Ok(Ok(v)) => v,
            _ => {
                return Err(ConfigError::file(
                    path,
                    "cannot start the AWS SDK configuration loader",
                ));
            }
        };
        let mut clients = HashMap::new();
        for ((key, target), result) in keys.into_iter().zip(built) {
            match result {
                Some((client, region)) => {
                    clients.insert(key, (client, region));
                }
                None => {
                    let at = target
                        .lambda
                        .as_ref()
                        .map(|l| l.referenced)
                        .unwrap_or(target.name.referenced);
                    return Err(ConfigError::at(
                        path,
                        &at,
                        format!(
                            "target `{}`: no AWS region: set lambda.region, use a function ARN, or set AWS_REGION \
                             (or a region in the AWS profile)",
                            target.name.value
                        ),
                    ));
                }
            }
        }
        Ok(Clients { clients })
    }
}

/// One tool of a Lambda target: the function, and the tool's name in its definition (the
/// function sees `target___tool`).
#[derive(Debug)]
pub struct LambdaBinding {
    /// The function, its client and limits.
    pub target: Arc<LambdaTarget>,
    /// The tool's name in its definition.
    pub tool: Box<str>,
}

/// Loads one Lambda target: checks its tool definitions and the client context they make,
/// and binds every tool to the function.
pub fn load(
    ctx: &LoadContext<'_>,
    target: &TargetConfig,
    lambda: &LambdaTargetConfig,
) -> Result<TargetTools, LoadError> {
    let config_file = ctx.config_file;
    let name = &target.name.value;
    let resolved = lambda.validate(config_file, name)?;
    let loaded = tools::load(config_file, name, lambda)?;
    let key = (
        resolved.region.clone(),
        lambda.endpoint_url.as_ref().map(|e| e.value.clone()),
    );
    let (client, region) = ctx
        .lambda_clients
        .clients
        .get(&key)
        .cloned()
        .ok_or_else(|| ConfigError::file(config_file, "internal: Lambda client not built"))?;
    let lambda_target = Arc::new(LambdaTarget {
        name: name.as_str().into(),
        gateway: ctx.config.gateway.name.as_str().into(),
        function: resolved.function,
        region,
        timeout: lambda.timeout.unwrap_or(target.timeout),
        client,
    });
    // The longest tool name must leave room for the ids in the client context.
    if let Some(longest) = loaded
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .max_by_key(|n| n.len())
        && let Err(e) = invoke::client_context(&lambda_target, longest, &CallIds::sample())
    {
        return Err(ConfigError::at(
            config_file,
            &target.name.referenced,
            format!(
                "target `{name}`: {e} (shorten gateway.name, the target name or the tool names)"
            ),
        )
        .into());
    }
    let hints = ToolAnnotations {
        open_world_hint: Some(true),
        ..ToolAnnotations::default()
    };
    let specs = loaded
        .tools
        .into_iter()
        .map(|tool| ToolSpec {
            source: format!("tool {}", tool.name),
            title: None,
            description: tool.description,
            input_schema: tool.input_schema,
            output_schema: tool.output_schema,
            output_wrap: tool.output_wrap,
            annotations: hints,
            method: None,
            operation: Binding::Lambda(LambdaBinding {
                target: lambda_target.clone(),
                tool: tool.name.as_str().into(),
            }),
            name: tool.name,
            rename: None,
            extra: serde_json::Map::new(),
        })
        .collect();
    let inputs = match &lambda.tools.value {
        ToolsSource::File(_) => vec![loaded.source.clone()],
        ToolsSource::Inline(_) => Vec::new(),
    };
    Ok(TargetTools {
        specs,
        document: loaded.source,
        inputs,
        volatile: false,
        revision: None,
        skipped: Vec::new(),
        warnings: loaded.warnings,
        state: None,
        offered: None,
    })
}

impl LambdaBinding {
    /// Invokes the function with the arguments as the event, under a client span.
    pub async fn execute(
        &self,
        ctx: &CallContext<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<UpstreamAnswer, CallFailure> {
        let mut ids = CallIds::new(ctx.request_id.get(), ctx.session_id);
        let span = ctx.span.client("lambda invoke");
        if crate::telemetry::enabled() {
            span.set("tool.name", ctx.tool.to_string());
            span.set("faas.invoked_provider", "aws");
            span.set("faas.invoked_name", self.target.name.to_string());
            ids.traceparent = span.traceparent();
        }
        self.target
            .invoke(&self.tool, &ids, arguments, ctx.wraps)
            .await
            .map_err(|error| {
                span.error(error.to_string());
                tracing::debug!(tool = ctx.tool, %error, "Lambda tool call failed");
                CallFailure {
                    message: error.to_string(),
                    outcome: error.outcome(),
                    status: error.status(),
                }
            })
    }
}
