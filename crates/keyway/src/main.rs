//! `keyway`: the gateway binary — the server, its local maintenance commands, and a CLI for a
//! running server's management API.

mod cli;
mod config_docs;
mod demo;
mod fakes;
mod local;

use clap::{CommandFactory, Parser, Subcommand};
use cli::{Client, Remote};
use keyway_gateway::{AppState, Config};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "keyway",
    version,
    about = "Keyway: a self-hosted AI gateway for your own provider keys (BYOK)",
    after_help = "Start with `keyway demo`, or `keyway serve` and the README's walkthrough.\n\
                  API commands talk to KEYWAY_URL (default http://127.0.0.1:8080) with KEYWAY_MANAGEMENT_KEY."
)]
struct Cli {
    /// Configuration file (default: ./keyway.toml when present).
    #[arg(long, short, global = true, env = "KEYWAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Address to listen on (overrides `listen`, KEYWAY_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory for the SQLite file and master key (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run Keyway against fake providers on loopback and show routing and fallback at work.
    Demo {
        /// Print the results and exit instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Address for the demo gateway (default: a free loopback port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage provider credentials (BYOK) on a running server.
    #[command(subcommand)]
    Byok(cli::byok::ByokCommand),
    /// Manage Keyway API keys on a running server.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Show credits and spend, or one generation with its attempts.
    Usage(cli::usage::UsageArgs),
    /// Show the route plan a request would get, and every key or provider left out and why
    /// (calls no upstream; asks as the inference key `--key` / KEYWAY_API_KEY).
    Route(cli::route::RouteArgs),
    /// Show the audit log: who changed what, when, from where (newest first).
    Audit(cli::audit::AuditArgs),
    /// Export BYOK credential metadata as JSON (never secrets).
    Export(cli::transfer::ExportArgs),
    /// Import BYOK credentials from an export whose secrets are given as env:/file: references.
    Import(cli::transfer::ImportArgs),
    /// The model catalog (prices, providers per model): install a newer one without a new binary.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Create or upgrade the database schema, then exit (local: opens the store directly).
    Migrate {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Rotate the keyring: a new key, every stored secret's data key re-wrapped under it (local;
    /// safe while a server runs, resumable). The server offers the same: POST /api/v1/keyring/rotate.
    RotateMasterKey {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Move a whole store between databases (local, offline): `store export` writes every table
    /// of the configured store to a file, `store import` writes such a file into an empty store
    /// (SQLite to PostgreSQL or back). See docs/deploy.md.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Admin keys made on the machine that holds the data (recovers an instance with none).
    #[command(subcommand)]
    AdminKey(AdminKeyCommand),
    /// Print a shell completion script: `keyway completions bash > /etc/bash_completion.d/keyway`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Start every fake provider on loopback and print their URLs as one JSON line (test harnesses).
    #[command(hide = true)]
    Fakes,
    /// Print docs/config.md as generated from the configuration struct.
    #[command(hide = true)]
    ConfigDocs,
}

#[derive(Debug, clap::Subcommand)]
enum AdminKeyCommand {
    /// Create an admin management key in the default workspace and print it once.
    Create {
        #[arg(long, default_value = "recovery admin")]
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Write the configured store (SQLite in the data dir, or `database_url`) to a new file:
    /// every row as stored, secrets still sealed. Protect the file like a database backup.
    Export {
        /// The dump to create (refused if it exists).
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write a dump into the configured store, which must be empty (freshly created or only
    /// migrated), in one transaction. Needs the source's master key (KEYWAY_MASTER_KEY or
    /// data_dir/master.key): every secret is checked to open with it before anything is committed.
    Import {
        /// The dump `keyway store export` wrote.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Check a catalog JSON file (as `scripts/catalog/generate.py` writes it) and install it as
    /// `data_dir/catalog.json`, which `keyway serve` loads at its next start instead of the
    /// built-in one (`[[pricing]]` still applies on top).
    Update {
        /// The catalog file.
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

const LOG_DEFAULT: &str = "info,sqlx=warn";

fn init_tracing(format: &str) {
    init_tracing_with(LOG_DEFAULT, format, None);
}

/// `KEYWAY_LOG` (or `RUST_LOG`) wins over `default`; `json` gives one JSON object per line.
/// With `telemetry`, spans also go to its OTLP exporter.
pub(crate) fn init_tracing_with(default: &str, format: &str, telemetry: Option<&keyway_gateway::telemetry::Telemetry>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWAY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: escape codes in a log file or a collector break grep and parsers.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    if format == "json" {
        let registry = registry.with(fmt.json().flatten_event(true));
        registry.with(telemetry.map(|t| t.layer())).init();
    } else {
        let registry = registry.with(fmt);
        registry.with(telemetry.map(|t| t.layer())).init();
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's statistics for `keyway_allocator_bytes` (bench/README.md reads them to say where
/// the gateway's memory goes): `allocated` is what the program holds, `resident` what the
/// allocator keeps in RAM, `retained` what it keeps mapped but gave back to the OS.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
fn allocator_bytes() -> Vec<(&'static str, u64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return Vec::new();
    }
    let read = [
        ("allocated", stats::allocated::read()),
        ("active", stats::active::read()),
        ("resident", stats::resident::read()),
        ("mapped", stats::mapped::read()),
        ("retained", stats::retained::read()),
        ("metadata", stats::metadata::read()),
    ];
    read.into_iter().filter_map(|(k, v)| v.ok().map(|v| (k, v as u64))).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    keyway_gateway::metrics::set_memory_reader(allocator_bytes);
    let cli = Cli::parse();
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Serve { listen, data_dir } => {
            let mut config = load()?;
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            let telemetry = keyway_gateway::telemetry::Telemetry::start(&config.telemetry)?;
            init_tracing_with(LOG_DEFAULT, &config.log_format, telemetry.as_ref());
            if let Some(t) = &telemetry {
                tracing::info!(endpoint = t.endpoint(), "exporting traces over OTLP/HTTP");
            }
            let listen = config.listen;
            let (state, boot) = AppState::build(config).await?;
            if let Some(key) = &boot.management_key {
                eprintln!("\nFirst start: created the default workspace and a management key.");
                eprintln!("Management key (shown once, store it now): {}", key.as_str());
                eprintln!("Sign in to the dashboard with it at http://{listen}/\n");
            }
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(addr = %listener.local_addr()?, dashboard = %format!("http://{}/", listener.local_addr()?), "keyway listening");
            let grace = std::time::Duration::from_secs(state.config.shutdown_grace_secs);
            let served = keyway_gateway::serve_with_grace(listener, state.clone(), shutdown_signal(), Some(grace)).await;
            // What this node took in advance from the counters shared with other nodes goes back.
            if let Some(shared) = state.cluster.shared() {
                shared.hand_back_all().await;
            }
            // Every answered request's record is queued by now: write them all before exiting.
            let flushed = state.usage.close(std::time::Duration::from_secs(30)).await;
            tracing::info!(recorded = state.usage.recorded(), dropped = state.usage.dropped(), flushed, "usage writer stopped");
            // Flush the spans still queued before the process exits.
            if let Some(t) = telemetry {
                t.shutdown().await;
            }
            served?;
        }
        Command::Demo { once, listen } => demo::run(once, listen).await?,
        Command::Byok(cmd) => cli::byok::run(&Client::new(&cli.remote)?, cmd).await?,
        Command::Keys(cmd) => cli::keys::run(&Client::new(&cli.remote)?, cmd).await?,
        Command::Usage(args) => cli::usage::run(&Client::new(&cli.remote)?, args).await?,
        Command::Route(args) => cli::route::run(&cli.remote, args).await?,
        Command::Audit(args) => cli::audit::run(&Client::new(&cli.remote)?, args).await?,
        Command::Export(args) => cli::transfer::export(&Client::new(&cli.remote)?, args).await?,
        Command::Import(args) => cli::transfer::import(&Client::new(&cli.remote)?, args).await?,
        Command::Catalog(CatalogCommand::Update { file, data_dir }) => {
            let mut config = load()?;
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            local::install_catalog(&config, &file)?;
        }
        Command::Migrate { data_dir } => {
            let mut config = load()?;
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            init_tracing(&config.log_format);
            local::migrate(config).await?;
        }
        Command::RotateMasterKey { data_dir } => {
            let mut config = load()?;
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            init_tracing(&config.log_format);
            local::rotate_master_key(config).await?;
        }
        Command::Store(cmd) => {
            let mut config = load()?;
            let (file, data_dir, export) = match cmd {
                StoreCommand::Export { file, data_dir } => (file, data_dir, true),
                StoreCommand::Import { file, data_dir } => (file, data_dir, false),
            };
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            init_tracing(&config.log_format);
            if export {
                local::store_export(config, &file).await?;
            } else {
                local::store_import(config, &file).await?;
            }
        }
        Command::AdminKey(AdminKeyCommand::Create { name, data_dir }) => {
            let mut config = load()?;
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            init_tracing(&config.log_format);
            local::create_admin_key(config, &name).await?;
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "keyway", &mut std::io::stdout());
        }
        Command::Fakes => fakes::run().await?,
        Command::ConfigDocs => print!("{}", config_docs::render()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The allocator runs as `.cargo/config.toml` configures it (the memory figures in
    /// bench/README.md depend on it) and reports what `keyway_allocator_bytes` exports.
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    #[test]
    fn jemalloc_purges_in_the_background_with_two_arenas() {
        assert_eq!(tikv_jemalloc_ctl::background_thread::read().ok(), Some(true));
        assert_eq!(tikv_jemalloc_ctl::opt::narenas::read().ok(), Some(2));
        assert_eq!(tikv_jemalloc_ctl::opt::background_thread::read().ok(), Some(true));
        let figures = allocator_bytes();
        let get = |k: &str| figures.iter().find(|(n, _)| *n == k).map(|(_, v)| *v).unwrap_or(0);
        assert!(get("allocated") > 0 && get("resident") >= get("allocated"), "{figures:?}");
    }
}
