//! One OpenAPI operation → one [`ToolSpec`]: a flat argument object (parameters plus the
//! body's properties), an output schema from the first 2xx JSON answer, and the
//! [`HttpOperation`] that turns arguments back into the request.

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderValue, Method};
use serde_json::{Map, Value, json};

use super::budget::truncate;
use super::refs::{DocSet, Located, escape_token};
use super::schema::{Assembler, Mode, OutputSchema, SchemaCtx, is_object_schema};
use crate::catalog::{ToolAnnotations, ToolSpec, sanitize};
use crate::targets::http::{
    BodyBinding, BodyEncoding, BodySource, HttpOperation, ParamBinding, ParamLocation, ParamStyle,
    PathSegment,
};

/// Longest tool title, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// Header parameters the OpenAPI specification says to ignore: the gateway sets them.
const IGNORED_HEADERS: [&str; 3] = ["accept", "content-type", "authorization"];

/// One operation to convert, located in its document.
pub(crate) struct OperationSource<'a> {
    /// HTTP method.
    pub method: Method,
    /// The path template, as written in `paths`.
    pub path: &'a str,
    /// The path item (after following its `$ref`).
    pub item: Located<'a>,
    /// The operation object.
    pub operation: Located<'a>,
    /// Where requests go.
    pub base_url: Arc<str>,
}

impl OperationSource<'_> {
    /// `GET /pets/{petId} (showPetById)`.
    pub(crate) fn label(&self) -> String {
        match self.operation_id() {
            Some(id) => format!("{} {} ({id})", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }

    /// The operationId, when the operation has a non-empty one.
    pub(crate) fn operation_id(&self) -> Option<&str> {
        self.operation
            .value
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|id| !id.is_empty())
    }
}

/// A parameter after `$ref` resolution and defaulting.
struct Param {
    name: String,
    location: ParamLocation,
    required: bool,
    description: Option<String>,
    deprecated: bool,
    example: Option<Value>,
    schema: Option<usize>,
    json_content: bool,
    style: ParamStyle,
    explode: bool,
    allow_reserved: bool,
}

/// The request body media type chosen for an operation.
struct BodyChoice {
    content_type: HeaderValue,
    encoding: BodyEncoding,
    schema: Option<usize>,
    required: bool,
    description: Option<String>,
}

