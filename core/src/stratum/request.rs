//! Typed client requests and the line parser.
//!
//! [`parse_line`] scans every line once without allocating ([`super::scan`]). A
//! `mining.submit` is answered entirely from that scan and borrows its fields from the line;
//! every other method is rarer and decodes its params with `serde_json` (slow path, allocates).

use core::fmt;

use serde_json::Value;

use crate::difficulty::{Difficulty, ShareTarget};
use crate::limits::{
    CONFIGURE_EXTENSIONS_MAX, LINE_BYTES_MAX, METHOD_BYTES_MAX, PASSWORD_BYTES_MAX,
    REQUEST_ID_BYTES_MAX, SUBMIT_FIELD_BYTES_MAX, SUBSCRIBE_SESSION_BYTES_MAX,
    USER_AGENT_BYTES_MAX, USERNAME_BYTES_MAX,
};
use crate::stratum::error::{ParseError, ParseErrorKind};
use crate::stratum::scan::{self, Envelope, Kind, Span};
use crate::stratum::writer::{U64_DECIMAL_DIGITS_MAX, u64_decimal};

/// A request id exactly as the client wrote it (JSON number, string or `null`), kept so the
/// reply echoes it with the same type. Fixed size: copying it never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId {
    len: u8,
    bytes: [u8; REQUEST_ID_BYTES_MAX],
}

impl RequestId {
    /// The `null` id (notifications, and errors whose id could not be recovered).
    pub const NULL: Self = {
        let mut bytes = [0u8; REQUEST_ID_BYTES_MAX];
        bytes[0] = b'n';
        bytes[1] = b'u';
        bytes[2] = b'l';
        bytes[3] = b'l';
        Self { len: 4, bytes }
    };

    /// Validates `raw` as one JSON number, string or `null` of at most
    /// [`REQUEST_ID_BYTES_MAX`] bytes (surrounding whitespace is dropped).
    ///
    /// # Errors
    /// [`ParseErrorKind::IdType`], [`ParseErrorKind::IdTooLong`] or a JSON error.
    pub fn from_json(raw: &[u8]) -> Result<Self, ParseErrorKind> {
        let span = scan::single_value(raw)?;
        Self::from_span(span, raw)
    }

    fn from_span(span: Span, line: &[u8]) -> Result<Self, ParseErrorKind> {
        match span.kind {
            Kind::String { .. } | Kind::Number | Kind::Null => {}
            _ => return Err(ParseErrorKind::IdType),
        }
        let raw = span.raw(line);
        if raw.len() > REQUEST_ID_BYTES_MAX {
            return Err(ParseErrorKind::IdTooLong { len: raw.len() });
        }
        let mut bytes = [0u8; REQUEST_ID_BYTES_MAX];
        bytes[..raw.len()].copy_from_slice(raw);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "REQUEST_ID_BYTES_MAX <= 255"
        )]
        Ok(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    /// A numeric id (as a server sends for its own requests).
    #[must_use]
    pub fn from_u64(v: u64) -> Self {
        let mut bytes = [0u8; REQUEST_ID_BYTES_MAX];
        let mut digits = [0u8; U64_DECIMAL_DIGITS_MAX];
        let decimal = u64_decimal(v, &mut digits);
        let len = decimal.len();
        bytes[..len].copy_from_slice(decimal);
        #[allow(clippy::cast_possible_truncation, reason = "at most 20 digits")]
        Self {
            len: len as u8,
            bytes,
        }
    }

    /// The JSON text of the id, to be written verbatim into the reply.
    #[must_use]
    pub fn as_json(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Whether the id is `null`.
    #[must_use]
    pub fn is_null(&self) -> bool {
        self.as_json() == b"null"
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", String::from_utf8_lossy(self.as_json()))
    }
}

/// One parsed client line: the id to echo and the typed request.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientMessage<'a> {
    /// The id to echo in the reply.
    pub id: RequestId,
    /// What the client asked for.
    pub request: Request<'a>,
}

