//! The HTTP execution path against a real hyper server on 127.0.0.1 that records every
//! request it receives: exact requests, credentials, statuses, timeouts, truncation and
//! connection failures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::{Answer, Recorded, Upstream};
use toolgate::auth::outbound::{ApiKeyLocation, CredentialProvider};
use toolgate::targets::UpstreamError;
use toolgate::targets::http::{
    BodyBinding, BodyEncoding, BodySource, HttpClient, HttpOperation, HttpTarget, ParamBinding,
    ParamLocation, ParamStyle, PathSegment,
};

/// The routes of the recording upstream: `/hang` never answers; `/status/<code>` answers
/// `<code>` with a short body; `/big-error` a 500 with 10 KB of two-byte characters;
/// `/chunks/<n>/<size>` streams `n` frames of `size` bytes; `/badjson` is JSON-typed
/// garbage; anything else answers `{"ok":true}` as `application/json; charset=utf-8`.
fn routes(r: &Recorded) -> Answer {
    let path = r.path().trim_start_matches("/base/");
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["hang"] => Answer::Hang,
        ["status", code] => {
            let code: u16 = code.parse().unwrap();
            let body = format!("error body for {code}").into_bytes();
            if (300..400).contains(&code) {
                Answer::RawWith(
                    code,
                    "text/plain",
                    body,
                    vec![("location", "http://127.0.0.1:1/x")],
                )
            } else {
                Answer::Raw(code, "text/plain", body)
            }
        }
        ["big-error"] => Answer::Raw(
            500,
            "text/plain; charset=utf-8",
            "é".repeat(5000).into_bytes(),
        ),
        ["chunks", n, size] => {
            let (n, size): (usize, usize) = (n.parse().unwrap(), size.parse().unwrap());
            let frames = (0..n)
                .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; size]))
                .collect();
            Answer::Stream("text/plain", frames)
        }
        ["badjson"] => Answer::Raw(200, "application/json", b"{not json".to_vec()),
        _ => Answer::Raw(
            200,
            "Application/JSON; charset=utf-8",
            br#"{"ok":true}"#.to_vec(),
        ),
    }
}

async fn start_upstream() -> Upstream {
    Upstream::start(routes).await
}

fn base_url(upstream: &Upstream) -> Arc<str> {
    format!("{}/base", upstream.url()).into()
}

fn target(credentials: Option<CredentialProvider>) -> HttpTarget {
    HttpTarget {
        name: Arc::from("test"),
        credentials,
        timeout: Duration::from_secs(5),
        max_response_bytes: 1 << 20,
    }
}

fn get(base_url: Arc<str>, path: &str) -> HttpOperation {
    HttpOperation {
        method: Method::GET,
        base_url,
        path: vec![PathSegment::Literal(path.into())].into(),
        params: Vec::new().into(),
        body: None,
        accept: Some(HeaderValue::from_static("application/json")),
    }
}

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

fn args(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("arguments must be an object"),
    }
}

fn client() -> HttpClient {
    HttpClient::new().expect("client builds")
}

