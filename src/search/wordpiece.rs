//! BERT WordPiece tokenization read from a HuggingFace `tokenizer.json`: its normalizer
//! (BertNormalizer), pre-tokenizer (BertPreTokenizer) and greedy longest-match-first WordPiece
//! model, so that text maps to the ids a BERT-derived static embedding table is indexed by.

use std::collections::HashMap;

use serde_json::Value;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// The ids of a vocabulary's special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// The token that opens a BERT sequence (`[CLS]`), if the vocabulary has one.
    pub cls: Option<u32>,
    /// The token that closes a BERT sequence (`[SEP]`), if the vocabulary has one.
    pub sep: Option<u32>,
    /// The padding token (`[PAD]`), if the vocabulary has one.
    pub pad: Option<u32>,
    /// The token of a word the vocabulary cannot spell (the model's `unk_token`).
    pub unk: u32,
}

/// What BertNormalizer does to text before it is split into words.
#[derive(Debug, Clone, Copy)]
struct Normalizer {
    clean_text: bool,
    chinese_chars: bool,
    strip_accents: bool,
    lowercase: bool,
}

/// A WordPiece tokenizer (BERT's), as configured by a `tokenizer.json`.
///
/// Known differences from HuggingFace `tokenizers`, all outside what tool descriptions hold:
/// added tokens (`[MASK]`...) are not matched in the input text; accent stripping drops every
/// combining mark, where HF keeps the spacing and enclosing ones (Mc, Me: Indic vowel signs
/// differ); only BMP punctuation outside ASCII splits words.
#[derive(Debug, Clone)]
pub struct WordPiece {
    /// Every vocabulary entry, by its text: a piece that starts a word is looked up here.
    vocab: HashMap<Box<str>, u32>,
    /// The entries that carry the continuation prefix, keyed without it (`##ing` as `ing`),
    /// so that a piece inside a word is looked up without building `##` + piece.
    continuations: HashMap<Box<str>, u32>,
    /// Added tokens that are not in the model's vocabulary (they still take an id).
    added: HashMap<Box<str>, u32>,
    /// Token text by id; `None` for an id no entry has.
    tokens: Vec<Option<Box<str>>>,
    normalizer: Normalizer,
    max_chars: usize,
    special: SpecialIds,
}

