//! A compact binary form of a namespace record: the stored record's body (after a format
//! byte and the path, see `record_bytes` in the parent module) and the entry of the
//! registry's second-tier cache of every namespace it has resolved (see
//! [`super::Records`]), whose key is the path.
//!
//! ~90 B for a project namespace with one mount, against ~500 B of JSON: strings are
//! length-prefixed, UUIDs in canonical form take 16 bytes, numbers are varints and a
//! default mount config is six zero bytes. Records are stored in this layout, so it
//! changes only together with the stored record's format byte. The path is not included.

use super::Namespace;
use crate::codec::{put_len, put_map, put_str, put_varint, unzigzag, zigzag, Reader};
use crate::mounts::{MountConfig, MountEntry, MountTable};

pub fn encode(ns: &Namespace) -> Vec<u8> {
    let mut b = Vec::with_capacity(96);
    put_str(&mut b, &ns.id);
    put_map(&mut b, &ns.custom_metadata);
    put_uuid(&mut b, &ns.uuid);
    b.push(match ns.has_children {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    });
    match &ns.mounts {
        None => b.push(0),
        Some(t) => {
            b.push(1);
            put_len(&mut b, t.entries.len());
            for e in &t.entries {
                put_mount(&mut b, e);
            }
        }
    }
    b
}

/// The record encoded by [`encode`], with `path` as its path; `None` if `bytes` is not one.
pub fn decode(bytes: &[u8], path: &str) -> Option<Namespace> {
    let (mut ns, at) = decode_head(bytes, path)?;
    if let Some(at) = at {
        ns.mounts = Some(decode_table(&bytes[at..])?);
    }
    Some(ns)
}

/// A record encoded by [`encode`], decoded but for its secrets-engine table, which stays in
/// `bytes`: the namespace (its `mounts` `None`) and where the table starts, if the record
/// carries one ([`decode_table`], [`find_mount`]). `None` if what precedes the table does
/// not decode. The table itself is not checked here: for bytes [`encode`] wrote (the
/// registry's compact records are nothing else), reading it cannot fail, and a table that
/// did not decode would route nothing and list no mount.
pub fn decode_head(bytes: &[u8], path: &str) -> Option<(Namespace, Option<usize>)> {
    let mut r = Reader::new(bytes);
    let id = r.string()?;
    let custom_metadata = r.map()?;
    let uuid = read_uuid(&mut r)?;
    let has_children = match r.byte()? {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => return None,
    };
    let at = match r.byte()? {
        0 if r.is_done() => None,
        1 => Some(bytes.len() - r.remaining()),
        _ => return None,
    };
    let ns = Namespace {
        id,
        path: path.to_owned(),
        custom_metadata,
        uuid,
        has_children,
        mounts: None,
    };
    Some((ns, at))
}

/// The secrets-engine table at the start of `table` (from [`decode_head`]).
pub fn decode_table(table: &[u8]) -> Option<MountTable> {
    let mut r = Reader::new(table);
    let n = r.len()?;
    let mut entries = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        entries.push(read_mount(&mut r)?);
    }
    r.is_done().then_some(MountTable { entries })
}

/// What a request routed to a secrets engine needs of its mount, read in place from a
/// compact record's table.
pub struct MountRef<'a> {
    /// The mount's path, as bytes: matching a request path needs no UTF-8 check.
    pub path: &'a [u8],
    uuid: UuidRef<'a>,
    pub default_lease_ttl: i64,
    /// The mount's type, as bytes.
    kind: &'a [u8],
    /// The mount's options as encoded (`put_map`), read when the engine is chosen.
    options: Options<'a>,
}

/// A mount's options as `put_map` encoded them, read in place.
struct Options<'a>(&'a [u8]);

impl crate::engines::MountOptions for Options<'_> {
    fn option(&self, key: &str) -> Option<&str> {
        let mut r = Reader::new(self.0);
        for _ in 0..r.len()? {
            let (k, v) = (r.bytes()?, r.bytes()?);
            if k == key.as_bytes() {
                return std::str::from_utf8(v).ok();
            }
        }
        None
    }
}

enum UuidRef<'a> {
    Raw(&'a [u8; 16]),
    Text(&'a str),
}

impl MountRef<'_> {
    /// What serves the mount, chosen by its type and options.
    pub fn engine(&self) -> &'static dyn crate::engines::SecretsEngine {
        let kind = std::str::from_utf8(self.kind).unwrap_or_default();
        crate::engines::engine_for(kind, &self.options)
    }

    /// The mount's UUID as text, as [`MountEntry::uuid`] holds it.
    pub fn with_uuid<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        match self.uuid {
            UuidRef::Raw(raw) => f(crate::util::uuid_text_in(raw, &mut [0; 36])),
            UuidRef::Text(s) => f(s),
        }
    }
}