/// A typed client request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `mining.subscribe`.
    Subscribe(Subscribe),
    /// `mining.authorize`.
    Authorize(Authorize),
    /// `mining.configure` (BIP310).
    Configure(Configure),
    /// `mining.submit`, borrowed from the line.
    Submit(Submit<'a>),
    /// `mining.suggest_difficulty`, clamped into [`Difficulty::MIN`]..=[`Difficulty::MAX`].
    SuggestDifficulty(Difficulty),
    /// `mining.suggest_target`, converted to a difficulty and clamped.
    SuggestTarget(Difficulty),
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// bmminer's pre-BIP310 `mining.multi_version` with its parameter; answer with
    /// `result:false` (never send `mining.multi_version` back).
    MultiVersion(u32),
    /// `mining.ping` from the client; answer with `result:"pong"`.
    Ping,
    /// `{"method":"pong"}`: ESP-Miner's answer to our `mining.ping`.
    Pong,
    /// A line without `method`: the client's answer to a server request (`mining.ping`,
    /// `client.get_version`).
    Response(Response),
    /// Any other method (truncated to [`METHOD_BYTES_MAX`] bytes); answer with an error, do
    /// not disconnect.
    Unknown(String),
}

/// `mining.subscribe` params: `[]`, `[ua]`, `[ua, session]`, `[ua, null, "host:port", null]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscribe {
    /// The user agent, truncated to [`USER_AGENT_BYTES_MAX`] bytes on a char boundary.
    pub user_agent: Option<String>,
    /// The session id to resume (ignored when over [`SUBSCRIBE_SESSION_BYTES_MAX`] bytes).
    pub session: Option<String>,
}

/// Options a miner put in its password (`d=`, `diff=`, `md=`), comma, semicolon or space
/// separated; anything else in the password is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PasswordHint {
    /// `d=<n>` or `diff=<n>`: the starting difficulty asked for.
    pub difficulty_start: Option<Difficulty>,
    /// `md=<n>`: the lowest difficulty the miner wants.
    pub difficulty_min: Option<Difficulty>,
}

impl PasswordHint {
    /// Reads the options out of a password.
    #[must_use]
    pub fn parse(password: &str) -> Self {
        let mut hint = Self::default();
        for token in password.split([',', ';', ' ', '&']) {
            let Some((key, value)) = token.split_once('=') else {
                continue;
            };
            let Some(d) = parse_difficulty_text(value) else {
                continue;
            };
            match key.trim() {
                "d" | "diff" => hint.difficulty_start = Some(d),
                "md" => hint.difficulty_min = Some(d),
                _ => {}
            }
        }
        hint
    }
}

fn parse_difficulty_text(text: &str) -> Option<Difficulty> {
    let v: f64 = text.trim().parse().ok()?;
    clamp_difficulty(v)
}

/// A positive finite value clamped into the difficulty range; `None` otherwise.
fn clamp_difficulty(v: f64) -> Option<Difficulty> {
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    let min = Difficulty::MIN.to_f64_lossy();
    let max = Difficulty::MAX.to_f64_lossy();
    Difficulty::from_f64_lossy(v.clamp(min, max)).ok()
}

/// `mining.authorize` params: `[username, password]` (the password may be empty or absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorize {
    /// `<address>[.<worker>]`, at most [`USERNAME_BYTES_MAX`] bytes.
    pub username: String,
    /// The password, at most [`PASSWORD_BYTES_MAX`] bytes.
    pub password: String,
    /// Difficulty options found in the password.
    pub hint: PasswordHint,
}

/// The `version-rolling` extension of `mining.configure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRollingRequest {
    /// `version-rolling.mask` (`ffffffff` when absent, as BIP310 says).
    pub mask: u32,
    /// `version-rolling.min-bit-count`, sent as a number or a string, if usable.
    pub min_bit_count: Option<u32>,
}

