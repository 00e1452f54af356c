//! `strongroom`: the server binary and its command line.
//!
//! Wires the layers together — storage backend, core (with the barrier inside), HTTP edge,
//! listeners — from a config file or `--dev`, and runs until SIGTERM/SIGINT, then drains
//! in-flight requests and flushes storage.

/// mimalloc instead of glibc malloc: with glibc, a buffer allocated on one tokio worker
/// and freed on the other takes the first worker's arena lock, and under load those locks
/// put futex waits on every request. Transparent huge pages would back mimalloc's reserved
/// arenas 2 MiB at a time (~7 MiB more idle RSS): it is built with `no_thp` so it never
/// asks for them, and `NO_THP` turns them off for the process where the host gives them
/// unasked (THP `always`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Opts the process out of transparent huge pages before its first allocation: a
/// constructor with an init priority runs before the runtime's (and mimalloc's) first
/// allocation, which a call at the top of `main` would come after. Best effort: a kernel
/// without the flag leaves THP as it is.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array.00101"]
static NO_THP: extern "C" fn() = {
    extern "C" fn no_thp() {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    no_thp
};

mod dev;
mod operator;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::{Parser, Subcommand};
use strongroom_barrier::seal::{load_key, StaticSeal};
use strongroom_core::api::InProcess;
use strongroom_core::{Core, CoreConfig, Seal};
use strongroom_manager::{CiConfig, Limits, Manager};
use strongroom_storage::{MemoryStorage, SqliteOptions, SqliteStorage, Storage};
use tokio::net::TcpListener;
use tokio::sync::watch;

use strongroom::config::{ListenerConfig, LogFormat, SealConfigFile, ServerConfig, StorageConfig};

#[derive(Parser)]
#[command(
    name = "strongroom",
    version,
    about = "Secrets manager for CI/CD pipelines, speaking the OpenBao API"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Server(ServerArgs),
    /// Print the version.
    Version,
    /// Development helpers.
    #[command(subcommand)]
    Dev(DevCmd),
    /// Operations on a server's storage: migrate between backends, snapshots.
    #[command(subcommand)]
    Operator(operator::OperatorCmd),
}

