//! OpenAPI schemas → JSON Schema 2020-12, in two steps:
//!
//! 1. *Translate* one schema location (a component, or a schema written inline in an
//!    operation): 3.0 dialect rewrites, keyword whitelist, `readOnly`/`writeOnly` removal.
//!    References are not followed but replaced by a marker naming the target location.
//!    Results are cached per location and mode, so a component used by a thousand
//!    operations is translated once.
//! 2. *Assemble* one tool schema: copy translated schemas, inlining markers, except a
//!    reference met while already expanding it (recursion), or once a node budget, a text
//!    budget or a nesting depth is exceeded: those become `#/$defs/<Name>` with the
//!    definition at the tool schema's top level. Definitions are built in a loop, not recursively, and
//!    refer to each other through `$defs`, so no document can overflow the stack or
//!    blow a schema up.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{Map, Value, json};

use super::refs::{DocId, DocSet, Located, escape_token, ref_of};

/// Key of the reference marker left by translation. A NUL byte cannot come from a sane
/// document, so data (`enum`, `default`...) never collides with it.
const REF_MARKER: &str = "\u{0}ref";
/// Deepest nesting translated in one schema location.
const MAX_SOURCE_DEPTH: usize = 96;
/// Past this nesting in an assembled schema, references go to `$defs` instead of inline.
const MAX_INLINE_DEPTH: usize = 48;
/// Past this many nodes in an assembled schema, references go to `$defs` instead of inline.
pub(crate) const NODE_BUDGET: usize = 20_000;
/// Past this many bytes of text (strings and keys) in an assembled schema, references go
/// to `$defs` instead of inline: nodes alone do not bound the size of documents whose
/// descriptions are long (a component inlined 20,000 times over was megabytes per tool).
pub(crate) const TEXT_BUDGET: usize = 256 * 1024;

/// Which side of the tool a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// Arguments: `readOnly` properties are left out.
    Input,
    /// `structuredContent`: `writeOnly` properties are left out.
    Output,
}

/// The schema dialect of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAPI 3.0: an extended subset of JSON Schema draft 5 (`nullable`, boolean
    /// `exclusiveMinimum`, `example`...).
    V30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    V31,
}

/// One translated schema location.
#[derive(Debug)]
pub(crate) struct Translated {
    schema: Value,
    nodes: usize,
    /// Bytes of its strings and keys.
    text: usize,
    /// Addresses of the nodes of `schema` that are or contain a reference marker. Every
    /// other subtree is copied with one `clone` (no per-key rehashing), which is most of
    /// the work of assembling large documents.
    /// (The root moves into this struct after marking, so its address is not in
    /// `marked`: this flag stands for it. Nodes below live on the heap and do not move.)
    marked: HashSet<usize>,
    root_marked: bool,
}

impl Translated {
    fn new(schema: Value) -> Self {
        let (nodes, text) = measure(&schema);
        let mut marked = HashSet::new();
        let root_marked = mark(&schema, &mut marked);
        Self {
            schema,
            nodes,
            text,
            marked,
            root_marked,
        }
    }

    /// Whether `node` (the root or a node below it) is or contains a marker.
    fn is_marked(&self, node: &Value) -> bool {
        if std::ptr::eq(node, &self.schema) {
            self.root_marked
        } else {
            self.marked.contains(&address(node))
        }
    }
}

/// Records the nodes of `value` that are or contain a marker; returns whether `value`
/// does. Recursion is bounded by the translation depth limit.
fn mark(value: &Value, marked: &mut HashSet<usize>) -> bool {
    let found = match value {
        Value::Object(map) => {
            let mut found = map.contains_key(REF_MARKER);
            for child in map.values() {
                found |= mark(child, marked);
            }
            found
        }
        Value::Array(items) => {
            let mut found = false;
            for child in items {
                found |= mark(child, marked);
            }
            found
        }
        _ => false,
    };
    if found {
        marked.insert(address(value));
    }
    found
}

fn address(value: &Value) -> usize {
    std::ptr::from_ref(value) as usize
}

/// A translation failure, with the path (innermost first) below the location translated.
struct Failure {
    reason: String,
    path: Vec<String>,
}

impl Failure {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            path: Vec::new(),
        }
    }
}

trait At<T> {
    fn at(self, segment: &str) -> Result<T, Failure>;
}

impl<T> At<T> for Result<T, Failure> {
    fn at(self, segment: &str) -> Result<T, Failure> {
        self.map_err(|mut f| {
            f.path.push(escape_token(segment));
            f
        })
    }
}

