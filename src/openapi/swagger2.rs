//! Swagger 2.0 → OpenAPI 3.0: rewrites a 2.0 document into the 3.0 shape the converter
//! reads (servers, components, request bodies, response content), so 2.0 needs no
//! second conversion path. Pointers in later messages refer to the rewritten document
//! (`#/components/schemas/X` for 2.0's `#/definitions/X`).

use serde_json::{Map, Value, json};

/// Extension marking a document as the 3.0 form of a 2.0 one.
const UPGRADED: &str = "x-toolgate-upgraded-from";

/// Where a 2.0 location (`/definitions/X`, `/parameters/X`, `/responses/X`) of `document`
/// is in its 3.0 form, when `document` is one: references from other files (and from the
/// document to itself by file name) are not rewritten by the upgrade.
pub(crate) fn moved_pointer(document: &Value, pointer: &str) -> Option<String> {
    document.get(UPGRADED)?;
    [
        ("/definitions/", "/components/schemas/"),
        ("/parameters/", "/components/parameters/"),
        ("/responses/", "/components/responses/"),
    ]
    .iter()
    .find_map(|(old, new)| pointer.strip_prefix(old).map(|rest| format!("{new}{rest}")))
}

/// The 3.0 form of a 2.0 document; `Err` is (pointer, reason) for a document that cannot
/// be used at all.
pub(crate) fn upgrade(root: &Map<String, Value>) -> Result<Value, (String, String)> {
    let version = match root.get("swagger") {
        Some(Value::String(version)) => version.trim().to_string(),
        // `swagger: 2.0` unquoted, a YAML number: common in hand-written documents.
        Some(Value::Number(number)) => number.to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    if version != "2.0" {
        return Err((
            "/swagger".into(),
            format!("unsupported Swagger version '{version}' (expected 2.0)"),
        ));
    }
    let mut out = Map::new();
    out.insert("openapi".into(), "3.0.3".into());
    out.insert(UPGRADED.into(), "2.0".into());
    if let Some(info) = root.get("info") {
        out.insert("info".into(), info.clone());
    }
    if let Some(server) = server(root) {
        out.insert("servers".into(), json!([{ "url": server }]));
    }
    let consumes = media_list(root.get("consumes"));
    let produces = media_list(root.get("produces"));
    let shared_params = root.get("parameters").and_then(Value::as_object);

    let mut paths = Map::new();
    if let Some(source) = root.get("paths").and_then(Value::as_object) {
        for (path, item) in source {
            let Some(item) = item.as_object() else {
                paths.insert(path.clone(), item.clone());
                continue;
            };
            let mut new_item = Map::new();
            // Path-level parameters are merged into each operation here, because body
            // and form parameters must end up in the operation's request body.
            let path_params = item.get("parameters").and_then(Value::as_array);
            for (key, value) in item {
                match (key.as_str(), value.as_object()) {
                    ("parameters", _) => {}
                    (
                        "get" | "put" | "post" | "delete" | "options" | "head" | "patch",
                        Some(op),
                    ) => {
                        let op = operation(op, path_params, shared_params, &consumes, &produces);
                        new_item.insert(key.clone(), Value::Object(op));
                    }
                    _ => {
                        new_item.insert(key.clone(), value.clone());
                    }
                }
            }
            paths.insert(path.clone(), Value::Object(new_item));
        }
    }
    out.insert("paths".into(), Value::Object(paths));

    let mut components = Map::new();
    if let Some(definitions) = root.get("definitions") {
        components.insert("schemas".into(), definitions.clone());
    }
    if let Some(parameters) = root.get("parameters").and_then(Value::as_object) {
        // Body and form parameters were inlined into request bodies above.
        let converted: Map<String, Value> = parameters
            .iter()
            .filter(|(_, p)| {
                !matches!(
                    p.get("in").and_then(Value::as_str),
                    Some("body" | "formData")
                )
            })
            .map(|(name, p)| (name.clone(), parameter(p.clone())))
            .collect();
        components.insert("parameters".into(), Value::Object(converted));
    }
    if let Some(responses) = root.get("responses").and_then(Value::as_object) {
        let converted = responses
            .iter()
            .map(|(name, r)| (name.clone(), response(r, &produces)))
            .collect();
        components.insert("responses".into(), Value::Object(converted));
    }
    out.insert("components".into(), Value::Object(components));
    let mut document = Value::Object(out);
    rewrite_refs(&mut document);
    Ok(document)
}

/// `scheme://host/basePath` (https preferred), or just the base path when there is no
/// host (then a base URL must be configured).
fn server(root: &Map<String, Value>) -> Option<String> {
    let base_path = root.get("basePath").and_then(Value::as_str).unwrap_or("");
    let Some(host) = root.get("host").and_then(Value::as_str) else {
        return (!base_path.is_empty()).then(|| base_path.to_string());
    };
    let schemes: Vec<&str> = root
        .get("schemes")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let scheme = if schemes.is_empty() || schemes.contains(&"https") {
        "https"
    } else {
        schemes[0]
    };
    Some(format!("{scheme}://{host}{base_path}"))
}

fn media_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn operation(
    op: &Map<String, Value>,
    path_params: Option<&Vec<Value>>,
    shared: Option<&Map<String, Value>>,
    consumes: &[String],
    produces: &[String],
) -> Map<String, Value> {
    let consumes = op
        .get("consumes")
        .map(|c| media_list(Some(c)))
        .unwrap_or_else(|| consumes.to_vec());
    let produces = op
        .get("produces")
        .map(|p| media_list(Some(p)))
        .unwrap_or_else(|| produces.to_vec());

    // Resolve `#/parameters/X` now: whether a parameter is a body or form field decides
    // where it goes. Operation-level ones replace path-level ones (same name and `in`).
    let resolve = |p: &Value| -> Value {
        let shared_name = p
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/parameters/"));
        match shared_name.and_then(|n| shared.and_then(|s| s.get(n))) {
            Some(found) => found.clone(),
            None => p.clone(),
        }
    };
    let mut params: Vec<Value> = path_params.into_iter().flatten().map(resolve).collect();
    for p in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = resolve(p);
        // References to other files stay unresolved here: they are told apart by their
        // target (the 3.0 reading applies the override once they are resolved).
        let key = |v: &Value| match v.get("$ref") {
            Some(reference) => (Some(reference.clone()), None),
            None => (v.get("name").cloned(), v.get("in").cloned()),
        };
        match params
            .iter_mut()
            .find(|q| key(&p).0.is_some() && key(q) == key(&p))
        {
            Some(existing) => *existing = p,
            None => params.push(p),
        }
    }

    let mut out = Map::new();
    let mut parameters = Vec::new();
    let mut body = None;
    let mut form = Map::new();
    let mut form_required = Vec::new();
    let mut has_file = false;
    for p in params {
        match p.get("in").and_then(Value::as_str) {
            Some("body") => body = Some(p),
            Some("formData") => {
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    continue;
                };
                has_file |= p.get("type") == Some(&json!("file"));
                if p.get("required") == Some(&Value::Bool(true)) {
                    form_required.push(Value::String(name.to_string()));
                }
                form.insert(name.to_string(), simple_schema(&p));
            }
            _ => parameters.push(parameter(p)),
        }
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = body {
        let types = if consumes.is_empty() {
            vec!["application/json".to_string()]
        } else {
            consumes.clone()
        };
        let schema = body.get("schema").cloned().unwrap_or_else(|| json!({}));
        let content: Map<String, Value> = types
            .into_iter()
            .map(|t| (t, json!({ "schema": schema.clone() })))
            .collect();
        let mut request = json!({
            "content": content,
            "required": body.get("required") == Some(&Value::Bool(true)),
        });
        if let Some(d) = body.get("description") {
            request["description"] = d.clone();
        }
        out.insert("requestBody".into(), request);
    } else if !form.is_empty() {
        let multipart = has_file
            || consumes
                .iter()
                .any(|c| c.starts_with("multipart/form-data"));
        let media = if multipart {
            "multipart/form-data"
        } else {
            "application/x-www-form-urlencoded"
        };
        let mut schema = json!({ "type": "object", "properties": form });
        if !form_required.is_empty() {
            schema["required"] = Value::Array(form_required.clone());
        }
        out.insert(
            "requestBody".into(),
            json!({ "content": { media: { "schema": schema } }, "required": !form_required.is_empty() }),
        );
    }
    for (key, value) in op {
        match key.as_str() {
            "parameters" | "consumes" | "produces" | "schemes" | "security" => {}
            "responses" => {
                let responses = value
                    .as_object()
                    .map(|r| {
                        r.iter()
                            .map(|(code, resp)| (code.clone(), response(resp, &produces)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

/// A non-body 2.0 parameter as a 3.0 one: type keywords move into `schema`,
/// `collectionFormat` becomes `style`/`explode`.
fn parameter(p: Value) -> Value {
    if p.get("$ref").is_some() {
        return p;
    }
    let location = p
        .get("in")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut out = Map::new();
    for key in ["name", "in", "description", "required", "allowEmptyValue"] {
        if let Some(v) = p.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    for (key, value) in p.as_object().into_iter().flatten() {
        if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    out.insert("schema".into(), simple_schema(&p));
    let (style, explode) = collection_format(&p, &location);
    if let Some(style) = style {
        out.insert("style".into(), style.into());
    }
    if let Some(explode) = explode {
        out.insert("explode".into(), explode.into());
    }
    Value::Object(out)
}

/// The 3.0 `style` and `explode` of a non-body 2.0 parameter in `location`, from its
/// `collectionFormat` (`None`: the 3.0 default).
pub(crate) fn collection_format(p: &Value, location: &str) -> (Option<&'static str>, Option<bool>) {
    let form_like = matches!(location, "query" | "cookie");
    match p.get("collectionFormat").and_then(Value::as_str) {
        Some("multi") => (None, Some(true)),
        Some("ssv") => (Some("spaceDelimited"), Some(false)),
        Some("pipes") => (Some("pipeDelimited"), Some(false)),
        // csv (the default) and tsv, which 3.0 cannot express.
        _ if p.get("type") == Some(&json!("array")) && form_like => (None, Some(false)),
        _ => (None, None),
    }
}

/// The schema of a non-body parameter (or array `items`), from its type keywords.
fn simple_schema(p: &Value) -> Value {
    const KEYWORDS: [&str; 16] = [
        "type",
        "format",
        "items",
        "default",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "enum",
        "multipleOf",
    ];
    let mut schema = Map::new();
    for key in KEYWORDS {
        if let Some(v) = p.get(key) {
            let v = if key == "items" {
                simple_schema(v)
            } else {
                v.clone()
            };
            schema.insert(key.into(), v);
        }
    }
    if schema.get("type") == Some(&json!("file")) {
        schema.insert("type".into(), "string".into());
        schema.insert("format".into(), "binary".into());
    }
    if let Some(d) = p.get("description") {
        schema.entry("description").or_insert_with(|| d.clone());
    }
    Value::Object(schema)
}

/// A 2.0 response (schema beside the description) as a 3.0 one (schema per media type).
fn response(r: &Value, produces: &[String]) -> Value {
    let Some(map) = r.as_object() else {
        return r.clone();
    };
    if map.contains_key("$ref") {
        return r.clone();
    }
    let mut out = Map::new();
    out.insert(
        "description".into(),
        map.get("description").cloned().unwrap_or_else(|| "".into()),
    );
    if let Some(schema) = map.get("schema") {
        // `type: file`: the answer is the file's bytes, in the non-JSON types the
        // operation produces (a global `produces: [application/json]` is common).
        let file = schema.get("type") == Some(&json!("file"));
        let types = if file {
            let binary: Vec<String> = produces
                .iter()
                .filter(|t| {
                    let essence = t.split(';').next().unwrap_or_default().trim();
                    !(essence.ends_with("json") || essence.contains('*'))
                })
                .cloned()
                .collect();
            if binary.is_empty() {
                vec!["application/octet-stream".to_string()]
            } else {
                binary
            }
        } else if produces.is_empty() {
            vec!["application/json".to_string()]
        } else {
            produces.to_vec()
        };
        let schema = if file {
            json!({ "type": "string", "format": "binary" })
        } else {
            schema.clone()
        };
        let content: Map<String, Value> = types
            .into_iter()
            .map(|t| (t, json!({ "schema": schema.clone() })))
            .collect();
        out.insert("content".into(), Value::Object(content));
    }
    Value::Object(out)
}

/// Points 2.0 references at their 3.0 homes, without recursion.
fn rewrite_refs(document: &mut Value) {
    let mut stack = vec![document];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if key == "$ref" {
                        if let Value::String(r) = child {
                            for (old, new) in [
                                ("#/definitions/", "#/components/schemas/"),
                                ("#/parameters/", "#/components/parameters/"),
                                ("#/responses/", "#/components/responses/"),
                            ] {
                                if let Some(rest) = r.strip_prefix(old) {
                                    *r = format!("{new}{rest}");
                                    break;
                                }
                            }
                        }
                    } else {
                        stack.push(child);
                    }
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}
