//! Reading back what was stored.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::Store;
use crate::error::{Error, Result};
use crate::records::{GpuSample, HourlyAggregate, JobLedger, SiteBilling, StoredReport};
use crate::write::chunks;

const LEDGER_COLUMNS: &str = "job_uid, job_namespace, job_name, site, energy_j, renewable_j, grid_j, co2_g, first_window_start_ms, last_window_end_ms, updated_ms, deleted_ms";

impl Store {
    /// The ledger of one job, by uid.
    pub async fn ledger(&self, job_uid: &str) -> Result<Option<JobLedger>> {
        Ok(self.ledgers(&[job_uid.to_owned()]).await?.pop())
    }

    /// The ledgers of these jobs (those that have one), by uid.
    pub async fn ledgers(&self, job_uids: &[String]) -> Result<Vec<JobLedger>> {
        let mut out = Vec::with_capacity(job_uids.len());
        for (start, len) in chunks(job_uids.len()) {
            let placeholders: Vec<String> = (1..=len).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT {LEDGER_COLUMNS} FROM job_ledgers WHERE job_uid IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for uid in &job_uids[start..start + len] {
                query = query.bind(uid);
            }
            let rows = query
                .fetch_all(self.pool())
                .await
                .map_err(|e| Error::from_sqlx("reading job ledgers", e))?;
            for row in rows {
                out.push(ledger_from(&row)?);
            }
        }
        Ok(out)
    }

    /// Every ledger whose job has not been seen gone.
    pub async fn live_ledgers(&self) -> Result<Vec<JobLedger>> {
        let sql = format!("SELECT {LEDGER_COLUMNS} FROM job_ledgers WHERE deleted_ms IS NULL");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map_err(|e| Error::from_sqlx("reading the ledgers of live jobs", e))?;
        rows.iter().map(ledger_from).collect()
    }

    /// Every ledger, live or not.
    pub async fn all_ledgers(&self) -> Result<Vec<JobLedger>> {
        let sql = format!("SELECT {LEDGER_COLUMNS} FROM job_ledgers ORDER BY job_uid");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await
            .map_err(|e| Error::from_sqlx("reading job ledgers", e))?;
        rows.iter().map(ledger_from).collect()
    }

    /// One stored report, by its key.
    pub async fn report(&self, node: &str, window_start_ms: i64) -> Result<Option<StoredReport>> {
        let row = sqlx::query(
            "SELECT node, window_start_ms, window_end_ms, gpu_count, content_hash, site, site_gpu_power_w, site_base_power_w, site_pue, site_renewable_supply_w, site_grid_carbon_g_per_kwh, renewable_share \
             FROM reports WHERE node = $1 AND window_start_ms = $2",
        )
        .bind(node)
        .bind(window_start_ms)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| Error::from_sqlx(format!("reading report {node}@{window_start_ms}"), e))?;
        row.as_ref().map(report_from).transpose()
    }

    /// The window starts of a node's stored reports, oldest first.
    pub async fn report_windows(&self, node: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT window_start_ms FROM reports WHERE node = $1 ORDER BY window_start_ms",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await
        .map_err(|e| Error::from_sqlx(format!("listing the reports of node {node}"), e))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(|e| Error::from_sqlx("decoding", e)))
            .collect()
    }

    /// A node's GPU samples with window starts in `[from_ms, to_ms)`, by time and GPU.
    pub async fn gpu_samples(
        &self,
        node: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<GpuSample>> {
        let rows = sqlx::query(
            "SELECT node, window_start_ms, window_end_ms, gpu_uuid, gpu_index, model, samples, mean_power_w, max_power_w, energy_j, energy_counter_reset, mean_gpu_util_percent, mean_mem_util_percent, memory_used_bytes, memory_total_bytes, temperature_c, sm_clock_mhz, power_limit_w, pod_namespace, pod_name, container, job_uid \
             FROM gpu_samples WHERE node = $1 AND window_start_ms >= $2 AND window_start_ms < $3 ORDER BY window_start_ms, gpu_index",
        )
        .bind(node)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await
        .map_err(|e| Error::from_sqlx(format!("reading the GPU samples of node {node}"), e))?;
        rows.iter().map(sample_from).collect()
    }

    /// A node's hourly aggregates with hours starting in `[from_ms, to_ms)`.
    pub async fn hourly(
        &self,
        node: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<HourlyAggregate>> {
        let rows = sqlx::query(
            "SELECT node, gpu_uuid, hour_start_ms, model, windows, covered_ms, energy_j, max_power_w, gpu_util_percent_ms \
             FROM gpu_hourly WHERE node = $1 AND hour_start_ms >= $2 AND hour_start_ms < $3 ORDER BY hour_start_ms, gpu_uuid",
        )
        .bind(node)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await
        .map_err(|e| Error::from_sqlx(format!("reading the hourly aggregates of node {node}"), e))?;
        rows.iter()
            .map(|r| {
                Ok(HourlyAggregate {
                    node: get(r, 0)?,
                    gpu_uuid: get(r, 1)?,
                    hour_start_ms: get(r, 2)?,
                    model: get(r, 3)?,
                    windows: get(r, 4)?,
                    covered_ms: get(r, 5)?,
                    energy_j: get(r, 6)?,
                    max_power_w: get(r, 7)?,
                    gpu_util_percent_ms: get(r, 8)?,
                })
            })
            .collect()
    }

    /// Rows in each table: (reports, GPU samples, hourly aggregates, ledgers).
    pub async fn row_counts(&self) -> Result<(i64, i64, i64, i64)> {
        let mut counts = [0i64; 4];
        for (i, table) in ["reports", "gpu_samples", "gpu_hourly", "job_ledgers"]
            .iter()
            .enumerate()
        {
            let row = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(self.pool())
                .await
                .map_err(|e| Error::from_sqlx(format!("counting {table}"), e))?;
            counts[i] = get(&row, 0)?;
        }
        Ok((counts[0], counts[1], counts[2], counts[3]))
    }
}

fn get<'r, T>(row: &'r AnyRow, index: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(index)
        .map_err(|e| Error::from_sqlx(format!("decoding column {index}"), e))
}

