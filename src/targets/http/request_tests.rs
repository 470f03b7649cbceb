//! Request building: the OpenAPI 3.1.1 style-examples table for every location, then
//! encoding, security and header cases.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::auth::outbound::{ApiKeyLocation, CredentialProvider};
use crate::targets::http::{
    BodyBinding, BodyEncoding, BodySource, HttpOperation, HttpTarget, ParamBinding, ParamLocation,
    ParamStyle, PathSegment,
};

fn param(name: &str, location: ParamLocation, style: ParamStyle, explode: bool) -> ParamBinding {
    ParamBinding {
        arg: name.into(),
        name: name.into(),
        location,
        style,
        explode,
        allow_reserved: false,
        json_content: false,
    }
}

fn lit(s: &str) -> PathSegment {
    PathSegment::Literal(s.into())
}

fn operation(params: Vec<ParamBinding>, path: Vec<PathSegment>) -> HttpOperation {
    HttpOperation {
        method: Method::GET,
        base_url: Arc::from("http://api.test:8080/base"),
        path: path.into(),
        params: params.into(),
        body: None,
        accept: None,
    }
}

fn target(credentials: Option<CredentialProvider>) -> HttpTarget {
    HttpTarget {
        name: Arc::from("t"),
        credentials,
        timeout: Duration::from_secs(1),
        max_response_bytes: 1 << 20,
    }
}

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("test arguments must be an object"),
    }
}

fn build(op: &HttpOperation, value: Value) -> Result<http::Request<RequestBody>, UpstreamError> {
    build_request(&target(None), op, &args(value))
}

fn primitive() -> Value {
    json!(5)
}
fn array() -> Value {
    json!([3, 4, 5])
}
fn object() -> Value {
    json!({"R": 100, "G": 200, "B": 150})
}

