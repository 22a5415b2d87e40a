//! The shard's job cache: one coinbase per payout script per template, shared by all the
//! shard's connections with that script, and job variants for re-sent work.
//!
//! Every notify needs a new job id and a header that differs from every earlier notify the
//! connection got for the same template (MINERS rule 9: ESP-Miner restarts extranonce2 at 0 on
//! each notify and NerdMiner always uses the same extranonce2, so an identical header under a
//! new job id gives byte-identical shares). A connection asks for a job newer than the last
//! one it got; the cache hands out its newest variant for the script if that is newer, or
//! builds the next variant: same coinbase, new job id, ntime one second later.

use std::collections::HashMap;
use std::sync::Arc;

use warppool_core::limits::{JOB_VARIANTS_PER_TEMPLATE_MAX, PAYOUT_SCRIPTS_PER_SHARD_MAX};
use warppool_core::{CoinbaseConfig, CoinbaseParts, Job, JobId, Ntime, Template, build_coinbase};

/// The coinbase of one payout script for the current template and its newest job variant.
#[derive(Debug)]
struct Entry {
    parts: CoinbaseParts,
    /// `None` until the first variant is built.
    newest: Option<Arc<Job>>,
    variants: u32,
}

/// Why no job could be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobFailure {
    /// The coinbase could not be built for this script (the message says why).
    Build(String),
    /// [`JOB_VARIANTS_PER_TEMPLATE_MAX`] variants were built for this script and template.
    VariantsExhausted,
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Build(why) => write!(f, "coinbase not built: {why}"),
            Self::VariantsExhausted => write!(
                f,
                "JOB_VARIANTS_PER_TEMPLATE_MAX ({JOB_VARIANTS_PER_TEMPLATE_MAX}) jobs were built \
                 for this payout script on this template"
            ),
        }
    }
}

/// Jobs of one shard (see the module docs).
#[derive(Debug)]
pub(crate) struct JobCache {
    template: Option<Arc<Template>>,
    coinbase: Option<CoinbaseConfig>,
    entries: HashMap<Vec<u8>, Entry>,
    /// The next job id; ids are shard-local, start above 0 and are never reused.
    next_id: u64,
}

impl JobCache {
    pub(crate) fn new() -> Self {
        Self {
            template: None,
            coinbase: None,
            entries: HashMap::new(),
            next_id: 1,
        }
    }

    /// A new job set: a new template (or coinbase configuration) drops every cached coinbase.
    pub(crate) fn update(&mut self, template: Option<&Arc<Template>>, coinbase: &CoinbaseConfig) {
        let same_template = match (&self.template, template) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same_template || self.coinbase.as_ref() != Some(coinbase) {
            self.entries.clear();
            self.template = template.cloned();
            self.coinbase = Some(coinbase.clone());
        }
        debug_assert!(self.entries.len() <= PAYOUT_SCRIPTS_PER_SHARD_MAX);
    }

    /// A job for `script` whose id is above `seen` (the newest job id the connection got) and
    /// whose ntime is above `ntime_floor` (the newest ntime it got on this template, if any).
    pub(crate) fn job_for(
        &mut self,
        script: &[u8],
        seen: u64,
        ntime_floor: Option<Ntime>,
    ) -> Result<Arc<Job>, JobFailure> {
        let Some(template) = self.template.clone() else {
            return Err(JobFailure::Build("no template".to_owned()));
        };
        if let Some(entry) = self.entries.get(script) {
            if let Some(newest) = &entry.newest {
                let fresh_enough = ntime_floor.is_none_or(|floor| newest.ntime() > floor);
                if newest.id().get() > seen && fresh_enough {
                    return Ok(Arc::clone(newest));
                }
            }
        } else {
            self.insert_entry(&template, script)?;
        }
        let id = JobId::new(self.next_id);
        let entry = self.entries.get_mut(script).expect("entry just checked");
        if entry.variants >= JOB_VARIANTS_PER_TEMPLATE_MAX {
            return Err(JobFailure::VariantsExhausted);
        }
        let mut ntime = match &entry.newest {
            Some(newest) => Ntime::from_secs(newest.ntime().secs() + 1),
            None => template.curtime(),
        };
        if let Some(floor) = ntime_floor
            && ntime <= floor
        {
            ntime = Ntime::from_secs(floor.secs() + 1);
        }
        let job = Job::from_parts(id, template, &entry.parts, ntime)
            .map_err(|e| JobFailure::Build(e.to_string()))?;
        self.next_id += 1;
        let job = Arc::new(job);
        entry.newest = Some(Arc::clone(&job));
        entry.variants += 1;
        assert!(job.id().get() > seen);
        Ok(job)
    }

    /// Builds the coinbase of `script` for `template` (an entry with no variant yet), evicting
    /// an arbitrary entry when the cache is full.
    fn insert_entry(&mut self, template: &Arc<Template>, script: &[u8]) -> Result<(), JobFailure> {
        let coinbase = self.coinbase.as_ref().expect("set with the template");
        let parts = build_coinbase(template, script, coinbase)
            .map_err(|e| JobFailure::Build(e.to_string()))?;
        if self.entries.len() >= PAYOUT_SCRIPTS_PER_SHARD_MAX {
            let victim = self.entries.keys().next().cloned().expect("cache is full");
            self.entries.remove(&victim);
        }
        self.entries.insert(
            script.to_vec(),
            Entry {
                parts,
                newest: None,
                variants: 0,
            },
        );
        Ok(())
    }
}
