//! The catalog: every tool the gateway serves, built once at load time (names, definitions
//! pre-serialized for `tools/list`, compiled validators, bindings, policy) and looked up by
//! name on the request path. A catalog is immutable; a reload builds a new one (reusing the
//! tools of unchanged targets) and the endpoint swaps it in whole.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Digest;

use crate::targets::Binding;
pub use crate::targets::ToolSpec;

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

/// How tool names are formed.
#[derive(Debug, Clone)]
pub struct Naming {
    /// Between target name and local name.
    pub separator: String,
    /// Whether to prefix local names with the target name.
    pub prefix: bool,
    /// Longest name; longer ones are shortened with a hash suffix.
    pub max_length: usize,
    /// Whether names may contain `.` (legal in MCP, refused by the function-name rules of
    /// Bedrock, OpenAI and the frameworks built on them: `^[a-zA-Z0-9_-]{1,64}$`).
    pub allow_dot: bool,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            separator: "___".into(),
            prefix: true,
            max_length: 64,
            allow_dot: false,
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
    sanitize_to(raw, true)
}

/// [`sanitize`], also replacing `.` unless `allow_dot`.
fn sanitize_to(raw: &str, allow_dot: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let keep = is_name_char(c) && (allow_dot || c != '.');
        let c = if keep { c } else { '_' };
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
        let local = sanitize_to(local, self.allow_dot);
        let local = if local.is_empty() {
            "tool".to_string()
        } else {
            local
        };
        let full = if self.prefix {
            format!(
                "{}{}{}",
                sanitize_to(target, self.allow_dot),
                self.separator,
                local
            )
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
    pub fn unique(&self, name: String, used: &HashSet<Arc<str>>) -> String {
        if !used.contains(name.as_str()) {
            return name;
        }
        (2..)
            .map(|n| {
                let suffix = format!("_{n}");
                let keep = name.len().min(self.max_length.saturating_sub(suffix.len()));
                format!("{}{}", &name[..keep], suffix)
            })
            .find(|candidate| !used.contains(candidate.as_str()))
            .expect("an unused suffix exists")
    }
}

/// Who may see and call a tool, decided on the tool itself (the same for every target
/// kind): today the scopes a caller's token must hold.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    /// Scopes the caller needs (all of them); empty: any authenticated caller.
    pub scopes: Box<[String]>,
}

impl ToolPolicy {
    /// The scopes `caller` lacks for this tool, or `None` when it may call it.
    pub fn missing(&self, caller: Option<&crate::auth::Caller>) -> Option<&[String]> {
        if self.scopes.is_empty() {
            return None;
        }
        let ok = caller.is_some_and(|c| self.scopes.iter().all(|s| c.has_scope(s)));
        (!ok).then_some(&self.scopes[..])
    }

    /// Whether every caller may call the tool.
    pub fn is_open(&self) -> bool {
        self.scopes.is_empty()
    }
}

/// How an upstream answer becomes `structuredContent`.
#[derive(Default)]
pub struct OutputMapping {
    /// Wrap a JSON answer as `{"<key>": answer}`.
    pub wrap: Option<Box<str>>,
    /// Whether the tool declares an `outputSchema`: every result must then carry conforming
    /// `structuredContent` or be `isError` (clients such as the Python SDK refuse anything
    /// else).
    pub has_schema: bool,
    /// The output schema compiled, on the tool's first answer: compiled validators are
    /// large, and most tools of a big catalog are never called (the schema was checked to
    /// compile at load).
    schema: std::sync::OnceLock<Option<jsonschema::Validator<crate::json_doc::Doc>>>,
}

impl Tool {
    /// The compiled output schema, when the tool declares one.
    pub fn output_schema(&self) -> Option<&jsonschema::Validator<crate::json_doc::Doc>> {
        if !self.output.has_schema {
            return None;
        }
        self.output
            .schema
            .get_or_init(|| {
                let definition: Value = serde_json::from_str(self.definition.get()).ok()?;
                compile_output_schema(definition.get("outputSchema")?).ok()
            })
            .as_ref()
    }
}