/// Converts one operation; `Err` is the reason it is skipped. Warnings are pushed to
/// `warnings` (already prefixed with the operation).
pub(crate) fn convert_operation(
    ctx: &mut SchemaCtx<'_>,
    docs: &DocSet<'_>,
    source: &OperationSource<'_>,
    content_type: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<ToolSpec, String> {
    let op = source.operation.value;
    if !op.is_object() {
        return Err("the operation is not an object".into());
    }
    let label = source.label();
    let template = parse_template(source.path)?;

    // Parameters: path-level first, then operation-level; an operation-level parameter
    // replaces a path-level one with the same name and location.
    let mut params: Vec<Param> = Vec::new();
    for owner in [&source.item, &source.operation] {
        let Some(list) = owner.child("parameters") else {
            continue;
        };
        let Some(entries) = list.value.as_array() else {
            return Err(format!(
                "`parameters` at {} is not an array",
                docs.display(list.doc, &list.pointer)
            ));
        };
        for i in 0..entries.len() {
            let Some(entry) = list.index(i) else { continue };
            let Some(param) = parse_param(ctx, docs, entry, &label, warnings)? else {
                continue;
            };
            match params
                .iter_mut()
                .find(|p| p.name == param.name && p.location == param.location)
            {
                Some(existing) => *existing = param,
                None => params.push(param),
            }
        }
    }

    // Path parameters must match the template's variables.
    let variables: Vec<&str> = template
        .iter()
        .filter_map(|piece| match piece {
            Piece::Var(name) => Some(name.as_str()),
            Piece::Literal(_) => None,
        })
        .collect();
    params.retain(|p| {
        let keep = p.location != ParamLocation::Path || variables.contains(&p.name.as_str());
        if !keep {
            warnings.push(format!(
                "{label}: path parameter '{}' does not appear in the path; ignored",
                p.name
            ));
        }
        keep
    });
    let mut path = Vec::with_capacity(template.len());
    for piece in &template {
        path.push(match piece {
            Piece::Literal(text) => PathSegment::Literal(encode_literal(text).into()),
            Piece::Var(name) => {
                let index = params
                    .iter()
                    .position(|p| p.location == ParamLocation::Path && &p.name == name)
                    .ok_or_else(|| {
                        format!("path parameter '{name}' is used in the path but not declared")
                    })?;
                PathSegment::Param(index)
            }
        });
    }

    let args = argument_names(&params);
    let body = choose_body(ctx, docs, &source.operation, content_type)?;

    // Input schema: one flat object.
    let mut assembler = Assembler::new(Mode::Input);
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut dependent_required = None;
    for (param, arg) in params.iter().zip(&args) {
        let schema = match param.schema {
            Some(id) => assembler.schema(ctx, id)?,
            None => json!({ "type": "string" }),
        };
        let schema = annotate_param(schema, param);
        properties.insert(arg.clone(), schema);
        if param.required {
            required.push(Value::String(arg.clone()));
        }
    }
    let body_binding = match body {
        None => None,
        Some(body) => {
            let (source, binary_parts) = body_arguments(
                ctx,
                &mut assembler,
                &body,
                &mut properties,
                &mut required,
                &mut dependent_required,
            )?;
            Some(BodyBinding {
                content_type: body.content_type,
                encoding: body.encoding,
                source,
                required: body.required,
                binary_parts,
            })
        }
    };
    let mut input = Map::new();
    input.insert("type".into(), "object".into());
    input.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        input.insert("required".into(), Value::Array(required));
    }
    if let Some(dependent) = dependent_required {
        input.insert("dependentRequired".into(), Value::Object(dependent));
    }
    // Every argument is declared above, so anything else is a mistake worth rejecting.
    input.insert("additionalProperties".into(), false.into());
    assembler.finish(ctx, &mut input)?;

    // Output schema and Accept header from the 2xx answers.
    let answer = choose_response(ctx, docs, &source.operation)?;
    let (output_schema, output_wrap) = match answer.schema {
        None => (None, None),
        Some(id) => {
            let (schema, wrap) = output_schema(ctx, id)?;
            (Some(schema), wrap)
        }
    };

    let params = params
        .iter()
        .zip(args)
        .map(|(p, arg)| ParamBinding {
            arg: arg.into(),
            name: p.name.as_str().into(),
            location: p.location,
            style: p.style,
            explode: p.explode,
            allow_reserved: p.allow_reserved,
            json_content: p.json_content,
        })
        .collect();
    let operation = HttpOperation {
        method: source.method.clone(),
        base_url: source.base_url.clone(),
        path: path.into(),
        params,
        body: body_binding,
        accept: answer.accept,
    };

    let summary = text_field(op, "summary");
    let title = summary.as_deref().map(|s| {
        let line = s.lines().next().unwrap_or_default().trim();
        truncate(line, MAX_TITLE_CHARS)
    });
    Ok(ToolSpec {
        name: tool_name(source),
        source: label,
        title,
        description: describe(source, summary.as_deref()),
        input_schema: Value::Object(input),
        output_schema,
        output_wrap,
        annotations: ToolAnnotations::for_method(&source.method),
        method: Some(source.method.clone()),
        operation,
        rename: None,
        extra: serde_json::Map::new(),
    })
}

/// The output schema of the answer schema at location `id`, and the wrap key when the
/// answer is not an object. Computed once per location.
fn output_schema(ctx: &mut SchemaCtx<'_>, id: usize) -> Result<OutputSchema, String> {
    let id = ctx.canonical(id);
    if let Some(done) = ctx.outputs.get(&id) {
        return done.clone();
    }
    let result = build_output_schema(ctx, id);
    ctx.outputs.insert(id, result.clone());
    result
}

fn build_output_schema(ctx: &mut SchemaCtx<'_>, id: usize) -> Result<OutputSchema, String> {
    let mut assembler = Assembler::new(Mode::Output);
    let schema = assembler.schema(ctx, id)?;
    if is_object_schema(&schema) {
        let Value::Object(mut root) = schema else {
            return Err("internal: object schema is not a JSON object".into());
        };
        root.entry("type").or_insert_with(|| "object".into());
        assembler.finish(ctx, &mut root)?;
        Ok((Value::Object(root), None))
    } else {
        let mut root = Map::new();
        root.insert("type".into(), "object".into());
        root.insert("properties".into(), json!({ "result": schema }));
        root.insert("required".into(), json!(["result"]));
        assembler.finish(ctx, &mut root)?;
        Ok((Value::Object(root), Some("result".into())))
    }
}

