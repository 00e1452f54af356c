//! The HCL1 subset policies and OpenBao server configs are written in, parsed as OpenBao
//! parses them (it uses HashiCorp's HCL version 1, not HCL2), in one pass: several attributes may share a line, items of an
//! object may be separated by commas or nothing, keys may be quoted, and a nested object
//! may be written as a block (`allowed_parameters { "a" = [] }`).
//!
//! The result is the JSON shape `parse` reads: `{"path": {"<pattern>": body or [bodies]},
//! "name": ...}`. Repeated list attributes in one body are concatenated, as HCL1 decodes
//! them (`capabilities = ["read"] capabilities = ["list"]` grants both).
//!
//! Deliberately stricter than OpenBao: a block with two labels (`path "a" "b" {}`, which
//! OpenBao reads as `path "a"` and silently drops `"b"`) and any other repeated attribute
//! are refused, since the reader cannot tell which the author meant.

use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Number),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Assign,
    Comma,
    Eof,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tok::Ident(_) => "IDENT",
            Tok::Str(_) => "STRING",
            Tok::Num(_) => "NUMBER",
            Tok::LBrace => "LBRACE",
            Tok::RBrace => "RBRACE",
            Tok::LBrack => "LBRACK",
            Tok::RBrack => "RBRACK",
            Tok::Assign => "ASSIGN",
            Tok::Comma => "COMMA",
            Tok::Eof => "EOF",
        })
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    col: usize,
}

type Res<T> = Result<T, String>;

impl<'a> Lexer<'a> {
    fn at(&self) -> String {
        format!("At {}:{}", self.line, self.col)
    }

    fn bump(&mut self) -> Option<u8> {
        let c = *self.src.get(self.pos)?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_space_and_comments(&mut self) -> Res<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => self.skip_line(),
                Some(b'/') if self.src.get(self.pos + 1) == Some(&b'/') => self.skip_line(),
                Some(b'/') if self.src.get(self.pos + 1) == Some(&b'*') => {
                    let at = self.at();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(format!("{at}: comment not terminated")),
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == b'\n' {
                break;
            }
        }
    }

    /// The next token, with the position it starts at.
    fn next(&mut self) -> Res<(Tok, String)> {
        self.skip_space_and_comments()?;
        let at = self.at();
        let Some(c) = self.peek() else {
            return Ok((Tok::Eof, at));
        };
        let simple = match c {
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBrack),
            b']' => Some(Tok::RBrack),
            b'=' => Some(Tok::Assign),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = simple {
            self.bump();
            return Ok((t, at));
        }
        if c == b'"' {
            return Ok((Tok::Str(self.string(&at)?), at));
        }
        if c == b'-' || c.is_ascii_digit() {
            return Ok((Tok::Num(self.number(&at)?), at));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            {
                self.bump();
            }
            let ident = String::from_utf8_lossy(self.src.get(start..self.pos).unwrap_or_default())
                .into_owned();
            return Ok((Tok::Ident(ident), at));
        }
        if c == b'<' && self.src.get(self.pos + 1) == Some(&b'<') {
            return Err(format!(
                "{at}: heredoc strings are not supported in policies"
            ));
        }
        Err(format!("{at}: illegal char"))
    }

    fn string(&mut self, at: &str) -> Res<String> {
        self.bump(); // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.bump() {
                None | Some(b'\n') => return Err(format!("{at}: literal not terminated")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'a') => out.push(0x07),
                    Some(b'b') => out.push(0x08),
                    Some(b'f') => out.push(0x0c),
                    Some(b'v') => out.push(0x0b),
                    Some(k @ (b'u' | b'U')) => {
                        let n = if k == b'u' { 4 } else { 8 };
                        let mut hex = String::new();
                        for _ in 0..n {
                            match self.bump() {
                                Some(h) if h.is_ascii_hexdigit() => hex.push(h as char),
                                _ => return Err(format!("{at}: invalid escape sequence")),
                            }
                        }
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("{at}: invalid escape sequence"))?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(format!("{at}: invalid escape sequence")),
                },
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| format!("{at}: string is not valid UTF-8"))
    }

    fn number(&mut self, at: &str) -> Res<Number> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            self.bump();
        }
        let text = self
            .src
            .get(start..self.pos)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Number::from(i));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| format!("{at}: invalid number {text:?}"))
    }
}

