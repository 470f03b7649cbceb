//! A scripted browser for the tests of flows a person completes in a browser (OAuth
//! authorization code flows, sign-in and consent pages): it follows redirects, keeps
//! cookies, and submits HTML forms, over real HTTP to servers on 127.0.0.1.
//!
//! Cookies are keyed by host:port, not by host as RFC 6265 says, and `Path`, `Domain`,
//! `Secure` and `SameSite` are ignored. That is a deliberate simplification: the tests run
//! several servers (two identity providers, the gateway) on one loopback host, which in
//! production are different hosts, and a real browser would let them read each other's
//! cookies. Within one server, ignoring `Path` sends a few cookies more than a browser would,
//! which the servers we drive do not mind.
//!
//! No script runs: pages that need JavaScript cannot be driven.

use std::collections::HashMap;
use std::sync::Mutex;

use url::Url;

/// Redirects followed by one [`Browser::get`] or [`Browser::submit`].
const MAX_HOPS: usize = 20;

pub struct Browser {
    http: reqwest::Client,
    /// host:port -> cookies in the order they were first set.
    jar: Mutex<HashMap<String, Vec<(String, String)>>>,
}

/// Where a navigation ended.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    /// The URL of this (last) response.
    pub url: String,
    pub headers: http::HeaderMap,
    pub body: String,
    /// Every URL requested by the navigation, in order, this page's last.
    pub visited: Vec<String>,
}

impl Page {
    /// The forms of the page, in document order.
    pub fn forms(&self) -> Vec<Form> {
        parse_forms(&self.body)
    }

    /// The first form whose action contains `action_contains` (or the first form).
    pub fn form(&self, action_contains: Option<&str>) -> Option<Form> {
        self.forms()
            .into_iter()
            .find(|f| action_contains.is_none_or(|a| f.action.contains(a)))
    }

    /// A query parameter of this page's URL (e.g. `code` at a redirect URI).
    pub fn query(&self, name: &str) -> Option<String> {
        Url::parse(&self.url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    }

    /// host:port of this page.
    pub fn origin(&self) -> String {
        host_port(&Url::parse(&self.url).expect("a page has an absolute URL"))
    }
}

/// An HTML form as written in the page (attribute values decoded, action not resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// The `action` attribute, empty if absent.
    pub action: String,
    /// `get` or `post` (lowercase).
    pub method: String,
    pub id: Option<String>,
    /// Every `<input>` as (type, name, value): type lowercase, `text` if absent; checkboxes
    /// and radios only if `checked`.
    pub inputs: Vec<(String, String, String)>,
    /// The first named submit button (name, value), sent as a click on it would.
    pub submit: Option<(String, String)>,
}