/// A finished output schema and its wrap key (set when the answer is not an object).
pub(crate) type OutputSchema = (Value, Option<Box<str>>);

/// Translation state shared by all operations of one document.
pub(crate) struct SchemaCtx<'d> {
    docs: &'d DocSet<'d>,
    dialect: Dialect,
    locations: Vec<(DocId, String)>,
    ids: HashMap<(DocId, String), usize>,
    cache: HashMap<(usize, Mode), Result<Rc<Translated>, String>>,
    /// Pattern as written → the form the validator accepts, if any.
    patterns: HashMap<String, Option<String>>,
    /// Finished output schemas (schema, wrap key) by location: many operations answer
    /// with the same component.
    pub(crate) outputs: HashMap<usize, Result<OutputSchema, String>>,
}

impl<'d> SchemaCtx<'d> {
    /// A context over `docs`, whose schemas follow `dialect`.
    pub(crate) fn new(docs: &'d DocSet<'d>, dialect: Dialect) -> Self {
        Self {
            docs,
            dialect,
            locations: Vec::new(),
            ids: HashMap::new(),
            cache: HashMap::new(),
            patterns: HashMap::new(),
            outputs: HashMap::new(),
        }
    }

    /// The id of the schema at `pointer` in `doc` (which must exist).
    pub(crate) fn location(&mut self, doc: DocId, pointer: &str) -> usize {
        if let Some(&id) = self.ids.get(&(doc, pointer.to_string())) {
            return id;
        }
        let id = self.locations.len();
        self.locations.push((doc, pointer.to_string()));
        self.ids.insert((doc, pointer.to_string()), id);
        id
    }

    /// The location a schema forwards to when it is only a `$ref` (so that schemas
    /// written as `{"$ref": X}` in many operations share results), else `id`.
    pub(crate) fn canonical(&mut self, id: usize) -> usize {
        let (doc, pointer) = &self.locations[id];
        let docs = self.docs;
        let doc = *doc;
        let Some(value) = docs.value(doc).pointer(pointer) else {
            return id;
        };
        match (ref_of(value), value.as_object().map(Map::len)) {
            (Some(reference), Some(1)) => self.resolve_schema_ref(doc, reference).unwrap_or(id),
            _ => id,
        }
    }

    /// The translation of location `id` for `mode`, computed once.
    fn translated(&mut self, id: usize, mode: Mode) -> Result<Rc<Translated>, String> {
        if let Some(done) = self.cache.get(&(id, mode)) {
            return done.clone();
        }
        let (doc, pointer) = self.locations[id].clone();
        let docs = self.docs;
        let result = match docs.value(doc).pointer(&pointer) {
            None => Err(format!("{} points to nothing", docs.display(doc, &pointer))),
            Some(value) => self
                .translate(doc, value, mode, 0)
                .map(|schema| Rc::new(Translated::new(schema)))
                .map_err(|f| {
                    let mut at = docs.display(doc, &pointer);
                    for segment in f.path.iter().rev() {
                        at.push('/');
                        at.push_str(segment);
                    }
                    format!("schema at {at}: {}", f.reason)
                }),
        };
        self.cache.insert((id, mode), result.clone());
        result
    }

