//! Reading a document from disk: JSON or YAML, told apart by content, parsed into one
//! `serde_json::Value` with bounded resources.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::SpecError;

/// Largest document read (bytes). The biggest public specs are a few tens of MB.
const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Reads and parses the document at `path`.
pub(crate) fn read_document(path: &Path) -> Result<Value, SpecError> {
    let error = |reason: String| SpecError {
        file: path.to_path_buf(),
        pointer: String::new(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| error(format!("cannot read the file: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(error(format!(
            "the file is {} bytes, more than the {MAX_FILE_BYTES} bytes accepted",
            meta.len()
        )));
    }
    // Bounded even when the size is unknown (a pipe, a device such as /dev/zero).
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| error(format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(error(format!(
            "the file is more than the {MAX_FILE_BYTES} bytes accepted"
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| error(format!("the file is not UTF-8 text: {e}")))?;
    parse_document(text, path)
}

/// Parses `text` as JSON when it looks like JSON (first significant character `{` or `[`),
/// else as YAML. JSON is valid YAML, but the JSON parser is much faster and gives better
/// messages for JSON files. A JSON-looking file named `.yaml`/`.yml` that is not valid
/// JSON is read as YAML (a flow mapping); any other must be valid JSON, because YAML
/// would accept broken JSON like `{"a": }` as `{"a": null}`.
pub(crate) fn parse_document(text: &str, path: &Path) -> Result<Value, SpecError> {
    let error = |reason: String| SpecError {
        file: path.to_path_buf(),
        pointer: String::new(),
        reason,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let looks_like_json = text.trim_start().starts_with(['{', '[']);
    let yaml_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if looks_like_json {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => return Ok(value),
            Err(json_error) if !yaml_name => {
                return Err(error(format!("invalid JSON: {json_error}")));
            }
            Err(_) => {}
        }
    }
    let mut value = parse_yaml(text).map_err(|e| error(format!("invalid YAML: {e}")))?;
    restore_big_integers(&mut value);
    Ok(value)
}

/// The YAML parser reads an integer beyond 64 bits as a float, which would then be written
/// `1.8446744073709552e19`: a float where the document wrote an integer (pydantic refuses it
/// as an integer field's bound). Such floats are integral and at least 2^63 in magnitude;
/// they are turned back into the integer the document wrote, in the shortest digits that
/// round-trip, as JavaScript prints them (`18446744073709552000`), which is how such numbers
/// get into documents in the first place. JSON documents keep every number as written
/// (serde_json's `arbitrary_precision`).
fn restore_big_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return };
            if f.fract() != 0.0 || !(9.223_372_036_854_776e18..1e21).contains(&f.abs()) {
                return;
            }
            // `{:e}` is the shortest representation that round-trips: `1.8446744073709552e19`.
            let shortest = format!("{:e}", f.abs());
            let Some((mantissa, exponent)) = shortest.split_once('e') else {
                return;
            };
            let Ok(exponent) = exponent.parse::<usize>() else {
                return;
            };
            let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let Some(zeros) = (exponent + 1).checked_sub(digits.len()) else {
                return;
            };
            let sign = if f < 0.0 { "-" } else { "" };
            let text = format!("{sign}{digits}{}", "0".repeat(zeros));
            if let Ok(integer) = text.parse::<serde_json::Number>() {
                *n = integer;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(restore_big_integers),
        Value::Object(members) => members.values_mut().for_each(restore_big_integers),
        _ => {}
    }
}

fn parse_yaml(text: &str) -> Result<Value, serde_saphyr::Error> {
    // The default budget (1M events, 250k nodes) is sized for configuration files; large
    // API descriptions (OpenAI's is ~3 MB) need more. Alias expansion stays bounded by the
    // anchor/alias ratio check, which protects against "billion laughs" documents.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 50_000_000,
            max_nodes: 20_000_000,
            max_depth: 128,
        },
    };
    serde_saphyr::from_str_with_options(text, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_are_told_apart_by_content() {
        let p = Path::new("x");
        let json = parse_document("  {\"openapi\": \"3.0.0\"}", p).expect("json");
        assert_eq!(json["openapi"], "3.0.0");
        let yaml =
            parse_document("openapi: 3.1.0\nresponses:\n  200:\n    a: 1\n", p).expect("yaml");
        assert_eq!(yaml["openapi"], "3.1.0");
        // Integer-looking keys (status codes) become string keys.
        assert_eq!(yaml["responses"]["200"]["a"], 1);
    }

    #[test]
    fn yaml_flow_mapping_that_is_not_json_still_parses() {
        let v = parse_document("{openapi: 3.0.0}", Path::new("x.yaml")).expect("yaml flow");
        assert_eq!(v["openapi"], "3.0.0");
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_file_is_read_up_to_the_limit() {
        let e = read_document(Path::new("/dev/zero")).expect_err("endless");
        assert!(e.reason.contains("more than"), "{}", e.reason);
    }

    #[test]
    fn broken_input_reports_the_file_and_the_problem() {
        let e = parse_document("{\"a\": }", Path::new("spec.json")).expect_err("broken");
        assert_eq!(e.file, Path::new("spec.json"));
        assert!(e.reason.starts_with("invalid JSON"), "{}", e.reason);
        let e = parse_document("a: 'unterminated", Path::new("spec.yaml")).expect_err("broken");
        assert!(e.reason.starts_with("invalid YAML"), "{}", e.reason);
    }
}
