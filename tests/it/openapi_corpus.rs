//! Every document of the vendored corpus (`tests/corpus`) loads, or is rejected with a
//! precise reason; every generated schema compiles as JSON Schema 2020-12 and every name
//! is a legal tool name. Also the recursion fixtures of `tests/fixtures/openapi`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use toolgate::catalog::{compile_schema, sanitize};
use toolgate::openapi::{
    ConvertOptions, Converted, DescriptionBudget, Selection, load_and_convert,
};

use crate::support::CORPUS;
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi");

/// Every operation, deprecated ones included: the corpus measures conversion, and
/// skipping deprecated operations is a policy (counted apart in the report).
fn options(base_url: Option<&str>) -> ConvertOptions {
    let mut options = ConvertOptions::new(base_url.map(str::to_string));
    options.selection = Selection {
        include_deprecated: true,
        ..Selection::default()
    };
    options
}

/// All `.json`/`.yaml`/`.yml` files under `dir`, sorted.
fn documents(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
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
    out.sort();
    out
}

/// Loads a document; a document whose only problem is a relative server URL is loaded
/// again with a placeholder base URL (what `tools --openapi` does).
fn load(path: &Path) -> Result<Converted, toolgate::openapi::SpecError> {
    match load_and_convert(path, &options(None)) {
        Err(e) if e.reason.starts_with("no absolute server URL") => {
            load_and_convert(path, &options(Some("http://localhost:8080")))
        }
        other => other,
    }
}

/// Checks every tool of a converted document; returns the problems found.
fn check_tools(path: &Path, converted: &Converted) -> Vec<String> {
    let mut problems = Vec::new();
    for tool in &converted.tools {
        let at = format!("{}: {}", path.display(), tool.source);
        // The name a gateway gives it by default: what every model API's function names
        // accept (`^[a-zA-Z0-9_-]{1,64}$`).
        let name = toolgate::catalog::Naming::default().full_name("target", &tool.name);
        let strict = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if !(1..=64).contains(&name.len())
            || !name.chars().all(strict)
            || sanitize(&tool.name).is_empty()
        {
            problems.push(format!("{at}: name {:?} becomes {name:?}", tool.name));
        }
        if tool.description.trim().is_empty() {
            problems.push(format!("{at}: empty description"));
        }
        let budget = DescriptionBudget::DEFAULT;
        let own = tool.description.chars().count();
        let total = own
            + description_chars(&tool.input_schema)
            + tool.output_schema.as_ref().map_or(0, description_chars);
        if own > budget / 4 || total > budget {
            problems.push(format!(
                "{at}: descriptions over budget: {own} characters for the tool, {total} in all"
            ));
        }
        if tool.input_schema["type"] != "object" {
            problems.push(format!("{at}: inputSchema is not of type object"));
        }
        if let Err(e) = compile_schema(&tool.input_schema) {
            problems.push(format!("{at}: inputSchema does not compile: {e}"));
        }
        if let Some(output) = &tool.output_schema {
            if output["type"] != "object" {
                problems.push(format!("{at}: outputSchema is not of type object"));
            }
            if let Err(e) = compile_schema(output) {
                problems.push(format!("{at}: outputSchema does not compile: {e}"));
            }
        }
    }
    problems
}

/// Characters of the `description` annotations of a schema (values under data keywords
/// such as `default` or `examples` are data, not annotations).
fn description_chars(schema: &Value) -> usize {
    match schema {
        Value::Object(map) => map
            .iter()
            .map(|(key, child)| match child {
                Value::String(text) if key == "description" => text.chars().count(),
                _ if matches!(
                    key.as_str(),
                    "default" | "examples" | "example" | "const" | "enum"
                ) =>
                {
                    0
                }
                _ => description_chars(child),
            })
            .sum(),
        Value::Array(items) => items.iter().map(description_chars).sum(),
        _ => 0,
    }
}

