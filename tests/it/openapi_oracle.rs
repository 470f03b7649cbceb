//! Conformance against an independent oracle: for every operation of a representative set
//! of documents (the feature documents of `tests/corpus/features` — Swagger 2.0, OpenAPI
//! 3.0 and 3.1 — plus the Twilio and OpenAI documents), arguments are generated from the
//! tool's `inputSchema` (examples, defaults, then a small schema-driven generator), the
//! tool is called through a real gateway over MCP, the upstream on 127.0.0.1 records the
//! HTTP request, and `tests/oracle/validate.py` validates each recorded request against the
//! same document with openapi-core (`V30RequestValidator` / `V31RequestValidator`).
//!
//! openapi-core does not read Swagger 2.0: those documents are validated against the
//! gateway's own 3.0 conversion (`toolgate::openapi::upgrade_swagger2`), which checks the
//! encoding of requests but not the 2.0 → 3.0 conversion itself.
//!
//! The virtualenv is made by `./test.sh` (`tests/oracle/.venv`, pinned by
//! `tests/oracle/requirements.txt`). Without it the test fails, unless
//! `TOOLGATE_SKIP_ORACLE=1` is set.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use rmcp::model::CallToolRequestParams;
use serde_json::{Map, Value, json};
use toolgate::catalog::compile_schema;
use toolgate::openapi::{ConvertOptions, Converted, Selection, load_and_convert};

use crate::support::{Answer, Gateway, Lifecycle, Upstream};

use crate::support::CORPUS as SPECS;
const ORACLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle");

/// Rejections that are not the gateway's: limitations of openapi-core, or requests that no
/// client could make valid because the document contradicts itself: (document path
/// suffix, operation label substring, error substring, reason). Each was checked by hand
/// against the OpenAPI specification and openapi-core 0.19.5's source.
const ORACLE_LIMITS: &[(&str, &str, &str, &str)] = &[
    (
        "",
        "",
        "b'",
        "openapi-core decodes multipart parts by their schema alone (schema/encodings.py): a part whose schema is `format: binary` or has no `type` (oneOf/anyOf) is read as bytes, which its 3.1 validator then rejects as not a string",
    ),
    (
        "openai.yaml",
        "/skills",
        "['abc'] is not valid under any of the given schemas",
        "openapi-core reads each part of a multipart array of files as bytes (see above); the `anyOf` then matches no branch",
    ),
    (
        "openai.yaml",
        "",
        "could not be resolved",
        "the document's discriminators have no `mapping` and their values (`developer`, `function`, `auto`...) are not schema names, so the implicit mapping OpenAPI prescribes (value = schema name) resolves nothing: no request can satisfy it",
    ),
    (
        "openai.yaml",
        "",
        "is not valid under any of the given schemas",
        "the same unresolvable discriminators, one level down: inside an `anyOf` (array | null), which reports only that no branch matched",
    ),
    (
        "discriminators.json",
        "/mapping-of-schema-names",
        "could not be resolved",
        "OpenAPI allows a discriminator `mapping` to name a schema (`OptionOneNoDisc`) instead of a reference; openapi-core resolves only references",
    ),
    (
        "server-variables.json",
        "/combo",
        "ServerNotFound",
        "openapi-core prefers path-item `servers` to operation `servers` (templating/paths/iterators.py); OpenAPI says the operation's override the path item's",
    ),
    (
        "server-variables.json",
        "/global",
        "ServerNotFound",
        "werkzeug drops the default port `:443` from the request URL, so openapi-core cannot match the template `https://{name}.example.com:{port}/{basePath}`",
    ),
    (
        "schema-circular.json",
        "",
        "Missing required header parameter: Authorization",
        "OpenAPI says a header parameter named `Authorization` SHALL be ignored (credentials set it); openapi-core requires it",
    ),
    (
        "circular-paths.json",
        "",
        "Failed to cast value to object",
        "a `simple` header holding an array of objects: OpenAPI defines no serialization for objects inside arrays; toolgate sends each as JSON, openapi-core casts the raw text",
    ),
    (
        "",
        "form_data_deepObject",
        "ValueError: not available",
        "openapi-core cannot deserialize `deepObject` fields of form bodies",
    ),
    (
        "schema-validation-local.json",
        "",
        "maximum of True",
        "openapi-core reads a 3.0-style boolean exclusiveMaximum in a 3.1 document as a number",
    ),
    (
        "star-trek.json",
        "/search",
        "not valid for schema of type any",
        "form body schema without `type: object`: openapi-core does not cast its fields from strings",
    ),
    (
        "parameters-style.json",
        "path/matrix",
        "KeyError: ';",
        "openapi-core does not parse `matrix` path parameters",
    ),
    (
        "parameters-style.json",
        "path/label",
        "KeyError: '.",
        "openapi-core does not parse `label` path parameters",
    ),
    (
        "",
        "",
        "a bytes-like object is required, not 'str'",
        "openapi-core crashes deserializing styled fields of form/multipart bodies",
    ),
    (
        "",
        "",
        "is not a 'binary'",
        "openapi-core's `binary` format accepts only bytes, never a JSON or query string",
    ),
    (
        "",
        "",
        "is not a 'time'",
        "the document's own example time rejected by openapi-core's `time` checker",
    ),
    (
        "",
        "",
        "is not a 'uuid'",
        "the document's own example is not a UUID",
    ),
    (
        "schema-validation-top-level.json",
        "",
        "maximum of True",
        "openapi-core reads a 3.0-style boolean exclusiveMaximum in a 3.1 document as a number",
    ),
];

