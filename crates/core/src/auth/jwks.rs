//! Fetching JWT signing keys from a JWKS URL or an OIDC discovery document.
//!
//! HTTPS only (with the configured CA, else the Mozilla roots), except plain HTTP to a
//! loopback address when the server allows it (dev mode, tests). Keys are cached per
//! mount; a token with an unknown `kid` triggers a refresh, at most once per
//! [`REFRESH_INTERVAL`]. A failed fetch is an error: it never lets a token through.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use strongroom_jwt::KeySet;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::auth::jwt::JwtConfig;

pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
const MAX_AGE: Duration = Duration::from_secs(3600);
/// The largest key document accepted (a JWKS of a few dozen keys is a few KiB).
const MAX_BODY: usize = 1024 * 1024;
/// hyper's read buffer, which bounds a response's head.
const MAX_HEAD: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

struct Entry {
    keys: Arc<KeySet>,
    fetched: Instant,
    last_attempt: Instant,
}

#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Parsed `jwt_validation_pubkeys` per mount (parsing a key costs more than using it).
    pems: Mutex<HashMap<String, Arc<KeySet>>>,
}

impl JwksCache {
    pub fn clear(&self) {
        self.entries.lock().clear();
        self.pems.lock().clear();
    }

    pub fn forget(&self, mount_uuid: &str) {
        self.entries.lock().remove(mount_uuid);
        self.pems.lock().remove(mount_uuid);
    }

    /// The configured PEM keys of a mount, parsed once.
    pub fn pem_keys(&self, mount_uuid: &str, pems: &[String]) -> Result<Arc<KeySet>, String> {
        if let Some(k) = self.pems.lock().get(mount_uuid) {
            return Ok(k.clone());
        }
        let keys = Arc::new(KeySet::from_pems(pems).map_err(|e| e.to_string())?);
        self.pems.lock().insert(mount_uuid.to_owned(), keys.clone());
        Ok(keys)
    }

    /// Keys for a mount, fetched or refreshed as needed.
    pub async fn keys_for(
        &self,
        mount_uuid: &str,
        cfg: &JwtConfig,
        kid: Option<&str>,
        allow_http: bool,
    ) -> Result<Arc<KeySet>, String> {
        let cached = {
            let e = self.entries.lock();
            e.get(mount_uuid)
                .map(|x| (x.keys.clone(), x.fetched, x.last_attempt))
        };
        if let Some((keys, fetched, last)) = &cached {
            let fresh = fetched.elapsed() < MAX_AGE;
            let kid_known = kid.is_none_or(|k| keys.has_kid(k));
            if fresh && (kid_known || last.elapsed() < REFRESH_INTERVAL) {
                return Ok(keys.clone());
            }
        }
        {
            let mut e = self.entries.lock();
            if let Some(x) = e.get_mut(mount_uuid) {
                x.last_attempt = Instant::now();
            }
        }
        let keys = Arc::new(self.fetch_for(cfg, allow_http).await?);
        self.entries.lock().insert(
            mount_uuid.to_owned(),
            Entry {
                keys: keys.clone(),
                fetched: Instant::now(),
                last_attempt: Instant::now(),
            },
        );
        Ok(keys)
    }

    /// Fetch the key set a config names (JWKS URL, or discovery → `jwks_uri`).
    pub async fn fetch_for(&self, cfg: &JwtConfig, allow_http: bool) -> Result<KeySet, String> {
        let (url, ca) = if !cfg.jwks_url.is_empty() {
            (cfg.jwks_url.clone(), cfg.jwks_ca_pem.clone())
        } else {
            let base = cfg.oidc_discovery_url.trim_end_matches('/');
            let doc = get_json(
                &format!("{base}/.well-known/openid-configuration"),
                &cfg.oidc_discovery_ca_pem,
                allow_http,
            )
            .await?;
            (jwks_uri_of(&doc, base)?, cfg.oidc_discovery_ca_pem.clone())
        };
        let doc = get_json(&url, &ca, allow_http).await?;
        let keys = KeySet::from_jwks(&doc).map_err(|e| e.to_string())?;
        if keys.keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(keys)
    }
}

/// The `jwks_uri` of an OIDC discovery document, whose `issuer` (when given) must be the
/// discovery URL's base.
pub(crate) fn jwks_uri_of(doc: &Value, base: &str) -> Result<String, String> {
    if let Some(iss) = doc.get("issuer").and_then(Value::as_str) {
        if iss.trim_end_matches('/') != base {
            return Err(format!(
                "issuer {iss:?} in the discovery document does not match {base:?}"
            ));
        }
    }
    doc.get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "discovery document has no jwks_uri".to_owned())
}

/// The JSON a key server's raw `answer` gives, read by the same client as a real fetch
/// over an in-memory stream (the fuzzers' entry).
pub(crate) async fn answer_to_json(answer: Vec<u8>) -> Result<Value, String> {
    use tokio::io::AsyncWriteExt;
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let peer = tokio::spawn(async move {
        let _ = server.write_all(&answer).await;
        let _ = server.shutdown().await;
        // keep the request's bytes flowing until the client is done
        let _ = tokio::io::copy(&mut server, &mut tokio::io::sink()).await;
    });
    let u = parse_url("http://keys.example/jwks")?;
    let body = request(client, &u).await;
    peer.abort();
    serde_json::from_slice(&body?).map_err(|e| e.to_string())
}

