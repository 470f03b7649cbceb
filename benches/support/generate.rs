//! A generated OpenAPI 3.0 document with `n` operations, shared by the criterion bench
//! (`benches/request_path.rs`) and the load generator (`examples/loadgen.rs`).
//!
//! Each group of four operations is a REST resource (`/resources{i}` list + create,
//! `/resources{i}/{id}` get + delete), with a path parameter, query parameters, a JSON body
//! and a shared `$ref`'d response schema: the shape of a typical large API, not a toy.

use serde_json::{Value, json};

/// The document, as JSON text.
pub fn openapi_with_operations(n: usize) -> String {
    let mut paths = serde_json::Map::new();
    let resources = n.div_ceil(4);
    let mut made = 0;
    for i in 0..resources {
        let mut collection = serde_json::Map::new();
        let mut item = serde_json::Map::new();
        for (k, slot) in [("get", 0usize), ("post", 0), ("get", 1), ("delete", 1)] {
            if made == n {
                break;
            }
            made += 1;
            let (op, target) = if slot == 0 {
                (collection_op(i, k), &mut collection)
            } else {
                (item_op(i, k), &mut item)
            };
            target.insert(k.to_string(), op);
        }
        if !collection.is_empty() {
            paths.insert(format!("/resources{i}"), Value::Object(collection));
        }
        if !item.is_empty() {
            paths.insert(format!("/resources{i}/{{id}}"), Value::Object(item));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Generated", "version": "1.0"},
        "servers": [{"url": "http://127.0.0.1:9/api"}],
        "paths": paths,
        "components": {"schemas": {
            "Resource": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "size": {"type": "integer", "minimum": 0},
                    "created": {"type": "string", "format": "date-time"}
                }
            }
        }}
    })
    .to_string()
}

fn collection_op(i: usize, method: &str) -> Value {
    if method == "get" {
        json!({
            "operationId": format!("listResources{i}"),
            "summary": format!("List resources of kind {i}"),
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "labels", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}
            ],
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "array", "items": {"$ref": "#/components/schemas/Resource"}}}}}}
        })
    } else {
        json!({
            "operationId": format!("createResource{i}"),
            "summary": format!("Create a resource of kind {i}"),
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Resource"}}}},
            "responses": {"201": {"description": "created", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Resource"}}}}}
        })
    }
}

fn item_op(i: usize, method: &str) -> Value {
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    if method == "get" {
        json!({
            "operationId": format!("getResource{i}"),
            "summary": format!("Get one resource of kind {i}"),
            "parameters": [id, {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Resource"}}}}}
        })
    } else {
        json!({
            "operationId": format!("deleteResource{i}"),
            "summary": format!("Delete one resource of kind {i}"),
            "parameters": [id],
            "responses": {"204": {"description": "deleted"}}
        })
    }
}
