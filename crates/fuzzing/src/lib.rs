//! The bodies of the fuzz targets. `fuzz/fuzz_targets/<name>.rs` calls [`run`] with its
//! name under cargo-fuzz (nightly); `tests/regressions.rs` calls the same function on
//! every file under `fuzz/regressions/<name>/` (the crash inputs the fuzzers found, kept
//! as regression tests) and `fuzz/seeds/<name>/`, on stable, in the normal suite.
//!
//! Architecture invariant: a target returns for any input; a panic, an abort, a hang or
//! unbounded memory is a finding. Each target reaches the code it tests through the same
//! entry a request or a start-up would: the HTTP target through a real connection to the
//! real edge, the kv-v2 target through `Core::handle`.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use strongroom_core::{Core, CoreConfig, Operation, Request, Seal};

/// Every target, by the name its files and folders use.
pub const TARGETS: &[&str] = &[
    "http_request",
    "jwt",
    "key_documents",
    "policy",
    "config",
    "shamir",
    "kv2_request",
    "storage_records",
];

/// Set when any thread panics: a panic in a server task (which Tokio would catch and the
/// client see only as a closed connection) is a finding too.
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn watch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Runs target `name` on `data`; panics if anything panicked meanwhile, in any thread or
/// task. Unknown names panic (a harness error, not an input).
pub fn run(name: &str, data: &[u8]) {
    watch_panics();
    run_target(name, data);
    if PANICKED.swap(false, std::sync::atomic::Ordering::SeqCst) {
        panic!("{name}: a panic while serving this input (its message is above)");
    }
}

fn run_target(name: &str, data: &[u8]) {
    match name {
        "http_request" => http_request(data),
        "jwt" => jwt(data),
        "key_documents" => key_documents(data),
        "policy" => policy(data),
        "config" => config(data),
        "shamir" => shamir(data),
        "kv2_request" => kv2_request(data),
        "storage_records" => storage_records(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// A policy, as `sys/policies/acl` receives it (HCL or JSON).
pub fn policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = strongroom_acl::Policy::parse("fuzz", text);
    }
}

/// A JWT: parsed, then verified against an RSA and an EC key with every algorithm we
/// accept and two we refuse.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jwt) = strongroom_jwt::Jwt::parse(text) else {
        return;
    };
    KEYS.with(|keys| {
        let _ = jwt.verify(keys, &["RS256", "ES256", "EdDSA", "HS256", "none"]);
    });
}

thread_local! {
    static KEYS: strongroom_jwt::KeySet = {
        let iss = strongroom_jwt::DevIssuer::generate().expect("an RSA key");
        strongroom_jwt::KeySet::from_jwks(&iss.jwks()).expect("the issuer's own JWKS")
    };
}

/// Key documents: the first byte chooses how the rest arrives — a key server's raw HTTP
/// answer (read by the JWKS client, then as discovery document and JWKS), a JWKS as
/// JSON, or PEM public keys.
pub fn key_documents(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    match how % 3 {
        0 => {
            let answer = rest.to_vec();
            runtime().block_on(async {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    strongroom_core::fuzz_entry::key_server_answer(answer),
                )
                .await;
            });
        }
        1 => {
            if let Ok(doc) = serde_json::from_slice::<Value>(rest) {
                let _ = strongroom_jwt::KeySet::from_jwks(&doc);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = strongroom_jwt::PublicKey::from_pem(text);
                let _ = strongroom_jwt::DevIssuer::from_pem(text);
            }
        }
    }
}

/// A server config: the first byte chooses TOML, OpenBao JSON or OpenBao HCL.
pub fn config(data: &[u8]) {
    use strongroom::config::{parse, ConfigFormat};
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match how % 3 {
        0 => ConfigFormat::Toml,
        1 => ConfigFormat::Json,
        _ => ConfigFormat::Hcl,
    };
    let _ = parse(text, format, Path::new("/srv/strongroom"));
}

