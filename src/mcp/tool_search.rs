//! A `tools/call` of the search tool: check the arguments, search the catalog's index for
//! the tools this caller may call, and answer in AgentCore Gateway's shape,
//! `structuredContent.tools[]` (each tool as `tools/list` describes it) with the same JSON as
//! a text block.

use std::time::Instant;

use serde_json::Value;

use super::jsonrpc;
use super::{Call, Era, write_result_type};
use crate::metrics::Metrics;
use crate::search::{MAX_QUERY_CHARS, ToolSearch};

/// Answers a call of the search tool with `arguments`.
pub(super) fn answer(
    call: &Call<'_>,
    search: &ToolSearch,
    arguments: Option<&Value>,
    metrics: &Metrics,
    out: &mut Vec<u8>,
) {
    let started = Instant::now();
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    let hits = match parse(search, arguments) {
        Err(problem) => {
            out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
            jsonrpc::write_json_str(out, &problem);
            out.extend_from_slice(b"}],\"isError\":true}");
            jsonrpc::end_result(out);
            log(call, search, metrics, "invalid_arguments", 0, started);
            return;
        }
        Ok((query, limit)) => {
            let tools = call.snap.catalog().tools();
            let policy = call.snap.settings().policy.as_deref();
            let visible = |doc: usize| {
                tools[doc].policy.missing(call.caller).is_none()
                    && crate::policy::visible(policy, call.caller, &tools[doc])
            };
            search.index().search(query, limit, search.mode(), &visible)
        }
    };
    let tools = call.snap.catalog().tools();
    let mut list = Vec::with_capacity(
        hits.iter()
            .map(|h| tools[h.doc].definition.get().len() + 1)
            .sum::<usize>()
            + 16,
    );
    list.extend_from_slice(b"{\"tools\":[");
    for (i, hit) in hits.iter().enumerate() {
        if i > 0 {
            list.push(b',');
        }
        list.extend_from_slice(tools[hit.doc].definition.get().as_bytes());
    }
    list.extend_from_slice(b"]}");
    // The pieces are the catalog's own serialized JSON.
    let text = std::str::from_utf8(&list).expect("definitions are UTF-8");
    out.reserve(list.len() * 2 + 64);
    out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
    jsonrpc::write_json_str(out, text);
    out.extend_from_slice(b"}],\"structuredContent\":");
    out.extend_from_slice(&list);
    out.extend_from_slice(b",\"isError\":false}");
    jsonrpc::end_result(out);
    let outcome = if hits.is_empty() { "empty" } else { "ok" };
    log(call, search, metrics, outcome, hits.len(), started);
}

/// The query and limit of the arguments, or what is wrong with them.
fn parse<'a>(
    search: &ToolSearch,
    arguments: Option<&'a Value>,
) -> Result<(&'a str, usize), String> {
    let (default_limit, max_limit) = search.limits();
    // Built only for an error: a well-formed call allocates nothing here.
    let usage = || {
        format!(
            "the search tool {} takes {{\"query\": \"what you want to do\"}} and an optional \"limit\" (1 to {max_limit})",
            search.name()
        )
    };
    let Some(Value::Object(arguments)) = arguments else {
        return Err(format!("invalid arguments: {usage}", usage = usage()));
    };
    if let Some(key) = arguments
        .keys()
        .find(|k| !matches!(k.as_str(), "query" | "limit"))
    {
        return Err(format!(
            "invalid arguments: unknown argument `{key}`; {usage}",
            usage = usage()
        ));
    }
    let query = match arguments.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.as_str(),
        Some(Value::String(_)) => {
            return Err(format!(
                "invalid arguments: `query` is empty; {usage}",
                usage = usage()
            ));
        }
        Some(_) => {
            return Err(format!(
                "invalid arguments: `query` must be a string; {usage}",
                usage = usage()
            ));
        }
        None => {
            return Err(format!(
                "invalid arguments: `query` is required; {usage}",
                usage = usage()
            ));
        }
    };
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(format!(
            "invalid arguments: `query` is longer than {MAX_QUERY_CHARS} characters; describe the task in a sentence or two; {usage}",
            usage = usage()
        ));
    }
    let limit = match arguments.get("limit") {
        None | Some(Value::Null) => default_limit,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max_limit as u64).contains(&n) => n as usize,
            _ => {
                return Err(format!(
                    "invalid arguments: `limit` must be an integer from 1 to {max_limit} (found {v}); {usage}",
                    usage = usage()
                ));
            }
        },
    };
    Ok((query, limit))
}

fn log(
    call: &Call<'_>,
    search: &ToolSearch,
    metrics: &Metrics,
    outcome: &str,
    hits: usize,
    started: Instant,
) {
    metrics.search_calls.with_label_values(&[outcome]).inc();
    metrics
        .search_duration
        .observe(started.elapsed().as_secs_f64());
    // The query is the caller's text: its length is logged, not its content.
    tracing::info!(
        target: "toolgate::call",
        id = call.id.get(),
        tool = search.name(),
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        outcome,
        hits,
        micros = started.elapsed().as_micros() as u64,
        modern = call.era == Era::Modern,
        "tool search"
    );
}
