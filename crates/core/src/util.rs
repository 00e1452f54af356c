//! Small pure helpers: Go-style durations, RFC 3339 times, random identifiers.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

pub fn now_secs() -> i64 {
    (now_nanos() / 1_000_000_000) as i64
}

/// RFC 3339 with nanoseconds, UTC, as OpenBao prints times (`2024-01-02T03:04:05.123456789Z`).
pub fn rfc3339_nanos(nanos: i128) -> String {
    let mut out = String::with_capacity(30);
    push_rfc3339_nanos(&mut out, nanos);
    out
}

/// [`rfc3339_nanos`] appended to `out`: what the `time` crate's RFC 3339 format writes
/// (the fraction without trailing zeros, none if zero, `Z`), written directly for times
/// from 1970 until `u64` nanoseconds run out (in 2554), which a cold KV read renders
/// (without the `time` crate's formatting machinery and its string; `u64` arithmetic, as
/// `i128` division is a library call). Other times go through the `time` crate.
pub fn push_rfc3339_nanos(out: &mut String, nanos: i128) {
    let Ok(nanos) = u64::try_from(nanos) else {
        let text = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        out.push_str(&text);
        return;
    };
    let secs = nanos / 1_000_000_000;
    let frac = (nanos % 1_000_000_000) as u32;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let put = |b: &mut [u8], at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut b, 0, 4, y);
    put(&mut b, 5, 2, m);
    put(&mut b, 8, 2, d);
    put(&mut b, 11, 2, (day_secs / 3600) as u32);
    put(&mut b, 14, 2, (day_secs % 3600 / 60) as u32);
    put(&mut b, 17, 2, (day_secs % 60) as u32);
    let len = if frac == 0 {
        19
    } else {
        put(&mut b, 20, 9, frac);
        b[..29]
            .iter()
            .rposition(|&c| c != b'0')
            .map_or(29, |i| i + 1)
    };
    b[len] = b'Z';
    // ASCII only; one check of the whole, as pushing it char by char cost more.
    out.push_str(std::str::from_utf8(&b[..=len]).unwrap_or_default());
}

/// The proleptic Gregorian date (year, month, day) `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on and after the epoch).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y as u32, m as u32, d as u32)
}

/// `v` in decimal, appended to `out` without the formatting machinery.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut b = [0u8; 20];
    let mut at = b.len();
    loop {
        at -= 1;
        b[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&b[at..]).unwrap_or_default());
}

pub fn rfc3339_secs(secs: i64) -> String {
    rfc3339_nanos(secs as i128 * 1_000_000_000)
}

/// Parse an RFC 3339 time to Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub use strongroom_acl::duration::{parse_duration, parse_duration_str};

/// Go's `time.Duration.String()` for whole seconds: `0s`, `45s`, `3m0s`, `1h0m0s`.
pub fn format_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec}s")
    } else {
        format!("{sign}{sec}s")
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random characters from `[A-Za-z0-9]`, unbiased (rejection sampling).
pub fn random_alnum(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        strongroom_barrier::fill_random(&mut buf);
        for b in buf {
            if out.len() == n {
                break;
            }
            if (b as usize) < 248 {
                out.push(ALNUM[(b as usize) % 62] as char);
            }
        }
    }
    out
}

/// A random RFC 4122 version-4 UUID string.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    strongroom_barrier::fill_random(&mut b);
    uuid_string(b)
}

/// A response's `request_id`: an RFC 4122 version-4 UUID string, unique but not secret.
///
/// [`uuid4`] draws its 16 bytes from aws-lc's DRBG, whose every call re-keys AES (4 % of a
/// KV read's CPU in the profile). A request id needs uniqueness, not unpredictability: each
/// thread seeds two 64-bit words from the DRBG once, then numbers its ids with a counter
/// and passes seed + counter through SplitMix64's finalizer, a bijection of `u64`: one
/// thread's first halves are distinct before the version nibble takes 4 of their bits, and
/// threads differ by their random seeds. Never use it for anything secret.
pub fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<Option<(u64, u64, u64)>> = const { Cell::new(None) };
    }
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (a, b, n) = STATE.with(|s| {
        let (a, b, n) = s.get().unwrap_or_else(|| {
            let mut seed = [0u8; 16];
            strongroom_barrier::fill_random(&mut seed);
            let (x, y) = seed.split_at(8);
            (
                u64::from_le_bytes(x.try_into().expect("8 bytes")),
                u64::from_le_bytes(y.try_into().expect("8 bytes")),
                0,
            )
        });
        s.set(Some((a, b, n.wrapping_add(1))));
        (a, b, n)
    });
    let hi = mix(a.wrapping_add(n));
    let lo = mix(b ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid_string(bytes)
}

/// `parts` joined into one string, allocated once at its size: what `format!("{a}{b}")`
/// builds, without the formatting machinery (it is on a KV read's path).
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// `bytes` as a version-4, RFC 4122-variant UUID string.
fn uuid_string(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

/// `b` in a UUID's canonical text form (lower-case hex, hyphenated 8-4-4-4-12), as is.
pub(crate) fn uuid_text(b: &[u8; 16]) -> String {
    uuid_text_in(b, &mut [0; 36]).to_owned()
}

/// [`uuid_text`] written into `out`, without allocating.
pub(crate) fn uuid_text_in<'a>(b: &[u8; 16], out: &'a mut [u8; 36]) -> &'a str {
    // Filled as bytes at fixed places, then checked once, rather than pushing 36 chars
    // one by one: a cold namespace load formats two.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    *out = [b'-'; 36];
    for (&at, byte) in AT.iter().zip(b) {
        let pair = [
            HEX_DIGITS[usize::from(byte >> 4)],
            HEX_DIGITS[usize::from(byte & 0xf)],
        ];
        out[at..at + 2].copy_from_slice(&pair);
    }
    std::str::from_utf8(out).expect("hex digits and hyphens")
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, byte: u8) {
    out.push(HEX_DIGITS[usize::from(byte >> 4)] as char);
    out.push(HEX_DIGITS[usize::from(byte & 0xf)] as char);
}