/// The local tool name: the operationId, or `<method>_<path>` when there is none (or it
/// has no usable character).
pub(crate) fn tool_name(source: &OperationSource<'_>) -> String {
    if let Some(id) = source.operation_id()
        && !sanitize(id).is_empty()
    {
        return id.to_string();
    }
    let method = source.method.as_str().to_ascii_lowercase();
    let name = sanitize(&format!("{method}_{}", source.path));
    if name.is_empty() { method } else { name }
}

/// Summary and description, never empty (the description budget bounds it later).
fn describe(source: &OperationSource<'_>, summary: Option<&str>) -> String {
    let op = source.operation.value;
    let description = text_field(op, "description");
    let mut text = match (summary, description.as_deref()) {
        (Some(s), Some(d)) if d.starts_with(s) => d.to_string(),
        (Some(s), Some(d)) => format!("{s}\n\n{d}"),
        (Some(s), None) => s.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => format!("{} {}", source.method, source.path),
    };
    if op.get("deprecated") == Some(&Value::Bool(true)) {
        text = format!("Deprecated: {text}");
    }
    text
}

/// A trimmed, non-empty string member.
fn text_field(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_param(
    ctx: &mut SchemaCtx<'_>,
    docs: &DocSet<'_>,
    entry: Located<'_>,
    label: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Param>, String> {
    let param = docs.deref(entry)?;
    let at = docs.display(param.doc, &param.pointer);
    let object = param
        .value
        .as_object()
        .ok_or_else(|| format!("parameter at {at} is not an object"))?;
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("parameter at {at} has no name"))?;
    let location = match object.get("in").and_then(Value::as_str) {
        Some("path") => ParamLocation::Path,
        Some("query") => ParamLocation::Query,
        Some("header") => ParamLocation::Header,
        Some("cookie") => ParamLocation::Cookie,
        Some(other) => {
            return Err(format!(
                "parameter '{name}' at {at}: unsupported location `in: {other}`"
            ));
        }
        None => return Err(format!("parameter '{name}' at {at} has no `in`")),
    };
    if location == ParamLocation::Header
        && IGNORED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
    {
        return Ok(None);
    }

    // A Swagger 2.0 parameter (type keywords beside `name` and `in`, no `schema`): met
    // through references from a 2.0 document to another file, which the 2.0 upgrade does
    // not rewrite (Azure's common-types), and in 3.0 documents written by hand. Its own
    // object serves as its schema: the translation keeps only schema keywords.
    let swagger2 = !object.contains_key("schema")
        && !object.contains_key("content")
        && object.get("type").is_some_and(Value::is_string);
    let (schema, json_content) = if swagger2 {
        (Some(ctx.location(param.doc, &param.pointer)), false)
    } else if object.contains_key("schema") {
        (
            Some(ctx.location(param.doc, &format!("{}/schema", param.pointer))),
            false,
        )
    } else if let Some((media_type, media)) = object
        .get("content")
        .and_then(Value::as_object)
        .and_then(|c| c.iter().next())
    {
        let schema = media.get("schema").map(|_| {
            let pointer = format!(
                "{}/content/{}/schema",
                param.pointer,
                escape_token(media_type)
            );
            ctx.location(param.doc, &pointer)
        });
        (schema, media_kind(media_type) == MediaKind::Json)
    } else {
        (None, false)
    };

    let default_style = match location {
        ParamLocation::Path | ParamLocation::Header => ParamStyle::Simple,
        ParamLocation::Query | ParamLocation::Cookie => ParamStyle::Form,
    };
    let (v2_style, v2_explode) = if swagger2 {
        let written = object.get("in").and_then(Value::as_str).unwrap_or_default();
        super::swagger2::collection_format(param.value, written)
    } else {
        (None, None)
    };
    let style = match object.get("style").and_then(Value::as_str).or(v2_style) {
        None => default_style,
        Some(written) => match parse_style(written) {
            Some(style) if style_allowed(style, location) => style,
            _ => {
                warnings.push(format!(
                    "{label}: parameter '{name}': style '{written}' is not valid in \
                     {location:?}; using the default"
                ));
                default_style
            }
        },
    };
    let explode = object
        .get("explode")
        .and_then(Value::as_bool)
        .or(v2_explode)
        .unwrap_or(style == ParamStyle::Form);
    Ok(Some(Param {
        name: name.to_string(),
        location,
        required: location == ParamLocation::Path
            || object.get("required") == Some(&Value::Bool(true)),
        description: text_field(param.value, "description"),
        deprecated: object.get("deprecated") == Some(&Value::Bool(true)),
        example: object.get("example").cloned(),
        schema,
        json_content,
        style,
        explode,
        allow_reserved: location == ParamLocation::Query
            && object.get("allowReserved") == Some(&Value::Bool(true)),
    }))
}

fn parse_style(style: &str) -> Option<ParamStyle> {
    Some(match style {
        "simple" => ParamStyle::Simple,
        "label" => ParamStyle::Label,
        "matrix" => ParamStyle::Matrix,
        "form" => ParamStyle::Form,
        "spaceDelimited" => ParamStyle::SpaceDelimited,
        "pipeDelimited" => ParamStyle::PipeDelimited,
        "deepObject" => ParamStyle::DeepObject,
        _ => return None,
    })
}

fn style_allowed(style: ParamStyle, location: ParamLocation) -> bool {
    use ParamStyle::*;
    match location {
        ParamLocation::Path => matches!(style, Simple | Label | Matrix),
        ParamLocation::Query => matches!(style, Form | SpaceDelimited | PipeDelimited | DeepObject),
        ParamLocation::Header => style == Simple,
        ParamLocation::Cookie => style == Form,
    }
}

/// A parameter's schema with the parameter's own annotations, which are more specific
/// than the schema's.
fn annotate_param(schema: Value, param: &Param) -> Value {
    let mut map = match schema {
        Value::Object(map) => map,
        Value::Bool(true) => Map::new(),
        other => return other,
    };
    if let Some(description) = &param.description {
        map.insert("description".into(), description.clone().into());
    }
    if param.deprecated {
        map.insert("deprecated".into(), true.into());
    }
    if let Some(example) = &param.example {
        map.entry("examples")
            .or_insert_with(|| Value::Array(vec![example.clone()]));
    }
    Value::Object(map)
}

/// Argument names for the parameters, in the same order: the parameter name, except
/// when it is taken by a parameter of a higher-priority location (path, query, header,
/// cookie), then `<location>_<name>` (made unique with a counter if needed).
fn argument_names(params: &[Param]) -> Vec<String> {
    let priority = |l: ParamLocation| match l {
        ParamLocation::Path => 0,
        ParamLocation::Query => 1,
        ParamLocation::Header => 2,
        ParamLocation::Cookie => 3,
    };
    let mut order: Vec<usize> = (0..params.len()).collect();
    order.sort_by_key(|&i| priority(params[i].location));
    let mut taken = HashSet::new();
    let mut names = vec![String::new(); params.len()];
    for i in order {
        let p = &params[i];
        let mut name = p.name.clone();
        if taken.contains(&name) {
            let prefix = format!("{:?}", p.location).to_ascii_lowercase();
            name = unique(&format!("{prefix}_{}", p.name), &taken);
        }
        taken.insert(name.clone());
        names[i] = name;
    }
    names
}

/// `base`, or `base_2`, `base_3`... whichever is not in `taken`.
fn unique(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| base.to_string())
}

