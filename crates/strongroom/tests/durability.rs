//! What is on disk: no plaintext secret or token in any file; every acknowledged write
//! survives `kill -9`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;

/// A production-style config: SQLite under `data/`, static seal key outside it.
fn config(dir: &TempDir) -> std::path::PathBuf {
    let db = dir.path().join("data/strongroom.db");
    static_seal_config(
        dir,
        "strongroom",
        &format!("[storage.sqlite]\npath = \"{}\"", db.display()),
        "",
    )
}

fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

fn assert_absent(data_dir: &std::path::Path, needles: &[String], when: &str) {
    let files = files_under(data_dir);
    assert!(!files.is_empty(), "no files under {}", data_dir.display());
    for (path, bytes) in &files {
        for n in needles {
            let forms = [
                n.as_bytes().to_vec(),
                hex::encode(n).into_bytes(),
                base64::engine::general_purpose::STANDARD
                    .encode(n)
                    .into_bytes(),
            ];
            for f in forms {
                assert!(
                    !bytes.windows(f.len()).any(|w| w == &f[..]),
                    "{when}: {} contains a secret ({} bytes searched)",
                    path.display(),
                    bytes.len()
                );
            }
        }
    }
}

#[test]
fn no_secret_or_token_on_disk() {
    let dir = TempDir::new("atrest");
    let cfg = config(&dir);
    let mut s = strongroom_config(&cfg);
    let root = init_with_kv2(&s);
    let mut needles = vec![root.clone()];
    for i in 0..20 {
        let v = format!("PLAINTEXT-SECRET-{i}-{}", "x".repeat(i));
        let body = format!("{{\"data\": {{\"password\": \"{v}\"}}}}");
        assert_eq!(
            http(
                "POST",
                &s.url(&format!("secret/data/app/s{i}")),
                Some(&root),
                &[],
                Some(body.as_bytes())
            )
            .status,
            200
        );
        needles.push(v);
    }
    let meta = br#"{"custom_metadata": {"owner": "CUSTOM-META-VALUE-1234"}}"#;
    assert_eq!(
        http(
            "POST",
            &s.url("secret/metadata/app/s0"),
            Some(&root),
            &[],
            Some(meta)
        )
        .status,
        204
    );
    needles.push("CUSTOM-META-VALUE-1234".into());
    let child = http(
        "POST",
        &s.url("auth/token/create"),
        Some(&root),
        &[],
        Some(b"{}"),
    )
    .json();
    needles.push(child["auth"]["client_token"].as_str().unwrap().to_owned());
    needles.push(child["auth"]["accessor"].as_str().unwrap().to_owned());
    let data_dir = dir.path().join("data");
    assert_absent(&data_dir, &needles, "while running");
    assert!(s.stop().success());
    assert_absent(&data_dir, &needles, "after stop");
    // sanity: the check would find a plaintext that is there
    let probe = data_dir.join("probe.txt");
    std::fs::write(&probe, needles[1].as_bytes()).unwrap();
    let found = std::panic::catch_unwind(|| assert_absent(&data_dir, &needles, "probe"));
    assert!(found.is_err(), "the scan finds plaintext when present");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = TempDir::new("crash");
    let cfg = config(&dir);
    let mut s = strongroom_config(&cfg);
    let root = init_with_kv2(&s);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (acked, stop, root) = (acked.clone(), stop.clone(), root.clone());
        let base = s.url("secret/data");
        writers.push(std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let key = format!("w{w}/k{}", i % 50);
                let val = format!("{w}-{i}");
                let body = format!("{{\"data\": {{\"v\": \"{val}\"}}}}");
                match try_http(
                    "POST",
                    &format!("{base}/{key}"),
                    Some(&root),
                    &[],
                    Some(body.as_bytes()),
                ) {
                    Ok(r) if r.status == 200 => acked.lock().unwrap().push((key, val)),
                    Ok(r) => panic!("write failed before the crash: {} {}", r.status, r.body),
                    Err(_) => break, // the server is gone
                }
                i += 1;
            }
        }));
    }
    // let the load run, then crash mid-flight
    let start = Instant::now();
    while acked.lock().unwrap().len() < 400 && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "load produced too few writes: {}",
        acked.len()
    );
    let s = strongroom_config(&cfg);
    assert_acked_present(&s, &root, &acked, "after kill -9");
    let last: std::collections::HashSet<&String> = acked.iter().map(|(k, _)| k).collect();
    eprintln!(
        "{} acknowledged writes over {} keys all present after kill -9",
        acked.len(),
        last.len()
    );
}

/// The SQLite file belongs to the server that opened it: a second server, or an operator
/// command, on the same file while it runs is refused with a clear error (it would write
/// behind the first one's caches), and the file opens again once the server stopped.
#[test]
fn a_database_in_use_is_refused_to_another_process() {
    let dir = TempDir::new("in-use");
    let cfg = config(&dir);
    let mut s = strongroom_config(&cfg);
    let root = init_with_kv2(&s);
    let put = http(
        "POST",
        &s.url("secret/data/app"),
        Some(&root),
        &[],
        Some(br#"{"data": {"k": "v1"}}"#),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let snap = dir.path().join("snap");
    for args in [
        vec!["server", "--config"],
        vec![
            "operator",
            "snapshot",
            "save",
            snap.to_str().unwrap(),
            "--config",
        ],
    ] {
        let out = std::process::Command::new(strongroom_bin())
            .args(&args)
            .arg(&cfg)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran beside the server");
        assert!(
            err.contains("is in use by another process"),
            "{args:?}: {err}"
        );
    }
    assert!(!snap.exists(), "the refused snapshot wrote nothing");
    let read = |s: &Server| {
        let r = http("GET", &s.url("secret/data/app"), Some(&root), &[], None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]["data"]["k"].as_str().unwrap().to_owned()
    };
    assert_eq!(read(&s), "v1", "the running server is unaffected");
    assert!(s.stop().success());
    let s = strongroom_config(&cfg);
    assert_eq!(read(&s), "v1", "the file opens again after the stop");
}
