//! Cedar authorization policies (`policy:`): the policy files parsed at every (re)load, the
//! decision for one `tools/call`, and whether a tool is visible to a caller at all (partial
//! evaluation with the arguments unknown). See docs/policies.md for the entity model.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicyId, PolicySet, Request,
    RestrictedExpression,
};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::config::{Config, ConfigError};

/// The `policy:` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy files, relative to the config file; `*` and `?` allowed in the file name.
    pub files: Vec<String>,
    /// `enforce` (default) or `log_only`.
    #[serde(default)]
    pub mode: PolicyMode,
}

/// What a deny does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    /// A denied call is refused (403).
    #[default]
    Enforce,
    /// A denied call proceeds; the log says what enforcement would have done.
    LogOnly,
}

impl PolicyMode {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Enforce => "enforce",
            PolicyMode::LogOnly => "log_only",
        }
    }
}

/// The policies of one load, with ids that say where each came from (`@id("...")`, else
/// `file:line`).
pub struct Policies {
    set: PolicySet,
    /// `policy.mode`.
    pub mode: PolicyMode,
    /// The files read, for `--watch`.
    pub files: Vec<PathBuf>,
    /// Per policy id: the file it came from and that file's text (for error locations).
    sources: HashMap<String, (PathBuf, std::sync::Arc<str>)>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("policies", &self.set.policies().count())
            .field("mode", &self.mode)
            .field("files", &self.files)
            .finish()
    }
}

/// The decision for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether some policy permits and none forbids.
    pub allowed: bool,
    /// The deciding policies' ids (empty: no policy permits).
    pub policies: Vec<String>,
}

impl Verdict {
    /// The deciding policies for a message: their ids, or `no policy permits`.
    pub fn describe(&self) -> String {
        if self.policies.is_empty() {
            "no policy permits".to_string()
        } else {
            self.policies.join(", ")
        }
    }
}

impl Policies {
    /// Reads and parses every file `section` names. A parse error names `file:line:col`.
    pub fn load(
        config_file: &Path,
        section: &serde_saphyr::Spanned<PolicyConfig>,
    ) -> Result<Self, ConfigError> {
        let mut files = Vec::new();
        for pattern in &section.value.files {
            let matched = expand(&Config::resolve(config_file, Path::new(pattern)))
                .map_err(|e| ConfigError::at(config_file, &section.referenced, e))?;
            if matched.is_empty() {
                return Err(ConfigError::at(
                    config_file,
                    &section.referenced,
                    format!("policy.files: `{pattern}` matches no file"),
                ));
            }
            files.extend(matched);
        }
        let mut set = PolicySet::new();
        let mut sources = HashMap::new();
        for file in &files {
            let text: std::sync::Arc<str> = std::fs::read_to_string(file)
                .map_err(|e| ConfigError::file(file, format!("cannot read the policy file: {e}")))?
                .into();
            let parsed = PolicySet::from_str(&text).map_err(|e| {
                let offset = first_offset(&e);
                let (line, column) = line_col(&text, offset.unwrap_or(0));
                ConfigError {
                    file: file.clone(),
                    line: if offset.is_some() { line } else { 0 },
                    column: if offset.is_some() { column } else { 0 },
                    message: format!("invalid Cedar policy: {}", describe_parse_error(&e)),
                }
            })?;
            if parsed.templates().next().is_some() {
                return Err(ConfigError::file(
                    file,
                    "policy templates are not supported; write static policies",
                ));
            }
            let starts = statement_starts(&text);
            let count = parsed.policies().count();
            // Ids name the file as the config does: relative to its directory.
            let base = config_file.parent().unwrap_or(Path::new(""));
            let shown = file.strip_prefix(base).unwrap_or(file).display();
            for i in 0..count {
                let Some(policy) = parsed.policy(&PolicyId::new(format!("policy{i}"))) else {
                    continue;
                };
                let id = match policy.annotation("id") {
                    Some(id) => id.to_string(),
                    None => match starts.get(i) {
                        Some(&offset) => format!("{shown}:{}", line_col(&text, offset).0),
                        None => format!("{shown}#{i}"),
                    },
                };
                let line = starts.get(i).map_or(0, |&o| line_col(&text, o).0);
                sources.insert(id.clone(), (file.clone(), text.clone()));
                set.add(policy.new_id(PolicyId::new(&id)))
                    .map_err(|_| ConfigError {
                        file: file.clone(),
                        line,
                        column: 0,
                        message: format!("policy id `{id}` is used twice"),
                    })?;
            }
        }
        Ok(Self {
            set,
            mode: section.value.mode,
            files,
            sources,
        })
    }

