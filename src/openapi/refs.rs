//! `$ref` resolution: the documents of one conversion (the main one plus the files its
//! relative references name, loaded once up front) and JSON-pointer lookup across them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Index of a document in a [`DocSet`]; 0 is the main document.
pub(crate) type DocId = usize;

/// Most `$ref` hops followed from one place before giving up (alias chains).
const MAX_REF_HOPS: usize = 32;
/// Most external files loaded for one document. Split documents reach thousands of small
/// files: DigitalOcean's loads about 2,900 (1,500 without its code samples).
const MAX_EXTERNAL_FILES: usize = 10_000;
/// Most bytes of external files loaded for one document, all together.
const MAX_EXTERNAL_BYTES: u64 = 256 * 1024 * 1024;

/// A value found by following a reference: where it is and what it is.
#[derive(Debug, Clone)]
pub(crate) struct Located<'a> {
    /// The document holding the value (relative references inside it resolve from there).
    pub doc: DocId,
    /// JSON pointer of the value in its document (without the leading `#`).
    pub pointer: String,
    /// The value.
    pub value: &'a Value,
}

impl<'a> Located<'a> {
    /// The member `key` of this object, if present.
    pub(crate) fn child(&self, key: &str) -> Option<Located<'a>> {
        let value = self.value.as_object()?.get(key)?;
        Some(Located {
            doc: self.doc,
            pointer: format!("{}/{}", self.pointer, escape_token(key)),
            value,
        })
    }

    /// The element `index` of this array, if present.
    pub(crate) fn index(&self, index: usize) -> Option<Located<'a>> {
        let value = self.value.as_array()?.get(index)?;
        Some(Located {
            doc: self.doc,
            pointer: format!("{}/{index}", self.pointer),
            value,
        })
    }
}

/// The main document and every file reachable from it through relative `$ref`s.
pub(crate) struct DocSet<'a> {
    main: &'a Value,
    paths: Vec<PathBuf>,
    others: Vec<Value>,
    /// Canonical path → loaded document, or why it could not be loaded.
    by_path: HashMap<PathBuf, Result<DocId, String>>,
}

impl<'a> DocSet<'a> {
    /// Builds the set for `main` (read from `file`), loading every file that relative
    /// references name, transitively. Files that cannot be loaded are remembered with the
    /// reason: only the operations that use them fail.
    pub(crate) fn new(main: &'a Value, file: &Path) -> Self {
        let main_path = canonical(file);
        let mut set = Self {
            main,
            paths: vec![main_path.clone()],
            others: Vec::new(),
            by_path: HashMap::from([(main_path, Ok(0))]),
        };
        let mut queue = vec![0];
        let mut loaded_bytes = 0;
        while let Some(doc) = queue.pop() {
            let mut files = Vec::new();
            collect_file_refs(set.value(doc), &mut files);
            let paths: Vec<PathBuf> = files
                .into_iter()
                .filter_map(|reference| set.file_path(doc, reference))
                .collect();
            for path in paths {
                if set.by_path.contains_key(&path) {
                    continue;
                }
                let meta = std::fs::metadata(&path).ok();
                let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
                let entry = if meta.as_ref().is_some_and(|m| !m.is_file()) {
                    // A directory, or a pipe or device that could block or never end.
                    Err("not loaded: not a regular file".to_string())
                } else if set.others.len() >= MAX_EXTERNAL_FILES {
                    Err(format!(
                        "not loaded: the document refers to more than {MAX_EXTERNAL_FILES} files"
                    ))
                } else if loaded_bytes + size > MAX_EXTERNAL_BYTES {
                    Err(format!(
                        "not loaded: the files the document refers to are more than \
                         {MAX_EXTERNAL_BYTES} bytes together"
                    ))
                } else {
                    loaded_bytes += size;
                    match super::load::read_document(&path) {
                        Ok(value) => {
                            set.others.push(value);
                            set.paths.push(path.clone());
                            let id = set.others.len();
                            queue.push(id);
                            Ok(id)
                        }
                        Err(e) => Err(e.reason),
                    }
                };
                set.by_path.insert(path, entry);
            }
        }
        set
    }

    /// The document `doc`.
    pub(crate) fn value(&self, doc: DocId) -> &Value {
        match doc {
            0 => self.main,
            n => &self.others[n - 1],
        }
    }

