//! A small JSON scanner over a byte slice: no allocation, depth bounded by [`JSON_DEPTH_MAX`].
//!
//! It checks the syntax of the whole line (so `serde_json`, which recurses, only ever sees
//! input of bounded depth) and records where the top-level `id`, `method` and `params` values
//! are, plus the kind and span of every element of `params`.

use crate::limits::{JSON_DEPTH_MAX, PARAMS_COUNT_MAX};
use crate::stratum::error::ParseErrorKind;

/// The kind of a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `escaped` says whether it contains a backslash escape.
    String {
        escaped: bool,
    },
    Number,
    Null,
    Bool,
    Array,
    Object,
}

/// A value: its kind and its byte range in the line. For strings the range is the content
/// between the quotes; for everything else the whole value text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Span {
    const EMPTY: Self = Self {
        kind: Kind::Null,
        start: 0,
        end: 0,
    };

    /// The raw JSON text of the value (strings with their quotes).
    pub(crate) fn raw<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        match self.kind {
            Kind::String { .. } => &line[self.start - 1..self.end + 1],
            _ => &line[self.start..self.end],
        }
    }

    /// The bytes of the value (string content without quotes).
    pub(crate) fn bytes<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        &line[self.start..self.end]
    }
}

/// The top-level shape of a request or response line.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) id: Option<Span>,
    pub(crate) method: Option<Span>,
    pub(crate) params: Option<Span>,
    pub(crate) result: Option<Span>,
    pub(crate) error: Option<Span>,
    /// Elements of `params` when it is an array (the first [`PARAMS_COUNT_MAX`]).
    pub(crate) elements: [Span; PARAMS_COUNT_MAX],
    /// Elements of `params`, even beyond [`PARAMS_COUNT_MAX`].
    pub(crate) count: usize,
}

impl Envelope {
    /// The params elements that were recorded.
    pub(crate) fn params(&self) -> &[Span] {
        &self.elements[..self.count.min(PARAMS_COUNT_MAX)]
    }
}

/// A syntax error and, when the id was seen before it, the id's span.
pub(crate) type ScanResult<T> = Result<T, (ParseErrorKind, Option<Span>)>;

struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn err(&self) -> ParseErrorKind {
        ParseErrorKind::Json { offset: self.pos }
    }

    fn expect(&mut self, c: u8) -> Result<(), ParseErrorKind> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    /// A string, with `pos` on the opening quote; returns the content span.
    fn string(&mut self) -> Result<Span, ParseErrorKind> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err());
            };
            match c {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok(Span {
                        kind: Kind::String { escaped },
                        start,
                        end,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            for _ in 0..4 {
                                match self.peek() {
                                    Some(d) if d.is_ascii_hexdigit() => self.pos += 1,
                                    _ => return Err(self.err()),
                                }
                            }
                        }
                        _ => return Err(self.err()),
                    }
                }
                0x00..=0x1f => return Err(self.err()),
                _ => self.pos += 1,
            }
        }
    }

    fn digits(&mut self) -> Result<(), ParseErrorKind> {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == start {
            Err(self.err())
        } else {
            Ok(())
        }
    }

    fn number(&mut self) -> Result<(), ParseErrorKind> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.err()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ParseErrorKind> {
        if self.s[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err())
        }
    }

    /// Any value at nesting `depth` (the top-level object is depth 1).
    fn value(&mut self, depth: usize) -> Result<Span, ParseErrorKind> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'"') => return self.string(),
            Some(b'{') => {
                self.container(depth + 1, b'}', true)?;
                Kind::Object
            }
            Some(b'[') => {
                self.container(depth + 1, b']', false)?;
                Kind::Array
            }
            Some(b't') => {
                self.literal(b"true")?;
                Kind::Bool
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Kind::Bool
            }
            Some(b'n') => {
                self.literal(b"null")?;
                Kind::Null
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Kind::Number
            }
            _ => return Err(self.err()),
        };
        Ok(Span {
            kind,
            start,
            end: self.pos,
        })
    }

    /// An array or object body; `pos` is on the opening bracket.
    fn container(&mut self, depth: usize, close: u8, object: bool) -> Result<(), ParseErrorKind> {
        if depth > JSON_DEPTH_MAX {
            return Err(ParseErrorKind::TooDeep);
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if object {
                self.string()?;
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
            }
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err()),
            }
        }
    }

    /// The params array at depth 2, recording its elements.
    fn params(&mut self, env: &mut Envelope) -> Result<Span, ParseErrorKind> {
        let start = self.pos;
        if self.peek() != Some(b'[') {
            return self.value(1);
        }
        env.count = 0;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Span {
                kind: Kind::Array,
                start,
                end: self.pos,
            });
        }
        loop {
            let element = self.value(2)?;
            if let Some(slot) = env.elements.get_mut(env.count) {
                *slot = element;
            }
            env.count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Span {
                        kind: Kind::Array,
                        start,
                        end: self.pos,
                    });
                }
                _ => return Err(self.err()),
            }
        }
    }
}

