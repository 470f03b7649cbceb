//! The lexical half of tool search: words of names, descriptions and parameters (split at
//! case changes, digits and punctuation, lightly stemmed) in a BM25F inverted index.

use std::collections::HashMap;

/// BM25 term-frequency saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;

/// Words too common in tool descriptions to tell tools apart.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "i", "if",
    "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "please", "so", "that", "the",
    "their", "them", "then", "there", "these", "this", "those", "to", "us", "was", "we", "were",
    "what", "when", "which", "who", "will", "with", "you", "your",
];

/// Splits `text` into lowercase words: at non-alphanumerics, at lower-to-upper case changes
/// (`getUserById`), before the last capital of an acronym (`HTTPServer`) and between letters
/// and digits. Calls `f` with each word (borrowed from a reused buffer).
pub fn words(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::with_capacity(32);
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_alphanumeric() {
            flush(&mut word, &mut f);
            prev = None;
            continue;
        }
        if let Some(p) = prev {
            let next = chars.peek().copied();
            let boundary = (p.is_lowercase() && c.is_uppercase())
                || (p.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase))
                || (p.is_ascii_digit() != c.is_ascii_digit());
            if boundary {
                flush(&mut word, &mut f);
            }
        }
        word.extend(c.to_lowercase());
        prev = Some(c);
    }
    flush(&mut word, &mut f);
}

fn flush(word: &mut String, f: &mut impl FnMut(&str)) {
    if !word.is_empty() {
        f(word);
        word.clear();
    }
}

/// The index term of a lowercase word: `None` for stopwords, otherwise the word with common
/// English inflections removed (`users` → `user`, `listing` → `list`, `created` → `creat`),
/// so that a query and a description that inflect a word differently still meet. Both sides
/// go through the same function, so the stems need not be words.
pub fn term(word: &str) -> Option<std::borrow::Cow<'_, str>> {
    if STOPWORDS.binary_search(&word).is_ok() {
        return None;
    }
    Some(stem(word))
}

fn stem(word: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if word.len() <= 3 || !word.is_ascii() {
        return Cow::Borrowed(word);
    }
    let strip = |suffix: &str, min: usize| -> Option<&str> {
        word.strip_suffix(suffix).filter(|s| s.len() >= min)
    };
    if let Some(s) = strip("ies", 2) {
        return Cow::Owned(format!("{s}y"));
    }
    for suffix in ["ing", "ed"] {
        if let Some(s) = strip(suffix, 3) {
            // `running` → `run`, `stopped` → `stop`.
            let b = s.as_bytes();
            let doubled = b.len() >= 2 && b[b.len() - 1] == b[b.len() - 2];
            let s = if doubled && !matches!(b[b.len() - 1], b'l' | b's' | b'z') {
                &s[..s.len() - 1]
            } else {
                s
            };
            return Cow::Borrowed(s.strip_suffix('e').unwrap_or(s));
        }
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return Cow::Borrowed(word);
    }
    for suffix in ["sses", "xes", "ches", "shes"] {
        if word.ends_with(suffix) {
            return Cow::Borrowed(&word[..word.len() - 2]);
        }
    }
    if let Some(s) = strip("s", 3) {
        return Cow::Borrowed(s.strip_suffix('e').unwrap_or(s));
    }
    Cow::Borrowed(word.strip_suffix('e').unwrap_or(word))
}

/// The fields of a tool document, with the weight each word of it counts for.
pub struct Field<'a> {
    /// The text.
    pub text: &'a str,
    /// How much one occurrence counts (names count more than descriptions).
    pub weight: f32,
}

/// A BM25F inverted index over documents numbered `0..len`.
#[derive(Default)]
pub struct LexicalIndex {
    terms: HashMap<Box<str>, u32>,
    /// Per term: (document, weighted term frequency), in document order.
    postings: Vec<Vec<(u32, f32)>>,
    /// Per term: its inverse document frequency.
    idf: Vec<f32>,
    /// Per document: `K1 * (1 - B + B * len / avg_len)`, the length part of BM25.
    norm: Vec<f32>,
}

