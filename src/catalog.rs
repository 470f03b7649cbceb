//! The catalog: every tool the gateway serves, built once at load time (names, definitions
//! pre-serialized for `tools/list`, compiled validators, bindings) and looked up by name on
//! the request path. A catalog is immutable; a reload builds a new one.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Digest;

use crate::targets::http::{HttpOperation, HttpTarget};
use crate::targets::lambda::{LambdaTarget, LambdaToolSpec};

/// MCP tool annotations (hints for clients; never trusted for security).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// The tool does not modify its environment (GET, HEAD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// The tool may perform destructive updates (DELETE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling the tool twice with the same arguments has no extra effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool talks to an external system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

impl ToolAnnotations {
    /// The hints that follow from an HTTP method's semantics.
    pub fn for_method(method: &http::Method) -> Self {
        use http::Method;
        let read_only = matches!(*method, Method::GET | Method::HEAD);
        Self {
            read_only_hint: Some(read_only),
            destructive_hint: (!read_only).then_some(*method == Method::DELETE),
            idempotent_hint: Some(matches!(
                *method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
            )),
            open_world_hint: Some(true),
        }
    }
}

/// A tool as a converter produces it, before the catalog names and compiles it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Local name (e.g. the sanitized operationId); the catalog adds the target prefix.
    pub name: String,
    /// What the operation is called in its source, for messages (`GET /pets (listPets)`).
    pub source: String,
    /// Short human-readable title.
    pub title: Option<String>,
    /// Description for the model.
    pub description: String,
    /// JSON Schema (2020-12) of the arguments object.
    pub input_schema: Value,
    /// JSON Schema (2020-12) of `structuredContent`, always of type object.
    pub output_schema: Option<Value>,
    /// When set, a JSON answer is wrapped as `{"<key>": answer}` in `structuredContent`
    /// (the answer is not an object, e.g. an array).
    pub output_wrap: Option<Box<str>>,
    /// Behaviour hints.
    pub annotations: ToolAnnotations,
    /// How a call reaches the upstream.
    pub operation: HttpOperation,
    /// A local name set in the config (`operations.<id>.rename`), used instead of `name`.
    pub rename: Option<String>,
}

/// How tool names are formed.
#[derive(Debug, Clone)]
pub struct Naming {
    /// Between target name and local name.
    pub separator: String,
    /// Whether to prefix local names with the target name.
    pub prefix: bool,
    /// Longest name; longer ones are shortened with a hash suffix.
    pub max_length: usize,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            separator: "___".into(),
            prefix: true,
            max_length: 64,
        }
    }
}

/// Characters allowed in MCP tool names.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Replaces every character outside `[A-Za-z0-9_.-]` with `_`, collapsing runs, and trims
/// `_` at both ends.
pub fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if is_name_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches('_').to_string()
}

fn short_hash(s: &str) -> String {
    let digest = sha2::Sha256::digest(s.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

impl Naming {
    /// The full name of `local` in `target`, shortened to `max_length` with a stable hash of
    /// the full name when too long.
    pub fn full_name(&self, target: &str, local: &str) -> String {
        let local = sanitize(local);
        let local = if local.is_empty() {
            "tool".to_string()
        } else {
            local
        };
        let full = if self.prefix {
            format!("{}{}{}", sanitize(target), self.separator, local)
        } else {
            local
        };
        self.shorten(&full)
    }

    fn shorten(&self, full: &str) -> String {
        if full.len() <= self.max_length {
            return full.to_string();
        }
        let hash = short_hash(full);
        let keep = self.max_length.saturating_sub(hash.len() + 1);
        format!("{}_{}", &full[..keep], hash)
    }

    /// Makes `name` unique among `used` by appending `_2`, `_3`... (shortening again when
    /// needed).
    pub fn unique(&self, name: String, used: &HashMap<Arc<str>, usize>) -> String {
        if !used.contains_key(name.as_str()) {
            return name;
        }
        (2..)
            .map(|n| {
                let suffix = format!("_{n}");
                let keep = name.len().min(self.max_length.saturating_sub(suffix.len()));
                format!("{}{}", &name[..keep], suffix)
            })
            .find(|candidate| !used.contains_key(candidate.as_str()))
            .expect("an unused suffix exists")
    }
}

/// Where a tool's calls go.
#[derive(Debug)]
pub enum ToolBinding {
    /// An HTTP operation of an OpenAPI target.
    Http {
        /// Target-wide settings (credentials, timeout).
        target: Arc<HttpTarget>,
        /// The request template.
        operation: HttpOperation,
    },
    /// A tool of a Lambda target.
    Lambda {
        /// The function, its client and limits.
        target: Arc<LambdaTarget>,
        /// The tool's name in its definition: the function sees `target___tool`.
        tool: Box<str>,
    },
}

/// How an upstream answer becomes `structuredContent`.
#[derive(Debug, Clone, Default)]
pub struct OutputMapping {
    /// Wrap a JSON answer as `{"<key>": answer}`.
    pub wrap: Option<Box<str>>,
    /// Whether the tool declares an `outputSchema` (then JSON answers always give
    /// `structuredContent`).
    pub has_schema: bool,
}

/// How one tool uses its target's response cache.
#[derive(Debug, Clone)]
pub struct ToolCache {
    /// The target's cache.
    pub cache: crate::cache::ResponseCache,
    /// Freshness of this tool's answers.
    pub ttl: std::time::Duration,
    /// Who may be served a cached answer.
    pub scope: crate::cache::CacheScope,
}

/// One tool, ready to serve.
pub struct Tool {
    /// The MCP tool name.
    pub name: Arc<str>,
    /// The target it belongs to.
    pub target: Arc<str>,
    /// The MCP `Tool` object as sent in `tools/list`, serialized once.
    pub definition: Box<RawValue>,
    /// Validator of the arguments, compiled once.
    pub validator: jsonschema::Validator,
    /// Answer mapping.
    pub output: OutputMapping,
    /// Where calls go.
    pub binding: ToolBinding,
    /// Response cache, when this tool's answers are cacheable.
    pub cache: Option<ToolCache>,
    /// Metric handles bound to this tool.
    pub metrics: crate::metrics::ToolMetrics,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The MCP `Tool` object of a [`ToolSpec`], with its final name.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolDefinition<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    description: &'a str,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_schema: Option<&'a Value>,
    annotations: AnnotationsWithTitle<'a>,
}

#[derive(Serialize)]
struct AnnotationsWithTitle<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(flatten)]
    hints: &'a ToolAnnotations,
}

