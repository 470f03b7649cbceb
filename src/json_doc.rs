//! A JSON document read in place, for validating an upstream answer against a tool's
//! compiled output schema (`jsonschema::options_for::<Doc>()`) without building a
//! `serde_json::Value`: strings and keys without escapes are borrowed from the input, and an
//! object is a vector of its members. With the `preserve_order` feature a `Value` object is
//! an `IndexMap` that allocates every key and hashes it with SipHash; this costs a fraction
//! of that, with the same semantics: the same parser (so the same syntax errors and nesting
//! limit), numbers as `serde_json::Number`, and a repeated key keeps its first place and its
//! last value, as in a `Value`.

use std::borrow::Cow;
use std::fmt;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, Node, NodeIdentity, Object};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The representation, for `jsonschema::options_for::<Doc>()`.
pub struct Doc;

/// One value of a document borrowed from `'s`.
#[derive(Debug, Clone, PartialEq)]
pub enum DocValue<'s> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'s, str>),
    Array(Vec<DocValue<'s>>),
    Object(Members<'s>),
}

/// The members of an object, in document order, keys distinct.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Members<'s> {
    entries: Vec<(Cow<'s, str>, DocValue<'s>)>,
    /// For an object of more than [`SCAN`] members: the indices of `entries` ordered by key,
    /// for lookups by binary search; empty otherwise (lookups scan).
    sorted: Vec<u32>,
}

/// Objects up to this many members are searched by scanning.
const SCAN: usize = 16;

/// The key under which `serde_json` (`arbitrary_precision`) hands a number to a visitor: a
/// one-member map whose value is the number's text (what `Value` reads the same way).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'s> DocValue<'s> {
    /// Parses a JSON text.
    pub fn parse(bytes: &'s [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Parses a JSON text.
    pub fn parse_str(text: &'s str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// `{"<key>": value}`.
    pub fn wrapped(key: &'s str, value: Self) -> Self {
        DocValue::Object(Members {
            entries: vec![(Cow::Borrowed(key), value)],
            sorted: Vec::new(),
        })
    }

    /// The same value as a `serde_json::Value` (for error reports and comparisons).
    pub fn to_json(&self) -> Value {
        match self {
            DocValue::Null => Value::Null,
            DocValue::Bool(b) => Value::Bool(*b),
            DocValue::Number(n) => Value::Number(n.clone()),
            DocValue::String(s) => Value::String(s.to_string()),
            DocValue::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            DocValue::Object(members) => Value::Object(
                members
                    .entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl<'s> Members<'s> {
    fn new(mut entries: Vec<(Cow<'s, str>, DocValue<'s>)>) -> Self {
        let n = entries.len();
        if n <= SCAN {
            let repeated = (1..n).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0));
            if !repeated {
                return Self {
                    entries,
                    sorted: Vec::new(),
                };
            }
        }
        let mut sorted = sort_by_key(&entries);
        if sorted
            .windows(2)
            .any(|w| entries[w[0] as usize].0 == entries[w[1] as usize].0)
        {
            dedupe(&mut entries, &sorted);
            sorted = if entries.len() > SCAN {
                sort_by_key(&entries)
            } else {
                Vec::new()
            };
        }
        Self { entries, sorted }
    }

    fn find(&self, key: &str) -> Option<&DocValue<'s>> {
        if self.sorted.is_empty() {
            return self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        }
        self.sorted
            .binary_search_by(|&i| (*self.entries[i as usize].0).cmp(key))
            .ok()
            .map(|at| &self.entries[self.sorted[at] as usize].1)
    }
}

/// The indices of `entries` ordered by key (stable: equal keys in document order).
fn sort_by_key(entries: &[(Cow<'_, str>, DocValue<'_>)]) -> Vec<u32> {
    let mut sorted: Vec<u32> = (0..entries.len() as u32).collect();
    sorted.sort_by(|&a, &b| entries[a as usize].0.cmp(&entries[b as usize].0));
    sorted
}

/// Merges repeated keys as a `serde_json::Map` does: the first occurrence keeps its place and
/// takes the last one's value.
fn dedupe(entries: &mut Vec<(Cow<'_, str>, DocValue<'_>)>, sorted: &[u32]) {
    let mut dropped = vec![false; entries.len()];
    let mut swaps = Vec::new();
    for group in sorted.chunk_by(|&a, &b| entries[a as usize].0 == entries[b as usize].0) {
        if let [first, .., last] = group {
            swaps.push((*first as usize, *last as usize));
            for &i in &group[1..] {
                dropped[i as usize] = true;
            }
        }
    }
    // Same key: swapping the members moves the last value to the first place.
    for (first, last) in swaps {
        entries.swap(first, last);
    }
    let mut i = 0;
    entries.retain(|_| {
        let keep = !dropped[i];
        i += 1;
        keep
    });
}

impl<'de> Deserialize<'de> for DocValue<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = DocValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(DocValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(DocValue::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(DocValue::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(DocValue::Null, DocValue::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(DocValue::String(Cow::Owned(v.to_owned())))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(DocValue::String(Cow::Borrowed(v)))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(DocValue::String(Cow::Owned(v)))
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(DocValue::Null)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(DocValue::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        DocValue::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(DocValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(first) = map.next_key_seed(KeySeed)? else {
            return Ok(DocValue::Object(Members::default()));
        };
        if first == NUMBER_TOKEN {
            let text: String = map.next_value()?;
            return text
                .parse::<serde_json::Number>()
                .map(DocValue::Number)
                .map_err(de::Error::custom);
        }
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4).clamp(1, 64));
        entries.push((first, map.next_value()?));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value()?));
        }
        Ok(DocValue::Object(Members::new(entries)))
    }
}

/// An object key, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl Json for Doc {
    type Node<'a> = &'a DocValue<'a>;
    type PreparedKey = String;
    type StringBuffer = ();

    // Lookups in an object of up to `SCAN` members scan it, as a members pass does.
    const KEYS_PER_LOOKUP: usize = 2;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(Self::Node<'_>) -> T) -> T {
        f(&DocValue::String(Cow::Borrowed(string)))
    }
}

