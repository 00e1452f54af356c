//! OpenBao's duration syntax, the one parser every layer uses: policies' TTLs here, and
//! above this crate lease TTLs, tuning, config files and `X-Vault-Wrap-TTL`.

use serde_json::Value;

/// Parse an OpenBao duration: an integer number of seconds (number or string), or a Go
/// duration string (`1h30m`, `768h`, `10s`, `500ms`, also `d` for days). Returns seconds.
pub fn parse_duration(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| format!("invalid duration {n}")),
        Value::String(s) => parse_duration_str(s),
        Value::Null => Ok(0),
        other => Err(format!("invalid duration {other}")),
    }
}

/// [`parse_duration`] of a string: seconds, or a sequence of decimal numbers each with a
/// unit (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`), optionally signed.
pub fn parse_duration_str(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let err = || format!("invalid duration {s:?}: use seconds or a duration like 30m, 1h, 768h");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_end == 0 {
            return Err(err());
        }
        let (digits, after) = rest.split_at_checked(num_end).ok_or_else(err)?;
        let num: f64 = digits.parse().map_err(|_| err())?;
        rest = after;
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, after) = rest.split_at_checked(unit_end).ok_or_else(err)?;
        rest = after;
        let mult = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(err()),
        };
        total_nanos += num * mult;
    }
    let secs = (total_nanos / 1e9) as i64;
    Ok(if neg { -secs } else { secs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&json!(30)).unwrap(), 30);
        assert_eq!(parse_duration(&json!("30")).unwrap(), 30);
        assert_eq!(parse_duration(&json!("1h30m")).unwrap(), 5400);
        assert_eq!(parse_duration(&json!("768h")).unwrap(), 2_764_800);
        assert_eq!(parse_duration(&json!("1d")).unwrap(), 86400);
        assert_eq!(parse_duration(&json!("1.5h")).unwrap(), 5400);
        assert_eq!(parse_duration(&json!("-1m")).unwrap(), -60);
        assert_eq!(parse_duration(&json!(null)).unwrap(), 0);
        assert!(parse_duration(&json!("abc")).is_err());
        assert!(parse_duration(&json!("10x")).is_err());
        assert!(parse_duration(&json!("h")).is_err());
        assert!(parse_duration(&json!([1])).is_err());
    }

    proptest::proptest! {
        /// Policies, config files and headers reach this parser: no input may panic it.
        #[test]
        fn never_panics(s in "\\PC{0,24}", t in "[0-9.hmsuµnd+-]{0,12}") {
            let _ = parse_duration_str(&s);
            let _ = parse_duration_str(&t);
        }
    }
}
