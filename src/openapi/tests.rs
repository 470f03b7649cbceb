//! Tests of whole-document conversion: operations, parameters, bodies, answers, servers,
//! selection, skipping.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::catalog::compile_schema;
use crate::targets::http::{BodyEncoding, BodySource, ParamLocation, ParamStyle, PathSegment};

fn options() -> ConvertOptions {
    ConvertOptions::new(None)
}

/// A 3.0 document with one server and the given paths (and components).
fn doc(paths: Value) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1/"}],
        "paths": paths,
        "components": {
            "schemas": {
                "Pet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "id": {"type": "integer", "readOnly": true},
                        "name": {"type": "string"},
                    }
                }
            },
            "parameters": {
                "Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}}
            }
        }
    })
}

fn run(document: &Value) -> Converted {
    let converted = convert(document, Path::new("/nonexistent/spec.json"), &options())
        .unwrap_or_else(|e| panic!("{e}"));
    for tool in &converted.tools {
        compile_schema(&tool.input_schema).unwrap_or_else(|e| panic!("{}: {e}", tool.name));
        if let Some(output) = &tool.output_schema {
            compile_schema(output).unwrap_or_else(|e| panic!("{}: {e}", tool.name));
        }
    }
    converted
}

fn only(converted: &Converted) -> &ToolSpec {
    assert_eq!(converted.tools.len(), 1, "skipped: {:?}", converted.skipped);
    &converted.tools[0]
}

fn ok() -> Value {
    json!({"200": {"description": "ok"}})
}

#[test]
fn parameters_merge_and_colliding_names_get_distinct_arguments() {
    let document = doc(json!({
        "/pets/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "verbose", "in": "query", "schema": {"type": "boolean"}, "description": "path level"},
            ],
            "get": {
                "operationId": "getPet",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"name": "verbose", "in": "query", "schema": {"type": "string"}, "description": "op level"},
                    {"name": "id", "in": "query", "schema": {"type": "integer"}},
                    {"name": "id", "in": "header", "schema": {"type": "integer"}},
                    {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                    {"name": "authorization", "in": "header", "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                ],
                "responses": ok(),
            }
        }
    }));
    let converted = run(&document);
    let tool = only(&converted);
    let props = tool.input_schema["properties"]
        .as_object()
        .expect("properties");
    let names: Vec<&str> = props.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["id", "verbose", "limit", "query_id", "header_id", "session"]
    );
    assert_eq!(
        props["verbose"],
        json!({"type": "string", "description": "op level"})
    );
    assert_eq!(tool.input_schema["required"], json!(["id"]));
    assert_eq!(tool.input_schema["additionalProperties"], json!(false));

    let params = &tool.operation.params;
    let wire: Vec<(&str, &str, ParamLocation)> = params
        .iter()
        .map(|p| (&*p.arg, &*p.name, p.location))
        .collect();
    assert_eq!(
        wire,
        [
            ("id", "id", ParamLocation::Path),
            ("verbose", "verbose", ParamLocation::Query),
            ("limit", "limit", ParamLocation::Query),
            ("query_id", "id", ParamLocation::Query),
            ("header_id", "id", ParamLocation::Header),
            ("session", "session", ParamLocation::Cookie),
        ]
    );
    let styles: Vec<(ParamStyle, bool)> = params.iter().map(|p| (p.style, p.explode)).collect();
    assert_eq!(styles[0], (ParamStyle::Simple, false));
    assert_eq!(styles[1], (ParamStyle::Form, true));
    assert_eq!(styles[4], (ParamStyle::Simple, false));
    assert_eq!(styles[5], (ParamStyle::Form, true));
    assert_eq!(
        &*tool.operation.path,
        [PathSegment::Literal("/pets/".into()), PathSegment::Param(0)]
    );
    assert_eq!(&*tool.operation.base_url, "https://api.example.com/v1");
}

#[test]
fn explicit_styles_and_content_parameters_are_bound() {
    let document = doc(json!({
        "/items/{ids}": {
            "get": {
                "parameters": [
                    {"name": "ids", "in": "path", "required": true, "style": "matrix", "explode": true,
                     "schema": {"type": "array", "items": {"type": "integer"}}},
                    {"name": "filter", "in": "query", "style": "deepObject", "allowReserved": true,
                     "schema": {"type": "object"}},
                    {"name": "where", "in": "query",
                     "content": {"application/json": {"schema": {"type": "object"}}}},
                    {"name": "bad", "in": "header", "style": "form", "schema": {"type": "string"}},
                ],
                "responses": ok(),
            }
        }
    }));
    let converted = run(&document);
    let tool = only(&converted);
    assert_eq!(tool.name, "get_items_ids");
    let p = &tool.operation.params;
    assert_eq!((p[0].style, p[0].explode), (ParamStyle::Matrix, true));
    assert_eq!(
        (p[1].style, p[1].allow_reserved),
        (ParamStyle::DeepObject, true)
    );
    assert!(p[2].json_content && !p[1].json_content);
    assert_eq!(
        tool.input_schema["properties"]["where"],
        json!({"type": "object"})
    );
    // An invalid style falls back to the location's default, with a warning.
    assert_eq!(p[3].style, ParamStyle::Simple);
    assert!(
        converted
            .warnings
            .iter()
            .any(|w| w.contains("style 'form'"))
    );
}