/// Where a key document lives: the scheme, host and port to connect to and the request
/// target. Parsed by `http`'s URI parser (hyper's), not by hand.
struct Url {
    https: bool,
    /// The host as the URI spells it (`[::1]` keeps its brackets: it is also the `Host`).
    authority: String,
    host: String,
    port: u16,
    target: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("unsupported URL {url:?}: use https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("invalid URL {url:?}: no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "invalid URL {url:?}: credentials in a URL are refused"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(format!("invalid URL {url:?}: no host"));
    }
    Ok(Url {
        https,
        authority: authority.as_str().to_owned(),
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        host,
        target: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn get_json(url: &str, ca_pem: &str, allow_http: bool) -> Result<Value, String> {
    let u = parse_url(url)?;
    if !(u.https || allow_http && is_loopback(&u.host)) {
        return Err(format!(
            "refusing to fetch {url:?} over plain HTTP: use https://"
        ));
    }
    let body = tokio::time::timeout(TIMEOUT, fetch(&u, ca_pem))
        .await
        .map_err(|_| format!("fetching {url:?} timed out"))?
        .map_err(|e| format!("fetching {url:?}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url:?} did not return JSON: {e}"))
}

async fn fetch(u: &Url, ca_pem: &str) -> Result<Vec<u8>, String> {
    let tcp = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", u.host, u.port))?;
    if !u.https {
        return request(tcp, u).await;
    }
    let mut roots = RootCertStore::empty();
    if ca_pem.trim().is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| format!("invalid CA PEM: {e}"))?)
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
        }
    }
    let cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(u.host.clone())
        .map_err(|e| format!("invalid host {:?}: {e}", u.host))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {}: {e}", u.host))?;
    request(tls, u).await
}

/// Aborts the connection's task when the request is done or abandoned (a timeout).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One GET over hyper's HTTP/1.1 client: the response head is bounded by hyper's buffer
/// ([`MAX_HEAD`]), the body by [`MAX_BODY`] (chunked or not), a redirect is refused (a
/// key URL that moves is a configuration to fix, not a hop to follow), and anything but
/// 200 is an error.
async fn request<S>(io: S, u: &Url) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::body::Bytes;
    use hyper::header;

    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let req = hyper::Request::get(u.target.as_str())
        .header(header::HOST, u.authority.as_str())
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "strongroom")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!("HTTP status {status}: redirects are refused"));
    }
    if status != hyper::StatusCode::OK {
        return Err(format!("HTTP status {status}"));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("response larger than {MAX_BODY} bytes")
            } else {
                format!("reading the response: {e}")
            }
        })?;
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `answer` once on a loopback port and returns its URL.
    async fn one_shot(answer: &'static [u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
            let _ = s.shutdown().await;
        });
        url
    }

    /// Issue 38's crash: a key server answering a chunk size of `ffffffffffffffff` panicked
    /// a worker (`slice index starts at 18 but ends at 17`). Each hostile answer is now an
    /// error from hyper's client; a good chunked answer still reads.
    #[test]
    fn hostile_key_servers_are_errors_not_panics() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let ok = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
            let v = get_json(&one_shot(ok).await, "", true).await.unwrap();
            assert_eq!(v, serde_json::json!({"a": 1}));
            let big: &'static [u8] = Box::leak(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}",
                    MAX_BODY + 1,
                    "x".repeat(MAX_BODY + 1)
                )
                .into_bytes()
                .into_boxed_slice(),
            );
            let long_head: &'static [u8] = Box::leak(
                format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n{{}}", "y".repeat(64 * 1024))
                    .into_bytes()
                    .into_boxed_slice(),
            );
            for (hostile, says) in [
                (
                    &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nx\r\n0\r\n\r\n"[..],
                    "",
                ),
                (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffe\r\n", ""),
                (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nab\r\n", ""),
                (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", ""),
                (b"\xff\xfe\r\n\r\n", ""),
                (b"", ""),
                (b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n", "redirects are refused"),
                (b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n", "500"),
                (big, "larger than"),
                (long_head, ""),
            ] {
                let e = get_json(&one_shot(hostile).await, "", true)
                    .await
                    .unwrap_err();
                assert!(e.contains(says), "{e}");
            }
        });
    }

    #[test]
    fn urls() {
        let u = parse_url("https://gitlab.example.com/oauth/discovery/keys?x=1").unwrap();
        assert!(
            u.https
                && u.host == "gitlab.example.com"
                && u.port == 443
                && u.target == "/oauth/discovery/keys?x=1"
        );
        let u = parse_url("http://127.0.0.1:8200").unwrap();
        assert!(!u.https && u.port == 8200 && u.target == "/");
        let u = parse_url("http://[::1]:8200/k").unwrap();
        assert!(u.host == "::1" && u.authority == "[::1]:8200" && u.target == "/k");
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@host/",
            "not a url",
            "/relative",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn plain_http_refused_unless_loopback_and_allowed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(get_json("http://127.0.0.1:1/jwks", "", false))
            .unwrap_err();
        assert!(e.contains("plain HTTP"), "{e}");
        let e = rt
            .block_on(get_json("http://192.0.2.1/jwks", "", true))
            .unwrap_err();
        assert!(e.contains("plain HTTP"), "{e}");
    }
}