    fn translate(
        &mut self,
        doc: DocId,
        value: &Value,
        mode: Mode,
        depth: usize,
    ) -> Result<Value, Failure> {
        if depth > MAX_SOURCE_DEPTH {
            return Err(Failure::new(format!(
                "nested deeper than {MAX_SOURCE_DEPTH} levels"
            )));
        }
        match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::Object(object) => self.translate_object(doc, object, mode, depth),
            other => Err(Failure::new(format!(
                "a schema must be an object or a boolean, found {}",
                kind(other)
            ))),
        }
    }

    fn translate_object(
        &mut self,
        doc: DocId,
        object: &Map<String, Value>,
        mode: Mode,
        depth: usize,
    ) -> Result<Value, Failure> {
        let reference = object.get("$ref").and_then(Value::as_str);
        let mut out = Map::new();
        let mut nullable = false;
        let mut exclusive_minimum = false;
        let mut exclusive_maximum = false;
        let mut example = None;
        let mut hidden: Vec<&str> = Vec::new();
        let v30 = self.dialect == Dialect::V30;
        for (key, value) in object {
            // In 3.0 a `$ref` replaces its object: siblings are ignored, except the
            // `description` and `nullable` that many documents put there anyway.
            if v30 && reference.is_some() && !matches!(key.as_str(), "description" | "nullable") {
                continue;
            }
            match key.as_str() {
                "properties" => {
                    let (doc, value) = self.members(doc, value).at(key)?;
                    let Value::Object(properties) = value else {
                        continue;
                    };
                    let visible: Vec<_> = properties
                        .iter()
                        .filter(|(name, schema)| {
                            let hide = self.is_hidden(doc, schema, mode);
                            if hide {
                                hidden.push(name.as_str());
                            }
                            !hide
                        })
                        .collect();
                    let translated = self.translate_members(doc, visible, mode, depth, key)?;
                    out.insert(key.clone(), translated);
                }
                "patternProperties" => {
                    let (doc, value) = self.members(doc, value).at(key)?;
                    let Value::Object(properties) = value else {
                        continue;
                    };
                    let usable: Vec<(String, &Value)> = properties
                        .iter()
                        .filter_map(|(pattern, schema)| {
                            Some((self.usable_pattern(pattern)?, schema))
                        })
                        .collect();
                    let members = usable.iter().map(|(p, schema)| (p, *schema)).collect();
                    let translated = self.translate_members(doc, members, mode, depth, key)?;
                    out.insert(key.clone(), translated);
                }
                "dependentSchemas" => {
                    let (doc, value) = self.members(doc, value).at(key)?;
                    let Value::Object(schemas) = value else {
                        continue;
                    };
                    let all: Vec<_> = schemas.iter().collect();
                    let translated = self.translate_members(doc, all, mode, depth, key)?;
                    out.insert(key.clone(), translated);
                }
                "items" if value.is_array() => {
                    // Draft-4 tuple form, invalid in 3.0 but met in the wild.
                    let items = self.translate_list(doc, value, mode, depth).at(key)?;
                    if let Some(items) = items {
                        out.insert("prefixItems".into(), items);
                    }
                }
                "items"
                | "additionalProperties"
                | "not"
                | "if"
                | "then"
                | "else"
                | "contains"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties"
                | "contentSchema"
                    if value.is_object() || value.is_boolean() =>
                {
                    let schema = self.translate(doc, value, mode, depth + 1).at(key)?;
                    out.insert(key.clone(), schema);
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                    if let Some(list) = self.translate_list(doc, value, mode, depth).at(key)? {
                        out.insert(key.clone(), list);
                    }
                }
                "type" => {
                    if let Some(types) = valid_type(value) {
                        out.insert(key.clone(), types);
                    }
                }
                "nullable" => nullable = v30 && value == &Value::Bool(true),
                "exclusiveMinimum" | "exclusiveMaximum" => match value {
                    Value::Bool(flag) if key == "exclusiveMinimum" => exclusive_minimum = *flag,
                    Value::Bool(flag) => exclusive_maximum = *flag,
                    Value::Number(_) => {
                        out.insert(key.clone(), value.clone());
                    }
                    _ => {}
                },
                "minimum" | "maximum" if value.is_number() => {
                    out.insert(key.clone(), value.clone());
                }
                "multipleOf" if value.as_f64().is_some_and(|n| n > 0.0) => {
                    out.insert(key.clone(), value.clone());
                }
                "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties"
                | "minProperties" | "maxContains" | "minContains" => {
                    if let Some(n) = non_negative_integer(value) {
                        out.insert(key.clone(), n.into());
                    }
                }
                "pattern" => {
                    if let Some(pattern) = value.as_str().and_then(|p| self.usable_pattern(p)) {
                        out.insert(key.clone(), pattern.into());
                    }
                }
                "required" => {
                    if let Value::Array(names) = value {
                        let mut seen = HashSet::new();
                        let names: Vec<Value> = names
                            .iter()
                            .filter_map(Value::as_str)
                            .filter(|n| seen.insert(*n))
                            .map(|n| Value::String(n.to_string()))
                            .collect();
                        out.insert(key.clone(), Value::Array(names));
                    }
                }
                "enum" | "examples" if value.is_array() => {
                    out.insert(key.clone(), value.clone());
                }
                "const" | "default" => {
                    out.insert(key.clone(), value.clone());
                }
                // `example: {$ref: '#/components/examples/X/value'}` (PagerDuty) is a
                // reference an OpenAPI example cannot be; copied, it would leave a `$ref`
                // that resolves to nothing in the tool schema.
                "example" if ref_of(value).is_none() => example = Some(value),
                "title" | "description" | "format" | "contentEncoding" | "contentMediaType"
                    if value.is_string() =>
                {
                    out.insert(key.clone(), value.clone());
                }
                "readOnly" | "writeOnly" | "deprecated" | "uniqueItems" if value.is_boolean() => {
                    out.insert(key.clone(), value.clone());
                }
                "discriminator" if value.is_object() => {
                    out.insert(key.clone(), value.clone());
                }
                "dependentRequired" => {
                    let valid = value.as_object().is_some_and(|m| {
                        m.values().all(|names| {
                            names
                                .as_array()
                                .is_some_and(|a| a.iter().all(Value::is_string))
                        })
                    });
                    if valid {
                        out.insert(key.clone(), value.clone());
                    }
                }
                // Everything else is dropped: `x-` extensions, OpenAPI-only keywords (`xml`,
                // `externalDocs`), `$id`/`$anchor`/`$schema` (they would change how the
                // rewritten references resolve), nested `$defs` (their references are
                // followed by location), and keywords unknown to 2020-12.
                _ => {}
            }
        }

        // Properties left out by the parts of an `allOf` are left out of the `required`
        // lists around them too: PagerDuty's CustomFieldsField requires `id`, `self` and
        // `created_at` beside an `allOf` whose part declares them readOnly; parts written
        // inline get the same treatment (references are shared translations: their own
        // lists stand).
        let mut hidden: Vec<String> = hidden.into_iter().map(str::to_string).collect();
        if let Some(parts) = object.get("allOf")
            && out.contains_key("allOf")
        {
            self.hidden_in_parts(doc, parts, mode, 0, &mut hidden);
        }
        if !hidden.is_empty() {
            let visible = |n: &Value| !n.as_str().is_some_and(|n| hidden.iter().any(|h| h == n));
            if let Some(Value::Array(required)) = out.get_mut("required") {
                required.retain(visible);
            }
            if let Some(Value::Array(parts)) = out.get_mut("allOf") {
                for part in parts {
                    if let Some(Value::Array(required)) = part.get_mut("required") {
                        required.retain(visible);
                    }
                }
            }
        }
        if let Some(example) = example
            && !out.contains_key("examples")
        {
            out.insert("examples".into(), Value::Array(vec![example.clone()]));
        }
        for (flag, bound, exclusive) in [
            (exclusive_minimum, "minimum", "exclusiveMinimum"),
            (exclusive_maximum, "maximum", "exclusiveMaximum"),
        ] {
            if flag && let Some(limit) = out.remove(bound) {
                out.insert(exclusive.into(), limit);
            }
        }
        if let Some(reference) = reference {
            let target = self.resolve_schema_ref(doc, reference)?;
            out.insert(REF_MARKER.into(), target.into());
        }
        if let Some(property) = object
            .get("discriminator")
            .and_then(|d| d.get("propertyName"))
            .and_then(Value::as_str)
        {
            let implicit = self.implicit_discriminator_values(doc, object, property);
            discriminate(object, property, &implicit, &mut out);
        }
        if nullable {
            return Ok(make_nullable(out));
        }
        Ok(Value::Object(out))
    }

    /// The value of a keyword that maps names to schemas, following a `$ref` written in
    /// its place (`properties: {$ref: 'attributes.yml#/x'}`, as DigitalOcean's split
    /// description does): not JSON Schema, but resolvers that replace every `$ref`
    /// accept it, and a property named `$ref` cannot be meant.
    fn members<'v>(&self, doc: DocId, value: &'v Value) -> Result<(DocId, &'v Value), Failure>
    where
        'd: 'v,
    {
        match (ref_of(value), value.as_object().map(Map::len)) {
            (Some(_), Some(1)) => {
                let start = Located {
                    doc,
                    pointer: String::new(),
                    value,
                };
                let target = self.docs.deref(start).map_err(Failure::new)?;
                Ok((target.doc, target.value))
            }
            _ => Ok((doc, value)),
        }
    }

    /// Translates the schemas of a keyword whose value maps names to schemas
    /// (`properties`, `patternProperties`, `dependentSchemas`), keeping `members`' order.
    fn translate_members(
        &mut self,
        doc: DocId,
        members: Vec<(&String, &Value)>,
        mode: Mode,
        depth: usize,
        key: &str,
    ) -> Result<Value, Failure> {
        let mut translated = Map::new();
        for (name, schema) in members {
            let schema = self
                .translate(doc, schema, mode, depth + 1)
                .at(name)
                .at(key)?;
            translated.insert(name.clone(), schema);
        }
        Ok(Value::Object(translated))
    }

    fn translate_list(
        &mut self,
        doc: DocId,
        value: &Value,
        mode: Mode,
        depth: usize,
    ) -> Result<Option<Value>, Failure> {
        let Value::Array(items) = value else {
            return Ok(None);
        };
        if items.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(
                self.translate(doc, item, mode, depth + 1)
                    .at(&i.to_string())?,
            );
        }
        Ok(Some(Value::Array(out)))
    }

    /// The location id of a schema reference, following pure alias chains (a reference
    /// whose target is only another reference) so that cycles of aliases are caught here.
    fn resolve_schema_ref(&mut self, doc: DocId, reference: &str) -> Result<usize, Failure> {
        let docs = self.docs;
        let mut target = docs.lookup(doc, reference).map_err(Failure::new)?;
        let mut seen = HashSet::new();
        while let Some(next) = self.alias_of(target.value) {
            if !seen.insert((target.doc, target.pointer.clone())) {
                return Err(Failure::new(format!(
                    "$ref '{reference}' is a circular chain of references"
                )));
            }
            target = docs.lookup(target.doc, next).map_err(Failure::new)?;
        }
        Ok(self.location(target.doc, &target.pointer))
    }

    /// The reference a schema only forwards to (3.0: any `$ref`; 3.1: a `$ref` alone).
    fn alias_of<'v>(&self, schema: &'v Value) -> Option<&'v str> {
        let reference = ref_of(schema)?;
        match self.dialect {
            Dialect::V30 => Some(reference),
            Dialect::V31 => (schema.as_object()?.len() == 1).then_some(reference),
        }
    }

    /// Adds to `names` the properties that the `allOf` parts `parts` (and their own
    /// `allOf` parts, through references) leave out in `mode`.
    fn hidden_in_parts(
        &self,
        doc: DocId,
        parts: &Value,
        mode: Mode,
        depth: usize,
        names: &mut Vec<String>,
    ) {
        let Some(parts) = parts.as_array() else {
            return;
        };
        if depth > MAX_INLINE_DEPTH {
            return;
        }
        for part in parts {
            let start = Located {
                doc,
                pointer: String::new(),
                value: part,
            };
            let Ok(part) = self.docs.deref(start) else {
                continue;
            };
            if let Some(properties) = part.value.get("properties")
                && let Ok((doc, Value::Object(properties))) = self.members(part.doc, properties)
            {
                for (name, schema) in properties {
                    if self.is_hidden(doc, schema, mode) && !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
            if let Some(nested) = part.value.get("allOf") {
                self.hidden_in_parts(part.doc, nested, mode, depth + 1, names);
            }
        }
    }

    /// Whether a property schema is left out in `mode` (`readOnly` in input, `writeOnly`
    /// in output), looking through references.
    fn is_hidden(&self, doc: DocId, schema: &Value, mode: Mode) -> bool {
        let keyword = match mode {
            Mode::Input => "readOnly",
            Mode::Output => "writeOnly",
        };
        if schema.get(keyword) == Some(&Value::Bool(true)) {
            return true;
        }
        if ref_of(schema).is_none() {
            return false;
        }
        let start = Located {
            doc,
            pointer: String::new(),
            value: schema,
        };
        self.docs
            .deref(start)
            .is_ok_and(|t| t.value.get(keyword) == Some(&Value::Bool(true)))
    }

    /// Per branch of a discriminated `oneOf`/`anyOf` in `object`: the implicit
    /// discriminator value (the schema name of a `$ref` branch), unless the branch's own
    /// `property` schema has an `enum` or `const`, which then says what the values are.
    fn implicit_discriminator_values(
        &self,
        doc: DocId,
        object: &Map<String, Value>,
        property: &str,
    ) -> Vec<Option<String>> {
        let branches = object
            .get("oneOf")
            .or_else(|| object.get("anyOf"))
            .and_then(Value::as_array);
        let Some(branches) = branches else {
            return Vec::new();
        };
        branches
            .iter()
            .map(|branch| {
                let reference = branch.get("$ref").and_then(Value::as_str)?;
                let target = self.docs.lookup(doc, reference).ok()?;
                let own = target.value.get("properties").and_then(|p| p.get(property));
                if own.is_some_and(|p| p.get("enum").is_some() || p.get("const").is_some()) {
                    return None;
                }
                reference.rsplit('/').next().map(str::to_string)
            })
            .collect()
    }

    /// `pattern` in a form the validator accepts: as written, or with the literal braces
    /// that ECMA-262's web-compatibility grammar (Annex B) allows escaped; `None` when
    /// neither compiles (an invalid regex would make the whole tool schema fail, so such a
    /// pattern is dropped). Checked once per pattern.
    fn usable_pattern(&mut self, pattern: &str) -> Option<String> {
        if let Some(done) = self.patterns.get(pattern) {
            return done.clone();
        }
        let compiles = |p: &str| crate::catalog::compile_schema(&json!({ "pattern": p })).is_ok();
        let usable = if compiles(pattern) {
            Some(pattern.to_string())
        } else {
            Some(escape_literal_braces(pattern)).filter(|p| p != pattern && compiles(p))
        };
        self.patterns.insert(pattern.to_string(), usable.clone());
        usable
    }
}

/// Expresses a `discriminator` in JSON Schema terms, on the translated schema `out` of
/// `source`. OpenAPI selects the branch of a discriminated `oneOf` by the discriminating
/// property, whereas JSON Schema's `oneOf` demands that exactly one branch validate, which
/// rejects valid values whenever branches overlap (open objects usually do): the branches
/// become an `anyOf`. Each branch that the explicit `mapping` names gets the mapped values
/// as an `enum` of the property; an unmapped branch stays open (many documents rely on
/// values that are not schema names) and shows its implicit value, the schema name, as an
/// example when its own property has no `enum` or `const`. The `mapping`, whose references
/// point into the source document, is dropped from the annotation.
fn discriminate(
    source: &Map<String, Value>,
    property: &str,
    implicit: &[Option<String>],
    out: &mut Map<String, Value>,
) {
    let key = match (out.contains_key("oneOf"), out.contains_key("anyOf")) {
        (true, false) => {
            let branches = out.remove("oneOf").unwrap_or_default();
            out.insert("anyOf".into(), branches);
            "oneOf"
        }
        (false, true) => "anyOf",
        _ => return,
    };
    let mapping = source
        .get("discriminator")
        .and_then(|d| d.get("mapping"))
        .and_then(Value::as_object);
    if let Some(Value::Object(annotation)) = out.get_mut("discriminator") {
        annotation.remove("mapping");
    }
    let Some(Value::Array(sources)) = source.get(key) else {
        return;
    };
    let Some(Value::Array(branches)) = out.get_mut("anyOf") else {
        return;
    };
    let empty = Map::new();
    let mapping = mapping.unwrap_or(&empty);
    // A mapping target is a reference or a bare schema name.
    let names = |target: &str, reference: &str| {
        target == reference
            || (!target.contains('/') && reference.rsplit('/').next() == Some(target))
    };
    for ((branch, source), implicit) in branches.iter_mut().zip(sources).zip(implicit) {
        let Some(reference) = source.get("$ref").and_then(Value::as_str) else {
            continue;
        };
        let values: Vec<Value> = mapping
            .iter()
            .filter(|(_, target)| target.as_str().is_some_and(|t| names(t, reference)))
            .map(|(value, _)| Value::String(value.clone()))
            .collect();
        let selector = if !values.is_empty() {
            json!({ "properties": { property: { "enum": values } } })
        } else if let Some(name) = implicit {
            // The implicit value (the schema name) is shown, not enforced.
            json!({ "properties": { property: { "examples": [name] } } })
        } else {
            continue;
        };
        *branch = json!({ "allOf": [branch.take(), selector] });
    }
}

/// Escapes the `{` and `}` of `pattern` that are not part of a `{n}`, `{n,}` or `{n,m}`
/// quantifier, outside character classes: ECMA-262 (Annex B) and most engines read them as
/// literal characters (`^{[0-9a-f]{4}}$`), Rust's regex engines reject them.
fn escape_literal_braces(pattern: &str) -> String {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    // The end (exclusive) of the quantifier that starts at `start`, if one does.
    let quantifier = |start: usize| -> Option<usize> {
        let rest = &pattern[start + 1..];
        let close = rest.find('}')?;
        let inner = &rest[..close];
        let (low, high) = inner.split_once(',').unwrap_or((inner, "0"));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        (!low.is_empty() && digits(low) && digits(high)).then_some(start + 1 + close + 1)
    };
    while i < bytes.len() {
        let c = pattern[i..].chars().next().unwrap_or_default();
        match c {
            '\\' => {
                let escaped = pattern[i + 1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&pattern[i..i + 1 + escaped]);
                i += 1 + escaped;
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => {
                if let Some(end) = quantifier(i) {
                    out.push_str(&pattern[i..end]);
                    i = end;
                    continue;
                }
                out.push_str("\\{");
                i += 1;
                continue;
            }
            '}' if !in_class => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Builds one tool schema (an input or an output schema) from translated locations,
/// collecting the `$defs` it needs.
pub(crate) struct Assembler {
    mode: Mode,
    /// Location id → definition name, for every location sent to `$defs`.
    def_names: HashMap<usize, String>,
    used_names: HashSet<String>,
    /// Locations sent to `$defs`, in order of first use; built by [`Assembler::finish`].
    pending: Vec<usize>,
    defs: Vec<(String, Value)>,
    expanding: Vec<usize>,
    nodes: usize,
    text: usize,
    /// Set while building definitions: every reference goes to `$defs`.
    flat: bool,
}

impl Assembler {
    /// An assembler for one schema of the given side.
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            def_names: HashMap::new(),
            used_names: HashSet::new(),
            pending: Vec::new(),
            defs: Vec::new(),
            expanding: Vec::new(),
            nodes: 0,
            text: 0,
            flat: false,
        }
    }

    /// The schema at location `id`, with references inlined or sent to `$defs`.
    pub(crate) fn schema(&mut self, ctx: &mut SchemaCtx<'_>, id: usize) -> Result<Value, String> {
        self.reference(ctx, id, 0)
    }

    /// Builds the pending definitions and stores them as `$defs` in `root`.
    pub(crate) fn finish(
        mut self,
        ctx: &mut SchemaCtx<'_>,
        root: &mut Map<String, Value>,
    ) -> Result<(), String> {
        // Definitions are flat: their own references always point to `$defs`. Inlining
        // there would copy long reference chains once per definition (a cycle through
        // 200 schemas would cost 200 × chain), while flat definitions bound a tool
        // schema by the size of the components it reaches. Building one may ask for
        // more: a loop, not recursion.
        self.flat = true;
        let mut next = 0;
        while let Some(&id) = self.pending.get(next) {
            next += 1;
            let name = self.def_names[&id].clone();
            let translated = ctx.translated(id, self.mode)?;
            let schema = self.expand(ctx, &translated, &translated.schema, 1)?;
            self.defs.push((name, schema));
        }
        if !self.defs.is_empty() {
            let defs: Map<String, Value> = self.defs.into_iter().collect();
            root.insert("$defs".into(), Value::Object(defs));
        }
        Ok(())
    }

    fn reference(
        &mut self,
        ctx: &mut SchemaCtx<'_>,
        id: usize,
        depth: usize,
    ) -> Result<Value, String> {
        if self.flat
            || self.def_names.contains_key(&id)
            || self.expanding.contains(&id)
            || self.nodes > NODE_BUDGET
            || self.text > TEXT_BUDGET
            || depth > MAX_INLINE_DEPTH
        {
            let name = self.def_name(ctx, id);
            return Ok(json!({ "$ref": format!("#/$defs/{name}") }));
        }
        let translated = ctx.translated(id, self.mode)?;
        self.nodes += translated.nodes;
        self.text += translated.text;
        self.expanding.push(id);
        let result = self.expand(ctx, &translated, &translated.schema, depth + 1);
        self.expanding.pop();
        result
    }

    /// Copies `value`, a node of `within`, expanding its markers.
    fn expand(
        &mut self,
        ctx: &mut SchemaCtx<'_>,
        within: &Translated,
        value: &Value,
        depth: usize,
    ) -> Result<Value, String> {
        if !within.is_marked(value) {
            return Ok(value.clone());
        }
        match value {
            Value::Object(map) => {
                let marker = map.get(REF_MARKER).and_then(Value::as_u64);
                let mut out = Map::with_capacity(map.len());
                for (key, child) in map {
                    if key != REF_MARKER {
                        out.insert(key.clone(), self.expand(ctx, within, child, depth + 1)?);
                    }
                }
                match marker {
                    None => Ok(Value::Object(out)),
                    Some(id) => {
                        let id = usize::try_from(id).map_err(|_| "bad marker".to_string())?;
                        let target = self.reference(ctx, id, depth)?;
                        Ok(merge_siblings(target, out))
                    }
                }
            }
            Value::Array(items) => items
                .iter()
                .map(|item| self.expand(ctx, within, item, depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            scalar => Ok(scalar.clone()),
        }
    }

    /// The `$defs` name of location `id`, allocating it (and scheduling the definition)
    /// on first use: the last pointer token, made URI-safe and unique.
    fn def_name(&mut self, ctx: &SchemaCtx<'_>, id: usize) -> String {
        if let Some(name) = self.def_names.get(&id) {
            return name.clone();
        }
        let pointer = &ctx.locations[id].1;
        let last = pointer.rsplit('/').next().unwrap_or_default();
        let last = last.replace("~1", "/").replace("~0", "~");
        let mut base = crate::catalog::sanitize(&last);
        if base.is_empty() {
            base = "schema".into();
        }
        let mut name = base.clone();
        let mut n = 2;
        while !self.used_names.insert(name.clone()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.def_names.insert(id, name.clone());
        self.pending.push(id);
        name
    }
}

/// Combines an expanded reference target with the keywords written beside the reference.
fn merge_siblings(target: Value, siblings: Map<String, Value>) -> Value {
    if siblings.is_empty() {
        return target;
    }
    match target {
        Value::Object(mut map) => {
            // Annotations beside a reference refine the target's; anything else that
            // collides must hold as well, which `allOf` expresses.
            let conflict = siblings.keys().any(|k| {
                map.contains_key(k)
                    && !matches!(
                        k.as_str(),
                        "description" | "title" | "default" | "examples" | "deprecated"
                    )
            });
            if conflict {
                json!({ "allOf": [Value::Object(map), Value::Object(siblings)] })
            } else {
                map.extend(siblings);
                Value::Object(map)
            }
        }
        other => json!({ "allOf": [other, Value::Object(siblings)] }),
    }
}

/// 3.0 `nullable: true` in 2020-12 terms.
fn make_nullable(mut out: Map<String, Value>) -> Value {
    let composite = ["allOf", "anyOf", "oneOf", "not", REF_MARKER]
        .iter()
        .any(|k| out.contains_key(*k));
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    if !composite {
        let has_enum = out.contains_key("enum");
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), json!([t, "null"]));
                return Value::Object(out);
            }
            Some(Value::Array(types)) => {
                if !types.contains(&json!("null")) {
                    types.push(json!("null"));
                }
                return Value::Object(out);
            }
            _ if has_enum => return Value::Object(out),
            _ => {}
        }
    }
    let only_annotations = out
        .keys()
        .all(|k| matches!(k.as_str(), "description" | "title" | "default" | "examples"));
    if only_annotations {
        // Already accepts null.
        return Value::Object(out);
    }
    json!({ "anyOf": [Value::Object(out), { "type": "null" }] })
}

/// `type` as 2020-12 accepts it, or `None` when it is unusable (then dropped).
fn valid_type(value: &Value) -> Option<Value> {
    const TYPES: [&str; 7] = [
        "null", "boolean", "object", "array", "number", "string", "integer",
    ];
    match value {
        Value::String(t) if TYPES.contains(&t.as_str()) => Some(value.clone()),
        Value::Array(list) => {
            let mut seen = Vec::new();
            for t in list {
                let t = t.as_str().filter(|t| TYPES.contains(t))?;
                if !seen.contains(&t) {
                    seen.push(t);
                }
            }
            (!seen.is_empty()).then(|| json!(seen))
        }
        _ => None,
    }
}

fn non_negative_integer(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
            .map(|f| f as u64)
    })
}

/// Number of JSON values in `value`, counted without recursion.
#[cfg(test)]
fn count_nodes(value: &Value) -> usize {
    measure(value).0
}

/// Number of JSON values in `value` and bytes of its strings and keys, counted without
/// recursion.
fn measure(value: &Value) -> (usize, usize) {
    let (mut count, mut text) = (0, 0);
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        match v {
            Value::Object(map) => {
                text += map.keys().map(String::len).sum::<usize>();
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            Value::String(s) => text += s.len(),
            _ => {}
        }
    }
    (count, text)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether an assembled schema describes only JSON objects (so its properties can stand
/// at the top level of a tool schema).
pub(crate) fn is_object_schema(schema: &Value) -> bool {
    let Some(map) = schema.as_object() else {
        return false;
    };
    match map.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types == &[json!("object")],
        Some(_) => false,
        None => {
            if let Some(Value::Array(parts)) = map.get("allOf") {
                return parts.iter().any(is_object_schema)
                    && !map.contains_key("anyOf")
                    && !map.contains_key("oneOf");
            }
            map.contains_key("properties")
                && !["anyOf", "oneOf", "not", "$ref", "if"]
                    .iter()
                    .any(|k| map.contains_key(*k))
        }
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
