//! The per-connection state machine and the shard-wide protocol state (see the parent module).

use std::sync::Arc;
use std::time::Instant;

use warppool_core::limits::{
    CONNECTION_DUPLICATES_PER_JOB, JOBS_RETAINED_MAX, MERKLE_DEPTH_MAX, SERVER_LINE_BYTES_MAX,
};
use warppool_core::stratum::{
    Authorize, Configure, ErrorCode, Notify, Request, RequestId, Subscribe, WriteError,
    difficulty_for_client, parse_line, write_configure_reply, write_error, write_notify,
    write_result_bool, write_result_string, write_set_difficulty, write_subscribe_reply,
};
use warppool_core::vardiff::{Millis, Vardiff, VardiffConfig};
use warppool_core::{
    Difficulty, Extranonce1, Job, JobBook, JobId, ShareTarget, VersionMask, hex, parse_username,
};

use super::jobs::JobCache;
use super::sessions::Registry;
use super::{
    Candidate, ConnectionId, Fractional, JobSet, PortConfig, ShareEvent, StratumConfig,
    UserAgentFamily,
};
use crate::ratelog::RateLog;
use crate::{CloseReason, ConnInfo, Ctx, Flow, Protocol, ShardId};

mod submit;

type StratumCtx<'a> = Ctx<'a, ShareEvent, Candidate>;

/// The Stratum V1 protocol of one shard: configuration, the session registry, the current
/// [`JobSet`], the shard's job cache and a scratch buffer for outgoing lines.
#[derive(Debug)]
pub struct Stratum {
    shard: ShardId,
    config: Arc<StratumConfig>,
    registry: Arc<Registry>,
    jobs: Arc<JobSet>,
    cache: JobCache,
    /// Vardiff's clock starts here.
    epoch: Instant,
    /// One outgoing line at a time is built here (`SERVER_LINE_BYTES_MAX`).
    scratch: Box<[u8]>,
    next_connection: u64,
    /// The shard's current tip (the previous-block hash of the newest published template).
    candidates_tip: [u8; 32],
    /// Capped block candidates this shard sent since `candidates_tip` became the tip, on any
    /// job (current or stale, so alternating them cannot reset the count), at most
    /// `BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX`. The cap applies only to candidates whose
    /// network target is easier than `share_target_floor` (regtest-like chains, where nearly
    /// every share is a block and a miner could otherwise fill the candidate queue); on
    /// mainnet, testnet and signet no share that meets the network target is ever held back.
    candidates_on_tip: usize,
    /// The easiest share target any connection can have (`Difficulty::MIN`).
    share_target_floor: ShareTarget,
    /// Jobs that could not be built for a connection (counted in
    /// `CountersSnapshot::job_build_failures`, logged at most once per interval).
    job_failures: RateLog,
}

/// An authorized user of a connection.
#[derive(Debug)]
struct User {
    username: String,
    /// The address part of `username` (before the first `.`).
    address_len: usize,
    script: Vec<u8>,
}

impl User {
    /// Whether a submit's worker field names this user: the full username, the bare address,
    /// or the address with any worker suffix (firmwares send all three).
    fn accepts(&self, worker: &[u8]) -> bool {
        let address = &self.username.as_bytes()[..self.address_len];
        worker == self.username.as_bytes()
            || worker == address
            || (worker.starts_with(address) && worker.get(address.len()) == Some(&b'.'))
    }
}

/// The difficulty a retained job is judged at.
#[derive(Debug, Clone, Copy)]
struct JobDifficulty {
    id: Option<JobId>,
    difficulty: Difficulty,
    target: ShareTarget,
}

