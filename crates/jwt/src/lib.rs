//! JSON Web Tokens for pipeline identity: parse, verify, and (for development) issue.
//!
//! Verification accepts only asymmetric algorithms — RS256/384/512, PS256/384/512,
//! ES256/384, EdDSA — and only those the caller allow-lists. `none` and every HMAC
//! algorithm are refused before any key is touched, so an HS256 token "signed" with an
//! RSA public key cannot pass.
//!
//! ```
//! use strongroom_jwt::{DevIssuer, Jwt, KeySet};
//! let issuer = DevIssuer::generate().unwrap();
//! let token = issuer.sign(&serde_json::json!({"sub": "x", "exp": 4102444800u64})).unwrap();
//! let keys = KeySet::from_jwks(&issuer.jwks()).unwrap();
//! let jwt = Jwt::parse(&token).unwrap();
//! jwt.verify(&keys, &["RS256"]).unwrap();
//! assert_eq!(jwt.claims().unwrap()["sub"], "x");
//! assert_eq!(jwt.claims_named(["sub", "aud"]).unwrap().len(), 1);
//! ```
//!
//! Architecture invariant: pure — no I/O and no clock; the caller fetches keys and
//! checks times.

#![forbid(unsafe_code)]

mod glob;
mod scan;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _, RsaPublicKeyComponents, VerificationAlgorithm};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};

pub use glob::glob_match;

/// Longest token accepted (GitLab's CI ID tokens are ~1.5 KiB).
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JwtError {
    #[error("token is too large")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("token signed with unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("no known key matches the token")]
    NoMatchingKey,
    #[error("failed to verify id token signature")]
    BadSignature,
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// A parsed, not yet verified, JWT.
///
/// The claims are checked to be one JSON object at parse time but left unparsed: a login
/// reads a handful of a CI ID token's ~30 claims, so [`Jwt::claims_named`] parses only
/// those and [`Jwt::claims`] all of them. Either way a claim named twice reads as its last
/// value, as a JSON map would.
#[derive(Debug, Clone)]
pub struct Jwt {
    header: Header,
    /// The decoded claims object.
    payload: Vec<u8>,
    /// Each top-level claim: its name and where its value lies in `payload`.
    index: Vec<(ClaimName, std::ops::Range<usize>)>,
    signing_input: String,
    signature: Vec<u8>,
}

/// What verification reads of the JOSE header: `alg` and `kid` when they are strings.
#[derive(Debug, Clone)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

impl Header {
    /// The header object `b`, scanned like the claims (no value is built but these two);
    /// a member named twice is refused, as a struct deserializer refuses it.
    fn parse(b: &[u8]) -> Result<Header, JwtError> {
        let mut alg: Option<Option<String>> = None;
        let mut kid: Option<Option<String>> = None;
        for (name, r) in scan::members(b).ok_or(JwtError::Malformed)? {
            let slot = match name.bytes(b) {
                b"alg" => &mut alg,
                b"kid" => &mut kid,
                _ => continue,
            };
            if slot.is_some() {
                return Err(JwtError::Malformed);
            }
            *slot = Some(serde_json::from_slice::<String>(&b[r]).ok());
        }
        Ok(Header {
            alg: alg.flatten(),
            kid: kid.flatten(),
        })
    }
}

#[derive(Debug, Clone)]
enum ClaimName {
    /// The name as it appears in `payload` (no escapes).
    At(std::ops::Range<usize>),
    /// A name written with escapes, unescaped.
    Owned(String),
}

impl ClaimName {
    /// The name, unescaped; `within` is the object it was scanned in.
    #[inline]
    fn bytes<'a>(&'a self, within: &'a [u8]) -> &'a [u8] {
        match self {
            ClaimName::At(r) => &within[r.clone()],
            ClaimName::Owned(s) => s.as_bytes(),
        }
    }
}

/// Algorithms we can verify. HMAC and `none` are deliberately absent.
const ASYMMETRIC: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

fn b64(s: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)
}