/// A tool definition that failed to compile.
#[derive(Debug, thiserror::Error)]
#[error("tool {name} ({source_op}): {reason}")]
pub struct ToolBuildError {
    /// The tool's name.
    pub name: String,
    /// The operation it came from.
    pub source_op: String,
    /// What went wrong.
    pub reason: String,
}

/// Every tool, in a fixed order, with a name index.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: Vec<Arc<Tool>>,
    index: HashMap<Arc<str>, usize>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names, compiles and adds the tools of one HTTP target, in the order given, with
    /// metrics bound and the cache settings `cache_for` gives each. A tool whose schema does
    /// not compile is returned as an error and not added.
    pub fn add_http_tools(
        &mut self,
        target: &Arc<HttpTarget>,
        naming: &Naming,
        specs: Vec<ToolSpec>,
        metrics: &crate::metrics::Metrics,
        cache_for: &dyn Fn(&ToolSpec) -> Option<ToolCache>,
    ) -> Vec<ToolBuildError> {
        let mut errors = Vec::new();
        // Compiling schemas is most of the load time of a large document and independent of
        // naming: done on every core first, then the tools are named and added in order.
        let compiled = compile_all(&specs);
        for (spec, validator) in specs.into_iter().zip(compiled) {
            let local = spec.rename.as_deref().unwrap_or(&spec.name);
            let name = naming.unique(naming.full_name(&target.name, local), &self.index);
            match build_tool(&name, &spec, validator) {
                Ok(compiled) => {
                    let cache = cache_for(&spec);
                    let output = OutputMapping {
                        wrap: spec.output_wrap,
                        has_schema: spec.output_schema.is_some(),
                    };
                    let binding = ToolBinding::Http {
                        target: target.clone(),
                        operation: spec.operation,
                    };
                    self.add(
                        &target.name,
                        &name,
                        metrics,
                        cache,
                        compiled,
                        output,
                        binding,
                    );
                }
                Err(reason) => errors.push(ToolBuildError {
                    name,
                    source_op: spec.source,
                    reason,
                }),
            }
        }
        errors
    }

    /// Names, compiles and adds the tools of one Lambda target (AgentCore ToolDefinitions),
    /// as [`Catalog::add_http_tools`] does for HTTP targets; `cache_for` gets the tool's
    /// name in its definition.
    pub fn add_lambda_tools(
        &mut self,
        target: &Arc<LambdaTarget>,
        naming: &Naming,
        specs: Vec<LambdaToolSpec>,
        metrics: &crate::metrics::Metrics,
        cache_for: &dyn Fn(&str) -> Option<ToolCache>,
    ) -> Vec<ToolBuildError> {
        let hints = ToolAnnotations {
            open_world_hint: Some(true),
            ..ToolAnnotations::default()
        };
        let mut errors = Vec::new();
        for spec in specs {
            let name = naming.unique(naming.full_name(&target.name, &spec.name), &self.index);
            let definition = ToolDefinition {
                name: &name,
                title: None,
                description: &spec.description,
                input_schema: &spec.input_schema,
                output_schema: spec.output_schema.as_ref(),
                annotations: AnnotationsWithTitle {
                    title: None,
                    hints: &hints,
                },
            };
            match compile_definition(&definition) {
                Ok(compiled) => {
                    let cache = cache_for(&spec.name);
                    let output = OutputMapping {
                        wrap: spec.output_wrap,
                        has_schema: spec.output_schema.is_some(),
                    };
                    let binding = ToolBinding::Lambda {
                        target: target.clone(),
                        tool: spec.name.into(),
                    };
                    self.add(
                        &target.name,
                        &name,
                        metrics,
                        cache,
                        compiled,
                        output,
                        binding,
                    );
                }
                Err(reason) => errors.push(ToolBuildError {
                    name,
                    source_op: format!("tool {}", spec.name),
                    reason,
                }),
            }
        }
        errors
    }

    /// Adds a named, compiled tool of `target` with its metrics bound.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        target: &Arc<str>,
        name: &str,
        metrics: &crate::metrics::Metrics,
        cache: Option<ToolCache>,
        (definition, validator): (Box<RawValue>, jsonschema::Validator),
        output: OutputMapping,
        binding: ToolBinding,
    ) {
        let tool = Tool {
            metrics: metrics.for_tool(target, name),
            cache,
            name: name.into(),
            target: target.clone(),
            definition,
            validator,
            output,
            binding,
        };
        self.index.insert(tool.name.clone(), self.tools.len());
        self.tools.push(Arc::new(tool));
    }

    /// The tool called `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Arc<Tool>> {
        self.index.get(name).map(|&i| &self.tools[i])
    }

    /// All tools in catalog order.
    pub fn tools(&self) -> &[Arc<Tool>] {
        &self.tools
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

/// Compiles the schemas of every tool, on up to one thread per core (at most 8) for large
/// batches; results are in the order of `specs`.
fn compile_all(specs: &[ToolSpec]) -> Vec<Result<jsonschema::Validator, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads == 1 || specs.len() < 64 {
        return specs.iter().map(compile_tool).collect();
    }
    let chunk = specs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(compile_tool).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Compiles the input schema (kept) and checks that the output schema compiles.
fn compile_tool(spec: &ToolSpec) -> Result<jsonschema::Validator, String> {
    let validator = compile_schema(&spec.input_schema)
        .map_err(|e| format!("inputSchema does not compile: {e}"))?;
    if let Some(output) = &spec.output_schema {
        compile_schema(output).map_err(|e| format!("outputSchema does not compile: {e}"))?;
    }
    Ok(validator)
}

/// Serializes the definition; pairs it with the compiled validator.
fn build_tool(
    name: &str,
    spec: &ToolSpec,
    validator: Result<jsonschema::Validator, String>,
) -> Result<(Box<RawValue>, jsonschema::Validator), String> {
    let definition = ToolDefinition {
        name,
        title: spec.title.as_deref(),
        description: &spec.description,
        input_schema: &spec.input_schema,
        output_schema: spec.output_schema.as_ref(),
        annotations: AnnotationsWithTitle {
            title: spec.title.as_deref(),
            hints: &spec.annotations,
        },
    };
    let definition = serde_json::value::to_raw_value(&definition).map_err(|e| e.to_string())?;
    Ok((definition, validator?))
}

/// Serializes a definition and compiles its input (and output) schema.
fn compile_definition(
    definition: &ToolDefinition<'_>,
) -> Result<(Box<RawValue>, jsonschema::Validator), String> {
    let raw = serde_json::value::to_raw_value(definition).map_err(|e| e.to_string())?;
    let validator = compile_schema(definition.input_schema)
        .map_err(|e| format!("inputSchema does not compile: {e}"))?;
    if let Some(output) = definition.output_schema {
        compile_schema(output).map_err(|e| format!("outputSchema does not compile: {e}"))?;
    }
    Ok((raw, validator))
}

/// Compiles a schema as JSON Schema 2020-12 (the MCP default dialect), with format
/// assertions off as the dialect prescribes, and no network access for `$ref`.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_and_collapses() {
        assert_eq!(sanitize("get /pets/{id}"), "get_pets_id");
        assert_eq!(sanitize("héllo wörld"), "h_llo_w_rld");
        assert_eq!(sanitize("a.b-c_d"), "a.b-c_d");
    }

    #[test]
    fn long_names_are_shortened_stably_and_stay_unique() {
        let naming = Naming::default();
        let long = "x".repeat(100);
        let a = naming.full_name("target", &format!("{long}a"));
        let b = naming.full_name("target", &format!("{long}b"));
        assert_eq!(a.len(), 64);
        assert_eq!(b.len(), 64);
        assert_ne!(a, b);
        assert_eq!(a, naming.full_name("target", &format!("{long}a")));
    }

    #[test]
    fn unique_appends_suffix_within_max_length() {
        let naming = Naming {
            max_length: 10,
            ..Naming::default()
        };
        let mut used = HashMap::new();
        used.insert(Arc::from("abcdefghij"), 0);
        let n = naming.unique("abcdefghij".into(), &used);
        assert_eq!(n, "abcdefgh_2");
    }
}
