//! `$ref` resolution: the documents of one conversion (the main one plus the files its
//! relative references name and, when allowed, the http(s) documents its references name,
//! each loaded once up front) and JSON-pointer lookup across them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use url::Url;

use super::remote::{Fetched, Fetcher, RemoteRefs, without_fragment};

/// Index of a document in a [`DocSet`]; 0 is the main document.
pub(crate) type DocId = usize;

/// Most `$ref` hops followed from one place before giving up (alias chains).
const MAX_REF_HOPS: usize = 32;
/// Most external documents (files and remote ones together) loaded for one document.
/// Split documents reach thousands of small files: DigitalOcean's loads about 2,900 (1,500
/// without its code samples).
const MAX_EXTERNAL_FILES: usize = 10_000;
/// Most bytes of external files loaded for one document, all together.
const MAX_EXTERNAL_BYTES: u64 = 256 * 1024 * 1024;
/// Most remote documents fetched for one document (each is a network round trip).
const MAX_REMOTE_DOCUMENTS: usize = 64;

/// Where a document was read from: relative references inside it resolve from there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// A file (canonical path when it exists).
    File(PathBuf),
    /// An http(s) URL, without fragment.
    Url(Url),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Url(url) => write!(f, "{url}"),
        }
    }
}

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

/// The main document and every document reachable from it through `$ref`s to other files
/// or (when allowed) to http(s) URLs.
pub(crate) struct DocSet<'a> {
    main: &'a Value,
    /// Where each document was read from (for remote ones, the URL after redirects).
    sources: Vec<Source>,
    others: Vec<Value>,
    /// Canonical path or URL → loaded document, or why it could not be loaded.
    by_source: HashMap<Source, Result<DocId, String>>,
    /// Which remote documents may be loaded.
    remote: RemoteRefs,
}

impl<'a> DocSet<'a> {
    /// The files other than the main document that references named (loaded or not), and
    /// whether any reference named an http(s) document.
    pub(crate) fn external_sources(&self) -> (Vec<PathBuf>, bool) {
        let main = self.sources.first();
        let mut files = Vec::new();
        let mut remote = false;
        for source in self.by_source.keys().filter(|s| Some(*s) != main) {
            match source {
                Source::File(path) => files.push(path.clone()),
                Source::Url(_) => remote = true,
            }
        }
        files.sort();
        (files, remote)
    }

    /// [`DocSet::with_remote`] refusing every remote reference.
    #[cfg(test)]
    pub(crate) fn new(main: &'a Value, file: &Path) -> Self {
        Self::with_remote(main, file, &RemoteRefs::Refused)
    }

    /// Builds the set for `main` (read from `file`), loading every file that relative
    /// references name and every http(s) document that `remote` allows, transitively
    /// (relative references in a remote document resolve against its URL). Documents that
    /// cannot be loaded or are not allowed are remembered with the reason: only the
    /// operations that use them fail.
    pub(crate) fn with_remote(main: &'a Value, file: &Path, remote: &RemoteRefs) -> Self {
        let main_path = Source::File(canonical(file));
        let mut set = Self {
            main,
            sources: vec![main_path.clone()],
            others: Vec::new(),
            by_source: HashMap::from([(main_path, Ok(0))]),
            remote: remote.clone(),
        };
        let mut fetcher = Fetcher::default();
        let mut queue = vec![0];
        let mut loaded_bytes = 0;
        let mut fetched = 0;
        while let Some(doc) = queue.pop() {
            let mut files = Vec::new();
            collect_file_refs(set.value(doc), &mut files);
            // Unusable references (a bad URL) are reported by `lookup`, where used.
            let sources: Vec<Source> = files
                .into_iter()
                .filter_map(|reference| set.source_of(doc, reference).ok())
                .collect();
            for source in sources {
                if set.by_source.contains_key(&source) {
                    continue;
                }
                let entry = if let Source::Url(url) = &source
                    && let Err(reason) = remote.check(url)
                {
                    Err(reason)
                } else if set.others.len() >= MAX_EXTERNAL_FILES {
                    Err(format!(
                        "not loaded: the document refers to more than {MAX_EXTERNAL_FILES} documents"
                    ))
                } else if matches!(source, Source::Url(_)) && fetched >= MAX_REMOTE_DOCUMENTS {
                    Err(format!(
                        "not loaded: the document refers to more than {MAX_REMOTE_DOCUMENTS} remote documents"
                    ))
                } else if let Some(reason) = file_problem(&source, &mut loaded_bytes) {
                    Err(reason)
                } else {
                    fetched += usize::from(matches!(source, Source::Url(_)));
                    set.load(&source, &mut fetcher)
                        .and_then(|loaded| match loaded {
                            Loaded::Document(value, from) => {
                                set.others.push(value);
                                set.sources.push(from.clone());
                                let id = set.others.len();
                                set.by_source.entry(from).or_insert(Ok(id));
                                queue.push(id);
                                Ok(id)
                            }
                            Loaded::Known(at) => set.by_source[&at].clone(),
                        })
                };
                set.by_source.insert(source, entry);
            }
        }
        set
    }

