//! Turns a tool's arguments into the upstream `http::Request`: URI from the operation's base
//! URL and path template, parameters serialized per OpenAPI 3.1 styles, credentials, body.
//! Only data from the [`HttpOperation`] and [`HttpTarget`] decide where the request goes.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::body::encode_body;
use super::encode::{Escape, is_defined, push_escaped, push_json, push_scalar};
use super::{HttpOperation, HttpTarget, ParamBinding, ParamLocation, ParamStyle, PathSegment};
use crate::auth::outbound::{ApiKeyLocation, CredentialProvider};
use crate::targets::UpstreamError;

/// `User-Agent` of every upstream request (`crate::VERSION` is the same string, checked by a
/// test; `concat!` makes this a static value with no per-request cost).
static USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("toolgate/", env!("CARGO_PKG_VERSION")));

/// The body type of upstream requests: always fully buffered (tool arguments are small and
/// already in memory).
pub type RequestBody = Full<Bytes>;

/// Builds the upstream request of one call.
///
/// The URI is `op.base_url` + the path template + the query string; argument values are
/// percent-encoded so that they can never change the scheme, host or port, nor leave their
/// path segment. Headers are only `Accept`, `User-Agent`, the target's credentials, header
/// parameters, `Cookie`, and the body's `Content-Type`/`Content-Length`: nothing from the
/// MCP client is forwarded (this function never sees its headers).
///
/// Serialization follows the OpenAPI 3.1.1 "Style Examples" table (RFC 6570 operators for
/// `simple`, `label`, `matrix`, `form`). Combinations the table marks n/a fall back to
/// `form` with the same `explode` (query) or `simple` (path). `null` items and members are
/// skipped; arrays and objects nested inside a value are sent as JSON text.
pub fn build_request(
    target: &HttpTarget,
    op: &HttpOperation,
    args: &Map<String, Value>,
) -> Result<http::Request<RequestBody>, UpstreamError> {
    let uri = build_uri(target, op, args)?;
    let mut headers = HeaderMap::new();
    let mut cookies = String::new();
    let mut cookie_is_secret = false;

    for param in op.params.iter() {
        let Some(value) = args.get(&*param.arg).filter(|v| is_defined(v)) else {
            continue;
        };
        match param.location {
            ParamLocation::Header => add_header_param(&mut headers, param, value)?,
            ParamLocation::Cookie => {
                if !cookies.is_empty() {
                    cookies.push_str("; ");
                }
                write_cookie_param(&mut cookies, param, value)?;
            }
            ParamLocation::Path | ParamLocation::Query => {}
        }
    }

    // Our own headers go in last with `insert`, so a header parameter can never override
    // them (nor the credentials).
    if let Some(accept) = &op.accept {
        headers.insert(header::ACCEPT, accept.clone());
    }
    headers.insert(header::USER_AGENT, USER_AGENT.clone());
    match &target.credentials {
        Some(CredentialProvider::Bearer { authorization }) => {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        Some(CredentialProvider::ApiKey {
            location,
            name,
            header_name,
            value,
            ..
        }) => match location {
            ApiKeyLocation::Header => {
                let name = header_name.clone().ok_or_else(|| {
                    UpstreamError::Request("API key header name is missing".into())
                })?;
                headers.insert(name, value.clone());
            }
            ApiKeyLocation::Cookie => {
                if !cookies.is_empty() {
                    cookies.push_str("; ");
                }
                cookies.push_str(name);
                cookies.push('=');
                cookies.push_str(value.to_str().map_err(|_| {
                    UpstreamError::Request("API key is not a valid cookie value".into())
                })?);
                cookie_is_secret = true;
            }
            ApiKeyLocation::Query => {} // in the URI already
        },
        // OAuth2 tokens are added by `HttpClient::call_as`, after this function.
        Some(_) | None => {}
    }
    if !cookies.is_empty() {
        let mut value = HeaderValue::from_maybe_shared(Bytes::from(cookies)).map_err(|_| {
            UpstreamError::Request("cookie values are not valid in a Cookie header".into())
        })?;
        value.set_sensitive(cookie_is_secret);
        headers.insert(header::COOKIE, value);
    }

    let body = match &op.body {
        Some(binding) => match encode_body(binding, args)? {
            Some(encoded) => {
                headers.insert(header::CONTENT_TYPE, encoded.content_type);
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(encoded.bytes.len()),
                );
                Full::new(encoded.bytes)
            }
            None => Full::default(),
        },
        None => Full::default(),
    };

    let mut request = http::Request::new(body);
    *request.method_mut() = op.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Builds the URI in one `String` sized up front.
fn build_uri(
    target: &HttpTarget,
    op: &HttpOperation,
    args: &Map<String, Value>,
) -> Result<http::Uri, UpstreamError> {
    let base = op.base_url.trim_end_matches('/');
    let literal_len: usize = op
        .path
        .iter()
        .map(|s| match s {
            PathSegment::Literal(l) => l.len(),
            PathSegment::Param(_) => 16,
        })
        .sum();
    let mut uri = String::with_capacity(base.len() + literal_len + 32 * op.params.len() + 16);
    uri.push_str(base);

    let path_start = uri.len();
    for segment in op.path.iter() {
        match segment {
            PathSegment::Literal(literal) => uri.push_str(literal),
            PathSegment::Param(index) => {
                let param = op.params.get(*index).ok_or_else(|| {
                    UpstreamError::Request(format!("path template refers to parameter #{index}"))
                })?;
                let value = args
                    .get(&*param.arg)
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| {
                        UpstreamError::Request(format!("missing path parameter `{}`", param.arg))
                    })?;
                write_path_param(&mut uri, param, value)?;
            }
        }
    }
    // A template starting with a variable must not glue the value onto the authority.
    if uri.len() > path_start && !uri[path_start..].starts_with('/') {
        uri.insert(path_start, '/');
    }
    // Values cannot contain `/` (encoded) and `.`/`..` values are encoded, so a dot segment
    // can only come from values glued together, an empty `label` value or the template.
    // Encode its dots too: the upstream must never resolve it as "this/parent directory".
    if uri[path_start..]
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        let path = uri.split_off(path_start);
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                uri.push('/');
            }
            match segment {
                "." => uri.push_str("%2E"),
                ".." => uri.push_str("%2E%2E"),
                other => uri.push_str(other),
            }
        }
    }

    // A path written with a query (`/responses?beta=true`, OpenAI's; `/?comp=list`,
    // Azure Storage's) already has one: parameters follow with `&`. Path values cannot
    // bring a `?`, they are encoded.
    let mut has_query = uri[path_start..].contains('?');
    for param in op.params.iter() {
        if param.location != ParamLocation::Query {
            continue;
        }
        let Some(value) = args.get(&*param.arg).filter(|v| is_defined(v)) else {
            continue;
        };
        uri.push(if has_query { '&' } else { '?' });
        has_query = true;
        write_query_param(&mut uri, param, value)?;
    }
    if let Some(CredentialProvider::ApiKey {
        location: ApiKeyLocation::Query,
        query_name,
        query_value,
        ..
    }) = &target.credentials
    {
        uri.push(if has_query { '&' } else { '?' });
        uri.push_str(query_name);
        uri.push('=');
        uri.push_str(query_value);
    }

    // Never echo the URI itself: its query may carry an API key.
    http::Uri::from_maybe_shared(Bytes::from(uri)).map_err(|e| {
        UpstreamError::Request(format!(
            "the request URI is invalid ({e}); check the base URL `{}` and the path template",
            op.base_url
        ))
    })
}

