//! Body encodings: JSON, form, multipart (parsed back), text and binary.

use serde_json::json;

use super::*;

fn binding(content_type: &'static str, encoding: BodyEncoding, source: BodySource) -> BodyBinding {
    BodyBinding {
        content_type: HeaderValue::from_static(content_type),
        encoding,
        source,
        required: false,
        binary_parts: Box::default(),
    }
}

fn props(names: &[&str]) -> BodySource {
    BodySource::Properties(names.iter().map(|n| Box::from(*n)).collect())
}

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("test arguments must be an object"),
    }
}

fn encode(binding: &BodyBinding, value: Value) -> Result<Option<EncodedBody>, UpstreamError> {
    encode_body(binding, &args(value))
}

fn text_of(body: &EncodedBody) -> &str {
    std::str::from_utf8(&body.bytes).unwrap()
}

#[test]
fn json_properties_keep_binding_order_and_skip_absent_ones() {
    let b = binding(
        "application/json",
        BodyEncoding::Json,
        props(&["name", "tags", "owner", "note"]),
    );
    let body = encode(
        &b,
        json!({"owner": {"id": 1}, "name": "Rex", "tags": ["a"], "note": null, "limit": 5}),
    )
    .unwrap()
    .unwrap();
    // `note: null` is present (validated against the schema), `limit` is not a body property.
    assert_eq!(
        text_of(&body),
        r#"{"name":"Rex","tags":["a"],"owner":{"id":1},"note":null}"#
    );
    assert_eq!(body.content_type, "application/json");
}

#[test]
fn json_whole_argument_is_the_body() {
    let b = binding(
        "application/merge-patch+json",
        BodyEncoding::Json,
        BodySource::Whole("body".into()),
    );
    let body = encode(&b, json!({"body": [1, "two"], "id": 3}))
        .unwrap()
        .unwrap();
    assert_eq!(text_of(&body), r#"[1,"two"]"#);
    assert_eq!(body.content_type, "application/merge-patch+json");
}

#[test]
fn missing_body_is_empty_object_only_when_required() {
    let mut b = binding("application/json", BodyEncoding::Json, props(&["a"]));
    assert!(encode(&b, json!({"other": 1})).unwrap().is_none());
    b.required = true;
    let body = encode(&b, json!({})).unwrap().unwrap();
    assert_eq!(text_of(&body), "{}");

    let mut b = binding(
        "application/json",
        BodyEncoding::Json,
        BodySource::Whole("body".into()),
    );
    assert!(encode(&b, json!({"body": null})).unwrap().is_none());
    b.required = true;
    assert_eq!(text_of(&encode(&b, json!({})).unwrap().unwrap()), "{}");
}

#[test]
fn form_body_is_exploded_form_with_nested_values_as_json() {
    let b = binding(
        "application/x-www-form-urlencoded",
        BodyEncoding::Form,
        props(&["name", "tags", "color", "extra", "none", "flag"]),
    );
    let body = encode(
        &b,
        json!({
            "name": "a b&c=d~é",
            "tags": ["x", 2, null],
            "color": {"R": 100, "nested": {"k": [1]}},
            "none": null,
            "flag": true
        }),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        text_of(&body),
        "name=a%20b%26c%3Dd%7E%C3%A9&tags=x&tags=2&R=100&nested=%7B%22k%22%3A%5B1%5D%7D&flag=true"
    );
    assert_eq!(body.content_type, "application/x-www-form-urlencoded");

    let whole = binding(
        "application/x-www-form-urlencoded",
        BodyEncoding::Form,
        BodySource::Whole("body".into()),
    );
    let body = encode(&whole, json!({"body": {"a": 1, "b": "2"}}))
        .unwrap()
        .unwrap();
    assert_eq!(text_of(&body), "a=1&b=2");
    assert!(matches!(
        encode(&whole, json!({"body": "a=1"})),
        Err(UpstreamError::Request(_))
    ));
}

/// One parsed multipart part: name, filename, content type, data.
#[derive(Debug, PartialEq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn quoted_param(header: &str, key: &str) -> Option<String> {
    let start = header.find(&format!("{key}=\""))? + key.len() + 2;
    let end = start + header[start..].find('"')?;
    Some(header[start..end].to_string())
}

