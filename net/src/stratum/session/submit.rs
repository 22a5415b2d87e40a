//! The submit path of the Stratum session: decoding a `mining.submit`, judging it in the
//! connection's job book, block candidates (before the reply, DESIGN §3) and the reply and
//! statistics entry. No allocation except a block candidate's finder.

use warppool_core::limits::BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX;
use warppool_core::stratum::{ErrorCode, RequestId, Submit};
use warppool_core::{
    BlockCandidate, Extranonce1, Extranonce2, JobBook, JobId, Nonce, Ntime, ShareReject,
    ShareTarget, Submission, Verdict, hex,
};

use super::{RECENT_BLOCKS, Session, Stratum, StratumCtx};
use crate::stratum::{BlockFinder, Candidate, ShareEvent, ShareStat};

/// Why a submit was not credited: a share verdict, or a field that does not decode
/// ([`ShareReject::Malformed`], with the field named in the reply).
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Share(ShareReject),
    Malformed(&'static str),
}

fn error_code(reject: ShareReject) -> ErrorCode {
    match reject.stratum_code() {
        21 => ErrorCode::JobNotFound,
        22 => ErrorCode::Duplicate,
        23 => ErrorCode::LowDifficulty,
        _ => ErrorCode::Other,
    }
}

/// Decodes a submit's fields for the job it names (no allocation).
fn decode(submit: &Submit<'_>, book: &JobBook) -> Result<(JobId, Submission), Refusal> {
    let job_id =
        JobId::from_hex(submit.job_id).map_err(|_| Refusal::Share(ShareReject::UnknownJob))?;
    let Some(job) = book.get(job_id) else {
        return Err(Refusal::Share(ShareReject::UnknownJob));
    };
    let size = job.extranonce2_size();
    let extranonce2 = Extranonce2::from_hex(submit.extranonce2, size).map_err(|_| {
        if submit.extranonce2.len() == 2 * size.bytes() {
            Refusal::Malformed("invalid extranonce2")
        } else {
            Refusal::Share(ShareReject::Extranonce2Size)
        }
    })?;
    let ntime = Ntime::from_hex(submit.ntime).map_err(|_| Refusal::Malformed("invalid ntime"))?;
    let nonce = Nonce::from_hex(submit.nonce).map_err(|_| Refusal::Malformed("invalid nonce"))?;
    let version_bits = match submit.version_bits {
        None => None,
        Some(bits) => {
            Some(hex::parse_u32(bits).map_err(|_| Refusal::Malformed("invalid version bits"))?)
        }
    };
    let submission = Submission {
        extranonce2,
        ntime,
        nonce,
        version_bits,
    };
    Ok((job_id, submission))
}

impl Stratum {
    pub(super) fn on_submit(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        submit: &Submit<'_>,
        ctx: &mut StratumCtx<'_>,
    ) {
        let Some(en1) = conn.extranonce1 else {
            self.reply_error(ctx, id, ErrorCode::NotSubscribed, "not subscribed");
            return;
        };
        let (Some(user), Some(book)) = (conn.user.as_ref(), conn.book.as_mut()) else {
            self.reply_error(ctx, id, ErrorCode::Unauthorized, "not authorized");
            return;
        };
        if !user.accepts(submit.worker) {
            self.reply_error(ctx, id, ErrorCode::Unauthorized, "unknown worker");
            return;
        }
        let (job_id, submission) = match decode(submit, book) {
            Ok(decoded) => decoded,
            Err(refusal) => return self.refuse(conn, id, refusal, ctx),
        };
        let judged_at = conn
            .job_difficulties
            .iter()
            .find(|j| j.id == Some(job_id))
            .copied();
        let Some(judged_at) = judged_at else {
            return self.refuse(conn, id, Refusal::Share(ShareReject::UnknownJob), ctx);
        };
        let mask = conn.version_mask;
        let verdict = book.submit(job_id, &en1, &submission, mask, &judged_at.target);
        let (reject, hash, block) = match verdict {
            Verdict::Accepted { hash } => (None, Some(hash), false),
            Verdict::Block {
                hash,
                candidate,
                accounting,
            } => {
                let (reject, block) = self.on_block(conn, en1, hash, candidate, accounting, ctx);
                (reject, Some(hash), block)
            }
            Verdict::Rejected(reject) => (Some(reject), None, false),
        };
        match reject {
            None => self.reply_bool(ctx, id, true),
            Some(r) => self.reply_error(ctx, id, error_code(r), r.message()),
        }
        ctx.stat(ShareEvent::Share(ShareStat {
            connection: conn.id,
            difficulty: judged_at.difficulty,
            reject,
            hash_difficulty: hash.map_or(0.0, |h| ShareTarget::hash_difficulty_lossy(&h)),
            block,
        }));
        let now = self.millis(ctx.now());
        if conn
            .vardiff
            .on_share(now, judged_at.difficulty, reject.is_none())
            .is_some()
        {
            self.retarget(conn, ctx);
        }
    }

