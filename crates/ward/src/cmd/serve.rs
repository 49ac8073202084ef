//! `ward serve`: the findings REST API (`/v1`) and the web console, from a finding database.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use ward_api::{ApiConfig, Server};
use ward_store::{FindingStore, NodeStore, SqliteStore};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The finding database: a SQLite file (created if missing), or a PostgreSQL URL
    /// (`postgres://user:password@host:port/db`; migrated on start; several `ward serve`
    /// processes may share it).
    #[arg(long, value_name = "PATH|URL", env = "WARD_DB")]
    pub db: Option<PathBuf>,
    /// Address to listen on. Anything but loopback needs API tokens (see docs/api.md).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Configuration file (TOML); its [api] table sets listen, tokens, TLS and limits.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve only the API, not the web console.
    #[arg(long)]
    pub no_console: bool,
    /// If the database is corrupt, move it aside (to PATH.corrupt-<UTC time>) and start with
    /// an empty one instead of refusing to start.
    #[arg(long)]
    pub recreate_corrupt_db: bool,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let ward_cfg = crate::config::WardConfig::load_or_default(args.config.as_deref())?;
    // Filters and /v1/categories know the categories of the configured rules.
    crate::cmd::rules::register_categories(&ward_cfg.detectors.rules, "ward serve");
    let mut cfg: ApiConfig = ward_cfg.api;
    cfg.add_env_tokens();
    // The enrollment secret may come from the environment (a Kubernetes Secret) when the
    // configuration names none.
    if cfg.enrollment_secret.is_none() && cfg.enrollment_secret_file.is_none() {
        cfg.enrollment_secret = std::env::var("WARD_ENROLLMENT_SECRET")
            .ok()
            .filter(|s| !s.trim().is_empty());
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if args.no_console {
        cfg.console = false;
    }
    let db = args.db.unwrap_or_else(crate::default_db);
    // Opened before the async runtime starts: the PostgreSQL client is blocking.
    // The finding store doubles as the node registry of the fleet endpoints (enrollment,
    // ingest, /v1/nodes).
    type Stores = (Arc<dyn FindingStore>, Arc<dyn NodeStore>, String);
    let (store, nodes, shown): Stores = match db.to_str().filter(|d| ward_store::is_postgres_url(d))
    {
        Some(url) => {
            if args.recreate_corrupt_db {
                anyhow::bail!("--recreate-corrupt-db applies to a SQLite file, not {url}");
            }
            let store = Arc::new(
                ward_store::PgStore::open(url).context("opening the PostgreSQL finding store")?,
            );
            let shown = store.url().to_string();
            (store.clone(), store, shown)
        }
        None => {
            let store = Arc::new(crate::cmd::db::open_store(&db, args.recreate_corrupt_db)?);
            (store.clone(), store, db.display().to_string())
        }
    };
    let server = Server::with_nodes(cfg, store, Some(nodes))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let bound = server.bind().await?;
        eprintln!(
            "ward: serving findings from {} on {}\nward: console: {}",
            shown,
            bound.local_addr(),
            bound.console_url()
        );
        bound.run(shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Serves the API and console from `db` on a background thread (used by `ward agent --serve`),
/// until `stop()` returns true. Returns the console URL once listening.
pub fn spawn_background(
    cfg: ApiConfig,
    db: &std::path::Path,
    stop: fn() -> bool,
) -> Result<(String, std::thread::JoinHandle<()>)> {
    // A connection of its own: the agent writes through another one (SQLite WAL). The agent
    // has checked the file when it opened it.
    let store = SqliteStore::open_again(db)?;
    let server = Server::new(cfg, Arc::new(store))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (tx, rx) = std::sync::mpsc::channel::<Result<String>>();
    let handle = std::thread::Builder::new()
        .name("ward-api".into())
        .spawn(move || {
            rt.block_on(async move {
                let bound = match server.bind().await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = tx.send(Ok(bound.console_url()));
                let stopped = async move {
                    while !stop() {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                };
                if let Err(e) = bound.run(stopped).await {
                    tracing::error!("findings API stopped: {e}");
                }
            })
        })
        .context("starting the API thread")?;
    let url = rx
        .recv()
        .context("the API thread ended before listening")??;
    Ok((url, handle))
}
