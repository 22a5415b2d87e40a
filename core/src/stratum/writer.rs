//! Server messages written into a caller-provided buffer, without allocation.
//!
//! Every function writes one complete line ending in `\n` and returns its length. Hex inputs
//! are taken already encoded (`&str`) so the job builder owns the encoding; they are checked to
//! be hex so nothing here can break the JSON.

use crate::difficulty::Difficulty;
use crate::limits::DIFFICULTY_TEXT_BYTES_MAX;
use crate::stratum::RequestId;
use crate::stratum::error::WriteError;
use crate::types::{Extranonce1, ExtranonceSize, JobId, VersionMask};

/// Decimal digits of `u64::MAX`.
pub(crate) const U64_DECIMAL_DIGITS_MAX: usize = 20;

/// Writes `v` in decimal at the end of `digits` and returns the digits written (no
/// allocation).
pub(crate) fn u64_decimal(v: u64, digits: &mut [u8; U64_DECIMAL_DIGITS_MAX]) -> &[u8] {
    let mut i = digits.len();
    let mut n = v;
    loop {
        i -= 1;
        #[allow(clippy::cast_possible_truncation, reason = "a decimal digit")]
        {
            digits[i] = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// Stratum error codes (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 20: other / unknown.
    Other,
    /// 21: job not found or stale.
    JobNotFound,
    /// 22: duplicate share.
    Duplicate,
    /// 23: low difficulty share.
    LowDifficulty,
    /// 24: unauthorized worker.
    Unauthorized,
    /// 25: not subscribed.
    NotSubscribed,
}

impl ErrorCode {
    /// The numeric code sent on the wire.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::Other => 20,
            Self::JobNotFound => 21,
            Self::Duplicate => 22,
            Self::LowDifficulty => 23,
            Self::Unauthorized => 24,
            Self::NotSubscribed => 25,
        }
    }
}

/// A bounded writer over a byte buffer.
#[derive(Debug)]
pub struct LineWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> LineWriter<'b> {
    /// A writer at the start of `buf`.
    #[must_use]
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Appends raw bytes.
    ///
    /// # Errors
    /// [`WriteError::BufferTooSmall`] if they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        let end = self.len + bytes.len();
        let Some(dst) = self.buf.get_mut(self.len..end) else {
            return Err(WriteError::BufferTooSmall {
                capacity: self.buf.len(),
            });
        };
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Appends `"<hex>"` after checking that `hex` is hex.
    ///
    /// # Errors
    /// [`WriteError::NotHex`] or [`WriteError::BufferTooSmall`].
    pub fn push_hex_string(&mut self, field: &'static str, hex: &str) -> Result<(), WriteError> {
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WriteError::NotHex { field });
        }
        self.push(b"\"")?;
        self.push(hex.as_bytes())?;
        self.push(b"\"")
    }

    /// Appends a JSON string with escaping.
    ///
    /// # Errors
    /// [`WriteError::BufferTooSmall`].
    pub fn push_string(&mut self, s: &str) -> Result<(), WriteError> {
        self.push(b"\"")?;
        for c in s.chars() {
            match c {
                '"' => self.push(b"\\\"")?,
                '\\' => self.push(b"\\\\")?,
                '\n' => self.push(b"\\n")?,
                '\r' => self.push(b"\\r")?,
                '\t' => self.push(b"\\t")?,
                c if u32::from(c) < 0x20 => {
                    let mut esc = *b"\\u0000";
                    let v = u32::from(c);
                    esc[4] = HEX[(v >> 4) as usize & 0xf];
                    esc[5] = HEX[v as usize & 0xf];
                    self.push(&esc)?;
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    self.push(c.encode_utf8(&mut utf8).as_bytes())?;
                }
            }
        }
        self.push(b"\"")
    }

    /// Appends an unsigned integer in decimal.
    ///
    /// # Errors
    /// [`WriteError::BufferTooSmall`].
    pub fn push_u64(&mut self, v: u64) -> Result<(), WriteError> {
        let mut digits = [0u8; U64_DECIMAL_DIGITS_MAX];
        self.push(u64_decimal(v, &mut digits))
    }

    /// Appends the hex of a `u32`, zero-padded to 8 digits.
    ///
    /// # Errors
    /// [`WriteError::BufferTooSmall`].
    pub fn push_u32_hex8(&mut self, v: u32) -> Result<(), WriteError> {
        let mut out = [0u8; 10];
        out[0] = b'"';
        out[9] = b'"';
        for (i, o) in out[1..9].iter_mut().enumerate() {
            *o = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
        }
        self.push(&out)
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The written bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The fields of a `mining.notify`, hex already encoded by the job builder.
#[derive(Clone, Copy, Debug)]
pub struct Notify<'a> {
    /// The job id.
    pub job_id: JobId,
    /// Previous block hash, in Stratum's word-swapped order, 64 hex digits.
    pub prevhash: &'a str,
    /// Coinbase part before the extranonces.
    pub coinb1: &'a str,
    /// Coinbase part after the extranonces.
    pub coinb2: &'a str,
    /// Merkle branch, each 64 hex digits.
    pub merkle_branch: &'a [&'a str],
    /// Block version, 8 hex digits.
    pub version: &'a str,
    /// nBits, 8 hex digits.
    pub nbits: &'a str,
    /// ntime, 8 hex digits.
    pub ntime: &'a str,
    /// Whether the miner must drop older jobs.
    pub clean_jobs: bool,
}