impl<'a> Node<'a, Doc> for &'a DocValue<'a> {
    type Object = &'a Members<'a>;
    type Array = &'a [DocValue<'a>];
    type Number = &'a serde_json::Number;

    fn as_object(&self) -> Option<&'a Members<'a>> {
        match self {
            DocValue::Object(members) => Some(members),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&'a [DocValue<'a>]> {
        match self {
            DocValue::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            DocValue::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a serde_json::Number> {
        match self {
            DocValue::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self {
            DocValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, DocValue::Null)
    }

    fn json_type(&self) -> JsonType {
        match self {
            DocValue::Null => JsonType::Null,
            DocValue::Bool(_) => JsonType::Boolean,
            DocValue::Number(_) => JsonType::Number,
            DocValue::String(_) => JsonType::String,
            DocValue::Array(_) => JsonType::Array,
            DocValue::Object(_) => JsonType::Object,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        match (self, expected) {
            (DocValue::Null, _) => expected.is_null(),
            (DocValue::Bool(b), _) => expected.as_bool() == Some(*b),
            (DocValue::String(s), _) => expected.as_str() == Some(s.as_ref()),
            _ => jsonschema::json::cmp::equal(&self.to_json(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.to_json())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<DocValue<'_>>(*self) as usize
        ))
    }
}

/// The members of an object in document order.
pub struct MembersIter<'a>(std::slice::Iter<'a, (Cow<'a, str>, DocValue<'a>)>);

impl<'a> Iterator for MembersIter<'a> {
    type Item = (&'a str, &'a DocValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> Object<'a, Doc> for &'a Members<'a> {
    type Node = &'a DocValue<'a>;
    type MemberName = &'a str;
    type MembersIter = MembersIter<'a>;

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, key: &String) -> Option<&'a DocValue<'a>> {
        self.find(key)
    }

    fn members(&self) -> MembersIter<'a> {
        MembersIter(self.entries.iter())
    }
}

impl<'a> Array<'a, Doc> for &'a [DocValue<'a>] {
    type Node = &'a DocValue<'a>;
    type ElementsIter = std::slice::Iter<'a, DocValue<'a>>;

    fn len(&self) -> usize {
        <[DocValue<'a>]>::len(self)
    }

    fn elements(&self) -> std::slice::Iter<'a, DocValue<'a>> {
        (*self).iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> DocValue<'_> {
        DocValue::parse_str(text).expect("valid JSON")
    }

    #[test]
    fn reads_back_what_a_value_reads() {
        for text in [
            r#"{"a":1,"b":[true,null,"x\n",2.5e3,-7,123456789012345678901234567890],"c":{"d":"é"}}"#,
            r#"[]"#,
            r#"{}"#,
            r#""plain""#,
            r#"0.1"#,
            r#"{"k":{"k":{"k":[{"k":1}]}}}"#,
            r#"{"$serde_json::private::Number":"12"}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse(text).to_json(), value, "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let doc = parse(r#"{"name":"plain","esc":"a\"b"}"#);
        let DocValue::Object(members) = &doc else {
            panic!("object")
        };
        assert!(matches!(&members.entries[0].0, Cow::Borrowed("name")));
        assert!(matches!(
            &members.entries[0].1,
            DocValue::String(Cow::Borrowed("plain"))
        ));
        assert!(matches!(
            &members.entries[1].1,
            DocValue::String(Cow::Owned(_))
        ));
    }

    #[test]
    fn repeated_keys_keep_the_first_place_and_the_last_value() {
        let small = r#"{"a":1,"b":2,"a":3,"c":4,"a":5}"#;
        assert_eq!(
            parse(small).to_json(),
            serde_json::from_str::<Value>(small).unwrap()
        );
        let mut big = String::from("{");
        for i in 0..40 {
            big.push_str(&format!("\"k{}\":{i},", i % 25));
        }
        big.push_str("\"last\":true}");
        let doc = parse(&big);
        let value: Value = serde_json::from_str(&big).unwrap();
        assert_eq!(doc.to_json(), value);
        let DocValue::Object(members) = &doc else {
            panic!("object")
        };
        assert_eq!(members.entries.len(), 26);
        for (k, v) in value.as_object().unwrap() {
            assert_eq!(members.find(k).map(DocValue::to_json).as_ref(), Some(v));
        }
        assert!(members.find("k25").is_none());
    }

    #[test]
    fn syntax_errors_are_those_of_a_value() {
        for text in [r#"{"a":}"#, "[1,2", "nul", r#"{"a":1} x"#, ""] {
            let ours = DocValue::parse_str(text).unwrap_err().to_string();
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{text}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(
            DocValue::parse_str(&deep).unwrap_err().to_string(),
            serde_json::from_str::<Value>(&deep)
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn validates_as_a_value_does() {
        let schema = json!({
            "type": "object",
            "required": ["id", "tags"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "name": {"type": "string", "minLength": 2, "pattern": "^[a-z]+$"},
                "kind": {"enum": ["cat", "dog", 3]},
                "exact": {"const": {"a": [1, 2.0]}},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "nested": {"$ref": "#/$defs/Nested"},
            },
            "propertyNames": {"maxLength": 8},
            "additionalProperties": {"type": ["number", "null"]},
            "$defs": {"Nested": {"type": "object", "properties": {"x": {"type": "number", "multipleOf": 0.5}}}}
        });
        let ours = jsonschema::options_for::<Doc>()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(&schema)
            .unwrap();
        let theirs = jsonschema::draft202012::options()
            .should_validate_formats(false)
            .build(&schema)
            .unwrap();
        for text in [
            r#"{"id":1,"tags":[]}"#,
            r#"{"id":0,"tags":[]}"#,
            r#"{"id":1.0,"tags":["a","b"]}"#,
            r#"{"id":1,"tags":["a","a"]}"#,
            r#"{"id":1,"tags":[1]}"#,
            r#"{"id":"1","tags":[]}"#,
            r#"{"tags":[]}"#,
            r#"{"id":1,"tags":[],"name":"ab"}"#,
            r#"{"id":1,"tags":[],"name":"a"}"#,
            r#"{"id":1,"tags":[],"name":"AB"}"#,
            r#"{"id":1,"tags":[],"kind":"cat"}"#,
            r#"{"id":1,"tags":[],"kind":3.0}"#,
            r#"{"id":1,"tags":[],"kind":"cow"}"#,
            r#"{"id":1,"tags":[],"exact":{"a":[1.0,2]}}"#,
            r#"{"id":1,"tags":[],"exact":{"a":[1,3]}}"#,
            r#"{"id":1,"tags":[],"extra":2}"#,
            r#"{"id":1,"tags":[],"extra":"no"}"#,
            r#"{"id":1,"tags":[],"toolongname":null}"#,
            r#"{"id":1,"tags":[],"nested":{"x":1.5}}"#,
            r#"{"id":1,"tags":[],"nested":{"x":1.25}}"#,
            r#"{"id":1,"tags":[],"id":"dup"}"#,
            r#"[1]"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let doc = parse(text);
            assert_eq!(ours.is_valid(&doc), theirs.is_valid(&value), "{text}");
            let ours_errors: Vec<String> = ours
                .iter_errors(&doc)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            let theirs_errors: Vec<String> = theirs
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert_eq!(ours_errors, theirs_errors, "{text}");
        }
    }
}
