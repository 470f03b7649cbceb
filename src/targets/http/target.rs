//! The `openapi:` target kind: load (document → operations → tools bound to the target,
//! with its credentials) and execute (one upstream request, its client span and the
//! mapping of its failures).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{HttpOperation, HttpTarget};
use crate::auth::outbound::CredentialProvider;
use crate::config::{Config, OpenApiTargetConfig, TargetConfig};
use crate::gateway::LoadError;
use crate::metrics::Outcome;
use crate::openapi::{self, ConvertOptions, Selection};
use crate::targets::{
    Binding, CallContext, CallFailure, LoadContext, TargetTools, UpstreamAnswer, UpstreamError,
};

/// One operation of an OpenAPI target: the target's shared settings and the request
/// template.
#[derive(Debug)]
pub struct HttpBinding {
    /// Target-wide settings (credentials, timeout, size cap).
    pub target: Arc<HttpTarget>,
    /// The request template.
    pub operation: HttpOperation,
}

fn selection(openapi: &OpenApiTargetConfig) -> Result<Selection, String> {
    let upper = |v: &[String]| v.iter().map(|m| m.to_ascii_uppercase()).collect();
    let globs = |filter: &crate::config::OperationFilter| {
        openapi::path_globs(filter.paths.iter().map(|p| p.value.as_str()))
    };
    let mut s = Selection {
        include_deprecated: openapi.include_deprecated,
        ..Selection::default()
    };
    if let Some(inc) = &openapi.include {
        s.include_operations = inc.operations.clone();
        s.include_tags = inc.tags.clone();
        s.include_methods = upper(&inc.methods);
        s.include_paths = globs(inc)?;
    }
    if let Some(exc) = &openapi.exclude {
        s.exclude_operations = exc.operations.clone();
        s.exclude_tags = exc.tags.clone();
        s.exclude_methods = upper(&exc.methods);
        s.exclude_paths = globs(exc)?;
    }
    Ok(s)
}

/// Loads an OpenAPI target: reads and converts its document, builds its credentials, and
/// binds every operation to it.
pub fn load(
    ctx: &LoadContext<'_>,
    target: &TargetConfig,
    openapi: &OpenApiTargetConfig,
) -> Result<TargetTools, LoadError> {
    let name = &target.name.value;
    let target_error = |message: String| LoadError::Target {
        target: name.clone(),
        message,
    };
    let document = Config::resolve(ctx.config_file, &openapi.spec.value);
    let options = ConvertOptions {
        base_url: openapi.base_url.as_ref().map(|b| b.value.clone()),
        selection: selection(openapi).map_err(target_error)?,
        descriptions: openapi::DescriptionBudget {
            total: openapi
                .description_budget
                .unwrap_or(ctx.config.gateway.description_budget),
        },
        content_types: target
            .operations
            .iter()
            .filter_map(|(op, o)| Some((op.clone(), o.content_type.clone()?)))
            .collect(),
        remote_refs: openapi.remote_refs(),
    };
    let converted =
        openapi::load_and_convert(&document, &options).map_err(|error| LoadError::Spec {
            target: name.clone(),
            error,
        })?;
    if let Some(first) = converted.option_errors.first() {
        return Err(target_error(first.clone()));
    }
    let credentials = match &target.credentials {
        None => None,
        Some(c) => Some(
            CredentialProvider::from_config(&c.value, name, ctx.config_file, ctx.metrics)
                .map_err(target_error)?,
        ),
    };
    let http_target = Arc::new(HttpTarget {
        name: name.as_str().into(),
        credentials,
        timeout: target.timeout,
        max_response_bytes: ctx.config.gateway.max_response.0,
    });
    let mut inputs = vec![document.clone()];
    inputs.extend(converted.referenced_files);
    if let Some(c) = &target.credentials {
        inputs.extend(c.value.files(ctx.config_file));
    }
    let specs = converted
        .tools
        .into_iter()
        .map(|tool| {
            tool.map(|operation| {
                Binding::Http(HttpBinding {
                    target: http_target.clone(),
                    operation,
                })
            })
        })
        .collect();
    Ok(TargetTools {
        specs,
        document,
        inputs,
        volatile: converted.remote_refs,
        revision: None,
        skipped: converted.skipped,
        warnings: converted
            .warnings
            .iter()
            .map(|w| format!("target `{name}`: {w}"))
            .collect(),
        state: None,
        offered: None,
    })
}

impl HttpBinding {
    /// Sends the request the arguments make, under a client span, within the target's
    /// time and size limits.
    pub async fn execute(
        &self,
        ctx: &CallContext<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<UpstreamAnswer, CallFailure> {
        let span = ctx.span.client("upstream");
        let headers = if crate::telemetry::enabled() {
            span.set("tool.name", ctx.tool.to_string());
            span.set("http.request.method", self.operation.method.to_string());
            span.set("url.template", self.operation.template());
            span.propagation_headers()
        } else {
            Vec::new()
        };
        let result = ctx
            .http
            .call_as(
                &self.target,
                &self.operation,
                arguments,
                ctx.caller,
                ctx.user,
                &headers,
            )
            .await;
        match &result {
            Ok(a) => span.set("http.response.status_code", i64::from(a.status)),
            Err(e) => {
                if let UpstreamError::Status { status, .. } = e {
                    span.set("http.response.status_code", i64::from(*status));
                }
                span.error(e.to_string());
            }
        }
        result.map_err(|error| {
            tracing::debug!(tool = ctx.tool, %error, "tool call failed upstream");
            let (outcome, status) = match &error {
                UpstreamError::Status { status, .. } if (400..500).contains(status) => {
                    (Outcome::ToolError, Some(*status))
                }
                UpstreamError::Status { status, .. } => (Outcome::UpstreamError, Some(*status)),
                UpstreamError::Timeout(_) => (Outcome::Timeout, None),
                UpstreamError::Request(_) => (Outcome::InvalidArguments, None),
                UpstreamError::Transport(_) | UpstreamError::Credentials(_) => {
                    (Outcome::UpstreamError, None)
                }
            };
            CallFailure {
                message: error.to_string(),
                outcome,
                status,
            }
        })
    }
}
