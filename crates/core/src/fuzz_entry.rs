//! Entry points for the fuzzers (`fuzz/`) and their regression tests
//! (`crates/fuzzing`): the decoders of what the core reads back from storage, reached
//! without a running server. Each takes any bytes and must return, never panic.
//! Not an API: nothing outside the fuzzing harness calls these.

/// A namespace record (binary, or the JSON of older records).
pub fn namespace_record(b: &[u8]) -> bool {
    crate::namespace::parse_record(b).is_ok()
}

/// A namespace's compact body and its mount table, as read by every request's routing.
pub fn namespace_compact(b: &[u8]) -> bool {
    let whole = crate::namespace::compact::decode(b, "fuzz/").is_some();
    let head = crate::namespace::compact::decode_head(b, "fuzz/").is_some();
    let table = crate::namespace::compact::decode_table(b).is_some();
    let found = crate::namespace::compact::find_mount(b, "secret/data/x").is_some();
    whole || head || table || found
}

/// A token entry: a batch token's plaintext (compact or JSON) and a service token's
/// stored JSON record.
pub fn token_record(b: &[u8]) -> bool {
    let batch = crate::token::decode_batch(b).is_some();
    let service = serde_json::from_slice::<crate::TokenEntry>(b).is_ok();
    batch || service
}

/// A kv-v2 metadata record (binary, or JSON).
pub fn kv_metadata_record(b: &[u8]) -> bool {
    crate::engines::kv::v2::parses_as_meta(b)
}

/// An unseal key share as `sys/unseal` receives it (hex or base64).
pub fn unseal_share(s: &str) -> Option<Vec<u8>> {
    crate::sys::decode_share(s).ok().map(|k| k.to_vec())
}

/// A key server's raw HTTP answer, read by the JWKS client, then as a discovery document
/// and as a JWKS. Needs a Tokio runtime.
pub async fn key_server_answer(answer: Vec<u8>) -> bool {
    let Ok(doc) = crate::auth::jwks::answer_to_json(answer).await else {
        return false;
    };
    let uri = crate::auth::jwks::jwks_uri_of(&doc, "https://gitlab.example.com").is_ok();
    let keys = strongroom_jwt::KeySet::from_jwks(&doc).is_ok();
    uri || keys
}