/// One row of the style table: style, explode, and the expected serialization of the
/// primitive `5`, the array `[3,4,5]` and the object `{"R":100,"G":200,"B":150}`.
type Row = (ParamStyle, bool, &'static str, &'static str, &'static str);

/// Serializes `color` = each of the three values at `location` and returns what lands on
/// the wire (path after `/base/p/`, query, header value or Cookie header).
fn serialize(location: ParamLocation, style: ParamStyle, explode: bool, value: Value) -> String {
    let path = if location == ParamLocation::Path {
        vec![lit("/p/"), PathSegment::Param(0)]
    } else {
        vec![lit("/p")]
    };
    let op = operation(vec![param("color", location, style, explode)], path);
    let request = build(&op, json!({ "color": value })).expect("request builds");
    match location {
        ParamLocation::Path => request
            .uri()
            .path()
            .strip_prefix("/base/p/")
            .expect("path prefix kept")
            .to_string(),
        ParamLocation::Query => request.uri().query().unwrap_or("").to_string(),
        ParamLocation::Header => request.headers()["color"].to_str().unwrap().to_string(),
        ParamLocation::Cookie => request.headers()["cookie"].to_str().unwrap().to_string(),
    }
}

fn check_rows(location: ParamLocation, rows: &[Row]) {
    for &(style, explode, p, a, o) in rows {
        for (kind, value, expected) in [
            ("primitive", primitive(), p),
            ("array", array(), a),
            ("object", object(), o),
        ] {
            assert_eq!(
                serialize(location, style, explode, value),
                expected,
                "{location:?} {style:?} explode={explode} {kind}"
            );
        }
    }
}

#[test]
fn path_styles_follow_the_table() {
    use ParamStyle::*;
    check_rows(
        ParamLocation::Path,
        &[
            (Simple, false, "5", "3,4,5", "R,100,G,200,B,150"),
            (Simple, true, "5", "3,4,5", "R=100,G=200,B=150"),
            (Label, false, ".5", ".3,4,5", ".R,100,G,200,B,150"),
            (Label, true, ".5", ".3.4.5", ".R=100.G=200.B=150"),
            (
                Matrix,
                false,
                ";color=5",
                ";color=3,4,5",
                ";color=R,100,G,200,B,150",
            ),
            (
                Matrix,
                true,
                ";color=5",
                ";color=3;color=4;color=5",
                ";R=100;G=200;B=150",
            ),
        ],
    );
}

#[test]
fn query_styles_follow_the_table() {
    use ParamStyle::*;
    check_rows(
        ParamLocation::Query,
        &[
            (
                Form,
                false,
                "color=5",
                "color=3,4,5",
                "color=R,100,G,200,B,150",
            ),
            (
                Form,
                true,
                "color=5",
                "color=3&color=4&color=5",
                "R=100&G=200&B=150",
            ),
            (
                SpaceDelimited,
                false,
                "color=5", // n/a in the table: falls back to form
                "color=3%204%205",
                "color=R%20100%20G%20200%20B%20150",
            ),
            (
                PipeDelimited,
                false,
                "color=5", // n/a: form
                "color=3%7C4%7C5",
                "color=R%7C100%7CG%7C200%7CB%7C150",
            ),
            (
                DeepObject,
                true,
                "color=5",                 // n/a: form
                "color=3&color=4&color=5", // n/a: form, exploded
                "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
            ),
        ],
    );
}

#[test]
fn query_combinations_the_table_marks_na_fall_back_to_form() {
    use ParamStyle::*;
    check_rows(
        ParamLocation::Query,
        &[
            (
                SpaceDelimited,
                true,
                "color=5",
                "color=3&color=4&color=5",
                "R=100&G=200&B=150",
            ),
            (
                PipeDelimited,
                true,
                "color=5",
                "color=3&color=4&color=5",
                "R=100&G=200&B=150",
            ),
            (
                DeepObject,
                false,
                "color=5",
                "color=3,4,5",
                "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
            ),
        ],
    );
}

#[test]
fn header_styles_follow_the_table() {
    use ParamStyle::*;
    check_rows(
        ParamLocation::Header,
        &[
            (Simple, false, "5", "3,4,5", "R,100,G,200,B,150"),
            (Simple, true, "5", "3,4,5", "R=100,G=200,B=150"),
        ],
    );
}

#[test]
fn cookie_styles_follow_the_table_with_cookie_separators() {
    use ParamStyle::*;
    check_rows(
        ParamLocation::Cookie,
        &[
            (
                Form,
                false,
                "color=5",
                "color=3,4,5",
                "color=R,100,G,200,B,150",
            ),
            (
                Form,
                true,
                "color=5",
                "color=3; color=4; color=5",
                "R=100; G=200; B=150",
            ),
        ],
    );
}

#[test]
fn empty_strings_follow_the_table() {
    use ParamLocation::*;
    use ParamStyle::*;
    assert_eq!(serialize(Query, Form, true, json!("")), "color=");
    assert_eq!(serialize(Path, Matrix, false, json!("")), ";color");
    assert_eq!(serialize(Path, Simple, false, json!("")), "");
    // `.` alone would be a dot segment: its dot is encoded.
    assert_eq!(serialize(Path, Label, false, json!("")), "%2E");
    assert_eq!(serialize(Cookie, Form, false, json!("")), "color=");
}

#[test]
fn scalars_are_spelled_like_json() {
    use ParamLocation::*;
    use ParamStyle::*;
    assert_eq!(serialize(Query, Form, true, json!(true)), "color=true");
    assert_eq!(serialize(Query, Form, true, json!(false)), "color=false");
    assert_eq!(serialize(Query, Form, true, json!(-2.5)), "color=-2.5");
    assert_eq!(
        serialize(Query, Form, false, json!([1.5, true, "x y"])),
        "color=1.5,true,x%20y"
    );
    // Nested values have no RFC 6570 form: JSON text, encoded.
    assert_eq!(
        serialize(Query, Form, true, json!([{"a": 1}])),
        "color=%7B%22a%22%3A1%7D"
    );
}

#[test]
fn null_and_absent_parameters_are_omitted() {
    let op = operation(
        vec![
            param("a", ParamLocation::Query, ParamStyle::Form, true),
            param("b", ParamLocation::Query, ParamStyle::Form, true),
            param("c", ParamLocation::Query, ParamStyle::Form, true),
            param("d", ParamLocation::Query, ParamStyle::Form, true),
            param("h", ParamLocation::Header, ParamStyle::Simple, false),
            param("k", ParamLocation::Cookie, ParamStyle::Form, true),
        ],
        vec![lit("/q")],
    );
    let request = build(
        &op,
        json!({"a": null, "b": [], "c": {"x": null}, "d": [null, 1], "h": null}),
    )
    .unwrap();
    assert_eq!(request.uri().query(), Some("d=1"));
    assert!(request.headers().get("h").is_none());
    assert!(request.headers().get("cookie").is_none());

    let request = build(&op, json!({})).unwrap();
    assert_eq!(request.uri().path_and_query().unwrap(), "/base/q");
}

#[test]
fn query_parameters_keep_declaration_order() {
    let op = operation(
        vec![
            param("z", ParamLocation::Query, ParamStyle::Form, true),
            param("a", ParamLocation::Query, ParamStyle::Form, true),
        ],
        vec![lit("/q")],
    );
    let request = build(&op, json!({"a": 1, "z": 2})).unwrap();
    assert_eq!(request.uri().query(), Some("z=2&a=1"));
}

#[test]
fn a_path_written_with_a_query_gets_its_parameters_after_an_ampersand() {
    // OpenAI's `/responses/{response_id}?beta=true` with its `include` query parameter.
    let op = operation(
        vec![
            param("id", ParamLocation::Path, ParamStyle::Simple, false),
            param("include", ParamLocation::Query, ParamStyle::Form, true),
        ],
        vec![lit("/responses/"), PathSegment::Param(0), lit("?beta=true")],
    );
    let request = build(&op, json!({"id": "r?1", "include": ["a", "b"]})).unwrap();
    assert_eq!(
        request.uri().to_string(),
        "http://api.test:8080/base/responses/r%3F1?beta=true&include=a&include=b"
    );
    let request = build(&op, json!({"id": "r"})).unwrap();
    assert_eq!(request.uri().query(), Some("beta=true"));
}

#[test]
fn path_values_are_encoded_for_one_segment() {
    use ParamLocation::Path;
    use ParamStyle::Simple;
    let cases = [
        ("a/b", "a%2Fb"),
        ("a b?c#d", "a%20b%3Fc%23d"),
        ("50%", "50%25"),
        ("é€😀", "%C3%A9%E2%82%AC%F0%9F%98%80"),
        (":@!$&'()*+,;=", "%3A%40%21%24%26%27%28%29%2A%2B%2C%3B%3D"),
        ("-._~", "-._~"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("...", "..."),
        ("../../admin", "..%2F..%2Fadmin"),
        ("%2e%2e", "%252e%252e"),
    ];
    for (value, expected) in cases {
        assert_eq!(
            serialize(Path, Simple, false, json!(value)),
            expected,
            "{value}"
        );
    }
}

#[test]
fn glued_dot_values_cannot_form_a_dot_segment() {
    let op = operation(
        vec![
            param("a", ParamLocation::Path, ParamStyle::Simple, false),
            param("b", ParamLocation::Path, ParamStyle::Simple, false),
        ],
        vec![
            lit("/f/"),
            PathSegment::Param(0),
            PathSegment::Param(1),
            lit("/x"),
        ],
    );
    let request = build(&op, json!({"a": ".", "b": "."})).unwrap();
    assert_eq!(request.uri().path(), "/base/f/%2E%2E/x");
    let request = build(&op, json!({"a": "", "b": "."})).unwrap();
    assert_eq!(request.uri().path(), "/base/f/%2E/x");
}

#[test]
fn values_cannot_change_the_authority() {
    // A template that starts with a variable, right after a bare authority.
    let mut op = operation(
        vec![param("p", ParamLocation::Path, ParamStyle::Simple, false)],
        vec![PathSegment::Param(0)],
    );
    op.base_url = Arc::from("http://api.test:8080");
    for value in ["evil.test", "@evil.test", ":1/x", "//evil.test/x", "\\evil"] {
        let request = build(&op, json!({ "p": value })).unwrap();
        let uri = request.uri();
        assert_eq!(uri.scheme_str(), Some("http"), "{value}");
        assert_eq!(uri.host(), Some("api.test"), "{value}");
        assert_eq!(uri.port_u16(), Some(8080), "{value}");
        assert!(uri.path().starts_with('/'), "{value}");
        assert_eq!(uri.path().matches('/').count(), 1, "{value}");
    }
    // Nor can query values add a fragment or a path.
    let op = operation(
        vec![param("q", ParamLocation::Query, ParamStyle::Form, true)],
        vec![lit("/q")],
    );
    let request = build(&op, json!({"q": "x#/../y&admin=1"})).unwrap();
    assert_eq!(request.uri().path(), "/base/q");
    assert_eq!(request.uri().query(), Some("q=x%23%2F..%2Fy%26admin%3D1"));
}

#[test]
fn missing_path_parameter_is_a_request_error() {
    let op = operation(
        vec![param("id", ParamLocation::Path, ParamStyle::Simple, false)],
        vec![lit("/pets/"), PathSegment::Param(0)],
    );
    for value in [json!({}), json!({"id": null})] {
        let err = build(&op, value).unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Request(m) if m.contains("id")),
            "{err}"
        );
    }
}