    /// Reads or fetches the document at `source`.
    fn load(&self, source: &Source, fetcher: &mut Fetcher) -> Result<Loaded, String> {
        let url = match source {
            Source::File(path) => {
                return super::load::read_document(path)
                    .map(|value| Loaded::Document(value, source.clone()))
                    .map_err(|e| e.reason);
            }
            Source::Url(url) => url,
        };
        let known =
            |url: &Url| matches!(self.by_source.get(&Source::Url(url.clone())), Some(Ok(_)));
        match fetcher.fetch(url, &self.remote, &known)? {
            Fetched::Document { url, text } => {
                // JSON or YAML by content; the URL's path stands for the file name.
                let value = super::load::parse_document(&text, Path::new(url.path()))
                    .map_err(|e| e.reason)?;
                Ok(Loaded::Document(value, Source::Url(url)))
            }
            Fetched::Known(url) => Ok(Loaded::Known(Source::Url(url))),
        }
    }

    /// The document `doc`.
    pub(crate) fn value(&self, doc: DocId) -> &Value {
        match doc {
            0 => self.main,
            n => &self.others[n - 1],
        }
    }

    /// How to name `pointer` in `doc` in messages: `#/a/b`, `file.yaml#/a/b`, or
    /// `https://host/file.yaml#/a/b`.
    pub(crate) fn display(&self, doc: DocId, pointer: &str) -> String {
        match &self.sources[doc] {
            _ if doc == 0 => format!("#{pointer}"),
            Source::File(path) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name}#{pointer}")
            }
            Source::Url(url) => format!("{url}#{pointer}"),
        }
    }

    /// The document a reference's file part (`reference` up to any `#`, not empty) names,
    /// from document `from`: a path relative to a file's directory, or a URL (absolute, or
    /// relative to a remote document's URL). Err: the reference names nothing fetchable.
    fn source_of(&self, from: DocId, reference: &str) -> Result<Source, String> {
        let file = reference.split('#').next().unwrap_or_default();
        let url = match &self.sources[from] {
            Source::Url(base) => base
                .join(file)
                .map_err(|e| format!("cannot resolve against {base}: {e}"))?,
            Source::File(_) if is_remote(file) => {
                Url::parse(file).map_err(|e| format!("not a valid URL: {e}"))?
            }
            Source::File(path) => {
                let file = percent_encoding::percent_decode_str(file).decode_utf8_lossy();
                let dir = path.parent().unwrap_or(Path::new(""));
                return Ok(Source::File(canonical(&dir.join(file.as_ref()))));
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "remote $ref to `{}:` URLs are not supported (only http and https)",
                url.scheme()
            ));
        }
        Ok(Source::Url(without_fragment(url)))
    }

    /// Resolves the reference string `reference` found in document `from`.
    pub(crate) fn lookup(&self, from: DocId, reference: &str) -> Result<Located<'_>, String> {
        let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let doc = if file.is_empty() {
            from
        } else {
            let source = self
                .source_of(from, file)
                .map_err(|reason| format!("$ref '{reference}': {reason}"))?;
            match self.by_source.get(&source) {
                Some(Ok(doc)) => *doc,
                // The URL is named unless the reference spells it out already.
                Some(Err(reason)) if matches!(&source, Source::Url(u) if u.as_str() == file) => {
                    return Err(format!("$ref '{reference}': {reason}"));
                }
                Some(Err(reason)) => {
                    return Err(format!("$ref '{reference}': {source}: {reason}"));
                }
                // Only references written in the documents were loaded.
                None => {
                    let reason = match &source {
                        Source::Url(url) => self.remote.check(url).err(),
                        Source::File(_) => None,
                    };
                    let reason = reason.unwrap_or_else(|| "not loaded".into());
                    return Err(format!("$ref '{reference}': {source}: {reason}"));
                }
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

/// A document read by [`DocSet::load`].
enum Loaded {
    /// A new document, and where it was read from (after redirects).
    Document(Value, Source),
    /// A redirect to a document loaded already, from this source.
    Known(Source),
}

/// Why the file `source` must not be read (not a regular file: a directory, or a pipe or
/// device that could block or never end; or over the bytes budget), counting its size into
/// `loaded_bytes` when it may. Remote documents have their own bounds.
fn file_problem(source: &Source, loaded_bytes: &mut u64) -> Option<String> {
    let Source::File(path) = source else {
        return None;
    };
    let meta = std::fs::metadata(path).ok();
    if meta.as_ref().is_some_and(|m| !m.is_file()) {
        return Some("not loaded: not a regular file".into());
    }
    let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
    if *loaded_bytes + size > MAX_EXTERNAL_BYTES {
        return Some(format!(
            "not loaded: the files the document refers to are more than {MAX_EXTERNAL_BYTES} bytes together"
        ));
    }
    *loaded_bytes += size;
    None
}

/// The `$ref` string of an object, if it has one.
pub(crate) fn ref_of(value: &Value) -> Option<&str> {
    value.as_object()?.get("$ref")?.as_str()
}

/// Whether a reference's file part (in a file document) is a URL rather than a path.
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

    #[test]
    fn references_name_files_or_urls_relative_to_their_document() {
        let doc = json!({});
        let mut set = DocSet::new(&doc, Path::new("/nonexistent/dir/spec.json"));
        let base = Url::parse("https://h.example/schemas/v1/pet.yaml").unwrap();
        set.sources.push(Source::Url(base));
        let url = |s: &str| Source::Url(Url::parse(s).unwrap());
        // From a file: paths relative to its folder; absolute http(s) URLs as written.
        assert_eq!(
            set.source_of(0, "common.yaml#/A").unwrap(),
            Source::File(PathBuf::from("/nonexistent/dir/common.yaml"))
        );
        assert_eq!(
            set.source_of(0, "https://h.example/a.json#/A").unwrap(),
            url("https://h.example/a.json")
        );
        // From a remote document: everything is a URL, resolved against its URL.
        assert_eq!(
            set.source_of(1, "common.json#/Id").unwrap(),
            url("https://h.example/schemas/v1/common.json")
        );
        assert_eq!(
            set.source_of(1, "../v2/x.yaml").unwrap(),
            url("https://h.example/schemas/v2/x.yaml")
        );
        assert_eq!(
            set.source_of(1, "//other.example/y.json#/z").unwrap(),
            url("https://other.example/y.json")
        );
        // Never anything but http(s), from either kind of document.
        for (from, reference) in [
            (1, "file:///etc/passwd"),
            (0, "file:///etc/passwd#/x"),
            (0, "urn:example:schema"),
            (1, "ftp://h.example/a.json"),
        ] {
            let e = set.source_of(from, reference).unwrap_err();
            assert!(e.contains("only http and https"), "{reference}: {e}");
        }
        // Lookups of remote documents say how to allow them.
        let e = set.lookup(0, "https://h.example/a.json#/A").unwrap_err();
        assert!(e.contains("allow_remote_refs"), "{e}");
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