#[derive(Subcommand)]
enum DevCmd {
    /// Print a GitLab-shaped CI ID token signed by the local dev issuer key.
    CiToken(Box<dev::CiTokenArgs>),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Development mode: initialized, unsealed, kv-v2 at secret/, plain HTTP on loopback.
    #[arg(long)]
    dev: bool,
    /// Config file: Strongroom TOML, or an OpenBao HCL/JSON server config.
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Dev mode: use this root token instead of a random one.
    #[arg(long, requires = "dev")]
    dev_root_token_id: Option<String>,
    /// Dev mode: address to listen on.
    #[arg(long, requires = "dev", default_value = "127.0.0.1:8200")]
    dev_listen_address: String,
    /// Dev mode: keep data in this directory (default: a fresh temporary directory).
    #[arg(long, requires = "dev")]
    dev_data_dir: Option<PathBuf>,
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.with_ansi(false).init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Version => {
            println!("Strongroom v{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Cmd::Operator(cmd) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            if let Err(e) = rt.block_on(operator::run(cmd)) {
                eprintln!("Error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Dev(DevCmd::CiToken(a)) => {
            println!("{}", dev::ci_token(&a)?);
            Ok(())
        }
        Cmd::Server(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let r = rt.block_on(server(args));
            if let Err(e) = &r {
                eprintln!("Error: {e:#}");
                std::process::exit(1);
            }
            r
        }
    }
}

pub(crate) async fn open_storage(cfg: &StorageConfig) -> Result<Arc<dyn Storage>> {
    Ok(match cfg {
        StorageConfig::Memory => Arc::new(MemoryStorage::new()),
        StorageConfig::Sqlite { path } => Arc::new(
            SqliteStorage::open(path, SqliteOptions::default())
                .with_context(|| format!("opening SQLite storage at {}", path.display()))?,
        ),
        StorageConfig::Postgres {
            url,
            schema,
            pool,
            statement_timeout,
        } => {
            let mut o = strongroom_storage::PostgresOptions::new(url.clone(), schema.clone());
            o.pool = *pool;
            o.statement_timeout = *statement_timeout;
            strongroom_storage::PostgresStorage::open(o)
                .await
                .with_context(|| format!("opening PostgreSQL storage (schema {schema})"))?
        }
    })
}

fn build_seal(cfg: &SealConfigFile) -> Result<Seal> {
    Ok(match cfg {
        SealConfigFile::Shamir => Seal::Shamir,
        SealConfigFile::Static {
            current_key_id,
            current_key,
            previous_key_id,
            previous_key,
        } => {
            let current =
                load_key(current_key).map_err(|e| anyhow!("config key `seal.current_key`: {e}"))?;
            let previous = match (previous_key_id, previous_key) {
                (Some(id), Some(k)) => Some((
                    id.clone(),
                    load_key(k).map_err(|e| anyhow!("config key `seal.previous_key`: {e}"))?,
                )),
                _ => None,
            };
            Seal::Static(StaticSeal {
                current_key_id: current_key_id.clone(),
                current,
                previous,
            })
        }
    })
}

struct DevState {
    data_dir: PathBuf,
    remove_on_exit: bool,
}

async fn server(args: ServerArgs) -> Result<()> {
    let (cfg, dev) = if args.dev {
        let (dir, remove) = match &args.dev_data_dir {
            Some(d) => (d.clone(), false),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "strongroom-dev-{}-{}",
                    std::process::id(),
                    &strongroom_core::util::random_alnum(8)
                ));
                (d, true)
            }
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating dev data directory {}", dir.display()))?;
        let cfg = ServerConfig {
            storage: StorageConfig::Sqlite {
                path: dir.join("strongroom.db"),
            },
            listeners: vec![ListenerConfig {
                address: args.dev_listen_address.clone(),
                tls: None,
            }],
            log_level: "info".into(),
            ..Default::default()
        };
        (
            cfg,
            Some(DevState {
                data_dir: dir,
                remove_on_exit: remove,
            }),
        )
    } else {
        let path = args
            .config
            .as_ref()
            .expect("clap requires --config without --dev");
        (strongroom::config::load(path)?, None)
    };
    init_logging(cfg.log_format, &cfg.log_level);
    for n in &cfg.notes {
        tracing::warn!("config: {n}");
    }

    let storage = open_storage(&cfg.storage).await?;
    let seal = build_seal(&cfg.seal)?;
    // Bind first, so the printed address is the real one (port 0 picks a free port).
    let mut bound = Vec::new();
    for l in &cfg.listeners {
        let tcp = TcpListener::bind(&l.address)
            .await
            .with_context(|| format!("listening on {}", l.address))?;
        let addr = tcp.local_addr()?;
        bound.push((tcp, addr, l.tls.clone()));
    }
    let scheme = |tls: &Option<(PathBuf, PathBuf)>| if tls.is_some() { "https" } else { "http" };
    let api_addr = cfg
        .api_addr
        .clone()
        .unwrap_or_else(|| format!("{}://{}", scheme(&bound[0].2), bound[0].1));

    let core_cfg = CoreConfig {
        default_lease_ttl: cfg.default_lease_ttl,
        max_lease_ttl: cfg.max_lease_ttl,
        cluster_name: cfg
            .cluster_name
            .clone()
            .unwrap_or_else(|| CoreConfig::default().cluster_name),
        dev_mount_secret: dev.is_some(),
        api_addr: Some(api_addr.clone()),
        allow_loopback_http: dev.is_some() || cfg.allow_loopback_http,
    };
    let core = Core::new(storage.clone(), core_cfg, seal);

    if let Some(d) = &dev {
        dev_bootstrap(&core, d, args.dev_root_token_id.clone(), &api_addr, &cfg).await?;
    } else {
        if matches!(cfg.seal, SealConfigFile::Static { .. }) {
            if core.is_initialized().await? {
                core.auto_unseal()
                    .await
                    .context("auto-unsealing with the static seal key")?;
                tracing::info!("unsealed with the static seal key");
            } else {
                tokio::spawn(auto_unseal_once_initialized(core.clone()));
            }
        }
        println!("==> Strongroom server started\n\n             Api Address: {api_addr}\n                 Storage: {}\n                 Version: {}\n", describe_storage(&cfg.storage), env!("CARGO_PKG_VERSION"));
        if !core.is_initialized().await? {
            println!("The server is not initialized: run `bao operator init` against it.");
        } else if core.is_sealed() {
            println!("The server is sealed: unseal it with `bao operator unseal`.");
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut app = strongroom_http::App::new(core.clone(), cfg.limits.clone());
    let dev_issuer = match &dev {
        Some(_) => Some(dev::load_or_create_issuer(&dev::issuer_key_path())?),
        None => None,
    };
    let ci = match (&dev_issuer, &cfg.ci) {
        // Dev mode trusts the dev issuer of `strongroom dev ci-token`.
        (Some(issuer), _) => CiConfig {
            issuer: dev::DEFAULT_ISSUER.into(),
            public_keys: vec![issuer.public_pem()],
            audiences: vec![api_addr.clone(), dev::DEFAULT_AUD.into()],
            ..Default::default()
        },
        (None, Some(c)) => {
            let keys_given = c.jwks_url.is_some() || !c.jwt_validation_pubkeys.is_empty();
            CiConfig {
                issuer: c.issuer.clone(),
                jwks_url: c.jwks_url.clone().unwrap_or_default(),
                // Default: OIDC discovery from the issuer itself.
                oidc_discovery_url: c
                    .oidc_discovery_url
                    .clone()
                    .or_else(|| (!keys_given).then(|| c.issuer.clone()))
                    .unwrap_or_default(),
                public_keys: c.jwt_validation_pubkeys.clone(),
                audiences: vec![c.audience.clone().unwrap_or_else(|| api_addr.clone())],
            }
        }
        // No `[ci]`: people's API works, no job is recognized.
        (None, None) => CiConfig::default(),
    };
    let secret_limits = Limits {
        secrets_per_project: cfg.secrets_per_project,
        secrets_per_group: cfg.secrets_per_group,
    };
    let manager = Manager::new(InProcess::system(core.clone()), ci, secret_limits);
    app = app.with_manager(Arc::new(manager));
    if let Some(issuer) = &dev_issuer {
        let discovery = serde_json::json!({
            "issuer": api_addr,
            "jwks_uri": format!("{api_addr}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        });
        app = app
            .with_document("/.well-known/jwks.json", issuer.jwks().to_string())
            .with_document("/.well-known/openid-configuration", discovery.to_string());
    }
    let mut tasks = Vec::new();
    for (tcp, addr, tls) in bound {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tasks.push(match tls {
            None => {
                tracing::info!(%addr, "listening (plain HTTP)");
                tokio::spawn(strongroom_http::serve(tcp, app, shutdown))
            }
            Some((cert, key)) => {
                let tls_cfg = strongroom_http::load_tls_config(&cert, &key)
                    .map_err(|e| anyhow!("listener {addr}: {e}"))?;
                let l = strongroom_http::TlsListener::new(tcp, tls_cfg);
                tracing::info!(%addr, "listening (TLS)");
                tokio::spawn(strongroom_http::serve(l, app, shutdown))
            }
        });
    }

    // Background work runs on exactly one node: the holder of the `background` lease
    // (always this one on single-node storage). Other nodes' writes invalidate our caches.
    core.watch_invalidations();
    let ticker_core = core.clone();
    let mut ticker_stop = stop_rx.clone();
    let ticker = tokio::spawn(async move {
        let mut iv = tokio::time::interval(Duration::from_secs(2));
        let mut last_tick = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = iv.tick() => {
                    let was = ticker_core.is_leader();
                    let leader = ticker_core.elect(Duration::from_secs(10)).await;
                    if leader != was {
                        tracing::info!(leader, "background lease {}", if leader { "acquired" } else { "lost" });
                    }
                    if leader && last_tick.elapsed() >= Duration::from_secs(30) {
                        last_tick = std::time::Instant::now();
                        if let Err(e) = ticker_core.tick().await {
                            tracing::warn!(error = %e, "background maintenance failed");
                        }
                    }
                }
                _ = async { let _ = ticker_stop.wait_for(|s| *s).await; } => break,
            }
        }
    });

    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "listener task failed"),
            Err(_) => tracing::warn!("listener did not drain within 30s"),
        }
    }
    let _ = ticker.await;
    core.seal().await;
    storage.close().await;
    if let Some(d) = dev {
        if d.remove_on_exit {
            let _ = std::fs::remove_dir_all(&d.data_dir);
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// A node with a static seal started before its cluster was initialized unseals itself as
/// soon as another node (or this one) initializes the storage it shares, as OpenBao keeps
/// retrying auto-unseal: it checks every [`AUTO_UNSEAL_RETRY`], so a rollout that starts
/// every node at once needs no restart after `bao operator init`. The task ends at the
/// first unseal; a node an operator seals afterwards stays sealed. A failure (a storage
/// outage, a key that does not open the barrier) is logged and tried again.
async fn auto_unseal_once_initialized(core: Arc<Core>) {
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(AUTO_UNSEAL_RETRY).await;
        if !core.is_sealed() {
            return;
        }
        match core.is_initialized().await {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::debug!(error = %e, "auto-unseal: checking initialization");
                continue;
            }
        }
        match core.auto_unseal().await {
            Ok(()) => {
                tracing::info!("the cluster was initialized: unsealed with the static seal key");
                return;
            }
            Err(e) => {
                failures += 1;
                // every failure at first, then one in sixty (about a minute apart)
                if failures <= 3 || failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, failures, "auto-unseal failed; retrying");
                }
            }
        }
    }
}