/// The documents of the representative set, sorted.
fn documents() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(SPECS).join("features")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    for name in [
        "twilio_api_v2010.json",
        "twilio_messaging_v1.json",
        "twilio_verify_v2.json",
        "openai.yaml",
    ] {
        out.push(Path::new(SPECS).join("real").join(name));
    }
    out.sort();
    out
}

/// The document when it is JSON; for YAML only its top-level `openapi` field.
fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "json") {
        return serde_json::from_str(&text).unwrap();
    }
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("openapi:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .expect("a YAML document of the set declares `openapi`");
    json!({ "openapi": version })
}

/// The document converted as the gateway would without `base_url`: each tool's
/// `operation.base_url` is then the server the document prescribes for it. Documents
/// without an absolute server get `http://localhost:8080` (relative to which openapi-core
/// resolves them too).
fn convert(path: &Path) -> Converted {
    // Deprecated operations too: the oracle checks every operation's request.
    let options = |base: Option<&str>| ConvertOptions {
        selection: Selection {
            include_deprecated: true,
            ..Selection::default()
        },
        ..ConvertOptions::new(base.map(str::to_string))
    };
    match load_and_convert(path, &options(None)) {
        Err(e) if e.reason.starts_with("no absolute server URL") => {
            load_and_convert(path, &options(Some("http://localhost:8080"))).unwrap()
        }
        other => other.unwrap(),
    }
}

/// Schema-driven argument generator over a tool's `inputSchema` (local `$ref`s resolved
/// against it).
struct Generator<'a> {
    root: &'a Value,
    /// Use `examples` and `default` when present.
    use_examples: bool,
    /// Which `oneOf`/`anyOf` branch to try first, and the seed for `pattern` strings: a
    /// call whose arguments fail validation is retried with the next variant.
    variant: usize,
}

/// How many variants [`arguments`] tries.
const VARIANTS: usize = 6;