#[test]
fn allow_reserved_keeps_reserved_characters_in_query_values() {
    let mut p = param("next", ParamLocation::Query, ParamStyle::Form, true);
    p.allow_reserved = true;
    let op = operation(vec![p], vec![lit("/q")]);
    let request = build(&op, json!({"next": "/a/b?c=d,e:f@g [h] 50%25 #x"})).unwrap();
    assert_eq!(
        request.uri().query(),
        Some("next=/a/b?c=d,e:f@g%20[h]%2050%25%20%23x")
    );

    let op = operation(
        vec![param("next", ParamLocation::Query, ParamStyle::Form, true)],
        vec![lit("/q")],
    );
    let request = build(&op, json!({"next": "/a?b"})).unwrap();
    assert_eq!(request.uri().query(), Some("next=%2Fa%3Fb"));
}

#[test]
fn json_content_parameters_are_json_then_encoded_for_their_location() {
    let mk = |location, style| {
        let mut p = param("filter", location, style, false);
        p.json_content = true;
        p
    };
    let op = operation(
        vec![
            mk(ParamLocation::Path, ParamStyle::Simple),
            mk(ParamLocation::Query, ParamStyle::Form),
            mk(ParamLocation::Header, ParamStyle::Simple),
            mk(ParamLocation::Cookie, ParamStyle::Form),
        ],
        vec![lit("/f/"), PathSegment::Param(0)],
    );
    let value = json!({"filter": {"name": "a b", "ids": [1, 2]}});
    let request = build(&op, value).unwrap();
    let encoded = "%7B%22name%22%3A%22a%20b%22%2C%22ids%22%3A%5B1%2C2%5D%7D";
    assert_eq!(request.uri().path(), format!("/base/f/{encoded}"));
    assert_eq!(request.uri().query(), Some(&*format!("filter={encoded}")));
    assert_eq!(request.headers()["filter"], r#"{"name":"a b","ids":[1,2]}"#);
    assert_eq!(request.headers()["cookie"], format!("filter={encoded}"));
}

#[test]
fn header_values_with_control_characters_are_refused() {
    let op = operation(
        vec![param(
            "X-Note",
            ParamLocation::Header,
            ParamStyle::Simple,
            false,
        )],
        vec![lit("/h")],
    );
    for value in [
        json!("a\r\nX-Evil: 1"),
        json!("a\nb"),
        json!("a\rb"),
        json!("nul\0"),
        json!("del\u{7f}"),
        json!(["ok", "bad\r\n"]),
        json!({"k": "v\n"}),
    ] {
        let err = build(&op, json!({ "X-Note": value })).unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Request(m) if m.contains("x-note")),
            "{value}: {err}"
        );
    }
    // Tabs, quotes and non-ASCII text are valid header content (sent as UTF-8 bytes).
    let request = build(&op, json!({"X-Note": "a\tb \"é\""})).unwrap();
    assert_eq!(
        request.headers()["x-note"].as_bytes(),
        "a\tb \"é\"".as_bytes()
    );
}

