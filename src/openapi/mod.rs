//! OpenAPI → tools: loads OpenAPI 3.0 / 3.1 documents (JSON or YAML; Swagger 2.0 is first
//! rewritten to 3.0 by `swagger2.rs`), resolves `$ref`s and turns each operation into a
//! [`ToolSpec`] with an [`HttpOperation`](crate::targets::http::HttpOperation) binding.
//!
//! The document stays one `serde_json::Value`, read through small typed views per
//! operation (`operation.rs`), so that a malformed part skips only the operations that use
//! it. Schemas are translated to JSON Schema 2020-12 once per location (`schema.rs`);
//! references, including relative files and allowed http(s) URLs, are resolved by `refs.rs`.

mod budget;
mod load;
mod operation;
mod refs;
mod remote;
mod schema;
mod swagger2;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use budget::DescriptionBudget;

use crate::catalog::ToolSpec;
use operation::OperationSource;
use refs::{DocSet, Located};
use schema::{Dialect, SchemaCtx};

pub use remote::RemoteRefs;

/// Methods of a path item, in the order their operations are converted.
const METHODS: [(&str, http::Method); 8] = [
    ("get", http::Method::GET),
    ("put", http::Method::PUT),
    ("post", http::Method::POST),
    ("delete", http::Method::DELETE),
    ("options", http::Method::OPTIONS),
    ("head", http::Method::HEAD),
    ("patch", http::Method::PATCH),
    ("trace", http::Method::TRACE),
];

/// Which operations of a document to turn into tools.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Keep only these operationIds (empty: all).
    pub include_operations: Vec<String>,
    /// Keep only operations with one of these tags (empty: all).
    pub include_tags: Vec<String>,
    /// Keep only these HTTP methods, upper-case (empty: all).
    pub include_methods: Vec<String>,
    /// Drop these operationIds.
    pub exclude_operations: Vec<String>,
    /// Drop operations with one of these tags.
    pub exclude_tags: Vec<String>,
    /// Drop these HTTP methods, upper-case.
    pub exclude_methods: Vec<String>,
    /// Keep only operations whose path template matches one of these globs (none: all).
    pub include_paths: Option<globset::GlobSet>,
    /// Drop operations whose path template matches one of these globs.
    pub exclude_paths: Option<globset::GlobSet>,
    /// Keep operations marked `deprecated: true` (dropped by default, unless their
    /// operationId is listed in `include_operations`).
    pub include_deprecated: bool,
}

/// Compiles path globs as `include.paths` / `exclude.paths` read them: `*` and `?` stay
/// within one segment, `**` spans segments, matching is case-sensitive like paths.
pub fn path_globs<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
) -> Result<Option<globset::GlobSet>, String> {
    let mut builder = globset::GlobSetBuilder::new();
    let mut any = false;
    for pattern in patterns {
        // Braces are path-template variables here (`/pets/{petId}`), not alternations.
        let escaped = pattern.replace('{', "\\{").replace('}', "\\}");
        let glob = globset::GlobBuilder::new(&escaped)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("path glob `{pattern}`: {}", e.kind()))?;
        builder.add(glob);
        any = true;
    }
    if !any {
        return Ok(None);
    }
    builder.build().map(Some).map_err(|e| e.to_string())
}

/// Options for converting one document.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Overrides the document's `servers` (e.g. `http://127.0.0.1:8081/v1`).
    pub base_url: Option<String>,
    /// Which operations to convert.
    pub selection: Selection,
    /// Bounds on each tool's descriptions.
    pub descriptions: DescriptionBudget,
    /// Request body media type per operation (key: operationId, or `<method>_<path>`
    /// without one), replacing the automatic choice.
    pub content_types: std::collections::HashMap<String, String>,
    /// Which http(s) documents `$ref`s may name (fetched once, at load time).
    pub remote_refs: RemoteRefs,
}

impl ConvertOptions {
    /// Every operation, the document's servers, default budgets, no remote references.
    pub fn new(base_url: Option<String>) -> Self {
        Self {
            base_url,
            selection: Selection::default(),
            descriptions: DescriptionBudget::default(),
            content_types: std::collections::HashMap::new(),
            remote_refs: RemoteRefs::default(),
        }
    }
}

