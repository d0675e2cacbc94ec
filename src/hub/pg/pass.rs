//! The daily trigger pass on PostgreSQL: the same functions as the embedded engine's
//! (`engine::pass`), over the database. The candidates are read without the head lock;
//! each batch is decided again inside its write, under the lock and over what is
//! committed then, so a pass running at the same time in another process (or a second
//! `POST /v1/hub/triggers/run`) finds the occurrences the first issued and issues
//! nothing for them.

use super::PgHub;
use crate::engine::pass::{self, Draws};
use crate::engine::Actor;
use crate::error::Result;
use crate::model::{self, day_no};
use crate::record::Body;
use crate::rules::local_date;
use crate::store::campaign::trigger_day;

/// Candidates whose members are read in one read transaction.
const CHECK_CHUNK: usize = 1024;

impl PgHub {
    /// Every local date since the last pass up to today's (at most
    /// `PASS_CATCH_UP_DAYS` back), in writes of `PASS_BATCH` members, then the trigger
    /// day marker; returns the coupons issued.
    pub(super) fn trigger_pass(&self) -> Result<u64> {
        let rules = self.rules();
        if !pass::has_daily(&rules) {
            return Ok(0);
        }
        let today = local_date(&rules, model::now());
        let plan = self.read(|b| pass::plan(b, today))?;
        let mut covered = plan.covered;
        let mut issued = 0;
        for date in plan.dates {
            // The candidates (index keys only), then what is due for them a chunk of
            // members at a time: a read holds what it fetched in memory.
            let candidates: Vec<String> = self
                .read(|b| pass::candidates(b, &rules, date, covered))?
                .into_iter()
                .collect();
            let mut due = Vec::new();
            for chunk in candidates.chunks(CHECK_CHUNK) {
                due.extend(self.read(|b| pass::due_among(b, &rules, chunk, date))?);
            }
            for batch in due.chunks(pass::PASS_BATCH) {
                // The same codes on every run of the step, so that it settles.
                let mut draws = Draws::default();
                issued += self.write(&Actor::system(), |b| {
                    draws.restart();
                    let bodies = pass::batch_coupons(b, &rules, batch, date, &mut draws)?;
                    let n = bodies.len() as u64;
                    Ok((bodies, n))
                })?;
            }
            let day = day_no(date);
            self.write(&Actor::system(), |b| {
                // A pass that went further meanwhile keeps its marker: it never goes back.
                let done = trigger_day(b)?.is_some_and(|d| d >= day);
                Ok((if done { vec![] } else { vec![Body::TriggerPass { day }] }, ()))
            })?;
            covered = Some(day);
        }
        Ok(issued)
    }
}