impl WordPiece {
    /// Reads a tokenizer from the text of a HuggingFace `tokenizer.json` whose model is
    /// WordPiece (with a BertNormalizer or Lowercase normalizer, or none, and the
    /// BertPreTokenizer).
    pub fn from_tokenizer_json(text: &str) -> Result<WordPiece, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("not a valid JSON document: {e}"))?;
        let model = root
            .get("model")
            .filter(|m| m.is_object())
            .ok_or("no \"model\" object")?;
        match model.get("type").and_then(Value::as_str) {
            Some("WordPiece") => {}
            Some(other) => {
                return Err(format!(
                    "the model type is \"{other}\"; only \"WordPiece\" is supported"
                ));
            }
            None => return Err("the model has no \"type\"; only \"WordPiece\" is supported".into()),
        }
        let entries = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or("the WordPiece model has no \"vocab\" object")?;
        let prefix = str_field(model, "continuing_subword_prefix", "##")?;
        let unk_token = str_field(model, "unk_token", "[UNK]")?;
        let max_chars = match model.get("max_input_chars_per_word") {
            None | Some(Value::Null) => 100,
            Some(v) => v.as_u64().ok_or_else(|| {
                format!("\"max_input_chars_per_word\" is {v}, not a non-negative integer")
            })? as usize,
        };

        let mut vocab = HashMap::with_capacity(entries.len());
        let mut continuations = HashMap::new();
        let mut tokens: Vec<Option<Box<str>>> = Vec::with_capacity(entries.len());
        for (token, id) in entries {
            let id = token_id_value(id).ok_or_else(|| {
                format!("vocabulary entry {token:?} has id {id}, not an integer below 2^24")
            })?;
            set_token(&mut tokens, id, token);
            vocab.insert(Box::from(token.as_str()), id);
            if let Some(rest) = token.strip_prefix(prefix) {
                continuations.insert(Box::from(rest), id);
            }
        }
        if vocab.is_empty() {
            return Err("the WordPiece vocabulary is empty".into());
        }
        let mut added = HashMap::new();
        for entry in root
            .get("added_tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(content), Some(id)) = (
                entry.get("content").and_then(Value::as_str),
                entry.get("id").and_then(token_id_value),
            ) else {
                return Err(format!(
                    "an added token lacks a content or a valid id: {entry}"
                ));
            };
            if !vocab.contains_key(content) {
                set_token(&mut tokens, id, content);
                added.insert(Box::from(content), id);
            }
        }

        let normalizer = parse_normalizer(root.get("normalizer"))?;
        match root.get("pre_tokenizer") {
            Some(p) if p.get("type").and_then(Value::as_str) == Some("BertPreTokenizer") => {}
            None | Some(Value::Null) => {
                return Err("no pre_tokenizer; only \"BertPreTokenizer\" is supported".into());
            }
            Some(p) => {
                return Err(format!(
                    "the pre_tokenizer type is {}; only \"BertPreTokenizer\" is supported",
                    p.get("type").unwrap_or(&Value::Null)
                ));
            }
        }

        let unk = *vocab
            .get(unk_token)
            .ok_or_else(|| format!("the unk_token {unk_token:?} is not in the vocabulary"))?;
        let (cls_name, sep_name) = template_specials(root.get("post_processor"));
        let pad_name = root
            .pointer("/padding/pad_token")
            .and_then(Value::as_str)
            .unwrap_or("[PAD]");
        let lookup = |name: &str| vocab.get(name).or_else(|| added.get(name)).copied();
        let special = SpecialIds {
            cls: lookup(&cls_name),
            sep: lookup(&sep_name),
            pad: lookup(pad_name),
            unk,
        };
        Ok(WordPiece {
            vocab,
            continuations,
            added,
            tokens,
            normalizer,
            max_chars,
            special,
        })
    }

    /// Number of ids: one more than the largest id of the vocabulary and the added tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The id of a token, spelled as in the vocabulary (`##ing` for a continuation).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.vocab
            .get(token)
            .or_else(|| self.added.get(token))
            .copied()
    }

    /// The text of the token with this id.
    pub fn id_to_token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize)?.as_deref()
    }

    /// The ids of `[CLS]`, `[SEP]`, the padding token and the unknown-word token.
    pub fn special_ids(&self) -> SpecialIds {
        self.special
    }

    /// Approximate heap bytes held (strings, id table and hash maps).
    pub fn memory_bytes(&self) -> usize {
        let text: usize = self.tokens.iter().flatten().map(|t| t.len()).sum();
        let continuation_text: usize = self.continuations.keys().map(|k| k.len()).sum();
        // A hash map entry is a boxed str (16) and an id (4), padded to 24, plus a control byte.
        let entry = 25;
        2 * text
            + continuation_text
            + self.tokens.capacity() * std::mem::size_of::<Option<Box<str>>>()
            + (self.vocab.capacity() + self.continuations.capacity() + self.added.capacity())
                * entry
    }

    /// Appends the word-piece ids of `text` to `out` (without `[CLS]`/`[SEP]`); a word the
    /// vocabulary cannot spell, or longer than `max_input_chars_per_word`, becomes the
    /// unknown-word token.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut words = Words {
            wp: self,
            word: String::new(),
            chars: 0,
            out,
        };
        let n = self.normalizer;
        for c in text.chars() {
            if n.clean_text && (c == '\0' || c == '\u{FFFD}' || is_control(c)) {
                continue;
            }
            if c.is_ascii() {
                // ASCII needs neither decomposition nor full Unicode case mapping.
                words.push(if n.lowercase {
                    c.to_ascii_lowercase()
                } else {
                    c
                });
            } else if n.strip_accents {
                decompose_canonical(c, |d| {
                    if !is_combining_mark(d) {
                        words.push_cased(d, n.lowercase);
                    }
                });
            } else {
                words.push_cased(c, n.lowercase);
            }
        }
        words.flush();
    }

    /// Appends the pieces of one normalized word, or the unknown-word token.
    fn word_pieces(&self, word: &str, chars: usize, out: &mut Vec<u32>) {
        if chars > self.max_chars {
            out.push(self.special.unk);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                let piece = &word[start..end];
                let hit = if start == 0 {
                    self.vocab.get(piece)
                } else {
                    self.continuations.get(piece)
                };
                if let Some(&id) = hit {
                    break Some(id);
                }
                // Shorten by one character; a single unknown character ends the search.
                match piece.char_indices().next_back() {
                    Some((i, _)) if i > 0 => end = start + i,
                    _ => break None,
                }
            };
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    // As in BERT, one unspellable piece makes the whole word unknown.
                    out.truncate(first);
                    out.push(self.special.unk);
                    return;
                }
            }
        }
    }
}