    /// Type-checks the policies against the schema generated from `catalog` (see
    /// [`schema`]): one `file:line:col: message` per problem (`toolgate check`).
    pub fn validate(&self, catalog: &crate::catalog::Catalog) -> Vec<String> {
        use miette::Diagnostic;
        let schema = match schema(catalog) {
            Ok(s) => s,
            Err(e) => return vec![format!("the generated Cedar schema is invalid: {e}")],
        };
        let result = cedar_policy::Validator::new(schema)
            .validate(&self.set, cedar_policy::ValidationMode::Strict);
        result
            .validation_errors()
            .map(|error| {
                let id = error.policy_id().to_string();
                let offset = error
                    .labels()
                    .and_then(|mut l| l.next())
                    .map(|l| l.offset());
                let place = match (self.sources.get(&id), offset) {
                    (Some((file, text)), Some(offset)) => {
                        let (line, column) = line_col(text, offset);
                        format!("{}:{line}:{column}", file.display())
                    }
                    (Some((file, _)), None) => file.display().to_string(),
                    (None, _) => id.clone(),
                };
                let help = error.help().map(|h| format!(" ({h})")).unwrap_or_default();
                format!("{place}: policy `{id}`: {error}{help}")
            })
            .collect()
    }

    /// Decides one call of `tool` (of `target`) with these validated arguments.
    pub fn decide(
        &self,
        caller: Option<&Caller>,
        tool: &str,
        target: &str,
        input: &Value,
    ) -> Verdict {
        let denied = |why: String| {
            tracing::warn!(target: "toolgate::policy", tool, error = %why, "policy request not built; denied");
            Verdict {
                allowed: false,
                policies: Vec::new(),
            }
        };
        let (principal, entities) = match principal(caller) {
            Ok(p) => p,
            Err(e) => return denied(e),
        };
        let context = match context(input) {
            Ok(c) => c,
            Err(e) => return denied(e),
        };
        let request = match Request::new(principal, action(tool), resource(target), context, None) {
            Ok(r) => r,
            Err(e) => return denied(e.to_string()),
        };
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        for error in response.diagnostics().errors() {
            tracing::warn!(target: "toolgate::policy", tool, error = %error, "policy evaluation error (the policy is skipped)");
        }
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policies.sort();
        Verdict {
            allowed: response.decision() == Decision::Allow,
            policies,
        }
    }

    /// Whether some call of `tool` could be permitted for `caller`: partial evaluation with
    /// the context (the arguments and the time) unknown; hidden only on a definite deny.
    pub fn visible(&self, caller: Option<&Caller>, tool: &str, target: &str) -> bool {
        let Ok((principal, entities)) = principal(caller) else {
            return false;
        };
        let request = Request::builder()
            .principal(principal)
            .action(action(tool))
            .resource(resource(target))
            .build();
        let response = Authorizer::new().is_authorized_partial(&request, &self.set, &entities);
        response.decision() != Some(Decision::Deny)
    }
}

/// The Cedar schema of a catalog: entity types `Caller` (the claims below, as attributes)
/// and `Target`; one action per tool that applies to them, whose context is
/// `{input: <its inputSchema as a record>, time: {epoch_seconds, hour_utc, weekday}}`.
pub fn schema(catalog: &crate::catalog::Catalog) -> Result<cedar_policy::Schema, String> {
    let string = serde_json::json!({"type": "String", "required": false});
    let strings =
        serde_json::json!({"type": "Set", "element": {"type": "String"}, "required": false});
    let caller = serde_json::json!({
        "type": "Record",
        "attributes": {
            "authenticated": {"type": "Boolean"},
            "scopes": {"type": "Set", "element": {"type": "String"}},
            "iss": string, "sub": string, "client_id": string, "azp": string,
            "scope": string, "email": string, "name": string,
            "groups": strings, "roles": strings,
        }
    });
    let long = serde_json::json!({"type": "Long"});
    let time = serde_json::json!({"type": "Record", "attributes": {
        "epoch_seconds": long, "hour_utc": long, "weekday": long}});
    let mut actions = serde_json::Map::new();
    for tool in catalog.tools() {
        let definition: Value = serde_json::from_str(tool.definition.get()).unwrap_or_default();
        let input = cedar_type(&definition["inputSchema"])
            .unwrap_or_else(|| serde_json::json!({"type": "Record", "attributes": {}}));
        actions.insert(
            tool.name.to_string(),
            serde_json::json!({"appliesTo": {
                "principalTypes": ["Caller"],
                "resourceTypes": ["Target"],
                "context": {"type": "Record", "attributes": {"input": input, "time": time}},
            }}),
        );
    }
    let json = serde_json::json!({"": {
        "entityTypes": {"Caller": {"shape": caller}, "Target": {}},
        "actions": actions,
    }});
    cedar_policy::Schema::from_json_value(json).map_err(|e| e.to_string())
}

