//! Tool-search benchmark: retrieval quality, build time, latency and memory of
//! `toolgate::search::Index` on public tool-retrieval data.
//!
//! The queries and their gold tools are BFCL v4's (the Berkeley Function Calling Leaderboard,
//! PyPI `bfcl-eval`, Apache-2.0), turned into JSON by `benches/search/prepare.py`: each
//! question is a query, every distinct function document of the categories read is a tool
//! of one pool, and the gold is the function the question's ground truth calls. Real
//! distractors are added to the pool: the tools the gateway makes of OpenAPI documents
//! (`--distractors`, e.g. `tests/corpus/*`), loaded through `toolgate::gateway::load`
//! exactly as the gateway serves them.
//!
//! It reports, per split (dev: tune on it; eval: the held-out `live_*` categories) and per
//! category, for BM25 alone (`Lexical`), embeddings alone (`Dense`) and both fused
//! (`Hybrid`), in the same run: Recall@1/5/10 (a query counts at k when any of its gold
//! tools is among the first k) and MRR over the top 10 (0 when no gold is there). Then the
//! index build time with and without the model, search latency p50/p99 per mode at 10,000
//! tools (`--pad-to`), the index's and the model's heap bytes and the peak RSS, as Markdown
//! ready for BENCHMARKS.md, and the numbers as JSON (`--json FILE`, or the last line of
//! stdout), and the dev queries that hybrid misses at Recall@5.
//!
//! ```sh
//! benches/search/run.sh        # venv, data, model, then this in release
//! cargo run --release --example search_eval -- --data target/bench-search/bfcl.json \
//!     --model target/search-model/minilm-static \
//!     --distractors tests/corpus/real tests/corpus/oai tests/corpus/features --pad-to 10000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};
use toolgate::search::{Document, Index, Mode, StaticModel};

// The same allocator as the toolgate binary, so memory and latency are the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Results asked of every search (the metrics look at the top 10).
const LIMIT: usize = 10;
/// Queries run before timing, per mode.
const WARM_UP: usize = 200;
/// Builds timed per configuration (the median is reported).
const BUILDS: usize = 3;

#[derive(Parser)]
#[command(about = "Tool-search benchmark on BFCL v4 queries with real distractor tools")]
struct Args {
    /// The JSON written by benches/search/prepare.py.
    #[arg(long)]
    data: PathBuf,
    /// A static embedding model directory (model.safetensors + tokenizer.json); without
    /// one, only the lexical ranking is measured.
    #[arg(long)]
    model: Option<PathBuf>,
    /// OpenAPI documents, or directories searched for `.json`/`.yaml`/`.yml` documents,
    /// whose tools join the pool as distractors.
    #[arg(long, num_args = 1..)]
    distractors: Vec<PathBuf>,
    /// Pool size of the latency and build measurements (padded with renamed copies of
    /// distractor tools when there are not enough real ones).
    #[arg(long, default_value_t = 10_000)]
    pad_to: usize,
    /// Also write the numbers as JSON to this file (else they are stdout's last line).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Dev queries missed by hybrid at Recall@5 to list.
    #[arg(long, default_value_t = 20)]
    failures: usize,
    /// Write every query's outcome per mode (gold rank, top 10 names) to this JSON file.
    #[arg(long)]
    per_query: Option<PathBuf>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    source: Value,
    tools: Vec<Value>,
    origins: Vec<Origin>,
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Origin {
    name: String,
}

#[derive(Deserialize)]
struct Query {
    id: String,
    category: String,
    split: String,
    text: String,
    gold: Vec<usize>,
}

/// The searchable tools, and what each stands for.
struct Pool {
    docs: Vec<Document>,
    /// Per document: the BFCL function name it was made of (`None` for distractors), to
    /// count a hit on another document of the same name (`R@5 name`).
    bfcl_name: Vec<Option<Arc<str>>>,
}

impl Pool {
    fn len(&self) -> usize {
        self.docs.len()
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("search_eval: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.data).map_err(|e| {
        format!(
            "--data {}: {e} (make it with benches/search/prepare.py)",
            args.data.display()
        )
    })?;
    let data: Data = serde_json::from_str(&text).map_err(|e| {
        format!(
            "--data {}: not prepare.py's output: {e}",
            args.data.display()
        )
    })?;
    drop(text);
    if data.origins.len() != data.tools.len() {
        return Err(format!(
            "--data {}: {} tools but {} origins",
            args.data.display(),
            data.tools.len(),
            data.origins.len()
        ));
    }
    if let Some(q) = data
        .queries
        .iter()
        .find(|q| q.gold.is_empty() || q.gold.iter().any(|&g| g >= data.tools.len()))
    {
        return Err(format!("--data: query {} has no valid gold tool", q.id));
    }