/// The rate limits of one tool: its target's budget (shared by the target's tools) and its
/// own; none: no check at all.
#[derive(Debug, Clone, Default)]
pub struct ToolRateLimits {
    /// `targets[].rate_limit`.
    pub target: Option<Arc<crate::ratelimit::Limiter>>,
    /// `targets[].operations.<id>.rate_limit`.
    pub tool: Option<Arc<crate::ratelimit::Limiter>>,
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
    /// Optional arguments whose schema does not admit `null`: a `null` sent for one of
    /// them (frameworks send `null` for arguments they were not given) means "absent".
    pub null_is_absent: Box<[Box<str>]>,
    /// Answer mapping.
    pub output: OutputMapping,
    /// Where calls go.
    pub binding: Binding,
    /// Response cache, when this tool's answers are cacheable.
    pub cache: Option<ToolCache>,
    /// Metric handles bound to this tool.
    pub metrics: crate::metrics::ToolMetrics,
    /// Who may see and call it.
    pub policy: ToolPolicy,
    /// Its rate limits (the target's and its own), checked on every call.
    pub rate_limits: ToolRateLimits,
    /// A hash of `definition`, for the catalog's generation.
    pub digest: u64,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<AnnotationsWithTitle<'a>>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, Value>,
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

/// A prompt, resource or resource template an upstream MCP server offers, as the gateway
/// serves it: prompts named like tools (`target___prompt`), resources and templates under
/// `toolgate://<target>/<the upstream's URI>`, so that two servers never collide.
pub struct Offering {
    /// The prompt name or resource URI clients use.
    pub key: Arc<str>,
    /// The object as the upstream lists it, with its name or URI rewritten, serialized once.
    pub definition: Box<RawValue>,
    /// The name or URI on the upstream.
    pub upstream_key: Box<str>,
    /// The target it belongs to.
    pub target: Arc<str>,
    /// The server that serves it.
    pub source: Arc<crate::targets::mcp::McpUpstream>,
    /// Who may see and use it (the target's scopes).
    pub policy: ToolPolicy,
}

impl std::fmt::Debug for Offering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offering")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The URI under which the gateway serves an upstream resource (or template) `uri`.
pub fn gateway_uri(target: &str, uri: &str) -> String {
    format!("toolgate://{target}/{uri}")
}

/// The target and upstream URI of a gateway resource URI.
pub fn upstream_uri(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("toolgate://")?.split_once('/')
}

/// What the upstream MCP servers of a catalog offer besides tools.
#[derive(Debug, Default)]
pub struct Offerings {
    /// Prompts, in target order.
    pub prompts: Vec<Arc<Offering>>,
    /// Resources.
    pub resources: Vec<Arc<Offering>>,
    /// Resource templates.
    pub templates: Vec<Arc<Offering>>,
    /// The targets with `listing: dynamic`: each server and the hash of the tool list
    /// this catalog holds of it.
    pub dynamic: Vec<(Arc<crate::targets::mcp::McpUpstream>, u64)>,
}

/// Every tool, in a fixed order, with a name index, and what is derived from the whole
/// list (its generation, the scopes its policies use); the prompts and resources of the
/// upstream MCP servers.
#[derive(Debug, Default)]
pub struct Catalog {
    tools: Vec<Arc<Tool>>,
    index: HashMap<Arc<str>, usize>,
    generation: u64,
    scopes: Vec<String>,
    offerings: Offerings,
    prompt_index: HashMap<Arc<str>, usize>,
    resource_index: HashMap<Arc<str>, usize>,
    /// Per MCP target with resources or templates: its server and policy (a templated URI
    /// is read from its target).
    sources: HashMap<Arc<str>, (Arc<crate::targets::mcp::McpUpstream>, ToolPolicy)>,
    /// The search tool, when `gateway.search` is enabled.
    search: Option<Arc<crate::search::ToolSearch>>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// The catalog of `tools`, in this order. Names must be unique (the builder makes them
    /// so); a later duplicate would be unreachable.
    pub fn from_tools(tools: Vec<Arc<Tool>>) -> Self {
        let mut index = HashMap::with_capacity(tools.len());
        let mut hasher = std::hash::DefaultHasher::new();
        let mut scopes: Vec<String> = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            index.entry(tool.name.clone()).or_insert(i);
            tool.digest.hash(&mut hasher);
            for s in tool.policy.scopes.iter() {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
        }
        Self {
            tools,
            index,
            generation: hasher.finish(),
            scopes,
            ..Self::default()
        }
    }

