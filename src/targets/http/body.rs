//! Request bodies: JSON, `application/x-www-form-urlencoded`, `multipart/form-data`, text
//! and binary, from the arguments named by a [`BodyBinding`].
//!
//! Multipart file parts: an argument (or array item) that is an object with exactly a
//! string `content` (base64) and optionally string `filename` and `contentType` members is
//! sent as a file part: `content` decoded, `filename` (default `blob`, as browsers do) in
//! `Content-Disposition`, `contentType` (default `application/octet-stream`) as the part's
//! `Content-Type`. Other objects are `application/json` parts; strings, numbers and
//! booleans are plain text parts; each array item is its own part under the same name.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Map, Value};

use super::encode::{Escape, push_escaped, push_scalar};
use super::{BodyBinding, BodyEncoding, BodySource};
use crate::targets::UpstreamError;

/// An encoded request body and its `Content-Type`.
#[derive(Debug)]
pub(super) struct EncodedBody {
    pub(super) bytes: Bytes,
    pub(super) content_type: HeaderValue,
}

/// What the arguments hold for the body.
enum Source<'a> {
    /// One argument is the whole body.
    Whole(&'a Value),
    /// The body object is these present arguments, in binding order.
    Properties(&'a Map<String, Value>, &'a [Box<str>]),
}

impl<'a> Source<'a> {
    /// The body's top-level members (name, value) when the body is an object.
    fn members(&self) -> Result<Members<'a>, UpstreamError> {
        match *self {
            Source::Properties(args, names) => Ok(Members::Properties(args, names.iter())),
            Source::Whole(Value::Object(map)) => Ok(Members::Object(map.iter())),
            Source::Whole(_) => Err(UpstreamError::Request(
                "a form or multipart body must be an object".into(),
            )),
        }
    }
}

enum Members<'a> {
    Properties(&'a Map<String, Value>, std::slice::Iter<'a, Box<str>>),
    Object(serde_json::map::Iter<'a>),
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Members::Properties(args, names) => names.find_map(|name| {
                args.get_key_value(&**name)
                    .map(|(key, value)| (key.as_str(), value))
            }),
            Members::Object(iter) => iter.next().map(|(key, value)| (key.as_str(), value)),
        }
    }
}

/// Encodes the body of one call. `None` when the operation's body is optional and no body
/// argument was given.
pub(super) fn encode_body(
    binding: &BodyBinding,
    args: &Map<String, Value>,
) -> Result<Option<EncodedBody>, UpstreamError> {
    let source = match &binding.source {
        BodySource::Whole(arg) => args.get(&**arg).filter(|v| !v.is_null()).map(Source::Whole),
        BodySource::Properties(names) => names
            .iter()
            .any(|name| args.contains_key(&**name))
            .then_some(Source::Properties(args, names)),
    };
    let Some(source) = source else {
        if !binding.required {
            return Ok(None);
        }
        let empty: &[u8] = match binding.encoding {
            BodyEncoding::Json => b"{}",
            _ => b"",
        };
        if binding.encoding == BodyEncoding::Multipart {
            // An empty multipart body still needs its closing delimiter.
            let boundary = new_boundary();
            let mut body = Vec::new();
            close_multipart(&mut body, &boundary);
            return Ok(Some(EncodedBody {
                bytes: body.into(),
                content_type: multipart_content_type(&binding.content_type, &boundary)?,
            }));
        }
        return Ok(Some(EncodedBody {
            bytes: Bytes::from_static(empty),
            content_type: binding.content_type.clone(),
        }));
    };

    let (bytes, content_type) = match binding.encoding {
        BodyEncoding::Json => (json(&source)?, binding.content_type.clone()),
        BodyEncoding::Form => (form(&source)?, binding.content_type.clone()),
        BodyEncoding::Multipart => {
            let boundary = new_boundary();
            let body = multipart(&source, &boundary, &binding.binary_parts)?;
            (
                body,
                multipart_content_type(&binding.content_type, &boundary)?,
            )
        }
        BodyEncoding::Text => (text(&source)?, binding.content_type.clone()),
        BodyEncoding::Binary => (binary(&source)?, binding.content_type.clone()),
    };
    Ok(Some(EncodedBody {
        bytes,
        content_type,
    }))
}

