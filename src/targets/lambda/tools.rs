//! AgentCore ToolDefinitions (`name`, `description`, `inputSchema`, optional `outputSchema`)
//! of a Lambda target: read from gateway.yaml or a JSON/YAML file, checked at load, each
//! problem named by file and JSON pointer.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::settings::{LambdaTargetConfig, ToolsSource};
use crate::config::{Config, ConfigError};

/// One tool of a Lambda target, checked.
#[derive(Debug, Clone)]
pub struct LambdaToolSpec {
    /// The name in the definition: what the function sees after `target___`.
    pub name: String,
    /// Description for the model.
    pub description: String,
    /// JSON Schema of the arguments (the event).
    pub input_schema: Value,
    /// JSON Schema of `structuredContent` (an object schema; wrapped when the definition's
    /// is not).
    pub output_schema: Option<Value>,
    /// `Some("result")` when a non-object output is wrapped as `{"result": ...}`.
    pub output_wrap: Option<Box<str>>,
}

/// The definitions of a target after `include` / `exclude`, with warnings.
#[derive(Debug, Default)]
pub struct LoadedTools {
    /// Tools kept, in definition order.
    pub tools: Vec<LambdaToolSpec>,
    /// Where they came from (the tools file, or gateway.yaml).
    pub source: std::path::PathBuf,
    /// Non-fatal findings (filters naming unknown tools).
    pub warnings: Vec<String>,
}

const FIELDS: [&str; 4] = ["name", "description", "inputSchema", "outputSchema"];

/// Reads and checks the tool definitions of `lambda` (gateway.yaml at `config_file`).
pub fn load(
    config_file: &Path,
    target: &str,
    lambda: &LambdaTargetConfig,
) -> Result<LoadedTools, ConfigError> {
    // Where the definitions are, and how a problem at a JSON pointer is reported.
    let inline = matches!(lambda.tools.value, ToolsSource::Inline(_));
    let (list, source, base) = match &lambda.tools.value {
        ToolsSource::Inline(list) => (list.clone(), config_file.to_path_buf(), String::new()),
        ToolsSource::File(relative) => {
            let file = Config::resolve(config_file, relative);
            let (list, base) = read_file(&file, target)?;
            (list, file, base)
        }
    };
    let err = |m: String| {
        if inline {
            ConfigError::at(
                config_file,
                &lambda.tools.referenced,
                format!("target `{target}`: lambda.tools{m}"),
            )
        } else {
            ConfigError::file(&source, format!("tools of target `{target}`: at {m}"))
        }
    };
    let mut tools = Vec::with_capacity(list.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, value) in list.iter().enumerate() {
        let pointer = format!("{base}/{i}");
        let tool = check_definition(value, &pointer).map_err(err)?;
        if let Some(first) = seen.insert(tool.name.clone(), i) {
            return Err(err(format!(
                "{pointer}/name: tool `{}` is already defined at {base}/{first}; names must be unique",
                tool.name
            )));
        }
        tools.push(tool);
    }
    if tools.is_empty() {
        return Err(err(format!(
            "{}: no tool definitions; give at least one (name, description, inputSchema)",
            if base.is_empty() { "/" } else { &base }
        )));
    }
    let mut warnings = Vec::new();
    let filters = [("include", &lambda.include), ("exclude", &lambda.exclude)];
    for (key, filter) in filters {
        for name in filter.iter().flat_map(|f| &f.tools) {
            if !seen.contains_key(name) {
                warnings.push(format!(
                    "target `{target}`: lambda.{key} names `{name}`, which no tool definition has"
                ));
            }
        }
    }
    tools.retain(|t| {
        lambda
            .include
            .as_ref()
            .is_none_or(|inc| inc.tools.contains(&t.name))
            && !lambda
                .exclude
                .as_ref()
                .is_some_and(|exc| exc.tools.contains(&t.name))
    });
    Ok(LoadedTools {
        tools,
        source,
        warnings,
    })
}

/// Reads a tools file: a JSON or YAML list of definitions, or an object holding one under
/// `tools` or `inlinePayload` (AgentCore's `toolSchema`). Returns the list and its pointer.
fn read_file(file: &Path, target: &str) -> Result<(Vec<Value>, String), ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::file(
            file,
            format!("cannot read the tool definitions of target `{target}`: {e}"),
        )
    })?;
    let yaml = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let doc: Value = if yaml {
        serde_saphyr::from_str(&text).map_err(|e| {
            let message = e.to_string();
            let message = message.lines().next().unwrap_or_default().to_string();
            match e.location() {
                Some(loc) => ConfigError::at(file, &loc, message),
                None => ConfigError::file(file, message),
            }
        })?
    } else {
        serde_json::from_str(&text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: format!("not valid JSON: {e}"),
        })?
    };
    match doc {
        Value::Array(list) => Ok((list, String::new())),
        Value::Object(mut map) => {
            for key in ["tools", "inlinePayload"] {
                if let Some(Value::Array(list)) = map.remove(key) {
                    return Ok((list, format!("/{key}")));
                }
            }
            Err(ConfigError::file(
                file,
                "expected a list of tool definitions, or an object with a `tools` (or AgentCore `inlinePayload`) list",
            ))
        }
        _ => Err(ConfigError::file(
            file,
            "expected a list of tool definitions (name, description, inputSchema, outputSchema)",
        )),
    }
}