/// A JSON Schema as a Cedar schema type: `integer` is `Long`, `string` `String`, `boolean`
/// `Boolean`, `array` a `Set` of its items' type, `object` with `properties` a record
/// (`required` kept); a type that also admits `null` counts as its other type. Anything
/// else (`number`, `oneOf`, an object without properties...) has no type: such a property
/// is left out of the record, so a policy that reads it fails `toolgate check`.
fn cedar_type(schema: &Value) -> Option<Value> {
    let kind = match &schema["type"] {
        Value::String(s) => s.as_str(),
        Value::Array(kinds) => {
            let kinds: Vec<&str> = kinds
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| *k != "null")
                .collect();
            match kinds[..] {
                [one] => one,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(match kind {
        "integer" => serde_json::json!({"type": "Long"}),
        "string" => serde_json::json!({"type": "String"}),
        "boolean" => serde_json::json!({"type": "Boolean"}),
        "array" => serde_json::json!({"type": "Set", "element": cedar_type(&schema["items"])?}),
        "object" => {
            let properties = schema["properties"].as_object()?;
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut attributes = serde_json::Map::new();
            for (name, property) in properties {
                if let Some(mut t) = cedar_type(property) {
                    t["required"] = Value::Bool(required.contains(&name.as_str()));
                    attributes.insert(name.clone(), t);
                }
            }
            serde_json::json!({"type": "Record", "attributes": attributes})
        }
        _ => return None,
    })
}

/// Whether `tool` is visible to `caller` under `policies` (always, without policies).
pub fn visible(
    policies: Option<&Policies>,
    caller: Option<&Caller>,
    tool: &crate::catalog::Tool,
) -> bool {
    policies.is_none_or(|p| p.visible(caller, &tool.name, &tool.target))
}

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        kind.parse().expect("a valid entity type name"),
        cedar_policy::EntityId::new(id),
    )
}

fn action(tool: &str) -> EntityUid {
    uid("Action", tool)
}

fn resource(target: &str) -> EntityUid {
    uid("Target", target)
}

/// The caller's entity: `Caller::"<iss>|<sub>"` with the token's claims as attributes, plus
/// `scopes` (a set) and `authenticated`; `Caller::"anonymous"` without inbound auth.
fn principal(caller: Option<&Caller>) -> Result<(EntityUid, Entities), String> {
    let mut attrs = HashMap::new();
    let id = match caller {
        None => {
            attrs.insert(
                "authenticated".to_string(),
                RestrictedExpression::new_bool(false),
            );
            attrs.insert("scopes".to_string(), RestrictedExpression::new_set([]));
            "anonymous".to_string()
        }
        Some(caller) => {
            for (name, value) in caller.claims.iter() {
                if let Some(v) = to_cedar(value) {
                    attrs.insert(name.clone(), v);
                }
            }
            attrs.insert(
                "scopes".to_string(),
                RestrictedExpression::new_set(
                    caller
                        .scopes
                        .iter()
                        .map(|s| RestrictedExpression::new_string(s.to_string())),
                ),
            );
            if let Some(client) = &caller.client {
                attrs.insert(
                    "client_id".to_string(),
                    RestrictedExpression::new_string(client.to_string()),
                );
            }
            attrs.insert(
                "authenticated".to_string(),
                RestrictedExpression::new_bool(true),
            );
            let iss = caller
                .claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{iss}|{}", caller.subject.as_deref().unwrap_or(""))
        }
    };
    let uid = uid("Caller", &id);
    let entity = Entity::new(uid.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;
    let entities = Entities::from_entities([entity], None).map_err(|e| e.to_string())?;
    Ok((uid, entities))
}

/// `{input: <arguments>, time: {epoch_seconds, hour_utc, weekday}}` (weekday 0 = Monday).
fn context(input: &Value) -> Result<Context, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = now.div_euclid(86_400);
    let time = RestrictedExpression::new_record([
        (
            "epoch_seconds".to_string(),
            RestrictedExpression::new_long(now),
        ),
        (
            "hour_utc".to_string(),
            RestrictedExpression::new_long(now.rem_euclid(86_400) / 3600),
        ),
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        (
            "weekday".to_string(),
            RestrictedExpression::new_long((days + 3).rem_euclid(7)),
        ),
    ])
    .map_err(|e| e.to_string())?;
    let input = to_cedar(input)
        .unwrap_or_else(|| RestrictedExpression::new_record([]).expect("an empty record"));
    Context::from_pairs([("input".to_string(), input), ("time".to_string(), time)])
        .map_err(|e| e.to_string())
}