    /// How to name `pointer` in `doc` in messages: `#/a/b`, or `file.yaml#/a/b`.
    pub(crate) fn display(&self, doc: DocId, pointer: &str) -> String {
        if doc == 0 {
            format!("#{pointer}")
        } else {
            let name = self.paths[doc]
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name}#{pointer}")
        }
    }

    /// The canonical path a reference's file part names, relative to `from`'s directory;
    /// `None` for same-document and remote references.
    fn file_path(&self, from: DocId, reference: &str) -> Option<PathBuf> {
        let file = reference.split('#').next().unwrap_or_default();
        if file.is_empty() || is_remote(file) {
            return None;
        }
        let file = percent_encoding::percent_decode_str(file).decode_utf8_lossy();
        let dir = self.paths[from].parent().unwrap_or(Path::new(""));
        Some(canonical(&dir.join(file.as_ref())))
    }

    /// Resolves the reference string `reference` found in document `from`.
    pub(crate) fn lookup(&self, from: DocId, reference: &str) -> Result<Located<'_>, String> {
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        if is_remote(file) {
            return Err(format!(
                "remote $ref '{reference}' is not supported: download the document and \
                 refer to it by a relative path"
            ));
        }
        let doc = if file.is_empty() {
            from
        } else {
            let path = self
                .file_path(from, reference)
                .ok_or_else(|| format!("$ref '{reference}': cannot name a file"))?;
            match self.by_path.get(&path) {
                Some(Ok(doc)) => *doc,
                Some(Err(reason)) => {
                    return Err(format!("$ref '{reference}': {}: {reason}", path.display()));
                }
                None => return Err(format!("$ref '{reference}': file not loaded")),
            }
        };
        let pointer = percent_encoding::percent_decode_str(fragment)
            .decode_utf8()
            .map_err(|_| format!("$ref '{reference}': the fragment is not UTF-8"))?;
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!(
                "$ref '{reference}': only JSON-pointer fragments (#/...) are supported"
            ));
        }
        let mut pointer = pointer.into_owned();
        let mut value = self.value(doc).pointer(&pointer);
        if value.is_none()
            && doc == 0
            && let Some(moved) = super::swagger2::moved_pointer(self.main, &pointer)
        {
            // A Swagger 2.0 main document named by its file (from another file, or from
            // itself): its definitions moved when it was read as 3.0.
            value = self.main.pointer(&moved);
            pointer = moved;
        }
        let value = value.ok_or_else(|| format!("$ref '{reference}' points to nothing"))?;
        Ok(Located {
            doc,
            pointer,
            value,
        })
    }

    /// Follows `$ref`s from `start` until a value that is not a reference (structural
    /// objects: parameters, request bodies, responses, path items, whose `$ref` siblings
    /// the specification ignores).
    pub(crate) fn deref<'s>(&'s self, start: Located<'s>) -> Result<Located<'s>, String> {
        let mut current = start;
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = ref_of(current.value) else {
                return Ok(current);
            };
            current = self.lookup(current.doc, reference)?;
        }
        Err(format!(
            "$ref chain longer than {MAX_REF_HOPS} hops (circular?) at {}",
            self.display(current.doc, &current.pointer)
        ))
    }
}

/// The `$ref` string of an object, if it has one.
pub(crate) fn ref_of(value: &Value) -> Option<&str> {
    value.as_object()?.get("$ref")?.as_str()
}

/// Whether a reference's file part is a URL rather than a path.
fn is_remote(file: &str) -> bool {
    file.contains("://") || file.starts_with("urn:")
}

/// The canonical form of `path` when it exists (so the same file reached through two
/// spellings loads once), else the path as given.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Collects every `$ref` string with a non-empty file part, iteratively (no recursion, so
/// any nesting depth is safe).
fn collect_file_refs<'v>(root: &'v Value, out: &mut Vec<&'v str>) {
    let mut stack = vec![root];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        if let Value::String(r) = child
                            && !r.starts_with('#')
                        {
                            out.push(r);
                        }
                    } else if child.is_object() || child.is_array() {
                        stack.push(child);
                    }
                }
            }
            Value::Array(items) => {
                stack.extend(items.iter().filter(|v| v.is_object() || v.is_array()));
            }
            _ => {}
        }
    }
}

/// Escapes one JSON-pointer token (`~` → `~0`, `/` → `~1`).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_refs_resolve_with_escapes_and_percent_encoding() {
        let doc = json!({"paths": {"/a/{b}": {"x": 1}}, "r": {"$ref": "#/s"}, "s": {"$ref": "#/t"}, "t": 5});
        let set = DocSet::new(&doc, Path::new("/nonexistent/spec.json"));
        let found = set.lookup(0, "#/paths/~1a~1%7Bb%7D/x").expect("found");
        assert_eq!(found.value, &json!(1));
        assert_eq!(found.pointer, "/paths/~1a~1{b}/x");
        let start = Located {
            doc: 0,
            pointer: "/r".into(),
            value: &doc["r"],
        };
        assert_eq!(set.deref(start).expect("chain").value, &json!(5));
    }

    #[test]
    fn unsupported_and_broken_refs_say_why() {
        let doc = json!({"a": {"$ref": "#/a"}});
        let set = DocSet::new(&doc, Path::new("/nonexistent/spec.json"));
        assert!(
            set.lookup(0, "#/nope")
                .unwrap_err()
                .contains("points to nothing")
        );
        assert!(
            set.lookup(0, "https://x/y.json#/a")
                .unwrap_err()
                .contains("remote")
        );
        assert!(
            set.lookup(0, "#anchor")
                .unwrap_err()
                .contains("JSON-pointer")
        );
        let start = Located {
            doc: 0,
            pointer: "/a".into(),
            value: &doc["a"],
        };
        assert!(set.deref(start).unwrap_err().contains("circular"));
        assert!(set.lookup(0, "missing.yaml#/x").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn files_that_are_not_regular_files_are_not_read() {
        // A device never ends (/dev/zero was read until memory ran out) and a pipe can
        // block forever: neither is opened.
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = serde_json::json!({
            "a": {"$ref": "/dev/zero#/x"},
            "b": {"$ref": "./#/x"},
        });
        let set = DocSet::new(&doc, &dir.path().join("spec.json"));
        for reference in ["/dev/zero#/x", "./#/x"] {
            let e = set.lookup(0, reference).unwrap_err();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }
}
