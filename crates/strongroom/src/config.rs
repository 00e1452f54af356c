//! Server configuration: our TOML format, and OpenBao's HCL/JSON format mapped onto it.
//!
//! Every error names the key and the problem. Keys of an OpenBao config that we cannot
//! honour are listed in [`ServerConfig::notes`] and printed at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, PartialEq)]
pub enum StorageConfig {
    Sqlite {
        path: PathBuf,
    },
    Memory,
    /// `url` is secret (it may hold a password): never printed.
    Postgres {
        url: String,
        schema: String,
        pool: usize,
        statement_timeout: Duration,
    },
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Sqlite { path } => write!(f, "Sqlite({})", path.display()),
            StorageConfig::Memory => write!(f, "Memory"),
            StorageConfig::Postgres { schema, pool, .. } => {
                write!(f, "Postgres(schema={schema}, pool={pool})")
            }
        }
    }
}

/// Where a PostgreSQL URL comes from: in the config, an environment variable, or a file.
fn resolve_url(
    key: &str,
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
) -> Result<String> {
    match (url, url_env, url_file) {
        (Some(u), None, None) => Ok(u),
        (None, Some(var), None) => std::env::var(&var).map_err(|_| {
            anyhow!("config key `{key}.url_env`: environment variable {var:?} is not set")
        }),
        (None, None, Some(path)) => Ok(std::fs::read_to_string(&path)
            .map_err(|e| {
                anyhow!(
                    "config key `{key}.url_file`: reading {}: {e}",
                    path.display()
                )
            })?
            .trim()
            .to_owned()),
        (None, None, None) => bail!("config key `{key}`: set url, url_env or url_file"),
        _ => bail!("config key `{key}`: set only one of url, url_env and url_file"),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    pub address: String,
    /// `(cert, key)`; `None` = plain HTTP (only when explicitly allowed).
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SealConfigFile {
    Shamir,
    Static {
        current_key_id: String,
        current_key: String,
        previous_key_id: Option<String>,
        previous_key: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub storage: StorageConfig,
    pub listeners: Vec<ListenerConfig>,
    pub seal: SealConfigFile,
    /// `[limits]`: what the HTTP edge accepts (body, head, time, connections).
    pub limits: strongroom_http::HttpLimits,
    pub log_format: LogFormat,
    pub log_level: String,
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub api_addr: Option<String>,
    pub cluster_name: Option<String>,
    /// Let JWT auth fetch keys over plain HTTP from loopback addresses.
    pub allow_loopback_http: bool,
    /// The instance's CI issuer (`[ci]`): whose ID tokens name pipeline jobs.
    pub ci: Option<CiFileConfig>,
    /// `[secrets_manager]`: secrets per project and per group (0 = unlimited).
    pub secrets_per_project: usize,
    pub secrets_per_group: usize,
    /// Things said about the config (ignored keys, mappings) to print at start.
    pub notes: Vec<String>,
}

/// `[ci]`: the issuer, where its keys come from (default: OIDC discovery from the issuer),
/// and the audience jobs' tokens carry (default: `api_addr`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiFileConfig {
    pub issuer: String,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub oidc_discovery_url: Option<String>,
    /// PEM public keys, instead of JWKS or discovery.
    #[serde(default)]
    pub jwt_validation_pubkeys: Vec<String>,
    #[serde(default)]
    pub audience: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            storage: StorageConfig::Memory,
            listeners: Vec::new(),
            seal: SealConfigFile::Shamir,
            limits: strongroom_http::HttpLimits::default(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            api_addr: None,
            cluster_name: None,
            allow_loopback_http: false,
            ci: None,
            secrets_per_project: 100,
            secrets_per_group: 500,
            notes: Vec::new(),
        }
    }
}

// ---- our TOML format ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlConfig {
    storage: TomlStorage,
    #[serde(default)]
    listener: Vec<TomlListener>,
    #[serde(default)]
    seal: Option<TomlSeal>,
    #[serde(default)]
    limits: Option<TomlLimits>,
    #[serde(default)]
    log: Option<TomlLog>,
    default_lease_ttl: Option<String>,
    max_lease_ttl: Option<String>,
    api_addr: Option<String>,
    cluster_name: Option<String>,
    #[serde(default)]
    jwt_allow_loopback_http: bool,
    #[serde(default)]
    ci: Option<CiFileConfig>,
    #[serde(default)]
    secrets_manager: Option<TomlSecretsManager>,
}