/// `mining.configure` params: `[[extension, ...], {"<ext>.<param>": value, ...}]`.
/// Unknown extensions are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Configure {
    /// `version-rolling`, if requested.
    pub version_rolling: Option<VersionRollingRequest>,
    /// `minimum-difficulty`, if requested, with `minimum-difficulty.value` if usable.
    pub minimum_difficulty: Option<Option<Difficulty>>,
    /// `subscribe-extranonce` was requested.
    pub subscribe_extranonce: bool,
    /// `info` was requested.
    pub info: bool,
}

/// `mining.submit` params, borrowed from the line as raw bytes (hex in either case; nonce and
/// ntime possibly unpadded). Decode with [`crate::hex`] and the newtypes' `from_hex`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submit<'a> {
    /// The worker (username) the share is for.
    pub worker: &'a [u8],
    /// The job id, hex.
    pub job_id: &'a [u8],
    /// Extranonce2, hex.
    pub extranonce2: &'a [u8],
    /// ntime, hex.
    pub ntime: &'a [u8],
    /// Nonce, hex.
    pub nonce: &'a [u8],
    /// Version bits, hex (6-param form).
    pub version_bits: Option<&'a [u8]>,
}

/// A `mining.submit` with owned fields, from the reference parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitOwned {
    /// The request id's JSON text.
    pub id: Vec<u8>,
    /// The worker.
    pub worker: Vec<u8>,
    /// The job id.
    pub job_id: Vec<u8>,
    /// Extranonce2.
    pub extranonce2: Vec<u8>,
    /// ntime.
    pub ntime: Vec<u8>,
    /// Nonce.
    pub nonce: Vec<u8>,
    /// Version bits.
    pub version_bits: Option<Vec<u8>>,
}

impl Submit<'_> {
    /// An owned copy (for tests and logs; allocates).
    #[must_use]
    pub fn to_owned_submit(&self, id: &RequestId) -> SubmitOwned {
        SubmitOwned {
            id: id.as_json().to_vec(),
            worker: self.worker.to_vec(),
            job_id: self.job_id.to_vec(),
            extranonce2: self.extranonce2.to_vec(),
            ntime: self.ntime.to_vec(),
            nonce: self.nonce.to_vec(),
            version_bits: self.version_bits.map(<[u8]>::to_vec),
        }
    }
}

/// A client's answer to a server request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `error` was absent or `null`.
    pub ok: bool,
    /// `result` when it is a string (`"pong"`, a firmware version), truncated to
    /// [`USER_AGENT_BYTES_MAX`] bytes.
    pub result: Option<String>,
}

/// Parses one client line (newline removed; a trailing `\r` is tolerated).
///
/// `mining.submit` does not allocate. Never panics; the work is linear in the line length,
/// which is at most [`LINE_BYTES_MAX`].
///
/// # Errors
/// A [`ParseError`] carrying the request id whenever it was recovered.
pub fn parse_line(line: &[u8]) -> Result<ClientMessage<'_>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > LINE_BYTES_MAX {
        return Err(ParseError::new(
            ParseErrorKind::LineTooLong { len: line.len() },
            None,
        ));
    }
    if let Err(e) = core::str::from_utf8(line) {
        return Err(ParseError::new(
            ParseErrorKind::Utf8 {
                offset: e.valid_up_to(),
            },
            None,
        ));
    }
    let env = scan::envelope(line).map_err(|(kind, id)| {
        let id = id.and_then(|span| RequestId::from_span(span, line).ok());
        ParseError::new(kind, id)
    })?;
    let id = match env.id {
        None => RequestId::NULL,
        Some(span) => RequestId::from_span(span, line).map_err(|k| ParseError::new(k, None))?,
    };
    let fail = |kind| ParseError::new(kind, Some(id));
    let request = request(line, &env).map_err(fail)?;
    Ok(ClientMessage { id, request })
}