    // The pool: BFCL's tools first (the gold indices stay valid), then the distractors.
    let mut pool = Pool {
        docs: data.tools.iter().map(Document::of_definition).collect(),
        bfcl_name: data
            .origins
            .iter()
            .map(|o| Some(Arc::from(o.name.as_str())))
            .collect(),
    };
    let bfcl_tools = pool.len();
    let distractors = load_distractors(&args.distractors)?;
    let distractor_tools: usize = distractors.loaded.iter().map(|d| d.tools).sum();
    for doc in distractors.docs {
        pool.docs.push(doc);
        pool.bfcl_name.push(None);
    }
    // From here on, what the process holds is the benchmark's own: forget the peak of the
    // OpenAPI loading (Linux: `5` to clear_refs resets VmHWM).
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    let model = match &args.model {
        None => None,
        Some(dir) => {
            let rss_before = proc_status_kb("VmRSS");
            let started = Instant::now();
            let model =
                StaticModel::load(dir).map_err(|e| format!("--model {}: {e}", dir.display()))?;
            let seconds = started.elapsed().as_secs_f64();
            let rss_after = proc_status_kb("VmRSS");
            Some(LoadedModel {
                model: Arc::new(model),
                dir: dir.clone(),
                seconds,
                rss_delta_kb: rss_after.zip(rss_before).map(|(a, b)| a.saturating_sub(b)),
            })
        }
    };
    let model_arc = model.as_ref().map(|m| m.model.clone());

    let splits: Vec<&str> = ordered(data.queries.iter().map(|q| q.split.as_str()));
    let categories: Vec<(&str, &str)> = ordered(
        data.queries
            .iter()
            .map(|q| (q.split.as_str(), q.category.as_str())),
    );

    // Quality at the real pool size.
    let real = build_both(&pool, model_arc.as_ref());
    let modes = modes(model_arc.is_some());
    let mut real_runs = BTreeMap::new();
    for &mode in &modes {
        let index = real.index_for(mode);
        real_runs.insert(
            mode_name(mode),
            run_queries(index, &pool, &data.queries, mode),
        );
    }

    // The large pool: the real one padded (or cut) to --pad-to.
    let (large, padding) = pad(&pool, args.pad_to);
    let large_built = build_both(&large, model_arc.as_ref());
    let mut large_runs = BTreeMap::new();
    for &mode in &modes {
        let index = large_built.index_for(mode);
        large_runs.insert(
            mode_name(mode),
            run_queries(index, &large, &data.queries, mode),
        );
    }

    let peak_kb = proc_status_kb("VmHWM");
    let rss_kb = proc_status_kb("VmRSS");