/// `v` as JSON bytes, for storage (serializing our own types cannot fail in practice; if it
/// does, the request fails as an internal error).
pub fn json_bytes(v: &impl serde::Serialize) -> crate::error::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| crate::error::CoreError::Internal(e.to_string()))
}

/// Lower-case hex of `bytes` (the `hex` crate's encoder goes through a char iterator;
/// this one is on every request's path: token and secret-path hashes).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex(&mut out, *b);
    }
    out
}

/// Parse `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128).
pub fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match s.trim().split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s.trim(), None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

/// Is `ip` inside any of `cidrs`?
pub fn ip_in_cidrs(ip: std::net::IpAddr, cidrs: &[String]) -> bool {
    use std::net::IpAddr;
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    cidrs
        .iter()
        .filter_map(|c| parse_cidr(c))
        .any(|(net, len)| match (ip, net) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - len as u32)
                };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len as u32)
                };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        })
}

/// Interpret a JSON value as a boolean the way OpenBao's field parser does.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" => Some(true),
            "false" | "0" | "f" | "" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

pub fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A list of strings from a JSON array or a comma-separated string.
pub fn as_string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(|s| s.trim().to_owned()))
            .collect(),
        Value::String(s) if s.trim().is_empty() => Some(Vec::new()),
        Value::String(s) => Some(
            s.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect(),
        ),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_decimals_written_directly_match_the_time_crate_and_std() {
        let by_time = |nanos: i128| {
            OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default()
        };
        let day = 86_400 * 1_000_000_000i128;
        let mut times = vec![
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_700_000_000_123_456_789,
            1_700_000_000_120_000_000,
            951_782_400 * 1_000_000_000,         // 2000-02-29
            4_107_542_400 * 1_000_000_000 - 1,   // the last nanosecond of 2100-02-28
            i128::from(u64::MAX),                // 2554, the last time written directly
            i128::from(u64::MAX) + 1,            // and the first one the time crate writes
            253_402_300_800 * 1_000_000_000 - 1, // the last nanosecond of 9999
            253_402_300_800 * 1_000_000_000,     // year 10000: the time crate's error, as before
            -1,
            -day - 5,
        ];
        // Every seventh day of eight centuries, at times of day and fractions that vary.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for d in (0..146_097 * 2).step_by(7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let frac = match d % 3 {
                0 => 0,
                1 => (x % 1_000) * 1_000_000,
                _ => x % 1_000_000_000,
            };
            times.push(
                i128::from(d) * day + i128::from(x % 86_400) * 1_000_000_000 + i128::from(frac),
            );
        }
        for t in times {
            assert_eq!(rfc3339_nanos(t), by_time(t), "{t}");
        }
        for v in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut s = String::from("v=");
            push_u64(&mut s, v);
            assert_eq!(s, format!("v={v}"));
        }
    }

    #[test]
    fn hex_and_uuids() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&all), hex::encode(&all));
        let u = uuid4();
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{u}");
        assert_eq!(&u[14..15], "4", "version 4: {u}");
        assert!(
            matches!(&u[19..20], "8" | "9" | "a" | "b"),
            "RFC 4122 variant: {u}"
        );
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(uuid4(), u);
        assert_eq!(concat(&["namespaces/", "ab12", "/"]), "namespaces/ab12/");
        assert_eq!(concat(&[]), "");
        let bytes: [u8; 16] = std::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(uuid_text(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn request_ids_are_uuids_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..20_000).map(|_| request_id()).collect::<Vec<_>>()))
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        for u in &ids {
            let groups: Vec<usize> = u.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{u}");
            assert_eq!(&u[14..15], "4", "version 4: {u}");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "variant: {u}");
            assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            // Unique on the first half alone, not only on the whole id.
            assert!(seen.insert(u[..18].to_owned()), "repeated {u}");
        }
        assert_eq!(seen.len(), 80_000);
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(180), "3m0s");
        assert_eq!(format_duration(3600), "1h0m0s");
        assert_eq!(format_duration(2_764_800), "768h0m0s");
    }

    #[test]
    fn times_and_ids() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        let t = random_alnum(24);
        assert_eq!(t.len(), 24);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(uuid4().len(), 36);
    }

    #[test]
    fn cidrs() {
        let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert!(ip_in_cidrs(ip, &["10.0.0.0/8".into()]));
        assert!(!ip_in_cidrs(ip, &["10.1.3.0/24".into()]));
        assert!(ip_in_cidrs(
            "::ffff:127.0.0.1".parse().unwrap(),
            &["127.0.0.1/32".into()]
        ));
        assert!(ip_in_cidrs(
            "fd00::1".parse().unwrap(),
            &["fd00::/8".into()]
        ));
        assert!(parse_cidr("1.2.3.4/33").is_none());
    }
}