/// One connection's state (the `Protocol::Conn` of [`Stratum`]).
///
/// # Start difficulty
///
/// The difficulty of the first `mining.set_difficulty`, highest precedence first:
///
/// 1. What the miner asked for before its first work: `d=` in the authorize password,
///    `mining.suggest_difficulty` or `mining.suggest_target` (clamped to the port's range),
///    including a suggestion pipelined in the same read as the authorize (the first work is
///    sent after the last line of that read).
/// 2. Else the worker's stored difficulty (vardiff persistence: the last difficulty the
///    control plane stored for this username *and* user-agent family,
///    [`super::WorkerDifficulties`], so a NerdMiner never inherits the difficulty an S21 left
///    under the same name), clamped to the port's range. Consulted once, when the first work
///    is sent.
/// 3. Else the port's `difficulty_start`.
///
/// Every later change (vardiff, a suggestion, `d=`/`md=` in a re-authorize, a late
/// `mining.configure` minimum) sends `set_difficulty` and a fresh `notify`.
///
/// The client's own minimum (`md=` in the password, BIP310 `minimum-difficulty` in
/// `mining.configure`) is a floor under all three, and vardiff moves on from the start
/// difficulty as usual.
///
/// Size: about 1 KiB inline (see the `session_size` test) plus, once authorized, its
/// `JobBook` (the job slots; each slot's duplicate set, `CONNECTION_DUPLICATES_PER_JOB` × 24
/// bytes = 1.5 KiB, is allocated at the first share that reaches the duplicate check in that
/// slot and kept when the slot is reused: at most 12 KiB for a connection that submitted on
/// `JOBS_RETAINED_MAX` jobs, none for an idle one), the username and payout script, and the
/// user agent.
#[derive(Debug)]
pub struct Session {
    id: ConnectionId,
    port: PortConfig,
    /// Set by `mining.subscribe`.
    extranonce1: Option<Extranonce1>,
    user_agent: Option<String>,
    version_mask: VersionMask,
    extranonce_subscribed: bool,
    /// Difficulties below 1 are sent to this client.
    fractional: bool,
    client_min: Option<Difficulty>,
    /// The miner asked for a start difficulty (`d=`, suggest): no stored difficulty applies.
    difficulty_requested: bool,
    user: Option<User>,
    vardiff: Vardiff,
    /// Allocated at the first successful authorize.
    book: Option<Box<JobBook>>,
    /// Parallel to the book's slots, in install order.
    job_difficulties: [JobDifficulty; JOBS_RETAINED_MAX],
    next_job_slot: usize,
    /// The newest job id sent (0: none).
    last_job_id: u64,
    /// Subscribed and authorized: set_difficulty was sent, notifies follow.
    working: bool,
    /// Subscribed and authorized in the lines of the current read: the first work goes out
    /// after the last of them (`on_lines_end`), so a `suggest_difficulty` pipelined behind the
    /// authorize shapes it.
    work_pending: bool,
    /// Hashes of the last block candidates sent, so a resubmitted block is not sent again (the
    /// job's duplicate set only holds shares that met the share target, and on a test network
    /// a block can miss a high share target).
    recent_blocks: [[u8; 32]; RECENT_BLOCKS],
    next_recent_block: usize,
}

/// Block hashes a connection remembers (see [`Session`]).
const RECENT_BLOCKS: usize = 4;

impl Session {
    /// The connection's id in statistics.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The difficulty the client is told (and new jobs are judged at).
    #[must_use]
    pub fn difficulty(&self) -> Difficulty {
        difficulty_for_client(self.vardiff.difficulty(), self.fractional)
    }

    /// Records the difficulty of a job just installed in the book.
    fn record_job(&mut self, id: JobId, difficulty: Difficulty) {
        self.job_difficulties[self.next_job_slot] = JobDifficulty {
            id: Some(id),
            difficulty,
            target: difficulty.to_target(),
        };
        self.next_job_slot = (self.next_job_slot + 1) % JOBS_RETAINED_MAX;
        self.last_job_id = id.get();
    }

