//! The search tool of one catalog: its definition, its index over the catalog's tools, the
//! pinned tools of a `search_only` listing, and the model it embeds with (shared by the
//! catalogs of successive reloads while its files do not change).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Document, Index, Mode, StaticModel};
use crate::catalog::Tool;
use crate::config::{SearchConfig, SearchListing, SearchMode};

/// Longest query accepted (characters): a task description, not a document.
pub const MAX_QUERY_CHARS: usize = 2000;

/// The gateway's search tool over one catalog.
pub struct ToolSearch {
    name: Arc<str>,
    definition: Box<RawValue>,
    index: Index,
    mode: Mode,
    limit: usize,
    max_limit: usize,
    listing: SearchListing,
    /// Catalog positions of the tools listed beside the search tool (`search_only`).
    pinned: Vec<usize>,
    model: Option<LoadedModel>,
}

/// A model and the files it was read from, to know whether a reload may keep it.
#[derive(Clone)]
struct LoadedModel {
    model: Arc<StaticModel>,
    dir: PathBuf,
    stamp: Option<(std::time::SystemTime, u64)>,
}

fn stamp(dir: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(dir.join("model.safetensors")).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// What building the search tool reports, for the load summary.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Tools indexed.
    pub tools: usize,
    /// Whether dense vectors were built.
    pub dense: bool,
    /// Seconds spent (index, and model load when it was not reused).
    pub seconds: f64,
    /// Pinned patterns that matched no tool.
    pub unmatched_pins: Vec<String>,
}

impl std::fmt::Debug for ToolSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSearch")
            .field("name", &self.name)
            .field("tools", &self.index.len())
            .field("dense", &self.index.has_dense())
            .finish_non_exhaustive()
    }
}

impl ToolSearch {
    /// Builds the search tool over `tools` (in catalog order). `previous` lends its model when
    /// the configured model's files are unchanged. Errors name the model directory and what is
    /// wrong with it.
    pub fn build(
        config: &SearchConfig,
        config_file: &Path,
        tools: &[Arc<Tool>],
        previous: Option<&ToolSearch>,
    ) -> Result<(ToolSearch, BuildReport), String> {
        let started = Instant::now();
        let model = match &config.model {
            None => None,
            Some(relative) => {
                let dir = crate::config::Config::resolve(config_file, relative);
                let stamp = stamp(&dir);
                let reusable = previous
                    .and_then(|p| p.model.as_ref())
                    .filter(|m| m.dir == dir && stamp.is_some() && m.stamp == stamp);
                Some(match reusable {
                    Some(m) => m.clone(),
                    None => LoadedModel {
                        model: Arc::new(StaticModel::load(&dir).map_err(|e| {
                            format!("gateway.search.model `{}`: {e}", dir.display())
                        })?),
                        dir,
                        stamp,
                    },
                })
            }
        };
        let docs: Vec<Document> = tools
            .iter()
            .map(
                |t| match serde_json::from_str::<Value>(t.definition.get()) {
                    Ok(definition) => Document::of_definition(&definition),
                    Err(_) => Document {
                        name: t.name.to_string(),
                        ..Document::default()
                    },
                },
            )
            .collect();
        let index = Index::build(&docs, model.as_ref().map(|m| m.model.clone()));
        let mut unmatched_pins = Vec::new();
        let mut pinned = Vec::new();
        for pattern in &config.pinned {
            // Checked to compile by the config.
            let Ok(glob) = globset::Glob::new(pattern) else {
                continue;
            };
            let matcher = glob.compile_matcher();
            let before = pinned.len();
            pinned.extend(
                tools
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| matcher.is_match(&*t.name))
                    .map(|(i, _)| i),
            );
            if pinned.len() == before {
                unmatched_pins.push(pattern.clone());
            }
        }
        pinned.sort_unstable();
        pinned.dedup();
        let report = BuildReport {
            tools: tools.len(),
            dense: index.has_dense(),
            seconds: started.elapsed().as_secs_f64(),
            unmatched_pins,
        };
        let search = ToolSearch {
            name: config.tool_name.as_str().into(),
            definition: definition(&config.tool_name, config.limit, config.max_limit),
            index,
            mode: match config.mode {
                SearchMode::Hybrid => Mode::Hybrid,
                SearchMode::Lexical => Mode::Lexical,
                SearchMode::Dense => Mode::Dense,
            },
            limit: config.limit,
            max_limit: config.max_limit,
            listing: config.list,
            pinned,
            model,
        };
        Ok((search, report))
    }

    /// The tool name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MCP `Tool` object, serialized once.
    pub fn definition(&self) -> &RawValue {
        &self.definition
    }

    /// What `tools/list` shows besides the search tool.
    pub fn listing(&self) -> SearchListing {
        self.listing
    }

    /// Catalog positions of the pinned tools.
    pub fn pinned(&self) -> &[usize] {
        &self.pinned
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The ranking mode configured.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Tools returned without a `limit`, and the most a call may ask for.
    pub fn limits(&self) -> (usize, usize) {
        (self.limit, self.max_limit)
    }

    /// Heap bytes of the model, when there is one.
    pub fn model_bytes(&self) -> usize {
        self.model.as_ref().map_or(0, |m| m.model.memory_bytes())
    }
}

/// The search tool's MCP `Tool` object.
fn definition(name: &str, limit: usize, max_limit: usize) -> Box<RawValue> {
    let tool = serde_json::json!({
        "name": name,
        "title": "Search tools",
        "description": format!(
            "Finds the tools of this gateway that fit a task. Describe what you want to do in \
             plain words (e.g. \"refund an order\"); the answer lists the best-matching tools, \
             best first, each with its name, description and inputSchema (up to {limit} unless \
             `limit` says otherwise). Then call the tool you need by its name."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_QUERY_CHARS,
                    "description": "What you want to do, in plain words."
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": max_limit,
                    "description": format!("Most tools to return (default {limit}).")
                }
            },
            "required": ["query"],
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "tools": {
                    "type": "array",
                    "description": "The matching tools, best first, as tools/list describes them.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                            "inputSchema": {"type": "object"}
                        },
                        "required": ["name", "inputSchema"]
                    }
                }
            },
            "required": ["tools"]
        },
        "annotations": {
            "readOnlyHint": true,
            "destructiveHint": false,
            "idempotentHint": true,
            "openWorldHint": false
        }
    });
    serde_json::value::to_raw_value(&tool).expect("the search tool serializes")
}