#[test]
fn object_bodies_are_flattened_unless_names_collide() {
    let body = |schema: Value, required: bool| json!({"required": required, "content": {"application/json": {"schema": schema}}});
    let document = doc(json!({
        "/pets": {
            "post": {
                "operationId": "flat",
                "requestBody": body(json!({"$ref": "#/components/schemas/Pet"}), true),
                "responses": ok(),
            },
            "put": {
                "operationId": "optionalBody",
                "requestBody": body(json!({"$ref": "#/components/schemas/Pet"}), false),
                "responses": ok(),
            },
        },
        "/pets/{name}": {
            "post": {
                "operationId": "collides",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": body(json!({"$ref": "#/components/schemas/Pet"}), true),
                "responses": ok(),
            },
            "put": {
                "operationId": "bodyTaken",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "body", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": body(json!({"type": "array", "items": {"type": "string"}}), true),
                "responses": ok(),
            },
        },
    }));
    let converted = run(&document);
    assert!(converted.skipped.is_empty(), "{:?}", converted.skipped);
    // Document order: put before post.
    let [optional, flat, taken, collides] = &converted.tools[..] else {
        panic!("{} tools", converted.tools.len())
    };
    // readOnly `id` is not an argument; `name` is required because the body is.
    assert_eq!(flat.name, "flat");
    assert_eq!(
        flat.input_schema["properties"],
        json!({"name": {"type": "string"}})
    );
    assert_eq!(flat.input_schema["required"], json!(["name"]));
    let binding = flat.operation.body.as_ref().expect("body");
    assert_eq!(
        binding.source,
        BodySource::Properties(vec!["name".into()].into())
    );
    assert_eq!(binding.encoding, BodyEncoding::Json);
    assert!(binding.required);

    assert!(optional.input_schema.get("required").is_none());

    let binding = collides.operation.body.as_ref().expect("body");
    assert_eq!(binding.source, BodySource::Whole("body".into()));
    assert_eq!(collides.input_schema["required"], json!(["name", "body"]));
    assert_eq!(
        collides.input_schema["properties"]["body"]["properties"]["name"],
        json!({"type": "string"})
    );

    let binding = taken.operation.body.as_ref().expect("body");
    assert_eq!(binding.source, BodySource::Whole("request_body".into()));
    assert_eq!(
        taken.input_schema["properties"]["request_body"]["type"],
        json!("array")
    );
}

#[test]
fn body_encodings_are_chosen_deterministically() {
    let op = |content: Value| json!({"requestBody": {"content": content}, "responses": ok()});
    let document = doc(json!({
        "/json": {"post": op(json!({
            "text/plain": {"schema": {"type": "string"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "application/vnd.api+json": {"schema": {"type": "object", "properties": {"b": {"type": "string"}}}},
        }))},
        "/form": {"post": op(json!({
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }))},
        "/multipart": {"post": op(json!({
            "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
        }))},
        "/text": {"post": op(json!({"text/plain": {"schema": {"type": "integer"}}}))},
        "/binary": {"post": op(json!({"application/octet-stream": {}}))},
    }));
    let converted = run(&document);
    let by_path = |p: &str| {
        converted
            .tools
            .iter()
            .find(|t| t.source.ends_with(p))
            .unwrap_or_else(|| panic!("no tool for {p}"))
    };
    let body = |p: &str| by_path(p).operation.body.clone().expect("body");
    assert_eq!(body("/json").encoding, BodyEncoding::Json);
    assert_eq!(body("/json").content_type, "application/vnd.api+json");
    assert_eq!(body("/form").encoding, BodyEncoding::Form);
    assert_eq!(body("/multipart").encoding, BodyEncoding::Multipart);
    assert_eq!(
        by_path("/multipart").input_schema["properties"]["file"],
        json!({"type": "string", "contentEncoding": "base64"})
    );
    assert_eq!(body("/text").encoding, BodyEncoding::Text);
    assert_eq!(
        by_path("/text").input_schema["properties"]["body"]["type"],
        "string"
    );
    assert_eq!(body("/binary").encoding, BodyEncoding::Binary);
    assert_eq!(
        by_path("/binary").input_schema["properties"]["body"]["contentEncoding"],
        "base64"
    );
}

#[test]
fn output_schemas_come_from_the_first_json_2xx_answer() {
    let answer = |code: &str, media: &str, schema: Value| json!({code: {"description": "x", "content": {media: {"schema": schema}}}});
    let mut array = answer(
        "201",
        "application/json",
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}),
    );
    array["200"] = json!({"description": "no body"});
    array["404"] = json!({"description": "x", "content": {"application/json": {"schema": {"type": "object"}}}});
    let document = doc(json!({
        "/object": {"get": {"responses": answer("200", "application/json", json!({"$ref": "#/components/schemas/Pet"}))}},
        "/array": {"get": {"responses": array}},
        "/text": {"get": {"responses": answer("200", "text/csv", json!({"type": "string"}))}},
        "/none": {"delete": {"responses": {"204": {"description": "gone"}}}},
    }));
    let converted = run(&document);
    let [object, array, text, none] = &converted.tools[..] else {
        panic!("{:?}", converted.skipped)
    };
    let out = object.output_schema.as_ref().expect("output");
    assert_eq!(out["type"], "object");
    assert!(
        out["properties"]["id"].is_object(),
        "readOnly stays in output"
    );
    assert_eq!(object.output_wrap, None);
    assert_eq!(
        object.operation.accept.as_ref().expect("accept"),
        "application/json"
    );

    let out = array.output_schema.as_ref().expect("output");
    assert_eq!(array.output_wrap.as_deref(), Some("result"));
    assert_eq!(out["required"], json!(["result"]));
    assert_eq!(out["properties"]["result"]["type"], "array");

    assert_eq!(text.output_schema, None);
    assert_eq!(text.operation.accept.as_ref().expect("accept"), "text/csv");
    assert_eq!(none.output_schema, None);
    assert_eq!(none.operation.accept, None);
    assert_eq!(none.annotations.destructive_hint, Some(true));
    assert_eq!(object.annotations.read_only_hint, Some(true));
}