/// The pre-tokenizer's state: the word being gathered, flushed into pieces at a boundary.
struct Words<'a> {
    wp: &'a WordPiece,
    word: String,
    chars: usize,
    out: &'a mut Vec<u32>,
}

impl Words<'_> {
    fn push_cased(&mut self, c: char, lowercase: bool) {
        if lowercase {
            for l in c.to_lowercase() {
                self.push(l);
            }
        } else {
            self.push(c);
        }
    }

    /// Takes one normalized character: whitespace ends a word, punctuation (and, with
    /// `handle_chinese_chars`, a CJK ideograph) is a word of its own.
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.flush();
        } else if is_punctuation(c) || (self.wp.normalizer.chinese_chars && is_chinese(c)) {
            self.flush();
            self.word.push(c);
            self.chars = 1;
            self.flush();
        } else {
            self.word.push(c);
            self.chars += 1;
        }
    }

    fn flush(&mut self) {
        if !self.word.is_empty() {
            self.wp.word_pieces(&self.word, self.chars, self.out);
            self.word.clear();
            self.chars = 0;
        }
    }
}

fn str_field<'a>(obj: &'a Value, key: &str, default: &'a str) -> Result<&'a str, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("\"{key}\" is {v}, not a string")),
    }
}

fn bool_field(obj: &Value, key: &str) -> Result<Option<bool>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(format!("the normalizer's \"{key}\" is {v}, not a boolean")),
    }
}

/// A token id from JSON; ids past 2^24 are refused so that a corrupt file cannot make the id
/// table huge.
fn token_id_value(v: &Value) -> Option<u32> {
    v.as_u64().filter(|&id| id < 1 << 24).map(|id| id as u32)
}

fn set_token(tokens: &mut Vec<Option<Box<str>>>, id: u32, token: &str) {
    let i = id as usize;
    if tokens.len() <= i {
        tokens.resize(i + 1, None);
    }
    tokens[i] = Some(Box::from(token));
}

fn parse_normalizer(v: Option<&Value>) -> Result<Normalizer, String> {
    let off = Normalizer {
        clean_text: false,
        chinese_chars: false,
        strip_accents: false,
        lowercase: false,
    };
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(off);
    };
    match v.get("type").and_then(Value::as_str) {
        Some("BertNormalizer") => {
            let lowercase = bool_field(v, "lowercase")?.unwrap_or(true);
            Ok(Normalizer {
                clean_text: bool_field(v, "clean_text")?.unwrap_or(true),
                chinese_chars: bool_field(v, "handle_chinese_chars")?.unwrap_or(true),
                // BertNormalizer's own rule: accents go whenever text is lowercased, unless
                // the file says otherwise.
                strip_accents: bool_field(v, "strip_accents")?.unwrap_or(lowercase),
                lowercase,
            })
        }
        Some("Lowercase") => Ok(Normalizer {
            lowercase: true,
            ..off
        }),
        Some(other) => Err(format!(
            "the normalizer type is \"{other}\"; only \"BertNormalizer\" and \"Lowercase\" are supported"
        )),
        None => Err("the normalizer has no \"type\"".into()),
    }
}