/// Appends a job id as a JSON string of lowercase hex without leading zeros (as
/// [`JobId`]'s `Display`).
fn push_job_id(w: &mut LineWriter<'_>, job_id: JobId) -> Result<(), WriteError> {
    let v = job_id.get();
    let mut out = [0u8; 18];
    let digits = ((64 - v.leading_zeros()).div_ceil(4)).max(1) as usize;
    out[0] = b'"';
    for i in 0..digits {
        let shift = 4 * (digits - 1 - i);
        out[1 + i] = HEX[((v >> shift) & 0xf) as usize];
    }
    out[1 + digits] = b'"';
    w.push(&out[..digits + 2])
}

fn finish(w: &mut LineWriter<'_>) -> Result<usize, WriteError> {
    w.push(b"\n")?;
    Ok(w.len())
}

/// Writes `{"id":null,"method":"mining.notify","params":[...]}\n`. `method` comes before the
/// long params so a one-read probe (ESP-Miner) finds it early.
///
/// # Errors
/// [`WriteError`] if `out` is too small or a field is not hex.
pub fn write_notify(out: &mut [u8], n: &Notify<'_>) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":null,\"method\":\"mining.notify\",\"params\":[")?;
    push_job_id(&mut w, n.job_id)?;
    w.push(b",")?;
    w.push_hex_string("prevhash", n.prevhash)?;
    w.push(b",")?;
    w.push_hex_string("coinb1", n.coinb1)?;
    w.push(b",")?;
    w.push_hex_string("coinb2", n.coinb2)?;
    w.push(b",[")?;
    for (i, branch) in n.merkle_branch.iter().enumerate() {
        if i > 0 {
            w.push(b",")?;
        }
        w.push_hex_string("merkle_branch", branch)?;
    }
    w.push(b"],")?;
    w.push_hex_string("version", n.version)?;
    w.push(b",")?;
    w.push_hex_string("nbits", n.nbits)?;
    w.push(b",")?;
    w.push_hex_string("ntime", n.ntime)?;
    w.push(if n.clean_jobs {
        b",true]}"
    } else {
        b",false]}"
    })?;
    finish(&mut w)
}

/// The difficulty as sent: whole difficulties as integers; fractional ones as decimals only if
/// `fractional_ok`, otherwise rounded up to a whole number ≥ 1 (NerdQAxe parses a `uint32`).
#[must_use]
pub fn difficulty_for_client(d: Difficulty, fractional_ok: bool) -> Difficulty {
    if fractional_ok || d.whole().is_some() {
        return d;
    }
    let up = d.floor().saturating_add(1).max(1);
    Difficulty::from_whole(up).unwrap_or(Difficulty::MAX)
}