/// Unseal key shares: the first byte is the threshold, the rest is shares separated by
/// newlines, each as `sys/unseal` receives it (hex or base64), then recombined.
pub fn shamir(data: &[u8]) {
    let Some((&threshold, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let shares: Vec<_> = text
        .split('\n')
        .filter_map(strongroom_core::fuzz_entry::unseal_share)
        .map(zeroize::Zeroizing::new)
        .collect();
    let _ = strongroom_barrier::shamir::combine(&shares, threshold);
}

/// The records read back from storage: the first byte chooses a namespace record, a
/// namespace's compact body and mount table, a token entry, or kv-v2 metadata.
pub fn storage_records(data: &[u8]) {
    use strongroom_core::fuzz_entry as e;
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    match how % 4 {
        0 => {
            e::namespace_record(rest);
        }
        1 => {
            e::namespace_compact(rest);
        }
        2 => {
            e::token_record(rest);
        }
        _ => {
            e::kv_metadata_record(rest);
        }
    }
}

/// A kv-v2 request with the root token: the first byte chooses the operation and path,
/// the rest is its JSON body.
pub fn kv2_request(data: &[u8]) {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let key = ["a", "b/c", "a/", "x y"][usize::from(how >> 4) % 4];
    let (op, path) = match how % 10 {
        0 => (Operation::Update, format!("secret/data/{key}")),
        1 => (Operation::Patch, format!("secret/data/{key}")),
        2 => (Operation::Update, format!("secret/metadata/{key}")),
        3 => (Operation::Patch, format!("secret/metadata/{key}")),
        4 => (Operation::Update, format!("secret/delete/{key}")),
        5 => (Operation::Update, format!("secret/undelete/{key}")),
        6 => (Operation::Update, format!("secret/destroy/{key}")),
        7 => (Operation::Update, "secret/config".to_owned()),
        8 => (Operation::Read, format!("secret/data/{key}")),
        _ => (Operation::Delete, format!("secret/metadata/{key}")),
    };
    with_core(|core| async move {
        let req = Request {
            operation: Some(op),
            is_write: matches!(op, Operation::Update | Operation::Patch),
            path,
            data: body,
            token: Some(ROOT.to_owned()),
            ..Default::default()
        };
        let _ = core.handle(req).await;
        // and read back what it left
        let _ = core
            .handle(Request {
                operation: Some(Operation::Read),
                path: format!("secret/metadata/{key}"),
                token: Some(ROOT.to_owned()),
                data: Map::new(),
                ..Default::default()
            })
            .await;
    });
}

/// Raw bytes sent to the real HTTP edge over an in-memory connection: request line,
/// path, query, headers, form and JSON bodies, any number of pipelined requests.
pub fn http_request(data: &[u8]) {
    let input = data.to_vec();
    with_app(|conns| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        if conns.send(server).await.is_err() {
            return;
        }
        let exchange = async {
            let (mut rd, mut wr) = tokio::io::split(&mut client);
            let send = async {
                let _ = wr.write_all(&input).await;
                let _ = wr.shutdown().await;
            };
            let mut out = Vec::new();
            let recv = rd.read_to_end(&mut out);
            let _ = tokio::join!(send, recv);
        };
        if tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .is_err()
        {
            panic!("the server neither answered nor closed within 10 s");
        }
    });
}

/// The root token of the fuzzers' cores (fixed, so a seed can carry it).
pub const ROOT: &str = "root";

/// Inputs a core serves before it is replaced by a fresh one (memory stays bounded).
const CORE_LIFETIME: u32 = 20_000;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime")
    })
}

async fn fresh_core() -> Arc<Core> {
    let core = Core::new(
        Arc::new(strongroom_storage::MemoryStorage::new()),
        CoreConfig {
            dev_mount_secret: true,
            ..CoreConfig::default()
        },
        Seal::Static(strongroom_barrier::seal::StaticSeal {
            current_key_id: "fuzz".into(),
            current: strongroom_barrier::UnsealKey::generate(),
            previous: None,
        }),
    );
    core.initialize(1, 1, Some(ROOT.to_owned()))
        .await
        .expect("a fresh core initializes");
    core
}

thread_local! {
    static CORE: RefCell<Option<(Arc<Core>, u32)>> = const { RefCell::new(None) };
    static APP: RefCell<Option<(tokio::sync::mpsc::Sender<tokio::io::DuplexStream>, u32)>> =
        const { RefCell::new(None) };
}

fn with_core<F, Fut>(f: F)
where
    F: FnOnce(Arc<Core>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = runtime();
    let core = CORE.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some((core, n)) if *n < CORE_LIFETIME => {
                *n += 1;
                core.clone()
            }
            _ => {
                let core = rt.block_on(fresh_core());
                *c = Some((core.clone(), 1));
                core
            }
        }
    });
    rt.block_on(f(core));
}

/// Connections handed to a real `strongroom_http::serve` loop.
struct Conns(tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>);

impl strongroom_http::Listener for Conns {
    type Io = tokio::io::DuplexStream;

    async fn accept(&mut self) -> (tokio::io::DuplexStream, std::net::SocketAddr) {
        match self.0.recv().await {
            Some(io) => (io, std::net::SocketAddr::from(([127, 0, 0, 1], 40000))),
            None => std::future::pending().await,
        }
    }
}

fn with_app<F, Fut>(f: F)
where
    F: FnOnce(tokio::sync::mpsc::Sender<tokio::io::DuplexStream>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let rt = runtime();
    let tx = APP.with(|a| {
        let mut a = a.borrow_mut();
        match a.as_mut() {
            Some((tx, n)) if *n < CORE_LIFETIME => {
                *n += 1;
                tx.clone()
            }
            _ => {
                let core = rt.block_on(fresh_core());
                let app = strongroom_http::App::new(core, strongroom_http::HttpLimits::default());
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                // the previous server ends when its sender is dropped below
                rt.spawn(strongroom_http::serve(
                    Conns(rx),
                    app,
                    std::future::pending(),
                ));
                *a = Some((tx.clone(), 1));
                tx
            }
        }
    });
    rt.block_on(f(tx));
}

/// Every file under `dir`, for the regression tests.
pub fn inputs(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    out.sort();
    out
}