/// An operation that was not turned into a tool, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// `METHOD /path` plus the operationId when there is one.
    pub operation: String,
    /// Why it was skipped, precisely enough to act on.
    pub reason: String,
}

/// The tools made from one document.
#[derive(Debug)]
pub struct Converted {
    /// One per converted operation, in document order (paths, then methods in the order
    /// get, put, post, delete, options, head, patch, trace). Names are *local*
    /// (sanitized operationId, or method + path): the catalog adds the target prefix.
    pub tools: Vec<ToolSpec>,
    /// Operations left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Non-fatal findings about the document (e.g. an unsupported feature ignored).
    pub warnings: Vec<String>,
    /// Settings in [`ConvertOptions`] that do not fit the document (e.g. a `content_type`
    /// the operation does not offer): configuration mistakes to report.
    pub option_errors: Vec<String>,
    /// Files other than the document that its `$ref`s name (read or attempted): the
    /// conversion depends on their content.
    pub referenced_files: Vec<PathBuf>,
    /// Whether `$ref`s named http(s) documents (fetched when allowed).
    pub remote_refs: bool,
}

/// A document that cannot be used at all: unreadable, not OpenAPI, or broken.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {reason}", pointer_suffix(.pointer))]
pub struct SpecError {
    /// The file concerned.
    pub file: PathBuf,
    /// JSON pointer into the document where the problem is (empty: the whole document).
    pub pointer: String,
    /// What is wrong, and what to do about it.
    pub reason: String,
}

fn pointer_suffix(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!(" at {pointer}")
    }
}

/// The OpenAPI 3.0 form of a Swagger 2.0 document, as the converter reads it (for tools
/// that validate 2.0 documents with 3.0 validators, e.g. the conformance oracle). Errors
/// are `(JSON pointer, reason)`.
pub fn upgrade_swagger2(document: &Value) -> Result<Value, (String, String)> {
    let root = document
        .as_object()
        .ok_or_else(|| (String::new(), "the top level is not an object".to_string()))?;
    swagger2::upgrade(root)
}

/// Loads the document at `path` (JSON or YAML) and converts its operations to tools.
pub fn load_and_convert(path: &Path, options: &ConvertOptions) -> Result<Converted, SpecError> {
    let document = load::read_document(path)?;
    convert(&document, path, options)
}