#[test]
fn corpus_documents_convert_and_schemas_compile() {
    let root = Path::new(CORPUS);
    let files = documents(root);
    assert!(
        files.len() >= 40,
        "expected the vendored corpus at {CORPUS}, found {} files",
        files.len()
    );
    let (mut loaded, mut rejected) = (0, 0);
    // (converted, skipped) for OpenAPI 3.x documents and for Swagger 2.0 ones.
    let (mut v3, mut v2) = ((0, 0), (0, 0));
    let mut problems = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string();
        let swagger2 = relative.contains("2.0") || relative.contains("swagger2");
        match load(path) {
            Ok(result) => {
                loaded += 1;
                let counts = if swagger2 { &mut v2 } else { &mut v3 };
                counts.0 += result.tools.len();
                counts.1 += result.skipped.len();
                let deprecated = result
                    .tools
                    .iter()
                    .filter(|t| t.description.starts_with("Deprecated:"))
                    .count();
                println!(
                    "{relative}: {} tools ({deprecated} deprecated, skipped by default), {} skipped, {} warnings",
                    result.tools.len(),
                    result.skipped.len(),
                    result.warnings.len()
                );
                for s in &result.skipped {
                    println!("  skipped {}: {}", s.operation, s.reason);
                    *reasons.entry(short_reason(&s.reason)).or_default() += 1;
                }
                problems.extend(check_tools(path, &result));
            }
            Err(e) => {
                rejected += 1;
                println!("{relative}: rejected: {e}");
                problems.push(format!("{relative} rejected: {e}"));
                assert!(!e.reason.is_empty());
                assert_eq!(e.file, *path);
            }
        }
    }
    println!(
        "corpus: {} documents, {loaded} loaded, {rejected} rejected; OpenAPI 3.x: {} \
         operations converted, {} skipped; Swagger 2.0: {} converted, {} skipped",
        files.len(),
        v3.0,
        v3.1,
        v2.0,
        v2.1
    );
    for (reason, n) in &reasons {
        println!("  {n} × {reason}");
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    for (what, (converted, skipped)) in [("OpenAPI 3.x", v3), ("Swagger 2.0", v2)] {
        let total = converted + skipped;
        assert!(total > 100, "only {total} {what} operations in the corpus");
        assert!(
            converted * 100 >= total * 99,
            "{what}: only {converted} of {total} operations converted"
        );
    }
}

/// The first words of a reason, for the summary.
fn short_reason(reason: &str) -> String {
    reason.chars().take(60).collect()
}

fn fixture(name: &str) -> Converted {
    let path = Path::new(FIXTURES).join(name);
    let converted = load_and_convert(&path, &options(None))
        .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
    let problems = check_tools(&path, &converted);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    converted
}

fn tool<'a>(converted: &'a Converted, name: &str) -> &'a toolgate::catalog::ToolSpec {
    converted
        .tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name}; skipped: {:?}", converted.skipped))
}

/// Follows `#/$defs/...` and checks it is defined.
fn def<'a>(schema: &'a Value, reference: &Value) -> &'a Value {
    let name = reference
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .unwrap_or_else(|| panic!("not a $defs reference: {reference}"));
    &schema["$defs"][name]
}

#[test]
fn recursive_schemas_use_defs_and_never_overflow() {
    let converted = fixture("recursive.yaml");
    assert!(converted.skipped.is_empty(), "{:?}", converted.skipped);

    // A tree: Node.children is an array of Node.
    let get_tree = tool(&converted, "getTree");
    let out = get_tree.output_schema.as_ref().expect("output schema");
    let children = &out["properties"]["children"]["items"];
    let node = def(out, &children["$ref"]);
    assert_eq!(node["type"], "object");
    assert_eq!(
        node["properties"]["children"]["items"]["$ref"], children["$ref"],
        "the definition refers to itself"
    );

    // A self-referencing array: List = array of List.
    let get_list = tool(&converted, "getList");
    let out = get_list.output_schema.as_ref().expect("output schema");
    assert_eq!(get_list.output_wrap.as_deref(), Some("result"));
    let items = &out["properties"]["result"]["items"];
    let list = def(out, &items["$ref"]);
    assert_eq!(list["type"], "array");

    // A cycle through several schemas: A → B → C → A, used in the request body.
    let post_chain = tool(&converted, "postChain");
    let input = &post_chain.input_schema;
    let b = &input["properties"]["b"];
    let c = &b["properties"]["c"];
    let a = def(input, &c["properties"]["a"]["$ref"]);
    assert!(a["properties"]["b"].is_object());

    // A long non-recursive chain of distinct schemas nested deeper than the inline
    // limit: part goes to $defs instead of growing the stack.
    let deep = tool(&converted, "getDeep");
    assert!(deep.output_schema.is_some());
}