    // ---- Report.
    let mut out = String::new();
    let w = &mut out;
    line(w, "## Tool search: BFCL v4 with real distractors\n");
    line(
        w,
        &format!(
            "Data: `{}` {} (Apache-2.0), {} queries; dev = {}, eval (held out, not tuned on) = {}.",
            data.source
                .get("package")
                .and_then(Value::as_str)
                .unwrap_or("bfcl-eval"),
            data.source
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            data.queries.len(),
            categories_of(&categories, "dev"),
            categories_of(&categories, "eval"),
        ),
    );
    if let Some(skipped) = data.source.get("skipped").and_then(Value::as_array) {
        for s in skipped {
            line(
                w,
                &format!(
                    "Skipped category `{}`: {}.",
                    s.get("category").and_then(Value::as_str).unwrap_or("?"),
                    s.get("why").and_then(Value::as_str).unwrap_or("?")
                ),
            );
        }
    }
    line(
        w,
        &format!(
            "Pool: {} tools = {bfcl_tools} BFCL function documents + {distractor_tools} distractor tools from {} OpenAPI documents ({} documents refused, listed on stderr).",
            pool.len(),
            distractors.loaded.len(),
            distractors.refused.len()
        ),
    );
    line(
        w,
        &match &model {
            Some(m) => format!(
                "Model: `{}` ({} dims, {} token ids), loaded in {:.0} ms.",
                m.dir.display(),
                m.model.dim(),
                m.model.vocab_size(),
                m.seconds * 1e3
            ),
            None => {
                "Model: none (`--model` not given): Dense and Hybrid are not measured.".to_string()
            }
        },
    );
    line(
        w,
        "Recall@k: share of queries with a gold tool among the first k; MRR over the top 10 (0 when absent). \
         `R@5 name`: Recall@5 counting any pool document with the gold function's BFCL name (BFCL has several \
         documents of one name, e.g. 21 `get_current_weather`; the strict gold is the one in the question's own list).\n",
    );

    line(w, &format!("### Quality, pool of {} tools\n", pool.len()));
    quality_table(w, &data.queries, &real_runs, &splits, &categories);

    line(
        w,
        &format!(
            "\n### Quality, pool of {} tools ({})\n",
            large.len(),
            padding.describe()
        ),
    );
    quality_table(w, &data.queries, &large_runs, &splits, &[]);

    line(w, "\n### Index build\n");
    line(
        w,
        &format!(
            "Median of {BUILDS} builds (`Index::build`, documents already extracted); heap bytes by `Index::memory_bytes` (the model not included).\n"
        ),
    );
    line(
        w,
        "| tools | lexical build | lexical index | with model build | with model index |",
    );
    line(w, "| ---: | ---: | ---: | ---: | ---: |");
    for built in [&real, &large_built] {
        line(
            w,
            &format!(
                "| {} | {:.1} ms | {} | {} | {} |",
                built.tools,
                built.lexical_ms,
                mib(built.lexical.memory_bytes() as u64),
                built
                    .dense_ms
                    .map_or("n/a".into(), |ms| format!("{ms:.1} ms")),
                built
                    .dense
                    .as_ref()
                    .map_or("n/a".into(), |d| mib(d.memory_bytes() as u64)),
            ),
        );
    }