impl Generator<'_> {
    fn value(&self, schema: &Value, depth: usize) -> Result<Value, String> {
        if depth > 16 {
            return Err("schema nests too deeply for the generator".into());
        }
        let s = match schema {
            Value::Bool(true) => return Ok(json!("x")),
            Value::Bool(false) => return Err("schema `false`".into()),
            Value::Object(s) => s,
            _ => return Err("schema is not an object".into()),
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix('#')
                .and_then(|p| self.root.pointer(p))
                .ok_or_else(|| format!("unresolvable $ref {r}"))?;
            return self.value(target, depth + 1);
        }
        if let Some(c) = s.get("const") {
            return Ok(c.clone());
        }
        if self.use_examples {
            if let Some(e) = s
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
            {
                return Ok(e.clone());
            }
            if let Some(d) = s.get("default") {
                return Ok(d.clone());
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .ok_or_else(|| "enum of null only".into());
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for branch in all {
                match self.value(branch, depth + 1)? {
                    Value::Object(o) => merged.extend(o),
                    other if all.len() == 1 => return Ok(other),
                    _ => return Err("allOf of non-objects".into()),
                }
            }
            if s.contains_key("properties")
                && let Value::Object(o) = self.object(s, depth)?
            {
                merged.extend(o);
            }
            return Ok(Value::Object(merged));
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s.get(key).and_then(Value::as_array) {
                let mut last = format!("empty {key}");
                let start = self.variant % branches.len().max(1);
                for branch in branches.iter().cycle().skip(start).take(branches.len()) {
                    match self.value(branch, depth + 1) {
                        Ok(Value::Null) => continue,
                        Ok(v) => {
                            let v = self.discriminate(s, branch, v, depth);
                            if let (Value::Object(mut v), true) =
                                (v.clone(), s.contains_key("properties"))
                            {
                                if let Value::Object(o) = self.object(s, depth)? {
                                    for (k, x) in o {
                                        v.entry(k).or_insert(x);
                                    }
                                }
                                return Ok(Value::Object(v));
                            }
                            return Ok(v);
                        }
                        Err(e) => last = e,
                    }
                }
                return Err(last);
            }
        }
        let ty = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("null"),
            _ if s.contains_key("properties") => "object",
            _ if s.contains_key("items") => "array",
            _ => "string",
        };
        match ty {
            "object" => self.object(s, depth),
            "array" => {
                let min = s
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1);
                let max = s
                    .get("maxItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                let n = min.min(max);
                let item = self.value(s.get("items").unwrap_or(&Value::Bool(true)), depth + 1)?;
                if n > 1 && s.get("uniqueItems") == Some(&Value::Bool(true)) {
                    return Err("uniqueItems with minItems > 1".into());
                }
                Ok(Value::Array(vec![item; n as usize]))
            }
            "string" => string(s, self.variant),
            "integer" | "number" => number(s, ty == "integer"),
            "boolean" => Ok(json!(true)),
            "null" => Ok(Value::Null),
            other => Err(format!("type {other}")),
        }
    }

    /// Gives an object made from a `oneOf`/`anyOf` branch the discriminator value that
    /// selects that branch: the explicit mapping's key, else the branch's own `enum` or
    /// `const` for the property, else the schema name (the implicit mapping).
    fn discriminate(
        &self,
        s: &Map<String, Value>,
        branch: &Value,
        value: Value,
        depth: usize,
    ) -> Value {
        let Value::Object(mut object) = value else {
            return value;
        };
        let Some(property) = s
            .get("discriminator")
            .and_then(|d| d.get("propertyName"))
            .and_then(Value::as_str)
        else {
            return Value::Object(object);
        };
        let reference = branch.get("$ref").and_then(Value::as_str);
        let mapped = reference.and_then(|r| {
            s["discriminator"]
                .get("mapping")
                .and_then(Value::as_object)?
                .iter()
                .find(|(_, target)| {
                    target
                        .as_str()
                        .is_some_and(|t| t.ends_with(r) || r.ends_with(t))
                })
                .map(|(key, _)| json!(key))
        });
        let resolved = reference
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| self.root.pointer(p))
            .unwrap_or(branch);
        let own = resolved
            .get("properties")
            .and_then(|p| p.get(property))
            .filter(|p| p.get("enum").is_some() || p.get("const").is_some())
            .and_then(|p| self.value(p, depth + 1).ok());
        let implicit = reference
            .and_then(|r| r.rsplit('/').next())
            .map(|name| json!(name));
        if let Some(v) = mapped.or(own).or_else(|| {
            (!object.contains_key(property))
                .then_some(implicit)
                .flatten()
        }) {
            object.insert(property.to_string(), v);
        }
        Value::Object(object)
    }

    fn object(&self, s: &Map<String, Value>, depth: usize) -> Result<Value, String> {
        let empty = Map::new();
        let props = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        for (name, prop) in props {
            let needed = required.contains(&name.as_str());
            // At the top level (the tool's parameters) optional ones are sent too, to
            // exercise every parameter style; deeper down only what is required.
            if !needed && depth > 0 {
                continue;
            }
            match self.value(prop, depth + 1) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(e) if needed => return Err(format!("{name}: {e}")),
                Err(_) => {}
            }
        }
        // `dependentRequired` (an optional body's required fields): give them too, or
        // leave out what needs them.
        if let Some(dependent) = s.get("dependentRequired").and_then(Value::as_object) {
            for (key, needs) in dependent {
                if !out.contains_key(key) {
                    continue;
                }
                for need in needs
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if out.contains_key(need) {
                        continue;
                    }
                    match props.get(need).map(|p| self.value(p, depth + 1)) {
                        Some(Ok(v)) => {
                            out.insert(need.to_string(), v);
                        }
                        _ => {
                            out.remove(key);
                            break;
                        }
                    }
                }
            }
        }
        // An empty object says nothing about how objects are serialized: give one
        // property when there is any.
        if out.is_empty()
            && depth > 0
            && let Some((name, v)) = props
                .iter()
                .find_map(|(n, p)| self.value(p, depth + 1).ok().map(|v| (n.clone(), v)))
        {
            out.insert(name, v);
        }
        for name in required {
            if !out.contains_key(name) {
                let extra = s.get("additionalProperties").unwrap_or(&Value::Bool(true));
                out.insert(name.to_string(), self.value(extra, depth + 1)?);
            }
        }
        Ok(Value::Object(out))
    }
}