fn json_error(e: serde_json::Error) -> UpstreamError {
    UpstreamError::Request(format!("cannot serialize the body as JSON: {e}"))
}

/// The JSON body, written without building an intermediate `Value`.
fn json(source: &Source<'_>) -> Result<Bytes, UpstreamError> {
    let mut out = Vec::with_capacity(128);
    match source {
        Source::Whole(value) => serde_json::to_writer(&mut out, value).map_err(json_error)?,
        Source::Properties(..) => {
            out.push(b'{');
            for (i, (name, value)) in source.members()?.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, name).map_err(json_error)?;
                out.push(b':');
                serde_json::to_writer(&mut out, value).map_err(json_error)?;
            }
            out.push(b'}');
        }
    }
    Ok(out.into())
}

/// `application/x-www-form-urlencoded`: each member `form`-style exploded (the Encoding
/// Object default): arrays repeat the name, objects contribute their own `key=value` pairs;
/// values nested deeper are JSON text. `null`s are left out.
fn form(source: &Source<'_>) -> Result<Bytes, UpstreamError> {
    fn pair(out: &mut String, key: &str, value: &Value) -> Result<(), UpstreamError> {
        if value.is_null() {
            return Ok(());
        }
        if !out.is_empty() {
            out.push('&');
        }
        push_escaped(out, key, Escape::Form);
        out.push('=');
        push_scalar(out, value, Escape::Form)
    }
    let mut out = String::with_capacity(128);
    for (name, value) in source.members()? {
        match value {
            Value::Array(items) => {
                for item in items {
                    pair(&mut out, name, item)?;
                }
            }
            Value::Object(map) => {
                for (key, member) in map {
                    pair(&mut out, key, member)?;
                }
            }
            scalar => pair(&mut out, name, scalar)?,
        }
    }
    Ok(out.into())
}

static BOUNDARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh boundary with 128 unpredictable bits (SipHash under std's per-process random
/// keys), so no argument can contain it by accident or design.
fn new_boundary() -> String {
    let n = BOUNDARY_COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one((n, 0u8));
    let b = state.hash_one((n, 1u8));
    format!("toolgate-{a:016x}{b:016x}")
}

fn multipart_content_type(
    base: &HeaderValue,
    boundary: &str,
) -> Result<HeaderValue, UpstreamError> {
    let base = base.to_str().unwrap_or("multipart/form-data");
    let media_type = base.split(';').next().unwrap_or(base).trim();
    HeaderValue::try_from(format!("{media_type}; boundary={boundary}"))
        .map_err(|_| UpstreamError::Request("invalid multipart content type".into()))
}

/// A file part, recognized by its shape (see the module comment).
struct FilePart<'a> {
    content: &'a str,
    filename: Option<&'a str>,
    content_type: Option<&'a str>,
}

fn as_file(map: &Map<String, Value>) -> Option<FilePart<'_>> {
    let content = map.get("content")?.as_str()?;
    let mut file = FilePart {
        content,
        filename: None,
        content_type: None,
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("content", _) => {}
            ("filename", Value::String(s)) => file.filename = Some(s),
            ("contentType", Value::String(s)) => file.content_type = Some(s),
            _ => return None,
        }
    }
    Some(file)
}