#[test]
fn names_titles_and_descriptions() {
    let long = "word ".repeat(400);
    let document = doc(json!({
        "/a/{b}/c": {
            "parameters": [{"name": "b", "in": "path", "required": true, "schema": {"type": "string"}}],
            "get": {"responses": ok()},
            "put": {"operationId": "日本", "summary": "Put it", "description": "Puts it.", "responses": ok()},
            "post": {"operationId": "postIt", "summary": "Post it", "description": long, "deprecated": true, "responses": ok()},
        }
    }));
    // Deprecated operations are skipped unless asked for.
    let converted = run(&document);
    assert_eq!(converted.tools.len(), 2);
    assert_eq!(converted.skipped.len(), 1);
    assert_eq!(converted.skipped[0].operation, "POST /a/{b}/c (postIt)");
    assert!(
        converted.skipped[0].reason.contains("include_deprecated"),
        "{}",
        converted.skipped[0].reason
    );
    let mut options = options();
    options.selection.include_deprecated = true;
    let converted = convert(&document, Path::new("spec.json"), &options).expect("converts");
    let [get, put, post] = &converted.tools[..] else {
        panic!("{:?}", converted.skipped)
    };
    assert_eq!(get.name, "get_a_b_c");
    assert_eq!(get.source, "GET /a/{b}/c");
    assert_eq!(get.description, "GET /a/{b}/c");
    assert_eq!(get.title, None);
    assert_eq!(put.name, "put_a_b_c");
    assert_eq!(put.source, "PUT /a/{b}/c (日本)");
    assert_eq!(put.title.as_deref(), Some("Put it"));
    assert_eq!(put.description, "Put it\n\nPuts it.");
    assert_eq!(post.name, "postIt");
    assert!(post.description.starts_with("Deprecated: Post it"));
    assert_eq!(post.description.chars().count(), 1_000);
    assert!(post.description.ends_with('…'));
}

#[test]
fn broken_operations_are_skipped_and_the_rest_converts() {
    let document = doc(json!({
        "/a/{x}": {"get": {"operationId": "undeclared", "responses": ok()}},
        "/b": {
            "get": {"operationId": "formData", "parameters": [{"name": "f", "in": "formData"}], "responses": ok()},
            "put": {"operationId": "badRef", "parameters": [{"$ref": "#/components/parameters/Nope"}], "responses": ok()},
            "post": {"operationId": "badSchema", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}, "responses": ok()},
            "patch": {"operationId": "external", "requestBody": {"content": {"application/json": {"schema": {"$ref": "other.yaml#/Pet"}}}}, "responses": ok()},
            "delete": {"operationId": "fine", "responses": ok()},
        },
        "/c": {"$ref": "#/nowhere"},
    }));
    let converted = run(&document);
    assert_eq!(converted.tools.len(), 1);
    assert_eq!(converted.tools[0].name, "fine");
    let reasons: Vec<(&str, &str)> = converted
        .skipped
        .iter()
        .map(|s| (s.operation.as_str(), s.reason.as_str()))
        .collect();
    let expect = [
        (
            "GET /a/{x} (undeclared)",
            "path parameter 'x' is used in the path but not declared",
        ),
        ("GET /b (formData)", "unsupported location `in: formData`"),
        (
            "PUT /b (badRef)",
            "$ref '#/components/parameters/Nope' points to nothing",
        ),
        (
            "POST /b (badSchema)",
            "#/paths/~1b/post/requestBody/content/application~1json/schema",
        ),
        ("PATCH /b (external)", "other.yaml"),
        ("* /c", "$ref '#/nowhere' points to nothing"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:?}");
    for ((operation, reason), (want_op, want_reason)) in reasons.iter().zip(expect) {
        assert_eq!(*operation, want_op);
        assert!(reason.contains(want_reason), "{operation}: {reason}");
    }
}