/// How a media type is sent or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum MediaKind {
    Json,
    Form,
    Multipart,
    Text,
    Any,
    Binary,
}

/// The class of a media type, and its preference rank within the class (lower first).
fn classify(media_type: &str) -> (MediaKind, u8) {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => (MediaKind::Json, 0),
        e if e.ends_with("+json") || e.ends_with("/json") => (MediaKind::Json, 1),
        "application/x-www-form-urlencoded" => (MediaKind::Form, 0),
        "multipart/form-data" => (MediaKind::Multipart, 0),
        e if e.starts_with("multipart/") => (MediaKind::Multipart, 1),
        e if e.starts_with("text/") => (MediaKind::Text, 0),
        "*/*" => (MediaKind::Any, 0),
        _ => (MediaKind::Binary, 0),
    }
}

fn media_kind(media_type: &str) -> MediaKind {
    classify(media_type).0
}

/// The header value for a media type as written, with wildcards replaced by a concrete
/// type of their family.
fn concrete_media_type(media_type: &str, kind: MediaKind) -> HeaderValue {
    let fallback = match kind {
        MediaKind::Json | MediaKind::Any => "application/json",
        MediaKind::Form => "application/x-www-form-urlencoded",
        MediaKind::Multipart => "multipart/form-data",
        MediaKind::Text => "text/plain",
        MediaKind::Binary => "application/octet-stream",
    };
    if media_type.contains('*') {
        return HeaderValue::from_static(fallback);
    }
    HeaderValue::from_str(media_type.trim()).unwrap_or_else(|_| HeaderValue::from_static(fallback))
}