/// Writes a quoted `Content-Disposition` parameter value, escaping `"`, CR and LF as the
/// HTML form submission algorithm does (`%22`, `%0D`, `%0A`).
fn push_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn part_head(
    out: &mut Vec<u8>,
    boundary: &str,
    name: &str,
    filename: Option<&str>,
    content_type: Option<&str>,
) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=");
    push_quoted(out, name);
    if let Some(filename) = filename {
        out.extend_from_slice(b"; filename=");
        push_quoted(out, filename);
    }
    out.extend_from_slice(b"\r\n");
    if let Some(content_type) = content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(content_type.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn close_multipart(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// Writes one part; a string of a `binary` field is base64 file content, sent decoded.
fn binary_or_part(
    out: &mut Vec<u8>,
    boundary: &str,
    name: &str,
    value: &Value,
    binary: bool,
) -> Result<(), UpstreamError> {
    match value {
        Value::String(content) if binary => {
            let data = decode_base64(content).map_err(|e| {
                UpstreamError::Request(format!(
                    "part `{name}`: the file content is not base64: {e}"
                ))
            })?;
            part_head(
                out,
                boundary,
                name,
                Some(name),
                Some("application/octet-stream"),
            );
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
            Ok(())
        }
        value => part(out, boundary, name, value),
    }
}

/// Writes one part for `value` (not an array).
fn part(out: &mut Vec<u8>, boundary: &str, name: &str, value: &Value) -> Result<(), UpstreamError> {
    match value {
        Value::Null => return Ok(()),
        Value::Object(map) => {
            if let Some(file) = as_file(map) {
                let content_type = file.content_type.unwrap_or("application/octet-stream");
                // The content type lands in a part header: refuse anything that could
                // start a new header line.
                if HeaderValue::from_str(content_type).is_err() {
                    return Err(UpstreamError::Request(format!(
                        "part `{name}`: contentType is not a valid header value"
                    )));
                }
                let data = decode_base64(file.content).map_err(|e| {
                    UpstreamError::Request(format!("part `{name}`: content is not base64: {e}"))
                })?;
                part_head(
                    out,
                    boundary,
                    name,
                    Some(file.filename.unwrap_or("blob")),
                    Some(content_type),
                );
                out.extend_from_slice(&data);
            } else {
                part_head(out, boundary, name, None, Some("application/json"));
                serde_json::to_writer(&mut *out, value).map_err(json_error)?;
            }
        }
        Value::Array(_) => {
            part_head(out, boundary, name, None, Some("application/json"));
            serde_json::to_writer(&mut *out, value).map_err(json_error)?;
        }
        Value::String(s) => {
            part_head(out, boundary, name, None, None);
            out.extend_from_slice(s.as_bytes());
        }
        scalar => {
            part_head(out, boundary, name, None, None);
            let mut text = String::new();
            push_scalar(&mut text, scalar, Escape::Verbatim)?;
            out.extend_from_slice(text.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn multipart(
    source: &Source<'_>,
    boundary: &str,
    binary_parts: &[Box<str>],
) -> Result<Bytes, UpstreamError> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in source.members()? {
        let binary = binary_parts.iter().any(|b| **b == *name);
        match value {
            Value::Array(items) => {
                for item in items {
                    binary_or_part(&mut out, boundary, name, item, binary)?;
                }
            }
            value => binary_or_part(&mut out, boundary, name, value, binary)?,
        }
    }
    close_multipart(&mut out, boundary);
    Ok(out.into())
}

/// A text body: a string as is; anything else as JSON text.
fn text(source: &Source<'_>) -> Result<Bytes, UpstreamError> {
    match source {
        Source::Whole(Value::String(s)) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        _ => json(source),
    }
}

/// A binary body: the argument is base64 (standard or URL-safe alphabet, padding optional).
fn binary(source: &Source<'_>) -> Result<Bytes, UpstreamError> {
    match source {
        Source::Whole(Value::String(s)) => decode_base64(s)
            .map(Bytes::from)
            .map_err(|e| UpstreamError::Request(format!("the body is not valid base64: {e}"))),
        _ => Err(UpstreamError::Request(
            "a binary body must be a base64 string".into(),
        )),
    }
}

fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let engine = if s.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    match engine.decode(s) {
        Ok(data) => Ok(data),
        // MIME-style line breaks are common in pasted base64; retry without whitespace.
        Err(e) if s.contains(|c: char| c.is_ascii_whitespace()) => {
            let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            engine.decode(compact).map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