/// How deeply lists and objects may nest: a policy needs 3 levels; the bound keeps a
/// hostile text from exhausting the stack.
pub(crate) const MAX_DEPTH: usize = 32;

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok,
    at: String,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Res<()> {
        let (t, at) = self.lex.next()?;
        self.tok = t;
        self.at = at;
        Ok(())
    }

    fn key(&self) -> Option<String> {
        match &self.tok {
            Tok::Ident(s) | Tok::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// `key+ ( '=' value | object )`: the keys and the value.
    fn item(&mut self) -> Res<(Vec<String>, Value, String)> {
        let at = self.at.clone();
        let mut keys = Vec::new();
        while let Some(k) = self.key() {
            keys.push(k);
            self.advance()?;
        }
        match self.tok {
            Tok::Assign => {
                self.advance()?;
                if keys.len() > 1 {
                    return Err(format!("{at}: nested object expected: LBRACE got: ASSIGN"));
                }
                Ok((keys, self.value()?, at))
            }
            Tok::LBrace => Ok((keys, self.object()?, at)),
            _ => Err(format!(
                "{}: key '{}' expected start of object ('{{') or assignment ('=')",
                self.at,
                keys.last().cloned().unwrap_or_default()
            )),
        }
    }

    /// Enter one level of nesting, refusing past [`MAX_DEPTH`].
    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "{}: nested more than {MAX_DEPTH} levels deep",
                self.at
            ));
        }
        Ok(())
    }

    fn value(&mut self) -> Res<Value> {
        match std::mem::replace(&mut self.tok, Tok::Eof) {
            Tok::Str(s) => {
                self.advance()?;
                Ok(Value::String(s))
            }
            Tok::Num(n) => {
                self.advance()?;
                Ok(Value::Number(n))
            }
            Tok::Ident(i) if i == "true" || i == "false" => {
                self.advance()?;
                Ok(Value::Bool(i == "true"))
            }
            Tok::LBrack => {
                self.enter()?;
                self.advance()?;
                let mut items = Vec::new();
                while self.tok != Tok::RBrack {
                    items.push(self.value()?);
                    match self.tok {
                        Tok::Comma => self.advance()?,
                        Tok::RBrack => {}
                        ref t => {
                            return Err(format!(
                                "{}: error parsing list, expected comma or list end, got: {t}",
                                self.at
                            ))
                        }
                    }
                }
                self.advance()?;
                self.depth -= 1;
                Ok(Value::Array(items))
            }
            Tok::LBrace => {
                self.tok = Tok::LBrace;
                self.object()
            }
            t => Err(format!(
                "{}: unexpected token while parsing value: {t}",
                self.at
            )),
        }
    }

    /// `'{' (item ','?)* '}'`, the current token being `{`.
    fn object(&mut self) -> Res<Value> {
        self.enter()?;
        let open = self.at.clone();
        self.advance()?;
        let mut out = Map::new();
        loop {
            match self.tok {
                Tok::RBrace => break,
                Tok::Eof => return Err(format!("{open}: object expected closing RBRACE got: EOF")),
                _ => {}
            }
            let (keys, value, at) = self.item()?;
            let [key] = keys.as_slice() else {
                return Err(format!("{at}: a nested block takes one name"));
            };
            insert(&mut out, key, value, &at)?;
            if self.tok == Tok::Comma {
                self.advance()?;
            }
        }
        self.advance()?;
        self.depth -= 1;
        Ok(Value::Object(out))
    }
}

/// Add `key = value` to an object: a repeated list is concatenated, as HCL1 decodes it;
/// any other repeated key is refused.
fn insert(out: &mut Map<String, Value>, key: &str, value: Value, at: &str) -> Res<()> {
    match (out.get_mut(key), value) {
        (None, v) => {
            out.insert(key.to_owned(), v);
            Ok(())
        }
        (Some(Value::Array(a)), Value::Array(b)) => {
            a.extend(b);
            Ok(())
        }
        (Some(_), _) => Err(format!("{at}: {key:?} is set twice")),
    }
}

fn parser(text: &str) -> Res<Parser<'_>> {
    let mut p = Parser {
        lex: Lexer {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
            col: 1,
        },
        tok: Tok::Eof,
        at: String::new(),
        depth: 0,
    };
    p.advance()?;
    Ok(p)
}

/// A whole HCL1 document (an OpenBao server config) as JSON, in one pass with no
/// backtracking: `key = value` is a key (set once); a block `name "l1" "l2" { … }` is
/// appended to the array at `name` as `{"l1": {"l2": {…}}}` (a block without labels, as
/// its body).
pub fn document_to_json(text: &str) -> Result<Value, String> {
    let mut p = parser(text)?;
    let mut root = Map::new();
    while p.tok != Tok::Eof {
        let (keys, value, at) = p.item()?;
        let Some((name, labels)) = keys.split_first() else {
            return Err(format!("{at}: expected a key"));
        };
        if labels.is_empty() && !value.is_object() {
            insert(&mut root, name, value, &at)?;
        } else {
            let block = labels.iter().rev().fold(value, |inner, label| {
                let mut m = Map::new();
                m.insert(label.clone(), inner);
                Value::Object(m)
            });
            match root
                .entry(name.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(a) => a.push(block),
                _ => return Err(format!("{at}: {name:?} is both a value and a block")),
            }
        }
        if p.tok == Tok::Comma {
            p.advance()?;
        }
    }
    Ok(Value::Object(root))
}