/// What a reviewer needs to see of each tool: the MCP-facing parts and the binding.
fn snapshot_view(converted: &Converted) -> Value {
    let tools: Vec<Value> = converted
        .tools
        .iter()
        .map(|t| {
            let binding: Vec<String> = format!("{:#?}", t.operation)
                .lines()
                .map(str::to_string)
                .collect();
            serde_json::json!({
                "name": t.name,
                "source": t.source,
                "title": t.title,
                "description": t.description,
                "inputSchema": t.input_schema,
                "outputSchema": t.output_schema,
                "outputWrap": t.output_wrap.as_deref(),
                "annotations": t.annotations,
                "operation": binding,
            })
        })
        .collect();
    serde_json::json!({ "tools": tools, "skipped": converted.skipped })
}

#[test]
fn snapshot_oai_petstore() {
    let converted = load_and_convert(&Path::new(CORPUS).join("oai/petstore.yaml"), &options(None))
        .expect("loads");
    insta::assert_snapshot!("oai_petstore", pretty(&snapshot_view(&converted)));
}

#[test]
fn snapshot_swagger_petstore_v3() {
    let converted = load_and_convert(
        &Path::new(CORPUS).join("real/petstore-v3.yaml"),
        &options(None),
    )
    .expect("loads");
    insta::assert_snapshot!("petstore_v3", pretty(&snapshot_view(&converted)));
}

/// A synthetic document with `n` operations sharing components, like a large API.
fn large_document(n: usize) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for i in 0..200 {
        schemas.insert(
            format!("Thing{i}"),
            serde_json::json!({
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "readOnly": true},
                    "name": {"type": "string", "nullable": true, "example": "x"},
                    "size": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                    "owner": {"$ref": "#/components/schemas/User"},
                    // Each schema is recursive through its children.
                    "children": {"type": "array", "items": {"$ref": format!("#/components/schemas/Thing{i}")}},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                }
            }),
        );
    }
    schemas.insert(
        "User".into(),
        serde_json::json!({"type": "object", "properties": {
            "login": {"type": "string"}, "email": {"type": "string", "format": "email"},
            "tag": {"$ref": "#/components/schemas/Tag"}}}),
    );
    schemas.insert(
        "Tag".into(),
        serde_json::json!({"type": "object", "properties": {"label": {"type": "string"}}}),
    );
    for p in 0..n / 4 {
        let thing = format!("#/components/schemas/Thing{}", p % 200);
        let body = serde_json::json!({"required": true, "content": {"application/json": {"schema": {"$ref": thing}}}});
        let answer = serde_json::json!({"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": thing}}}}});
        let list = serde_json::json!({"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": thing}}}}}});
        paths.insert(
            format!("/r{p}/{{id}}"),
            serde_json::json!({
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"operationId": format!("get{p}"), "parameters": [{"name": "expand", "in": "query", "schema": {"type": "boolean"}}], "responses": list},
                "put": {"operationId": format!("put{p}"), "requestBody": body, "responses": answer},
                "post": {"operationId": format!("post{p}"), "requestBody": body, "responses": answer},
                "delete": {"operationId": format!("delete{p}"), "responses": {"204": {"description": "gone"}}},
            }),
        );
    }
    serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "large", "version": "1"},
        "servers": [{"url": "https://large.example.com"}],
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[test]
fn ten_thousand_operations_convert() {
    let document = large_document(10_000);
    let start = std::time::Instant::now();
    let converted = toolgate::openapi::convert(&document, Path::new("large.json"), &options(None))
        .expect("converts");
    // Timing is printed, not asserted: the machine is shared. Release builds take well
    // under a second (see the report in the commit history).
    println!("10,000 operations converted in {:?}", start.elapsed());
    assert_eq!(
        converted.tools.len(),
        10_000,
        "{:?}",
        converted.skipped.first()
    );
    // Recursive `children` go through $defs; spot-check that a few tools compile.
    for tool in converted.tools.iter().step_by(997) {
        compile_schema(&tool.input_schema).expect("input compiles");
        if let Some(output) = &tool.output_schema {
            compile_schema(output).expect("output compiles");
        }
    }
}

/// Pretty JSON through serde_json itself: its numbers keep their digits as written
/// (`arbitrary_precision`), which only serde_json's own serializer knows how to write.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}