    /// The same catalog serving `offerings` too.
    pub fn with_offerings(mut self, offerings: Offerings) -> Self {
        self.prompt_index = offerings
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key.clone(), i))
            .collect();
        self.resource_index = offerings
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.clone(), i))
            .collect();
        for o in offerings.resources.iter().chain(&offerings.templates) {
            self.sources
                .entry(o.target.clone())
                .or_insert_with(|| (o.source.clone(), o.policy.clone()));
        }
        self.offerings = offerings;
        self
    }

    /// The same catalog with `search` as its search tool (part of what it lists, so part
    /// of its generation).
    pub fn with_search(mut self, search: Arc<crate::search::ToolSearch>) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        self.generation.hash(&mut hasher);
        search.definition().get().hash(&mut hasher);
        search.pinned().hash(&mut hasher);
        (search.listing() == crate::config::SearchListing::SearchOnly).hash(&mut hasher);
        self.generation = hasher.finish();
        self.search = Some(search);
        self
    }

    /// The search tool, when enabled.
    pub fn search(&self) -> Option<&Arc<crate::search::ToolSearch>> {
        self.search.as_ref()
    }

    /// The prompts, resources and templates of the upstream MCP servers.
    pub fn offerings(&self) -> &Offerings {
        &self.offerings
    }

    /// The upstreams whose tools are listed dynamically, with the hash of the list this
    /// catalog was made from.
    pub fn dynamic(&self) -> &[(Arc<crate::targets::mcp::McpUpstream>, u64)] {
        &self.offerings.dynamic
    }

    /// The prompt called `name`.
    pub fn prompt(&self, name: &str) -> Option<&Arc<Offering>> {
        self.prompt_index
            .get(name)
            .map(|&i| &self.offerings.prompts[i])
    }

    /// Where a resource URI is read: the server, the upstream URI and the policy.
    pub fn resource_source(
        &self,
        uri: &str,
    ) -> Option<(&Arc<crate::targets::mcp::McpUpstream>, String, &ToolPolicy)> {
        if let Some(&i) = self.resource_index.get(uri) {
            let r = &self.offerings.resources[i];
            return Some((&r.source, r.upstream_key.to_string(), &r.policy));
        }
        let (target, upstream) = upstream_uri(uri)?;
        let (source, policy) = self.sources.get(target)?;
        Some((source, upstream.to_string(), policy))
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

    /// Identifies the tool list: equal for equal lists (on every replica with the same
    /// configuration), different after a change. `tools/list` cursors carry it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every scope some tool's policy needs (for the protected-resource metadata).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether some tool is not open to every caller (then `tools/list` depends on the
    /// caller).
    pub fn has_policies(&self) -> bool {
        !self.scopes.is_empty()
    }
}

/// What the gateway decides for each tool of a target besides its definition: its cache
/// and its policy (from the target's config, by the tool's `operations.<key>`).
#[derive(Default)]
pub struct ToolSettings {
    /// Response cache, if any.
    pub cache: Option<ToolCache>,
    /// Who may see and call it.
    pub policy: ToolPolicy,
    /// Its rate limits.
    pub rate_limits: ToolRateLimits,
}

/// The tools of one target, named and compiled.
pub struct BuiltTools {
    /// In source order.
    pub tools: Vec<Arc<Tool>>,
    /// Tools whose schema does not compile (left out).
    pub errors: Vec<ToolBuildError>,
    /// Whether a name had to be made unique against another target's tool (then the names
    /// depend on the other targets, and a reload rebuilds this target).
    pub collided: bool,
}