/// How one value is laid out: the RFC 6570 operator parameters, plus the join character
/// that `spaceDelimited` and `pipeDelimited` change.
struct Layout {
    /// Written once before the expansion (`.` label, `;` matrix).
    prefix: &'static str,
    /// Between exploded items.
    sep: &'static str,
    /// Whether items are `name=value`.
    named: bool,
    /// Whether an empty value keeps its `=` (`form`: `x=`; `matrix`: `;x`).
    empty_keeps_eq: bool,
    /// Between the items of a non-exploded array or object.
    join: &'static str,
}

const SIMPLE: Layout = Layout {
    prefix: "",
    sep: ",",
    named: false,
    empty_keeps_eq: false,
    join: ",",
};
const LABEL: Layout = Layout {
    prefix: ".",
    sep: ".",
    named: false,
    empty_keeps_eq: false,
    join: ",",
};
const MATRIX: Layout = Layout {
    prefix: ";",
    sep: ";",
    named: true,
    empty_keeps_eq: false,
    join: ",",
};
const FORM_QUERY: Layout = Layout {
    prefix: "",
    sep: "&",
    named: true,
    empty_keeps_eq: true,
    join: ",",
};
const SPACE_QUERY: Layout = Layout {
    join: "%20",
    ..FORM_QUERY
};
const PIPE_QUERY: Layout = Layout {
    join: "%7C",
    ..FORM_QUERY
};
/// Cookies are `form`, but pairs are separated by `; ` (RFC 6265), never `&`.
const FORM_COOKIE: Layout = Layout {
    sep: "; ",
    ..FORM_QUERY
};