/// The tokens a post-processor wraps a single sequence in: `[CLS]`/`[SEP]` unless a
/// BertProcessing or TemplateProcessing names others.
fn template_specials(post: Option<&Value>) -> (String, String) {
    let mut cls = "[CLS]".to_string();
    let mut sep = "[SEP]".to_string();
    let Some(post) = post else {
        return (cls, sep);
    };
    match post.get("type").and_then(Value::as_str) {
        Some("BertProcessing" | "RobertaProcessing") => {
            if let Some(name) = post.pointer("/cls/0").and_then(Value::as_str) {
                cls = name.to_string();
            }
            if let Some(name) = post.pointer("/sep/0").and_then(Value::as_str) {
                sep = name.to_string();
            }
        }
        Some("TemplateProcessing") => {
            let single = post.get("single").and_then(Value::as_array);
            let special = |piece: Option<&Value>| {
                piece?
                    .pointer("/SpecialToken/id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let Some(single) = single {
                if let Some(name) = special(single.first()) {
                    cls = name;
                }
                if let Some(name) = special(single.last()) {
                    sep = name;
                }
            }
        }
        _ => {}
    }
    (cls, sep)
}

/// BertNormalizer's `clean_text` drops control and format characters (Cc, Cf, Co) other than
/// the whitespace controls.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    if c.is_control() {
        return true;
    }
    let cp = c as u32;
    if cp < 0xAD {
        return false;
    }
    // The format characters (Cf) and the private-use areas (Co).
    matches!(
        cp,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x13438
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE000..=0xF8FF
            | 0xF0000..=0xFFFFD
            | 0x100000..=0x10FFFD
    )
}

