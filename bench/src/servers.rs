//! Starting the servers under test as real processes on loopback, and measuring them.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::client::Conn;

pub struct Proc {
    pub addr: String,
    child: Child,
    pub data_dir: Option<PathBuf>,
    /// From spawn to the first `200` on `sys/health`.
    pub startup: Duration,
}

/// Every server process the harness runs at the moment (pid, API address): the servers
/// under test and the ceilings. A round waits until they are all quiet ([`settle`]) and
/// counts what the others used meanwhile ([`others_cpu_ticks`]).
static LIVE: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times (`USER_HZ`, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU time of process `pid` (all its threads) so far, in clock ticks;
/// 0 once it is gone.
fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU time of process `pid` (all its threads) so far, in clock ticks;
/// zeros once it is gone.
fn cpu_split(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses: utime and
    // stime are the 14th and 15th of the line, the 12th and 13th after the name.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (0, 0);
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11), get(12))
}

/// User and system CPU ticks used so far by the live server process serving `addr`, if
/// the harness runs it.
pub fn own_cpu_ticks(addr: &str) -> Option<(u64, u64)> {
    live()
        .iter()
        .find(|(_, a)| a == addr)
        .map(|(pid, _)| cpu_split(*pid))
}

fn live() -> Vec<(u32, String)> {
    LIVE.lock().map(|l| l.clone()).unwrap_or_default()
}

/// CPU ticks used so far by the live server processes, except the one serving `except`.
fn servers_cpu_ticks(except: Option<&str>) -> u64 {
    live()
        .iter()
        .filter(|(_, a)| Some(a.as_str()) != except)
        .map(|(pid, _)| cpu_ticks(*pid))
        .sum()
}

/// CPU ticks used so far by every live server process except the one serving `addr`.
pub fn others_cpu_ticks(addr: &str) -> u64 {
    servers_cpu_ticks(Some(addr))
}

/// Wait until the live server processes are quiet: together at most 2 ticks (20 ms) of
/// CPU in a 250 ms window, so a round does not measure one server while another is still
/// busy with the work of its own last round (a Go runtime collecting a large heap, say).
/// Gives up after `limit`. Returns how long it waited.
pub async fn settle(limit: Duration) -> Duration {
    let start = Instant::now();
    let total = || servers_cpu_ticks(None);
    let mut before = total();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = total();
        if now.saturating_sub(before) <= 2 || start.elapsed() >= limit {
            return start.elapsed();
        }
        before = now;
    }
}