/// Names, compiles and binds the tools of `target`, in the order given: each gets a name
/// unique among `used` (which it then joins), its metrics, and `settings(spec)`. A tool
/// whose schema does not compile is reported and left out.
pub fn build_tools(
    target: &Arc<str>,
    specs: Vec<ToolSpec<Binding>>,
    naming: &Naming,
    used: &mut HashSet<Arc<str>>,
    metrics: &crate::metrics::Metrics,
    settings: &dyn Fn(&ToolSpec<Binding>) -> ToolSettings,
) -> BuiltTools {
    let mut mine: HashSet<Arc<str>> = HashSet::with_capacity(specs.len());
    let mut built = BuiltTools {
        tools: Vec::with_capacity(specs.len()),
        errors: Vec::new(),
        collided: false,
    };
    // Compiling schemas is most of the load time of a large document and independent of
    // naming: done on every core first, then the tools are named and added in order.
    let compiled = compile_all(&specs);
    for (spec, validator) in specs.into_iter().zip(compiled) {
        let local = spec.rename.as_deref().unwrap_or(&spec.name);
        let base = naming.full_name(target, local);
        built.collided |= used.contains(base.as_str()) && !mine.contains(base.as_str());
        let name = naming.unique(base, used);
        match build_definition(&name, &spec).and_then(|d| Ok((d, validator?))) {
            Ok((definition, validator)) => {
                let ToolSettings {
                    cache,
                    policy,
                    rate_limits,
                } = settings(&spec);
                let mut hasher = std::hash::DefaultHasher::new();
                definition.get().hash(&mut hasher);
                let name: Arc<str> = name.into();
                used.insert(name.clone());
                mine.insert(name.clone());
                built.tools.push(Arc::new(Tool {
                    metrics: metrics.for_tool(target, &name),
                    cache,
                    target: target.clone(),
                    digest: hasher.finish(),
                    name,
                    definition,
                    validator,
                    null_is_absent: null_is_absent(&spec.input_schema),
                    output: OutputMapping {
                        wrap: spec.output_wrap,
                        has_schema: spec.output_schema.is_some(),
                        schema: std::sync::OnceLock::new(),
                    },
                    binding: spec.operation,
                    policy,
                    rate_limits,
                }));
            }
            Err(reason) => built.errors.push(ToolBuildError {
                name,
                source_op: spec.source,
                reason,
            }),
        }
    }
    built
}

/// Compiles the schemas of every tool, on up to one thread per core (at most 8) for large
/// batches; results are in the order of `specs`.
fn compile_all<B: Sync>(specs: &[ToolSpec<B>]) -> Vec<Result<jsonschema::Validator, String>> {
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
fn compile_tool<B>(spec: &ToolSpec<B>) -> Result<jsonschema::Validator, String> {
    let validator = compile_schema(&spec.input_schema)
        .map_err(|e| format!("inputSchema does not compile: {e}"))?;
    if let Some(output) = &spec.output_schema {
        compile_schema(output).map_err(|e| format!("outputSchema does not compile: {e}"))?;
    }
    Ok(validator)
}

/// The optional top-level properties of `schema` whose own schema certainly rejects `null`.
fn null_is_absent(schema: &Value) -> Box<[Box<str>]> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Box::default();
    };
    let required: HashSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let defs = schema.get("$defs");
    let mut names: Vec<Box<str>> = properties
        .iter()
        .filter(|(name, property)| {
            !required.contains(name.as_str()) && rejects_null(property, defs, 0)
        })
        .map(|(name, _)| name.as_str().into())
        .collect();
    names.sort();
    names.into_boxed_slice()
}