    line(
        w,
        &format!(
            "\n### Search latency, pool of {} tools ({})\n",
            large.len(),
            padding.describe()
        ),
    );
    line(
        w,
        &format!(
            "Each of the {} queries timed alone (`Index::search`, limit {LIMIT}, one thread) after {WARM_UP} warm-up searches.\n",
            data.queries.len()
        ),
    );
    line(w, "| mode | p50 | p90 | p99 | max | mean |");
    line(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for &mode in &modes {
        let stats = latency(&large_runs[mode_name(mode)]);
        line(
            w,
            &format!(
                "| {} | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms | {:.3} ms |",
                mode_name(mode),
                stats.p50,
                stats.p90,
                stats.p99,
                stats.max,
                stats.mean
            ),
        );
    }
    line(
        w,
        &format!(
            "\nAt the real pool ({} tools): {}.",
            pool.len(),
            modes
                .iter()
                .map(|&m| {
                    let s = latency(&real_runs[mode_name(m)]);
                    format!("{} p50 {:.3} ms / p99 {:.3} ms", mode_name(m), s.p50, s.p99)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    line(w, "\n### Memory\n");
    line(w, "| what | bytes |");
    line(w, "| --- | ---: |");
    if let Some(m) = &model {
        line(
            w,
            &format!(
                "| model (`StaticModel::memory_bytes`) | {} |",
                mib(m.model.memory_bytes() as u64)
            ),
        );
        if let Some(kb) = m.rss_delta_kb {
            line(
                w,
                &format!(
                    "| RSS growth while loading the model | {} |",
                    mib(kb * 1024)
                ),
            );
        }
    }
    for built in [&real, &large_built] {
        line(
            w,
            &format!(
                "| index, {} tools, lexical / with model | {} / {} |",
                built.tools,
                mib(built.lexical.memory_bytes() as u64),
                built
                    .dense
                    .as_ref()
                    .map_or("n/a".into(), |d| mib(d.memory_bytes() as u64))
            ),
        );
    }
    line(
        w,
        &format!(
            "| process peak RSS (VmHWM{}) | {} |",
            if peak_reset {
                ", after the OpenAPI loading"
            } else {
                ", whole run"
            },
            peak_kb.map_or("n/a".into(), |kb| mib(kb * 1024))
        ),
    );
    line(
        w,
        &format!(
            "| process RSS at the end (both pools, {} indexes, documents) | {} |",
            if model.is_some() { 4 } else { 2 },
            rss_kb.map_or("n/a".into(), |kb| mib(kb * 1024))
        ),
    );

    // The dev queries hybrid misses at 5 (lexical when there is no model), spread over
    // the categories.
    let failing_mode = *modes.last().unwrap_or(&Mode::Lexical);
    let runs = &real_runs[mode_name(failing_mode)];
    let misses: Vec<usize> = (0..data.queries.len())
        .filter(|&i| data.queries[i].split == "dev" && runs[i].strict.is_none_or(|r| r > 5))
        .collect();
    let shown = spread(&misses, args.failures);
    line(
        w,
        &format!(
            "\n### Dev queries {} misses at Recall@5 ({} of {} dev queries; {} shown)\n",
            mode_name(failing_mode),
            misses.len(),
            data.queries.iter().filter(|q| q.split == "dev").count(),
            shown.len()
        ),
    );
    line(w, "| id | query | gold | gold rank | first result |");
    line(w, "| --- | --- | --- | ---: | --- |");
    let mut failures_json = Vec::new();
    for &i in &misses {
        let q = &data.queries[i];
        let run = &runs[i];
        let gold = q
            .gold
            .iter()
            .map(|&g| pool.docs[g].name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let first = run
            .top
            .first()
            .map_or("(nothing)".to_string(), |&d| pool.docs[d].name.clone());
        failures_json.push(json!({
            "id": q.id, "category": q.category, "query": q.text, "gold": gold,
            "gold_rank": run.strict, "top": run.top.iter().map(|&d| pool.docs[d].name.as_str()).collect::<Vec<_>>(),
        }));
        if shown.contains(&i) {
            line(
                w,
                &format!(
                    "| {} | {} | `{}` | {} | `{}` |",
                    q.id,
                    cell(&q.text, 110),
                    gold,
                    run.strict.map_or(">10".into(), |r| r.to_string()),
                    first
                ),
            );
        }
    }
    print!("{out}");

    // ---- JSON.
    let builds = [&real, &large_built];
    let report = json!({
        "data": data.source,
        "pool": {
            "tools": pool.len(), "bfcl_tools": bfcl_tools, "distractor_tools": distractor_tools,
            "distractor_documents": distractors.loaded.iter().map(|d| json!({"path": d.path.display().to_string(), "tools": d.tools})).collect::<Vec<_>>(),
            "refused_documents": distractors.refused.iter().map(|(p, e)| json!({"path": p.display().to_string(), "error": e})).collect::<Vec<_>>(),
        },
        "model": model.as_ref().map(|m| json!({
            "dir": m.dir.display().to_string(), "dim": m.model.dim(), "vocab": m.model.vocab_size(),
            "memory_bytes": m.model.memory_bytes(), "load_ms": m.seconds * 1e3,
            "rss_growth_bytes": m.rss_delta_kb.map(|kb| kb * 1024),
        })),
        "quality": quality_json(&data.queries, &real_runs, &splits, &categories),
        "large_pool": {
            "tools": large.len(), "padding": padding.describe(),
            "quality": quality_json(&data.queries, &large_runs, &splits, &[]),
            "latency_ms": modes.iter().map(|&m| (mode_name(m), latency(&large_runs[mode_name(m)]).to_json())).collect::<BTreeMap<_, _>>(),
        },
        "latency_ms_real_pool": modes.iter().map(|&m| (mode_name(m), latency(&real_runs[mode_name(m)]).to_json())).collect::<BTreeMap<_, _>>(),
        "build": builds.iter().map(|b| json!({
            "tools": b.tools, "lexical_ms": b.lexical_ms, "lexical_index_bytes": b.lexical.memory_bytes(),
            "dense_ms": b.dense_ms, "dense_index_bytes": b.dense.as_ref().map(Index::memory_bytes),
        })).collect::<Vec<_>>(),
        "peak_rss_bytes": peak_kb.map(|kb| kb * 1024),
        "peak_rss_after_openapi_loading": peak_reset,
        "rss_end_bytes": rss_kb.map(|kb| kb * 1024),
        "dev_failures": {"mode": mode_name(failing_mode), "queries": failures_json},
    });
    if let Some(path) = &args.per_query {
        let rows: Vec<Value> = data
            .queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let modes: serde_json::Map<String, Value> = real_runs
                    .iter()
                    .map(|(mode, runs)| {
                        let o = &runs[i];
                        let top: Vec<&str> =
                            o.top.iter().map(|&d| pool.docs[d].name.as_str()).collect();
                        (
                            mode.to_string(),
                            json!({"rank": o.strict, "rank_by_name": o.by_name, "top": top}),
                        )
                    })
                    .collect();
                json!({"id": q.id, "split": q.split, "category": q.category, "query": q.text,
                       "gold": q.gold.iter().map(|&g| pool.docs[g].name.as_str()).collect::<Vec<_>>(),
                       "modes": modes})
            })
            .collect();
        let text = serde_json::to_string(&rows).map_err(|e| format!("JSON: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("--per-query {}: {e}", path.display()))?;
    }
    let report = serde_json::to_string(&report).map_err(|e| format!("JSON: {e}"))?;
    match &args.json {
        Some(path) => {
            std::fs::write(path, report + "\n")
                .map_err(|e| format!("--json {}: {e}", path.display()))?;
            eprintln!("search_eval: numbers written to {}", path.display());
        }
        None => println!("\n{report}"),
    }
    Ok(())
}

struct LoadedModel {
    model: Arc<StaticModel>,
    dir: PathBuf,
    seconds: f64,
    rss_delta_kb: Option<u64>,
}

// ---- Distractors.

struct Distractors {
    docs: Vec<Document>,
    loaded: Vec<LoadedDocument>,
    refused: Vec<(PathBuf, String)>,
}

struct LoadedDocument {
    path: PathBuf,
    tools: usize,
}

/// The tools of every OpenAPI document under `paths`, each document loaded alone through
/// `toolgate::gateway::load` (a generated gateway.yaml with one target), so that one
/// document the gateway refuses costs only its own tools.
fn load_distractors(paths: &[PathBuf]) -> Result<Distractors, String> {
    let mut files = Vec::new();
    for path in paths {
        let path = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if path.is_file() {
            files.push(path);
        } else if path.is_dir() {
            documents(&path, &mut files);
        } else {
            return Err(format!(
                "--distractors {}: no such file or directory",
                path.display()
            ));
        }
    }
    files.sort();
    files.dedup();
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let config = dir.path().join("gateway.yaml");
    let mut out = Distractors {
        docs: Vec::new(),
        loaded: Vec::new(),
        refused: Vec::new(),
    };
    let mut targets = BTreeSet::new();
    for file in files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut target: String = stem
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        if target.is_empty() {
            target.push('t');
        }
        let base = target.clone();
        let mut n = 1;
        while !targets.insert(target.clone()) {
            n += 1;
            target = format!("{base}{n}");
        }
        let yaml = format!(
            "listen: 127.0.0.1:0\ntargets:\n  - name: {target}\n    openapi:\n      spec: {:?}\n      base_url: \"http://127.0.0.1:9\"\n",
            file.display().to_string()
        );
        std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
        match toolgate::gateway::load(&config) {
            Ok(loaded) => {
                let tools = loaded.catalog.tools();
                for tool in tools {
                    let doc = match serde_json::from_str::<Value>(tool.definition.get()) {
                        Ok(definition) => Document::of_definition(&definition),
                        Err(_) => Document {
                            name: tool.name.to_string(),
                            ..Document::default()
                        },
                    };
                    out.docs.push(doc);
                }
                out.loaded.push(LoadedDocument {
                    path: file,
                    tools: tools.len(),
                });
            }
            Err(e) => {
                eprintln!("search_eval: distractor {} skipped: {e}", file.display());
                out.refused.push((file, e.to_string()));
            }
        }
    }
    Ok(out)
}

/// The `.json`/`.yaml`/`.yml` files under `dir`.
fn documents(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("search_eval: cannot read {}, skipped", dir.display());
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            documents(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

// ---- Pools and indexes.

/// How the large pool was made of the real one.
struct Padding {
    real: usize,
    copies: usize,
    cut: usize,
}

impl Padding {
    fn describe(&self) -> String {
        if self.copies > 0 {
            format!(
                "the {} real tools + {} renamed copies of distractor tools, `NAME~padN`",
                self.real, self.copies
            )
        } else if self.cut > 0 {
            format!("the first tools of the real pool, {} left out", self.cut)
        } else {
            "the real pool, no padding".into()
        }
    }
}

/// The pool grown to `size` with renamed copies of its distractors (of every tool when it
/// has none), or cut to `size` when larger (BFCL's tools, which hold the gold, come first).
fn pad(pool: &Pool, size: usize) -> (Pool, Padding) {
    let real = pool.len();
    let mut docs: Vec<Document> = pool.docs.iter().take(size).cloned().collect();
    let mut bfcl_name: Vec<Option<Arc<str>>> = pool.bfcl_name.iter().take(size).cloned().collect();
    let sources: Vec<usize> = {
        let distractors: Vec<usize> = (0..real).filter(|&i| pool.bfcl_name[i].is_none()).collect();
        if distractors.is_empty() {
            (0..real).collect()
        } else {
            distractors
        }
    };
    let mut copies = 0;
    if !sources.is_empty() {
        while docs.len() < size {
            let source = sources[copies % sources.len()];
            let round = copies / sources.len() + 2;
            let mut doc = pool.docs[source].clone();
            doc.name = format!("{}~pad{round}", doc.name);
            docs.push(doc);
            bfcl_name.push(pool.bfcl_name[source].clone());
            copies += 1;
        }
    }
    (
        Pool { docs, bfcl_name },
        Padding {
            real,
            copies,
            cut: real.saturating_sub(size),
        },
    )
}

/// The indexes of one pool, lexical-only and with the model, and their build times.
struct Built {
    tools: usize,
    lexical: Index,
    lexical_ms: f64,
    dense: Option<Index>,
    dense_ms: Option<f64>,
}

impl Built {
    fn index_for(&self, mode: Mode) -> &Index {
        match (mode, &self.dense) {
            (Mode::Lexical, _) | (_, None) => &self.lexical,
            (_, Some(dense)) => dense,
        }
    }
}

fn build_both(pool: &Pool, model: Option<&Arc<StaticModel>>) -> Built {
    let (lexical, lexical_ms) = timed_build(&pool.docs, None);
    let (dense, dense_ms) = match model {
        Some(m) => {
            let (index, ms) = timed_build(&pool.docs, Some(m));
            (Some(index), Some(ms))
        }
        None => (None, None),
    };
    Built {
        tools: pool.len(),
        lexical,
        lexical_ms,
        dense,
        dense_ms,
    }
}

/// The index of the last of [`BUILDS`] builds, and their median time (ms).
fn timed_build(docs: &[Document], model: Option<&Arc<StaticModel>>) -> (Index, f64) {
    let mut times = Vec::with_capacity(BUILDS);
    let mut index = None;
    for _ in 0..BUILDS {
        drop(index.take());
        let started = Instant::now();
        let built = Index::build(docs, model.cloned());
        times.push(started.elapsed().as_secs_f64() * 1e3);
        index = Some(built);
    }
    times.sort_by(f64::total_cmp);
    let Some(index) = index else {
        unreachable!("BUILDS > 0")
    };
    (index, times[times.len() / 2])
}

fn modes(dense: bool) -> Vec<Mode> {
    if dense {
        vec![Mode::Lexical, Mode::Dense, Mode::Hybrid]
    } else {
        vec![Mode::Lexical]
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Lexical => "lexical",
        Mode::Dense => "dense",
        Mode::Hybrid => "hybrid",
    }
}

// ---- Running and scoring.

/// What one query got.
struct Outcome {
    /// 1-based rank of the first gold tool in the top 10.
    strict: Option<usize>,
    /// 1-based rank of the first tool named like a gold function.
    by_name: Option<usize>,
    top: Vec<usize>,
    ms: f64,
}

fn run_queries(index: &Index, pool: &Pool, queries: &[Query], mode: Mode) -> Vec<Outcome> {
    let all = |_: usize| true;
    for q in queries.iter().cycle().take(WARM_UP.min(queries.len() * 4)) {
        std::hint::black_box(index.search(&q.text, LIMIT, mode, &all));
    }
    queries
        .iter()
        .map(|q| {
            let started = Instant::now();
            let hits = index.search(&q.text, LIMIT, mode, &all);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let top: Vec<usize> = hits.iter().map(|h| h.doc).collect();
            let names: Vec<&str> = q
                .gold
                .iter()
                .filter_map(|&g| pool.bfcl_name[g].as_deref())
                .collect();
            let strict = top.iter().position(|d| q.gold.contains(d)).map(|p| p + 1);
            let by_name = top
                .iter()
                .position(|&d| {
                    pool.bfcl_name[d]
                        .as_deref()
                        .is_some_and(|n| names.contains(&n))
                })
                .map(|p| p + 1);
            Outcome {
                strict,
                by_name,
                top,
                ms,
            }
        })
        .collect()
}

#[derive(Default)]
struct Metrics {
    n: usize,
    r1: f64,
    r5: f64,
    r10: f64,
    mrr: f64,
    r5_name: f64,
}

impl Metrics {
    fn of<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Metrics {
        let mut m = Metrics::default();
        for o in outcomes {
            m.n += 1;
            let at = |k: usize| f64::from(u8::from(o.strict.is_some_and(|r| r <= k)));
            m.r1 += at(1);
            m.r5 += at(5);
            m.r10 += at(10);
            m.mrr += o.strict.map_or(0.0, |r| 1.0 / r as f64);
            m.r5_name += f64::from(u8::from(o.by_name.is_some_and(|r| r <= 5)));
        }
        if m.n > 0 {
            let n = m.n as f64;
            for x in [&mut m.r1, &mut m.r5, &mut m.r10, &mut m.mrr, &mut m.r5_name] {
                *x /= n;
            }
        }
        m
    }

    fn to_json(&self) -> Value {
        json!({"queries": self.n, "recall_at_1": self.r1, "recall_at_5": self.r5,
               "recall_at_10": self.r10, "mrr": self.mrr, "recall_at_5_by_name": self.r5_name})
    }
}

/// One row of a quality table: a split, or one category of it.
struct Row<'a> {
    split: &'a str,
    category: Option<&'a str>,
}

impl Row<'_> {
    fn label(&self) -> String {
        match self.category {
            None => format!("**{}** (all)", self.split),
            Some(c) => format!("{} / {c}", self.split),
        }
    }

    fn key(&self) -> String {
        match self.category {
            None => self.split.to_string(),
            Some(c) => format!("{} / {c}", self.split),
        }
    }

    fn admits(&self, q: &Query) -> bool {
        q.split == self.split && self.category.is_none_or(|c| q.category == c)
    }
}

/// The rows of a quality table: each split, then (when given) each category of each split.
fn rows<'a>(splits: &[&'a str], categories: &[(&'a str, &'a str)]) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    for &split in splits {
        rows.push(Row {
            split,
            category: None,
        });
        for &(_, category) in categories.iter().filter(|(s, _)| *s == split) {
            rows.push(Row {
                split,
                category: Some(category),
            });
        }
    }
    rows
}

fn quality_table(
    w: &mut String,
    queries: &[Query],
    runs: &BTreeMap<&str, Vec<Outcome>>,
    splits: &[&str],
    categories: &[(&str, &str)],
) {
    line(
        w,
        "| queries | n | mode | R@1 | R@5 | R@10 | MRR | R@5 name |",
    );
    line(w, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows(splits, categories) {
        let label = row.label();
        for mode in ["lexical", "dense", "hybrid"] {
            let Some(outcomes) = runs.get(mode) else {
                continue;
            };
            let m = Metrics::of(
                queries
                    .iter()
                    .zip(outcomes)
                    .filter(|(q, _)| row.admits(q))
                    .map(|(_, o)| o),
            );
            let bold = |x: f64| {
                if mode == "hybrid" {
                    format!("**{x:.3}**")
                } else {
                    format!("{x:.3}")
                }
            };
            line(
                w,
                &format!(
                    "| {label} | {} | {mode} | {:.3} | {} | {:.3} | {:.3} | {:.3} |",
                    m.n,
                    m.r1,
                    bold(m.r5),
                    m.r10,
                    m.mrr,
                    m.r5_name
                ),
            );
        }
    }
}

fn quality_json(
    queries: &[Query],
    runs: &BTreeMap<&str, Vec<Outcome>>,
    splits: &[&str],
    categories: &[(&str, &str)],
) -> Value {
    let mut out = serde_json::Map::new();
    for row in rows(splits, categories) {
        let label = row.key();
        let per_mode: serde_json::Map<String, Value> = runs
            .iter()
            .map(|(mode, outcomes)| {
                let m = Metrics::of(
                    queries
                        .iter()
                        .zip(outcomes)
                        .filter(|(q, _)| row.admits(q))
                        .map(|(_, o)| o),
                );
                (mode.to_string(), m.to_json())
            })
            .collect();
        out.insert(label, Value::Object(per_mode));
    }
    Value::Object(out)
}

struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn to_json(&self) -> Value {
        json!({"p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max, "mean": self.mean})
    }
}

fn latency(outcomes: &[Outcome]) -> Latency {
    let mut ms: Vec<f64> = outcomes.iter().map(|o| o.ms).collect();
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if ms.is_empty() {
            0.0
        } else {
            ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1]
        }
    };
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: ms.last().copied().unwrap_or(0.0),
        mean: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
    }
}

// ---- Small helpers.

/// Distinct items in first-seen order.
fn ordered<T: PartialEq + Copy>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn categories_of(categories: &[(&str, &str)], split: &str) -> String {
    categories
        .iter()
        .filter(|(s, _)| *s == split)
        .map(|(_, c)| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to `n` of `items`, evenly spaced.
fn spread(items: &[usize], n: usize) -> Vec<usize> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n]).collect()
}

/// `text` on one line, cut to `max` characters, safe in a Markdown table cell.
fn cell(text: &str, max: usize) -> String {
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn line(w: &mut String, s: &str) {
    w.push_str(s);
    w.push('\n');
}

/// A `kB` field of `/proc/self/status` (Linux), e.g. `VmHWM`.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}
