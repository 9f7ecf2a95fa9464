-- Verdant's energy store. The same SQL runs on SQLite and PostgreSQL: only BIGINT,
-- DOUBLE PRECISION and TEXT columns (sqlx's Any driver maps no SQLite booleans), natural
-- keys, no sequences.

-- One row per accepted agent report: the idempotency key (node, window_start_ms), the
-- content hash that tells a retry from a conflicting replay, and the site window the
-- report was billed with, so every bill can be checked afterwards.
CREATE TABLE reports (
    node TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    agent_version TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    gpu_count BIGINT NOT NULL,
    site TEXT,
    site_gpu_power_w DOUBLE PRECISION,
    site_base_power_w DOUBLE PRECISION,
    site_pue DOUBLE PRECISION,
    site_renewable_supply_w DOUBLE PRECISION,
    site_grid_carbon_g_per_kwh DOUBLE PRECISION,
    renewable_share DOUBLE PRECISION,
    PRIMARY KEY (node, window_start_ms)
);
CREATE INDEX reports_by_window_start ON reports (window_start_ms);

-- Per-GPU windows at full resolution (kept for the sample retention, 7 days by default).
CREATE TABLE gpu_samples (
    node TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    gpu_uuid TEXT NOT NULL,
    gpu_index BIGINT NOT NULL,
    model TEXT NOT NULL,
    samples BIGINT NOT NULL,
    mean_power_w DOUBLE PRECISION NOT NULL,
    max_power_w DOUBLE PRECISION NOT NULL,
    energy_j DOUBLE PRECISION NOT NULL,
    energy_counter_reset BIGINT NOT NULL, -- 0 or 1
    mean_gpu_util_percent DOUBLE PRECISION NOT NULL,
    mean_mem_util_percent DOUBLE PRECISION NOT NULL,
    memory_used_bytes BIGINT NOT NULL,
    memory_total_bytes BIGINT NOT NULL,
    temperature_c DOUBLE PRECISION NOT NULL,
    sm_clock_mhz BIGINT NOT NULL,
    power_limit_w DOUBLE PRECISION NOT NULL,
    pod_namespace TEXT,
    pod_name TEXT,
    container TEXT,
    job_uid TEXT,
    PRIMARY KEY (node, window_start_ms, gpu_uuid)
);
CREATE INDEX gpu_samples_by_window_start ON gpu_samples (window_start_ms);

-- Hourly aggregates per GPU (kept a year), maintained in the same transaction as the
-- samples. A window counts for the hour it starts in.
CREATE TABLE gpu_hourly (
    node TEXT NOT NULL,
    gpu_uuid TEXT NOT NULL,
    hour_start_ms BIGINT NOT NULL,
    model TEXT NOT NULL,
    windows BIGINT NOT NULL,
    covered_ms BIGINT NOT NULL,
    energy_j DOUBLE PRECISION NOT NULL,
    max_power_w DOUBLE PRECISION NOT NULL,
    gpu_util_percent_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (node, gpu_uuid, hour_start_ms)
);
CREATE INDEX gpu_hourly_by_hour ON gpu_hourly (hour_start_ms);

-- Energy billed to each TrainingJob (by uid), summed over every window. Kept while the
-- job exists; deleted_ms is set when it is gone, and the row is purged a retention later.
CREATE TABLE job_ledgers (
    job_uid TEXT NOT NULL PRIMARY KEY,
    job_namespace TEXT NOT NULL,
    job_name TEXT NOT NULL,
    site TEXT,
    energy_j DOUBLE PRECISION NOT NULL,
    renewable_j DOUBLE PRECISION NOT NULL,
    grid_j DOUBLE PRECISION NOT NULL,
    co2_g DOUBLE PRECISION NOT NULL,
    first_window_start_ms BIGINT NOT NULL,
    last_window_end_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    deleted_ms BIGINT
);
CREATE INDEX job_ledgers_by_job ON job_ledgers (job_namespace, job_name);
