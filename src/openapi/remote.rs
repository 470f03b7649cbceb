//! Remote `$ref` documents, opt-in: which http(s) URLs a document may name
//! ([`RemoteRefs`]), and fetching them at load time ([`Fetcher`]).
//!
//! Loading is synchronous and may run inside a tokio runtime, so fetches run on a helper
//! thread with its own current-thread runtime and the gateway's client stack (hyper +
//! rustls/ring, platform roots). Every request is a plain GET with no credentials, bounded
//! in time ([`FETCH_TIMEOUT`]) and size ([`MAX_REMOTE_BYTES`]). Redirects are followed at
//! most [`MAX_REDIRECTS`] times, each new URL checked against the allow list again and
//! never from https down to http.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

/// Largest remote document read (bytes).
pub(crate) const MAX_REMOTE_BYTES: usize = 32 * 1024 * 1024;
/// Longest wait for one request, from connecting to the last byte of the body.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most redirects followed for one document.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// The configuration key that allows remote references (named in refusals).
const KEY: &str = "allow_remote_refs";

/// Which remote (http/https) documents `$ref`s may name. Other schemes (`file:`, `urn:`...)
/// are never fetched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RemoteRefs {
    /// None: remote references fail, saying how to allow them (the default).
    #[default]
    Refused,
    /// Any http or https URL.
    Any,
    /// URLs under one of these prefixes: same scheme, host and port, and a path that
    /// continues the prefix's path at a `/` (`https://h/schemas` covers `/schemas/a.json`,
    /// not `/schemas-old/a.json`). Parse them with [`RemoteRefs::parse_prefix`].
    Prefixes(Vec<Url>),
}

impl RemoteRefs {
    /// Parses one allowed URL prefix: an absolute http(s) URL with a host, without
    /// credentials, query or fragment.
    pub fn parse_prefix(prefix: &str) -> Result<Url, String> {
        let url = Url::parse(prefix).map_err(|e| {
            format!(
                "`{prefix}` is not an absolute URL ({e}); write e.g. https://schemas.example.com/"
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!(
                "`{prefix}` is not an http(s) URL; only http and https documents can be fetched"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{prefix}` has credentials; remote documents are fetched without any"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{prefix}` must not have a query string or fragment"
            ));
        }
        Ok(url)
    }

    /// Whether `url` may be fetched; the error says why not and how to allow it.
    pub(crate) fn check(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!(
                "only http and https documents can be fetched, not `{}:` URLs",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "the URL has credentials; remote documents are fetched without any (remove them)"
                    .into(),
            );
        }
        match self {
            RemoteRefs::Refused => Err(format!(
                "remote $refs are refused by default; allow them with `{KEY}` under the \
                 target's `openapi:` in gateway.yaml (`true`, or a list of URL prefixes such \
                 as [\"https://schemas.example.com/\"])"
            )),
            RemoteRefs::Any => Ok(()),
            RemoteRefs::Prefixes(prefixes) => {
                if prefixes.iter().any(|p| under_prefix(url, p)) {
                    Ok(())
                } else {
                    let list: Vec<&str> = prefixes.iter().map(Url::as_str).collect();
                    Err(format!(
                        "not under any URL prefix of `{KEY}` ([{}]); add one that covers it",
                        list.join(", ")
                    ))
                }
            }
        }
    }
}