/// The media types an operation's request body offers, as written (none when it has no
/// body, or one that cannot be read).
pub(crate) fn body_media_types<'d>(docs: &'d DocSet<'_>, operation: &Located<'d>) -> Vec<&'d str> {
    operation
        .child("requestBody")
        .and_then(|body| docs.deref(body).ok())
        .and_then(|body| body.value.get("content"))
        .and_then(Value::as_object)
        .map(|content| content.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Whether two media types name the same type, parameters aside (`Multipart/Form-Data;
/// boundary=x` is `multipart/form-data`).
pub(crate) fn same_media_type(a: &str, b: &str) -> bool {
    fn essence(t: &str) -> &str {
        t.split(';').next().unwrap_or_default().trim()
    }
    essence(a).eq_ignore_ascii_case(essence(b))
}

/// Picks the request body media type: the configured one when given, else JSON first,
/// then form, multipart, text, `*/*` (sent as JSON), anything else (binary); document
/// order within a class.
fn choose_body(
    ctx: &mut SchemaCtx<'_>,
    docs: &DocSet<'_>,
    operation: &Located<'_>,
    configured: Option<&str>,
) -> Result<Option<BodyChoice>, String> {
    let Some(body) = operation.child("requestBody") else {
        return Ok(None);
    };
    let body = docs.deref(body)?;
    let Some(content) = body.child("content") else {
        return Ok(None);
    };
    let Some(media_types) = content.value.as_object() else {
        return Ok(None);
    };
    let chosen = match configured {
        Some(wanted) => media_types.keys().find(|mt| same_media_type(mt, wanted)),
        None => media_types.keys().min_by_key(|mt| classify(mt)),
    };
    let Some((media_type, kind)) = chosen.map(|mt| (mt, media_kind(mt))) else {
        return Ok(None);
    };
    let media = content.child(media_type);
    let schema = media
        .and_then(|m| m.child("schema"))
        .map(|s| ctx.location(s.doc, &s.pointer));
    let encoding = match kind {
        MediaKind::Json | MediaKind::Any => BodyEncoding::Json,
        MediaKind::Form => BodyEncoding::Form,
        MediaKind::Multipart => BodyEncoding::Multipart,
        MediaKind::Text => BodyEncoding::Text,
        MediaKind::Binary => BodyEncoding::Binary,
    };
    Ok(Some(BodyChoice {
        content_type: concrete_media_type(media_type, kind),
        encoding,
        schema,
        required: body.value.get("required") == Some(&Value::Bool(true)),
        description: text_field(body.value, "description"),
    }))
}

/// Adds the body's arguments to the input schema: its top-level properties when it is a
/// plain object whose property names are all free, else one whole-body argument.
fn body_arguments(
    ctx: &mut SchemaCtx<'_>,
    assembler: &mut Assembler,
    body: &BodyChoice,
    properties: &mut Map<String, Value>,
    required: &mut Vec<Value>,
    dependent_required: &mut Option<Map<String, Value>>,
) -> Result<(BodySource, BinaryParts), String> {
    let schema = match body.encoding {
        BodyEncoding::Binary => json!({
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": body.content_type.to_str().unwrap_or("application/octet-stream"),
            "description": "The request body, base64-encoded.",
        }),
        encoding => {
            let schema = match body.schema {
                Some(id) => assembler.schema(ctx, id)?,
                None if encoding == BodyEncoding::Json => json!({}),
                None if encoding == BodyEncoding::Text => json!({ "type": "string" }),
                None => json!({ "type": "object" }),
            };
            match encoding {
                BodyEncoding::Multipart => binary_parts_as_base64(schema),
                BodyEncoding::Text if schema.get("type") != Some(&json!("string")) => {
                    json!({ "type": "string" })
                }
                _ => schema,
            }
        }
    };
    let binary_parts = match body.encoding {
        BodyEncoding::Multipart => base64_fields(&schema),
        _ => Box::default(),
    };
    let flattenable = matches!(
        body.encoding,
        BodyEncoding::Json | BodyEncoding::Form | BodyEncoding::Multipart
    );
    if flattenable
        && let Some(body_properties) = flat_properties(&schema)
        && body_properties.keys().all(|k| !properties.contains_key(k))
    {
        let body_required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut names = Vec::with_capacity(body_properties.len());
        for (name, property) in body_properties {
            if body.required && body_required.contains(&name.as_str()) {
                required.push(Value::String(name.clone()));
            }
            properties.insert(name.clone(), property.clone());
            names.push(name.as_str().into());
        }
        // An optional body is sent as soon as one of its properties is given: then the
        // body's own `required` properties must be given too (found by the oracle:
        // Twilio's optional form bodies with required fields).
        if !body.required && !body_required.is_empty() {
            let mut dependent = Map::new();
            for name in body_properties.keys() {
                let others: Vec<Value> = body_required
                    .iter()
                    .filter(|r| **r != name.as_str())
                    .map(|r| Value::String(r.to_string()))
                    .collect();
                if !others.is_empty() {
                    dependent.insert(name.clone(), Value::Array(others));
                }
            }
            *dependent_required = Some(dependent);
        }
        return Ok((BodySource::Properties(names.into()), binary_parts));
    }
    let taken: HashSet<String> = properties.keys().cloned().collect();
    let name = if taken.contains("body") {
        unique("request_body", &taken)
    } else {
        "body".to_string()
    };
    let schema = match (schema, &body.description) {
        (Value::Object(mut map), Some(description)) => {
            map.entry("description")
                .or_insert_with(|| description.clone().into());
            Value::Object(map)
        }
        (Value::Bool(true), Some(description)) => json!({ "description": description }),
        (schema, _) => schema,
    };
    properties.insert(name.clone(), schema);
    if body.required {
        required.push(Value::String(name.clone()));
    }
    Ok((BodySource::Whole(name.into()), binary_parts))
}

/// The properties of a body schema that can become top-level arguments without losing
/// constraints: a plain object with declared properties and no other object-level rules.
fn flat_properties(schema: &Value) -> Option<&Map<String, Value>> {
    if !is_object_schema(schema) {
        return None;
    }
    let map = schema.as_object()?;
    const BLOCKING: [&str; 12] = [
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "$ref",
        "patternProperties",
        "propertyNames",
        "unevaluatedProperties",
        "dependentSchemas",
        "dependentRequired",
        "minProperties",
    ];
    if BLOCKING.iter().any(|k| map.contains_key(*k)) || map.contains_key("maxProperties") {
        return None;
    }
    if map
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false))
    {
        return None;
    }
    map.get("properties")?.as_object().filter(|p| !p.is_empty())
}