/// Writes a difficulty as a JSON number (see [`difficulty_for_client`]): the shortest decimal
/// text that reads back as the same fixed-point value ([`Difficulty::write_shortest`]).
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn push_difficulty(
    w: &mut LineWriter<'_>,
    d: Difficulty,
    fractional_ok: bool,
) -> Result<(), WriteError> {
    let d = difficulty_for_client(d, fractional_ok);
    match d.whole() {
        Some(whole) => w.push_u64(whole),
        None => {
            // The shortest text that reads back as the same fixed-point value (`0.00015`),
            // written on the stack: no allocation.
            let mut text = [0u8; DIFFICULTY_TEXT_BYTES_MAX];
            w.push(d.write_shortest(&mut text).as_bytes())
        }
    }
}

/// Writes `{"id":null,"method":"mining.set_difficulty","params":[<d>]}\n`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_set_difficulty(
    out: &mut [u8],
    d: Difficulty,
    fractional_ok: bool,
) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[")?;
    push_difficulty(&mut w, d, fractional_ok)?;
    w.push(b"]}")?;
    finish(&mut w)
}

/// Writes `{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}\n`. Never send
/// it before the authorize reply (MINERS rule 12).
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_set_version_mask(out: &mut [u8], mask: VersionMask) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":null,\"method\":\"mining.set_version_mask\",\"params\":[")?;
    w.push_u32_hex8(mask.bits())?;
    w.push(b"]}")?;
    finish(&mut w)
}

/// Writes `{"id":null,"method":"mining.set_extranonce","params":["<en1>",<size>]}\n`. Only for
/// clients that sent `mining.extranonce.subscribe`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_set_extranonce(
    out: &mut [u8],
    extranonce1: &Extranonce1,
    extranonce2_size: ExtranonceSize,
) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":null,\"method\":\"mining.set_extranonce\",\"params\":[")?;
    push_extranonce1(&mut w, extranonce1)?;
    w.push(b",")?;
    w.push_u64(extranonce2_size.bytes() as u64)?;
    w.push(b"]}")?;
    finish(&mut w)
}

fn push_extranonce1(w: &mut LineWriter<'_>, en1: &Extranonce1) -> Result<(), WriteError> {
    let mut hex = [0u8; 2 * crate::limits::EXTRANONCE1_BYTES];
    let text = crate::hex::encode_to_slice(en1.as_bytes(), &mut hex);
    w.push(b"\"")?;
    w.push(text.as_bytes())?;
    w.push(b"\"")
}

/// Writes `client.reconnect`: `[]` (same host) or `["host",port,wait_secs]`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_reconnect(
    out: &mut [u8],
    target: Option<(&str, u16)>,
    wait_secs: u32,
) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":null,\"method\":\"client.reconnect\",\"params\":[")?;
    if let Some((host, port)) = target {
        w.push_string(host)?;
        w.push(b",")?;
        w.push_u64(u64::from(port))?;
        w.push(b",")?;
        w.push_u64(u64::from(wait_secs))?;
    }
    w.push(b"]}")?;
    finish(&mut w)
}

/// Writes a server request `{"id":<id>,"method":"mining.ping","params":[]}\n`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_ping(out: &mut [u8], id: &RequestId) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":")?;
    w.push(id.as_json())?;
    w.push(b",\"method\":\"mining.ping\",\"params\":[]}")?;
    finish(&mut w)
}

fn reply_start<'b>(out: &'b mut [u8], id: &RequestId) -> Result<LineWriter<'b>, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":")?;
    w.push(id.as_json())?;
    w.push(b",\"result\":")?;
    Ok(w)
}

fn reply_end(mut w: LineWriter<'_>) -> Result<usize, WriteError> {
    w.push(b",\"error\":null}")?;
    finish(&mut w)
}

/// Writes the subscribe reply
/// `{"id":<id>,"result":[[["mining.set_difficulty","<sid>"],["mining.notify","<sid>"]],
/// "<en1>",<size>],"error":null}\n`; `subscription_id` is hex (it is also the session id a
/// client may send back to resume).
///
/// # Errors
/// [`WriteError`].
pub fn write_subscribe_reply(
    out: &mut [u8],
    id: &RequestId,
    subscription_id: &str,
    extranonce1: &Extranonce1,
    extranonce2_size: ExtranonceSize,
) -> Result<usize, WriteError> {
    let mut w = reply_start(out, id)?;
    w.push(b"[[[\"mining.set_difficulty\",")?;
    w.push_hex_string("subscription_id", subscription_id)?;
    w.push(b"],[\"mining.notify\",")?;
    w.push_hex_string("subscription_id", subscription_id)?;
    w.push(b"]],")?;
    push_extranonce1(&mut w, extranonce1)?;
    w.push(b",")?;
    w.push_u64(extranonce2_size.bytes() as u64)?;
    w.push(b"]")?;
    reply_end(w)
}

