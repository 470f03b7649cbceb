//! Percent-encoding and value-to-text conversion for request building. Everything writes
//! straight into the caller's buffer: no intermediate strings on the request path.

use std::fmt;
use std::io;

use serde_json::Value;

use crate::targets::UpstreamError;

/// Which characters of a value are percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escape {
    /// Everything outside RFC 3986 `unreserved` (`A-Z a-z 0-9 - . _ ~`) is encoded: path
    /// segments, query values, cookie values. `/`, `?`, `#`, `&`, `=` can never leak.
    Unreserved,
    /// `allowReserved`: RFC 3986 reserved characters and existing `%XX` triplets are kept
    /// (RFC 6570 reserved expansion). `#` is still encoded: unencoded it would end the
    /// request target and silently drop the rest of the query.
    Reserved,
    /// `application/x-www-form-urlencoded` bodies: as `Unreserved`, plus `~`, which RFC 1738
    /// (cited by RFC 1866) still reserves.
    Form,
    /// Header values: no percent-encoding (OAS 3.1.2 Appendix D); validity is checked when
    /// the `HeaderValue` is built.
    Verbatim,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 reserved characters kept by `allowReserved`, minus `#` (see [`Escape::Reserved`]).
#[inline]
fn is_kept_reserved(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/'
            | b'?'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

#[inline]
fn keeps(esc: Escape, b: u8) -> bool {
    match esc {
        Escape::Unreserved => is_unreserved(b),
        Escape::Form => is_unreserved(b) && b != b'~',
        Escape::Reserved => is_unreserved(b) || is_kept_reserved(b),
        Escape::Verbatim => true,
    }
}

#[inline]
fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Appends `bytes` to `out`, percent-encoded as `esc` says. With [`Escape::Verbatim`] the
/// bytes must be UTF-8 (they always are: they come from `str`s and JSON).
pub(super) fn push_escaped_bytes(out: &mut String, bytes: &[u8], esc: Escape) {
    if esc == Escape::Verbatim {
        out.push_str(&String::from_utf8_lossy(bytes));
        return;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if keeps(esc, b) {
            // Kept bytes are ASCII, so pushing them as chars is exact.
            out.push(b as char);
        } else if esc == Escape::Reserved
            && b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out.push('%');
            out.push(bytes[i + 1] as char);
            out.push(bytes[i + 2] as char);
            i += 2;
        } else {
            push_pct(out, b);
        }
        i += 1;
    }
}

/// Appends `s` to `out`, percent-encoded as `esc` says.
#[inline]
pub(super) fn push_escaped(out: &mut String, s: &str, esc: Escape) {
    if esc == Escape::Verbatim {
        out.push_str(s);
    } else {
        push_escaped_bytes(out, s.as_bytes(), esc);
    }
}

/// A writer that percent-encodes what is written to it into a `String`: lets `write!` and
/// `serde_json::to_writer` produce encoded output without a temporary buffer.
pub(super) struct EscapeWriter<'a> {
    pub(super) out: &'a mut String,
    pub(super) esc: Escape,
}

impl fmt::Write for EscapeWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.out, s, self.esc);
        Ok(())
    }
}

impl io::Write for EscapeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        push_escaped_bytes(self.out, buf, self.esc);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `value` as JSON text, percent-encoded as `esc` says.
pub(super) fn push_json(out: &mut String, value: &Value, esc: Escape) -> Result<(), UpstreamError> {
    serde_json::to_writer(EscapeWriter { out, esc }, value)
        .map_err(|e| UpstreamError::Request(format!("cannot serialize a value as JSON: {e}")))
}

/// Appends one value as text: strings as is, booleans as `true`/`false`, numbers as JSON
/// spells them, `null` as nothing. Arrays and objects nested where only a scalar fits
/// (RFC 6570 has no nesting) are sent as JSON text.
pub(super) fn push_scalar(
    out: &mut String,
    value: &Value,
    esc: Escape,
) -> Result<(), UpstreamError> {
    match value {
        Value::String(s) => push_escaped(out, s, esc),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // `+` can appear in exponents of some spellings; the writer encodes it.
            fmt::Write::write_fmt(&mut EscapeWriter { out, esc }, format_args!("{n}"))
                .map_err(|_| UpstreamError::Request("cannot format a number".into()))?;
        }
        Value::Null => {}
        Value::Array(_) | Value::Object(_) => push_json(out, value, esc)?,
    }
    Ok(())
}

/// Whether `value` expands to anything (RFC 6570 "defined"): `null`, empty arrays and empty
/// objects (after dropping `null` members) are undefined and their parameter is omitted.
pub(super) fn is_defined(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => items.iter().any(|v| !v.is_null()),
        Value::Object(map) => map.values().any(|v| !v.is_null()),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str, e: Escape) -> String {
        let mut out = String::new();
        push_escaped(&mut out, s, e);
        out
    }

    #[test]
    fn unreserved_encodes_everything_else() {
        assert_eq!(esc("aZ09-._~", Escape::Unreserved), "aZ09-._~");
        assert_eq!(
            esc(":/?#[]@!$&'()*+,;= %", Escape::Unreserved),
            "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%20%25"
        );
        assert_eq!(esc("é€", Escape::Unreserved), "%C3%A9%E2%82%AC");
    }

    #[test]
    fn reserved_keeps_reserved_and_triplets_but_not_hash() {
        assert_eq!(esc("a/b?c=d&e", Escape::Reserved), "a/b?c=d&e");
        assert_eq!(esc("100%25 %zz#x", Escape::Reserved), "100%25%20%25zz%23x");
        assert_eq!(esc("%4", Escape::Reserved), "%254");
        assert_eq!(esc("é", Escape::Reserved), "%C3%A9");
    }

    #[test]
    fn form_also_encodes_tilde() {
        assert_eq!(esc("a~b c", Escape::Form), "a%7Eb%20c");
    }

    #[test]
    fn scalars_are_spelled_like_json() {
        let mut out = String::new();
        for v in [
            serde_json::json!(true),
            serde_json::json!(-1.5e-7),
            serde_json::json!(12345678901234567u64),
            serde_json::json!({"a": [1]}),
        ] {
            push_scalar(&mut out, &v, Escape::Unreserved).unwrap();
            out.push('|');
        }
        assert_eq!(
            out,
            "true|-1.5e-7|12345678901234567|%7B%22a%22%3A%5B1%5D%7D|"
        );
    }
}