#[test]
fn selection_filters_without_reporting_skips() {
    let document = doc(json!({
        "/a": {
            "get": {"operationId": "listA", "tags": ["a"], "responses": ok()},
            "post": {"operationId": "createA", "tags": ["a"], "responses": ok()},
            "delete": {"operationId": "deleteA", "tags": ["a", "admin"], "responses": ok()},
        },
        "/b": {"get": {"operationId": "listB", "tags": ["b"], "responses": ok()}},
    }));
    let names = |selection: Selection| {
        let options = ConvertOptions {
            selection,
            ..ConvertOptions::new(None)
        };
        let converted = convert(&document, Path::new("spec.json"), &options).expect("converts");
        assert!(converted.skipped.is_empty());
        converted
            .tools
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(Selection {
            include_tags: s(&["a"]),
            exclude_tags: s(&["admin"]),
            ..Default::default()
        }),
        ["listA", "createA"]
    );
    assert_eq!(
        names(Selection {
            include_methods: s(&["GET"]),
            ..Default::default()
        }),
        ["listA", "listB"]
    );
    assert_eq!(
        names(Selection {
            include_operations: s(&["listB", "deleteA"]),
            exclude_methods: s(&["delete"]),
            ..Default::default()
        }),
        ["listB"]
    );
    assert_eq!(
        names(Selection {
            exclude_operations: s(&["listA", "listB"]),
            ..Default::default()
        }),
        ["createA", "deleteA"]
    );
}

#[test]
fn path_globs_select_by_template() {
    let document = doc(json!({
        "/pets": {"get": {"operationId": "listPets", "responses": ok()}},
        "/pets/{petId}": {"get": {"operationId": "getPet", "responses": ok(), "parameters": [
            {"name": "petId", "in": "path", "required": true},
        ]}},
        "/pets/{petId}/photos/{photoId}": {"get": {"operationId": "getPhoto", "responses": ok(), "parameters": [
            {"name": "petId", "in": "path", "required": true},
            {"name": "photoId", "in": "path", "required": true},
        ]}},
        "/admin/users": {"get": {"operationId": "listUsers", "responses": ok()}},
        "/store/order": {
            "post": {"operationId": "placeOrder", "deprecated": true, "responses": ok()},
            "get": {"operationId": "getOrders", "deprecated": true, "responses": ok()},
        },
    }));
    let names = |include: &[&str], exclude: &[&str], include_operations: &[&str]| {
        let options = ConvertOptions {
            selection: Selection {
                include_paths: path_globs(include.iter().copied()).expect("globs"),
                exclude_paths: path_globs(exclude.iter().copied()).expect("globs"),
                include_operations: include_operations.iter().map(|x| x.to_string()).collect(),
                ..Default::default()
            },
            ..ConvertOptions::new(None)
        };
        let converted = convert(&document, Path::new("spec.json"), &options).expect("converts");
        converted
            .tools
            .into_iter()
            .map(|t| t.name)
            .collect::<Vec<_>>()
    };
    // `*` stays within a segment, `**` spans them; braces are literal template text.
    assert_eq!(names(&["/pets/*"], &[], &[]), ["getPet"]);
    assert_eq!(names(&["/pets/**"], &[], &[]), ["getPet", "getPhoto"]);
    assert_eq!(
        names(&["/pets", "/pets/**"], &["**/photos/**"], &[]),
        ["listPets", "getPet"]
    );
    assert_eq!(names(&["/pets/{petId}"], &[], &[]), ["getPet"]);
    assert_eq!(
        names(&[], &["/admin/**", "/pets*"], &[]),
        ["getPet", "getPhoto"]
    );
    assert_eq!(names(&["/admin/?sers"], &[], &[]), ["listUsers"]);
    // Deprecated operations come back only when named.
    assert_eq!(names(&["/store/**"], &[], &[]), Vec::<String>::new());
    assert_eq!(names(&[], &[], &["getOrders"]), ["getOrders"]);
    assert!(path_globs(["/pets/[a"]).unwrap_err().contains("/pets/[a"));
    assert!(path_globs(Vec::<&str>::new()).expect("empty").is_none());
}