fn request<'a>(line: &'a [u8], env: &Envelope) -> Result<Request<'a>, ParseErrorKind> {
    let Some(method) = env.method else {
        if env.result.is_some() || env.error.is_some() {
            return Ok(Request::Response(response(line, env)));
        }
        return Err(ParseErrorKind::MethodMissing);
    };
    let Kind::String { escaped } = method.kind else {
        return Err(ParseErrorKind::MethodType);
    };
    match env.params {
        None
        | Some(Span {
            kind: Kind::Array | Kind::Null,
            ..
        }) => {}
        Some(_) => return Err(ParseErrorKind::ParamsType),
    }
    if env.count > crate::limits::PARAMS_COUNT_MAX {
        return Err(ParseErrorKind::TooManyParams);
    }
    let name = method.bytes(line);
    if !escaped && name == b"mining.submit" {
        return submit(line, env.params()).map(Request::Submit);
    }
    let name: String = if escaped {
        serde_json::from_slice(method.raw(line)).map_err(|_| ParseErrorKind::MethodType)?
    } else {
        String::from_utf8_lossy(name).into_owned()
    };
    slow_request(&name, line, env)
}

fn response(line: &[u8], env: &Envelope) -> Response {
    let ok = env.error.is_none_or(|e| e.kind == Kind::Null);
    let result = env.result.and_then(|span| match span.kind {
        Kind::String { .. } => {
            let s: String = serde_json::from_slice(span.raw(line)).ok()?;
            Some(truncate(s, USER_AGENT_BYTES_MAX))
        }
        _ => None,
    });
    Response { ok, result }
}

/// The submit fast path: 5 or 6 string params, no escapes.
fn submit<'a>(line: &'a [u8], params: &[Span]) -> Result<Submit<'a>, ParseErrorKind> {
    if params.len() != 5 && params.len() != 6 {
        return Err(ParseErrorKind::ParamCount {
            method: "mining.submit",
            expected: "5 or 6",
            got: params.len(),
        });
    }
    let mut fields: [&[u8]; 6] = [&[]; 6];
    for (index, (span, field)) in params.iter().zip(fields.iter_mut()).enumerate() {
        match span.kind {
            Kind::String { escaped: false } => {}
            Kind::String { escaped: true } => return Err(ParseErrorKind::SubmitEscape { index }),
            _ => return Err(ParseErrorKind::ParamType { index }),
        }
        let bytes = span.bytes(line);
        let max = if index == 0 {
            USERNAME_BYTES_MAX
        } else {
            SUBMIT_FIELD_BYTES_MAX
        };
        if bytes.len() > max {
            return Err(ParseErrorKind::ParamTooLong {
                index,
                len: bytes.len(),
            });
        }
        *field = bytes;
    }
    Ok(Submit {
        worker: fields[0],
        job_id: fields[1],
        extranonce2: fields[2],
        ntime: fields[3],
        nonce: fields[4],
        version_bits: (params.len() == 6).then_some(fields[5]),
    })
}

fn slow_params(line: &[u8], env: &Envelope) -> Result<Vec<Value>, ParseErrorKind> {
    match env.params {
        Some(
            span @ Span {
                kind: Kind::Array, ..
            },
        ) => {
            // The scanner bounded the depth, so serde_json's recursion is bounded too.
            serde_json::from_slice(span.raw(line)).map_err(|_| ParseErrorKind::ParamsType)
        }
        _ => Ok(Vec::new()),
    }
}

fn slow_request<'a>(
    name: &str,
    line: &'a [u8],
    env: &Envelope,
) -> Result<Request<'a>, ParseErrorKind> {
    if name == "mining.submit" {
        // The method name was escaped; the params are still plain spans of the line.
        return submit(line, env.params()).map(Request::Submit);
    }
    let params = slow_params(line, env)?;
    Ok(match name {
        "mining.subscribe" => Request::Subscribe(subscribe(&params)),
        "mining.authorize" => Request::Authorize(authorize(&params)?),
        "mining.configure" => Request::Configure(configure(&params)?),
        "mining.suggest_difficulty" => Request::SuggestDifficulty(suggest_difficulty(&params)?),
        "mining.suggest_target" => Request::SuggestTarget(suggest_target(&params)?),
        "mining.extranonce.subscribe" => Request::ExtranonceSubscribe,
        "mining.multi_version" => {
            let v = params.first().and_then(Value::as_u64).unwrap_or(0);
            Request::MultiVersion(u32::try_from(v).unwrap_or(u32::MAX))
        }
        "mining.ping" => Request::Ping,
        "pong" | "mining.pong" => Request::Pong,
        _ => {
            // ckpool's legacy form: `mining.suggest_difficulty(<n>)` as the method name.
            if let Some(d) = name
                .strip_prefix("mining.suggest_difficulty(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(parse_difficulty_text)
            {
                return Ok(Request::SuggestDifficulty(d));
            }
            Request::Unknown(truncate(name.to_owned(), METHOD_BYTES_MAX))
        }
    })
}