/// Checks one ToolDefinition at `pointer`.
fn check_definition(value: &Value, pointer: &str) -> Result<LambdaToolSpec, String> {
    let Some(map) = value.as_object() else {
        return Err(format!(
            "{pointer}: a tool definition is an object with name, description and inputSchema"
        ));
    };
    for key in map.keys() {
        if !FIELDS.contains(&key.as_str()) {
            let suggestion = FIELDS
                .iter()
                .map(|f| {
                    (
                        strsim::jaro_winkler(&key.to_ascii_lowercase(), &f.to_ascii_lowercase()),
                        f,
                    )
                })
                .filter(|(score, _)| *score > 0.75)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, f)| format!(" (did you mean `{f}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "{pointer}/{key}: unknown field, expected one of {}{suggestion}",
                FIELDS.join(", ")
            ));
        }
    }
    let name = match map.get("name") {
        Some(Value::String(n))
            if !n.is_empty() && n.len() <= 128 && !n.chars().any(char::is_control) =>
        {
            n.clone()
        }
        Some(_) => {
            return Err(format!(
                "{pointer}/name: must be a non-empty string of at most 128 characters"
            ));
        }
        None => return Err(format!("{pointer}: `name` is required")),
    };
    let description = match map.get("description") {
        Some(Value::String(d)) => d.clone(),
        Some(_) => return Err(format!("{pointer}/description: must be a string")),
        None => {
            return Err(format!(
                "{pointer}: `description` is required (tool `{name}`)"
            ));
        }
    };
    let input_schema = match map.get("inputSchema") {
        Some(s @ Value::Object(o)) if o.get("type") == Some(&json!("object")) => s.clone(),
        Some(_) => {
            return Err(format!(
                "{pointer}/inputSchema: must be a JSON Schema with \"type\": \"object\" (the arguments are one object)"
            ));
        }
        None => {
            return Err(format!(
                "{pointer}: `inputSchema` is required (tool `{name}`)"
            ));
        }
    };
    crate::catalog::compile_schema(&input_schema)
        .map_err(|e| format!("{pointer}/inputSchema: not a valid JSON Schema: {e}"))?;
    let (output_schema, output_wrap) = match map.get("outputSchema") {
        None => (None, None),
        Some(s @ Value::Object(o)) => {
            crate::catalog::compile_schema(s)
                .map_err(|e| format!("{pointer}/outputSchema: not a valid JSON Schema: {e}"))?;
            if o.get("type") == Some(&json!("object")) {
                (Some(s.clone()), None)
            } else {
                let mut root = Map::new();
                root.insert("type".into(), "object".into());
                root.insert("properties".into(), json!({ "result": s }));
                root.insert("required".into(), json!(["result"]));
                (Some(Value::Object(root)), Some("result".into()))
            }
        }
        Some(_) => {
            return Err(format!(
                "{pointer}/outputSchema: must be a JSON Schema object"
            ));
        }
    };
    Ok(LambdaToolSpec {
        name,
        description,
        input_schema,
        output_schema,
        output_wrap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<LambdaToolSpec, String> {
        check_definition(&v, "/0")
    }

    #[test]
    fn definitions_are_checked_with_pointers() {
        let ok = check(json!({"name": "get_order", "description": "d",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}}}))
        .unwrap();
        assert_eq!(ok.name, "get_order");
        assert!(ok.output_schema.is_none());
        let e = check(json!({"name": "x", "description": "d", "input_schema": {}})).unwrap_err();
        assert!(e.starts_with("/0/input_schema: unknown field"), "{e}");
        assert!(e.contains("did you mean `inputSchema`"), "{e}");
        let e = check(json!({"name": "x", "description": "d", "inputSchema": {"type": "array"}}))
            .unwrap_err();
        assert!(e.starts_with("/0/inputSchema:"), "{e}");
        let e = check(json!({"name": "x", "description": "d",
            "inputSchema": {"type": "object", "properties": {"a": {"type": 5}}}}))
        .unwrap_err();
        assert!(e.contains("/0/inputSchema: not a valid JSON Schema"), "{e}");
        let e = check(json!({"description": "d", "inputSchema": {"type": "object"}})).unwrap_err();
        assert!(e.contains("`name` is required"), "{e}");
        assert!(check(json!("x")).is_err());
    }

    #[test]
    fn non_object_output_schemas_are_wrapped() {
        let t = check(
            json!({"name": "n", "description": "d", "inputSchema": {"type": "object"},
            "outputSchema": {"type": "array", "items": {"type": "integer"}}}),
        )
        .unwrap();
        assert_eq!(t.output_wrap.as_deref(), Some("result"));
        let out = t.output_schema.unwrap();
        assert_eq!(out["required"], json!(["result"]));
        assert_eq!(out["properties"]["result"]["type"], "array");
        let t = check(
            json!({"name": "n", "description": "d", "inputSchema": {"type": "object"},
            "outputSchema": {"type": "object"}}),
        )
        .unwrap();
        assert_eq!(t.output_wrap, None);
    }
}
