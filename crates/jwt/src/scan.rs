//! The top-level members of a JSON object, found by one strict pass over its bytes.
//!
//! A login reads a handful of a CI ID token's ~30 claims, so [`crate::Jwt::parse`] only
//! indexes them: each member's name and the byte range of its value, which
//! [`crate::Jwt::claims_named`] parses on demand. This scanner validates the whole object
//! as JSON (RFC 8259: strings, escapes, numbers, literals, the input valid UTF-8) without
//! building anything but the index. It accepts what serde_json accepts when it
//! deserializes the object into names and raw values, which the tests check on generated
//! and mutated objects, with one exception: it refuses nesting deeper than 128 levels
//! (the object itself is the first), where serde_json's raw values have no limit and its
//! parsed values stop at 127 (a CI ID token nests two or three).

use std::ops::Range;

use crate::ClaimName;

/// Levels of nesting accepted, the object itself included (the scanner recurses).
const MAX_DEPTH: usize = 128;

/// Each member of the object `s` in order (a repeated name appears each time): its name
/// and the range of its value. `None` if `s` is not one JSON object.
pub(crate) fn members(s: &[u8]) -> Option<Vec<(ClaimName, Range<usize>)>> {
    std::str::from_utf8(s).ok()?;
    let mut sc = Scan { b: s, i: 0 };
    let mut out = Vec::with_capacity(32);
    sc.ws();
    sc.eat(b'{')?;
    sc.ws();
    if sc.eat(b'}').is_none() {
        loop {
            sc.ws();
            let start = sc.i;
            let name = if sc.string()? {
                ClaimName::Owned(serde_json::from_slice(&s[start..sc.i]).ok()?)
            } else {
                ClaimName::At(start + 1..sc.i - 1)
            };
            sc.ws();
            sc.eat(b':')?;
            sc.ws();
            let value = sc.i;
            sc.value(1)?;
            out.push((name, value..sc.i));
            sc.ws();
            if sc.eat(b',').is_none() {
                sc.eat(b'}')?;
                break;
            }
        }
    }
    sc.ws();
    (sc.i == s.len()).then_some(out)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// A string, from its opening quote to past its closing one; whether it had escapes.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            self.skip_plain();
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// Past the bytes of a string that need no look (neither `"`, `\\` nor a control
    /// character), eight at a time.
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
        let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let special = has_zero(x ^ (ONES * u64::from(b'"')))
                | has_zero(x ^ (ONES * u64::from(b'\\')))
                // a byte below 0x20 (the `hasless` test of "Bit Twiddling Hacks")
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if special != 0 {
                // The lowest flagged byte is the first special one (the borrow of these
                // tests can only flag bytes above a true match), so stop right at it.
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.container(depth, b'}', true),
            b'[' => self.container(depth, b']', false),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An object (`keyed`) or an array, from its opening bracket.
    fn container(&mut self, depth: usize, close: u8, keyed: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.eat(close).is_some() {
            return Some(());
        }
        loop {
            self.ws();
            if keyed {
                self.string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
            }
            self.value(depth + 1)?;
            self.ws();
            if self.eat(b',').is_none() {
                return self.eat(close);
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits()?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;
    use serde_json::Value;

    /// What serde_json makes of the object: its members' names (unescaped) and raw values.
    fn reference(s: &[u8]) -> Option<Vec<(String, String)>> {
        let m: Vec<(String, &RawValue)> = serde_json::from_slice::<Members>(s).ok()?.0;
        Some(
            m.into_iter()
                .map(|(k, v)| (k, v.get().to_owned()))
                .collect(),
        )
    }

    struct Members<'a>(Vec<(String, &'a RawValue)>);

    impl<'de> serde::Deserialize<'de> for Members<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<Members<'de>, A::Error> {
                    let mut out = Vec::new();
                    while let Some(kv) = m.next_entry()? {
                        out.push(kv);
                    }
                    Ok(Members(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    fn scanned(s: &[u8]) -> Option<Vec<(String, String)>> {
        Some(
            members(s)?
                .into_iter()
                .map(|(n, v)| {
                    let name = match n {
                        ClaimName::At(r) => String::from_utf8(s[r].to_vec()).unwrap(),
                        ClaimName::Owned(o) => o,
                    };
                    (name, String::from_utf8(s[v].to_vec()).unwrap())
                })
                .collect(),
        )
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z\"\\\\/\u{1}-\u{1f}é✓😀 ]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z\"\\\\é\u{7}]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        prop::collection::vec(("[a-z_\"\\\\é\u{7}]{0,8}", json()), 0..10)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn indexes_what_serde_json_finds(v in object(), pretty in any::<bool>()) {
            let s = if pretty {
                serde_json::to_vec_pretty(&v).unwrap()
            } else {
                serde_json::to_vec(&v).unwrap()
            };
            let got = scanned(&s);
            prop_assert!(got.is_some());
            prop_assert_eq!(got, reference(&s));
        }

        #[test]
        fn accepts_and_refuses_what_serde_json_does(
            v in object(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(
                b"{}[]\",:\\/ \t\n0123456789.eE+-truefalsnuXx\x01".to_vec()
            )), 1..4),
        ) {
            let mut s = serde_json::to_vec(&v).unwrap();
            for (at, kind, c) in edits {
                let i = at.index(s.len() + 1);
                match kind {
                    0 => s.insert(i, c),
                    1 if i < s.len() => { s.remove(i); }
                    _ if i < s.len() => s[i] = c,
                    _ => s.push(c),
                }
            }
            // Mutations may cut a multi-byte character: both refuse invalid UTF-8.
            prop_assert_eq!(scanned(&s), reference(&s), "{}", String::from_utf8_lossy(&s));
        }
    }

    #[test]
    fn edge_cases_match_serde_json() {
        let nested = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        let deep_ok = nested(MAX_DEPTH - 1);
        for s in [
            "{}",
            " { } ",
            r#"{"a":-0.5e+3,"b":[],"c":{},"d":"\u00e9\ud800","e\u0041":true}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{,"a":1}"#,
            r#"{"a" 1}"#,
            r#"{"a":[1,]}"#,
            r#"{"\ud800":1}"#,
            "{\"a\":\"tab\tinside\"}",
            r#"{"a":1}{"#,
            &deep_ok,
        ] {
            assert_eq!(scanned(s.as_bytes()), reference(s.as_bytes()), "{s}");
        }
        assert!(scanned(deep_ok.as_bytes()).is_some());
        let deep_bad = nested(MAX_DEPTH);
        assert!(reference(deep_bad.as_bytes()).is_some());
        assert!(
            scanned(deep_bad.as_bytes()).is_none(),
            "deeper than the limit"
        );
        assert!(
            scanned(nested(100_000).as_bytes()).is_none(),
            "no stack overflow"
        );
        assert!(scanned(b"{\"a\":\"\xff\"}").is_none());
        // Every special byte at every offset of the eight-byte skip is seen.
        for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for k in 0..20 {
                let mut s = b"{\"k\":\"".to_vec();
                s.extend(std::iter::repeat_n("é".as_bytes(), k).flatten());
                s.push(special);
                s.extend_from_slice(b"xyzxyzxyz\"}");
                assert_eq!(
                    scanned(&s),
                    reference(&s),
                    "{k}: {}",
                    String::from_utf8_lossy(&s)
                );
                assert!(scanned(&s).is_none());
            }
        }
    }
}