impl Form {
    /// Whether the form has an input of this type (`password`...).
    pub fn has_input_type(&self, kind: &str) -> bool {
        self.inputs.iter().any(|(t, _, _)| t == kind)
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|(_, n, _)| n == name)
    }

    /// What submitting sends: hidden inputs and the named submit button, then `fields`
    /// (which override values of the same name).
    pub fn values(&self, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .inputs
            .iter()
            .filter(|(t, n, _)| t == "hidden" && !n.is_empty())
            .map(|(_, n, v)| (n.clone(), v.clone()))
            .chain(self.submit.clone())
            .filter(|(n, _)| !fields.iter().any(|(f, _)| f == n))
            .collect();
        out.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        out
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            jar: Mutex::new(HashMap::new()),
        }
    }

    /// GET `url`, following redirects (relative `Location`s resolved) up to 20 hops.
    pub async fn get(&self, url: &str) -> Page {
        self.navigate(reqwest::Method::GET, url.to_string(), None, Vec::new())
            .await
    }

    /// Submits a form of `page` (the first, or the first whose action contains
    /// `action_contains`): its hidden inputs (and named submit button) plus `fields`,
    /// overriding, urlencoded to the resolved action (POST, or GET with method=get), then
    /// follows redirects. Panics if there is no such form.
    pub async fn submit(
        &self,
        page: &Page,
        action_contains: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Page {
        let form = page.form(action_contains).unwrap_or_else(|| {
            panic!(
                "no form{} at {} (HTTP {}):\n{}",
                action_contains.map_or(String::new(), |a| format!(" with action ~ {a:?}")),
                page.url,
                page.status,
                page.body
            )
        });
        let mut target = Url::parse(&page.url)
            .unwrap()
            .join(&form.action)
            .unwrap_or_else(|e| panic!("form action {:?}: {e}", form.action));
        target.set_fragment(None);
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.values(fields))
            .finish();
        if form.method == "get" {
            target.set_query(Some(&encoded));
            self.navigate(reqwest::Method::GET, target.into(), None, Vec::new())
                .await
        } else {
            self.navigate(
                reqwest::Method::POST,
                target.into(),
                Some(encoded),
                Vec::new(),
            )
            .await
        }
    }

    /// Drives an identity provider's interaction pages from `page`: fills the login form
    /// (`login`, `password`) if shown, confirms consent if shown, until the browser lands
    /// outside the provider (`provider_origin`: its host:port, or any URL of it) or on a
    /// page that is neither; returns that page. A login form shown again after this
    /// method submitted credentials (a wrong password) is returned as is.
    pub async fn sign_in(
        &self,
        mut page: Page,
        provider_origin: &str,
        login: &str,
        password: &str,
    ) -> Page {
        let provider = Url::parse(provider_origin)
            .ok()
            .filter(|u| u.has_host())
            .map_or_else(|| provider_origin.to_string(), |u| host_port(&u));
        let mut logged_in = false;
        for _ in 0..MAX_HOPS {
            if page.origin() != provider {
                return page;
            }
            let forms = page.forms();
            if let Some(form) = forms.iter().find(|f| f.has_input_type("password")) {
                if logged_in {
                    return page;
                }
                logged_in = true;
                let user = form
                    .inputs
                    .iter()
                    .find(|(t, n, _)| {
                        n == "login"
                            || n == "username"
                            || (t != "hidden" && t != "password" && n != "prompt")
                    })
                    .map_or("login".to_string(), |(_, n, _)| n.clone());
                let secret = form
                    .inputs
                    .iter()
                    .find(|(t, _, _)| t == "password")
                    .map(|(_, n, _)| n.clone())
                    .unwrap();
                let action = form.action.clone();
                page = self
                    .submit(
                        &page,
                        Some(&action),
                        &[(user.as_str(), login), (secret.as_str(), password)],
                    )
                    .await;
            } else if let Some(form) = forms.iter().find(|f| is_consent(f)) {
                let action = form.action.clone();
                page = self.submit(&page, Some(&action), &[]).await;
            } else {
                return page;
            }
        }
        panic!("sign-in at {provider} did not end after {MAX_HOPS} pages; last: {page:?}");
    }

    /// The cookies stored for host:port, in the order they were set.
    pub fn cookies_for(&self, host_port: &str) -> Vec<(String, String)> {
        self.jar
            .lock()
            .unwrap()
            .get(host_port)
            .cloned()
            .unwrap_or_default()
    }

    /// Drops every cookie of host:port (a browser restarted, another device).
    pub fn forget_cookies(&self, host_port: &str) {
        self.jar.lock().unwrap().remove(host_port);
    }

    async fn navigate(
        &self,
        mut method: reqwest::Method,
        mut url: String,
        mut body: Option<String>,
        mut visited: Vec<String>,
    ) -> Page {
        for _ in 0..=MAX_HOPS {
            let parsed = Url::parse(&url).unwrap_or_else(|e| panic!("browser URL {url:?}: {e}"));
            let origin = host_port(&parsed);
            visited.push(url.clone());
            let mut request = self
                .http
                .request(method.clone(), parsed.clone())
                .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
                .header("user-agent", "toolgate-test-browser");
            let cookies = self.cookie_header(&origin);
            if !cookies.is_empty() {
                request = request.header("cookie", cookies);
            }
            if let Some(b) = &body {
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(b.clone());
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("browser {method} {url}: {e}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            for value in headers.get_all("set-cookie") {
                if let Ok(v) = value.to_str() {
                    self.store_cookie(&origin, v);
                }
            }
            let location = headers
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            match (status, location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    let next = parsed
                        .join(&location)
                        .unwrap_or_else(|e| panic!("redirect to {location:?} from {url}: {e}"));
                    // 307/308 repeat the request; the others become a GET without a body.
                    if !matches!(status, 307 | 308) {
                        method = reqwest::Method::GET;
                        body = None;
                    }
                    url = next.to_string();
                }
                _ => {
                    let body = response.text().await.unwrap_or_default();
                    return Page {
                        status,
                        url,
                        headers,
                        body,
                        visited,
                    };
                }
            }
        }
        panic!("more than {MAX_HOPS} redirects: {visited:#?}");
    }

    fn cookie_header(&self, origin: &str) -> String {
        self.cookies_for(origin)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store_cookie(&self, origin: &str, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_string(), value.trim().to_string());
        if name.is_empty() {
            return;
        }
        let mut delete = false;
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            delete |= match key.trim().to_ascii_lowercase().as_str() {
                "max-age" => val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                "expires" => http_date_seconds(val.trim()).is_some_and(|t| t <= now_seconds()),
                _ => false,
            };
        }
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(origin.to_string()).or_default();
        let existing = cookies.iter().position(|(n, _)| *n == name);
        match (delete, existing) {
            (true, Some(i)) => {
                cookies.remove(i);
            }
            (true, None) => {}
            (false, Some(i)) => cookies[i].1 = value,
            (false, None) => cookies.push((name, value)),
        }
    }
}

