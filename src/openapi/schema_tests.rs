//! Table tests of schema translation and assembly.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::catalog::compile_schema;

/// Assembles the schema at `#/s` of a document holding `schemas` under
/// `#/components/schemas`, as a tool schema root (with `$defs` when needed).
fn assemble_in(dialect: Dialect, mode: Mode, s: Value, schemas: Value) -> Result<Value, String> {
    let doc = json!({ "s": s, "components": { "schemas": schemas } });
    let docs = DocSet::new(&doc, Path::new("/nonexistent/spec.json"));
    let mut ctx = SchemaCtx::new(&docs, dialect);
    let id = ctx.location(0, "/s");
    let mut assembler = Assembler::new(mode);
    let schema = assembler.schema(&mut ctx, id)?;
    let mut root = match schema {
        Value::Object(map) => map,
        other => return Ok(other),
    };
    assembler.finish(&mut ctx, &mut root)?;
    let root = Value::Object(root);
    compile_schema(&root).map_err(|e| format!("does not compile: {e}: {root}"))?;
    Ok(root)
}

fn v30(s: Value) -> Value {
    assemble_in(Dialect::V30, Mode::Input, s, json!({})).expect("translates")
}

#[test]
fn openapi_30_keywords_become_2020_12() {
    let cases = [
        // nullable with a type adds "null" to the type
        (
            json!({"type": "string", "nullable": true}),
            json!({"type": ["string", "null"]}),
        ),
        // nullable with an enum adds null to the enum as well
        (
            json!({"type": "string", "enum": ["a"], "nullable": true}),
            json!({"type": ["string", "null"], "enum": ["a", null]}),
        ),
        // nullable without a type: anyOf with null
        (
            json!({"allOf": [{"type": "string"}], "nullable": true}),
            json!({"anyOf": [{"allOf": [{"type": "string"}]}, {"type": "null"}]}),
        ),
        // nullable: false is just dropped
        (
            json!({"type": "integer", "nullable": false}),
            json!({"type": "integer"}),
        ),
        // boolean exclusive bounds become numeric ones
        (
            json!({"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": false}),
            json!({"type": "number", "exclusiveMinimum": 1, "maximum": 9}),
        ),
        // example becomes examples
        (
            json!({"type": "string", "example": "x"}),
            json!({"type": "string", "examples": ["x"]}),
        ),
        // ... unless it is a reference (to an example object), which is dropped
        (
            json!({"type": "object", "example": {"$ref": "#/components/examples/E/value"}}),
            json!({"type": "object"}),
        ),
        // extensions and OpenAPI-only keywords are dropped, property names are not
        (
            json!({"type": "object", "x-internal": true, "xml": {"name": "a"}, "externalDocs": {},
                   "properties": {"x-rate": {"type": "integer", "x-foo": 1}}}),
            json!({"type": "object", "properties": {"x-rate": {"type": "integer"}}}),
        ),
        // unusable keyword values are dropped rather than breaking compilation
        (
            json!({"type": "file", "required": true, "minLength": "3", "pattern": "(", "multipleOf": 0}),
            json!({}),
        ),
        // draft-4 tuple items become prefixItems
        (
            json!({"type": "array", "items": [{"type": "string"}]}),
            json!({"type": "array", "prefixItems": [{"type": "string"}]}),
        ),
        // duplicate required names are merged
        (
            json!({"required": ["a", "a", 1]}),
            json!({"required": ["a"]}),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(v30(input.clone()), expected, "for {input}");
    }
}

#[test]
fn openapi_31_schemas_pass_through() {
    let s = json!({
        "type": ["string", "null"],
        "const": "a",
        "examples": ["a"],
        "exclusiveMinimum": 3,
        "prefixItems": [true],
        "nullable": true,
        "$id": "https://example.com/x",
    });
    let out = assemble_in(Dialect::V31, Mode::Input, s, json!({})).expect("ok");
    assert_eq!(
        out,
        json!({"type": ["string", "null"], "const": "a", "examples": ["a"],
               "exclusiveMinimum": 3, "prefixItems": [true]})
    );
}

#[test]
fn references_are_inlined_with_their_siblings() {
    let schemas = json!({
        "Pet": {"type": "object", "description": "A pet", "properties": {"name": {"type": "string"}}},
        "Alias": {"$ref": "#/components/schemas/Pet"},
    });
    // 3.1: siblings of $ref apply (annotations override).
    let out = assemble_in(
        Dialect::V31,
        Mode::Input,
        json!({"$ref": "#/components/schemas/Alias", "description": "Mine", "maxProperties": 3}),
        schemas.clone(),
    )
    .expect("ok");
    assert_eq!(
        out,
        json!({"type": "object", "description": "Mine", "properties": {"name": {"type": "string"}},
               "maxProperties": 3})
    );
    // 3.0: siblings ignored except description; nullable beside $ref is honoured.
    let out = assemble_in(
        Dialect::V30,
        Mode::Input,
        json!({"$ref": "#/components/schemas/Pet", "maxProperties": 3, "nullable": true}),
        schemas,
    )
    .expect("ok");
    assert_eq!(
        out,
        json!({"anyOf": [
            {"type": "object", "description": "A pet", "properties": {"name": {"type": "string"}}},
            {"type": "null"}
        ]})
    );
}

#[test]
fn read_only_and_write_only_properties_are_left_out_by_side() {
    let schemas = json!({"Id": {"type": "string", "readOnly": true}});
    let s = json!({
        "type": "object",
        "required": ["id", "ref", "secret", "name"],
        "properties": {
            "id": {"type": "integer", "readOnly": true},
            "ref": {"$ref": "#/components/schemas/Id"},
            "secret": {"type": "string", "writeOnly": true},
            "name": {"type": "string"},
        }
    });
    let input = assemble_in(Dialect::V30, Mode::Input, s.clone(), schemas.clone()).expect("ok");
    assert_eq!(input["required"], json!(["secret", "name"]));
    let names: Vec<&String> = input["properties"]
        .as_object()
        .expect("props")
        .keys()
        .collect();
    assert_eq!(names, ["secret", "name"]);
    let output = assemble_in(Dialect::V30, Mode::Output, s, schemas).expect("ok");
    assert_eq!(output["required"], json!(["id", "ref", "name"]));
}

#[test]
fn recursion_goes_to_defs() {
    let schemas = json!({
        "Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}},
    });
    let out = assemble_in(
        Dialect::V30,
        Mode::Output,
        json!({"$ref": "#/components/schemas/Node"}),
        schemas,
    )
    .expect("ok");
    assert_eq!(out["properties"]["next"], json!({"$ref": "#/$defs/Node"}));
    assert_eq!(
        out["$defs"]["Node"],
        json!({"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}})
    );
}

#[test]
fn node_budget_sends_the_rest_to_defs() {
    // 30 properties referencing a 1,000-node schema: inlining all would be 30,000 nodes.
    let big: serde_json::Map<String, Value> = (0..500)
        .map(|i| (format!("p{i}"), json!({"type": "string"})))
        .collect();
    let properties: serde_json::Map<String, Value> = (0..30)
        .map(|i| (format!("b{i}"), json!({"$ref": "#/components/schemas/Big"})))
        .collect();
    let out = assemble_in(
        Dialect::V30,
        Mode::Input,
        json!({"type": "object", "properties": properties}),
        json!({"Big": {"type": "object", "properties": big}}),
    )
    .expect("ok");
    let props = out["properties"].as_object().expect("props");
    assert!(
        props["b0"]["properties"].is_object(),
        "the first ones are inlined"
    );
    assert!(
        props["b29"] == json!({"$ref": "#/$defs/Big"}),
        "the last ones are not"
    );
    assert!(out["$defs"]["Big"]["properties"]["p0"].is_object());
    assert!(count_nodes(&out) < 2 * NODE_BUDGET);
}

#[test]
fn required_properties_left_out_by_all_of_parts_are_not_required() {
    // PagerDuty's CustomFieldsField: `required` beside an `allOf` whose part declares
    // some of the names readOnly; and the other way round, a part requiring a name that
    // another part declares readOnly.
    let schemas = json!({
        "Base": {"type": "object", "properties": {
            "id": {"type": "string", "readOnly": true},
            "secret": {"type": "string", "writeOnly": true},
            "name": {"type": "string"},
        }},
        "Field": {
            "allOf": [{"$ref": "#/components/schemas/Base"}],
            "required": ["id", "secret", "name"],
        },
        "Sibling": {
            "allOf": [
                {"$ref": "#/components/schemas/Base"},
                {"type": "object", "required": ["id", "name"]},
            ],
        },
    });
    let field = json!({"$ref": "#/components/schemas/Field"});
    let input = assemble_in(Dialect::V30, Mode::Input, field.clone(), schemas.clone());
    assert_eq!(input.expect("input")["required"], json!(["secret", "name"]));
    let output = assemble_in(Dialect::V30, Mode::Output, field, schemas.clone());
    assert_eq!(output.expect("output")["required"], json!(["id", "name"]));
    let sibling = json!({"$ref": "#/components/schemas/Sibling"});
    let input = assemble_in(Dialect::V30, Mode::Input, sibling, schemas).expect("input");
    assert_eq!(input["allOf"][1]["required"], json!(["name"]));
}

#[test]
fn text_budget_sends_the_rest_to_defs() {
    // Few nodes, much text: 40 references to a schema with a 16 KiB description would
    // inline 640 KiB (Argo's workflow schemas were 1.2 MB per tool under the node budget).
    let properties: serde_json::Map<String, Value> = (0..40)
        .map(|i| {
            (
                format!("b{i}"),
                json!({"$ref": "#/components/schemas/Long"}),
            )
        })
        .collect();
    let out = assemble_in(
        Dialect::V30,
        Mode::Input,
        json!({"type": "object", "properties": properties}),
        json!({"Long": {"type": "string", "description": "x".repeat(16 * 1024)}}),
    )
    .expect("ok");
    let props = out["properties"].as_object().expect("props");
    assert_eq!(props["b0"]["type"], "string", "the first ones are inlined");
    assert_eq!(
        props["b39"],
        json!({"$ref": "#/$defs/Long"}),
        "the last ones are not"
    );
    assert!(out.to_string().len() < 2 * TEXT_BUDGET);
}

#[test]
fn broken_schemas_fail_with_their_location() {
    let cases = [
        (
            json!({"$ref": "#/components/schemas/Missing"}),
            "points to nothing",
        ),
        (json!({"$ref": "#/components/schemas/Loop1"}), "circular"),
        (
            json!({"type": "object", "properties": {"a": 5}}),
            "#/s/properties/a",
        ),
        (json!({"$ref": "https://example.com/s.json"}), "remote $ref"),
    ];
    let schemas = json!({
        "Loop1": {"$ref": "#/components/schemas/Loop2"},
        "Loop2": {"$ref": "#/components/schemas/Loop1"},
    });
    for (s, expected) in cases {
        let e =
            assemble_in(Dialect::V30, Mode::Input, s.clone(), schemas.clone()).expect_err("broken");
        assert!(e.contains(expected), "{s}: {e}");
    }
}

#[test]
fn deep_nesting_fails_cleanly_instead_of_overflowing() {
    let mut s = json!({"type": "string"});
    // Deeper than any parser lets through (serde_json and the YAML loader stop at 128),
    // yet shallow enough for serde_json's own recursive clone and drop.
    for _ in 0..1_000 {
        s = json!({"type": "array", "items": s});
    }
    let e = assemble_in(Dialect::V31, Mode::Input, s, json!({})).expect_err("too deep");
    assert!(e.contains("nested deeper"), "{e}");
}

#[test]
fn long_chains_of_distinct_references_stay_shallow() {
    let schemas: serde_json::Map<String, Value> = (0..300)
        .map(|i| {
            let next = if i < 299 {
                json!({"$ref": format!("#/components/schemas/S{}", i + 1)})
            } else {
                json!({"type": "string"})
            };
            (
                format!("S{i}"),
                json!({"type": "object", "properties": {"n": next}}),
            )
        })
        .collect();
    let out = assemble_in(
        Dialect::V30,
        Mode::Input,
        json!({"$ref": "#/components/schemas/S0"}),
        Value::Object(schemas),
    )
    .expect("ok");
    assert!(out["$defs"].as_object().is_some_and(|d| !d.is_empty()));
}

#[test]
fn object_detection() {
    assert!(is_object_schema(&json!({"type": "object"})));
    assert!(is_object_schema(&json!({"properties": {}})));
    assert!(is_object_schema(
        &json!({"allOf": [{"type": "object"}, {"properties": {}}]})
    ));
    assert!(!is_object_schema(&json!({"type": ["object", "null"]})));
    assert!(!is_object_schema(&json!({"type": "array"})));
    assert!(!is_object_schema(&json!({"oneOf": [{"type": "object"}]})));
    assert!(!is_object_schema(&json!(true)));
}

#[test]
fn literal_braces_in_patterns_are_escaped_and_invalid_patterns_dropped() {
    let guid =
        "^(?:{[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}}|[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7})$";
    assert_eq!(
        escape_literal_braces(guid),
        "^(?:\\{[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7}\\}|[0-9a-fA-F]{4}(?:-?[0-9a-fA-F]{4}){7})$"
    );
    assert_eq!(
        escape_literal_braces("a{2,}b{,3}[{}]\\{x"),
        "a{2,}b\\{,3\\}[{}]\\{x"
    );
    let schema = v30(json!({"type": "object", "properties": {
        "guid": {"type": "string", "pattern": guid},
        "broken": {"type": "string", "pattern": "(unclosed"},
    }, "patternProperties": {"^{x}$": {"type": "string"}}}));
    assert_eq!(
        schema["properties"]["guid"]["pattern"],
        json!(escape_literal_braces(guid))
    );
    assert!(schema["properties"]["broken"].get("pattern").is_none());
    assert!(schema["patternProperties"].get("^\\{x\\}$").is_some());
    let validator = compile_schema(&schema).expect("compiles");
    let braced = "{0123-4567-89ab-cdef-0123-4567-89ab-cdef}";
    assert!(validator.is_valid(&json!({"guid": braced})));
    assert!(!validator.is_valid(&json!({"guid": "abc"})));
}

#[test]
fn discriminated_unions_select_by_the_discriminator_not_by_exclusive_match() {
    let schemas = json!({
        "Cat": {"type": "object", "required": ["kind"], "properties": {
            "kind": {"type": "string"}, "hunts": {"type": "boolean"}}},
        "Dog": {"type": "object", "required": ["kind"], "properties": {
            "kind": {"type": "string"}, "barks": {"type": "boolean"}}},
        "Fish": {"type": "object", "properties": {
            "kind": {"type": "string", "enum": ["fish"]}}},
    });
    let union = json!({
        "oneOf": [
            {"$ref": "#/components/schemas/Cat"},
            {"$ref": "#/components/schemas/Dog"},
            {"$ref": "#/components/schemas/Fish"},
        ],
        "discriminator": {"propertyName": "kind", "mapping": {
            "cat": "#/components/schemas/Cat", "kitten": "Cat"}},
    });
    let schema = assemble_in(Dialect::V30, Mode::Input, union, schemas).expect("translates");
    assert!(schema.get("oneOf").is_none(), "{schema}");
    let branches = schema["anyOf"].as_array().expect("anyOf");
    // Cat: the mapped values (a reference and a bare schema name) are enforced.
    assert_eq!(
        branches[0]["allOf"][1],
        json!({"properties": {"kind": {"enum": ["cat", "kitten"]}}})
    );
    // Dog: unmapped, its implicit value (the schema name) is shown, not enforced.
    assert_eq!(
        branches[1]["allOf"][1],
        json!({"properties": {"kind": {"examples": ["Dog"]}}})
    );
    // Fish: its own enum says what the value is.
    assert!(branches[2].get("allOf").is_none(), "{}", branches[2]);
    // The mapping's references point into the document: not kept.
    assert_eq!(schema["discriminator"], json!({"propertyName": "kind"}));

    let validator = compile_schema(&schema).expect("compiles");
    // Valid for both Cat's and Dog's shapes: a JSON Schema `oneOf` would reject it.
    assert!(validator.is_valid(&json!({"kind": "Dog", "barks": true})));
    assert!(validator.is_valid(&json!({"kind": "cat", "hunts": true})));
    assert!(validator.is_valid(&json!({"kind": "fish"})));
    assert!(!validator.is_valid(&json!({"kind": 5})));
}

#[test]
fn a_properties_map_written_as_a_reference_is_followed() {
    // DigitalOcean: `properties: {$ref: 'attributes.yml#/load_balancer_droplet_ids'}`.
    let schemas = json!({
        "Props": {
            "id": {"type": "integer", "readOnly": true},
            "name": {"$ref": "#/components/schemas/Name"},
        },
        "Name": {"type": "string", "minLength": 1},
    });
    let s = json!({
        "type": "object",
        "required": ["id", "name"],
        "properties": {"$ref": "#/components/schemas/Props"},
    });
    let out = assemble_in(Dialect::V30, Mode::Input, s.clone(), schemas.clone()).expect("ok");
    assert_eq!(
        out,
        json!({"type": "object", "required": ["name"],
               "properties": {"name": {"type": "string", "minLength": 1}}})
    );
    let broken = json!({"properties": {"$ref": "#/components/schemas/Absent"}});
    let e = assemble_in(Dialect::V30, Mode::Input, broken, schemas).expect_err("broken");
    assert!(
        e.contains("/properties") && e.contains("points to nothing"),
        "{e}"
    );
}