const AUTO_UNSEAL_RETRY: Duration = Duration::from_secs(1);

fn describe_storage(s: &StorageConfig) -> String {
    match s {
        StorageConfig::Memory => "inmem".into(),
        StorageConfig::Sqlite { path } => format!("sqlite ({})", path.display()),
        StorageConfig::Postgres { schema, .. } => format!("postgresql (schema {schema})"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

const DEV_KEY_FILE: &str = "dev-unseal-key";

async fn dev_bootstrap(
    core: &Arc<Core>,
    d: &DevState,
    root_id: Option<String>,
    api_addr: &str,
    cfg: &ServerConfig,
) -> Result<()> {
    let key_path = d.data_dir.join(DEV_KEY_FILE);
    let (unseal_b64, root_line) = if core.is_initialized().await? {
        let hex_key = std::fs::read_to_string(&key_path).with_context(|| {
            format!(
                "{} is initialized but {} is missing; cannot unseal the dev server",
                d.data_dir.display(),
                key_path.display()
            )
        })?;
        let key = zeroize::Zeroizing::new(
            hex::decode(hex_key.trim()).context("dev unseal key file is corrupt")?,
        );
        if !core.submit_unseal_share(key.clone()).await? {
            bail!("dev unseal key did not unseal the server");
        }
        (
            base64::engine::general_purpose::STANDARD.encode(&key[..]),
            "(unchanged from the first start of this data directory)".to_owned(),
        )
    } else {
        let (keys, root) = core.initialize(1, 1, root_id).await?;
        let key = keys
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("initialization produced no key"))?;
        write_private(&key_path, hex::encode(&key[..]).as_bytes())?;
        core.submit_unseal_share(key.clone()).await?;
        dev_jwt_mount(core, &root).await?;
        (
            base64::engine::general_purpose::STANDARD.encode(&key[..]),
            root.to_string(),
        )
    };
    println!(
        "==> Strongroom server configuration:\n\n             Api Address: {api_addr}\n                 Storage: {}\n                 Version: {}\n\n\
WARNING! dev mode is enabled! In this mode, Strongroom runs unsealed on a throwaway\n\
store, serves plain HTTP, and keeps its unseal key in the data directory.\n\
Never use dev mode in production.\n\n\
You may need to set the following environment variables:\n\n    $ export VAULT_ADDR='{api_addr}'\n    $ export BAO_ADDR='{api_addr}'\n\n\
The unseal key and root token are displayed below in case you want to\nseal/unseal the server or re-authenticate.\n\n\
Unseal Key: {unseal_b64}\nRoot Token: {root_line}\n\n\
Development mode should NOT be used in production installations!\n\n==> Strongroom server started! Log data will stream in below:\n",
        describe_storage(&cfg.storage),
        env!("CARGO_PKG_VERSION"),
    );
    Ok(())
}

/// Dev mode: trust the dev issuer on `auth/jwt` with a role `ci` any project may use.
async fn dev_jwt_mount(core: &Arc<Core>, root: &str) -> Result<()> {
    use serde_json::json;
    use strongroom_core::{Operation, Request};
    let issuer = dev::load_or_create_issuer(&dev::issuer_key_path())?;
    let calls = [
        (
            "sys/auth/jwt",
            json!({"type": "jwt", "description": "dev CI ID tokens (strongroom dev ci-token)"}),
        ),
        (
            "auth/jwt/config",
            json!({"jwt_validation_pubkeys": [issuer.public_pem()], "bound_issuer": dev::DEFAULT_ISSUER}),
        ),
        (
            "auth/jwt/role/ci",
            json!({
                "role_type": "jwt", "user_claim": "project_path", "bound_audiences": [dev::DEFAULT_AUD],
                "bound_claims_type": "glob", "bound_claims": {"project_path": "*"},
                "claim_mappings": {"project_path": "project_path", "ref": "ref", "environment": "environment", "ref_protected": "ref_protected"},
                "token_policies": ["default"], "token_type": "batch", "token_ttl": "1h",
            }),
        ),
    ];
    for (path, body) in calls {
        let mut req = Request::new(Operation::Update, path)
            .with_token(root)
            .with_data(body);
        req.is_write = true;
        core.handle(req)
            .await
            .map_err(|e| anyhow!("setting up {path}: {e}"))?;
    }
    Ok(())
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
