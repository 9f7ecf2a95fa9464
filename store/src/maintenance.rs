//! Retention: what the store forgets, and when.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;

use crate::Store;
use crate::error::{Error, Result};

const DAY: Duration = Duration::from_secs(86_400);

/// How long each kind of data is kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// Per-GPU samples and report keys, at full resolution. Default 7 days.
    pub samples: Duration,
    /// Hourly aggregates. Default 365 days.
    pub hourly: Duration,
    /// A job's ledger after the job is gone. Default 7 days.
    pub ledgers_after_job: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            samples: 7 * DAY,
            hourly: 365 * DAY,
            ledgers_after_job: 7 * DAY,
        }
    }
}

/// Rows removed by [`Store::purge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Report keys.
    pub reports: u64,
    /// GPU samples.
    pub samples: u64,
    /// Hourly aggregates.
    pub hourly: u64,
    /// Ledgers.
    pub ledgers: u64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Marks the ledgers of jobs not in `live_job_uids` as gone since `now_ms` (once), and
    /// un-marks any that are live again. Returns how many were newly marked.
    pub async fn mark_gone_jobs(
        &self,
        live_job_uids: &HashSet<String>,
        now_ms: i64,
    ) -> Result<u64> {
        let rows = sqlx::query("SELECT job_uid, deleted_ms FROM job_ledgers")
            .fetch_all(self.pool())
            .await
            .map_err(|e| Error::from_sqlx("listing job ledgers", e))?;
        let mut marked = 0;
        for row in rows {
            let uid: String = row
                .try_get(0)
                .map_err(|e| Error::from_sqlx("decoding a ledger uid", e))?;
            let deleted: Option<i64> = row
                .try_get(1)
                .map_err(|e| Error::from_sqlx("decoding a ledger", e))?;
            let live = live_job_uids.contains(&uid);
            let update = match (live, deleted) {
                (false, None) => Some(Some(now_ms)),
                (true, Some(_)) => Some(None),
                _ => None,
            };
            if let Some(value) = update {
                sqlx::query("UPDATE job_ledgers SET deleted_ms = $1 WHERE job_uid = $2")
                    .bind(value)
                    .bind(&uid)
                    .execute(self.pool())
                    .await
                    .map_err(|e| Error::from_sqlx(format!("marking the ledger of job {uid}"), e))?;
                marked += u64::from(value.is_some());
            }
        }
        Ok(marked)
    }

    /// Deletes what is older than the retention allows.
    pub async fn purge(&self, now_ms: i64, retention: &Retention) -> Result<PurgeCounts> {
        let samples_before = now_ms.saturating_sub(ms(retention.samples));
        let hourly_before = now_ms.saturating_sub(ms(retention.hourly));
        let ledgers_before = now_ms.saturating_sub(ms(retention.ledgers_after_job));
        let run = |sql: &'static str, before: i64, what: &'static str| async move {
            sqlx::query(sql)
                .bind(before)
                .execute(self.pool())
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| Error::from_sqlx(format!("purging old {what}"), e))
        };
        Ok(PurgeCounts {
            samples: run(
                "DELETE FROM gpu_samples WHERE window_start_ms < $1",
                samples_before,
                "GPU samples",
            )
            .await?,
            reports: run(
                "DELETE FROM reports WHERE window_start_ms < $1",
                samples_before,
                "report keys",
            )
            .await?,
            hourly: run(
                "DELETE FROM gpu_hourly WHERE hour_start_ms < $1",
                hourly_before,
                "hourly aggregates",
            )
            .await?,
            ledgers: run(
                "DELETE FROM job_ledgers WHERE deleted_ms IS NOT NULL AND deleted_ms < $1",
                ledgers_before,
                "ledgers of deleted jobs",
            )
            .await?,
        })
    }
}