/// Names of multipart fields whose arguments are base64 file content.
type BinaryParts = Box<[Box<str>]>;

/// The top-level properties that [`binary_parts_as_base64`] turned into base64 strings
/// (directly, or as the items of an array of files).
fn base64_fields(schema: &Value) -> BinaryParts {
    let is_base64 = |v: &Value| v.get("contentEncoding") == Some(&json!("base64"));
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, v)| is_base64(v) || v.get("items").is_some_and(is_base64))
                .map(|(k, _)| k.as_str().into())
                .collect()
        })
        .unwrap_or_default()
}

/// Multipart file parts (`format: binary`) become base64 strings, the only way to pass
/// bytes through JSON arguments.
fn binary_parts_as_base64(mut schema: Value) -> Value {
    fn fix(part: &mut Value) {
        let Some(map) = part.as_object_mut() else {
            return;
        };
        if map.get("format") == Some(&json!("binary")) {
            map.remove("format");
            map.insert("contentEncoding".into(), "base64".into());
        }
        if let Some(items) = map.get_mut("items") {
            fix(items);
        }
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(fix);
    }
    schema
}

/// What the 2xx answers say: the `Accept` header and the JSON schema, if any.
struct AnswerChoice {
    accept: Option<HeaderValue>,
    schema: Option<usize>,
}

