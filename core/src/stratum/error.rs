//! Errors of the Stratum V1 codec.

use thiserror::Error;

use crate::limits::{JSON_DEPTH_MAX, LINE_BYTES_MAX, PARAMS_COUNT_MAX, REQUEST_ID_BYTES_MAX};
use crate::stratum::RequestId;

/// What was wrong with a client line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line is longer than [`LINE_BYTES_MAX`].
    #[error("line of {len} bytes is longer than {LINE_BYTES_MAX}")]
    LineTooLong {
        /// Bytes in the line.
        len: usize,
    },
    /// The line is not valid UTF-8.
    #[error("invalid utf-8 at offset {offset}")]
    Utf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The line is not valid JSON.
    #[error("invalid json at offset {offset}")]
    Json {
        /// Offset of the first unexpected byte.
        offset: usize,
    },
    /// Arrays and objects nest deeper than [`JSON_DEPTH_MAX`].
    #[error("json nests deeper than {JSON_DEPTH_MAX}")]
    TooDeep,
    /// The line is JSON but not an object.
    #[error("request is not a json object")]
    NotAnObject,
    /// A top-level key uses escapes (no real client does; refused rather than decoded).
    #[error("escaped object keys are not supported")]
    EscapedKey,
    /// The id is not a number, a string or null.
    #[error("id must be a number, a string or null")]
    IdType,
    /// The id's JSON text is longer than [`REQUEST_ID_BYTES_MAX`].
    #[error("id of {len} bytes is longer than {REQUEST_ID_BYTES_MAX}")]
    IdTooLong {
        /// Bytes of JSON text in the id.
        len: usize,
    },
    /// Neither `method` nor `result`/`error` is present.
    #[error("missing method")]
    MethodMissing,
    /// `method` is not a string.
    #[error("method must be a string")]
    MethodType,
    /// `params` is neither an array nor null.
    #[error("params must be an array")]
    ParamsType,
    /// More than [`PARAMS_COUNT_MAX`] params.
    #[error("more than {PARAMS_COUNT_MAX} params")]
    TooManyParams,
    /// The wrong number of params for the method.
    #[error("{method} takes {expected}, got {got} params")]
    ParamCount {
        /// The method.
        method: &'static str,
        /// What the method takes, in words.
        expected: &'static str,
        /// Params sent.
        got: usize,
    },
    /// A param has the wrong JSON type.
    #[error("param {index} has the wrong type")]
    ParamType {
        /// Index of the param.
        index: usize,
    },
    /// A string param is too long.
    #[error("param {index} is too long ({len} bytes)")]
    ParamTooLong {
        /// Index of the param.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A param has the right type but an unusable value.
    #[error("param {index} has an invalid value")]
    ParamValue {
        /// Index of the param.
        index: usize,
    },
    /// A `mining.submit` string param contains a backslash escape (no firmware sends one).
    #[error("escapes are not supported in submit param {index}")]
    SubmitEscape {
        /// Index of the param.
        index: usize,
    },
}

/// A client line that could not be turned into a request, with its id when it could be
/// recovered, so the server can answer `[20, "...", null]` to the right request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    id: Option<RequestId>,
}

impl ParseError {
    /// An error with the id it belongs to, if known.
    #[must_use]
    pub const fn new(kind: ParseErrorKind, id: Option<RequestId>) -> Self {
        Self { kind, id }
    }

    /// What was wrong.
    #[must_use]
    pub const fn kind(&self) -> ParseErrorKind {
        self.kind
    }

    /// The request id, if it was recovered before the error was found.
    #[must_use]
    pub const fn id(&self) -> Option<RequestId> {
        self.id
    }

    /// The id to answer with: the recovered one, or `null`.
    #[must_use]
    pub const fn reply_id(&self) -> RequestId {
        match self.id {
            Some(id) => id,
            None => RequestId::NULL,
        }
    }
}

impl From<core::convert::Infallible> for ParseError {
    fn from(never: core::convert::Infallible) -> Self {
        match never {}
    }
}

/// A line from the socket that the framer could not deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A line exceeded the framer's limit; the framer discards input up to the next newline.
    #[error("line longer than {max} bytes discarded")]
    LineTooLong {
        /// The framer's line limit in bytes.
        max: usize,
    },
}

/// A server message did not fit or had invalid input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The output buffer is too small for the message.
    #[error("output buffer of {capacity} bytes is too small")]
    BufferTooSmall {
        /// The buffer's length.
        capacity: usize,
    },
    /// A field that must be hex (prevhash, coinbase parts, branches, ...) is not.
    #[error("field {field} is not lowercase or uppercase hex")]
    NotHex {
        /// The field's name.
        field: &'static str,
    },
}
