//! WarpPool's sans-IO domain core.
//!
//! Everything here is a pure function over bytes and values: no sockets, no clocks, no threads.
//! Time and randomness are passed in by the caller. The data plane (`warppool-net`) and the
//! control plane (`warppool-control`) meet only through the types defined here.

pub mod block;
pub mod coinbase;
pub mod difficulty;
pub mod hashrate;
pub mod hex;
pub mod job;
pub mod limits;
pub mod merkle;
pub mod payout;
pub mod plane;
pub mod share;
pub mod stratum;
pub mod template;
pub mod types;
pub mod vardiff;

pub use block::BlockCandidate;
pub use coinbase::{CoinbaseConfig, CoinbaseError, CoinbaseParts, SplitOutput, build_coinbase};
pub use difficulty::{Difficulty, DifficultyError, ShareTarget};
pub use job::{Job, JobError};
pub use merkle::{MerkleBranch, MerkleError};
pub use payout::{PayoutError, parse_username, payout_script};
pub use share::{DuplicateSet, JobBook, ShareReject, Submission, Verdict, validate_share};
pub use template::{Template, TemplateError, TemplateTransaction};
pub use types::{
    Extranonce1, Extranonce2, ExtranonceSize, JobId, Nonce, Ntime, NtimeDelta, TypeError,
    VersionMask, WorkerName,
};
