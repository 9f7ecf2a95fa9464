//! Batched, transactional writes of agent reports.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use crate::Store;
use crate::error::{Error, Result};
use crate::records::{GpuSample, ReportWrite, WriteOutcome};

/// Rows per multi-row statement, largest first. A batch is cut greedily into these
/// sizes, so only a handful of statement shapes exist and all stay prepared.
const CHUNK_ROWS: [usize; 5] = [256, 64, 16, 4, 1];

const HOUR_MS: i64 = 3_600_000;

impl Store {
    /// Writes a batch of reports in one transaction and returns, per report, whether it
    /// was stored, a duplicate, or a conflict. Returns only after the commit; on error
    /// nothing of the batch is written.
    pub async fn write_batch(&self, writes: &[ReportWrite]) -> Result<Vec<WriteOutcome>> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(|e| Error::from_sqlx("starting a transaction", e))?;
        let outcomes = write_in(&mut tx, writes, self.backend().placeholder()).await?;
        tx.commit()
            .await
            .map_err(|e| Error::from_sqlx("committing a batch of reports", e))?;
        Ok(outcomes)
    }
}

async fn write_in(
    tx: &mut Transaction<'static, Any>,
    writes: &[ReportWrite],
    p: char,
) -> Result<Vec<WriteOutcome>> {
    // The first report of each key in the batch competes for the key; later ones with the
    // same key are compared with whatever ends up stored.
    let mut first_index: HashMap<(&str, i64), usize> = HashMap::new();
    let mut candidates = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let key = (w.report.node.as_str(), w.report.window_start_ms);
        if let std::collections::hash_map::Entry::Vacant(e) = first_index.entry(key) {
            e.insert(i);
            candidates.push(i);
        }
    }

    let inserted = insert_reports(tx, writes, &candidates, p).await?;
    let mut stored_hash: HashMap<(&str, i64), String> = HashMap::new();
    let mut outcomes = vec![WriteOutcome::Duplicate; writes.len()];
    for &i in &candidates {
        let r = &writes[i].report;
        let key = (r.node.as_str(), r.window_start_ms);
        if inserted.contains(&(r.node.clone(), r.window_start_ms)) {
            outcomes[i] = WriteOutcome::Stored;
            stored_hash.insert(key, r.content_hash.clone());
        } else {
            let existing: Option<String> = sqlx::query(
                "SELECT content_hash FROM reports WHERE node = $1 AND window_start_ms = $2",
            )
            .bind(&r.node)
            .bind(r.window_start_ms)
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| {
                Error::from_sqlx(
                    format!("reading report {}@{}", r.node, r.window_start_ms),
                    e,
                )
            })?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(|e| Error::from_sqlx("decoding a content hash", e))?;
            let existing = existing.unwrap_or_default();
            outcomes[i] = if existing == r.content_hash {
                WriteOutcome::Duplicate
            } else {
                WriteOutcome::Conflict
            };
            stored_hash.insert(key, existing);
        }
    }
    for (i, w) in writes.iter().enumerate() {
        let key = (w.report.node.as_str(), w.report.window_start_ms);
        if first_index.get(&key) != Some(&i) {
            outcomes[i] = if stored_hash.get(&key) == Some(&w.report.content_hash) {
                WriteOutcome::Duplicate
            } else {
                WriteOutcome::Conflict
            };
        }
    }

    let stored: Vec<&ReportWrite> = writes
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == WriteOutcome::Stored)
        .map(|(w, _)| w)
        .collect();
    let samples: Vec<&GpuSample> = stored.iter().flat_map(|w| &w.samples).collect();
    insert_samples(tx, &samples, p).await?;
    upsert_hourly(tx, &samples, p).await?;
    upsert_ledgers(tx, &stored, p).await?;
    Ok(outcomes)
}