/// Writes `{"id":<id>,"result":<true|false>,"error":null}\n` (authorize, submit accepted,
/// `mining.multi_version` refused with `false`).
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_result_bool(out: &mut [u8], id: &RequestId, ok: bool) -> Result<usize, WriteError> {
    let mut w = reply_start(out, id)?;
    w.push(if ok { b"true" } else { b"false" })?;
    reply_end(w)
}

/// Writes `{"id":<id>,"result":"<text>","error":null}\n` (e.g. `"pong"`).
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_result_string(
    out: &mut [u8],
    id: &RequestId,
    text: &str,
) -> Result<usize, WriteError> {
    let mut w = reply_start(out, id)?;
    w.push_string(text)?;
    reply_end(w)
}

/// Writes `{"id":<id>,"result":null,"error":[<code>,"<message>",null]}\n`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_error(
    out: &mut [u8],
    id: &RequestId,
    code: ErrorCode,
    message: &str,
) -> Result<usize, WriteError> {
    let mut w = LineWriter::new(out);
    w.push(b"{\"id\":")?;
    w.push(id.as_json())?;
    w.push(b",\"result\":null,\"error\":[")?;
    w.push_u64(u64::from(code.code()))?;
    w.push(b",")?;
    w.push_string(message)?;
    w.push(b",null]}")?;
    finish(&mut w)
}

/// What a `mining.configure` reply says. Only requested extensions get keys (MINERS rule 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigureReply {
    /// `"version-rolling":true,"version-rolling.mask":"<mask>"` when `Some`.
    pub version_rolling: Option<VersionMask>,
    /// `"minimum-difficulty":<bool>` when `Some`.
    pub minimum_difficulty: Option<bool>,
    /// `"subscribe-extranonce":<bool>` when `Some`.
    pub subscribe_extranonce: Option<bool>,
}

impl crate::stratum::Configure {
    /// The reply for this request: the mask `requested & pool_mask` if version rolling was
    /// requested, `minimum-difficulty:true` if it was requested, and nothing else.
    #[must_use]
    pub fn reply(&self, pool_mask: VersionMask) -> ConfigureReply {
        ConfigureReply {
            version_rolling: self.version_rolling.map(|vr| pool_mask.negotiate(vr.mask)),
            minimum_difficulty: self.minimum_difficulty.map(|_| true),
            subscribe_extranonce: None,
        }
    }
}

/// Writes the `mining.configure` reply, e.g.
/// `{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`.
///
/// # Errors
/// [`WriteError::BufferTooSmall`].
pub fn write_configure_reply(
    out: &mut [u8],
    id: &RequestId,
    reply: &ConfigureReply,
) -> Result<usize, WriteError> {
    let mut w = reply_start(out, id)?;
    w.push(b"{")?;
    let mut first = true;
    let mut sep = |w: &mut LineWriter<'_>| -> Result<(), WriteError> {
        if !first {
            w.push(b",")?;
        }
        first = false;
        Ok(())
    };
    if let Some(mask) = reply.version_rolling {
        sep(&mut w)?;
        w.push(b"\"version-rolling\":true,\"version-rolling.mask\":")?;
        w.push_u32_hex8(mask.bits())?;
    }
    if let Some(ok) = reply.minimum_difficulty {
        sep(&mut w)?;
        w.push(b"\"minimum-difficulty\":")?;
        w.push(if ok { b"true" } else { b"false" })?;
    }
    if let Some(ok) = reply.subscribe_extranonce {
        sep(&mut w)?;
        w.push(b"\"subscribe-extranonce\":")?;
        w.push(if ok { b"true" } else { b"false" })?;
    }
    w.push(b"}")?;
    reply_end(w)
}