/// Parse policy text into `{"path": {...}, "name": ...}`.
pub(crate) fn to_json(text: &str) -> Res<Value> {
    let mut p = parser(text)?;
    let mut paths = Map::new();
    let mut root = Map::new();
    while p.tok != Tok::Eof {
        let (keys, value, at) = p.item()?;
        match keys.as_slice() {
            [k] if k == "name" => {
                root.insert("name".into(), value);
            }
            [k, label] if k == "path" => {
                if !value.is_object() {
                    return Err(format!("{at}: path {label:?} must be a block"));
                }
                match paths.get_mut(label) {
                    Some(Value::Array(a)) => a.push(value),
                    Some(existing) => {
                        let prev = existing.take();
                        *existing = Value::Array(vec![prev, value]);
                    }
                    None => {
                        paths.insert(label.clone(), value);
                    }
                }
            }
            [k, ..] if k == "path" => {
                return Err(format!(
                    "{at}: a path block takes exactly one quoted path: path \"secret/*\" {{ ... }}"
                ))
            }
            [k, ..] => return Err(format!("{at}: invalid key {k:?}")),
            [] => return Err(format!("{at}: expected a key")),
        }
        if p.tok == Tok::Comma {
            p.advance()?;
        }
    }
    root.insert("path".into(), Value::Object(paths));
    Ok(Value::Object(root))
}

#[cfg(test)]
mod tests {
    use super::to_json;
    use serde_json::json;

    #[test]
    fn server_configs_as_json() {
        let v = super::document_to_json(
            "backend \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = 1\n}\nlistener \"tcp\" { address = \"b\" }\ntelemetry { x = true }\ndisable_mlock = true\ndefault_lease_ttl = \"768h\"\n",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "backend": [{"inmem": {}}],
                "listener": [{"tcp": {"address": "127.0.0.1:8200", "tls_disable": 1}}, {"tcp": {"address": "b"}}],
                "telemetry": [{"x": true}],
                "disable_mlock": true,
                "default_lease_ttl": "768h",
            })
        );
        assert!(super::document_to_json("a = 1\na = 2").is_err());
        assert!(super::document_to_json("a = 1\na { }").is_err());
        // the fuzzer's slow input for hcl-rs: refused at once
        assert!(super::document_to_json("r=n[n][kr[n][n[n][n][kr[n]").is_err());
    }

    #[test]
    fn hcl1_forms_openbao_accepts() {
        let v = to_json(
            "# c\n// d\n/* e */ name = \"x\"\n\
             path \"a\" { capabilities = [\"read\"], required_parameters = [\"x\"] }\n\
             path b { capabilities = [\"list\",] capabilities = [\"read\"] \"comment\" = \"hi\" }\n\
             path \"c\" {\n allowed_parameters { \"p\" = [] q = [1, 2.5, true, \"s\\u00e9\"] }\n}\n\
             path \"a\" { policy = \"read\" }",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "name": "x",
                "path": {
                    "a": [
                        {"capabilities": ["read"], "required_parameters": ["x"]},
                        {"policy": "read"}
                    ],
                    "b": {"capabilities": ["list", "read"], "comment": "hi"},
                    "c": {"allowed_parameters": {"p": [], "q": [1, 2.5, true, "sé"]}},
                }
            })
        );
    }

    /// A hostile nesting is refused with an error, never a stack overflow (issue 38's
    /// first crash, against the old parser: 5,000 nested blocks aborted the process).
    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for n in [super::MAX_DEPTH + 1, 5_000, 200_000] {
            let text = format!("path \"a\" {{ {} }}", "x = { ".repeat(n) + &"}".repeat(n));
            let e = to_json(&text).unwrap_err();
            assert!(e.contains("nested more than"), "{e}");
            let lists = format!("path \"a\" {{ x = {}{} }}", "[".repeat(n), "]".repeat(n));
            assert!(to_json(&lists).unwrap_err().contains("nested more than"));
        }
        // What policies use is far below the bound.
        to_json("path \"a\" { allowed_parameters = { \"k\" = [[\"v\"]] } }").unwrap();
    }

    #[test]
    fn malformed_text_is_refused_with_a_position() {
        for (text, needle) in [
            ("path \"a\" = { capabilities = [\"read\"] }", "At 1:1"),
            (
                "path \"a\" { capabilities = [\"read\" \"list\"] }",
                "expected comma",
            ),
            (
                "path \"a\" { capabilities = [\"read\"]; }",
                "At 1:35: illegal char",
            ),
            ("path \"a\" { capabilities = ['read'] }", "illegal char"),
            ("path \"a\" { capabilities = [\"read\"] } junk", "junk"),
            ("path \"a\" { capabilities = [\"read\"] ", "RBRACE"),
            (
                "path \"a\" \"b\" { capabilities = [\"read\"] }",
                "exactly one",
            ),
            (
                "path \"a\" { policy = \"read\" policy = \"deny\" }",
                "set twice",
            ),
            ("foo \"b\" {}", "invalid key"),
            ("path \"a\" { x = \"unterminated }", "not terminated"),
            ("path \"a\" { capabilities = <<EOT\nread\nEOT\n}", "heredoc"),
            ("/* open", "comment not terminated"),
        ] {
            let e = to_json(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