#[test]
fn configured_content_type_replaces_the_automatic_choice() {
    let document = doc(json!({
        "/upload": {"post": {"operationId": "upload", "responses": ok(), "requestBody": {"content": {
            "application/json": {"schema": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "Multipart/Form-Data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
        }}}},
        "/plain": {"post": {"operationId": "plain", "responses": ok()}},
    }));
    let automatic = run(&document);
    let body = automatic.tools[0].operation.body.as_ref().expect("body");
    assert_eq!(body.encoding, BodyEncoding::Json);

    let mut options = options();
    options.content_types.insert(
        "upload".into(),
        "multipart/form-data; boundary=ignored".into(),
    );
    let converted = convert(&document, Path::new("spec.json"), &options).expect("converts");
    assert!(converted.option_errors.is_empty());
    let tool = &converted.tools[0];
    let body = tool.operation.body.as_ref().expect("body");
    assert_eq!(body.encoding, BodyEncoding::Multipart);
    assert!(tool.input_schema["properties"]["file"].is_object());
    assert!(tool.input_schema["properties"].get("name").is_none());

    options
        .content_types
        .insert("upload".into(), "text/csv".into());
    options
        .content_types
        .insert("plain".into(), "text/plain".into());
    let converted = convert(&document, Path::new("spec.json"), &options).expect("converts");
    assert!(converted.tools.is_empty());
    assert_eq!(
        converted.option_errors.len(),
        2,
        "{:?}",
        converted.option_errors
    );
    assert!(
        converted.option_errors[0]
            .contains("operations.upload.content_type is `text/csv`, but the operation's request body offers only application/json, Multipart/Form-Data"),
        "{:?}",
        converted.option_errors
    );
    assert!(converted.option_errors[1].contains("has no request body"));
}

#[test]
fn servers_variables_relative_urls_and_base_url() {
    let mut document = doc(json!({
        "/a": {
            "get": {"responses": ok()},
            "put": {"servers": [{"url": "https://other.example.com/"}], "responses": ok()},
        }
    }));
    document["servers"] = json!([{
        "url": "https://{region}.example.com:{port}/v2",
        "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}, "port": {"default": "8443"}}
    }]);
    let converted = run(&document);
    assert_eq!(
        &*converted.tools[0].operation.base_url,
        "https://eu.example.com:8443/v2"
    );
    assert_eq!(
        &*converted.tools[1].operation.base_url,
        "https://other.example.com"
    );

    let with_base = ConvertOptions::new(Some("http://127.0.0.1:8081/v1/".into()));
    document["servers"] = json!([{"url": "/v1"}]);
    let e = convert(&document, Path::new("spec.json"), &options()).expect_err("relative");
    assert_eq!(e.pointer, "/servers/0/url");
    assert!(
        e.reason.starts_with("no absolute server URL: set base_url"),
        "{e}"
    );
    let converted = convert(&document, Path::new("spec.json"), &with_base).expect("base_url");
    for tool in &converted.tools {
        assert_eq!(&*tool.operation.base_url, "http://127.0.0.1:8081/v1");
    }

    // A variable without a default (Asana's app components: `url: "{siteUrl}"`) cannot
    // be resolved from the document: a base URL is needed, as for a relative URL.
    for url in ["{siteUrl}", "https://api.example.com/{version}"] {
        document["servers"] = json!([{"url": url}]);
        let e = convert(&document, Path::new("spec.json"), &options()).expect_err("no default");
        assert!(
            e.reason.starts_with("no absolute server URL: set base_url") && e.reason.contains(url),
            "{e}"
        );
        convert(&document, Path::new("spec.json"), &with_base).expect("base_url");
    }

    document.as_object_mut().expect("object").remove("servers");
    let e = convert(&document, Path::new("spec.json"), &options()).expect_err("no servers");
    assert!(e.reason.contains("no `servers`"), "{e}");
}

#[test]
fn documents_that_are_not_openapi_3_are_rejected_with_a_reason() {
    let cases = [
        (
            json!({"swagger": "1.2", "paths": {}}),
            "/swagger",
            "unsupported Swagger version '1.2'",
        ),
        (json!({"info": {}}), "", "no `openapi` version"),
        (
            json!({"openapi": "4.0.0"}),
            "/openapi",
            "unsupported OpenAPI version '4.0.0'",
        ),
        (json!([1, 2]), "", "top level is not an object"),
        (
            json!({"openapi": "3.1.0", "paths": []}),
            "/paths",
            "`paths` is not an object",
        ),
    ];
    for (document, pointer, reason) in cases {
        let e = convert(&document, Path::new("x.json"), &options()).expect_err("rejected");
        assert_eq!(e.pointer, pointer, "{e}");
        assert!(e.reason.contains(reason), "{e}");
        assert_eq!(e.file, Path::new("x.json"));
    }
    // 3.1 without paths (webhooks only) is fine and gives no tools.
    let webhooks = json!({"openapi": "3.1.0", "webhooks": {}});
    assert!(run(&webhooks).tools.is_empty());
}

#[test]
fn relative_file_references_load_once_from_the_spec_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("schemas.yaml"),
        "Pet:\n  type: object\n  properties:\n    owner: {$ref: '#/Owner'}\n    tag: {$ref: 'more/tags.json#/Tag'}\nOwner:\n  type: string\n",
    )
    .expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    std::fs::write(
        dir.path().join("more/tags.json"),
        r#"{"Tag": {"type": "string", "enum": ["a"]}}"#,
    )
    .expect("write");
    let spec = r#"
openapi: 3.0.0
info: {title: t, version: "1"}
servers: [{url: "https://x.example.com"}]
paths:
  /pets:
    get:
      operationId: listPets
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "schemas.yaml#/Pet"}
    post:
      operationId: missing
      requestBody:
        content:
          application/json:
            schema: {$ref: "absent.yaml#/Pet"}
      responses: {"200": {description: ok}}
"#;
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, spec).expect("write");
    let converted = load_and_convert(&path, &options()).expect("loads");
    let tool = only(&converted);
    let out = tool.output_schema.as_ref().expect("output");
    assert_eq!(out["properties"]["owner"], json!({"type": "string"}));
    assert_eq!(
        out["properties"]["tag"],
        json!({"type": "string", "enum": ["a"]})
    );
    assert_eq!(converted.skipped.len(), 1);
    assert!(
        converted.skipped[0].reason.contains("absent.yaml"),
        "{:?}",
        converted.skipped
    );
}