/// A strict RFC 7578 reader: every delimiter, CRLF and header is where it must be.
fn parse_multipart(body: &EncodedBody) -> Vec<Part> {
    let content_type = body.content_type.to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("boundary parameter");
    assert!(boundary.len() >= 32 && boundary.len() <= 70, "{boundary}");
    let delimiter = format!("--{boundary}");
    let mut rest: &[u8] = &body.bytes;
    let mut parts = Vec::new();
    assert!(
        rest.starts_with(delimiter.as_bytes()),
        "starts with a delimiter"
    );
    rest = &rest[delimiter.len()..];
    loop {
        if rest == b"--\r\n" {
            return parts;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after delimiter");
        let head_end = find(rest, b"\r\n\r\n").expect("end of part headers");
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        rest = &rest[head_end + 4..];
        let next = find(rest, format!("\r\n{delimiter}").as_bytes()).expect("next delimiter");
        let data = rest[..next].to_vec();
        rest = &rest[next + 2 + delimiter.len()..];
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data,
        };
        for line in head.split("\r\n") {
            let (key, value) = line.split_once(": ").expect("header line");
            match key {
                "Content-Disposition" => {
                    assert!(value.starts_with("form-data; "), "{value}");
                    part.name = quoted_param(value, "name").unwrap();
                    part.filename = quoted_param(value, "filename");
                }
                "Content-Type" => part.content_type = Some(value.to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        parts.push(part);
    }
}

fn part(name: &str, filename: Option<&str>, content_type: Option<&str>, data: &[u8]) -> Part {
    Part {
        name: name.into(),
        filename: filename.map(Into::into),
        content_type: content_type.map(Into::into),
        data: data.to_vec(),
    }
}

#[test]
fn multipart_body_parses_back_into_its_parts() {
    let b = binding(
        "multipart/form-data",
        BodyEncoding::Multipart,
        props(&["id", "meta", "file", "photos", "count", "q\"x", "skip"]),
    );
    let body = encode(
        &b,
        json!({
            "id": "a\r\n--b",
            "meta": {"k": "v"},
            "file": {"content": "aGVsbG8=", "filename": "a\"b.txt", "contentType": "text/plain"},
            "photos": [
                {"content": "AAEC"},
                "caption",
                [1, 2]
            ],
            "count": 3,
            "q\"x": true,
            "skip": null
        }),
    )
    .unwrap()
    .unwrap();
    let parts = parse_multipart(&body);
    assert_eq!(
        parts,
        [
            part("id", None, None, b"a\r\n--b"),
            part("meta", None, Some("application/json"), br#"{"k":"v"}"#),
            part("file", Some("a%22b.txt"), Some("text/plain"), b"hello"),
            part(
                "photos",
                Some("blob"),
                Some("application/octet-stream"),
                &[0, 1, 2]
            ),
            part("photos", None, None, b"caption"),
            part("photos", None, Some("application/json"), b"[1,2]"),
            part("count", None, None, b"3"),
            part("q%22x", None, None, b"true"),
        ]
    );
}

#[test]
fn multipart_boundaries_are_unique_and_empty_required_body_is_closed() {
    let mut b = binding(
        "multipart/form-data",
        BodyEncoding::Multipart,
        props(&["a"]),
    );
    let one = encode(&b, json!({"a": "x"})).unwrap().unwrap();
    let two = encode(&b, json!({"a": "x"})).unwrap().unwrap();
    assert_ne!(one.content_type, two.content_type);
    b.required = true;
    let empty = encode(&b, json!({})).unwrap().unwrap();
    assert!(parse_multipart(&empty).is_empty());
}

#[test]
fn multipart_objects_that_only_look_like_files_are_json() {
    let b = binding(
        "multipart/form-data",
        BodyEncoding::Multipart,
        props(&["doc", "bad"]),
    );
    let body = encode(&b, json!({"doc": {"content": "eA==", "other": 1}}))
        .unwrap()
        .unwrap();
    assert_eq!(
        parse_multipart(&body),
        [part(
            "doc",
            None,
            Some("application/json"),
            br#"{"content":"eA==","other":1}"#
        )]
    );
    let err = encode(&b, json!({"bad": {"content": "not base64!"}})).unwrap_err();
    assert!(
        matches!(&err, UpstreamError::Request(m) if m.contains("bad")),
        "{err}"
    );
    let err = encode(
        &b,
        json!({"bad": {"content": "eA==", "contentType": "text/plain\r\nX-Evil: 1"}}),
    )
    .unwrap_err();
    assert!(matches!(err, UpstreamError::Request(_)));
}

#[test]
fn text_body_is_sent_as_is() {
    let b = binding(
        "text/plain; charset=utf-8",
        BodyEncoding::Text,
        BodySource::Whole("body".into()),
    );
    let body = encode(&b, json!({"body": "héllo\n\"world\""}))
        .unwrap()
        .unwrap();
    assert_eq!(text_of(&body), "héllo\n\"world\"");
    assert_eq!(body.content_type, "text/plain; charset=utf-8");
}

#[test]
fn binary_body_is_base64_decoded() {
    let b = binding(
        "application/octet-stream",
        BodyEncoding::Binary,
        BodySource::Whole("body".into()),
    );
    let cases: [(&str, &[u8]); 5] = [
        ("AAH/", &[0, 1, 255]),
        ("AAH_", &[0, 1, 255]), // URL-safe alphabet
        ("AA==", &[0]),
        ("AA", &[0]), // padding optional
        ("AAH/\r\nAAH/", &[0, 1, 255, 0, 1, 255]),
    ];
    for (input, expected) in cases {
        let body = encode(&b, json!({ "body": input })).unwrap().unwrap();
        assert_eq!(&body.bytes[..], expected, "{input}");
    }
    for bad in [json!("***"), json!(42)] {
        assert!(
            matches!(
                encode(&b, json!({ "body": bad })),
                Err(UpstreamError::Request(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn binary_fields_take_base64_strings_and_send_the_bytes() {
    let mut b = binding(
        "multipart/form-data",
        BodyEncoding::Multipart,
        props(&["file", "files", "note"]),
    );
    b.binary_parts = vec![Box::from("file"), Box::from("files")].into();
    let body = encode(
        &b,
        json!({"file": "AAEC/w==", "files": ["aGk=", "eW8="], "note": "aGk="}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        parse_multipart(&body),
        [
            part(
                "file",
                Some("file"),
                Some("application/octet-stream"),
                &[0, 1, 2, 255]
            ),
            part(
                "files",
                Some("files"),
                Some("application/octet-stream"),
                b"hi"
            ),
            part(
                "files",
                Some("files"),
                Some("application/octet-stream"),
                b"yo"
            ),
            part("note", None, None, b"aGk="),
        ]
    );
    let err = encode(&b, json!({"file": "not base64!"})).unwrap_err();
    assert!(err.to_string().contains("part `file`"), "{err}");
}