fn ledger_from(row: &AnyRow) -> Result<JobLedger> {
    Ok(JobLedger {
        job_uid: get(row, 0)?,
        namespace: get(row, 1)?,
        name: get(row, 2)?,
        site: get(row, 3)?,
        energy_j: get(row, 4)?,
        renewable_j: get(row, 5)?,
        grid_j: get(row, 6)?,
        co2_g: get(row, 7)?,
        first_window_start_ms: get(row, 8)?,
        last_window_end_ms: get(row, 9)?,
        updated_ms: get(row, 10)?,
        deleted_ms: get(row, 11)?,
    })
}

fn report_from(row: &AnyRow) -> Result<StoredReport> {
    let site: Option<String> = get(row, 5)?;
    let billing = match site {
        Some(site) => Some(SiteBilling {
            site,
            gpu_power_w: get::<Option<f64>>(row, 6)?.unwrap_or_default(),
            base_power_w: get::<Option<f64>>(row, 7)?.unwrap_or_default(),
            pue: get::<Option<f64>>(row, 8)?.unwrap_or_default(),
            renewable_supply_w: get::<Option<f64>>(row, 9)?.unwrap_or_default(),
            grid_carbon_g_per_kwh: get::<Option<f64>>(row, 10)?.unwrap_or_default(),
            renewable_share: get::<Option<f64>>(row, 11)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredReport {
        node: get(row, 0)?,
        window_start_ms: get(row, 1)?,
        window_end_ms: get(row, 2)?,
        gpu_count: get(row, 3)?,
        content_hash: get(row, 4)?,
        billing,
    })
}

fn sample_from(row: &AnyRow) -> Result<GpuSample> {
    let namespace: Option<String> = get(row, 18)?;
    let name: Option<String> = get(row, 19)?;
    let container: Option<String> = get(row, 20)?;
    Ok(GpuSample {
        node: get(row, 0)?,
        window_start_ms: get(row, 1)?,
        window_end_ms: get(row, 2)?,
        gpu_uuid: get(row, 3)?,
        gpu_index: get(row, 4)?,
        model: get(row, 5)?,
        samples: get(row, 6)?,
        mean_power_w: get(row, 7)?,
        max_power_w: get(row, 8)?,
        energy_j: get(row, 9)?,
        energy_counter_reset: get::<i64>(row, 10)? != 0,
        mean_gpu_util_percent: get(row, 11)?,
        mean_mem_util_percent: get(row, 12)?,
        memory_used_bytes: get(row, 13)?,
        memory_total_bytes: get(row, 14)?,
        temperature_c: get(row, 15)?,
        sm_clock_mhz: get(row, 16)?,
        power_limit_w: get(row, 17)?,
        pod: match (namespace, name) {
            (Some(namespace), Some(name)) => Some((namespace, name, container.unwrap_or_default())),
            _ => None,
        },
        job_uid: get(row, 21)?,
    })
}