fn is_consent(form: &Form) -> bool {
    let action = form.action.to_ascii_lowercase();
    ["confirm", "consent", "approve", "allow"]
        .iter()
        .any(|w| action.contains(w))
        || form.id.as_deref() == Some("consent")
        || form
            .inputs
            .iter()
            .any(|(t, n, v)| t == "hidden" && n == "prompt" && v == "consent")
}

/// host:port of a URL, the port explicit even when it is the scheme's default.
pub fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Seconds since the epoch of an HTTP date as cookies use them
/// (`Thu, 01 Jan 1970 00:00:00 GMT`, also with dashes: `Thursday, 01-Jan-70 ...`).
fn http_date_seconds(text: &str) -> Option<i64> {
    let text = text.split_once(',').map_or(text, |(_, rest)| rest);
    let fields: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|s| !s.is_empty())
        .collect();
    let [day, month, year, time, ..] = fields.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| month.to_ascii_lowercase().starts_with(m))? as i64
        + 1;
    let mut year: i64 = year.parse().ok()?;
    if year < 100 {
        year += if year < 70 { 2000 } else { 1900 };
    }
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// The forms of an HTML document: `<form>` to `</form>` (or the end), with the `<input>`s
/// and `<button>`s inside. Comments are skipped; no other HTML structure matters.
pub fn parse_forms(html: &str) -> Vec<Form> {
    let html = strip_comments(html);
    let lower = html.to_ascii_lowercase();
    let mut forms = Vec::new();
    let mut at = 0;
    while let Some(start) = find_tag(&lower, "form", at) {
        let (attrs, open_end) = tag_attributes(&html, start + "<form".len());
        let close = lower[open_end..]
            .find("</form")
            .map_or(html.len(), |i| open_end + i);
        let inner = &html[open_end..close];
        let inner_lower = &lower[open_end..close];
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut form = Form {
            action: get("action").unwrap_or_default(),
            method: get("method")
                .map(|m| m.to_ascii_lowercase())
                .filter(|m| m == "get" || m == "post")
                .unwrap_or_else(|| "get".into()),
            id: get("id"),
            inputs: Vec::new(),
            submit: None,
        };
        let mut i = 0;
        while let Some(pos) = next_control(inner_lower, i) {
            let (tag, name_len) = if inner_lower[pos..].starts_with("<input") {
                ("input", "<input".len())
            } else {
                ("button", "<button".len())
            };
            let (attrs, end) = tag_attributes(inner, pos + name_len);
            i = end;
            let get = |name: &str| {
                attrs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            let has = |name: &str| attrs.iter().any(|(k, _)| k == name);
            if has("disabled") {
                continue;
            }
            let kind = get("type").map_or_else(
                || if tag == "input" { "text" } else { "submit" }.to_string(),
                |t| t.to_ascii_lowercase(),
            );
            let name = get("name").unwrap_or_default();
            let value = get("value").unwrap_or_default();
            if kind == "submit" {
                if form.submit.is_none() && !name.is_empty() {
                    form.submit = Some((name, value));
                }
                continue;
            }
            if tag == "button" || ((kind == "checkbox" || kind == "radio") && !has("checked")) {
                continue;
            }
            form.inputs.push((kind, name, value));
        }
        forms.push(form);
        at = close;
    }
    forms
}

fn strip_comments(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start + 4..]
            .find("-->")
            .map_or("", |end| &rest[start + 4 + end + 3..]);
    }
    out.push_str(rest);
    out
}