/// Scans a whole line as one JSON object and records its top-level members. Later duplicates
/// of a key replace earlier ones (as `serde_json` does).
pub(crate) fn envelope(line: &[u8]) -> ScanResult<Envelope> {
    let mut env = Envelope {
        id: None,
        method: None,
        params: None,
        result: None,
        error: None,
        elements: [Span::EMPTY; PARAMS_COUNT_MAX],
        count: 0,
    };
    let mut escaped_key = false;
    let mut sc = Scanner { s: line, pos: 0 };
    sc.skip_ws();
    if sc.peek() != Some(b'{') {
        // Not an object: say so if it is some other valid JSON value.
        return match sc.value(0) {
            Ok(_) => {
                sc.skip_ws();
                if sc.pos == line.len() {
                    Err((ParseErrorKind::NotAnObject, None))
                } else {
                    Err((sc.err(), None))
                }
            }
            Err(e) => Err((e, None)),
        };
    }
    sc.pos += 1;
    sc.skip_ws();
    if sc.peek() == Some(b'}') {
        sc.pos += 1;
    } else {
        loop {
            let key = sc.string().map_err(|e| (e, env.id))?;
            let key_escaped = matches!(key.kind, Kind::String { escaped: true });
            sc.skip_ws();
            sc.expect(b':').map_err(|e| (e, env.id))?;
            sc.skip_ws();
            let name = key.bytes(line);
            if key_escaped {
                // Refused after the whole line is checked, so syntax errors come first.
                escaped_key = true;
                sc.value(1).map_err(|e| (e, env.id))?;
            } else {
                match name {
                    b"params" => {
                        env.params = Some(sc.params(&mut env).map_err(|e| (e, env.id))?);
                    }
                    _ => {
                        let value = sc.value(1).map_err(|e| (e, env.id))?;
                        match name {
                            b"id" => env.id = Some(value),
                            b"method" => env.method = Some(value),
                            b"result" => env.result = Some(value),
                            b"error" => env.error = Some(value),
                            _ => {}
                        }
                    }
                }
            }
            sc.skip_ws();
            match sc.peek() {
                Some(b',') => {
                    sc.pos += 1;
                    sc.skip_ws();
                }
                Some(b'}') => {
                    sc.pos += 1;
                    break;
                }
                _ => return Err((sc.err(), env.id)),
            }
        }
    }
    sc.skip_ws();
    if sc.pos != line.len() {
        return Err((sc.err(), env.id));
    }
    if escaped_key {
        return Err((ParseErrorKind::EscapedKey, env.id));
    }
    if !matches!(
        env.params,
        Some(Span {
            kind: Kind::Array,
            ..
        })
    ) {
        env.count = 0;
    }
    Ok(env)
}

/// Checks that `raw` is exactly one JSON value and returns its span.
pub(crate) fn single_value(raw: &[u8]) -> Result<Span, ParseErrorKind> {
    let mut sc = Scanner { s: raw, pos: 0 };
    sc.skip_ws();
    let span = sc.value(0)?;
    sc.skip_ws();
    if sc.pos != raw.len() {
        return Err(sc.err());
    }
    Ok(span)
}