/// A JSON value as a Cedar value: integers are `Long`, strings, booleans, arrays are sets,
/// objects records; a non-integer number is a `decimal` when it has at most four decimals
/// and fits, else dropped; `null` is dropped (so is an array element or attribute that is).
pub fn to_cedar(value: &Value) -> Option<RestrictedExpression> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => decimal(&n.to_string())?,
        },
        Value::Array(items) => RestrictedExpression::new_set(items.iter().filter_map(to_cedar)),
        Value::Object(map) => RestrictedExpression::new_record(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), to_cedar(v)?))),
        )
        .ok()?,
    })
}

/// `12.5` as `decimal("12.5")` when Cedar's decimal holds it (at most 4 decimals, within
/// the range of a 64-bit integer divided by 10^4).
fn decimal(text: &str) -> Option<RestrictedExpression> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    let simple = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !fraction.is_empty()
        && fraction.len() <= 4
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !simple || whole.parse::<i64>().ok()?.checked_mul(10_000).is_none() {
        return None;
    }
    Some(RestrictedExpression::new_decimal(format!(
        "{whole}.{fraction}"
    )))
}

/// The files a pattern names: itself, or with `*`/`?`/`[` in its file name, the matching
/// files of its directory (sorted).
fn expand(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?', '[']) {
        return Ok(if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let glob = globset::Glob::new(&name)
        .map_err(|e| format!("policy.files: {e}"))?
        .compile_matcher();
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| glob.is_match(n)))
        .collect();
    files.sort();
    Ok(files)
}

/// The byte offset of the first labelled span of a parse error.
fn first_offset(error: &cedar_policy::ParseErrors) -> Option<usize> {
    use miette::Diagnostic;
    error
        .iter()
        .find_map(|e| e.labels().and_then(|mut l| l.next()).map(|l| l.offset()))
}

fn describe_parse_error(error: &cedar_policy::ParseErrors) -> String {
    use miette::Diagnostic;
    error
        .iter()
        .map(|e| match e.help() {
            Some(help) => format!("{e} ({help})"),
            None => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u64, u64) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

/// Where each statement (policy) of a policy file starts: its first character that is not
/// blank or a comment, after the start or a `;` outside strings and comments.
fn statement_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = Vec::new();
    let mut at_start = true;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            b => {
                if at_start {
                    starts.push(i);
                    at_start = false;
                }
                if b == b'"' {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                } else if b == b';' {
                    at_start = true;
                }
            }
        }
        i += 1;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_start_after_semicolons_outside_strings_and_comments() {
        let text = "// a comment; still\npermit(principal, action, resource)\nwhen { \"a;b\" == \"a;b\" };\n\n@id(\"x\")\nforbid(principal, action, resource);\n";
        let starts = statement_starts(text);
        assert_eq!(
            starts
                .iter()
                .map(|&o| line_col(text, o).0)
                .collect::<Vec<_>>(),
            [2, 5]
        );
    }

    #[test]
    fn numbers_map_to_long_or_decimal() {
        assert!(decimal("12.5").is_some());
        assert!(decimal("12.12345").is_none());
        assert!(decimal("1e5").is_none());
        assert!(to_cedar(&serde_json::json!({"a": [1, "x", null], "b": null})).is_some());
    }
}
