//! Many nodes on one PostgreSQL, each test in a schema of its own that it drops
//! afterwards. The server is `STRONGROOM_TEST_PG_URL` (the test command's own cluster on a
//! machine without one), else the one on 127.0.0.1:5432. These tests run one at a time
//! (see `.config/nextest.toml`): one of them restarts PostgreSQL.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn pg_url() -> String {
    std::env::var("STRONGROOM_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql_output(sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args([pg_url().as_str(), "-q", "-c", sql])
        .output()
        .expect("psql")
}

fn psql(sql: &str) {
    let o = psql_output(sql);
    assert!(
        o.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Stops or starts the PostgreSQL server: the test command's own cluster through the
/// command it exported, else the system's cluster through Debian's `pg_ctlcluster`.
fn pg_ctl(action: &str) {
    let o = if let Ok(ctl) = std::env::var("STRONGROOM_TEST_PG_CTL") {
        std::process::Command::new("sh")
            .args(["-c", &format!("{ctl} {action}")])
            .output()
            .expect("sh")
    } else {
        let version = std::fs::read_dir("/etc/postgresql")
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .into_owned();
        std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", action])
            .output()
            .expect("pg_ctlcluster")
    };
    assert!(
        o.status.success(),
        "PostgreSQL {action}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A schema for one test, dropped when the guard goes.
struct Schema(String);

impl Schema {
    fn new(tag: &str) -> Schema {
        let name = format!("sr_it_{tag}_{}", std::process::id());
        psql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = psql_output(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
    }
}

/// A node config on the shared schema; the URL comes from a file, as in production.
fn node_config(dir: &TempDir, name: &str, schema: &str) -> std::path::PathBuf {
    let url_file = dir.path().join("pg-url");
    std::fs::write(&url_file, pg_url()).unwrap();
    static_seal_config(
        dir,
        name,
        &format!(
            "[storage.postgres]\nurl_file = \"{}\"\nschema = \"{schema}\"\nstatement_timeout = \"3s\"",
            url_file.display()
        ),
        "",
    )
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

#[test]
fn pg_two_nodes_share_data_and_cas_has_one_winner_per_version() {
    let schema = Schema::new("nodes");
    let dir = TempDir::new("pg-nodes");
    let a = strongroom_config(&node_config(&dir, "a", &schema.0));
    let root = init_with_kv2(&a);
    let b = strongroom_config(&node_config(&dir, "b", &schema.0));
    // written through A, read through B
    let r = http(
        "POST",
        &a.url("secret/data/shared"),
        Some(&root),
        &[],
        Some(br#"{"data": {"v": "from-a"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http("GET", &b.url("secret/data/shared"), Some(&root), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["data"]["v"], "from-a");
    // a policy and a token made on B work on A at once
    let pol =
        json!({"policy": "path \"secret/data/shared\" { capabilities = [\"read\"] }"}).to_string();
    assert_eq!(
        http(
            "PUT",
            &b.url("sys/policies/acl/reader"),
            Some(&root),
            &[],
            Some(pol.as_bytes())
        )
        .status,
        204
    );
    let tok = http(
        "POST",
        &b.url("auth/token/create"),
        Some(&root),
        &[],
        Some(br#"{"policies": ["reader"]}"#),
    )
    .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        http("GET", &a.url("secret/data/shared"), Some(&tok), &[], None).status,
        200
    );
    // revoked on A: refused on B
    assert_eq!(
        http(
            "POST",
            &a.url("auth/token/revoke"),
            Some(&root),
            &[],
            Some(json!({"token": tok}).to_string().as_bytes())
        )
        .status,
        204
    );
    wait_until("revocation seen by B", Duration::from_secs(5), || {
        http("GET", &b.url("secret/data/shared"), Some(&tok), &[], None).status == 403
    });
    // a mount enabled on B is usable on A
    assert_eq!(
        http(
            "POST",
            &b.url("sys/mounts/kv2"),
            Some(&root),
            &[],
            Some(br#"{"type": "kv-v2"}"#)
        )
        .status,
        204
    );
    wait_until("mount seen by A", Duration::from_secs(5), || {
        http(
            "POST",
            &a.url("kv2/data/x"),
            Some(&root),
            &[],
            Some(br#"{"data": {"a": "1"}}"#),
        )
        .status
            == 200
    });

    // 16 clients doing check-and-set on one key through both nodes
    assert_eq!(
        http(
            "POST",
            &a.url("secret/data/counter"),
            Some(&root),
            &[],
            Some(br#"{"data": {"by": "init"}, "options": {"cas": 0}}"#)
        )
        .status,
        200
    );
    let wins: Arc<Mutex<Vec<(u64, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for c in 0..16 {
        let node = if c % 2 == 0 {
            a.addr.clone()
        } else {
            b.addr.clone()
        };
        let (wins, root) = (wins.clone(), root.clone());
        handles.push(std::thread::spawn(move || {
            let mut mine = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while mine < 5 && Instant::now() < deadline {
                let cur = http(
                    "GET",
                    &format!("{node}/v1/secret/data/counter"),
                    Some(&root),
                    &[],
                    None,
                )
                .json()["data"]["metadata"]["version"]
                    .as_u64()
                    .unwrap();
                let me = format!("client{c}-{mine}");
                let body = json!({"data": {"by": me}, "options": {"cas": cur}}).to_string();
                let r = http(
                    "POST",
                    &format!("{node}/v1/secret/data/counter"),
                    Some(&root),
                    &[],
                    Some(body.as_bytes()),
                );
                match r.status {
                    200 => {
                        let v = r.json()["data"]["version"].as_u64().unwrap();
                        assert_eq!(v, cur + 1, "a winning write takes the next version");
                        wins.lock().unwrap().push((v, me));
                        mine += 1;
                    }
                    400 => assert!(r.body.contains("check-and-set"), "{}", r.body),
                    429 => {}
                    other => panic!("unexpected {other}: {}", r.body),
                }
            }
            mine
        }));
    }
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let wins = wins.lock().unwrap().clone();
    assert_eq!(total, 80, "every client won its five writes eventually");
    let mut per_version: HashMap<u64, Vec<String>> = HashMap::new();
    for (v, who) in &wins {
        per_version.entry(*v).or_default().push(who.clone());
    }
    assert!(
        per_version.values().all(|w| w.len() == 1),
        "exactly one winner per version: {per_version:?}"
    );
    let meta = http(
        "GET",
        &b.url("secret/metadata/counter"),
        Some(&root),
        &[],
        None,
    )
    .json();
    assert_eq!(
        meta["data"]["current_version"], 81,
        "no lost update: {meta}"
    );
    // the last winner's value is what both nodes read
    let last = per_version[&81][0].clone();
    for n in [&a, &b] {
        assert_eq!(
            http("GET", &n.url("secret/data/counter"), Some(&root), &[], None).json()["data"]
                ["data"]["by"],
            last.as_str()
        );
    }
}

fn is_self(s: &Server) -> Option<bool> {
    try_http("GET", &s.url("sys/leader"), None, &[], None)
        .ok()
        .map(|r| r.json()["is_self"].as_bool().unwrap_or(false))
}

#[test]
fn pg_background_lease_moves_when_its_node_dies() {
    let schema = Schema::new("lease");
    let dir = TempDir::new("pg-lease");
    let a = strongroom_config(&node_config(&dir, "a", &schema.0));
    init_with_kv2(&a);
    let b = strongroom_config(&node_config(&dir, "b", &schema.0));
    let mut nodes = [a, b];
    wait_until("one leader", Duration::from_secs(15), || {
        nodes.iter().filter(|n| is_self(n) == Some(true)).count() == 1
    });
    let l = http("GET", &nodes[0].url("sys/leader"), None, &[], None).json();
    assert_eq!(l["ha_enabled"], true);
    let leader = if is_self(&nodes[0]) == Some(true) {
        0
    } else {
        1
    };
    let other = 1 - leader;
    assert_eq!(l["leader_address"], nodes[leader].addr.as_str(), "{l}");
    nodes[leader].kill9();
    let took = wait_until(
        "the other node takes the lease",
        Duration::from_secs(20),
        || is_self(&nodes[other]) == Some(true),
    );
    eprintln!("lease moved after {took:?}");
    let l = http("GET", &nodes[other].url("sys/leader"), None, &[], None).json();
    assert_eq!(l["leader_address"], nodes[other].addr.as_str());
}

#[test]
fn pg_restart_during_writes_gives_503_then_recovers_without_losing_acked_writes() {
    let schema = Schema::new("restart");
    let dir = TempDir::new("pg-restart");
    let a = strongroom_config(&node_config(&dir, "a", &schema.0));
    let root = init_with_kv2(&a);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let statuses: Arc<Mutex<HashMap<u16, u64>>> = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, statuses, stop, root, base) = (
            acked.clone(),
            statuses.clone(),
            stop.clone(),
            root.clone(),
            a.url("secret/data"),
        );
        writers.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}/k{}", i % 20);
                let val = format!("{w}-{i}");
                let body = json!({"data": {"v": val}}).to_string();
                if let Ok(r) = try_http(
                    "POST",
                    &format!("{base}/{key}"),
                    Some(&root),
                    &[],
                    Some(body.as_bytes()),
                ) {
                    *statuses.lock().unwrap().entry(r.status).or_default() += 1;
                    if r.status == 200 {
                        acked.lock().unwrap().push((key, val));
                    }
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    pg_ctl("stop");
    std::thread::sleep(Duration::from_secs(2));
    let during = try_http("GET", &a.url("secret/data/w0/k0"), Some(&root), &[], None).unwrap();
    pg_ctl("start");
    assert_eq!(
        during.status, 503,
        "requests during the outage fail fast with 503: {}",
        during.body
    );
    assert!(
        during.body.contains("storage unavailable") || during.body.contains("database"),
        "{}",
        during.body
    );
    let recovered = wait_until("writes succeed again", Duration::from_secs(30), || {
        try_http(
            "POST",
            &a.url("secret/data/after"),
            Some(&root),
            &[],
            Some(br#"{"data": {"ok": "1"}}"#),
        )
        .is_ok_and(|r| r.status == 200)
    });
    eprintln!("recovered {recovered:?} after PostgreSQL came back");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let st = statuses.lock().unwrap().clone();
    assert!(
        st.get(&503).copied().unwrap_or(0) > 0,
        "the outage was visible as 503: {st:?}"
    );
    let acked = acked.lock().unwrap().clone();
    assert_acked_present(&a, &root, &acked, "after the PostgreSQL restart");
}

fn sqlite_config(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let cfg = dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[storage.sqlite]\npath = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[seal]\ntype = \"static\"\ncurrent_key_id = \"k1\"\ncurrent_key = \"file://{}\"\n",
            dir.path().join(format!("{name}.db")).display(),
            dir.path().join("seal.key").display()
        ),
    )
    .unwrap();
    cfg
}

fn operator(args: &[&str]) -> String {
    let o = std::process::Command::new(strongroom_bin())
        .arg("operator")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "operator {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Everything a client can see, for comparing stores.
fn fingerprint(s: &Server, root: &str) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["a", "b/c"] {
        out.insert(
            format!("secret/{k}"),
            http(
                "GET",
                &s.url(&format!("secret/data/{k}?version=1")),
                Some(root),
                &[],
                None,
            )
            .json()["data"]["data"]
                .clone(),
        );
        out.insert(
            format!("meta/{k}"),
            http(
                "GET",
                &s.url(&format!("secret/metadata/{k}")),
                Some(root),
                &[],
                None,
            )
            .json()["data"]["versions"]
                .clone(),
        );
    }
    out.insert(
        "policy".into(),
        http("GET", &s.url("sys/policies/acl/p1"), Some(root), &[], None).json()["data"].clone(),
    );
    out.insert(
        "namespaces".into(),
        http("LIST", &s.url("sys/namespaces"), Some(root), &[], None).json()["data"]["keys"]
            .clone(),
    );
    out.insert(
        "ns-secret".into(),
        http("GET", &s.url("team/kv/data/x"), Some(root), &[], None).json()["data"]["data"].clone(),
    );
    Value::Object(out)
}

#[test]
fn pg_migrate_sqlite_to_postgres_and_back_and_snapshots() {
    let schema = Schema::new("migrate");
    let dir = TempDir::new("pg-migrate");
    let pg = node_config(&dir, "pg", &schema.0);
    let src = sqlite_config(&dir, "src");
    let back = sqlite_config(&dir, "back");
    let restored = sqlite_config(&dir, "restored");
    let (root, before, token) = {
        let mut s = strongroom_config(&src);
        let root = init_with_kv2(&s);
        for (k, v) in [("a", "1"), ("b/c", "2")] {
            http(
                "POST",
                &s.url(&format!("secret/data/{k}")),
                Some(&root),
                &[],
                Some(json!({"data": {"v": v}}).to_string().as_bytes()),
            );
            http(
                "POST",
                &s.url(&format!("secret/data/{k}")),
                Some(&root),
                &[],
                Some(
                    json!({"data": {"v": format!("{v}{v}")}})
                        .to_string()
                        .as_bytes(),
                ),
            );
        }
        http(
            "PUT",
            &s.url("sys/policies/acl/p1"),
            Some(&root),
            &[],
            Some(br#"{"policy": "path \"x\" { capabilities = [\"read\"] }"}"#),
        );
        http(
            "POST",
            &s.url("sys/namespaces/team"),
            Some(&root),
            &[],
            Some(b"{}"),
        );
        http(
            "POST",
            &s.url("team/sys/mounts/kv"),
            Some(&root),
            &[],
            Some(br#"{"type": "kv-v2"}"#),
        );
        http(
            "POST",
            &s.url("team/kv/data/x"),
            Some(&root),
            &[],
            Some(br#"{"data": {"n": "s"}}"#),
        );
        let tok = http(
            "POST",
            &s.url("auth/token/create"),
            Some(&root),
            &[],
            Some(br#"{"policies": ["p1"]}"#),
        )
        .json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let fp = fingerprint(&s, &root);
        assert!(s.stop().success());
        (root, fp, tok)
    };
    let out = operator(&[
        "migrate",
        "--from",
        src.to_str().unwrap(),
        "--to",
        pg.to_str().unwrap(),
    ]);
    assert!(out.contains("verified"), "{out}");
    // a second migrate into the now non-empty target is refused
    let o = std::process::Command::new(strongroom_bin())
        .args(["operator", "migrate", "--from"])
        .arg(&src)
        .arg("--to")
        .arg(&pg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    {
        let s = strongroom_config(&pg);
        assert_eq!(
            fingerprint(&s, &root),
            before,
            "PostgreSQL holds the same data"
        );
        assert_eq!(
            http(
                "GET",
                &s.url("auth/token/lookup-self"),
                Some(&token),
                &[],
                None
            )
            .status,
            200,
            "tokens too"
        );
    }
    operator(&[
        "migrate",
        "--from",
        pg.to_str().unwrap(),
        "--to",
        back.to_str().unwrap(),
    ]);
    {
        let s = strongroom_config(&back);
        assert_eq!(fingerprint(&s, &root), before, "and back to SQLite");
    }
    let snap = dir.path().join("backup.snap");
    let out = operator(&[
        "snapshot",
        "save",
        snap.to_str().unwrap(),
        "--config",
        back.to_str().unwrap(),
    ]);
    assert!(out.contains("Saved"), "{out}");
    let raw = std::fs::read(&snap).unwrap();
    assert!(
        !raw.windows(3).any(|w| w == b"\"11"),
        "the snapshot holds no plaintext secret value"
    );
    operator(&[
        "snapshot",
        "restore",
        snap.to_str().unwrap(),
        "--config",
        restored.to_str().unwrap(),
    ]);
    {
        let s = strongroom_config(&restored);
        assert_eq!(fingerprint(&s, &root), before, "restored from the snapshot");
    }
    // restoring over data is refused; a damaged snapshot is refused
    let o = std::process::Command::new(strongroom_bin())
        .args(["operator", "snapshot", "restore"])
        .arg(&snap)
        .arg("--config")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let mut bad = raw.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let badf = dir.path().join("bad.snap");
    std::fs::write(&badf, bad).unwrap();
    let fresh = sqlite_config(&dir, "fresh");
    let o = std::process::Command::new(strongroom_bin())
        .args(["operator", "snapshot", "restore"])
        .arg(&badf)
        .arg("--config")
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(!o.status.success(), "a damaged snapshot is refused");
}

/// Issue 38: a rollout starts every node at once on an empty schema. All three must come
/// up (the schema set-up raced: one exited with `storage conflict`), and once one of them
/// is initialized the other two unseal themselves with the static seal, without a
/// restart, as OpenBao's auto-unseal retries.
#[test]
fn pg_three_nodes_started_at_once_all_unseal_after_one_init() {
    let schema = Schema::new("rollout");
    let dir = TempDir::new("pg-rollout");
    let cfgs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| node_config(&dir, n, &schema.0))
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(cfgs.len()));
    let starts: Vec<_> = cfgs
        .into_iter()
        .map(|cfg| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                strongroom_config(&cfg)
            })
        })
        .collect();
    let nodes: Vec<Server> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    for n in &nodes {
        let st = http("GET", &n.url("sys/seal-status"), None, &[], None).json();
        assert_eq!(st["initialized"], false, "{st}");
        assert_eq!(st["sealed"], true, "{st}");
    }
    let root = init_with_kv2(&nodes[0]);
    let took = wait_until(
        "all three unsealed and serving",
        Duration::from_secs(10),
        || {
            nodes.iter().all(|n| {
                try_http(
                    "GET",
                    &n.url("auth/token/lookup-self"),
                    Some(&root),
                    &[],
                    None,
                )
                .is_ok_and(|r| r.status == 200)
            })
        },
    );
    eprintln!("all three serving {took:?} after the init");
    // and they serve the same data
    let r = http(
        "POST",
        &nodes[1].url("secret/data/rolled"),
        Some(&root),
        &[],
        Some(br#"{"data": {"v": "1"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for n in &nodes {
        let r = http("GET", &n.url("secret/data/rolled"), Some(&root), &[], None);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for n in &nodes {
        assert!(!n.logs().contains("storage conflict"), "{}", n.logs());
    }
}