/// Whether `url` is under `prefix` (see [`RemoteRefs::Prefixes`]). Both are parsed URLs,
/// so case, default ports, percent-encoding and dot segments are already normalized.
fn under_prefix(url: &Url, prefix: &Url) -> bool {
    if url.scheme() != prefix.scheme()
        || url.host_str() != prefix.host_str()
        || url.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let (path, base) = (url.path(), prefix.path());
    match path.strip_prefix(base) {
        None => false,
        Some(rest) => base.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

/// What a fetch gave.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// A document: where it was finally read from (after redirects; relative references
    /// inside it resolve against this URL) and its text.
    Document { url: Url, text: String },
    /// A redirect to a document already loaded, at this URL (not fetched again).
    Known(Url),
}

/// The answer to one request: a body, or where a redirect points.
enum Hop {
    Body(Bytes),
    Redirect(Url),
}

type Job = (Url, mpsc::Sender<Result<Hop, String>>);

/// Fetches remote documents on a helper thread, started on first use and stopped when the
/// fetcher is dropped. Connections are reused between fetches of one load.
#[derive(Default)]
pub(crate) struct Fetcher {
    worker: Option<(mpsc::Sender<Job>, std::thread::JoinHandle<()>)>,
}

impl Fetcher {
    /// Fetches `url` (which `policy` allows), following redirects that `policy` allows too
    /// and stopping at one to a URL that is `known` already.
    pub(crate) fn fetch(
        &mut self,
        url: &Url,
        policy: &RemoteRefs,
        known: &dyn Fn(&Url) -> bool,
    ) -> Result<Fetched, String> {
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            match self.request(&current)? {
                Hop::Body(bytes) => {
                    let text = String::from_utf8(bytes.into())
                        .map_err(|e| format!("the document is not UTF-8 text: {e}"))?;
                    return Ok(Fetched::Document { url: current, text });
                }
                Hop::Redirect(next) => {
                    if current.scheme() == "https" && next.scheme() == "http" {
                        return Err(format!(
                            "redirected from https to {next}, which is not followed (http)"
                        ));
                    }
                    policy
                        .check(&next)
                        .map_err(|reason| format!("redirected to {next}: {reason}"))?;
                    if known(&next) {
                        return Ok(Fetched::Known(next));
                    }
                    current = next;
                }
            }
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }

    /// One GET of `url` on the helper thread.
    fn request(&mut self, url: &Url) -> Result<Hop, String> {
        let jobs = match &mut self.worker {
            Some((jobs, _)) => jobs,
            slot @ None => {
                let (jobs, queue) = mpsc::channel::<Job>();
                let thread = std::thread::Builder::new()
                    .name("toolgate-remote-refs".into())
                    .spawn(move || serve(queue))
                    .map_err(|e| format!("cannot start the fetching thread: {e}"))?;
                &mut slot.insert((jobs, thread)).0
            }
        };
        let (reply, answer) = mpsc::channel();
        jobs.send((url.clone(), reply))
            .map_err(|_| "the fetching thread has stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the fetching thread has stopped".to_string())?
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        if let Some((jobs, thread)) = self.worker.take() {
            drop(jobs);
            let _ = thread.join();
        }
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The helper thread: answers jobs until the fetcher drops its sender.
fn serve(queue: mpsc::Receiver<Job>) {
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for fetching: {e}"))
        .and_then(|runtime| Ok((runtime, client()?)));
    for (url, reply) in queue {
        let answer = match &setup {
            Ok((runtime, client)) => runtime.block_on(get(client, &url)),
            Err(e) => Err(e.clone()),
        };
        let _ = reply.send(answer);
    }
}

/// A client over rustls (ring provider, platform roots) and plain HTTP.
fn client() -> Result<HttpsClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))
    };
    // Without platform roots, https fetches fail with a certificate error naming the cause.
    let tls = match builder()?.with_native_roots() {
        Ok(config) => config.with_no_client_auth(),
        Err(_) => builder()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .build(connector))
}

/// One GET, within [`FETCH_TIMEOUT`]: the body of a 2xx answer (at most
/// [`MAX_REMOTE_BYTES`]), the target of a redirect, or why neither.
async fn get(client: &HttpsClient, url: &Url) -> Result<Hop, String> {
    let work = async {
        let request = http::Request::get(url.as_str())
            .header(
                http::header::USER_AGENT,
                concat!("toolgate/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                http::header::ACCEPT,
                "application/json, application/yaml, text/yaml, */*;q=0.5",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot make a request for this URL: {e}"))?;
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("cannot fetch: {}", chain(&e)))?;
        let status = response.status();
        if status.is_redirection() && status != http::StatusCode::NOT_MODIFIED {
            let location = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| format!("HTTP {status} without a usable Location header"))?;
            let next = url
                .join(location)
                .map_err(|e| format!("HTTP {status} to `{location}`, not a URL: {e}"))?;
            return Ok(Hop::Redirect(without_fragment(next)));
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_big = || format!("the document is larger than {MAX_REMOTE_BYTES} bytes");
        if declared.is_some_and(|n| n > MAX_REMOTE_BYTES as u64) {
            return Err(too_big());
        }
        let body = Limited::new(response.into_body(), MAX_REMOTE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_big()
                } else {
                    format!("cannot read the answer: {}", chain(&*e))
                }
            })?;
        Ok(Hop::Body(body.to_bytes()))
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no complete answer within {} s",
                FETCH_TIMEOUT.as_secs()
            ))
        })
}