fn is_empty_string(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.is_empty())
}

/// Writes `name` followed by `=` unless the value is empty and the layout drops it.
fn push_name(out: &mut String, name: &str, value: &Value, layout: &Layout, esc: Escape) {
    push_escaped(out, name, esc);
    if layout.empty_keeps_eq || !is_empty_string(value) {
        out.push('=');
    }
}

/// RFC 6570 expansion of one variable (section 3.2.1), with OpenAPI's join characters.
fn expand(
    out: &mut String,
    name: &str,
    value: &Value,
    explode: bool,
    layout: &Layout,
    esc: Escape,
) -> Result<(), UpstreamError> {
    // Names come from the spec; they are still encoded so that no name can break the syntax.
    let name_esc = if esc == Escape::Verbatim {
        Escape::Verbatim
    } else {
        Escape::Unreserved
    };
    out.push_str(layout.prefix);
    match value {
        Value::Array(items) => {
            let items = items.iter().filter(|v| !v.is_null());
            if explode {
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(layout.sep);
                    }
                    if layout.named {
                        push_name(out, name, item, layout, name_esc);
                    }
                    push_scalar(out, item, esc)?;
                }
            } else {
                if layout.named {
                    push_escaped(out, name, name_esc);
                    out.push('=');
                }
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        out.push_str(layout.join);
                    }
                    push_scalar(out, item, esc)?;
                }
            }
        }
        Value::Object(map) => {
            let members = map.iter().filter(|(_, v)| !v.is_null());
            if explode {
                for (i, (key, member)) in members.enumerate() {
                    if i > 0 {
                        out.push_str(layout.sep);
                    }
                    push_escaped(out, key, esc);
                    if layout.empty_keeps_eq || !is_empty_string(member) {
                        out.push('=');
                    }
                    push_scalar(out, member, esc)?;
                }
            } else {
                if layout.named {
                    push_escaped(out, name, name_esc);
                    out.push('=');
                }
                for (i, (key, member)) in members.enumerate() {
                    if i > 0 {
                        out.push_str(layout.join);
                    }
                    push_escaped(out, key, esc);
                    out.push_str(layout.join);
                    push_scalar(out, member, esc)?;
                }
            }
        }
        scalar => {
            if layout.named {
                push_name(out, name, scalar, layout, name_esc);
            }
            push_scalar(out, scalar, esc)?;
        }
    }
    Ok(())
}

/// A `json_content` parameter: one `name=<JSON>` (or just `<JSON>` for unnamed layouts).
fn expand_json(
    out: &mut String,
    name: &str,
    value: &Value,
    layout: &Layout,
    esc: Escape,
) -> Result<(), UpstreamError> {
    out.push_str(layout.prefix);
    if layout.named {
        push_escaped(out, name, Escape::Unreserved);
        out.push('=');
    }
    push_json(out, value, esc)
}

fn write_path_param(
    out: &mut String,
    param: &ParamBinding,
    value: &Value,
) -> Result<(), UpstreamError> {
    let layout = match param.style {
        ParamStyle::Label => &LABEL,
        ParamStyle::Matrix => &MATRIX,
        _ => &SIMPLE,
    };
    if param.json_content {
        return expand_json(out, &param.name, value, layout, Escape::Unreserved);
    }
    // `.` and `..` are unreserved, yet as a whole segment they would move the request up
    // the path: encode the dots so they stay data.
    if let Value::String(s) = value
        && layout.prefix.is_empty()
        && (s == "." || s == "..")
    {
        for _ in 0..s.len() {
            out.push_str("%2E");
        }
        return Ok(());
    }
    expand(
        out,
        &param.name,
        value,
        param.explode,
        layout,
        Escape::Unreserved,
    )
}

