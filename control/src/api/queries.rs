//! The API's query threads: storage reads for HTTP requests run here, never on the runtime's
//! workers nor in its shared blocking pool, at a lower CPU priority than the data plane and
//! the block path (`SCHED_IDLE`, and nice `API_QUERY_NICE`).
//!
//! `API_QUERY_THREADS` threads (`warppool-api-N`) take jobs from a queue of at most
//! `API_QUERIES_QUEUED_MAX`; a full queue answers at once with [`QueriesBusy`] (the handler
//! turns it into 503), so an HTTP flood waits in its own line and costs the pool at most
//! those threads, niced by `API_QUERY_NICE` (raising one's own niceness needs no privilege).

use warppool_core::limits::{API_QUERIES_QUEUED_MAX, API_QUERY_NICE, API_QUERY_THREADS};

type Job = Box<dyn FnOnce() + Send>;

/// The queue was full (or the threads are gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API is busy: API_QUERIES_QUEUED_MAX queries are already waiting")]
pub struct QueriesBusy;

/// The query threads (see the module docs). Dropping the last handle ends them once the
/// queue is drained.
#[derive(Debug, Clone)]
pub struct QueryPool {
    jobs: flume::Sender<Job>,
}

/// Lowers the calling thread's CPU priority (Linux: both are per thread): the `SCHED_IDLE`
/// policy, which runs it only when nothing else wants the CPU, and `nice` on top for kernels
/// or sandboxes that refuse the policy. Lowering one's own priority needs no privilege.
pub(super) fn lower_priority(nice: i32) {
    // SAFETY: gettid, setpriority and sched_setscheduler take plain integers and a pointer to a
    // local struct that outlives the call; nothing else is borrowed.
    let (niced, idle) = unsafe {
        let tid = libc::gettid();
        let niced = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
        let param = libc::sched_param { sched_priority: 0 };
        let idle = libc::sched_setscheduler(tid, libc::SCHED_IDLE, &raw const param);
        (niced, idle)
    };
    if niced != 0 || idle != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "cannot lower an API thread's priority");
    }
}

impl QueryPool {
    /// Starts the threads.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = flume::bounded::<Job>(API_QUERIES_QUEUED_MAX);
        for i in 0..API_QUERY_THREADS {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("warppool-api-{i}"))
                .spawn(move || {
                    lower_priority(API_QUERY_NICE);
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Runs `f` on a query thread and waits for its result.
    ///
    /// # Errors
    /// [`QueriesBusy`] when the queue is full; `f` then never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, QueriesBusy> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| QueriesBusy)?;
        rx.await.map_err(|_| QueriesBusy)
    }
}