    /// A new difficulty: every retained job is judged at the lower of its difficulty and the
    /// new one from now on (DESIGN §4, MINERS rule 8).
    fn lower_retained_jobs(&mut self, difficulty: Difficulty) {
        for job in &mut self.job_difficulties {
            if job.id.is_some() && difficulty < job.difficulty {
                job.difficulty = difficulty;
                job.target = difficulty.to_target();
            }
        }
    }
}

fn vardiff_config(port: &PortConfig, fractional: bool) -> VardiffConfig {
    let mut config = port.vardiff;
    config.fractional = fractional;
    config
}

impl Stratum {
    pub(crate) fn new(
        shard: ShardId,
        config: Arc<StratumConfig>,
        registry: Arc<Registry>,
        jobs: Arc<JobSet>,
    ) -> Self {
        let mut cache = JobCache::new();
        cache.update(jobs.template.as_ref(), &jobs.coinbase);
        let tip = jobs.template.as_ref().map_or([0; 32], |t| *t.prevhash());
        Self {
            shard,
            config,
            registry,
            jobs,
            cache,
            epoch: Instant::now(),
            scratch: vec![0; SERVER_LINE_BYTES_MAX].into_boxed_slice(),
            next_connection: 0,
            candidates_tip: tip,
            candidates_on_tip: 0,
            share_target_floor: Difficulty::MIN.to_target(),
            job_failures: RateLog::new(),
        }
    }

