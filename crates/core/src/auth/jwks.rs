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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::auth::jwt::JwtConfig;

pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
const MAX_AGE: Duration = Duration::from_secs(3600);
const MAX_BODY: usize = 1024 * 1024;
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
            if let Some(iss) = doc.get("issuer").and_then(Value::as_str) {
                if iss.trim_end_matches('/') != base {
                    return Err(format!(
                        "issuer {iss:?} in the discovery document does not match {base:?}"
                    ));
                }
            }
            let uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or("discovery document has no jwks_uri")?;
            (uri.to_owned(), cfg.oidc_discovery_ca_pem.clone())
        };
        let doc = get_json(&url, &ca, allow_http).await?;
        let keys = KeySet::from_jwks(&doc).map_err(|e| e.to_string())?;
        if keys.keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(keys)
    }
}

struct Url {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("unsupported URL {url:?}: use https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.trim_matches(|c| c == '[' || c == ']').to_owned(), p),
            Err(_) => (authority.to_owned(), if https { 443 } else { 80 }),
        },
        _ => (
            authority.trim_matches(|c| c == '[' || c == ']').to_owned(),
            if https { 443 } else { 80 },
        ),
    };
    Ok(Url {
        https,
        host,
        port,
        path: path.to_owned(),
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
        .map_err(|_| format!("fetching {url:?} timed out"))??;
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

async fn request<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, u: &Url) -> Result<Vec<u8>, String> {
    let req = format!("GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\nUser-Agent: strongroom\r\n\r\n", u.path, u.host);
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_BODY {
            return Err("response too large".into());
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("malformed status line")?;
    if status != 200 {
        return Err(format!("HTTP status {status}"));
    }
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = decode_chunked(&body)?;
    }
    Ok(body)
}

/// A chunked body, decoded with checked arithmetic: a chunk size that does not parse, or
/// that runs past the bytes received (`ffffffffffffffff` included), is an error.
fn decode_chunked(body: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let bad = || "malformed chunked body".to_owned();
    let mut out = Vec::new();
    let mut p = body;
    loop {
        let nl = p.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let line = std::str::from_utf8(p.get(..nl).ok_or_else(bad)?).map_err(|_| bad())?;
        // Chunk extensions (`;name=value`) are ignored.
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| bad())?;
        if size == 0 {
            return Ok(out);
        }
        let start = nl.checked_add(2).ok_or_else(bad)?;
        let end = start.checked_add(size).ok_or_else(bad)?;
        out.extend_from_slice(p.get(start..end).ok_or_else(bad)?);
        if out.len() > MAX_BODY {
            return Err("response too large".into());
        }
        // The chunk's own CRLF.
        p = p
            .get(end.checked_add(2).ok_or_else(bad)?..)
            .ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 38's crash: a key server answering a chunk size of `ffffffffffffffff` panicked
    /// a worker (`slice index starts at 18 but ends at 17`).
    #[test]
    fn hostile_chunked_bodies_are_errors_not_panics() {
        assert_eq!(
            decode_chunked(b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n").unwrap(),
            b"abcdef"
        );
        assert_eq!(
            decode_chunked(b"3;x=y\r\nabc\r\n0\r\n\r\n").unwrap(),
            b"abc"
        );
        for hostile in [
            &b"ffffffffffffffff\r\nx\r\n0\r\n\r\n"[..],
            b"fffffffffffffffe\r\n",
            b"10\r\nshort\r\n",
            b"zz\r\nab\r\n",
            b"2\r\nab",
            b"",
            b"\xff\xfe\r\n",
        ] {
            assert!(decode_chunked(hostile).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("https://gitlab.example.com/oauth/discovery/keys").unwrap();
        assert!(
            u.https
                && u.host == "gitlab.example.com"
                && u.port == 443
                && u.path == "/oauth/discovery/keys"
        );
        let u = parse_url("http://127.0.0.1:8200").unwrap();
        assert!(!u.https && u.port == 8200 && u.path == "/");
        assert!(parse_url("ftp://x").is_err());
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