fn header_names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn sends_exactly_the_built_request() {
    let upstream = start_upstream().await;
    let op = HttpOperation {
        method: Method::POST,
        base_url: base_url(&upstream),
        path: vec![
            PathSegment::Literal("/pets/".into()),
            PathSegment::Param(0),
            PathSegment::Literal("/toys".into()),
        ]
        .into(),
        params: vec![
            param("petId", ParamLocation::Path, ParamStyle::Simple, false),
            param("tags", ParamLocation::Query, ParamStyle::Form, true),
            param("X-Trace", ParamLocation::Header, ParamStyle::Simple, false),
            param("session", ParamLocation::Cookie, ParamStyle::Form, true),
        ]
        .into(),
        body: Some(BodyBinding {
            content_type: HeaderValue::from_static("application/json"),
            encoding: BodyEncoding::Json,
            source: BodySource::Properties(vec!["name".into(), "size".into()].into()),
            required: true,
            binary_parts: Box::default(),
        }),
        accept: Some(HeaderValue::from_static("application/json")),
    };
    let target = target(Some(CredentialProvider::bearer("tok-123").unwrap()));
    let answer = client()
        .call(
            &target,
            &op,
            &args(json!({
                "petId": "a/b c",
                "tags": ["x", "y z"],
                "X-Trace": "t-1",
                "session": "s;1",
                "name": "ball",
                "size": 3
            })),
        )
        .await
        .expect("2xx answer");

    assert_eq!(answer.status, 200);
    assert_eq!(&*answer.media_type, "application/json");
    assert!(answer.is_json);
    assert!(!answer.truncated);
    assert_eq!(answer.body, r#"{"ok":true}"#);

    let seen = upstream.next().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/base/pets/a%2Fb%20c/toys?tags=x&tags=y%20z");
    assert_eq!(
        header_names(&seen.headers),
        [
            "accept",
            "authorization",
            "content-length",
            "content-type",
            "cookie",
            "host",
            "user-agent",
            "x-trace"
        ]
    );
    assert_eq!(seen.headers["host"], upstream.addr.to_string().as_str());
    assert_eq!(seen.headers["authorization"], "Bearer tok-123");
    assert_eq!(seen.headers["accept"], "application/json");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.headers["cookie"], "session=s%3B1");
    assert_eq!(seen.headers["x-trace"], "t-1");
    assert_eq!(
        seen.headers["user-agent"],
        format!("toolgate/{}", toolgate::VERSION).as_str()
    );
    assert_eq!(seen.body, r#"{"name":"ball","size":3}"#);
    assert_eq!(seen.headers["content-length"], "24");
}

#[tokio::test]
async fn api_key_goes_where_configured() {
    let upstream = start_upstream().await;
    let client = client();
    let mut op = get(base_url(&upstream), "/items");
    op.params = vec![param("q", ParamLocation::Query, ParamStyle::Form, true)].into();

    let key = |location| Some(CredentialProvider::api_key(location, "api_key", "k&1").unwrap());

    client
        .call(
            &target(key(ApiKeyLocation::Header)),
            &op,
            &args(json!({"q": 1})),
        )
        .await
        .unwrap();
    let seen = upstream.next().await;
    assert_eq!(seen.headers["api_key"], "k&1");
    assert_eq!(seen.uri, "/base/items?q=1");
    assert!(seen.headers.get("cookie").is_none());

    client
        .call(
            &target(key(ApiKeyLocation::Query)),
            &op,
            &args(json!({"q": 1})),
        )
        .await
        .unwrap();
    let seen = upstream.next().await;
    assert_eq!(seen.uri, "/base/items?q=1&api_key=k%261");
    assert!(seen.headers.get("api_key").is_none());

    client
        .call(&target(key(ApiKeyLocation::Cookie)), &op, &args(json!({})))
        .await
        .unwrap();
    let seen = upstream.next().await;
    assert_eq!(seen.headers["cookie"], "api_key=k&1");
    assert_eq!(seen.uri, "/base/items");
}

#[tokio::test]
async fn non_success_statuses_carry_a_body_excerpt() {
    let upstream = start_upstream().await;
    let client = client();
    for code in [404u16, 500, 302] {
        let op = get(base_url(&upstream), &format!("/status/{code}"));
        let err = client
            .call(&target(None), &op, &args(json!({})))
            .await
            .unwrap_err();
        match err {
            UpstreamError::Status {
                status,
                body_excerpt,
            } => {
                assert_eq!(status, code);
                assert_eq!(body_excerpt, format!("error body for {code}"));
            }
            other => panic!("expected a status error, got {other:?}"),
        }
        upstream.next().await;
    }
    // The 302 was not followed.
    assert_eq!(upstream.unseen(), 0);
}

#[tokio::test]
async fn long_error_bodies_are_cut_on_a_character_boundary() {
    let upstream = start_upstream().await;
    let op = get(base_url(&upstream), "/big-error");
    let err = client()
        .call(&target(None), &op, &args(json!({})))
        .await
        .unwrap_err();
    let UpstreamError::Status {
        status,
        body_excerpt,
    } = err
    else {
        panic!("expected a status error");
    };
    assert_eq!(status, 500);
    assert!(body_excerpt.len() <= toolgate::targets::http::ERROR_EXCERPT_BYTES);
    assert!(body_excerpt.len() >= toolgate::targets::http::ERROR_EXCERPT_BYTES - 1);
    assert!(
        body_excerpt.chars().all(|c| c == 'é'),
        "no replacement char"
    );
}

#[tokio::test]
async fn json_is_flagged_by_media_type_and_completeness() {
    let upstream = start_upstream().await;
    let client = client();
    let answer = client
        .call(
            &target(None),
            &get(base_url(&upstream), "/badjson"),
            &args(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(&*answer.media_type, "application/json");
    assert!(
        answer.is_json,
        "typed JSON; whether it parses is the mapping's business"
    );
    assert!(!toolgate::targets::valid_json(&answer.body));

    let answer = client
        .call(
            &target(None),
            &get(base_url(&upstream), "/chunks/1/3"),
            &args(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(&*answer.media_type, "text/plain");
    assert!(!answer.is_json);
    assert_eq!(answer.body, "aaa");
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    let upstream = start_upstream().await;
    let mut target = target(None);
    target.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client().call(
            &target,
            &get(base_url(&upstream), "/hang"),
            &args(json!({})),
        ),
    )
    .await
    .expect("the call ends on its own timeout");
    assert!(
        matches!(result, Err(UpstreamError::Timeout(d)) if d == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The request did reach the upstream: the timeout covers waiting for the answer.
    assert_eq!(upstream.next().await.uri, "/base/hang");
}

#[tokio::test]
async fn bodies_beyond_the_cap_are_truncated() {
    let upstream = start_upstream().await;
    let client = client();
    let mut target = target(None);
    target.max_response_bytes = 2500;
    // (frames, frame size, expected length, truncated)
    for (n, size, len, truncated) in [
        (100, 1000, 2500, true), // many frames, cut inside the third
        (1, 5000, 2500, true),   // one frame larger than the cap
        (5, 500, 2500, false),   // exactly the cap
        (3, 100, 300, false),
    ] {
        let op = get(base_url(&upstream), &format!("/chunks/{n}/{size}"));
        let answer = client.call(&target, &op, &args(json!({}))).await.unwrap();
        assert_eq!(answer.body.len(), len, "{n}x{size}");
        assert_eq!(answer.truncated, truncated, "{n}x{size}");
        assert!(!answer.is_json);
        // Frames arrive in order and are kept whole up to the cut.
        let expected: Vec<u8> = (0..n)
            .flat_map(|i| vec![b'a' + (i % 26) as u8; size])
            .take(len)
            .collect();
        assert_eq!(&answer.body[..], &expected[..], "{n}x{size}");
    }
}

#[tokio::test]
async fn connection_refused_names_the_upstream_but_no_secret() {
    // Bind then release a port: nothing listens there any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base: Arc<str> = format!("http://127.0.0.1:{port}/base").into();
    let mut op = get(base, "/x");
    op.params = vec![param("q", ParamLocation::Query, ParamStyle::Form, true)].into();
    let credentials =
        CredentialProvider::api_key(ApiKeyLocation::Query, "key", "SUPERSECRET").unwrap();
    let err = client()
        .call(
            &target(Some(credentials)),
            &op,
            &args(json!({"q": "private"})),
        )
        .await
        .unwrap_err();
    let UpstreamError::Transport(message) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    let shown = err.to_string();
    assert!(!shown.contains("SUPERSECRET"), "{shown}");
    assert!(!shown.contains("private"), "{shown}");
}

#[tokio::test]
async fn bad_arguments_fail_before_anything_is_sent() {
    let upstream = start_upstream().await;
    let client = client();
    let mut op = get(base_url(&upstream), "/x");
    op.params = vec![param(
        "X-Note",
        ParamLocation::Header,
        ParamStyle::Simple,
        false,
    )]
    .into();
    let err = client
        .call(
            &target(None),
            &op,
            &args(json!({"X-Note": "a\r\nX-Evil: 1"})),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Request(_)), "{err:?}");
    client
        .call(&target(None), &op, &args(json!({"X-Note": "fine"})))
        .await
        .unwrap();
    let seen = upstream.next().await;
    assert_eq!(seen.headers["x-note"], "fine");
    assert_eq!(upstream.unseen(), 0);
}

#[tokio::test]
async fn multipart_upload_reaches_the_upstream_intact() {
    let upstream = start_upstream().await;
    let mut op = get(base_url(&upstream), "/upload");
    op.method = Method::POST;
    op.body = Some(BodyBinding {
        content_type: HeaderValue::from_static("multipart/form-data"),
        encoding: BodyEncoding::Multipart,
        source: BodySource::Properties(vec!["file".into()].into()),
        required: true,
        binary_parts: Box::default(),
    });
    client()
        .call(
            &target(None),
            &op,
            &args(json!({"file": {"content": "AAEC/w==", "filename": "x.bin"}})),
        )
        .await
        .unwrap();
    let seen = upstream.next().await;
    let content_type = seen.headers["content-type"].to_str().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap();
    let mut expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(&[0, 1, 2, 255]);
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(&seen.body[..], &expected[..]);
    assert_eq!(
        seen.headers["content-length"],
        expected.len().to_string().as_str()
    );
}

/// An HTTPS upstream (test CA in `tests/fixtures/tls`) offering `h2` and `http/1.1` by ALPN;
/// it records the HTTP version of each request and answers `{"ok":true}`.
async fn tls_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<http::Version>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(format!("{fixtures}/cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{fixtures}/key.pem")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return; // e.g. the client refused our certificate
                };
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let _ = tx.send(req.version());
                    let answer = Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
                        .unwrap();
                    async { Ok::<_, Infallible>(answer) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), service)
                .await;
            });
        }
    });
    (addr, rx)
}

fn test_ca_client() -> HttpClient {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca = CertificateDer::from_pem_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tls/ca.pem"
    ))
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    HttpClient::with_tls_config(tls)
}

#[tokio::test]
async fn https_upstreams_get_http2_by_alpn() {
    let (addr, mut versions) = tls_upstream().await;
    let client = test_ca_client();
    let op = get(format!("https://{addr}/base").into(), "/x");
    for _ in 0..2 {
        let answer = client
            .call(&target(None), &op, &args(json!({})))
            .await
            .expect("TLS call succeeds");
        assert!(answer.is_json);
        assert_eq!(versions.recv().await, Some(http::Version::HTTP_2));
    }
}

#[tokio::test]
async fn untrusted_certificates_are_transport_errors_naming_the_cause() {
    let (addr, _versions) = tls_upstream().await;
    let op = get(format!("https://{addr}/base").into(), "/x");
    let err = client()
        .call(&target(None), &op, &args(json!({})))
        .await
        .unwrap_err();
    let UpstreamError::Transport(message) = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}