    fn millis(&self, now: Instant) -> Millis {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        Millis::new(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// Builds one line in the scratch buffer and queues it (`job`: droppable notification).
    fn send(
        &mut self,
        ctx: &mut StratumCtx<'_>,
        job: bool,
        build: impl FnOnce(&mut [u8]) -> Result<usize, WriteError>,
    ) {
        let Ok(len) = build(&mut self.scratch) else {
            // Every server line fits SERVER_LINE_BYTES_MAX (limits.rs); nothing is sent.
            debug_assert!(false, "server line does not fit the scratch buffer");
            return;
        };
        let line = &self.scratch[..len];
        // On overflow the substrate closes the connection as a slow reader.
        let _ = if job {
            ctx.out().push_job(line)
        } else {
            ctx.out().push(line)
        };
    }

    fn reply_bool(&mut self, ctx: &mut StratumCtx<'_>, id: &RequestId, ok: bool) {
        self.send(ctx, false, |buf| write_result_bool(buf, id, ok));
    }

    fn reply_error(
        &mut self,
        ctx: &mut StratumCtx<'_>,
        id: &RequestId,
        code: ErrorCode,
        message: &str,
    ) {
        self.send(ctx, false, |buf| write_error(buf, id, code, message));
    }

    fn on_subscribe(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        subscribe: Subscribe,
        ctx: &mut StratumCtx<'_>,
    ) {
        let value = match conn.extranonce1 {
            Some(en1) => u32::from_be_bytes(*en1.as_bytes()),
            None => {
                let value = self
                    .registry
                    .acquire(self.shard.index(), subscribe.session.as_deref());
                conn.extranonce1 = Some(Extranonce1::from_u32(value));
                value
            }
        };
        if subscribe.user_agent.is_some() {
            conn.user_agent = subscribe.user_agent;
        }
        let en1 = Extranonce1::from_u32(value);
        let mut session = [0u8; 8];
        let session = hex::encode_to_slice(&value.to_be_bytes(), &mut session);
        let size = self.jobs.coinbase.extranonce2_size();
        let mut line = [0u8; 512];
        if let Ok(len) = write_subscribe_reply(&mut line, id, session, &en1, size) {
            let _ = ctx.out().push(&line[..len]);
        }
        ctx.mark_subscribed();
        Self::request_work(conn);
    }

    fn on_authorize(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        authorize: Authorize,
        ctx: &mut StratumCtx<'_>,
    ) {
        let script = match parse_username(&authorize.username, self.jobs.network) {
            Ok((script, _worker)) => script,
            Err(e) => {
                let message = format!("invalid username {:?}: {e}", authorize.username);
                self.reply_error(ctx, id, ErrorCode::Unauthorized, &message);
                return;
            }
        };
        let now = self.millis(ctx.now());
        let mut changed = false;
        if let Some(min) = authorize.hint.difficulty_min {
            changed |= self.client_min(conn, min, now);
        }
        if let Some(start) = authorize.hint.difficulty_start {
            changed |= self.hint(conn, start, now);
        }
        if conn.book.is_none() {
            conn.book = Some(Box::new(JobBook::new_lazy(CONNECTION_DUPLICATES_PER_JOB)));
        }
        let script = script.into_bytes();
        let new_payout = conn.user.as_ref().is_some_and(|u| u.script != script);
        let address_len = authorize
            .username
            .find('.')
            .unwrap_or(authorize.username.len());
        ctx.stat(ShareEvent::Authorized {
            connection: conn.id,
            username: authorize.username.clone(),
            user_agent: conn.user_agent.clone(),
            peer: ctx.info().peer,
            local_port: ctx.info().local.port(),
            tls: ctx.info().tls,
        });
        conn.user = Some(User {
            username: authorize.username,
            address_len,
            script,
        });
        self.reply_bool(ctx, id, true);
        if changed && conn.working {
            // `d=`/`md=` in a re-authorize: set_difficulty and a fresh notify (which also pays
            // a new payout script).
            self.retarget(conn, ctx);
        } else if new_payout && conn.working {
            // Another payout script: new work at once (MINERS §5.2: the coinbase must pay the
            // address the miner authorized).
            self.send_job(conn, true, false, ctx);
        } else {
            Self::request_work(conn);
        }
    }

    fn on_configure(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        configure: &Configure,
        ctx: &mut StratumCtx<'_>,
    ) {
        let reply = configure.reply(VersionMask::POOL);
        if let Some(mask) = reply.version_rolling {
            conn.version_mask = mask;
        }
        // The reply first: cgminer reads exactly one line as the configure reply (rule 1).
        self.send(ctx, false, |buf| write_configure_reply(buf, id, &reply));
        if let Some(Some(min)) = configure.minimum_difficulty {
            let now = self.millis(ctx.now());
            if self.client_min(conn, min, now) {
                // A late minimum: set_difficulty and a fresh notify once working.
                self.retarget(conn, ctx);
            }
        }
    }

    /// A suggested starting difficulty (suggest_difficulty, suggest_target, `d=`).
    fn hint(&mut self, conn: &mut Session, d: Difficulty, now: Millis) -> bool {
        conn.difficulty_requested = true;
        self.allow_fractional(conn, d, now);
        conn.vardiff.suggest(now, d).is_some()
    }

    /// The client's own minimum (`md=`, configure `minimum-difficulty`).
    fn client_min(&mut self, conn: &mut Session, d: Difficulty, now: Millis) -> bool {
        self.allow_fractional(conn, d, now);
        conn.client_min = Some(d);
        conn.vardiff.set_client_min(now, d).is_some()
    }

    /// A client that asks for a difficulty below 1 gets fractions on an `OnRequest` port.
    fn allow_fractional(&mut self, conn: &mut Session, d: Difficulty, now: Millis) {
        if conn.fractional || d >= Difficulty::ONE || conn.port.fractional != Fractional::OnRequest
        {
            return;
        }
        if conn.vardiff.share_counts().0 > 0 {
            return; // The estimate is worth more than the fraction.
        }
        conn.fractional = true;
        let config = vardiff_config(&conn.port, true);
        conn.vardiff = Vardiff::new(config, now, Some(conn.vardiff.difficulty()));
        if let Some(min) = conn.client_min {
            let _ = conn.vardiff.set_client_min(now, min);
        }
    }

    fn on_suggest(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        d: Difficulty,
        ctx: &mut StratumCtx<'_>,
    ) {
        let now = self.millis(ctx.now());
        let changed = self.hint(conn, d, now);
        self.reply_bool(ctx, id, true);
        if changed {
            self.retarget(conn, ctx);
        }
    }

    /// Subscribed and authorized for the first time: the first work goes out after the last
    /// line of this read ([`Protocol::on_lines_end`]).
    fn request_work(conn: &mut Session) {
        if !conn.working && conn.extranonce1.is_some() && conn.user.is_some() {
            conn.work_pending = true;
        }
    }

    /// The first work: the start difficulty (a stored one only if the miner asked for none),
    /// set_difficulty, then the first notify, queued right behind the replies of the read (the
    /// Bitaxe probe reads one KiB, MINERS §4.2).
    fn start_work(&mut self, conn: &mut Session, ctx: &mut StratumCtx<'_>) {
        conn.work_pending = false;
        let Some(user) = conn.user.as_ref() else {
            return;
        };
        if conn.working || conn.extranonce1.is_none() {
            return;
        }
        if !conn.difficulty_requested {
            // Vardiff persistence (precedence 2 in the `Session` docs): lock-free lookup (the
            // key allocates; not the share path). A miner that already sent valid shares keeps
            // its estimate (`suggest` ignores it).
            let family = UserAgentFamily::from_user_agent(conn.user_agent.as_deref());
            let stored = self
                .config
                .stored_difficulties
                .get_for(&user.username, &family);
            if let Some(stored) = stored {
                let now = self.millis(ctx.now());
                let _ = conn.vardiff.suggest(now, stored);
            }
        }
        conn.working = true;
        let d = conn.difficulty();
        let fractional = conn.fractional;
        self.send(ctx, false, |buf| write_set_difficulty(buf, d, fractional));
        self.send_job(conn, true, false, ctx);
    }

    /// A new difficulty is in force: older jobs keep the lower of old and new, the client gets
    /// `set_difficulty` and, if there is work, a fresh notify (MINERS rule 8).
    fn retarget(&mut self, conn: &mut Session, ctx: &mut StratumCtx<'_>) {
        let d = conn.difficulty();
        conn.lower_retained_jobs(d);
        if conn.user.is_some() {
            // For vardiff persistence; a retarget is rare (at most one per retarget interval
            // after ramp-up), and the event is a plain value (no heap).
            ctx.stat(ShareEvent::Difficulty {
                connection: conn.id,
                difficulty: d,
                family: UserAgentFamily::from_user_agent(conn.user_agent.as_deref()),
            });
        }
        if !conn.working {
            return; // Sent with the first notify.
        }
        let fractional = conn.fractional;
        self.send(ctx, false, |buf| write_set_difficulty(buf, d, fractional));
        self.send_job(conn, true, false, ctx);
    }

    /// Sends a job newer than any the connection has, installed in its book at the current
    /// difficulty.
    fn send_job(
        &mut self,
        conn: &mut Session,
        clean_jobs: bool,
        droppable: bool,
        ctx: &mut StratumCtx<'_>,
    ) {
        if !self.jobs.has_work() {
            return; // No template yet, or gated: the miner keeps what it has.
        }
        let (Some(user), Some(book)) = (conn.user.as_ref(), conn.book.as_mut()) else {
            return;
        };
        let template = self.jobs.template.as_ref();
        let floor = book
            .newest()
            .filter(|j| template.is_some_and(|t| Arc::ptr_eq(j.template(), t)))
            .map(|j| j.ntime());
        let job = match self.cache.job_for(&user.script, conn.last_job_id, floor) {
            Ok(job) => job,
            Err(failure) => {
                // No coinbase for this script or too many variants: the miner keeps its job,
                // and the operator hears of it (counted; logged at most once per interval).
                ctx.job_build_failed();
                if let Some(failures) = self.job_failures.hit(ctx.now()) {
                    tracing::warn!(
                        shard = self.shard.index(),
                        failures,
                        worker = %user.username,
                        reason = %failure,
                        "no job could be built for a connection; it keeps the work it has"
                    );
                }
                return;
            }
        };
        book.install(Arc::clone(&job));
        let d = conn.difficulty();
        conn.record_job(job.id(), d);
        // A clean notify is never dropped as superseded: a later one on the same tip would go
        // out with clean_jobs=false and the miner would keep hashing the old tip's work.
        self.send(ctx, droppable && !clean_jobs, |buf| {
            notify_line(buf, &job, clean_jobs)
        });
    }

    fn dispatch(
        &mut self,
        conn: &mut Session,
        id: &RequestId,
        request: Request<'_>,
        ctx: &mut StratumCtx<'_>,
    ) {
        match request {
            Request::Submit(submit) => self.on_submit(conn, id, &submit, ctx),
            Request::Subscribe(subscribe) => self.on_subscribe(conn, id, subscribe, ctx),
            Request::Authorize(authorize) => self.on_authorize(conn, id, authorize, ctx),
            Request::Configure(configure) => self.on_configure(conn, id, &configure, ctx),
            Request::SuggestDifficulty(d) | Request::SuggestTarget(d) => {
                self.on_suggest(conn, id, d, ctx);
            }
            Request::ExtranonceSubscribe => {
                // The extranonce1 never changes, so set_extranonce is never sent; the flag
                // records that it would be allowed (MINERS rule 12).
                conn.extranonce_subscribed = true;
                self.reply_bool(ctx, id, true);
            }
            Request::MultiVersion(_) => {
                // bmminer's pre-BIP310 AsicBoost: refused, so it keeps 5-param submits.
                self.reply_error(
                    ctx,
                    id,
                    ErrorCode::Other,
                    "mining.multi_version not supported",
                );
            }
            Request::Ping => self.send(ctx, false, |buf| write_result_string(buf, id, "pong")),
            // A client's answer to a server request: nothing to reply.
            Request::Pong | Request::Response(_) => {}
            Request::Unknown(_) => self.reply_error(ctx, id, ErrorCode::Other, "unknown method"),
            _ => self.reply_error(ctx, id, ErrorCode::Other, "unsupported method"),
        }
    }
}

/// Writes the notify of `job` (no allocation: the branch is borrowed into a stack array).
fn notify_line(buf: &mut [u8], job: &Job, clean_jobs: bool) -> Result<usize, WriteError> {
    let mut branch = [""; MERKLE_DEPTH_MAX];
    let steps = job.notify_branch();
    assert!(steps.len() <= MERKLE_DEPTH_MAX);
    for (slot, step) in branch.iter_mut().zip(steps) {
        *slot = step;
    }
    let notify = Notify {
        job_id: job.id(),
        prevhash: job.notify_prevhash(),
        coinb1: job.notify_coinb1(),
        coinb2: job.notify_coinb2(),
        merkle_branch: &branch[..steps.len()],
        version: job.notify_version(),
        nbits: job.notify_nbits(),
        ntime: job.notify_ntime(),
        clean_jobs,
    };
    write_notify(buf, &notify)
}

impl Protocol for Stratum {
    type Conn = Session;
    type Jobs = JobSet;
    type Stat = ShareEvent;
    type Candidate = Candidate;

    fn on_connect(&mut self, ctx: &mut StratumCtx<'_>) -> Session {
        let port = self.config.policy(ctx.info().listener);
        let id =
            (u64::try_from(self.shard.index()).expect("shard fits") << 48) | self.next_connection;
        self.next_connection += 1;
        let fractional = port.fractional == Fractional::Always;
        let vardiff = Vardiff::new(
            vardiff_config(&port, fractional),
            self.millis(ctx.now()),
            None,
        );
        let empty = JobDifficulty {
            id: None,
            difficulty: Difficulty::MAX,
            target: ShareTarget::DIFF1,
        };
        Session {
            id,
            port,
            extranonce1: None,
            user_agent: None,
            version_mask: VersionMask::POOL,
            extranonce_subscribed: false,
            fractional,
            client_min: None,
            difficulty_requested: false,
            user: None,
            vardiff,
            book: None,
            job_difficulties: [empty; JOBS_RETAINED_MAX],
            next_job_slot: 0,
            last_job_id: 0,
            working: false,
            work_pending: false,
            recent_blocks: [[0; 32]; RECENT_BLOCKS],
            next_recent_block: 0,
        }
    }

    fn on_line(&mut self, conn: &mut Session, line: &[u8], ctx: &mut StratumCtx<'_>) -> Flow {
        match parse_line(line) {
            Ok(message) => self.dispatch(conn, &message.id, message.request, ctx),
            Err(e) => {
                let message = format!("invalid request: {}", e.kind());
                self.reply_error(ctx, &e.reply_id(), ErrorCode::Other, &message);
            }
        }
        Flow::Continue
    }

    fn on_line_too_long(&mut self, _conn: &mut Session, ctx: &mut StratumCtx<'_>) {
        self.reply_error(ctx, &RequestId::NULL, ErrorCode::Other, "line too long");
    }

    fn on_shard_jobs(&mut self, jobs: &Arc<JobSet>) {
        self.cache.update(jobs.template.as_ref(), &jobs.coinbase);
        if let Some(template) = &jobs.template
            && *template.prevhash() != self.candidates_tip
        {
            self.candidates_tip = *template.prevhash();
            self.candidates_on_tip = 0;
        }
        self.jobs = Arc::clone(jobs);
    }

    fn on_jobs(
        &mut self,
        conn: &mut Session,
        jobs: &Arc<JobSet>,
        ctx: &mut StratumCtx<'_>,
    ) -> Flow {
        if conn.working && jobs.has_work() {
            let first = conn.last_job_id == 0;
            // Wake-ups coalesce, and a gate can hold work back: what the connection last got
            // decides, so a skipped publication that changed the tip still cleans.
            let newest = conn.book.as_ref().and_then(|book| book.newest());
            let tip_changed = match (newest, &jobs.template) {
                (Some(newest), Some(template)) => newest.prevhash() != template.prevhash(),
                _ => false,
            };
            self.send_job(conn, jobs.clean_jobs || first || tip_changed, true, ctx);
        }
        Flow::Continue
    }

    fn on_lines_end(&mut self, conn: &mut Session, ctx: &mut StratumCtx<'_>) {
        if conn.work_pending {
            self.start_work(conn, ctx);
        }
    }

    fn on_tick(&mut self, conn: &mut Session, ctx: &mut StratumCtx<'_>) -> Flow {
        if let Some(failures) = self.job_failures.flush(ctx.now()) {
            tracing::warn!(
                shard = self.shard.index(),
                failures,
                "no job could be built for some connections; they keep the work they have"
            );
        }
        let now = self.millis(ctx.now());
        if conn.vardiff.on_tick(now).is_some() {
            self.retarget(conn, ctx);
        }
        Flow::Continue
    }

    fn closing_stat(&mut self, conn: &Session, reason: CloseReason) -> Option<ShareEvent> {
        conn.user.as_ref().map(|_| ShareEvent::Closed {
            connection: conn.id,
            reason,
        })
    }

    fn connection_id(&self, conn: &Session) -> Option<ConnectionId> {
        Some(conn.id)
    }

    fn on_close(&mut self, conn: Session, _info: &ConnInfo, _reason: CloseReason) {
        if let Some(en1) = conn.extranonce1 {
            self.registry.release(u32::from_be_bytes(*en1.as_bytes()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_size() {
        let size = std::mem::size_of::<Session>();
        eprintln!("Session is {size} bytes");
        assert!(size <= 1536, "Session is {size} bytes");
    }
}