    /// A share whose hash meets the network target: sent to the control plane as a block
    /// candidate (before the reply is written, DESIGN §3) unless this connection sent the same
    /// block already, or the per-tip cap holds it back, which happens only on a chain whose
    /// network target is easier than the share target floor (see `candidates_on_tip`). A sent
    /// candidate is answered `true` and credited at the share's judged difficulty whatever its
    /// accounting (stale, below the share target, version bits outside the mask, ntime outside
    /// the window: the miner found a block and the node has the last word). Returns the
    /// share's rejection, if any, and whether a candidate was sent.
    fn on_block(
        &mut self,
        conn: &mut Session,
        en1: Extranonce1,
        hash: [u8; 32],
        candidate: BlockCandidate,
        accounting: Option<ShareReject>,
        ctx: &mut StratumCtx<'_>,
    ) -> (Option<ShareReject>, bool) {
        // A duplicate block was sent once already; re-sending could fill the queue.
        if conn.recent_blocks.contains(&hash) || accounting == Some(ShareReject::Duplicate) {
            return (Some(ShareReject::Duplicate), false);
        }
        let capped = *candidate.job().network_target() > self.share_target_floor;
        if capped {
            if self.candidates_on_tip >= BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX {
                // Enough competing blocks on this tip are on their way to the node.
                return (accounting, false);
            }
            self.candidates_on_tip += 1;
        }
        conn.recent_blocks[conn.next_recent_block] = hash;
        conn.next_recent_block = (conn.next_recent_block + 1) % RECENT_BLOCKS;
        let Some(user) = conn.user.as_ref() else {
            unreachable!("a judged share has an authorized user");
        };
        // The finder is exact: this connection's user (allocates; blocks are rare).
        let finder = BlockFinder {
            connection: conn.id,
            worker: user.username.clone(),
            extranonce1: en1,
            user_agent: conn.user_agent.clone(),
        };
        ctx.candidate(Candidate {
            block: candidate,
            finder,
        });
        (None, true)
    }

    /// Answers a submit that was not judged (bad field or unknown job).
    fn refuse(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        refusal: Refusal,
        ctx: &mut StratumCtx<'_>,
    ) {
        let (code, message, reject) = match refusal {
            Refusal::Share(r) => (error_code(r), r.message(), r),
            Refusal::Malformed(m) => (
                error_code(ShareReject::Malformed),
                m,
                ShareReject::Malformed,
            ),
        };
        self.reply_error(ctx, id, code, message);
        ctx.stat(ShareEvent::Share(ShareStat {
            connection: conn.id,
            difficulty: conn.difficulty(),
            reject: Some(reject),
            hash_difficulty: 0.0,
            block: false,
        }));
        let now = self.millis(ctx.now());
        let _ = conn.vardiff.on_share(now, conn.difficulty(), false);
    }
}
