//! Tool search: an index over the catalog's tools (lexical BM25F and, with a static
//! embedding model, dense vectors, fused by reciprocal rank), built at load and on every
//! reload, and queried by the gateway's search tool (`gateway.search`). Everything is in
//! process and offline: no service, no network.

pub mod embed;
mod lexical;
mod service;
pub mod wordpiece;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

pub use embed::StaticModel;
use lexical::{Field, LexicalIndex};
pub use service::{BuildReport, MAX_QUERY_CHARS, ToolSearch};

/// Which rankings a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// BM25F over words alone.
    Lexical,
    /// Embedding similarity alone (lexical when there is no model).
    Dense,
    /// Both, fused by reciprocal rank (lexical when there is no model).
    Hybrid,
}

/// The searchable text of one tool.
#[derive(Debug, Default, Clone)]
pub struct Document {
    /// The tool name (split into words when indexed: `github___list_issues`).
    pub name: String,
    /// Its title, if any.
    pub title: String,
    /// Its description.
    pub description: String,
    /// Its parameters' names, descriptions and enumerated values.
    pub parameters: String,
}

/// How much one word of each field counts.
const NAME_WEIGHT: f32 = 3.0;
const TITLE_WEIGHT: f32 = 2.0;
const DESCRIPTION_WEIGHT: f32 = 1.0;
const PARAMETER_WEIGHT: f32 = 0.5;

/// Deepest schema nesting whose property names are indexed.
const MAX_SCHEMA_DEPTH: usize = 3;

impl Document {
    /// The document of an MCP `Tool` object (as listed by `tools/list`).
    pub fn of_definition(definition: &Value) -> Document {
        let text = |key: &str| {
            definition
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut parameters = String::new();
        if let Some(schema) = definition.get("inputSchema") {
            schema_words(schema, 0, &mut parameters);
        }
        Document {
            name: text("name"),
            title: text("title"),
            description: text("description"),
            parameters,
        }
    }

    fn fields(&self) -> Vec<Field<'_>> {
        vec![
            Field {
                text: &self.name,
                weight: NAME_WEIGHT,
            },
            Field {
                text: &self.title,
                weight: TITLE_WEIGHT,
            },
            Field {
                text: &self.description,
                weight: DESCRIPTION_WEIGHT,
            },
            Field {
                text: &self.parameters,
                weight: PARAMETER_WEIGHT,
            },
        ]
    }
}

/// Appends the property names, descriptions and string enum values of `schema` (and of the
/// schemas nested in it) to `out`.
fn schema_words(schema: &Value, depth: usize, out: &mut String) {
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    let Some(object) = schema.as_object() else {
        return;
    };
    if depth > 0
        && let Some(d) = object.get("description").and_then(Value::as_str)
    {
        push_sentence(out, d);
    }
    if let Some(values) = object.get("enum").and_then(Value::as_array) {
        for v in values.iter().filter_map(Value::as_str).take(20) {
            push_sentence(out, v);
        }
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            push_sentence(out, name);
            schema_words(property, depth + 1, out);
        }
    }
    if let Some(items) = object.get("items") {
        schema_words(items, depth + 1, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(variants) = object.get(key).and_then(Value::as_array) {
            for v in variants {
                schema_words(v, depth + 1, out);
            }
        }
    }
}

fn push_sentence(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push_str(". ");
    }
    out.push_str(s);
}

/// One search result: the document's number and its fused score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The document (the tool's position in the catalog).
    pub doc: usize,
    /// Its score in the mode searched (comparable within one search only).
    pub score: f32,
}

/// Reciprocal-rank fusion constant: how flat the contribution of lower ranks is (small:
/// the first ranks count most). Chosen on BFCL's dev categories (BENCHMARKS.md).
const RRF_K: f32 = 10.0;
/// The dense ranking's weight in fusion, the lexical one's being 1: the static model is the
/// weaker ranking alone, and helps most as a tie-breaker and for words no tool uses.
const DENSE_WEIGHT: f32 = 0.5;
/// The name's weight in dense vectors (lexically, names count three times; for the
/// embedding, the words of a short name would drown its description).
const DENSE_NAME_WEIGHT: f32 = 1.0;
/// Candidates each ranking contributes to fusion, at least.
const MIN_CANDIDATES: usize = 100;