/// Whether `schema` certainly rejects `null` (unsure: false, so validation decides).
fn rejects_null(schema: &Value, defs: Option<&Value>, depth: usize) -> bool {
    let Some(object) = schema.as_object() else {
        return schema == &Value::Bool(false);
    };
    if depth > 8 {
        return false;
    }
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        return reference
            .strip_prefix("#/$defs/")
            .and_then(|name| defs?.get(name))
            .is_some_and(|target| rejects_null(target, defs, depth + 1));
    }
    let admits = |v: &Value| v.is_null();
    if object.get("const").is_some_and(admits)
        || object
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| e.iter().any(admits))
    {
        return false;
    }
    let by_type = match object.get("type") {
        Some(Value::String(t)) => Some(t != "null"),
        Some(Value::Array(types)) => Some(!types.iter().any(|t| t == "null")),
        _ => None,
    };
    let any_branch_admits = ["anyOf", "oneOf"].iter().any(|k| {
        object
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|branches| branches.iter().any(|b| !rejects_null(b, defs, depth + 1)))
    });
    let all_reject = object
        .get("allOf")
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| rejects_null(p, defs, depth + 1)));
    match by_type {
        Some(rejects) => rejects || all_reject,
        None if any_branch_admits => false,
        None => {
            all_reject
                || ["anyOf", "oneOf"].iter().any(|k| {
                    object
                        .get(*k)
                        .and_then(Value::as_array)
                        .is_some_and(|branches| !branches.is_empty())
                })
        }
    }
}

/// The MCP `Tool` object of `spec` named `name`, serialized once.
fn build_definition<B>(name: &str, spec: &ToolSpec<B>) -> Result<Box<RawValue>, String> {
    let definition = ToolDefinition {
        name,
        title: spec.title.as_deref(),
        description: &spec.description,
        input_schema: &spec.input_schema,
        output_schema: spec.output_schema.as_ref(),
        // An upstream MCP server's own annotations are kept as it wrote them.
        annotations: (!spec.extra.contains_key("annotations")).then_some(AnnotationsWithTitle {
            title: spec.title.as_deref(),
            hints: &spec.annotations,
        }),
        extra: &spec.extra,
    };
    serde_json::value::to_raw_value(&definition).map_err(|e| e.to_string())
}

/// Compiles a schema as JSON Schema 2020-12 (the MCP default dialect), with format
/// assertions off as the dialect prescribes, and no network access for `$ref`.
pub fn compile_schema(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// [`compile_schema`] for validating answers read in place ([`crate::json_doc`]) rather than
/// parsed into a `serde_json::Value`.
pub fn compile_output_schema(
    schema: &Value,
) -> Result<jsonschema::Validator<crate::json_doc::Doc>, String> {
    jsonschema::options_for::<crate::json_doc::Doc>()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_of_optional_non_nullable_properties_are_absent() {
        let schema = serde_json::json!({
            "type": "object",
            "required": ["id"],
            "$defs": {"Tag": {"type": "string"}, "Any": {}},
            "properties": {
                "id": {"type": "integer"},
                "limit": {"type": "integer"},
                "note": {"type": ["string", "null"]},
                "tag": {"$ref": "#/$defs/Tag"},
                "free": {"$ref": "#/$defs/Any"},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "choice": {"enum": ["a", null]},
                "anything": {},
            }
        });
        assert_eq!(
            &*null_is_absent(&schema),
            &["either".into(), "limit".into(), "tag".into()] as &[Box<str>]
        );
    }

    #[test]
    fn strict_names_replace_dots_and_stay_unique() {
        let strict = Naming::default();
        assert_eq!(
            strict.full_name("k8s.api", "metrics.yml"),
            "k8s_api___metrics_yml"
        );
        let mcp = Naming {
            allow_dot: true,
            ..Naming::default()
        };
        assert_eq!(
            mcp.full_name("k8s.api", "metrics.yml"),
            "k8s.api___metrics.yml"
        );
        let mut used = HashSet::new();
        used.insert(Arc::from(strict.full_name("t", "a.b")));
        assert_eq!(
            strict.unique(strict.full_name("t", "a_b"), &used),
            "t___a_b_2"
        );
    }

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
        let mut used = HashSet::new();
        used.insert(Arc::from("abcdefghij"));
        let n = naming.unique("abcdefghij".into(), &used);
        assert_eq!(n, "abcdefgh_2");
    }
}