impl Jwt {
    pub fn parse(raw: &str) -> Result<Jwt, JwtError> {
        if raw.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TooLarge);
        }
        let raw = raw.trim();
        let mut parts = raw.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header = Header::parse(&b64(h)?)?;
        let payload = b64(c)?;
        let index = scan::members(&payload).ok_or(JwtError::Malformed)?;
        Ok(Jwt {
            header,
            payload,
            index,
            signing_input: raw[..h.len() + 1 + c.len()].to_owned(),
            signature: b64(s)?,
        })
    }

    #[inline]
    fn name<'a>(&'a self, n: &'a ClaimName) -> &'a [u8] {
        n.bytes(&self.payload)
    }

    fn value(&self, r: &std::ops::Range<usize>) -> Result<Value, JwtError> {
        serde_json::from_slice(&self.payload[r.clone()]).map_err(|_| JwtError::Malformed)
    }

    /// The claims whose top-level names are in `names`, parsed; the rest are not.
    pub fn claims_named<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Map<String, Value>, JwtError> {
        let mut out = Map::new();
        for want in names {
            if out.contains_key(want) {
                continue;
            }
            let last = self
                .index
                .iter()
                .rev()
                .find(|(n, _)| self.name(n) == want.as_bytes());
            if let Some((_, r)) = last {
                out.insert(want.to_owned(), self.value(r)?);
            }
        }
        Ok(out)
    }

    /// Every claim, parsed.
    pub fn claims(&self) -> Result<Map<String, Value>, JwtError> {
        let mut out = Map::new();
        for (n, r) in &self.index {
            let name = String::from_utf8_lossy(self.name(n)).into_owned();
            out.insert(name, self.value(r)?);
        }
        Ok(out)
    }

    pub fn alg(&self) -> &str {
        self.header.alg.as_deref().unwrap_or("")
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Verify the signature with a key from `keys`, using only an algorithm in `allowed`.
    pub fn verify(&self, keys: &KeySet, allowed: &[&str]) -> Result<(), JwtError> {
        let alg = self.alg();
        if !ASYMMETRIC.contains(&alg) || !allowed.contains(&alg) {
            return Err(JwtError::UnsupportedAlgorithm(alg.to_owned()));
        }
        let candidates: Vec<&PublicKey> = match self.kid() {
            Some(kid) if keys.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) => keys
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            // A kid we do not know: only keys without a kid (PEM keys) may still match.
            Some(_) => keys.keys.iter().filter(|k| k.kid.is_none()).collect(),
            None => keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(JwtError::NoMatchingKey);
        }
        for k in candidates {
            if k.verify(alg, self.signing_input.as_bytes(), &self.signature) {
                return Ok(());
            }
        }
        Err(JwtError::BadSignature)
    }
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    /// DER: SubjectPublicKeyInfo or PKCS#1 RSAPublicKey.
    Der(Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed point (0x04 ‖ x ‖ y) and curve name.
    Ec {
        point: Vec<u8>,
        crv: String,
    },
    Ed25519(Vec<u8>),
}

/// One verification key. Parsed into aws-lc form once per algorithm, on first use.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    material: KeyMaterial,
    parsed: [std::sync::OnceLock<Option<signature::ParsedPublicKey>>; 9],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn alg_for(alg: &str) -> Option<&'static dyn VerificationAlgorithm> {
    if let Some(p) = rsa_params(alg) {
        return Some(p);
    }
    Some(match alg {
        "ES256" => &signature::ECDSA_P256_SHA256_FIXED,
        "ES384" => &signature::ECDSA_P384_SHA384_FIXED,
        "EdDSA" => &signature::ED25519,
        _ => return None,
    })
}

fn rsa_params(alg: &str) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
        "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

impl PublicKey {
    fn new(kid: Option<String>, material: KeyMaterial) -> PublicKey {
        PublicKey {
            kid,
            material,
            parsed: Default::default(),
        }
    }

    fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        let Some(i) = ASYMMETRIC.iter().position(|a| *a == alg) else {
            return false;
        };
        match self.parsed[i].get_or_init(|| self.parse_for(alg)) {
            Some(k) => k.verify_sig(msg, sig).is_ok(),
            None => false,
        }
    }

    fn parse_for(&self, alg: &str) -> Option<signature::ParsedPublicKey> {
        match &self.material {
            KeyMaterial::Der(der) => signature::ParsedPublicKey::new(alg_for(alg)?, der).ok(),
            KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .to_parsed_public_key(rsa_params(alg)?)
            .ok(),
            KeyMaterial::Ec { point, crv } => {
                let a: &'static dyn VerificationAlgorithm = match (alg, crv.as_str()) {
                    ("ES256", "P-256") => &signature::ECDSA_P256_SHA256_FIXED,
                    ("ES384", "P-384") => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return None,
                };
                signature::ParsedPublicKey::new(a, point).ok()
            }
            KeyMaterial::Ed25519(raw) if alg == "EdDSA" => {
                signature::ParsedPublicKey::new(&signature::ED25519, raw).ok()
            }
            KeyMaterial::Ed25519(_) => None,
        }
    }

    /// A PEM public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, JwtError> {
        let der = public_key_der(pem)
            .ok_or_else(|| JwtError::InvalidKey("not a PEM public key".into()))?;
        // Check it parses as some key type we support.
        let ok = ["RS256", "ES256", "ES384", "EdDSA"].iter().any(|a| {
            alg_for(a).is_some_and(|alg| signature::ParsedPublicKey::new(alg, &der).is_ok())
        });
        if !ok {
            return Err(JwtError::InvalidKey(
                "unsupported or malformed public key".into(),
            ));
        }
        Ok(PublicKey::new(None, KeyMaterial::Der(der)))
    }

    /// A JWK (RSA, EC P-256/P-384, OKP Ed25519). Symmetric (`oct`) keys are refused.
    pub fn from_jwk(jwk: &Value) -> Result<PublicKey, JwtError> {
        let s = |k: &str| jwk.get(k).and_then(Value::as_str);
        let kid = s("kid").map(str::to_owned);
        if s("use").is_some_and(|u| u != "sig") {
            return Err(JwtError::InvalidKey("key is not for signatures".into()));
        }
        let field = |k: &str| {
            s(k).ok_or_else(|| JwtError::InvalidKey(format!("JWK lacks {k}")))
                .and_then(|v| b64(v).map_err(|_| JwtError::InvalidKey(format!("bad {k}"))))
        };
        let material = match s("kty") {
            Some("RSA") => KeyMaterial::Rsa {
                n: field("n")?,
                e: field("e")?,
            },
            Some("EC") => {
                let crv = s("crv").unwrap_or_default().to_owned();
                let (x, y) = (field("x")?, field("y")?);
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                KeyMaterial::Ec { point, crv }
            }
            Some("OKP") if s("crv") == Some("Ed25519") => KeyMaterial::Ed25519(field("x")?),
            Some(other) => {
                return Err(JwtError::InvalidKey(format!(
                    "unsupported key type {other}"
                )))
            }
            None => return Err(JwtError::InvalidKey("JWK lacks kty".into())),
        };
        Ok(PublicKey::new(kid, material))
    }
}

/// The DER of a PEM public key, decoded by `rustls-pki-types`. A PKCS#1 `RSA PUBLIC KEY`
/// (which that crate does not name) is read as the same base64 under the SPKI label: the
/// DER is then checked against the key parsers, as OpenBao's `ParsePublicKeyPEM` tries
/// PKIX then PKCS#1 whatever the label.
fn public_key_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let relabelled;
    let pem = if pem.contains("-----BEGIN RSA PUBLIC KEY-----") {
        relabelled = pem
            .replace(
                "-----BEGIN RSA PUBLIC KEY-----",
                "-----BEGIN PUBLIC KEY-----",
            )
            .replace("-----END RSA PUBLIC KEY-----", "-----END PUBLIC KEY-----");
        relabelled.as_str()
    } else {
        pem
    };
    rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|d| d.as_ref().to_vec())
}

/// The keys a token may be signed with.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