impl Proc {
    fn new(addr: String, child: Child, data_dir: Option<PathBuf>, startup: Duration) -> Proc {
        if let Ok(mut l) = LIVE.lock() {
            l.push((child.id(), addr.clone()));
        }
        Proc {
            addr,
            child,
            data_dir,
            startup,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kb(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory now, KiB.
    pub fn rss_kb(&self) -> u64 {
        self.status_kb("VmRSS:")
    }

    /// Peak resident memory since start, KiB.
    pub fn peak_rss_kb(&self) -> u64 {
        self.status_kb("VmHWM:")
    }

    /// Total size of the files under the data directory, bytes.
    pub fn data_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        }
        self.data_dir.as_deref().map(walk).unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        if let Ok(mut l) = LIVE.lock() {
            l.retain(|(p, _)| *p != pid);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .unwrap_or(0)
}

fn scrub(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULT_") || k.starts_with("BAO_") {
            cmd.env_remove(k);
        }
    }
}

async fn wait_health(addr: &str, started: Instant, limit: Duration) -> Result<Duration> {
    loop {
        if let Ok(mut c) = Conn::connect(addr).await {
            if let Ok(r) = c.send("GET", "/v1/sys/health", &[], b"").await {
                if r.status == 200 {
                    return Ok(started.elapsed());
                }
            }
        }
        if started.elapsed() > limit {
            bail!("{addr} did not become healthy within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Strongroom in dev mode on SQLite in a fresh `dir` (durable: WAL, fsync per commit).
pub async fn strongroom(bin: &Path, dir: &Path, issuer_key: &Path) -> Result<Proc> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    strongroom_at(bin, dir, issuer_key).await
}

/// Strongroom in dev mode on an existing data directory (a restart).
pub async fn strongroom_at(bin: &Path, dir: &Path, issuer_key: &Path) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    scrub(&mut cmd);
    cmd.args([
        "server",
        "--dev",
        "--dev-root-token-id",
        "root",
        "--dev-listen-address",
        "127.0.0.1:0",
        "--dev-data-dir",
    ])
    .arg(dir)
    .env("STRONGROOM_DEV_ISSUER_KEY", issuer_key)
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let addr = api_address(&mut child)?;
    let startup = wait_health(&addr, started, Duration::from_secs(60)).await?;
    Ok(Proc::new(addr, child, Some(dir.to_path_buf()), startup))
}

/// Which minimal server [`ceiling`] starts.
pub enum Ceiling<'a> {
    /// `report::ceiling_server`: answers every request.
    Read,
    /// `report::login_ceiling_server`: verifies each login's JWT with this issuer key (PEM).
    Login(&'a str),
    /// `report::durable_login_ceiling_server`: verifies each login's JWT with this issuer
    /// key (PEM) and stores a row per login in a SQLite file of its own, in `dir`.
    DurableLogin(&'a str),
    /// `report::lookup_floor_server` on this SQLite file.
    Lookup(&'a Path),
    /// `report::page_floor_server` on this file.
    Page(&'a Path),
}

/// A ceiling or floor server (see [`Ceiling`]) in a process of its own: this binary
/// started again with `--serve-ceiling`, so it pays what the servers under test pay for
/// being separate processes (its own runtime and threads, a context switch between the
/// load generator and it) and shares no runtime with the load generator. Its files go in
/// `dir`.
pub fn ceiling(body: &[u8], kind: Ceiling, dir: &Path) -> Result<Proc> {
    std::fs::create_dir_all(dir)?;
    let body_file = dir.join("ceiling-body");
    std::fs::write(&body_file, body)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    scrub(&mut cmd);
    cmd.arg("--serve-ceiling").arg(&body_file);
    match kind {
        Ceiling::Read => {}
        Ceiling::Login(pem) => {
            let key_file = dir.join("ceiling-key.pem");
            std::fs::write(&key_file, pem)?;
            cmd.arg("--ceiling-key").arg(key_file);
        }
        Ceiling::DurableLogin(pem) => {
            let key_file = dir.join("ceiling-key.pem");
            std::fs::write(&key_file, pem)?;
            cmd.arg("--ceiling-key").arg(key_file);
            cmd.arg("--ceiling-store").arg(dir.join("store"));
        }
        Ceiling::Lookup(db) => {
            cmd.arg("--floor-lookup").arg(db);
        }
        Ceiling::Page(file) => {
            cmd.arg("--floor-page").arg(file);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting the ceiling server")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?)
        .read_line(&mut line)?;
    let addr = line.trim().to_owned();
    if !addr.starts_with("http://") {
        let _ = child.kill();
        bail!("the ceiling server did not start: {line:?}");
    }
    Ok(Proc::new(addr, child, None, started.elapsed()))
}

/// `bao server -dev` (in-memory storage).
pub async fn openbao_dev(bao: &Path) -> Result<Proc> {
    let port = free_port();
    let mut cmd = Command::new(bao);
    scrub(&mut cmd);
    cmd.args([
        "server",
        "-dev",
        "-dev-root-token-id=root",
        &format!("-dev-listen-address=127.0.0.1:{port}"),
        "-dev-no-store-token",
        "-log-level=error",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().context("starting bao server -dev")?;
    let addr = format!("http://127.0.0.1:{port}");
    let startup = wait_health(&addr, started, Duration::from_secs(60)).await?;
    Ok(Proc::new(addr, child, None, startup))
}

/// OpenBao on integrated (raft) storage, initialized and unsealed; root token returned.
pub async fn openbao_raft(bao: &Path, dir: &Path) -> Result<(Proc, String)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("raft"))?;
    let (port, cport) = (free_port(), free_port());
    let cfg = dir.join("openbao.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"bench\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cport}\"\ndisable_mlock = true\nlog_level = \"error\"\n",
            dir.join("raft").display()
        ),
    )?;
    let mut cmd = Command::new(bao);
    scrub(&mut cmd);
    cmd.arg("server")
        .arg(format!("-config={}", cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().context("starting bao server (raft)")?;
    let addr = format!("http://127.0.0.1:{port}");
    let mut proc = Proc::new(addr.clone(), child, Some(dir.to_path_buf()), Duration::ZERO);
    loop {
        if let Ok((s, _)) = api(&addr, "GET", "/v1/sys/seal-status", None, None).await {
            if s == 200 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("OpenBao (raft) did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, init) = api(
        &addr,
        "PUT",
        "/v1/sys/init",
        None,
        Some(json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    let key = init["keys"][0]
        .as_str()
        .ok_or_else(|| anyhow!("init: {init}"))?
        .to_owned();
    let root = init["root_token"].as_str().unwrap_or_default().to_owned();
    api(
        &addr,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(json!({"key": key})),
    )
    .await?;
    proc.startup = wait_health(&addr, started, Duration::from_secs(60)).await?;
    Ok((proc, root))
}

/// The address a starting Strongroom prints (`Api Address: …`), read from its stdout. If
/// the process ends or stays silent instead, the error carries the last lines it wrote to
/// stderr (Strongroom logs no secret or token there), so the cause is visible.
fn api_address(child: &mut Child) -> Result<String> {
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("stdout not captured"))?;
    let err = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("stderr not captured"))?;
    // The last lines of stderr, read all along so the server never blocks on a full pipe.
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let keep = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Ok(mut t) = keep.lock() {
                if t.len() == 5 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the server never blocks on a full pipe. If stdout closes (the
        // process ended) before the address, `tx` drops unsent and the receiver knows.
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = line.trim().strip_prefix("Api Address:") {
                if let Some(t) = tx.take() {
                    let _ = t.send(a.trim().to_owned());
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => Ok(a),
        Err(e) => {
            // Give the stderr reader a moment to take the process's last words.
            std::thread::sleep(Duration::from_millis(200));
            let status = child.try_wait().ok().flatten();
            let said = tail
                .lock()
                .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
                .unwrap_or_default();
            Err(anyhow!(
                "strongroom did not print its address ({}; {}); its stderr ended with: {}",
                match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => "nothing within 60 s",
                    std::sync::mpsc::RecvTimeoutError::Disconnected => "its stdout closed",
                },
                status.map_or("still running".to_owned(), |s| format!("exited: {s}")),
                if said.is_empty() { "(nothing)" } else { &said }
            ))
        }
    }
}

/// One API call on a fresh connection.
pub async fn api(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut c = Conn::connect(addr).await?;
    let mut h = Vec::new();
    if let Some(t) = token {
        h.push(("X-Vault-Token", t));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = c.send(method, path, &h, body.as_bytes()).await?;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    Ok((r.status, v))
}

/// An API call that must succeed (2xx).
pub async fn api_ok(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value> {
    let (s, v) = api(addr, method, path, Some(token), body).await?;
    if !(200..300).contains(&s) {
        bail!("{method} {path} on {addr}: {s} {v}");
    }
    Ok(v)
}

/// Strongroom on PostgreSQL (a fresh schema), static seal, initialized; root token returned.
pub async fn strongroom_pg(
    bin: &Path,
    dir: &Path,
    pg_url: &str,
    schema: &str,
) -> Result<(Proc, String)> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let drop = Command::new("psql")
        .args([
            "-q",
            pg_url,
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .output();
    if !drop.as_ref().is_ok_and(|o| o.status.success()) {
        bail!("cannot reach PostgreSQL with psql");
    }
    std::fs::write(
        dir.join("seal.key"),
        "b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7b0a7",
    )?;
    std::fs::write(dir.join("pg-url"), pg_url)?;
    let cfg = dir.join("strongroom.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage.postgres]\nurl_file = \"{}\"\nschema = \"{schema}\"\npool = 16\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[seal]\ntype = \"static\"\ncurrent_key_id = \"bench\"\ncurrent_key = \"file://{}\"\n[log]\nlevel = \"warn\"\n",
            dir.join("pg-url").display(),
            dir.join("seal.key").display()
        ),
    )?;
    let mut cmd = Command::new(bin);
    scrub(&mut cmd);
    cmd.args(["server", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let addr = api_address(&mut child)?;
    let mut proc = Proc::new(addr.clone(), child, None, Duration::ZERO);
    let (_, init) = api(&addr, "PUT", "/v1/sys/init", None, Some(json!({}))).await?;
    let root = init["root_token"]
        .as_str()
        .ok_or_else(|| anyhow!("init: {init}"))?
        .to_owned();
    proc.startup = wait_health(&addr, started, Duration::from_secs(30)).await?;
    Ok((proc, root))
}