/// The mount of `table` (from [`decode_head`]) whose path is the longest prefix of `path`
/// (or `path` itself without its slash), as [`MountTable::longest_match_index`] picks it,
/// without decoding the table.
/// `None` also if the table does not decode.
pub fn find_mount<'a>(table: &'a [u8], path: &str) -> Option<MountRef<'a>> {
    let path = path.as_bytes();
    let mut r = Reader::new(table);
    let mut best: Option<MountRef<'a>> = None;
    for _ in 0..r.len()? {
        let m = scan_mount(&mut r)?;
        let matches =
            path.starts_with(m.path) || path == m.path.strip_suffix(b"/").unwrap_or(m.path);
        if matches && best.as_ref().is_none_or(|b| m.path.len() >= b.path.len()) {
            best = Some(m);
        }
    }
    best
}

/// One entry written by `put_mount`, read in place: its strings are skipped, not checked
/// as UTF-8, but for a UUID kept as text, which a view's prefix is made of.
fn scan_mount<'a>(r: &mut Reader<'a>) -> Option<MountRef<'a>> {
    let path = r.bytes()?;
    let kind = r.bytes()?;
    r.bytes()?; // description
    let uuid = match r.byte()? {
        0 => UuidRef::Text(r.str()?),
        1 => UuidRef::Raw(r.take(16)?.try_into().ok()?),
        _ => return None,
    };
    r.bytes()?; // accessor
    let default_lease_ttl = unzigzag(r.varint()?);
    r.varint()?; // max_lease_ttl
    r.bytes()?; // listing_visibility
    for _ in 0..3 {
        for _ in 0..r.len()? {
            r.bytes()?;
        }
    }
    let before = *r;
    for _ in 0..r.len()? {
        r.bytes()?;
        r.bytes()?;
    }
    let options = Options(before.rest().get(..before.remaining() - r.remaining())?);
    r.byte()?; // flags
    Some(MountRef {
        path,
        uuid,
        default_lease_ttl,
        kind,
        options,
    })
}

fn put_mount(b: &mut Vec<u8>, e: &MountEntry) {
    put_str(b, &e.path);
    put_str(b, &e.kind);
    put_str(b, &e.description);
    put_uuid(b, &e.uuid);
    put_str(b, &e.accessor);
    let c = &e.config;
    put_varint(b, zigzag(c.default_lease_ttl));
    put_varint(b, zigzag(c.max_lease_ttl));
    put_str(b, &c.listing_visibility);
    for list in [
        &c.audit_non_hmac_request_keys,
        &c.audit_non_hmac_response_keys,
        &c.passthrough_request_headers,
    ] {
        put_len(b, list.len());
        for s in list {
            put_str(b, s);
        }
    }
    put_map(b, &e.options);
    b.push(u8::from(e.local) | u8::from(e.seal_wrap) << 1);
}

/// A canonical UUID (lowercase, hyphenated) as a 1 tag and its 16 bytes; anything else as
/// a 0 tag and the string.
fn put_uuid(b: &mut Vec<u8>, s: &str) {
    match uuid_bytes(s) {
        Some(raw) => {
            b.push(1);
            b.extend_from_slice(&raw);
        }
        None => {
            b.push(0);
            put_str(b, s);
        }
    }
}

const HYPHENS: [usize; 4] = [8, 13, 18, 23];

fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let s = s.as_bytes();
    if s.len() != 36 || HYPHENS.iter().any(|&i| s[i] != b'-') {
        return None;
    }
    let mut nibbles = s
        .iter()
        .enumerate()
        .filter(|(i, _)| !HYPHENS.contains(i))
        .map(|(_, &c)| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        });
    let mut raw = [0u8; 16];
    for byte in &mut raw {
        *byte = nibbles.next()?? << 4 | nibbles.next()??;
    }
    Some(raw)
}

fn read_uuid(r: &mut Reader) -> Option<String> {
    match r.byte()? {
        0 => r.string(),
        1 => Some(crate::util::uuid_text(r.take(16)?.try_into().ok()?)),
        _ => None,
    }
}