fn choose_response(
    ctx: &mut SchemaCtx<'_>,
    docs: &DocSet<'_>,
    operation: &Located<'_>,
) -> Result<AnswerChoice, String> {
    let mut answer = AnswerChoice {
        accept: None,
        schema: None,
    };
    let Some(responses) = operation.child("responses") else {
        return Ok(answer);
    };
    let Some(codes) = responses.value.as_object() else {
        return Ok(answer);
    };
    // 200..299 in numeric order, then the 2XX range.
    let mut candidates: Vec<(u16, &String)> = codes
        .keys()
        .filter_map(|code| {
            let rank = match code.parse::<u16>() {
                Ok(n) if (200..300).contains(&n) => n,
                _ if code.eq_ignore_ascii_case("2XX") => 300,
                _ => return None,
            };
            Some((rank, code))
        })
        .collect();
    candidates.sort();
    let mut fallback_accept = None;
    for (_, code) in candidates {
        let Some(response) = responses.child(code) else {
            continue;
        };
        let response = docs.deref(response)?;
        let Some(content) = response.child("content") else {
            continue;
        };
        let Some(media_types) = content.value.as_object() else {
            continue;
        };
        let json = media_types
            .keys()
            .map(|mt| (mt, classify(mt)))
            .filter(|(_, (kind, _))| matches!(kind, MediaKind::Json | MediaKind::Any))
            .min_by_key(|(_, rank)| *rank);
        if let Some((media_type, (kind, _))) = json {
            answer.accept = Some(concrete_media_type(media_type, kind));
            answer.schema = content
                .child(media_type)
                .and_then(|m| m.child("schema"))
                .map(|s| ctx.location(s.doc, &s.pointer));
            return Ok(answer);
        }
        if fallback_accept.is_none() {
            fallback_accept = media_types
                .keys()
                .next()
                .and_then(|mt| HeaderValue::from_str(mt.trim()).ok());
        }
    }
    answer.accept = fallback_accept;
    Ok(answer)
}

/// A piece of a path template.
enum Piece {
    Literal(String),
    Var(String),
}

/// Splits `/pets/{petId}.json` into literals and variables.
fn parse_template(path: &str) -> Result<Vec<Piece>, String> {
    if !path.starts_with('/') {
        return Err(format!("the path '{path}' does not start with '/'"));
    }
    let mut pieces = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let (literal, after) = rest.split_at(open);
        if literal.contains('}') {
            return Err(format!("the path '{path}' has an unmatched '}}'"));
        }
        let close = after
            .find('}')
            .ok_or_else(|| format!("the path '{path}' has an unclosed '{{'"))?;
        let name = &after[1..close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("the path '{path}' has an invalid variable"));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.to_string()));
        }
        pieces.push(Piece::Var(name.to_string()));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("the path '{path}' has an unmatched '}}'"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    Ok(pieces)
}

/// Characters that may not appear raw in a URL path; everything else in a literal path
/// segment is kept verbatim.
const PATH_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode_literal(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, PATH_ESCAPES).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_literals_and_variables() {
        let pieces = parse_template("/a/{x}.json/{y}").expect("valid");
        let rendered: Vec<String> = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(l) => format!("L{l}"),
                Piece::Var(v) => format!("V{v}"),
            })
            .collect();
        assert_eq!(rendered, ["L/a/", "Vx", "L.json/", "Vy"]);
        for bad in ["/a/{", "/a/}", "/a/{}", "a/b", "/{a{b}}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_types_rank_json_first() {
        assert_eq!(
            classify("application/json; charset=utf-8"),
            (MediaKind::Json, 0)
        );
        assert_eq!(classify("application/vnd.api+json"), (MediaKind::Json, 1));
        assert!(classify("application/x-www-form-urlencoded") < classify("text/plain"));
        assert_eq!(media_kind("image/png"), MediaKind::Binary);
        assert_eq!(concrete_media_type("text/*", MediaKind::Text), "text/plain");
    }
}
