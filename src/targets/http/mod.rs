//! HTTP targets: the request template of one operation ([`HttpOperation`]), built once at
//! load from an OpenAPI operation, and its execution over one pooled hyper client.
//!
//! [`build_request`] (`request.rs`, `body.rs`, `encode.rs`) turns arguments into a request;
//! [`HttpClient::call`] (`client.rs`) sends it and reads the answer within the target's
//! time and size limits.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};

use crate::auth::outbound::CredentialProvider;

/// Where a parameter goes in the HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    /// A `{name}` variable of the path template.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie in the `Cookie` header.
    Cookie,
}

/// OpenAPI serialization style of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ParamStyle {
    /// `simple` (path, header default): `a,b,c`.
    Simple,
    /// `label` (path): `.a.b.c`.
    Label,
    /// `matrix` (path): `;x=a,b,c`.
    Matrix,
    /// `form` (query, cookie default): `x=a,b,c` or `x=a&x=b`.
    Form,
    /// `spaceDelimited` (query arrays): `x=a%20b%20c`.
    SpaceDelimited,
    /// `pipeDelimited` (query arrays): `x=a|b|c`.
    PipeDelimited,
    /// `deepObject` (query objects): `x[k]=v`.
    DeepObject,
}

/// How one tool argument reaches the upstream request.
#[derive(Debug, Clone)]
pub struct ParamBinding {
    /// Name of the property in the tool's `inputSchema`.
    pub arg: Box<str>,
    /// Name on the wire: path variable, query key, header or cookie name.
    pub name: Box<str>,
    /// Where it goes.
    pub location: ParamLocation,
    /// How the value is serialized.
    pub style: ParamStyle,
    /// OpenAPI `explode`.
    pub explode: bool,
    /// OpenAPI `allowReserved` (query only): reserved characters are sent unencoded.
    pub allow_reserved: bool,
    /// Declared with `content: {application/json: ...}` rather than `schema`: the value is
    /// sent JSON-encoded (then percent-encoded as its location requires).
    pub json_content: bool,
}

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// Literal text, already valid in a URL path (sent as is).
    Literal(Box<str>),
    /// The value of `params[index]` (a [`ParamLocation::Path`] binding).
    Param(usize),
}

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyEncoding {
    /// `application/json` and `+json` types.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`. An argument shaped `{"content": <base64>, "filename"?: ..,
    /// "contentType"?: ..}` is sent as a file part (see `body.rs`).
    Multipart,
    /// `text/*`: the argument is a string sent as is.
    Text,
    /// Anything else (`application/octet-stream`...): the argument is base64, sent decoded.
    Binary,
}

/// Where the body's value comes from in the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    /// The whole body is one argument (e.g. `body`): used when the body is not an object,
    /// or when one of its property names collides with a parameter name.
    Whole(Box<str>),
    /// The body is an object whose top-level properties are these arguments (flattened
    /// into the tool's `inputSchema`). An absent argument is left out of the body.
    Properties(Box<[Box<str>]>),
}

/// The request body of an operation.
#[derive(Debug, Clone)]
pub struct BodyBinding {
    /// The `Content-Type` sent.
    pub content_type: HeaderValue,
    /// How the value is encoded.
    pub encoding: BodyEncoding,
    /// Where the value comes from.
    pub source: BodySource,
    /// Whether the operation requires a body (an empty object is then still sent).
    pub required: bool,
    /// Multipart fields declared `format: binary`: their argument is a base64 string (the
    /// only way to pass bytes in JSON arguments), sent decoded as a file part.
    pub binary_parts: Box<[Box<str>]>,
}

/// Everything needed to turn a tool's arguments into the upstream request, built once at
/// load time from an OpenAPI operation.
#[derive(Debug, Clone)]
pub struct HttpOperation {
    /// HTTP method.
    pub method: Method,
    /// Base URL (scheme, authority, optional base path) without a trailing slash, e.g.
    /// `http://127.0.0.1:8081/v1`. From the target's `base_url`, else the spec's servers.
    pub base_url: Arc<str>,
    /// The path template after the base URL, e.g. `/pets/{petId}` as
    /// `[Literal("/pets/"), Param(0)]`.
    pub path: Box<[PathSegment]>,
    /// All parameters, in declaration order.
    pub params: Box<[ParamBinding]>,
    /// The request body, if the operation takes one.
    pub body: Option<BodyBinding>,
    /// The `Accept` header to send, from the operation's 2xx response media types.
    pub accept: Option<HeaderValue>,
}

/// Target-wide settings shared by all tools of one HTTP target.
#[derive(Debug)]
pub struct HttpTarget {
    /// The target's name from `gateway.yaml`.
    pub name: Arc<str>,
    /// Outbound credentials attached to every request.
    pub credentials: Option<CredentialProvider>,
    /// Timeout for one call, from sending the request to the end of the answer's body.
    pub timeout: Duration,
    /// Largest answer body read; larger answers are cut and marked truncated.
    pub max_response_bytes: usize,
}

mod body;
mod client;
mod encode;
mod request;
mod target;

pub(crate) use client::excerpt_text;
pub use client::{ClientBuildError, ERROR_EXCERPT_BYTES, HttpClient};
pub use request::{RequestBody, build_request};
pub use target::{HttpBinding, load};

impl HttpOperation {
    /// The path template as the document writes it (`/pets/{petId}`), for traces and logs.
    pub fn template(&self) -> String {
        let mut out = String::new();
        for segment in &*self.path {
            match segment {
                PathSegment::Literal(text) => out.push_str(text),
                PathSegment::Param(i) => {
                    out.push('{');
                    out.push_str(self.params.get(*i).map_or("?", |p| &p.name));
                    out.push('}');
                }
            }
        }
        out
    }
}