/// `[secrets_manager]`: GitLab's limits by default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSecretsManager {
    secrets_per_project: Option<usize>,
    secrets_per_group: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlStorage {
    sqlite: Option<TomlSqlite>,
    memory: Option<toml::Table>,
    postgres: Option<TomlPostgres>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlPostgres {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    #[serde(default = "default_schema")]
    schema: String,
    #[serde(default = "default_pool")]
    pool: usize,
    statement_timeout: Option<String>,
}

fn default_schema() -> String {
    "strongroom".into()
}

fn default_pool() -> usize {
    8
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSqlite {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlListener {
    address: String,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    tls_disable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlSeal {
    #[serde(rename = "type")]
    kind: String,
    current_key_id: Option<String>,
    current_key: Option<String>,
    previous_key_id: Option<String>,
    previous_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlLimits {
    max_request_size: Option<usize>,
    request_timeout: Option<String>,
    max_header_size: Option<usize>,
    read_header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlLog {
    format: Option<String>,
    level: Option<String>,
}

fn duration_key(key: &str, v: &str) -> Result<i64> {
    strongroom_core::util::parse_duration_str(v).map_err(|e| anyhow!("config key `{key}`: {e}"))
}

fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn parse_toml(text: &str, base: &Path) -> Result<ServerConfig> {
    let t: TomlConfig = toml::from_str(text).map_err(|e| anyhow!("invalid config: {e}"))?;
    let storage = match (t.storage.sqlite, t.storage.memory, t.storage.postgres) {
        (Some(s), None, None) => StorageConfig::Sqlite { path: resolve_path(base, &s.path) },
        (None, Some(_), None) => StorageConfig::Memory,
        (None, None, Some(p)) => {
            let url = resolve_url("storage.postgres", p.url, p.url_env, p.url_file.map(|f| resolve_path(base, &f)))?;
            let statement_timeout = match p.statement_timeout {
                Some(t) => Duration::from_secs(duration_key("storage.postgres.statement_timeout", &t)?.max(1) as u64),
                None => Duration::from_secs(5),
            };
            if p.pool == 0 {
                bail!("config key `storage.postgres.pool`: must be at least 1");
            }
            StorageConfig::Postgres { url, schema: p.schema, pool: p.pool, statement_timeout }
        }
        (None, None, None) => bail!("config key `storage`: name one backend, e.g. storage.sqlite.path = \"/var/lib/strongroom/data.db\""),
        _ => bail!("config key `storage`: name exactly one backend"),
    };
    if let Some(ci) = &t.ci {
        if ci.issuer.is_empty() {
            bail!("config key `ci.issuer`: the CI issuer's URL is required (e.g. https://gitlab.example.com)");
        }
    }
    let mut c = ServerConfig {
        storage,
        ci: t.ci,
        ..Default::default()
    };
    if let Some(sm) = t.secrets_manager {
        c.secrets_per_project = sm.secrets_per_project.unwrap_or(c.secrets_per_project);
        c.secrets_per_group = sm.secrets_per_group.unwrap_or(c.secrets_per_group);
    }
    if t.listener.is_empty() {
        bail!("config key `listener`: at least one [[listener]] is required");
    }
    for (i, l) in t.listener.into_iter().enumerate() {
        let tls = match (l.tls_cert_file, l.tls_key_file, l.tls_disable) {
            (Some(cert), Some(key), false) => Some((resolve_path(base, &cert), resolve_path(base, &key))),
            (_, _, true) => None,
            (None, None, false) => bail!(
                "config key `listener[{i}]`: set tls_cert_file and tls_key_file, or tls_disable = true to serve plain HTTP"
            ),
            _ => bail!("config key `listener[{i}]`: tls_cert_file and tls_key_file must both be set"),
        };
        c.listeners.push(ListenerConfig {
            address: l.address,
            tls,
        });
    }
    if let Some(s) = t.seal {
        c.seal = seal_from(
            &s.kind,
            s.current_key_id,
            s.current_key,
            s.previous_key_id,
            s.previous_key,
            "seal",
        )?;
    }
    if let Some(l) = t.limits {
        let positive = |key: &str, v: usize| -> Result<usize> {
            if v == 0 {
                bail!("config key `limits.{key}`: must be greater than 0");
            }
            Ok(v)
        };
        let seconds = |key: &str, v: &str| -> Result<Duration> {
            Ok(Duration::from_secs(
                duration_key(&format!("limits.{key}"), v)?.max(1) as u64,
            ))
        };
        let limits = &mut c.limits;
        if let Some(m) = l.max_request_size {
            limits.max_request_size = positive("max_request_size", m)?;
        }
        if let Some(rt) = l.request_timeout {
            limits.request_timeout = seconds("request_timeout", &rt)?;
        }
        if let Some(m) = l.max_header_size {
            // hyper's read buffer is at least 8 KiB; smaller heads are refused by size
            limits.max_header_size = positive("max_header_size", m)?;
        }
        if let Some(t) = l.read_header_timeout {
            limits.read_header_timeout = seconds("read_header_timeout", &t)?;
        }
        if let Some(t) = l.idle_timeout {
            limits.idle_timeout = seconds("idle_timeout", &t)?;
        }
        if let Some(m) = l.max_connections {
            limits.max_connections = positive("max_connections", m)?;
        }
    }
    if let Some(l) = t.log {
        if let Some(f) = l.format {
            c.log_format = match f.as_str() {
                "json" => LogFormat::Json,
                "text" | "standard" => LogFormat::Text,
                other => bail!(
                    "config key `log.format`: unknown format {other:?}; use \"text\" or \"json\""
                ),
            };
        }
        if let Some(lv) = l.level {
            c.log_level = lv;
        }
    }
    if let Some(d) = t.default_lease_ttl {
        c.default_lease_ttl = duration_key("default_lease_ttl", &d)?;
    }
    if let Some(d) = t.max_lease_ttl {
        c.max_lease_ttl = duration_key("max_lease_ttl", &d)?;
    }
    c.api_addr = t.api_addr;
    c.cluster_name = t.cluster_name;
    c.allow_loopback_http = t.jwt_allow_loopback_http;
    Ok(c)
}

fn seal_from(
    kind: &str,
    current_key_id: Option<String>,
    current_key: Option<String>,
    previous_key_id: Option<String>,
    previous_key: Option<String>,
    key: &str,
) -> Result<SealConfigFile> {
    match kind {
        "shamir" => Ok(SealConfigFile::Shamir),
        "static" => {
            let current_key = current_key.ok_or_else(|| anyhow!("config key `{key}.current_key`: required for a static seal (file:///path or env://VAR)"))?;
            let current_key_id = current_key_id.ok_or_else(|| {
                anyhow!("config key `{key}.current_key_id`: required for a static seal")
            })?;
            if previous_key.is_some() != previous_key_id.is_some() {
                bail!(
                    "config key `{key}.previous_key`: previous_key and previous_key_id go together"
                );
            }
            Ok(SealConfigFile::Static {
                current_key_id,
                current_key,
                previous_key_id,
                previous_key,
            })
        }
        other => bail!(
            "config key `{key}.type`: unsupported seal {other:?}; use \"shamir\" or \"static\""
        ),
    }
}

// ---- OpenBao HCL / JSON ----

/// `{"tcp": {...}}`, `[{"tcp": {...}}]` → `[("tcp", {...})]`.
fn typed_blocks(v: &Value) -> Vec<(String, Value)> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for it in items {
        if let Value::Object(m) = it {
            for (k, body) in m {
                match body {
                    Value::Array(bs) => out.extend(bs.iter().map(|b| (k.clone(), b.clone()))),
                    b => out.push((k.clone(), b.clone())),
                }
            }
        }
    }
    out
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    match v.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn bool_field(v: &Value, k: &str) -> bool {
    match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn parse_openbao(root: Value, base: &Path) -> Result<ServerConfig> {
    let mut c = ServerConfig::default();
    let Value::Object(map) = root else {
        bail!("invalid OpenBao config: expected an object at the top level")
    };
    let mut storage_seen = false;
    for (key, v) in &map {
        match key.as_str() {
            "listener" => {
                for (i, (kind, body)) in typed_blocks(v).into_iter().enumerate() {
                    if kind != "tcp" {
                        c.notes.push(format!("ignoring listener {i} of type {kind:?}: only \"tcp\" is supported"));
                        continue;
                    }
                    let address = str_field(&body, "address").unwrap_or_else(|| "127.0.0.1:8200".into());
                    let tls = if bool_field(&body, "tls_disable") {
                        None
                    } else {
                        match (str_field(&body, "tls_cert_file"), str_field(&body, "tls_key_file")) {
                            (Some(cert), Some(k)) => Some((resolve_path(base, Path::new(&cert)), resolve_path(base, Path::new(&k)))),
                            _ => bail!("config key `listener.tcp[{i}]`: set tls_cert_file and tls_key_file, or tls_disable = true"),
                        }
                    };
                    if let Value::Object(m) = &body {
                        for (k, v) in m {
                            // OpenBao's per-listener limits; ours apply to every listener
                            let secs = |v: &Value| -> Result<Duration> {
                                let d = match v {
                                    Value::Number(n) => n.as_i64().unwrap_or(0),
                                    _ => strongroom_core::util::parse_duration(v).map_err(|e| anyhow!("config key `listener.tcp.{k}`: {e}"))?,
                                };
                                Ok(Duration::from_secs(d.max(1) as u64))
                            };
                            match k.as_str() {
                                "address" | "tls_cert_file" | "tls_key_file" | "tls_disable" => {}
                                "http_read_header_timeout" => c.limits.read_header_timeout = secs(v)?,
                                "http_idle_timeout" => c.limits.idle_timeout = secs(v)?,
                                "max_request_duration" => c.limits.request_timeout = secs(v)?,
                                "max_request_size" => {
                                    if let Some(n) = v.as_u64().filter(|n| *n > 0) {
                                        c.limits.max_request_size = usize::try_from(n).unwrap_or(usize::MAX);
                                    }
                                }
                                _ => c.notes.push(format!("ignoring listener option `{k}`: not supported")),
                            }
                        }
                    }
                    c.listeners.push(ListenerConfig { address, tls });
                }
            }
            "storage" | "backend" => {
                let blocks = typed_blocks(v);
                let Some((kind, body)) = blocks.into_iter().next() else { bail!("config key `{key}`: empty") };
                storage_seen = true;
                c.storage = match kind.as_str() {
                    "inmem" => StorageConfig::Memory,
                    "file" | "raft" => {
                        let p = str_field(&body, "path").ok_or_else(|| anyhow!("config key `{key}.{kind}.path`: required"))?;
                        c.notes.push(format!("storage {kind:?} at {p:?} is served by Strongroom's SQLite store (strongroom.db in that directory); OpenBao's own files there are not read — migrate the data with the API"));
                        if kind == "raft" {
                            c.notes.push("raft clustering options (node_id, retry_join) are ignored: run several nodes on PostgreSQL instead".into());
                        }
                        StorageConfig::Sqlite { path: resolve_path(base, Path::new(&p)).join("strongroom.db") }
                    }
                    "postgresql" => {
                        let url = str_field(&body, "connection_url")
                            .or_else(|| std::env::var("BAO_PG_CONNECTION_URL").ok())
                            .or_else(|| std::env::var("VAULT_PG_CONNECTION_URL").ok())
                            .ok_or_else(|| anyhow!("config key `{key}.postgresql.connection_url`: required (or BAO_PG_CONNECTION_URL)"))?;
                        c.notes.push("storage \"postgresql\" maps to Strongroom's PostgreSQL store in schema \"strongroom\"; OpenBao's own table is not read — migrate the data with the API".into());
                        StorageConfig::Postgres { url, schema: "strongroom".into(), pool: 8, statement_timeout: Duration::from_secs(5) }
                    }
                    other => bail!("config key `{key}`: storage type {other:?} cannot be honoured; use inmem, file or raft (mapped to SQLite), or postgresql"),
                };
            }
            "seal" => {
                for (kind, body) in typed_blocks(v) {
                    c.seal = match kind.as_str() {
                        "static" => seal_from(
                            "static",
                            str_field(&body, "current_key_id"),
                            str_field(&body, "current_key"),
                            str_field(&body, "previous_key_id"),
                            str_field(&body, "previous_key"),
                            "seal.static",
                        )?,
                        "shamir" => SealConfigFile::Shamir,
                        other => bail!("config key `seal`: seal type {other:?} cannot be honoured; use \"static\" or Shamir (no seal block)"),
                    };
                }
            }
            "default_lease_ttl" => c.default_lease_ttl = strongroom_core::util::parse_duration(v).map_err(|e| anyhow!("config key `default_lease_ttl`: {e}"))?,
            "max_lease_ttl" => c.max_lease_ttl = strongroom_core::util::parse_duration(v).map_err(|e| anyhow!("config key `max_lease_ttl`: {e}"))?,
            "api_addr" => c.api_addr = v.as_str().map(str::to_owned),
            "cluster_name" => c.cluster_name = v.as_str().map(str::to_owned),
            "log_level" => c.log_level = v.as_str().unwrap_or("info").to_owned(),
            "log_format" => {
                c.log_format = if v.as_str() == Some("json") { LogFormat::Json } else { LogFormat::Text };
            }
            "max_request_size" => {
                if let Some(n) = v.as_u64().filter(|n| *n > 0) {
                    c.limits.max_request_size = usize::try_from(n).unwrap_or(usize::MAX);
                }
            }
            "disable_mlock" => c.notes.push("`disable_mlock` has no effect: Strongroom zeroizes key material instead of locking pages".into()),
            "ui" => c.notes.push("`ui` is ignored: there is no web UI yet".into()),
            other => c.notes.push(format!("ignoring `{other}`: not supported by Strongroom")),
        }
    }
    if !storage_seen {
        bail!("config key `storage`: required (inmem, file or raft)");
    }
    if c.listeners.is_empty() {
        bail!("config key `listener`: at least one tcp listener is required");
    }
    Ok(c)
}

/// Which language a config is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// Strongroom's own TOML.
    Toml,
    /// OpenBao's JSON.
    Json,
    /// OpenBao's HCL.
    Hcl,
}

/// The deepest nesting of braces and brackets a config may have. Real configs nest three
/// or four levels; the parsers recurse per level, so an unbounded file could exhaust the
/// stack.
pub const MAX_CONFIG_NESTING: usize = 64;

/// Load a config file: `.toml` is ours; `.hcl` and `.json` are OpenBao's.
pub fn load(path: &Path) -> Result<ServerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = match ext {
        "toml" => ConfigFormat::Toml,
        "json" => ConfigFormat::Json,
        "hcl" => ConfigFormat::Hcl,
        _ => bail!(
            "config file {}: use a .toml file (Strongroom) or an OpenBao .hcl/.json file",
            path.display()
        ),
    };
    // Our TOML resolves relative paths against the config file's folder; an OpenBao
    // config against the working directory, as OpenBao does (hvac's test configs rely
    // on it).
    let base = match format {
        ConfigFormat::Toml => path.parent().map(Path::to_path_buf).unwrap_or_default(),
        _ => std::env::current_dir().context("reading the working directory")?,
    };
    parse(&text, format, &base).with_context(|| format!("config file {}", path.display()))
}

/// Parse a config's text; relative paths in it are resolved against `base`.
pub fn parse(text: &str, format: ConfigFormat, base: &Path) -> Result<ServerConfig> {
    let depth = nesting(text);
    if depth > MAX_CONFIG_NESTING {
        bail!("nested {depth} levels deep: at most {MAX_CONFIG_NESTING} are accepted");
    }
    match format {
        ConfigFormat::Toml => parse_toml(text, base),
        ConfigFormat::Json => {
            let v: Value =
                serde_json::from_str(text).map_err(|e| anyhow!("invalid JSON config: {e}"))?;
            parse_openbao(v, base)
        }
        ConfigFormat::Hcl => {
            // OpenBao reads its configs as HCL1, as our policies are read: one pass, no
            // backtracking, nesting bounded.
            let v = strongroom_acl::hcl1::document_to_json(text)
                .map_err(|e| anyhow!("invalid HCL config: {e}"))?;
            parse_openbao(v, base)
        }
    }
}

/// The deepest nesting of `{`, `[` and `(` outside strings and comments (`#`, `//`,
/// `/* */`), counted over TOML, JSON and HCL alike; an unbalanced text is left to the
/// parser to refuse.
fn nesting(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(&c) = b.get(i) {
        match c {
            b'"' | b'\'' => {
                // to the closing quote on an escape-aware scan
                i += 1;
                while let Some(&d) = b.get(i) {
                    if d == b'\\' && c == b'"' {
                        i += 1;
                    } else if d == c {
                        break;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while b.get(i).is_some_and(|&d| d != b'\n') {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while b.get(i).is_some_and(|&d| d != b'\n') {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b.get(i) == Some(&b'*') && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenBao's configs resolve relative paths against the working directory (hvac's
    /// own test config: `tls_cert_file = "tests/config_files/server-cert.pem"`), and the
    /// legacy `backend` block is `storage`; our TOML resolves against its own folder.
    #[test]
    fn openbao_configs_resolve_relative_paths_against_the_working_directory() {
        let dir = std::env::temp_dir().join(format!("sr-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hcl = dir.join("server.hcl");
        std::fs::write(
            &hcl,
            "backend \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_cert_file = \"tests/config_files/server-cert.pem\"\n  tls_key_file = \"tests/config_files/server-key.pem\"\n}\n",
        )
        .unwrap();
        let c = load(&hcl).unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert!(
            matches!(c.storage, StorageConfig::Memory),
            "{:?}",
            c.storage
        );
        assert_eq!(
            c.listeners[0].tls,
            Some((
                cwd.join("tests/config_files/server-cert.pem"),
                cwd.join("tests/config_files/server-key.pem")
            ))
        );
        let toml = dir.join("strongroom.toml");
        std::fs::write(&toml, "[storage.sqlite]\npath = \"data/x.db\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n").unwrap();
        let c = load(&toml).unwrap();
        assert_eq!(
            c.listeners[0].tls,
            Some((dir.join("c.pem"), dir.join("k.pem")))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The production config the README shows parses, `[ci]` and `[secrets_manager]`
    /// included.
    #[test]
    fn the_readme_production_config_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("# strongroom.toml")
            .expect("the README's config");
        let end = start + readme[start..].find("```").expect("its end");
        let c = parse_toml(&readme[start..end], Path::new("/")).unwrap();
        let ci = c.ci.expect("[ci]");
        assert_eq!(ci.issuer, "https://gitlab.example.com");
        assert_eq!((c.secrets_per_project, c.secrets_per_group), (100, 500));
        assert!(parse_toml(
            "[storage.memory]\n[[listener]]\naddress = \"127.0.0.1:0\"\n[ci]\nissuer = \"\"\n",
            Path::new("/")
        )
        .is_err());
    }

    #[test]
    fn toml_config_and_errors() {
        let c = parse_toml(
            r#"
            api_addr = "https://vault.example:8200"
            [storage.sqlite]
            path = "data/strongroom.db"
            [[listener]]
            address = "127.0.0.1:8200"
            tls_disable = true
            [seal]
            type = "static"
            current_key_id = "k2"
            current_key = "file:///etc/strongroom/k2"
            [limits]
            max_request_size = 1024
            read_header_timeout = "3s"
            max_connections = 500
            "#,
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(
            c.storage,
            StorageConfig::Sqlite {
                path: "/srv/data/strongroom.db".into()
            }
        );
        assert_eq!(c.listeners[0].tls, None);
        assert!(matches!(c.seal, SealConfigFile::Static { .. }));
        assert_eq!(c.limits.max_request_size, 1024);
        assert_eq!(c.limits.read_header_timeout, Duration::from_secs(3));
        assert_eq!(c.limits.max_connections, 500);

        let e = parse_toml(
            "[storage.sqlite]\npath='x'\n[[listener]]\naddress='a'\n",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("listener[0]"), "{e}");
        let e = parse_toml("bogus = 1\n[storage.sqlite]\npath='x'\n", Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn openbao_hcl_maps_what_it_can() {
        let body = strongroom_acl::hcl1::document_to_json(
            r#"
            ui = true
            disable_mlock = true
            api_addr = "http://127.0.0.1:8200"
            storage "raft" {
              path = "/var/lib/openbao"
              node_id = "n1"
            }
            listener "tcp" {
              address = "0.0.0.0:8200"
              tls_disable = 1
            }
            seal "static" {
              current_key_id = "20240101-1"
              current_key = "file:///etc/openbao/unseal.key"
            }
            telemetry {
              prometheus_retention_time = "24h"
            }
            "#,
        )
        .unwrap();
        let c = parse_openbao(body, Path::new("/")).unwrap();
        assert_eq!(
            c.storage,
            StorageConfig::Sqlite {
                path: "/var/lib/openbao/strongroom.db".into()
            }
        );
        assert_eq!(
            c.listeners,
            vec![ListenerConfig {
                address: "0.0.0.0:8200".into(),
                tls: None
            }]
        );
        assert!(matches!(c.seal, SealConfigFile::Static { .. }));
        assert!(
            c.notes.iter().any(|n| n.contains("telemetry")),
            "{:?}",
            c.notes
        );
        assert!(c.notes.iter().any(|n| n.contains("disable_mlock")));

        let bad = strongroom_acl::hcl1::document_to_json("storage \"consul\" {\n address = \"x\"\n}\nlistener \"tcp\" {\n tls_disable = true\n}\n").unwrap();
        let e = parse_openbao(bad, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("consul"), "{e}");
    }

    #[test]
    fn openbao_json_config() {
        let v: Value = serde_json::from_str(
            r#"{"storage": {"inmem": {}}, "listener": [{"tcp": {"address": "127.0.0.1:0", "tls_disable": true}}], "max_lease_ttl": "1h"}"#,
        )
        .unwrap();
        let c = parse_openbao(v, Path::new("/")).unwrap();
        assert_eq!(c.storage, StorageConfig::Memory);
        assert_eq!(c.max_lease_ttl, 3600);
    }
}