impl KeySet {
    pub fn from_pems<S: AsRef<str>>(pems: &[S]) -> Result<KeySet, JwtError> {
        Ok(KeySet {
            keys: pems
                .iter()
                .map(|p| PublicKey::from_pem(p.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// A JWKS document (`{"keys": [...]}`); keys we cannot use (encryption, `oct`) are skipped.
    pub fn from_jwks(doc: &Value) -> Result<KeySet, JwtError> {
        let arr = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwtError::InvalidKey("JWKS lacks keys".into()))?;
        Ok(KeySet {
            keys: arr
                .iter()
                .filter_map(|k| PublicKey::from_jwk(k).ok())
                .collect(),
        })
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// An RS256 signer for development: stands in for GitLab's CI ID token issuer.
pub struct DevIssuer {
    key: RsaKeyPair,
    pkcs8: zeroize::Zeroizing<Vec<u8>>,
    pub kid: String,
}

impl DevIssuer {
    pub fn generate() -> Result<DevIssuer, JwtError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| JwtError::InvalidKey("RSA key generation failed".into()))?;
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
            .map_err(|_| JwtError::InvalidKey("cannot encode key".into()))?;
        Self::from_pkcs8(der.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<DevIssuer, JwtError> {
        let key = RsaKeyPair::from_pkcs8(der).map_err(|e| JwtError::InvalidKey(e.to_string()))?;
        let pc = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &pc.n);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(DevIssuer {
            key,
            pkcs8: zeroize::Zeroizing::new(der.to_vec()),
            kid,
        })
    }

    /// The private key as PEM (PKCS#8), for saving.
    pub fn to_pem(&self) -> zeroize::Zeroizing<String> {
        let b = STANDARD.encode(&self.pkcs8[..]);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        zeroize::Zeroizing::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        ))
    }

    pub fn from_pem(pem: &str) -> Result<DevIssuer, JwtError> {
        use rustls_pki_types::pem::PemObject;
        use zeroize::Zeroize;
        let mut der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| JwtError::InvalidKey("not a PKCS#8 PEM key".into()))?;
        let issuer = Self::from_pkcs8(der.secret_pkcs8_der());
        der.zeroize();
        issuer
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> Value {
        let pc = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        json!({ "keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&pc.n), "e": URL_SAFE_NO_PAD.encode(&pc.e),
        }]})
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        let pc = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(&pc)
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default();
        let b = STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// Sign `claims` as an RS256 JWT with this issuer's `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        self.sign_with_header(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// Sign with an arbitrary header (tests use it to forge bad tokens).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).map_err(|_| JwtError::Malformed)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?)
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JwtError::InvalidKey("signing failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// HMAC-SHA256 "signature" over header.claims with `key` (for attack tests only).
pub fn forge_hs256(key: &[u8], claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// An unsigned token with `alg: none` (for attack tests only).
pub fn forge_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 38's crash: an END line before the BEGIN line panicked (`begin > end`). Now
    /// every such text is refused.
    #[test]
    fn malformed_pem_is_refused_not_panicked() {
        for pem in [
            "-----END PUBLIC KEY-----\nAAAA\n-----BEGIN PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY----------END PUBLIC KEY-----",
            "-----END RSA PUBLIC KEY----------BEGIN RSA PUBLIC KEY-----",
            "-----BEGIN PUBLIC KEY-----\n\u{e9}\u{1f512}\n-----END PUBLIC KEY-----",
            "",
        ] {
            assert!(PublicKey::from_pem(pem).is_err(), "{pem:?}");
        }
    }

    fn claims() -> Value {
        json!({"sub": "project_path:g/p:ref_type:branch:ref:main", "exp": 4102444800u64})
    }

    #[test]
    fn round_trip_with_jwks_and_pem() {
        let iss = DevIssuer::generate().unwrap();
        let tok = iss.sign(&claims()).unwrap();
        let jwt = Jwt::parse(&tok).unwrap();
        jwt.verify(&KeySet::from_jwks(&iss.jwks()).unwrap(), &["RS256"])
            .unwrap();
        jwt.verify(&KeySet::from_pems(&[iss.public_pem()]).unwrap(), &["RS256"])
            .unwrap();
        let again = DevIssuer::from_pem(&iss.to_pem()).unwrap();
        assert_eq!(again.kid, iss.kid);
        // The same key as PKCS#1 (`RSA PUBLIC KEY`), as OpenBao also accepts it.
        let pkcs1 = STANDARD.encode(iss.key.public_key().as_ref());
        let pem =
            format!("-----BEGIN RSA PUBLIC KEY-----\n{pkcs1}\n-----END RSA PUBLIC KEY-----\n");
        jwt.verify(&KeySet::from_pems(&[pem]).unwrap(), &["RS256"])
            .unwrap();
    }

    #[test]
    fn refuses_none_hmac_and_wrong_keys() {
        let iss = DevIssuer::generate().unwrap();
        let keys = KeySet::from_pems(&[iss.public_pem()]).unwrap();
        let none = Jwt::parse(&forge_none(&claims())).unwrap();
        assert_eq!(
            none.verify(&keys, &["RS256", "none"]),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
        let hs = Jwt::parse(&forge_hs256(iss.public_pem().as_bytes(), &claims())).unwrap();
        assert!(matches!(
            hs.verify(&keys, &["RS256", "HS256"]),
            Err(JwtError::UnsupportedAlgorithm(_))
        ));
        let other = DevIssuer::generate().unwrap();
        let forged = Jwt::parse(&other.sign(&claims()).unwrap()).unwrap();
        assert_eq!(
            forged.verify(&keys, &["RS256"]),
            Err(JwtError::BadSignature)
        );
        let jwks = KeySet::from_jwks(&iss.jwks()).unwrap();
        assert_eq!(
            forged.verify(&jwks, &["RS256"]),
            Err(JwtError::NoMatchingKey),
            "unknown kid"
        );
        let ok = Jwt::parse(&iss.sign(&claims()).unwrap()).unwrap();
        assert!(
            matches!(
                ok.verify(&keys, &["ES256"]),
                Err(JwtError::UnsupportedAlgorithm(_))
            ),
            "not allow-listed"
        );
        // tampered claims
        let tok = iss.sign(&claims()).unwrap();
        let mut parts: Vec<String> = tok.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"evil","exp":4102444800}"#);
        assert_eq!(
            Jwt::parse(&parts.join("."))
                .unwrap()
                .verify(&keys, &["RS256"]),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            Jwt::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err(),
            JwtError::TooLarge
        );
        assert_eq!(Jwt::parse("a.b").unwrap_err(), JwtError::Malformed);
    }

    /// A token whose claims are `payload` verbatim (the signature is not checked here).
    fn with_payload(payload: &str) -> Result<Jwt, JwtError> {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        Jwt::parse(&format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode(payload)))
    }

    #[test]
    fn claims_read_like_a_json_map() {
        let payload = r#"{"sub":"a","n":{"x":[1,2]},"dup":1,"dup":2,"esc\u0061ped":"\u00e9","aud":["p","q"]}"#;
        let jwt = with_payload(payload).unwrap();
        let all: Map<String, Value> = serde_json::from_str(payload).unwrap();
        assert_eq!(jwt.claims().unwrap(), all);
        let some = jwt
            .claims_named(["dup", "escaped", "missing", "n", "dup"])
            .unwrap();
        assert_eq!(
            Value::Object(some),
            json!({"dup": 2, "escaped": "é", "n": {"x": [1, 2]}})
        );
        for bad in [
            r#"[1,2]"#,
            r#""s""#,
            r#"{"a":}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
        ] {
            assert_eq!(with_payload(bad).unwrap_err(), JwtError::Malformed, "{bad}");
        }
    }

    /// A token with header `header` verbatim and claims `{}`.
    fn with_header(header: &str) -> Result<Jwt, JwtError> {
        Jwt::parse(&format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode("{}")
        ))
    }

    #[test]
    fn the_header_gives_alg_and_kid_when_they_are_strings() {
        let j = with_header(r#"{"typ":"JWT","kid":"k-1","alg":"RS256","x":{"alg":1}}"#).unwrap();
        assert_eq!((j.alg(), j.kid()), ("RS256", Some("k-1")));
        let j = with_header(r#"{"alg":["RS256"],"kid":7}"#).unwrap();
        assert_eq!((j.alg(), j.kid()), ("", None));
        let j = with_header("{}").unwrap();
        assert_eq!((j.alg(), j.kid()), ("", None));
        for bad in [
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"kid":"a","kid":"b"}"#,
            r#"["RS256"]"#,
            r#"{"alg":"RS256""#,
            r#"{"alg":"RS256"} {}"#,
        ] {
            assert_eq!(with_header(bad).unwrap_err(), JwtError::Malformed, "{bad}");
        }
    }

    #[test]
    fn oct_keys_are_skipped() {
        let set = KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})).unwrap();
        assert!(set.keys.is_empty());
    }
}