#[test]
fn header_parameters_cannot_set_managed_headers() {
    for name in [
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "Cookie",
        "Upgrade",
        "Proxy-Authorization",
    ] {
        let op = operation(
            vec![param(
                name,
                ParamLocation::Header,
                ParamStyle::Simple,
                false,
            )],
            vec![lit("/h")],
        );
        let err = build(&op, json!({ name: "x" })).unwrap_err();
        assert!(matches!(err, UpstreamError::Request(_)), "{name}");
    }
    // OpenAPI: Accept, Content-Type and Authorization parameters SHALL be ignored.
    for name in ["Accept", "Content-Type", "Authorization"] {
        let op = operation(
            vec![param(
                name,
                ParamLocation::Header,
                ParamStyle::Simple,
                false,
            )],
            vec![lit("/h")],
        );
        let request = build(&op, json!({ name: "x" })).unwrap();
        assert!(request.headers().get(name).is_none(), "{name}");
    }
    let op = operation(
        vec![param(
            "bad name",
            ParamLocation::Header,
            ParamStyle::Simple,
            false,
        )],
        vec![lit("/h")],
    );
    assert!(matches!(
        build(&op, json!({"bad name": "x"})),
        Err(UpstreamError::Request(_))
    ));
}

#[test]
fn cookie_values_are_percent_encoded() {
    let op = operation(
        vec![
            param("a", ParamLocation::Cookie, ParamStyle::Form, true),
            param("b", ParamLocation::Cookie, ParamStyle::Form, true),
        ],
        vec![lit("/c")],
    );
    let request = build(&op, json!({"a": "x; y=1", "b": "é,\""})).unwrap();
    assert_eq!(
        request.headers()["cookie"],
        "a=x%3B%20y%3D1; b=%C3%A9%2C%22"
    );
}