/// Truncates to at most `max` bytes on a char boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

fn subscribe(params: &[Value]) -> Subscribe {
    let user_agent = params
        .first()
        .and_then(Value::as_str)
        .map(|ua| truncate(ua.to_owned(), USER_AGENT_BYTES_MAX));
    let session = params
        .get(1)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= SUBSCRIBE_SESSION_BYTES_MAX)
        .map(str::to_owned);
    Subscribe {
        user_agent,
        session,
    }
}

fn authorize(params: &[Value]) -> Result<Authorize, ParseErrorKind> {
    if params.is_empty() || params.len() > 2 {
        return Err(ParseErrorKind::ParamCount {
            method: "mining.authorize",
            expected: "1 or 2",
            got: params.len(),
        });
    }
    let username = params[0]
        .as_str()
        .ok_or(ParseErrorKind::ParamType { index: 0 })?;
    if username.len() > USERNAME_BYTES_MAX {
        return Err(ParseErrorKind::ParamTooLong {
            index: 0,
            len: username.len(),
        });
    }
    let password = match params.get(1) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ParseErrorKind::ParamType { index: 1 }),
    };
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(ParseErrorKind::ParamTooLong {
            index: 1,
            len: password.len(),
        });
    }
    Ok(Authorize {
        username: username.to_owned(),
        password: password.to_owned(),
        hint: PasswordHint::parse(password),
    })
}

fn configure(params: &[Value]) -> Result<Configure, ParseErrorKind> {
    let extensions = match params.first() {
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ParseErrorKind::ParamType { index: 0 }),
        None => {
            return Err(ParseErrorKind::ParamCount {
                method: "mining.configure",
                expected: "1 or 2",
                got: 0,
            });
        }
    };
    let empty = serde_json::Map::new();
    let options = match params.get(1) {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(ParseErrorKind::ParamType { index: 1 }),
    };
    let mut out = Configure::default();
    for ext in extensions.iter().take(CONFIGURE_EXTENSIONS_MAX) {
        match ext.as_str() {
            Some("version-rolling") => {
                let mask = match options.get("version-rolling.mask") {
                    None | Some(Value::Null) => u32::MAX,
                    Some(Value::String(s)) => crate::hex::parse_u32(s.as_bytes())
                        .map_err(|_| ParseErrorKind::ParamValue { index: 1 })?,
                    Some(_) => return Err(ParseErrorKind::ParamValue { index: 1 }),
                };
                let min_bit_count = options.get("version-rolling.min-bit-count").and_then(|v| {
                    match v {
                        Value::Number(n) => n.as_u64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|&n| n <= 32)
                });
                out.version_rolling = Some(VersionRollingRequest {
                    mask,
                    min_bit_count,
                });
            }
            Some("minimum-difficulty") => {
                let value = options
                    .get("minimum-difficulty.value")
                    .and_then(|v| match v {
                        Value::Number(n) => n.as_f64().and_then(clamp_difficulty),
                        Value::String(s) => parse_difficulty_text(s),
                        _ => None,
                    });
                out.minimum_difficulty = Some(value);
            }
            Some("subscribe-extranonce") => out.subscribe_extranonce = true,
            Some("info") => out.info = true,
            _ => {}
        }
    }
    Ok(out)
}