#[test]
fn swagger_2_documents_are_read_as_openapi_3() {
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "host": "api.example.com",
        "basePath": "/v2",
        "schemes": ["http", "https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "parameters": {
            "Limit": {"name": "limit", "in": "query", "type": "integer", "maximum": 50}
        },
        "paths": {
            "/pets/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "type": "string"}],
                "get": {
                    "operationId": "getPet",
                    "parameters": [
                        {"$ref": "#/parameters/Limit"},
                        {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"},
                        {"name": "ids", "in": "query", "type": "array", "items": {"type": "integer"}},
                    ],
                    "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Pet"}}}
                },
                "put": {
                    "operationId": "putPet",
                    "parameters": [{"name": "pet", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Pet"}}],
                    "responses": {"204": {"description": "done"}}
                },
                "post": {
                    "operationId": "upload",
                    "consumes": ["multipart/form-data"],
                    "parameters": [
                        {"name": "file", "in": "formData", "type": "file", "required": true},
                        {"name": "note", "in": "formData", "type": "string"},
                    ],
                    "responses": {"200": {"description": "ok"}}
                }
            }
        },
        "definitions": {
            "Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
        }
    });
    let converted = run(&document);
    assert!(converted.skipped.is_empty(), "{:?}", converted.skipped);
    assert!(converted.warnings[0].contains("Swagger 2.0"));
    let [get, put, post] = &converted.tools[..] else {
        panic!("{} tools", converted.tools.len())
    };
    assert_eq!(&*get.operation.base_url, "https://api.example.com/v2");
    assert_eq!(
        get.input_schema["properties"]["limit"],
        json!({"type": "integer", "maximum": 50})
    );
    let explode: Vec<(&str, bool)> = get
        .operation
        .params
        .iter()
        .map(|p| (&*p.arg, p.explode))
        .collect();
    assert_eq!(
        explode,
        [
            ("id", false),
            ("limit", true),
            ("tags", true),
            ("ids", false)
        ]
    );
    assert_eq!(
        get.output_schema.as_ref().expect("output")["properties"]["name"]["type"],
        "string"
    );

    let body = put.operation.body.as_ref().expect("body");
    assert_eq!(body.encoding, BodyEncoding::Json);
    assert_eq!(put.input_schema["required"], json!(["id", "name"]));

    let body = post.operation.body.as_ref().expect("body");
    assert_eq!(body.encoding, BodyEncoding::Multipart);
    assert_eq!(
        post.input_schema["properties"]["file"],
        json!({"type": "string", "contentEncoding": "base64"})
    );
    assert_eq!(post.input_schema["required"], json!(["id", "file"]));
}

#[test]
fn operations_written_as_references_to_files_are_followed() {
    // DigitalOcean's split document: each operation is `$ref: resources/x/op.yml`, whose
    // own relative references resolve from that file's directory.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("ops")).expect("mkdir");
    std::fs::write(
        dir.path().join("ops/get_pet.yml"),
        "operationId: getPet\nsummary: One pet\nparameters:\n  - $ref: 'params.yml#/pet_id'\nresponses:\n  '200':\n    description: ok\n    content:\n      application/json:\n        schema: {type: object, properties: {name: {type: string}}}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("ops/params.yml"),
        "pet_id:\n  name: pet_id\n  in: path\n  required: true\n  schema: {type: integer}\n",
    )
    .expect("write");
    let spec = r#"
openapi: 3.0.0
info: {title: t, version: "1"}
servers: [{url: "https://x.example.com"}]
paths:
  /pets/{pet_id}:
    get: {$ref: "ops/get_pet.yml"}
    delete: {$ref: "ops/absent.yml"}
"#;
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, spec).expect("write");
    let converted = load_and_convert(&path, &options()).expect("loads");
    let tool = only(&converted);
    assert_eq!(tool.name, "getPet");
    assert_eq!(tool.title.as_deref(), Some("One pet"));
    assert_eq!(
        tool.input_schema["properties"]["pet_id"],
        json!({"type": "integer"})
    );
    assert_eq!(tool.input_schema["required"], json!(["pet_id"]));
    assert!(tool.output_schema.is_some());
    assert_eq!(converted.skipped.len(), 1);
    assert_eq!(converted.skipped[0].operation, "DELETE /pets/{pet_id}");
    assert!(
        converted.skipped[0].reason.contains("absent.yml"),
        "{:?}",
        converted.skipped
    );
}