fn read_mount(r: &mut Reader) -> Option<MountEntry> {
    let path = r.string()?;
    let kind = r.string()?;
    let description = r.string()?;
    let uuid = read_uuid(r)?;
    let accessor = r.string()?;
    let config = MountConfig {
        default_lease_ttl: unzigzag(r.varint()?),
        max_lease_ttl: unzigzag(r.varint()?),
        listing_visibility: r.string()?,
        audit_non_hmac_request_keys: r.list()?,
        audit_non_hmac_response_keys: r.list()?,
        passthrough_request_headers: r.list()?,
    };
    let options = r.map()?;
    let flags = r.byte()?;
    Some(MountEntry {
        path,
        kind,
        description,
        uuid,
        accessor,
        config,
        options,
        local: flags & 1 != 0,
        seal_wrap: flags & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn mount(uuid: &str) -> MountEntry {
        MountEntry {
            path: "secret/".into(),
            kind: "kv".into(),
            description: "".into(),
            uuid: uuid.into(),
            accessor: "kv_1a2b3c4d".into(),
            config: MountConfig::default(),
            options: [("version".to_owned(), "2".to_owned())].into(),
            local: false,
            seal_wrap: false,
        }
    }

    fn project() -> Namespace {
        Namespace {
            id: "Xy12ab".into(),
            path: "p123/".into(),
            custom_metadata: BTreeMap::new(),
            uuid: crate::util::uuid4(),
            has_children: Some(false),
            mounts: Some(MountTable {
                entries: vec![mount(&crate::util::uuid4())],
            }),
        }
    }

    #[test]
    fn a_project_record_round_trips_in_a_fifth_of_its_json() {
        let ns = project();
        let bytes = encode(&ns);
        assert_eq!(decode(&bytes, "p123/"), Some(ns.clone()));
        let json = serde_json::to_vec(&ns).unwrap();
        assert!(
            bytes.len() * 5 < json.len(),
            "{} bytes against {} of JSON",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn every_field_round_trips() {
        let mut ns = project();
        ns.custom_metadata = [("team".to_owned(), "ünïcode ✓".to_owned())].into();
        ns.has_children = None;
        ns.uuid = "not-a-uuid".into();
        let mut odd = mount("ABCDEF01-2345-6789-abcd-ef0123456789");
        odd.description = "x".repeat(300);
        odd.config = MountConfig {
            default_lease_ttl: -1,
            max_lease_ttl: i64::MAX,
            listing_visibility: "unauth".into(),
            audit_non_hmac_request_keys: vec!["a".into(), "".into()],
            audit_non_hmac_response_keys: vec!["b".into()],
            passthrough_request_headers: vec!["X-A".into()],
        };
        odd.local = true;
        odd.seal_wrap = true;
        let table = ns.mounts.as_mut().unwrap();
        table.entries.push(odd);
        table.entries.push(mount(""));
        assert_eq!(decode(&encode(&ns), "p123/"), Some(ns.clone()));
        ns.has_children = Some(true);
        ns.mounts = None;
        assert_eq!(decode(&encode(&ns), "p123/"), Some(ns));
    }

    #[test]
    fn truncated_or_extended_input_is_refused() {
        let bytes = encode(&project());
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n], "p/"), None, "prefix of {n} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, "p/"), None);
        let at = decode_head(&bytes, "p/").unwrap().1.unwrap();
        for n in at..bytes.len() {
            assert!(decode_table(&bytes[at..n]).is_none(), "prefix of {n} bytes");
            assert!(
                find_mount(&bytes[at..n], "secret/x").is_none(),
                "prefix of {n} bytes"
            );
        }
        assert!(decode_table(&longer[at..]).is_none());
        let mut none = project();
        none.mounts = None;
        let mut longer = encode(&none);
        longer.push(0);
        assert!(decode_head(&longer, "p/").is_none());
    }

    /// A namespace with mounts nested in each other, one with a UUID kept as text.
    fn nested() -> Namespace {
        let mut ns = project();
        let table = ns.mounts.as_mut().unwrap();
        let mut a = mount("ABCDEF01-2345-6789-abcd-ef0123456789");
        a.path = "team/".into();
        a.options.clear();
        a.config.default_lease_ttl = 3600;
        let mut ab = mount(&crate::util::uuid4());
        ab.path = "team/app/".into();
        table.entries.extend([a, ab]);
        ns
    }

    #[test]
    fn a_head_and_its_table_decode_to_the_whole_record() {
        let ns = nested();
        let bytes = encode(&ns);
        let (head, at) = decode_head(&bytes, "p123/").unwrap();
        let table = decode_table(&bytes[at.unwrap()..]).unwrap();
        assert_eq!(
            Namespace {
                mounts: Some(table),
                ..head
            },
            ns
        );
        let mut none = ns.clone();
        none.mounts = None;
        let (head, at) = decode_head(&encode(&none), "p123/").unwrap();
        assert_eq!((head, at), (none, None));
    }

    #[test]
    fn a_mount_found_in_place_is_the_one_the_decoded_table_routes_to() {
        let ns = nested();
        let bytes = encode(&ns);
        let table_bytes = &bytes[decode_head(&bytes, "p").unwrap().1.unwrap()..];
        let table = ns.mounts.as_ref().unwrap();
        for path in [
            "secret/data/x",
            "secret",
            "secret/",
            "team",
            "team/x",
            "team/app",
            "team/app/data/y",
            "team/application",
            "secrets/x",
            "",
            "other/x",
        ] {
            let want = table.longest_match(path);
            let got = find_mount(table_bytes, path);
            assert_eq!(
                got.as_ref().map(|m| m.path),
                want.map(|e| e.path.as_bytes()),
                "{path}"
            );
            if let (Some(got), Some(want)) = (got, want) {
                assert_eq!(got.with_uuid(str::to_owned), want.uuid);
                let engine = crate::engines::engine_for(&want.kind, &want.options);
                assert!(std::ptr::addr_eq(got.engine(), engine));
                assert_eq!(got.default_lease_ttl, want.config.default_lease_ttl);
            }
        }
    }
}
