//! The edge's limits, held against a client that misbehaves on purpose: half-sent request
//! heads and bodies, idle keep-alive connections, too many connections, and heads, bodies,
//! JSON and policies past their limits. Each limit is a `[limits]` key (README, "Limits");
//! this server sets short ones so the test sees each one act.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const READ_HEADER_TIMEOUT: u64 = 2;
const IDLE_TIMEOUT: u64 = 5;
const REQUEST_TIMEOUT: u64 = 3;
const MAX_CONNECTIONS: usize = 240;
const MAX_REQUEST_SIZE: usize = 256 * 1024;

fn server(dir: &TempDir) -> (Server, String) {
    let cfg = static_seal_config(
        dir,
        "limits",
        &format!(
            "[storage.sqlite]\npath = \"{}\"",
            dir.path().join("db.sqlite").display()
        ),
        &format!(
            "[limits]\nmax_request_size = {MAX_REQUEST_SIZE}\nrequest_timeout = \"{REQUEST_TIMEOUT}s\"\n\
             read_header_timeout = \"{READ_HEADER_TIMEOUT}s\"\nidle_timeout = \"{IDLE_TIMEOUT}s\"\n\
             max_connections = {MAX_CONNECTIONS}\n"
        ),
    );
    let s = strongroom_config(&cfg);
    let root = init_with_kv2(&s);
    (s, root)
}

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.addr.trim_start_matches("http://")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// Reads one response (head and `Content-Length` body) from a kept-alive connection.
fn read_response(c: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if raw.len() >= split + 4 + len {
            let status = head[9..12].parse().unwrap();
            let body = String::from_utf8_lossy(&raw[split + 4..split + 4 + len]).into_owned();
            return Ok((status, body));
        }
    }
}

/// True when the server has closed the connection (EOF or reset) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn get_on(c: &mut TcpStream, path: &str) -> std::io::Result<(u16, String)> {
    c.write_all(format!("GET /v1/{path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    read_response(c)
}

#[test]
fn half_sent_and_idle_connections_do_not_starve_others_and_each_limit_holds() {
    let dir = TempDir::new("limits");
    let (s, root) = server(&dir);

    // 100 request heads that never end, 100 idle keep-alive connections
    let t0 = Instant::now();
    let mut half: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut c = connect(&s);
            c.write_all(
                format!(
                    "GET /v1/secret/data/k{i} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            c
        })
        .collect();
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut c = connect(&s);
            assert_eq!(get_on(&mut c, "sys/health").unwrap().0, 200);
            c
        })
        .collect();
    // a half-sent body: the head is complete, the body never is
    let mut half_body = connect(&s);
    half_body
        .write_all(
            format!(
                "POST /v1/secret/data/slow HTTP/1.1\r\nHost: x\r\nX-Vault-Token: {root}\r\nContent-Length: 100\r\n\r\n{{\"data\":"
            )
            .as_bytes(),
        )
        .unwrap();

    // others are served meanwhile, on new connections
    for i in 0..20 {
        let body = json!({"data": {"v": i}}).to_string();
        let r = http(
            "POST",
            &s.url(&format!("secret/data/other{i}")),
            Some(&root),
            &[],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = http(
            "GET",
            &s.url(&format!("secret/data/other{i}")),
            Some(&root),
            &[],
            None,
        );
        assert_eq!(r.json()["data"]["data"]["v"], i);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(READ_HEADER_TIMEOUT),
        "this part must run before the header timeout for the checks below to mean anything"
    );

    // read_header_timeout: every half-sent head is dropped with its connection
    for c in &mut half {
        assert!(
            closed_within(c, Duration::from_secs(READ_HEADER_TIMEOUT + 3)),
            "a half-sent head outlived read_header_timeout"
        );
    }
    // request_timeout: the half-sent body is answered 503
    let (status, body) = read_response(&mut half_body).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("timed out"), "{body}");
    // the idle connections outlived the header timeout and still serve requests...
    assert!(t0.elapsed() < Duration::from_secs(IDLE_TIMEOUT));
    for c in idle.iter_mut().take(10) {
        assert_eq!(get_on(c, "sys/health").unwrap().0, 200);
    }
    // ...and idle_timeout closes them
    for c in &mut idle {
        assert!(
            closed_within(c, Duration::from_secs(IDLE_TIMEOUT + 3)),
            "an idle keep-alive connection outlived idle_timeout"
        );
    }
    assert_eq!(
        http("GET", &s.url("sys/health"), None, &[], None).status,
        200
    );
}

#[test]
fn past_max_connections_new_clients_wait_until_one_closes() {
    let dir = TempDir::new("limits-conns");
    let (s, _root) = server(&dir);
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut c = connect(&s);
            assert_eq!(get_on(&mut c, "sys/health").unwrap().0, 200);
            c
        })
        .collect();
    // one more connects (the kernel's backlog) but is not served...
    let mut extra = connect(&s);
    extra
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    extra
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut b = [0u8; 16];
    let waited = extra.read(&mut b);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served past max_connections: {waited:?}"
    );
    // ...until one closes
    drop(held.pop());
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_response(&mut extra).unwrap().0, 200);
}

#[test]
fn heads_bodies_json_and_policies_past_their_limits_are_4xx_and_change_nothing() {
    let dir = TempDir::new("limits-sizes");
    let (s, root) = server(&dir);
    // max_header_size (64 KiB): 431
    let big = "a".repeat(70 * 1024);
    let r = try_http(
        "GET",
        &s.url("sys/health"),
        None,
        &[("X-Big", big.as_str())],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 431);
    // max_request_size: 413, nothing written
    let body = json!({"data": {"v": "x".repeat(MAX_REQUEST_SIZE)}}).to_string();
    let r = http(
        "POST",
        &s.url("secret/data/big"),
        Some(&root),
        &[],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("request body too large"), "{}", r.body);
    // JSON nesting past serde_json's 128 levels: 400, nothing written
    let deep = format!(
        "{{\"data\": {{\"v\": {}1{}}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let r = http(
        "POST",
        &s.url("secret/data/deep"),
        Some(&root),
        &[],
        Some(deep.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // a policy nested past 32 levels: 400, no policy
    let nested = format!(
        "path \"a\" {{ capabilities = [\"read\"] x = {}1{} }}",
        "{ y = ".repeat(40),
        " }".repeat(40)
    );
    let r = http(
        "PUT",
        &s.url("sys/policies/acl/deep"),
        Some(&root),
        &[],
        Some(json!({ "policy": nested }).to_string().as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    for (path, status) in [
        ("secret/data/big", 404),
        ("secret/data/deep", 404),
        ("sys/policies/acl/deep", 404),
    ] {
        assert_eq!(
            http("GET", &s.url(path), Some(&root), &[], None).status,
            status,
            "{path}"
        );
    }
    assert_eq!(
        http("GET", &s.url("sys/health"), None, &[], None).status,
        200
    );
}