#[test]
fn swagger_2_parameters_in_other_files_are_all_kept() {
    // Azure's specifications: most parameters are references to a shared file
    // (common-types/.../types.json#/parameters/...), written in Swagger 2.0 form.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("types.json"),
        r#"{"swagger": "2.0", "info": {"title": "common", "version": "1"}, "paths": {},
            "parameters": {
              "Sub": {"name": "subscriptionId", "in": "path", "required": true, "type": "string"},
              "Group": {"name": "resourceGroupName", "in": "path", "required": true, "type": "string"},
              "Version": {"name": "api-version", "in": "query", "required": true, "type": "string"},
              "Top": {"name": "$top", "in": "query", "type": "integer", "format": "int32", "minimum": 1,
                      "x-ms-parameter-location": "method"},
              "Ids": {"name": "ids", "in": "query", "type": "array", "items": {"type": "string"}}
            }}"#,
    )
    .expect("write");
    let spec = r#"{
      "swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "management.example.com",
      "paths": {
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/things": {
          "parameters": [{"$ref": "./types.json#/parameters/Sub"}],
          "get": {
            "operationId": "Things_List",
            "parameters": [
              {"$ref": "./types.json#/parameters/Sub"},
              {"$ref": "./types.json#/parameters/Group"},
              {"$ref": "types.json#/parameters/Version"},
              {"$ref": "types.json#/parameters/Top"},
              {"$ref": "types.json#/parameters/Ids"}
            ],
            "responses": {"200": {"description": "ok"}}
          }
        }
      }
    }"#;
    let path = dir.path().join("things.json");
    std::fs::write(&path, spec).expect("write");
    let converted = load_and_convert(&path, &options()).expect("loads");
    let tool = only(&converted);
    let properties = tool.input_schema["properties"]
        .as_object()
        .expect("properties");
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "subscriptionId",
            "resourceGroupName",
            "api-version",
            "$top",
            "ids"
        ]
    );
    assert_eq!(
        tool.input_schema["required"],
        json!(["subscriptionId", "resourceGroupName", "api-version"])
    );
    // Their Swagger 2.0 type keywords are their schema, collectionFormat their style.
    assert_eq!(
        properties["$top"],
        json!({"type": "integer", "format": "int32", "minimum": 1})
    );
    assert_eq!(
        properties["ids"],
        json!({"type": "array", "items": {"type": "string"}})
    );
    let ids = &tool.operation.params[4];
    assert_eq!(
        (&*ids.arg, ids.style, ids.explode),
        ("ids", ParamStyle::Form, false)
    );
}

#[test]
fn parameters_with_type_keywords_instead_of_a_schema_keep_their_type() {
    // A common mistake in hand-written 3.0 documents (the Swagger 2.0 form).
    let document = doc(json!({
        "/pets": {"get": {
            "operationId": "list",
            "parameters": [
                {"name": "limit", "in": "query", "type": "integer", "maximum": 50, "description": "At most"},
                {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "pipes"},
                {"name": "q", "in": "query"},
            ],
            "responses": ok(),
        }}
    }));
    let converted = run(&document);
    let tool = only(&converted);
    let properties = &tool.input_schema["properties"];
    assert_eq!(
        properties["limit"],
        json!({"type": "integer", "maximum": 50, "description": "At most"})
    );
    assert_eq!(properties["tags"]["type"], "array");
    assert_eq!(properties["q"], json!({"type": "string"}));
    let tags = &tool.operation.params[1];
    assert_eq!(
        (tags.style, tags.explode),
        (ParamStyle::PipeDelimited, false)
    );
}

#[test]
fn split_documents_may_refer_to_hundreds_of_files() {
    // DigitalOcean's description is ~2,900 files; the limit used to be 64.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut properties = serde_json::Map::new();
    for i in 0..300 {
        std::fs::write(
            dir.path().join(format!("p{i}.yaml")),
            format!("type: string\ndescription: field {i}\n"),
        )
        .expect("write");
        properties.insert(format!("f{i}"), json!({"$ref": format!("p{i}.yaml")}));
    }
    let mut document = doc(json!({
        "/things": {"post": {
            "operationId": "create",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": properties
            }}}},
            "responses": ok(),
        }}
    }));
    document["components"] = json!({});
    let path = dir.path().join("spec.json");
    std::fs::write(&path, document.to_string()).expect("write");
    let converted = load_and_convert(&path, &options()).expect("loads");
    let tool = only(&converted);
    assert_eq!(
        tool.input_schema["properties"]["f299"],
        json!({"type": "string", "description": "field 299"})
    );
}

#[test]
fn swagger_2_file_answers_are_binary_whatever_else_is_produced() {
    // AutoRest's body-file test service: `produces: [image/png, application/json]` and a
    // `type: file` answer; a global `produces: [application/json]` is as common.
    let document = json!({
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "host": "api.example.com",
        "produces": ["application/json"],
        "paths": {
            "/png": {"get": {
                "operationId": "png",
                "produces": ["image/png", "application/json"],
                "responses": {"200": {"description": "the file", "schema": {"type": "file"}}}
            }},
            "/download": {"get": {
                "operationId": "download",
                "responses": {"200": {"description": "the file", "schema": {"type": "file"}}}
            }},
        }
    });
    let converted = run(&document);
    let [png, download] = &converted.tools[..] else {
        panic!("{} tools", converted.tools.len())
    };
    assert!(png.output_schema.is_none());
    assert_eq!(png.operation.accept.as_ref().expect("accept"), "image/png");
    assert!(download.output_schema.is_none());
    assert_eq!(
        download.operation.accept.as_ref().expect("accept"),
        "application/octet-stream"
    );
}