/// `url` without its fragment (documents are fetched and cached by this form).
pub(crate) fn without_fragment(mut url: Url) -> Url {
    url.set_fragment(None);
    url
}

/// An error and every cause in its chain (hyper's own messages, such as "client error
/// (Connect)", do not say what happened).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn prefixes(list: &[&str]) -> RemoteRefs {
        RemoteRefs::Prefixes(
            list.iter()
                .map(|p| RemoteRefs::parse_prefix(p).expect("prefix"))
                .collect(),
        )
    }

    #[test]
    fn refused_by_default_naming_the_key() {
        let e = RemoteRefs::default()
            .check(&url("https://schemas.example.com/a.json"))
            .unwrap_err();
        assert!(e.contains("allow_remote_refs"), "{e}");
        assert!(e.contains("remote $ref"), "{e}");
    }

    #[test]
    fn any_allows_http_and_https_only() {
        let any = RemoteRefs::Any;
        assert!(any.check(&url("http://127.0.0.1:9/a.yaml")).is_ok());
        assert!(any.check(&url("https://example.com/a.json")).is_ok());
        for other in [
            "file:///etc/passwd",
            "ftp://example.com/a.json",
            "urn:x:y",
            "data:text/plain,{}",
        ] {
            let e = any.check(&url(other)).unwrap_err();
            assert!(e.contains("only http and https"), "{other}: {e}");
        }
        let e = any
            .check(&url("https://user:pw@example.com/a.json"))
            .unwrap_err();
        assert!(e.contains("credentials"), "{e}");
    }

    #[test]
    fn prefixes_match_whole_origins_and_path_segments() {
        let allow = prefixes(&[
            "https://schemas.example.com/v1/",
            "http://127.0.0.1:8080/api",
        ]);
        for ok in [
            "https://schemas.example.com/v1/pet.json",
            "https://SCHEMAS.example.com:443/v1/a/b.yaml",
            "https://schemas.example.com/v1/x/../pet.json",
            "https://schemas.example.com/v1/pet.json?x=1",
            "http://127.0.0.1:8080/api",
            "http://127.0.0.1:8080/api/pet.json",
        ] {
            assert!(allow.check(&url(ok)).is_ok(), "{ok} should be allowed");
        }
        for refused in [
            // Another host that starts with the same characters.
            "https://schemas.example.com.evil.test/v1/pet.json",
            "https://schemas.example.com@evil.test/v1/pet.json",
            // Another scheme or port.
            "http://schemas.example.com/v1/pet.json",
            "https://schemas.example.com:8443/v1/pet.json",
            // Outside the path, including by dot segments.
            "https://schemas.example.com/v2/pet.json",
            "https://schemas.example.com/v1/../secret.json",
            "https://schemas.example.com/v1%2F../secret.json",
            "http://127.0.0.1:8080/apiary/pet.json",
            "http://127.0.0.1:8081/api/pet.json",
        ] {
            let e = allow.check(&url(refused)).unwrap_err();
            assert!(
                e.contains("allow_remote_refs") || e.contains("credentials"),
                "{refused}: {e}"
            );
        }
        // A prefix without a path covers the whole origin.
        let origin = prefixes(&["https://schemas.example.com"]);
        assert!(
            origin
                .check(&url("https://schemas.example.com/any/where.json"))
                .is_ok()
        );
    }

    #[test]
    fn prefixes_must_be_plain_http_urls() {
        assert!(RemoteRefs::parse_prefix("https://schemas.example.com/").is_ok());
        for (bad, why) in [
            ("schemas.example.com/", "not an absolute URL"),
            ("file:///schemas/", "not an http(s) URL"),
            ("https://u:p@schemas.example.com/", "credentials"),
            ("https://schemas.example.com/?v=1", "query"),
            ("https://schemas.example.com/#x", "fragment"),
        ] {
            let e = RemoteRefs::parse_prefix(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
