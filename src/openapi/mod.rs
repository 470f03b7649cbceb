//! OpenAPI → tools: loads OpenAPI 3.0 / 3.1 documents (JSON or YAML), resolves `$ref`s and
//! turns each operation into a [`ToolSpec`] with an [`HttpOperation`] binding.
//!
//! The structural layer (paths, operations, parameters, bodies, responses) is read into
//! typed structs; schemas stay `serde_json::Value`, because 3.0 and 3.1 schemas differ
//! (3.1 is plain JSON Schema 2020-12) and tools need them as JSON anyway.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::catalog::ToolSpec;
use crate::targets::http::HttpOperation;

/// Which operations of a document to turn into tools.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Keep only these operationIds (empty: all).
    pub include_operations: Vec<String>,
    /// Keep only operations with one of these tags (empty: all).
    pub include_tags: Vec<String>,
    /// Keep only these HTTP methods, upper-case (empty: all).
    pub include_methods: Vec<String>,
    /// Drop these operationIds.
    pub exclude_operations: Vec<String>,
    /// Drop operations with one of these tags.
    pub exclude_tags: Vec<String>,
    /// Drop these HTTP methods, upper-case.
    pub exclude_methods: Vec<String>,
}

/// Options for converting one document.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Overrides the document's `servers` (e.g. `http://127.0.0.1:8081/v1`).
    pub base_url: Option<String>,
    /// Which operations to convert.
    pub selection: Selection,
}

/// An operation that was not turned into a tool, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    /// `METHOD /path` plus the operationId when there is one.
    pub operation: String,
    /// Why it was skipped, precisely enough to act on.
    pub reason: String,
}

/// The tools made from one document.
#[derive(Debug)]
pub struct Converted {
    /// One per converted operation, in document order (paths, then methods in the order
    /// get, put, post, delete, options, head, patch, trace). Names are *local*
    /// (sanitized operationId, or method + path): the catalog adds the target prefix.
    pub tools: Vec<ToolSpec>,
    /// Operations left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Non-fatal findings about the document (e.g. an unsupported feature ignored).
    pub warnings: Vec<String>,
}

/// A document that cannot be used at all: unreadable, not OpenAPI, or broken.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {reason}", pointer_suffix(.pointer))]
pub struct SpecError {
    /// The file concerned.
    pub file: PathBuf,
    /// JSON pointer into the document where the problem is (empty: the whole document).
    pub pointer: String,
    /// What is wrong, and what to do about it.
    pub reason: String,
}

fn pointer_suffix(pointer: &str) -> String {
    if pointer.is_empty() {
        String::new()
    } else {
        format!(" at {pointer}")
    }
}

/// Loads the document at `path` (JSON or YAML) and converts its operations to tools.
pub fn load_and_convert(path: &Path, options: &ConvertOptions) -> Result<Converted, SpecError> {
    let _ = (path, options);
    todo!("openapi helper")
}

/// Converts an already-parsed document. `file` is used for error messages and to resolve
/// relative references.
pub fn convert(
    document: &Value,
    file: &Path,
    options: &ConvertOptions,
) -> Result<Converted, SpecError> {
    let _ = (document, file, options);
    let _: Option<HttpOperation> = None;
    todo!("openapi helper")
}