/// The index of the next `<name` tag (followed by whitespace, `>` or `/`) from `from`.
fn find_tag(lower: &str, name: &str, from: usize) -> Option<usize> {
    let needle = format!("<{name}");
    let mut at = from;
    while let Some(i) = lower[at..].find(&needle) {
        let start = at + i;
        let after = lower[start + needle.len()..].chars().next();
        if after.is_none_or(|c| c.is_ascii_whitespace() || c == '>' || c == '/') {
            return Some(start);
        }
        at = start + needle.len();
    }
    None
}

fn next_control(lower: &str, from: usize) -> Option<usize> {
    match (
        find_tag(lower, "input", from),
        find_tag(lower, "button", from),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The attributes of a tag whose name ends at `at` (names lowercase, values decoded), and
/// the index just past its `>`.
fn tag_attributes(html: &str, mut at: usize) -> (Vec<(String, String)>, usize) {
    let bytes = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'/') {
            at += 1;
        }
        if at >= bytes.len() {
            return (attrs, bytes.len());
        }
        if bytes[at] == b'>' {
            return (attrs, at + 1);
        }
        let start = at;
        while at < bytes.len()
            && !bytes[at].is_ascii_whitespace()
            && !matches!(bytes[at], b'=' | b'>' | b'/')
        {
            at += 1;
        }
        let name = html[start..at].to_ascii_lowercase();
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let mut value = String::new();
        if at < bytes.len() && bytes[at] == b'=' {
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if at < bytes.len() && (bytes[at] == b'"' || bytes[at] == b'\'') {
                let quote = bytes[at];
                let end = html[at + 1..]
                    .find(quote as char)
                    .map_or(bytes.len(), |i| at + 1 + i);
                value = decode_entities(&html[at + 1..end]);
                at = (end + 1).min(bytes.len());
            } else {
                let start = at;
                while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'>' {
                    at += 1;
                }
                value = decode_entities(&html[start..at]);
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

/// Decodes character references: the named ones URLs and forms use, and every numeric one.
pub fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest[1..].find(';').filter(|&e| e <= 10).and_then(|e| {
            let entity = &rest[1..1 + e];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => entity.strip_prefix('#').and_then(|n| {
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, e + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::idp::{Idp, pkce};
    use super::super::{Answer, Upstream};
    use super::*;

    #[test]
    fn forms_are_parsed_in_any_quote_style_and_order() {
        let html = r#"<html><!-- <form action="/commented"> -->
            <FORM method=POST action='/a?x=1&amp;y=2' id="f1">
              <input value="v&quot;1" type="hidden" name='h1'>
              <input type=hidden name=h2 value=plain/>
              <input name="user"><input type="password" name="pw" value="">
              <input type="checkbox" name="c1" value="on">
              <input type="checkbox" name="c2" value="on" checked>
              <input type="hidden" name="off" value="x" disabled>
              <button type="submit" name="go" value="yes">Go</button>
            </form>
            <form action="/b"><input type="hidden" name="k" value="&#x41;&#66;&lt;&bogus;"></form>"#;
        let forms = parse_forms(html);
        assert_eq!(forms.len(), 2, "{forms:#?}");
        let f = &forms[0];
        assert_eq!(f.action, "/a?x=1&y=2");
        assert_eq!(f.method, "post");
        assert_eq!(f.id.as_deref(), Some("f1"));
        assert!(f.has_input_type("password"));
        assert!(!f.has_input("c1") && f.has_input("c2") && !f.has_input("off"));
        assert_eq!(
            f.values(&[("h2", "over"), ("user", "alice")]),
            vec![
                ("h1".to_string(), "v\"1".to_string()),
                ("go".into(), "yes".into()),
                ("h2".into(), "over".into()),
                ("user".into(), "alice".into()),
            ]
        );
        assert_eq!(forms[1].method, "get");
        assert_eq!(forms[1].inputs[0].2, "AB<&bogus;");
    }

    #[test]
    fn cookie_dates() {
        assert_eq!(http_date_seconds("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date_seconds("Sat, 05 Dec 2026 00:04:54 GMT"),
            Some(1_796_429_094)
        );
        assert_eq!(
            http_date_seconds("Saturday, 05-Dec-26 00:04:54 GMT"),
            Some(1_796_429_094)
        );
        let b = Browser::new();
        b.store_cookie("h:1", "a=1; Path=/x; HttpOnly");
        b.store_cookie("h:1", "b=2");
        b.store_cookie("h:2", "a=other");
        b.store_cookie("h:1", "a=3");
        assert_eq!(
            b.cookies_for("h:1"),
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        b.store_cookie("h:1", "a=; expires=Thu, 01 Jan 1970 00:00:00 GMT");
        b.store_cookie("h:1", "b=2; Max-Age=0");
        assert!(b.cookies_for("h:1").is_empty());
        assert_eq!(b.cookies_for("h:2"), vec![("a".into(), "other".into())]);
    }

    const CLIENT: &str = "web-app";
    const RESOURCE: &str = "https://api.upstream.test/";

    /// A redirect URI served by the test: it records the query of every request.
    async fn redirect_target() -> (Upstream, String) {
        let upstream = Upstream::start(|_| {
            Answer::Raw(
                200,
                "text/html",
                b"<html><body>signed in</body></html>".to_vec(),
            )
        })
        .await;
        let uri = format!("{}/callback", upstream.url());
        (upstream, uri)
    }

    async fn authorize(idp: &Idp, redirect_uri: &str, challenge: Option<&str>) -> String {
        let mut params = vec![
            ("client_id", CLIENT),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("scope", "openid api:read"),
            ("state", "st-1"),
            ("nonce", "nonce-1"),
            ("resource", RESOURCE),
        ];
        if let Some(c) = challenge {
            params.extend([("code_challenge", c), ("code_challenge_method", "S256")]);
        }
        idp.authorize_url(&params).await
    }

    #[tokio::test]
    async fn browser_runs_an_authorization_code_flow_with_pkce_and_refresh() {
        let idp = Idp::start().await;
        let (callback, redirect_uri) = redirect_target().await;
        idp.add_code_client(CLIENT, &[&redirect_uri], "openid api:read api:write")
            .await;
        let browser = Browser::new();
        let (_, challenge) = pkce();

        // The login page; a wrong password shows it again with an error.
        let page = browser
            .get(&authorize(&idp, &redirect_uri, Some(&challenge)).await)
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.url.contains("/interaction/"), "{}", page.url);
        let login = page.form(Some("/login")).expect("a login form");
        assert!(login.has_input("login") && login.has_input_type("password"));
        let idp_origin = idp.issuer();
        let again = browser
            .sign_in(page, &idp_origin, "alice", "not-her-password")
            .await;
        assert!(again.body.contains("class=\"error\""), "{}", again.body);
        assert!(again.form(Some("/login")).is_some());
        assert_eq!(callback.count(), 0);

        // The right password, then consent: the browser lands at the redirect URI.
        let landed = browser
            .sign_in(again, &idp_origin, "alice", "alice-password")
            .await;
        assert_eq!(landed.status, 200, "{landed:?}");
        assert!(landed.url.starts_with(&redirect_uri), "{}", landed.url);
        assert!(
            landed.visited.iter().any(|u| u.contains("/confirm")),
            "consent was asked: {:#?}",
            landed.visited
        );
        assert_eq!(landed.query("state").as_deref(), Some("st-1"));
        assert_eq!(callback.count(), 1);
        assert!(callback.requests()[0].query().contains("code="));
        let code = landed.query("code").expect("a code");
        assert!(browser.cookies_for(&landed.origin()).is_empty());
        assert!(
            browser
                .cookies_for(&idp_origin["http://".len()..])
                .iter()
                .any(|(n, _)| n == "_session"),
            "the IdP's session cookie is kept"
        );

        // The code without its verifier is refused; with it, the tokens.
        let (status, refused) = idp
            .exchange_code(
                CLIENT,
                &code,
                &redirect_uri,
                "wrong-verifier-wrong-verifier-wrong-verifier",
            )
            .await;
        assert_eq!(
            (status, refused["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        // A failed redemption may have spent the code: run the flow again (no password, no
        // consent: the session and the grant exist) for a fresh one.
        let (verifier, challenge) = pkce();
        let again = browser
            .get(&authorize(&idp, &redirect_uri, Some(&challenge)).await)
            .await;
        assert!(again.url.starts_with(&redirect_uri), "silent: {again:?}");
        let code = again.query("code").unwrap();
        let (status, tokens) = idp
            .exchange_code(CLIENT, &code, &redirect_uri, &verifier)
            .await;
        assert_eq!(status, 200, "{tokens}");

        let id = idp
            .verify(tokens["id_token"].as_str().expect("an id_token"), CLIENT)
            .await;
        assert_eq!(id["sub"], "alice");
        assert_eq!(id["nonce"], "nonce-1");
        assert_eq!(
            jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap())
                .unwrap()
                .alg,
            jsonwebtoken::Algorithm::RS256
        );

        let access = idp
            .verify(tokens["access_token"].as_str().unwrap(), RESOURCE)
            .await;
        assert_eq!(access["sub"], "alice");
        assert_eq!(access["client_id"], CLIENT);
        // oidc-provider puts the granted OIDC scopes next to the resource's.
        let scope: Vec<&str> = access["scope"].as_str().unwrap().split(' ').collect();
        assert!(
            scope.contains(&"api:read") && !scope.contains(&"api:write"),
            "{scope:?}"
        );
        let refresh = tokens["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string();

        // Refresh rotates the refresh token; the access token stays for the resource.
        let (status, renewed) = idp.refresh(CLIENT, &refresh).await;
        assert_eq!(status, 200, "{renewed}");
        let next = renewed["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(next, refresh);
        let access = idp
            .verify(renewed["access_token"].as_str().unwrap(), RESOURCE)
            .await;
        assert_eq!(
            (access["sub"].clone(), access["aud"].clone()),
            (json!("alice"), json!(RESOURCE))
        );

        let stats = idp.stats_json().await;
        assert_eq!(stats["grants"]["authorization_code"], 1, "{stats}");
        assert_eq!(stats["grants"]["refresh_token"], 1, "{stats}");
        assert_eq!(stats["logins"], 1, "{stats}");
        assert_eq!(stats["login_failed"], 1, "{stats}");

        // A forgetful IdP refuses the next refresh; the browser must sign in again.
        idp.forget().await;
        let (status, refused) = idp.refresh(CLIENT, &next).await;
        assert_eq!(
            (status, refused["error"].as_str()),
            (400, Some("invalid_grant")),
            "{refused}"
        );
        assert_eq!(idp.stats_json().await["refresh_failed"], 1);
        let page = browser
            .get(&authorize(&idp, &redirect_uri, Some(&pkce().1)).await)
            .await;
        assert!(page.form(Some("/login")).is_some(), "{page:?}");
    }

    #[tokio::test]
    async fn browser_flow_without_pkce_is_refused() {
        let idp = Idp::start().await;
        let (callback, redirect_uri) = redirect_target().await;
        idp.add_code_client(CLIENT, &[&redirect_uri], "openid api:read")
            .await;
        let page = Browser::new()
            .get(&authorize(&idp, &redirect_uri, None).await)
            .await;
        assert!(page.url.starts_with(&redirect_uri), "{page:?}");
        assert_eq!(page.query("error").as_deref(), Some("invalid_request"));
        assert!(page.query("error_description").unwrap().contains("PKCE"));
        assert!(page.query("code").is_none());
        assert_eq!(callback.count(), 1);

        // The registration is checked: metadata the provider refuses is a 400.
        let (status, body): (u16, Value) = idp
            .try_add_client(json!({"client_id": "broken", "redirect_uris": ["not a url"]}))
            .await;
        assert_eq!(status, 400, "{body}");
        // ... and a refused client leaves the others working.
        let (status, _) = idp
            .token_request(
                "agent-1",
                "agent-1-secret",
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://gateway.test/mcp"),
                ],
            )
            .await;
        assert_eq!(status, 200);
    }
}