/// The search index of one catalog.
pub struct Index {
    docs: usize,
    lexical: LexicalIndex,
    dense: Option<Dense>,
    /// Tool names as word sequences (`chat post message`), with and without the target
    /// prefix: a query that names a tool ranks it first.
    names: HashMap<Box<str>, Vec<u32>>,
}

/// Longest name (in words) looked for in a query.
const MAX_NAME_WORDS: usize = 8;

/// The words of `text` joined by single spaces.
fn joined_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    lexical::words(text, |w| {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    });
    out
}

/// Unit vectors of every document, and what embeds a query alike.
struct Dense {
    model: Arc<StaticModel>,
    /// `docs × dim`, row-major.
    vectors: Vec<f32>,
    /// Per vocabulary token: its inverse document frequency over this catalog (tokens the
    /// catalog never uses get the highest).
    idf: Vec<f32>,
}

impl Index {
    /// Indexes `docs`; with `model`, dense vectors too.
    pub fn build(docs: &[Document], model: Option<Arc<StaticModel>>) -> Index {
        let lexical = LexicalIndex::build(docs.iter().map(Document::fields));
        let dense = model.map(|model| Dense::build(docs, model));
        let mut names: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (i, doc) in docs.iter().enumerate() {
            let full = joined_words(&doc.name);
            // The name without its first word (the target prefix, when there is one).
            let local = full.split_once(' ').map(|(_, rest)| rest.to_string());
            for key in std::iter::once(full).chain(local) {
                // Names of fewer than two words that are not stopwords (`search`, `help me`)
                // are ordinary words: BM25 ranks those.
                let words = key.split(' ').count();
                let content = key
                    .split(' ')
                    .filter(|w| lexical::term(w).is_some())
                    .count();
                if content >= 2 && words <= MAX_NAME_WORDS {
                    let entry = names.entry(key.into()).or_default();
                    if entry.last() != Some(&(i as u32)) {
                        entry.push(i as u32);
                    }
                }
            }
        }
        Index {
            docs: docs.len(),
            lexical,
            dense,
            names,
        }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.docs == 0
    }

    /// Whether dense vectors are indexed (a model was given).
    pub fn has_dense(&self) -> bool {
        self.dense.is_some()
    }

    /// Heap bytes held by the index, not counting the model.
    pub fn memory_bytes(&self) -> usize {
        self.lexical.memory_bytes()
            + self
                .dense
                .as_ref()
                .map_or(0, |d| (d.vectors.len() + d.idf.len()) * 4)
    }

    /// The best `limit` documents for `query` among those `visible` admits, best first.
    /// Documents that match nothing (no shared word, and no similarity) are not returned.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        mode: Mode,
        visible: &dyn Fn(usize) -> bool,
    ) -> Vec<Hit> {
        if limit == 0 || self.docs == 0 {
            return Vec::new();
        }
        let dense = self.dense.as_ref().filter(|_| mode != Mode::Lexical);
        let lexical = match (mode, dense) {
            (Mode::Dense, Some(_)) => None,
            _ => {
                let mut scores = vec![0.0f32; self.docs];
                self.lexical.score(query, &mut scores);
                Some(scores)
            }
        };
        let similarity = dense.map(|d| d.similarities(query, self.docs));
        let mut hits = match (lexical, similarity) {
            (Some(scores), None) | (None, Some(scores)) => top(&scores, limit, visible),
            (Some(lexical), Some(similarity)) => {
                let depth = (limit * 5).max(MIN_CANDIDATES);
                let mut fused = vec![0.0f32; self.docs];
                for (weight, ranking) in [
                    (1.0, top(&lexical, depth, visible)),
                    (DENSE_WEIGHT, top(&similarity, depth, visible)),
                ] {
                    for (rank, hit) in ranking.iter().enumerate() {
                        fused[hit.doc] += weight / (RRF_K + rank as f32 + 1.0);
                    }
                }
                top(&fused, limit, visible)
            }
            (None, None) => Vec::new(),
        };
        self.named_first(query, limit, visible, &mut hits);
        hits
    }

    /// Moves the tools whose name the query spells out (`chat.postMessage`, `list pets`) to
    /// the front, longer names first.
    fn named_first(
        &self,
        query: &str,
        limit: usize,
        visible: &dyn Fn(usize) -> bool,
        hits: &mut Vec<Hit>,
    ) {
        if self.names.is_empty() {
            return;
        }
        let text = joined_words(query);
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        let mut named: Vec<(usize, usize)> = Vec::new();
        for n in (2..=words.len().min(MAX_NAME_WORDS)).rev() {
            for window in words.windows(n) {
                let key = window.join(" ");
                for &doc in self.names.get(key.as_str()).into_iter().flatten() {
                    let doc = doc as usize;
                    if visible(doc) && !named.iter().any(|&(d, _)| d == doc) {
                        named.push((doc, n));
                    }
                }
            }
        }
        if named.is_empty() {
            return;
        }
        let best = hits.first().map_or(1.0, |h| h.score);
        hits.retain(|h| !named.iter().any(|&(d, _)| d == h.doc));
        let front = named.iter().map(|&(doc, n)| Hit {
            doc,
            score: best + n as f32,
        });
        hits.splice(0..0, front);
        hits.truncate(limit);
    }
}