/// The CJK ideograph blocks BERT splits into one word per character.
fn is_chinese(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// BertPreTokenizer's punctuation: all ASCII punctuation (symbols such as `$` and `+`
/// included) and the Unicode punctuation categories (P*), here for the BMP.
fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    let Ok(cp) = u16::try_from(c as u32) else {
        return false;
    };
    // The first range whose end is at or past `cp`.
    let ranges = PUNCTUATION.len() / 2;
    let (mut lo, mut hi) = (0, ranges);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if PUNCTUATION[2 * mid + 1] < cp {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo < ranges && PUNCTUATION[2 * lo] <= cp
}

/// Inclusive ranges (start, end, start, end...) of the non-ASCII BMP code points in the
/// Unicode punctuation categories (Pc Pd Ps Pe Pi Pf Po), from Unicode 14's database.
#[rustfmt::skip]
const PUNCTUATION: &[u16] = &[
    0x00A1, 0x00A1, 0x00A7, 0x00A7, 0x00AB, 0x00AB, 0x00B6, 0x00B7, 0x00BB, 0x00BB, 0x00BF, 0x00BF,
    0x037E, 0x037E, 0x0387, 0x0387, 0x055A, 0x055F, 0x0589, 0x058A, 0x05BE, 0x05BE, 0x05C0, 0x05C0,
    0x05C3, 0x05C3, 0x05C6, 0x05C6, 0x05F3, 0x05F4, 0x0609, 0x060A, 0x060C, 0x060D, 0x061B, 0x061B,
    0x061D, 0x061F, 0x066A, 0x066D, 0x06D4, 0x06D4, 0x0700, 0x070D, 0x07F7, 0x07F9, 0x0830, 0x083E,
    0x085E, 0x085E, 0x0964, 0x0965, 0x0970, 0x0970, 0x09FD, 0x09FD, 0x0A76, 0x0A76, 0x0AF0, 0x0AF0,
    0x0C77, 0x0C77, 0x0C84, 0x0C84, 0x0DF4, 0x0DF4, 0x0E4F, 0x0E4F, 0x0E5A, 0x0E5B, 0x0F04, 0x0F12,
    0x0F14, 0x0F14, 0x0F3A, 0x0F3D, 0x0F85, 0x0F85, 0x0FD0, 0x0FD4, 0x0FD9, 0x0FDA, 0x104A, 0x104F,
    0x10FB, 0x10FB, 0x1360, 0x1368, 0x1400, 0x1400, 0x166E, 0x166E, 0x169B, 0x169C, 0x16EB, 0x16ED,
    0x1735, 0x1736, 0x17D4, 0x17D6, 0x17D8, 0x17DA, 0x1800, 0x180A, 0x1944, 0x1945, 0x1A1E, 0x1A1F,
    0x1AA0, 0x1AA6, 0x1AA8, 0x1AAD, 0x1B5A, 0x1B60, 0x1B7D, 0x1B7E, 0x1BFC, 0x1BFF, 0x1C3B, 0x1C3F,
    0x1C7E, 0x1C7F, 0x1CC0, 0x1CC7, 0x1CD3, 0x1CD3, 0x2010, 0x2027, 0x2030, 0x2043, 0x2045, 0x2051,
    0x2053, 0x205E, 0x207D, 0x207E, 0x208D, 0x208E, 0x2308, 0x230B, 0x2329, 0x232A, 0x2768, 0x2775,
    0x27C5, 0x27C6, 0x27E6, 0x27EF, 0x2983, 0x2998, 0x29D8, 0x29DB, 0x29FC, 0x29FD, 0x2CF9, 0x2CFC,
    0x2CFE, 0x2CFF, 0x2D70, 0x2D70, 0x2E00, 0x2E2E, 0x2E30, 0x2E4F, 0x2E52, 0x2E5D, 0x3001, 0x3003,
    0x3008, 0x3011, 0x3014, 0x301F, 0x3030, 0x3030, 0x303D, 0x303D, 0x30A0, 0x30A0, 0x30FB, 0x30FB,
    0xA4FE, 0xA4FF, 0xA60D, 0xA60F, 0xA673, 0xA673, 0xA67E, 0xA67E, 0xA6F2, 0xA6F7, 0xA874, 0xA877,
    0xA8CE, 0xA8CF, 0xA8F8, 0xA8FA, 0xA8FC, 0xA8FC, 0xA92E, 0xA92F, 0xA95F, 0xA95F, 0xA9C1, 0xA9CD,
    0xA9DE, 0xA9DF, 0xAA5C, 0xAA5F, 0xAADE, 0xAADF, 0xAAF0, 0xAAF1, 0xABEB, 0xABEB, 0xFD3E, 0xFD3F,
    0xFE10, 0xFE19, 0xFE30, 0xFE52, 0xFE54, 0xFE61, 0xFE63, 0xFE63, 0xFE68, 0xFE68, 0xFE6A, 0xFE6B,
    0xFF01, 0xFF03, 0xFF05, 0xFF0A, 0xFF0C, 0xFF0F, 0xFF1A, 0xFF1B, 0xFF1F, 0xFF20, 0xFF3B, 0xFF3D,
    0xFF3F, 0xFF3F, 0xFF5B, 0xFF5B, 0xFF5D, 0xFF5D, 0xFF5F, 0xFF65,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokenizer.json with a handful of entries, shaped like bert-base-uncased's.
    fn tiny_json(model_type: &str) -> String {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "un", "##aff", "##able", "cafe",
            ",", "!", "get", "##user", "user", "by", "id", "_", "你", "好", "naive", "-", "ab",
            "##c", "a", "##b", "##cd",
        ];
        let vocab: serde_json::Map<String, Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), Value::from(i)))
            .collect();
        serde_json::json!({
            "version": "1.0",
            "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "[SEP]", "type_id": 0}}]},
            "model": {"type": model_type, "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 12,
                "vocab": vocab}
        })
        .to_string()
    }

    fn tiny() -> WordPiece {
        WordPiece::from_tokenizer_json(&tiny_json("WordPiece")).unwrap()
    }

    fn tokens(wp: &WordPiece, text: &str) -> Vec<String> {
        let mut ids = Vec::new();
        wp.encode_into(text, &mut ids);
        ids.iter()
            .map(|&id| wp.id_to_token(id).unwrap().to_string())
            .collect()
    }

    #[test]
    fn lowercases_and_splits_on_punctuation() {
        let wp = tiny();
        assert_eq!(tokens(&wp, "Hello, WORLD!"), ["hello", ",", "world", "!"]);
        assert_eq!(tokens(&wp, "  hello\t\nworld  "), ["hello", "world"]);
        assert_eq!(
            tokens(&wp, "get_user_by_id"),
            ["get", "_", "user", "_", "by", "_", "id"]
        );
        // Unicode punctuation (an en dash) is a word of its own, here unknown.
        assert_eq!(
            tokens(&wp, "hello\u{2013}world"),
            ["hello", "[UNK]", "world"]
        );
    }

    #[test]
    fn strips_accents_and_cleans_text() {
        let wp = tiny();
        assert_eq!(tokens(&wp, "Café"), ["cafe"]);
        // Decomposed input (e + combining acute) and a precomposed capital.
        assert_eq!(tokens(&wp, "CAFE\u{301} NAÏVE"), ["cafe", "naive"]);
        // A zero-width space and a control character are dropped, not word breaks.
        assert_eq!(tokens(&wp, "hel\u{200B}lo wor\u{7}ld"), ["hello", "world"]);
    }

    #[test]
    fn continues_with_the_prefix() {
        let wp = tiny();
        assert_eq!(tokens(&wp, "unaffable"), ["un", "##aff", "##able"]);
        assert_eq!(tokens(&wp, "getUser"), ["get", "##user"]);
        // Longest match first: "ab" + "##cd" rather than "a" + "##b" + ...
        assert_eq!(tokens(&wp, "abcd"), ["ab", "##cd"]);
        assert_eq!(tokens(&wp, "abc"), ["ab", "##c"]);
    }

    #[test]
    fn unknown_and_overlong_words() {
        let wp = tiny();
        assert_eq!(tokens(&wp, "xyz hello"), ["[UNK]", "hello"]);
        // One unspellable piece makes the whole word unknown.
        assert_eq!(tokens(&wp, "hellox"), ["[UNK]"]);
        // 12 characters are allowed, 13 are not.
        assert_eq!(
            tokens(&wp, "unaffableaff"),
            ["un", "##aff", "##able", "##aff"]
        );
        assert_eq!(tokens(&wp, "unaffableaffx"), ["[UNK]"]);
    }

    #[test]
    fn cjk_characters_are_words() {
        let wp = tiny();
        assert_eq!(tokens(&wp, "hello你好"), ["hello", "你", "好"]);
    }

    #[test]
    fn appends_without_clearing() {
        let wp = tiny();
        let mut ids = vec![7];
        wp.encode_into("hello", &mut ids);
        wp.encode_into("world", &mut ids);
        assert_eq!(ids, [7, 4, 5]);
        wp.encode_into("", &mut ids);
        wp.encode_into(" \u{3000} ", &mut ids);
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn vocabulary_and_special_ids() {
        let wp = tiny();
        assert_eq!(wp.vocab_size(), 27);
        assert_eq!(wp.token_id("##able"), Some(8));
        assert_eq!(wp.token_id("able"), None);
        assert_eq!(wp.id_to_token(5), Some("world"));
        assert_eq!(wp.id_to_token(27), None);
        assert_eq!(
            wp.special_ids(),
            SpecialIds {
                cls: Some(2),
                sep: Some(3),
                pad: Some(0),
                unk: 1
            }
        );
        assert!(wp.memory_bytes() > 0);
    }

    #[test]
    fn refuses_other_models() {
        let err = WordPiece::from_tokenizer_json(&tiny_json("BPE")).unwrap_err();
        assert!(
            err.contains("\"BPE\"") && err.contains("WordPiece"),
            "{err}"
        );
        let err = WordPiece::from_tokenizer_json("{").unwrap_err();
        assert!(err.contains("JSON"), "{err}");
        let no_unk =
            tiny_json("WordPiece").replace("\"unk_token\":\"[UNK]\"", "\"unk_token\":\"<unk>\"");
        let err = WordPiece::from_tokenizer_json(&no_unk).unwrap_err();
        assert!(err.contains("<unk>"), "{err}");
    }

    #[test]
    fn punctuation_table_is_sorted() {
        assert_eq!(PUNCTUATION.len() % 2, 0);
        assert!(PUNCTUATION.windows(2).all(|w| w[0] <= w[1]));
        for c in ['¿', '«', '»', '\u{2014}', '…', '、', '。', '！', '\u{FF65}'] {
            assert!(is_punctuation(c), "{c:?}");
        }
        for c in ['a', '€', '©', '°', 'é', '中', '\u{FF66}', '😀'] {
            assert!(!is_punctuation(c), "{c:?}");
        }
    }
}