fn write_query_param(
    out: &mut String,
    param: &ParamBinding,
    value: &Value,
) -> Result<(), UpstreamError> {
    let esc = if param.allow_reserved {
        Escape::Reserved
    } else {
        Escape::Unreserved
    };
    if param.json_content {
        return expand_json(out, &param.name, value, &FORM_QUERY, esc);
    }
    let structured = matches!(value, Value::Array(_) | Value::Object(_));
    match param.style {
        ParamStyle::DeepObject => match value {
            Value::Object(map) => {
                // `name[key]=value` with the brackets percent-encoded as RFC 3986 requires.
                let members = map.iter().filter(|(_, v)| !v.is_null());
                for (i, (key, member)) in members.enumerate() {
                    if i > 0 {
                        out.push('&');
                    }
                    push_escaped(out, &param.name, Escape::Unreserved);
                    out.push_str("%5B");
                    push_escaped(out, key, esc);
                    out.push_str("%5D=");
                    push_scalar(out, member, esc)?;
                }
                Ok(())
            }
            _ => expand(out, &param.name, value, param.explode, &FORM_QUERY, esc),
        },
        ParamStyle::SpaceDelimited if structured && !param.explode => {
            expand(out, &param.name, value, false, &SPACE_QUERY, esc)
        }
        ParamStyle::PipeDelimited if structured && !param.explode => {
            expand(out, &param.name, value, false, &PIPE_QUERY, esc)
        }
        _ => expand(out, &param.name, value, param.explode, &FORM_QUERY, esc),
    }
}

fn write_cookie_param(
    out: &mut String,
    param: &ParamBinding,
    value: &Value,
) -> Result<(), UpstreamError> {
    if param.json_content {
        return expand_json(out, &param.name, value, &FORM_COOKIE, Escape::Unreserved);
    }
    expand(
        out,
        &param.name,
        value,
        param.explode,
        &FORM_COOKIE,
        Escape::Unreserved,
    )
}

/// Headers a parameter may never set: OpenAPI says `Accept`, `Content-Type` and
/// `Authorization` parameters SHALL be ignored; the rest control framing, routing or
/// credentials and would allow request smuggling or spoofing.
fn header_param_policy(name: &HeaderName) -> HeaderPolicy {
    use http::header::*;
    if name == ACCEPT || name == CONTENT_TYPE || name == AUTHORIZATION {
        HeaderPolicy::Ignore
    } else if name == HOST
        || name == CONTENT_LENGTH
        || name == TRANSFER_ENCODING
        || name == CONNECTION
        || name == TE
        || name == TRAILER
        || name == UPGRADE
        || name == COOKIE
        || name == PROXY_AUTHORIZATION
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
    {
        HeaderPolicy::Refuse
    } else {
        HeaderPolicy::Allow
    }
}

enum HeaderPolicy {
    Allow,
    Ignore,
    Refuse,
}

fn add_header_param(
    headers: &mut HeaderMap,
    param: &ParamBinding,
    value: &Value,
) -> Result<(), UpstreamError> {
    let name = HeaderName::from_bytes(param.name.as_bytes()).map_err(|_| {
        UpstreamError::Request(format!("`{}` is not a valid header name", param.name))
    })?;
    match header_param_policy(&name) {
        HeaderPolicy::Allow => {}
        HeaderPolicy::Ignore => return Ok(()),
        HeaderPolicy::Refuse => {
            return Err(UpstreamError::Request(format!(
                "header parameter `{name}` is managed by the gateway and cannot be set"
            )));
        }
    }
    let mut text = String::new();
    if param.json_content {
        push_json(&mut text, value, Escape::Verbatim)?;
    } else {
        expand(
            &mut text,
            &param.name,
            value,
            param.explode,
            &SIMPLE,
            Escape::Verbatim,
        )?;
    }
    let value = HeaderValue::from_maybe_shared(Bytes::from(text)).map_err(|_| {
        UpstreamError::Request(format!(
            "the value of header `{name}` contains characters not allowed in an HTTP header \
             (control characters such as CR or LF)"
        ))
    })?;
    headers.append(name, value);
    Ok(())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