/// The `limit` highest positive scores whose documents are visible, best first (ties by
/// catalog order).
fn top(scores: &[f32], limit: usize, visible: &dyn Fn(usize) -> bool) -> Vec<Hit> {
    let mut hits: Vec<Hit> = scores
        .iter()
        .enumerate()
        .filter(|&(doc, &score)| score > 0.0 && visible(doc))
        .map(|(doc, &score)| Hit { doc, score })
        .collect();
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc));
    if hits.len() > limit {
        hits.select_nth_unstable_by(limit - 1, order);
        hits.truncate(limit);
    }
    hits.sort_unstable_by(order);
    hits
}

impl Dense {
    fn build(docs: &[Document], model: Arc<StaticModel>) -> Dense {
        let dim = model.dim();
        let vocab = model.vocab_size();
        let mut tokens: Vec<Vec<(u32, f32)>> = Vec::with_capacity(docs.len());
        let mut df = vec![0u32; vocab];
        let mut ids = Vec::with_capacity(256);
        let mut words = String::with_capacity(256);
        for doc in docs {
            let mut weighted: Vec<(u32, f32)> = Vec::with_capacity(64);
            for field in doc.fields() {
                // Identifiers become words first (`getUserById` → `get user by id`), which the
                // word-piece vocabulary knows.
                words.clear();
                lexical::words(field.text, |w| {
                    words.push_str(w);
                    words.push(' ');
                });
                ids.clear();
                model.tokenize(&words, &mut ids);
                let weight = if field.weight == NAME_WEIGHT {
                    DENSE_NAME_WEIGHT
                } else {
                    field.weight
                };
                weighted.extend(ids.iter().map(|&id| (id, weight)));
            }
            let mut distinct: Vec<u32> = weighted.iter().map(|&(id, _)| id).collect();
            distinct.sort_unstable();
            distinct.dedup();
            for id in distinct {
                if let Some(n) = df.get_mut(id as usize) {
                    *n += 1;
                }
            }
            tokens.push(weighted);
        }
        let n = docs.len() as f32;
        let idf: Vec<f32> = df
            .iter()
            .map(|&d| ((n + 1.0) / (d as f32 + 1.0)).ln() + 1.0)
            .collect();
        let mut vectors = vec![0.0f32; docs.len() * dim];
        for (weighted, out) in tokens.iter().zip(vectors.chunks_exact_mut(dim)) {
            for &(id, weight) in weighted {
                model.accumulate(id, weight * idf[id as usize], out);
            }
            normalize(out);
        }
        Dense {
            model,
            vectors,
            idf,
        }
    }