/// Converts an already-parsed document. `file` is used for error messages and to resolve
/// relative references.
pub fn convert(
    document: &Value,
    file: &Path,
    options: &ConvertOptions,
) -> Result<Converted, SpecError> {
    let error = |pointer: &str, reason: String| SpecError {
        file: file.to_path_buf(),
        pointer: pointer.to_string(),
        reason,
    };
    let Some(root) = document.as_object() else {
        return Err(error(
            "",
            "not an OpenAPI document: the top level is not an object".into(),
        ));
    };
    if root.contains_key("swagger") && !root.contains_key("openapi") {
        let upgraded = swagger2::upgrade(root).map_err(|(p, r)| error(&p, r))?;
        let mut converted = convert(&upgraded, file, options)?;
        converted.warnings.insert(
            0,
            "Swagger 2.0 document: read as OpenAPI 3.0 (pointers in messages refer to the \
             3.0 form, e.g. #/components/schemas for #/definitions)"
                .into(),
        );
        return Ok(converted);
    }
    let mut warnings = Vec::new();
    let dialect = dialect(root, &mut warnings).map_err(|(p, r)| error(p, r))?;
    let paths = match root.get("paths") {
        // 3.1 allows documents with only webhooks or components: no tools.
        None => {
            return Ok(Converted {
                tools: Vec::new(),
                skipped: Vec::new(),
                warnings,
                option_errors: Vec::new(),
                referenced_files: Vec::new(),
                remote_refs: false,
            });
        }
        Some(Value::Object(paths)) => paths,
        Some(_) => return Err(error("/paths", "`paths` is not an object".into())),
    };

    // Where requests go when neither the path item nor the operation says otherwise.
    let document_server = match &options.base_url {
        Some(base) => Arc::<str>::from(base.trim_end_matches('/')),
        None => {
            let found = server_url(root.get("servers")).map_err(|r| error("/servers", r))?;
            match found {
                Some(ServerUrl::Absolute(url)) => url.into(),
                Some(ServerUrl::Relative(url)) => {
                    return Err(error(
                        "/servers/0/url",
                        format!(
                            "no absolute server URL: set base_url in gateway.yaml (the document's server is '{url}')"
                        ),
                    ));
                }
                None => {
                    return Err(error(
                        "",
                        "no absolute server URL: set base_url in gateway.yaml (the document has no `servers`)".into(),
                    ));
                }
            }
        }
    };

    let docs = DocSet::with_remote(document, file, &options.remote_refs);
    let mut ctx = SchemaCtx::new(&docs, dialect);
    let mut tools = Vec::new();
    let mut skipped = Vec::new();
    let mut option_errors = Vec::new();
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let item = Located {
            doc: 0,
            pointer: format!("/paths/{}", refs::escape_token(path)),
            value: item,
        };
        let item = match docs.deref(item) {
            Ok(item) if item.value.is_object() => item,
            Ok(_) => {
                skipped.push(Skipped {
                    operation: format!("* {path}"),
                    reason: "the path item is not an object".into(),
                });
                continue;
            }
            Err(reason) => {
                skipped.push(Skipped {
                    operation: format!("* {path}"),
                    reason,
                });
                continue;
            }
        };
        for (key, method) in &METHODS {
            let Some(operation) = item.child(key) else {
                continue;
            };
            // Not allowed by the specification, but common in split documents
            // (DigitalOcean's): an operation that is a `$ref` to a file.
            let operation = match docs.deref(operation) {
                Ok(operation) => operation,
                Err(reason) => {
                    if options.selection.keeps(None, &[], method.as_str(), path) {
                        skipped.push(Skipped {
                            operation: format!("{method} {path}"),
                            reason,
                        });
                    }
                    continue;
                }
            };
            let tags: Vec<&str> = operation
                .value
                .get("tags")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut source = OperationSource {
                method: method.clone(),
                path,
                item: item.clone(),
                operation,
                base_url: document_server.clone(),
            };
            if !options
                .selection
                .keeps(source.operation_id(), &tags, method.as_str(), path)
            {
                continue;
            }
            let deprecated = source.operation.value.get("deprecated") == Some(&Value::Bool(true));
            if deprecated && !options.selection.keeps_deprecated(source.operation_id()) {
                skipped.push(Skipped {
                    operation: source.label(),
                    reason: "deprecated; set include_deprecated: true on the target (or list its operationId in include.operations) to keep it".into(),
                });
                continue;
            }
            let local_name = operation::tool_name(&source);
            let content_type = options.content_types.get(&local_name).map(String::as_str);
            if let Some(wanted) = content_type {
                let offered = operation::body_media_types(&docs, &source.operation);
                if !offered
                    .iter()
                    .any(|t| operation::same_media_type(t, wanted))
                {
                    let reason = if offered.is_empty() {
                        format!(
                            "operations.{local_name}.content_type is `{wanted}`, but the operation has no request body"
                        )
                    } else {
                        format!(
                            "operations.{local_name}.content_type is `{wanted}`, but the operation's request body offers only {}",
                            offered.join(", ")
                        )
                    };
                    option_errors.push(reason.clone());
                    skipped.push(Skipped {
                        operation: source.label(),
                        reason,
                    });
                    continue;
                }
            }
            if options.base_url.is_none() {
                // Servers declared on the operation or path item win over the document's.
                let local = source
                    .operation
                    .value
                    .get("servers")
                    .or_else(|| item.value.get("servers"));
                match server_url(local) {
                    Ok(None) => {}
                    Ok(Some(ServerUrl::Absolute(url))) => source.base_url = url.into(),
                    Ok(Some(ServerUrl::Relative(url))) => {
                        skipped.push(Skipped {
                            operation: source.label(),
                            reason: format!("no absolute server URL: its server is '{url}'; set base_url in gateway.yaml"),
                        });
                        continue;
                    }
                    Err(reason) => {
                        skipped.push(Skipped {
                            operation: source.label(),
                            reason,
                        });
                        continue;
                    }
                }
            }
            match operation::convert_operation(
                &mut ctx,
                &docs,
                &source,
                content_type,
                &mut warnings,
            ) {
                Ok(mut tool) => {
                    options.descriptions.apply(&mut tool);
                    tools.push(tool);
                }
                Err(reason) => skipped.push(Skipped {
                    operation: source.label(),
                    reason,
                }),
            }
        }
    }
    let (referenced_files, remote_refs) = docs.external_sources();
    Ok(Converted {
        tools,
        skipped,
        warnings,
        option_errors,
        referenced_files,
        remote_refs,
    })
}