/// Inserts the report keys, skipping existing ones; returns the keys inserted now.
async fn insert_reports(
    tx: &mut Transaction<'static, Any>,
    writes: &[ReportWrite],
    indices: &[usize],
    p: char,
) -> Result<HashSet<(String, i64)>> {
    const COLUMNS: &str = "node, window_start_ms, window_end_ms, received_ms, agent_version, content_hash, gpu_count, site, site_gpu_power_w, site_base_power_w, site_pue, site_renewable_supply_w, site_grid_carbon_g_per_kwh, renewable_share";
    let mut inserted = HashSet::new();
    for (start, len) in chunks(indices.len()) {
        let sql = values_sql(
            p,
            &format!("INSERT INTO reports ({COLUMNS})"),
            14,
            len,
            "ON CONFLICT (node, window_start_ms) DO NOTHING RETURNING node, window_start_ms",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for &i in &indices[start..start + len] {
            let r = &writes[i].report;
            let b = r.billing.as_ref();
            query = query
                .bind(&r.node)
                .bind(r.window_start_ms)
                .bind(r.window_end_ms)
                .bind(r.received_ms)
                .bind(&r.agent_version)
                .bind(&r.content_hash)
                .bind(writes[i].samples.len() as i64)
                .bind(b.map(|b| b.site.clone()))
                .bind(b.map(|b| b.gpu_power_w))
                .bind(b.map(|b| b.base_power_w))
                .bind(b.map(|b| b.pue))
                .bind(b.map(|b| b.renewable_supply_w))
                .bind(b.map(|b| b.grid_carbon_g_per_kwh))
                .bind(b.map(|b| b.renewable_share));
        }
        let rows = query
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| Error::from_sqlx("inserting report keys", e))?;
        for row in rows {
            let node: String = row
                .try_get(0)
                .map_err(|e| Error::from_sqlx("decoding an inserted report key", e))?;
            let start: i64 = row
                .try_get(1)
                .map_err(|e| Error::from_sqlx("decoding an inserted report key", e))?;
            inserted.insert((node, start));
        }
    }
    Ok(inserted)
}

