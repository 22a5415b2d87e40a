//! The Stratum V1 codec: client line framing and parsing, server message building.
//!
//! Responsibilities:
//! - [`LineFramer`] turns a byte stream into bounded lines inside a caller-provided buffer.
//! - [`parse_line`] turns one line into a typed [`ClientMessage`]. `mining.submit` is parsed
//!   without allocation and borrows its fields from the line; other methods use `serde_json`
//!   after a depth-bounded syntax scan. Errors carry the request id when it was recovered.
//! - The `write_*` functions build server messages into a caller-provided buffer.
//!
//! Usage: the data plane (`warppool-net`) frames each connection's input, parses each line,
//! and answers with the builders. Not for mining clients (only the client-to-server direction
//! is parsed). Every shape accepted here comes from a real firmware capture in MINERS.md.

mod error;
mod framer;
mod request;
mod scan;
mod writer;

pub use error::{FrameError, ParseError, ParseErrorKind, WriteError};
pub use framer::LineFramer;
pub use request::{
    Authorize, ClientMessage, Configure, PasswordHint, Request, RequestId, Response, Submit,
    SubmitOwned, Subscribe, VersionRollingRequest, parse_line, parse_submit_reference,
};
pub use writer::{
    ConfigureReply, ErrorCode, LineWriter, Notify, difficulty_for_client, push_difficulty,
    write_configure_reply, write_error, write_notify, write_ping, write_reconnect,
    write_result_bool, write_result_string, write_set_difficulty, write_set_extranonce,
    write_set_version_mask, write_subscribe_reply,
};