#[test]
fn an_unquoted_swagger_version_is_read_as_2_0() {
    // `swagger: 2.0` without quotes is a YAML number; it was rejected as version ''.
    let yaml = "swagger: 2.0\ninfo: {title: t, version: '1'}\nhost: api.example.com\npaths:\n  /a:\n    get:\n      responses: {'200': {description: ok}}\n";
    let document = super::load::parse_document(yaml, Path::new("spec.yaml")).expect("yaml");
    assert_eq!(only(&run(&document)).name, "get_a");
    let old = super::load::parse_document("swagger: 1.2\npaths: {}\n", Path::new("spec.yaml"))
        .expect("yaml");
    let e = convert(&old, Path::new("spec.yaml"), &options()).expect_err("1.2");
    assert!(e.reason.contains("'1.2'"), "{e}");
}

#[test]
fn swagger_2_definitions_named_through_the_file_name_resolve() {
    // Azure's API Management: apimtagresources.json refers back to
    // `./apimapis.json#/definitions/...` of the main document, and documents name
    // themselves by file (`./apimtags.json#/definitions/...`).
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("shared.json"),
        r#"{"definitions": {"Tagged": {"allOf": [{"$ref": "./main.json#/definitions/Base"}],
              "properties": {"tag": {"type": "string"}}}}}"#,
    )
    .expect("write");
    let spec = r#"{
      "swagger": "2.0", "info": {"title": "t", "version": "1"}, "host": "api.example.com",
      "paths": {
        "/a": {"get": {"operationId": "a", "responses": {"200": {"description": "ok",
          "schema": {"$ref": "./shared.json#/definitions/Tagged"}}}}},
        "/b": {"get": {"operationId": "b", "responses": {"200": {"description": "ok",
          "schema": {"$ref": "main.json#/definitions/Base"}}}}}
      },
      "definitions": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}
    }"#;
    let path = dir.path().join("main.json");
    std::fs::write(&path, spec).expect("write");
    let converted = load_and_convert(&path, &options()).expect("loads");
    assert!(converted.skipped.is_empty(), "{:?}", converted.skipped);
    let [a, b] = &converted.tools[..] else {
        panic!("{} tools", converted.tools.len())
    };
    let out = a.output_schema.as_ref().expect("output");
    assert_eq!(out["allOf"][0]["properties"]["id"]["type"], "integer");
    let out = b.output_schema.as_ref().expect("output");
    assert_eq!(out["properties"]["id"]["type"], "integer");
    // A 3.0 document gets no such leniency: `#/definitions` is just absent there.
    let document = doc(json!({"/c": {"get": {"responses": {"200": {
        "description": "ok",
        "content": {"application/json": {"schema": {"$ref": "#/definitions/Pet"}}}
    }}}}}));
    let converted =
        convert(&document, Path::new("/nonexistent/spec.json"), &options()).expect("converts");
    assert!(
        converted.skipped[0].reason.contains("points to nothing"),
        "{:?}",
        converted.skipped
    );
}

#[test]
fn numbers_are_kept_as_the_document_writes_them() {
    // JS-generated documents write u64::MAX as 18446744073709552000; read as an f64 and
    // written back it would be 1.8446744073709552e19, which pydantic refuses as the bound
    // of an integer field.
    let params = |max: &str, low: &str, ratio: &str| {
        format!(
            r#"{{"openapi": "3.0.3", "info": {{"title": "t", "version": "1"}}, "servers": [{{"url": "https://api.example.com"}}],
  "paths": {{"/m": {{"get": {{"operationId": "metrics", "responses": {{"200": {{"description": "ok"}}}}, "parameters": [
    {{"name": "limit", "in": "query", "schema": {{"type": "integer", "minimum": 0, "maximum": {max}}}}},
    {{"name": "low", "in": "query", "schema": {{"type": "integer", "minimum": {low}}}}},
    {{"name": "ratio", "in": "query", "schema": {{"type": "number", "multipleOf": 0.1, "default": {ratio}}}}}]}}}}}}}}"#
        )
    };
    let json = params("18446744073709552000", "-9223372036854775809", "1.50");
    // JSON keeps every number exactly as written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spec.json");
    std::fs::write(&path, &json).unwrap();
    let schema =
        serde_json::to_string(&only(&load_and_convert(&path, &options()).unwrap()).input_schema)
            .unwrap();
    for written in [
        r#""maximum":18446744073709552000"#,
        r#""minimum":-9223372036854775809"#,
        r#""default":1.50"#,
        r#""multipleOf":0.1"#,
    ] {
        assert!(schema.contains(written), "{written}: {schema}");
    }
    // YAML (the same text is a YAML flow mapping): integers beyond 64 bits stay integers,
    // in the digits JavaScript prints.
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, json.replace("\"openapi\"", "openapi")).unwrap();
    let schema =
        serde_json::to_string(&only(&load_and_convert(&path, &options()).unwrap()).input_schema)
            .unwrap();
    for written in [
        r#""maximum":18446744073709552000"#,
        r#""minimum":-9223372036854776000"#,
        r#""multipleOf":0.1"#,
    ] {
        assert!(schema.contains(written), "{written}: {schema}");
    }
}