async fn insert_samples(
    tx: &mut Transaction<'static, Any>,
    samples: &[&GpuSample],
    p: char,
) -> Result<()> {
    const COLUMNS: &str = "node, window_start_ms, window_end_ms, gpu_uuid, gpu_index, model, samples, mean_power_w, max_power_w, energy_j, energy_counter_reset, mean_gpu_util_percent, mean_mem_util_percent, memory_used_bytes, memory_total_bytes, temperature_c, sm_clock_mhz, power_limit_w, pod_namespace, pod_name, container, job_uid";
    for (start, len) in chunks(samples.len()) {
        let sql = values_sql(
            p,
            &format!("INSERT INTO gpu_samples ({COLUMNS})"),
            22,
            len,
            "",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for s in &samples[start..start + len] {
            let pod = s.pod.as_ref();
            query = query
                .bind(&s.node)
                .bind(s.window_start_ms)
                .bind(s.window_end_ms)
                .bind(&s.gpu_uuid)
                .bind(s.gpu_index)
                .bind(&s.model)
                .bind(s.samples)
                .bind(s.mean_power_w)
                .bind(s.max_power_w)
                .bind(s.energy_j)
                .bind(i64::from(s.energy_counter_reset))
                .bind(s.mean_gpu_util_percent)
                .bind(s.mean_mem_util_percent)
                .bind(s.memory_used_bytes)
                .bind(s.memory_total_bytes)
                .bind(s.temperature_c)
                .bind(s.sm_clock_mhz)
                .bind(s.power_limit_w)
                .bind(pod.map(|p| p.0.clone()))
                .bind(pod.map(|p| p.1.clone()))
                .bind(pod.map(|p| p.2.clone()))
                .bind(s.job_uid.clone());
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|e| Error::from_sqlx("inserting GPU samples", e))?;
    }
    Ok(())
}

/// Adds the samples to their hours. Summed here first: one statement may not touch the
/// same row twice (PostgreSQL refuses it).
async fn upsert_hourly(
    tx: &mut Transaction<'static, Any>,
    samples: &[&GpuSample],
    p: char,
) -> Result<()> {
    struct Hour<'a> {
        model: &'a str,
        windows: i64,
        covered_ms: i64,
        energy_j: f64,
        max_power_w: f64,
        util_ms: f64,
    }
    let mut hours: HashMap<(&str, &str, i64), Hour<'_>> = HashMap::new();
    let mut order = Vec::new();
    for s in samples {
        let hour_start_ms = s.window_start_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let covered_ms = (s.window_end_ms - s.window_start_ms).max(0);
        let key = (s.node.as_str(), s.gpu_uuid.as_str(), hour_start_ms);
        let hour = hours.entry(key).or_insert_with(|| {
            order.push(key);
            Hour {
                model: &s.model,
                windows: 0,
                covered_ms: 0,
                energy_j: 0.0,
                max_power_w: 0.0,
                util_ms: 0.0,
            }
        });
        hour.windows += 1;
        hour.covered_ms += covered_ms;
        hour.energy_j += s.energy_j;
        hour.max_power_w = hour.max_power_w.max(s.max_power_w);
        hour.util_ms += s.mean_gpu_util_percent * covered_ms as f64;
    }
    for (start, len) in chunks(order.len()) {
        let sql = values_sql(
            p,
            "INSERT INTO gpu_hourly (node, gpu_uuid, hour_start_ms, model, windows, covered_ms, energy_j, max_power_w, gpu_util_percent_ms)",
            9,
            len,
            "ON CONFLICT (node, gpu_uuid, hour_start_ms) DO UPDATE SET \
             model = excluded.model, \
             windows = gpu_hourly.windows + excluded.windows, \
             covered_ms = gpu_hourly.covered_ms + excluded.covered_ms, \
             energy_j = gpu_hourly.energy_j + excluded.energy_j, \
             max_power_w = CASE WHEN excluded.max_power_w > gpu_hourly.max_power_w THEN excluded.max_power_w ELSE gpu_hourly.max_power_w END, \
             gpu_util_percent_ms = gpu_hourly.gpu_util_percent_ms + excluded.gpu_util_percent_ms",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for key in &order[start..start + len] {
            let h = &hours[key];
            query = query
                .bind(key.0)
                .bind(key.1)
                .bind(key.2)
                .bind(h.model)
                .bind(h.windows)
                .bind(h.covered_ms)
                .bind(h.energy_j)
                .bind(h.max_power_w)
                .bind(h.util_ms);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|e| Error::from_sqlx("updating hourly aggregates", e))?;
    }
    Ok(())
}

/// Adds each report's charges to the jobs' ledgers (summed per job first).
async fn upsert_ledgers(
    tx: &mut Transaction<'static, Any>,
    stored: &[&ReportWrite],
    p: char,
) -> Result<()> {
    struct Sum<'a> {
        namespace: &'a str,
        name: &'a str,
        site: &'a str,
        energy_j: f64,
        renewable_j: f64,
        grid_j: f64,
        co2_g: f64,
        first_ms: i64,
        last_ms: i64,
        updated_ms: i64,
    }
    let mut sums: HashMap<&str, Sum<'_>> = HashMap::new();
    let mut order = Vec::new();
    for w in stored {
        for c in &w.charges {
            let sum = sums.entry(c.job_uid.as_str()).or_insert_with(|| {
                order.push(c.job_uid.as_str());
                Sum {
                    namespace: &c.namespace,
                    name: &c.name,
                    site: &c.site,
                    energy_j: 0.0,
                    renewable_j: 0.0,
                    grid_j: 0.0,
                    co2_g: 0.0,
                    first_ms: w.report.window_start_ms,
                    last_ms: w.report.window_end_ms,
                    updated_ms: w.report.received_ms,
                }
            });
            sum.energy_j += c.energy_j;
            sum.renewable_j += c.renewable_j;
            sum.grid_j += c.grid_j;
            sum.co2_g += c.co2_g;
            sum.first_ms = sum.first_ms.min(w.report.window_start_ms);
            if w.report.window_end_ms >= sum.last_ms {
                sum.last_ms = w.report.window_end_ms;
                sum.site = &c.site;
            }
            sum.updated_ms = sum.updated_ms.max(w.report.received_ms);
        }
    }
    for (start, len) in chunks(order.len()) {
        let sql = values_sql(
            p,
            "INSERT INTO job_ledgers (job_uid, job_namespace, job_name, site, energy_j, renewable_j, grid_j, co2_g, first_window_start_ms, last_window_end_ms, updated_ms)",
            11,
            len,
            "ON CONFLICT (job_uid) DO UPDATE SET \
             energy_j = job_ledgers.energy_j + excluded.energy_j, \
             renewable_j = job_ledgers.renewable_j + excluded.renewable_j, \
             grid_j = job_ledgers.grid_j + excluded.grid_j, \
             co2_g = job_ledgers.co2_g + excluded.co2_g, \
             first_window_start_ms = CASE WHEN excluded.first_window_start_ms < job_ledgers.first_window_start_ms THEN excluded.first_window_start_ms ELSE job_ledgers.first_window_start_ms END, \
             site = CASE WHEN excluded.last_window_end_ms >= job_ledgers.last_window_end_ms THEN excluded.site ELSE job_ledgers.site END, \
             last_window_end_ms = CASE WHEN excluded.last_window_end_ms > job_ledgers.last_window_end_ms THEN excluded.last_window_end_ms ELSE job_ledgers.last_window_end_ms END, \
             updated_ms = CASE WHEN excluded.updated_ms > job_ledgers.updated_ms THEN excluded.updated_ms ELSE job_ledgers.updated_ms END",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for uid in &order[start..start + len] {
            let s = &sums[uid];
            query = query
                .bind(*uid)
                .bind(s.namespace)
                .bind(s.name)
                .bind(s.site)
                .bind(s.energy_j)
                .bind(s.renewable_j)
                .bind(s.grid_j)
                .bind(s.co2_g)
                .bind(s.first_ms)
                .bind(s.last_ms)
                .bind(s.updated_ms);
        }
        query
            .execute(&mut **tx)
            .await
            .map_err(|e| Error::from_sqlx("updating job ledgers", e))?;
    }
    Ok(())
}

/// `prefix VALUES ($1, …, $k), (…) suffix` for `rows` rows of `columns` values: `$N`
/// when `p` is `$`, plain `?` (in order) when it is `?`.
pub(crate) fn values_sql(
    p: char,
    prefix: &str,
    columns: usize,
    rows: usize,
    suffix: &str,
) -> String {
    let mut sql = String::with_capacity(prefix.len() + suffix.len() + rows * columns * 6);
    sql.push_str(prefix);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push(p);
            if p == '$' {
                sql.push_str(&n.to_string());
            }
        }
        sql.push(')');
    }
    if !suffix.is_empty() {
        sql.push(' ');
        sql.push_str(suffix);
    }
    sql
}

/// Cuts `n` rows into (start, len) chunks of the sizes in [`CHUNK_ROWS`].
pub(crate) fn chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for size in CHUNK_ROWS {
        while n - start >= size {
            out.push((start, size));
            start += size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_use_few_shapes_and_cover_everything() {
        assert_eq!(chunks(0), vec![]);
        assert_eq!(chunks(5), vec![(0, 4), (4, 1)]);
        let c = chunks(600);
        assert_eq!(c.iter().map(|(_, l)| l).sum::<usize>(), 600);
        assert_eq!(c[0], (0, 256));
        assert_eq!(c[2], (512, 64));
    }

    #[test]
    fn values_sql_writes_plain_placeholders_for_sqlite() {
        assert_eq!(
            values_sql('?', "INSERT INTO t (a, b)", 2, 2, ""),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn values_sql_numbers_placeholders() {
        assert_eq!(
            values_sql('$', "INSERT INTO t (a, b)", 2, 2, "ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }
}