fn first_number(params: &[Value], method: &'static str) -> Result<f64, ParseErrorKind> {
    let Some(first) = params.first() else {
        return Err(ParseErrorKind::ParamCount {
            method,
            expected: "1",
            got: 0,
        });
    };
    match first {
        Value::Number(n) => n.as_f64().ok_or(ParseErrorKind::ParamValue { index: 0 }),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| ParseErrorKind::ParamValue { index: 0 }),
        _ => Err(ParseErrorKind::ParamType { index: 0 }),
    }
}

fn suggest_difficulty(params: &[Value]) -> Result<Difficulty, ParseErrorKind> {
    let v = first_number(params, "mining.suggest_difficulty")?;
    clamp_difficulty(v).ok_or(ParseErrorKind::ParamValue { index: 0 })
}

fn suggest_target(params: &[Value]) -> Result<Difficulty, ParseErrorKind> {
    let Some(first) = params.first() else {
        return Err(ParseErrorKind::ParamCount {
            method: "mining.suggest_target",
            expected: "1",
            got: 0,
        });
    };
    let text = first
        .as_str()
        .ok_or(ParseErrorKind::ParamType { index: 0 })?;
    if text.is_empty() || text.len() > 64 {
        return Err(ParseErrorKind::ParamValue { index: 0 });
    }
    // Left-pad to 64 digits, then decode as a big-endian 256-bit number.
    let mut padded = [b'0'; 64];
    padded[64 - text.len()..].copy_from_slice(text.as_bytes());
    let mut be = [0u8; 32];
    crate::hex::decode_to_slice(&padded, &mut be)
        .map_err(|_| ParseErrorKind::ParamValue { index: 0 })?;
    be.reverse();
    let d = ShareTarget::from_le_bytes(be).to_difficulty_lossy();
    clamp_difficulty(d).ok_or(ParseErrorKind::ParamValue { index: 0 })
}

/// The slow reference parser for `mining.submit`: `serde_json` over the whole line, with the
/// same limits as [`parse_line`]. Used by tests and the fuzz target to check the fast path.
///
/// # Errors
/// [`ParseErrorKind`] if the line is not a valid submit (the kinds need not match the fast
/// path's exactly).
pub fn parse_submit_reference(line: &[u8]) -> Result<SubmitOwned, ParseErrorKind> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > LINE_BYTES_MAX {
        return Err(ParseErrorKind::LineTooLong { len: line.len() });
    }
    // Depth check before serde_json recurses.
    scan::single_value(line)?;
    let value: Value =
        serde_json::from_slice(line).map_err(|_| ParseErrorKind::Json { offset: 0 })?;
    let obj = value.as_object().ok_or(ParseErrorKind::NotAnObject)?;
    if obj.get("method").and_then(Value::as_str) != Some("mining.submit") {
        return Err(ParseErrorKind::MethodMissing);
    }
    let id = match obj.get("id") {
        None => b"null".to_vec(),
        Some(v @ (Value::Null | Value::Number(_) | Value::String(_))) => {
            serde_json::to_vec(v).map_err(|_| ParseErrorKind::IdType)?
        }
        Some(_) => return Err(ParseErrorKind::IdType),
    };
    let params = obj
        .get("params")
        .and_then(Value::as_array)
        .ok_or(ParseErrorKind::ParamsType)?;
    if params.len() != 5 && params.len() != 6 {
        return Err(ParseErrorKind::ParamCount {
            method: "mining.submit",
            expected: "5 or 6",
            got: params.len(),
        });
    }
    let mut fields = Vec::with_capacity(6);
    for (index, p) in params.iter().enumerate() {
        let s = p.as_str().ok_or(ParseErrorKind::ParamType { index })?;
        fields.push(s.as_bytes().to_vec());
    }
    let version_bits = if fields.len() == 6 {
        fields.pop()
    } else {
        None
    };
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(SubmitOwned {
        id,
        worker: next(),
        job_id: next(),
        extranonce2: next(),
        ntime: next(),
        nonce: next(),
        version_bits,
    })
}