fn string(s: &Map<String, Value>, variant: usize) -> Result<Value, String> {
    let format = s.get("format").and_then(Value::as_str).unwrap_or("");
    let base = match format {
        "date" => "2024-01-02",
        "date-time" => "2024-01-02T03:04:05Z",
        "time" => "03:04:05Z",
        "uuid" => "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "email" => "someone@example.com",
        "uri" | "url" => "https://example.com/x",
        "hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "byte" => "aGVsbG8=",
        _ if s.get("contentEncoding").and_then(Value::as_str) == Some("base64") => "aGVsbG8=",
        _ => "",
    };
    if !base.is_empty() {
        return Ok(json!(base));
    }
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = s
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX) as usize;
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
        return matching(pattern, min, max, variant).map(Value::String);
    }
    let len = 3.max(min).min(max);
    Ok(json!("abc".chars().cycle().take(len).collect::<String>()))
}

/// A string that matches `pattern` (an ECMA-262 regular expression, as JSON Schema reads
/// it) with a length in `min..=max`, drawn with the seed `variant`.
fn matching(pattern: &str, min: usize, max: usize, variant: usize) -> Result<String, String> {
    use rand::SeedableRng;
    // A generated string matches the whole expression, so the outer anchors are moot
    // (rand_regex does not take anchors).
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let body = match body.strip_suffix('$') {
        Some(inner) if !inner.ends_with('\\') => inner,
        _ => body,
    };
    // ECMA-262 classes are ASCII; regex-syntax's are Unicode.
    let mut ascii = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            ascii.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => ascii.push_str("[0-9]"),
            Some('w') => ascii.push_str("[A-Za-z0-9_]"),
            Some('s') => ascii.push_str("[ \\t\\n\\r]"),
            Some(other) => {
                ascii.push('\\');
                ascii.push(other);
            }
            None => ascii.push('\\'),
        }
    }
    let regex = rand_regex::Regex::compile(&ascii, 4)
        .map_err(|e| format!("a `pattern` the generator cannot read ({pattern}): {e}"))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(variant as u64);
    for _ in 0..64 {
        let sample: String = rand::Rng::sample(&mut rng, &regex);
        let len = sample.chars().count();
        if (min..=max).contains(&len) {
            return Ok(sample);
        }
    }
    Err(format!(
        "no string of length {min}..={max} matching `{pattern}` found"
    ))
}

fn number(s: &Map<String, Value>, integer: bool) -> Result<Value, String> {
    let f = |k: &str| s.get(k).and_then(Value::as_f64);
    let step = if integer { 1.0 } else { 0.5 };
    let low = f("minimum").or(f("exclusiveMinimum").map(|x| x + step));
    let high = f("maximum").or(f("exclusiveMaximum").map(|x| x - step));
    let mut v = 1.0f64;
    if let Some(l) = low {
        v = v.max(l);
    }
    if let Some(h) = high {
        v = v.min(h);
    }
    if let Some(m) = f("multipleOf") {
        v = (v / m).ceil() * m;
    }
    if integer || v.fract() == 0.0 {
        Ok(json!(v as i64))
    } else {
        Ok(json!(v))
    }
}