impl LexicalIndex {
    /// Indexes `docs`, each a list of weighted fields.
    pub fn build<'a>(docs: impl ExactSizeIterator<Item = Vec<Field<'a>>>) -> Self {
        let mut index = LexicalIndex::default();
        let mut lengths = Vec::with_capacity(docs.len());
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for (doc, fields) in docs.enumerate() {
            counts.clear();
            let mut length = 0.0;
            for field in fields {
                words(field.text, |w| {
                    if let Some(t) = term(w) {
                        let id = match index.terms.get(t.as_ref()) {
                            Some(&id) => id,
                            None => {
                                let id = index.terms.len() as u32;
                                index.terms.insert(t.into(), id);
                                id
                            }
                        };
                        *counts.entry(id).or_default() += field.weight;
                        length += field.weight;
                    }
                });
            }
            index.postings.resize_with(index.terms.len(), Vec::new);
            let mut sorted: Vec<(u32, f32)> = counts.iter().map(|(&t, &c)| (t, c)).collect();
            sorted.sort_unstable_by_key(|&(t, _)| t);
            for (t, c) in sorted {
                index.postings[t as usize].push((doc as u32, c));
            }
            lengths.push(length);
        }
        let n = lengths.len() as f32;
        let avg = (lengths.iter().sum::<f32>() / n.max(1.0)).max(1.0);
        index.norm = lengths
            .iter()
            .map(|l| K1 * (1.0 - B + B * l / avg))
            .collect();
        index.idf = index
            .postings
            .iter()
            .map(|p| {
                let df = p.len() as f32;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        index
    }

    /// Adds each document's BM25 score for `query` to `scores` (one slot per document).
    /// Returns whether any query term is in the index.
    pub fn score(&self, query: &str, scores: &mut [f32]) -> bool {
        let mut seen: Vec<u32> = Vec::with_capacity(8);
        words(query, |w| {
            if let Some(t) = term(w)
                && let Some(&id) = self.terms.get(t.as_ref())
                && !seen.contains(&id)
            {
                seen.push(id);
            }
        });
        for &t in &seen {
            let idf = self.idf[t as usize];
            for &(doc, tf) in &self.postings[t as usize] {
                scores[doc as usize] += idf * tf * (K1 + 1.0) / (tf + self.norm[doc as usize]);
            }
        }
        !seen.is_empty()
    }

    /// Heap bytes held (an estimate).
    pub fn memory_bytes(&self) -> usize {
        self.terms.keys().map(|k| k.len() + 32).sum::<usize>()
            + self
                .postings
                .iter()
                .map(|p| p.capacity() * 8 + 24)
                .sum::<usize>()
            + (self.idf.len() + self.norm.len()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        words(text, |w| out.push(w.to_string()));
        out
    }

    #[test]
    fn words_split_identifiers_and_prose() {
        assert_eq!(split("getUserById"), ["get", "user", "by", "id"]);
        assert_eq!(split("HTTPServer_v2"), ["http", "server", "v", "2"]);
        assert_eq!(
            split("petstore___list-pets.json"),
            ["petstore", "list", "pets", "json"]
        );
        assert_eq!(split("Größe der Straße"), ["größe", "der", "straße"]);
        assert_eq!(split("  "), Vec::<String>::new());
    }

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn inflections_meet() {
        let t = |w: &str| term(w).map(|t| t.into_owned());
        assert_eq!(t("users"), t("user"));
        assert_eq!(t("categories"), t("category"));
        assert_eq!(t("listing"), t("list"));
        assert_eq!(t("created"), t("create"));
        assert_eq!(t("creates"), t("create"));
        assert_eq!(t("running"), t("run"));
        assert_eq!(t("boxes"), t("box"));
        assert_eq!(t("status"), Some("status".into()));
        assert_eq!(t("address"), Some("address".into()));
        assert_eq!(t("the"), None);
    }

    #[test]
    fn bm25_ranks_the_matching_document_first_and_weights_fields() {
        let docs = [
            vec![
                Field {
                    text: "weather_forecast",
                    weight: 3.0,
                },
                Field {
                    text: "Returns the weather forecast for a city.",
                    weight: 1.0,
                },
            ],
            vec![
                Field {
                    text: "delete_user",
                    weight: 3.0,
                },
                Field {
                    text: "Deletes a user account; the weather does not matter.",
                    weight: 1.0,
                },
            ],
            vec![
                Field {
                    text: "list_users",
                    weight: 3.0,
                },
                Field {
                    text: "Lists users.",
                    weight: 1.0,
                },
            ],
        ];
        let index = LexicalIndex::build(docs.into_iter());
        let mut scores = vec![0.0; 3];
        assert!(index.score("What's the weather forecast in Paris?", &mut scores));
        assert!(scores[0] > scores[1] && scores[1] > 0.0, "{scores:?}");
        assert_eq!(scores[2], 0.0);
        let mut scores = vec![0.0; 3];
        assert!(index.score("remove a user", &mut scores));
        assert!(scores[1] > 0.0 && scores[2] > 0.0 && scores[0] == 0.0);
        let mut scores = vec![0.0; 3];
        assert!(!index.score("zebra", &mut scores));
    }
}