/// The schema dialect from the `openapi` field; unknown versions are rejected (pointer,
/// reason).
fn dialect(
    root: &serde_json::Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Dialect, (&'static str, String)> {
    let version = match root.get("openapi") {
        Some(Value::String(v)) => v.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err((
                "",
                "not an OpenAPI document: no `openapi` version field (expected 3.0.x or 3.1.x)"
                    .into(),
            ));
        }
    };
    if version.starts_with("3.0") {
        Ok(Dialect::V30)
    } else if version.starts_with("3.1") {
        Ok(Dialect::V31)
    } else if version.starts_with("3.") {
        warnings.push(format!("OpenAPI {version} is read as 3.1"));
        Ok(Dialect::V31)
    } else {
        Err((
            "/openapi",
            format!("unsupported OpenAPI version '{version}' (expected 3.0.x or 3.1.x)"),
        ))
    }
}

/// A server URL after variable substitution.
enum ServerUrl {
    /// `http(s)://host...`, without a trailing slash.
    Absolute(String),
    /// Anything else (`/v1`, `api.example.com`): relative to where the document was served.
    Relative(String),
}

/// The first entry of a `servers` list, its `{variables}` replaced by their defaults. A
/// variable without a default (not declared, or invalid) leaves the URL unusable as it
/// is: it is then reported like a relative one, so that a configured base URL resolves it.
fn server_url(servers: Option<&Value>) -> Result<Option<ServerUrl>, String> {
    let Some(server) = servers.and_then(Value::as_array).and_then(|s| s.first()) else {
        return Ok(None);
    };
    let Some(template) = server.get("url").and_then(Value::as_str) else {
        return Err("the first server has no `url`".into());
    };
    let mut url = String::with_capacity(template.len());
    let mut unresolved = false;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        url.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| format!("server URL '{template}' has an unclosed '{{'"))?;
        let name = &rest[open + 1..close];
        let value = server
            .get("variables")
            .and_then(|v| v.get(name))
            .and_then(|v| v.get("default"))
            .and_then(Value::as_str);
        match value {
            Some(value) => url.push_str(value),
            None => {
                unresolved = true;
                url.push_str(&rest[open..=close]);
            }
        }
        rest = &rest[close + 1..];
    }
    url.push_str(rest);
    let url = url.trim().trim_end_matches('/').to_string();
    let absolute = !unresolved
        && url::Url::parse(&url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
    Ok(Some(if absolute {
        ServerUrl::Absolute(url)
    } else {
        ServerUrl::Relative(url)
    }))
}

impl Selection {
    /// Whether an operation passes the include and exclude lists: it must match every
    /// include criterion given and no exclude criterion.
    fn keeps(&self, operation_id: Option<&str>, tags: &[&str], method: &str, path: &str) -> bool {
        let id_in = |list: &[String]| operation_id.is_some_and(|id| list.iter().any(|x| x == id));
        let tag_in = |list: &[String]| tags.iter().any(|t| list.iter().any(|x| x == t));
        let method_in = |list: &[String]| list.iter().any(|m| m.eq_ignore_ascii_case(method));
        let path_in = |globs: &Option<globset::GlobSet>| globs.as_ref().map(|g| g.is_match(path));
        let included = (self.include_operations.is_empty() || id_in(&self.include_operations))
            && (self.include_tags.is_empty() || tag_in(&self.include_tags))
            && (self.include_methods.is_empty() || method_in(&self.include_methods))
            && path_in(&self.include_paths).unwrap_or(true);
        let excluded = id_in(&self.exclude_operations)
            || tag_in(&self.exclude_tags)
            || method_in(&self.exclude_methods)
            || path_in(&self.exclude_paths).unwrap_or(false);
        included && !excluded
    }

    /// Whether a deprecated operation is kept: on request, or when named explicitly.
    fn keeps_deprecated(&self, operation_id: Option<&str>) -> bool {
        self.include_deprecated
            || operation_id.is_some_and(|id| self.include_operations.iter().any(|x| x == id))
    }
}

#[cfg(test)]
mod tests;