/// Arguments that validate against the tool's `inputSchema`, or why none were made.
fn arguments(schema: &Value) -> Result<Map<String, Value>, String> {
    let validator = compile_schema(schema)?;
    let mut last = String::new();
    let tries = (0..VARIANTS).flat_map(|variant| [(true, variant), (false, variant)]);
    for (use_examples, variant) in tries {
        let generator = Generator {
            root: schema,
            use_examples,
            variant,
        };
        match generator.value(schema, 0) {
            Ok(Value::Object(args)) => {
                let value = Value::Object(args.clone());
                match validator.iter_errors(&value).next() {
                    None => return Ok(args),
                    Some(e) => {
                        last = format!(
                            "generated arguments are invalid: {e} at {}",
                            e.instance_path()
                        )
                    }
                }
            }
            Ok(_) => last = "arguments are not an object".into(),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One operation's fate.
enum Outcome {
    /// Record id into the oracle's input.
    Sent(usize),
    /// Not checked by the oracle, and why.
    Unsupported(String),
    /// The gateway did not send a request for valid arguments.
    NoRequest(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_accepts_every_request_the_gateway_sends() {
    let python = Path::new(ORACLE).join(".venv/bin/python");
    if !python.exists() {
        if std::env::var("TOOLGATE_SKIP_ORACLE").as_deref() == Ok("1") {
            eprintln!("SKIPPED: oracle conformance (TOOLGATE_SKIP_ORACLE=1)");
            return;
        }
        panic!(
            "the oracle's virtualenv {} is missing: run ./test.sh (it creates it), or set \
             TOOLGATE_SKIP_ORACLE=1 to skip this test on purpose",
            python.display()
        );
    }
    let work = tempfile::tempdir().unwrap();
    let upstream = Upstream::start(|_| Answer::Json(200, json!({}))).await;
    let docs = documents();
    assert!(docs.len() >= 60, "expected the vendored corpus at {SPECS}");

    // Per document: its oracle spec (the 3.0 form for Swagger 2.0), version, conversion.
    let mut yaml = String::from(
        "listen: 127.0.0.1:0\ngateway:\n  naming: { separator: \"___\", prefix: always, max_length: 128 }\ntargets:\n",
    );
    let mut prepared = Vec::new();
    for (i, path) in docs.iter().enumerate() {
        let document = read(path);
        let (oracle_spec, version) = if document.get("swagger").is_some() {
            let upgraded = toolgate::openapi::upgrade_swagger2(&document).unwrap();
            let file = work.path().join(format!("swagger2-{i}.json"));
            std::fs::write(&file, serde_json::to_vec(&upgraded).unwrap()).unwrap();
            (file, "3.0")
        } else {
            let v = document["openapi"].as_str().unwrap_or("3.0");
            (
                path.clone(),
                if v.starts_with("3.0") { "3.0" } else { "3.1" },
            )
        };
        let converted = convert(path);
        yaml.push_str(&format!(
            "  - name: t{i}\n    openapi:\n      spec: {:?}\n      base_url: {:?}\n      include_deprecated: true\n",
            path.display().to_string(),
            upstream.url()
        ));
        prepared.push((path, oracle_spec, version, converted));
    }
    let gateway = Gateway::start(&yaml, &[]).await;
    let loaded = toolgate::gateway::load(&gateway.dir.path().join("gateway.yaml")).unwrap();
    let client = crate::support::client(&gateway.url(), Lifecycle::Auto).await;

    let mut records = Vec::new();
    let mut outcomes: Vec<(String, String, Outcome)> = Vec::new();
    for (i, (path, oracle_spec, version, converted)) in prepared.iter().enumerate() {
        let rel = path.strip_prefix(SPECS).unwrap().display().to_string();
        let names: Vec<String> = loaded
            .catalog
            .tools()
            .iter()
            .filter(|t| *t.target == *format!("t{i}"))
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(
            names.len(),
            converted.tools.len(),
            "{rel}: every tool in the catalog"
        );
        for (name, tool) in names.iter().zip(&converted.tools) {
            let args = match arguments(&tool.input_schema) {
                Ok(a) => a,
                Err(reason) => {
                    outcomes.push((
                        rel.clone(),
                        tool.source.clone(),
                        Outcome::Unsupported(format!("no arguments generated: {reason}")),
                    ));
                    continue;
                }
            };
            let before = upstream.count();
            let result = client
                .call_tool(CallToolRequestParams::new(name.clone()).with_arguments(args.clone()))
                .await;
            let requests = upstream.requests();
            if requests.len() == before {
                outcomes.push((
                    rel.clone(),
                    tool.source.clone(),
                    Outcome::NoRequest(format!(
                        "arguments {} gave {result:?}",
                        Value::Object(args)
                    )),
                ));
                continue;
            }
            let sent = &requests[before];
            let headers: Vec<(String, String)> = sent
                .headers
                .iter()
                // The upstream's own address: the oracle checks against the document's server.
                .filter(|(k, _)| *k != http::header::HOST)
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            records.push(json!({
                "id": records.len().to_string(),
                "spec": oracle_spec,
                "version": version,
                "server": &*tool.operation.base_url,
                "method": sent.method,
                "path": sent.path(),
                "query": sent.query(),
                "headers": headers,
                "body_b64": base64::engine::general_purpose::STANDARD.encode(&sent.body),
                "args": Value::Object(args),
            }));
            outcomes.push((
                rel.clone(),
                tool.source.clone(),
                Outcome::Sent(records.len() - 1),
            ));
        }
    }
    drop(client);

    // The oracle, in one process for all records.
    let input = work.path().join("requests.jsonl");
    let mut file = std::fs::File::create(&input).unwrap();
    for r in &records {
        writeln!(file, "{r}").unwrap();
    }
    drop(file);
    let output = Command::new(&python)
        .arg(Path::new(ORACLE).join("validate.py"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "validate.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(verdicts.len(), records.len(), "one verdict per request");

    let (mut passed, mut failed, mut unsupported) = (0, Vec::new(), Vec::new());
    let mut per_doc: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (rel, source, outcome) in &outcomes {
        let entry = per_doc.entry(rel).or_default();
        match outcome {
            Outcome::Sent(id) => {
                let v = &verdicts[*id];
                if v["ok"] == true {
                    passed += 1;
                    entry.0 += 1;
                } else if let Some(reason) = v["unsupported"].as_str() {
                    unsupported.push(format!("{rel}: {source}: {reason}"));
                    entry.2 += 1;
                } else {
                    let error = v["error"].as_str().unwrap_or("");
                    let limit = ORACLE_LIMITS.iter().find(|(doc, op, err, _)| {
                        rel.ends_with(doc) && source.contains(op) && error.contains(err)
                    });
                    match limit {
                        Some((_, _, _, reason)) => {
                            unsupported.push(format!("{rel}: {source}: {reason}"));
                            entry.2 += 1;
                        }
                        None => {
                            failed.push(format!(
                                "{rel}: {source}: {error}\n    request: {}",
                                records[*id]
                            ));
                            entry.1 += 1;
                        }
                    }
                }
            }
            Outcome::Unsupported(reason) => {
                unsupported.push(format!("{rel}: {source}: {reason}"));
                entry.2 += 1;
            }
            Outcome::NoRequest(reason) => {
                failed.push(format!(
                    "{rel}: {source}: the gateway sent no request: {reason}"
                ));
                entry.1 += 1;
            }
        }
    }
    println!("| document | passed | failed | not checked |\n|---|---:|---:|---:|");
    for (doc, (p, f, u)) in &per_doc {
        println!("| {doc} | {p} | {f} | {u} |");
    }
    let checked = passed + failed.len();
    println!(
        "\noracle: {passed}/{checked} requests accepted ({:.1}%) across {} documents; {} operations not checked:",
        100.0 * passed as f64 / checked.max(1) as f64,
        per_doc.len(),
        unsupported.len()
    );
    for u in &unsupported {
        println!("  - {u}");
    }
    for f in &failed {
        println!("FAILED {f}");
    }
    // Floors: what the oracle accepted when this was last changed, so that a generator or
    // gateway regression that sends fewer requests cannot pass silently.
    assert!(passed >= 1_100, "oracle pass count fell to {passed}");
    let ungenerated = unsupported
        .iter()
        .filter(|u| u.contains("no arguments generated"))
        .count();
    assert!(
        ungenerated <= 25 && unsupported.len() <= 115,
        "{} operations not checked, {ungenerated} for want of arguments (see the list above)",
        unsupported.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {checked} requests rejected by the oracle (see FAILED lines above)",
        failed.len()
    );
}