#[test]
fn only_gateway_headers_are_sent() {
    let mut op = operation(vec![], vec![lit("/x")]);
    op.accept = Some(HeaderValue::from_static("application/json"));
    let request = build(&op, json!({"unrelated": "x"})).unwrap();
    let mut names: Vec<_> = request.headers().keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["accept", "user-agent"]);
    assert_eq!(request.headers()["accept"], "application/json");
    assert_eq!(
        request.headers()["user-agent"],
        format!("toolgate/{}", crate::VERSION).as_str()
    );
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri(), "http://api.test:8080/base/x");
}

#[test]
fn bearer_credentials_set_authorization_and_win_over_parameters() {
    let op = operation(
        vec![param(
            "Authorization",
            ParamLocation::Header,
            ParamStyle::Simple,
            false,
        )],
        vec![lit("/x")],
    );
    let target = target(Some(CredentialProvider::bearer("s3cret").unwrap()));
    let request = build_request(&target, &op, &args(json!({"Authorization": "mine"}))).unwrap();
    let values: Vec<_> = request.headers().get_all("authorization").iter().collect();
    assert_eq!(values, ["Bearer s3cret"]);
    assert!(values[0].is_sensitive());
}

#[test]
fn api_key_goes_to_header_query_or_cookie() {
    let op = operation(
        vec![
            param("q", ParamLocation::Query, ParamStyle::Form, true),
            param("c", ParamLocation::Cookie, ParamStyle::Form, true),
            param("X-Key", ParamLocation::Header, ParamStyle::Simple, false),
        ],
        vec![lit("/x")],
    );
    let call = |location, value: Value| {
        let credentials = CredentialProvider::api_key(location, "X-Key", "k/1 +").unwrap();
        build_request(&target(Some(credentials)), &op, &args(value)).unwrap()
    };

    let request = call(ApiKeyLocation::Header, json!({"X-Key": "forged"}));
    let values: Vec<_> = request.headers().get_all("x-key").iter().collect();
    assert_eq!(values, ["k/1 +"]);

    let request = call(ApiKeyLocation::Query, json!({"q": 1}));
    assert_eq!(request.uri().query(), Some("q=1&X-Key=k%2F1%20%2B"));
    let request = call(ApiKeyLocation::Query, json!({}));
    assert_eq!(request.uri().query(), Some("X-Key=k%2F1%20%2B"));

    let request = call(ApiKeyLocation::Cookie, json!({"c": "v"}));
    assert_eq!(request.headers()["cookie"], "c=v; X-Key=k/1 +");
    assert!(request.headers()["cookie"].is_sensitive());
    let request = call(ApiKeyLocation::Cookie, json!({}));
    assert_eq!(request.headers()["cookie"], "X-Key=k/1 +");
}

#[test]
fn body_sets_content_type_and_length() {
    let mut op = operation(vec![], vec![lit("/x")]);
    op.method = Method::POST;
    op.body = Some(BodyBinding {
        content_type: HeaderValue::from_static("application/json"),
        encoding: BodyEncoding::Json,
        source: BodySource::Properties(vec!["name".into(), "tag".into()].into()),
        required: false,
        binary_parts: Box::default(),
    });
    let request = build(&op, json!({"tag": "t", "name": "n"})).unwrap();
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(request.headers()["content-length"], "22"); // {"name":"n","tag":"t"}
    assert_eq!(request.method(), Method::POST);

    // An optional body with no argument: no body, no body headers.
    let request = build(&op, json!({})).unwrap();
    assert!(request.headers().get("content-type").is_none());
    assert!(request.headers().get("content-length").is_none());
}

#[test]
fn user_agent_matches_crate_version() {
    assert_eq!(
        USER_AGENT.to_str().unwrap(),
        format!("toolgate/{}", crate::VERSION)
    );
}