    /// Cosine similarity of `query` to every document.
    fn similarities(&self, query: &str, docs: usize) -> Vec<f32> {
        let dim = self.model.dim();
        let mut words = String::with_capacity(query.len() + 8);
        lexical::words(query, |w| {
            words.push_str(w);
            words.push(' ');
        });
        let mut ids = Vec::with_capacity(64);
        self.model.tokenize(&words, &mut ids);
        let mut q = vec![0.0f32; dim];
        for &id in &ids {
            let idf = self.idf.get(id as usize).copied().unwrap_or(0.0);
            self.model.accumulate(id, idf, &mut q);
        }
        let mut scores = vec![0.0f32; docs];
        if !normalize(&mut q) {
            return scores;
        }
        for (score, v) in scores.iter_mut().zip(self.vectors.chunks_exact(dim)) {
            *score = dot(&q, v);
        }
        scores
    }
}

/// Scales `v` to unit length; `false` when it is zero.
fn normalize(v: &mut [f32]) -> bool {
    let norm = dot(v, v).sqrt();
    if norm <= f32::EPSILON {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// The dot product, with eight independent sums so the compiler can vectorize it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Document> {
        [
            json!({"name": "weather___get_forecast", "description": "Daily weather forecast for a city.",
                   "inputSchema": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                   "units": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}),
            json!({"name": "crm___delete_contact", "description": "Deletes a contact from the address book.",
                   "inputSchema": {"type": "object", "properties": {"contactId": {"type": "string"}}}}),
            json!({"name": "crm___list_contacts", "title": "List contacts", "description": "Lists contacts, newest first.",
                   "inputSchema": {"type": "object", "properties": {"limit": {"type": "integer"}}}}),
        ]
        .iter()
        .map(Document::of_definition)
        .collect()
    }

    #[test]
    fn documents_gather_parameter_words() {
        let doc = &docs()[0];
        assert_eq!(doc.name, "weather___get_forecast");
        assert_eq!(
            doc.parameters,
            "city. City name. units. celsius. fahrenheit"
        );
    }

    #[test]
    fn lexical_search_ranks_filters_and_limits() {
        let index = Index::build(&docs(), None);
        assert!(!index.has_dense());
        let all = |_: usize| true;
        let hits = index.search(
            "will it rain in Oslo? weather please",
            10,
            Mode::Hybrid,
            &all,
        );
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [0]);
        let hits = index.search("contacts", 10, Mode::Hybrid, &all);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].doc, 2, "the name and title say contacts: {hits:?}");
        let hits = index.search("contacts", 1, Mode::Lexical, &all);
        assert_eq!(hits.len(), 1);
        let hidden = |doc: usize| doc != 2;
        let hits = index.search("contacts", 10, Mode::Hybrid, &hidden);
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), [1]);
        assert!(index.search("fahrenheit", 10, Mode::Hybrid, &all)[0].doc == 0);
        assert!(index.search("zebra", 10, Mode::Hybrid, &all).is_empty());
    }

    #[test]
    fn a_query_that_names_a_tool_ranks_it_first() {
        let index = Index::build(&docs(), None);
        let all = |_: usize| true;
        // "contacts" alone prefers the listing tool; naming the delete tool puts it first.
        let hits = index.search(
            "run crm.deleteContact for the contacts list",
            3,
            Mode::Hybrid,
            &all,
        );
        assert_eq!(hits[0].doc, 1, "{hits:?}");
        let hits = index.search("Get forecast", 3, Mode::Lexical, &all);
        assert_eq!(hits[0].doc, 0, "{hits:?}");
        // Not when the caller may not see it.
        let hits = index.search("delete contact", 3, Mode::Hybrid, &|d| d != 1);
        assert!(hits.iter().all(|h| h.doc != 1), "{hits:?}");
    }

    #[test]
    fn top_breaks_ties_by_catalog_order() {
        let hits = top(&[1.0, 3.0, 1.0, 0.0, 2.0], 3, &|_| true);
        assert_eq!(
            hits.iter().map(|h| h.doc).collect::<Vec<_>>(),
            [1, 4, 0],
            "{hits:?}"
        );
        assert_eq!(top(&[0.0, 0.0], 5, &|_| true), []);
    }

    #[test]
    fn dot_matches_the_naive_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }
}
