//! GPU job traces: Microsoft ITP (`job_id,submission_time,duration,num_gpu`) and Alibaba
//! GPU v2023 pod lists (`name,…,num_gpu,…,creation_time,deletion_time,scheduled_time`).

use std::path::Path;

use serde::Serialize;

use crate::error::SimError;

/// The formats [`parse_trace`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// Microsoft ITP raw traces (ElasticFlow, ASPLOS '23): `job_id,submission_time,duration,num_gpu`.
    Itp,
    /// Alibaba cluster-trace-gpu-v2023 pod lists: a pod's GPUs from `num_gpu`, its submit
    /// time from `creation_time`, its run time `deletion_time − scheduled_time`.
    Alibaba,
}

/// One job of a trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceJob {
    pub id: String,
    /// Seconds since the start of the trace's collection.
    pub submit_s: i64,
    pub duration_s: i64,
    pub gpus: u32,
}

/// A parsed trace and what was left out of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trace {
    /// Jobs in file order.
    pub jobs: Vec<TraceJob>,
    /// Rows without GPUs (CPU-only pods) or without a positive run time.
    pub skipped_rows: usize,
}

/// Reads a trace file.
pub fn read_trace(path: &Path, format: TraceFormat) -> Result<Trace, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_trace(&text, format).map_err(|(line, message)| SimError::Trace {
        path: path.to_owned(),
        line,
        message,
    })
}

/// Parses a trace; an error is `(1-based line, what is wrong)`.
pub fn parse_trace(text: &str, format: TraceFormat) -> Result<Trace, (usize, String)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    let (_, header) = lines
        .by_ref()
        .find(|(_, l)| !l.is_empty())
        .ok_or((1, "the trace is empty".to_owned()))?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| {
            (
                1,
                format!(
                    "no `{name}` column in the header `{header}`; is this a {} trace (see --trace-format)?",
                    match format {
                        TraceFormat::Itp => "Microsoft ITP",
                        TraceFormat::Alibaba => "Alibaba GPU v2023",
                    }
                ),
            )
        })
    };
    let mut trace = Trace::default();
    match format {
        TraceFormat::Itp => {
            let (id, submit, duration, gpus) = (
                index("job_id")?,
                index("submission_time")?,
                index("duration")?,
                index("num_gpu")?,
            );
            for (line, row) in lines.filter(|(_, l)| !l.is_empty()) {
                let fields: Vec<&str> = row.split(',').map(str::trim).collect();
                let get = |i: usize, name: &str| {
                    fields
                        .get(i)
                        .copied()
                        .ok_or_else(|| (line, format!("missing `{name}`")))
                };
                let job = TraceJob {
                    id: get(id, "job_id")?.to_owned(),
                    submit_s: number(get(submit, "submission_time")?, "submission_time", line)?,
                    duration_s: number(get(duration, "duration")?, "duration", line)?,
                    gpus: number(get(gpus, "num_gpu")?, "num_gpu", line)?
                        .clamp(0, i64::from(u32::MAX)) as u32,
                };
                push(&mut trace, job);
            }
        }
        TraceFormat::Alibaba => {
            let (name, gpus, created, deleted, scheduled) = (
                index("name")?,
                index("num_gpu")?,
                index("creation_time")?,
                index("deletion_time")?,
                index("scheduled_time")?,
            );
            for (line, row) in lines.filter(|(_, l)| !l.is_empty()) {
                let fields: Vec<&str> = row.split(',').map(str::trim).collect();
                let get = |i: usize, field: &str| {
                    fields
                        .get(i)
                        .copied()
                        .ok_or_else(|| (line, format!("missing `{field}`")))
                };
                let created_s = number(get(created, "creation_time")?, "creation_time", line)?;
                let deleted_field = get(deleted, "deletion_time")?;
                let scheduled_field = get(scheduled, "scheduled_time")?;
                // Pods that never ran (Pending) leave scheduled_time empty.
                if scheduled_field.is_empty() || deleted_field.is_empty() {
                    trace.skipped_rows += 1;
                    continue;
                }
                let deleted_s = number(deleted_field, "deletion_time", line)?;
                let started_s = number(scheduled_field, "scheduled_time", line)?.max(created_s);
                let job = TraceJob {
                    id: get(name, "name")?.to_owned(),
                    submit_s: created_s,
                    duration_s: deleted_s - started_s,
                    gpus: number(get(gpus, "num_gpu")?, "num_gpu", line)?
                        .clamp(0, i64::from(u32::MAX)) as u32,
                };
                push(&mut trace, job);
            }
        }
    }
    if trace.jobs.is_empty() {
        return Err((
            1,
            "no GPU jobs with a positive duration in the trace".to_owned(),
        ));
    }
    Ok(trace)
}

fn push(trace: &mut Trace, job: TraceJob) {
    if job.gpus == 0 || job.duration_s <= 0 || job.submit_s < 0 {
        trace.skipped_rows += 1;
    } else {
        trace.jobs.push(job);
    }
}

fn number(field: &str, name: &str, line: usize) -> Result<i64, (usize, String)> {
    if let Ok(v) = field.parse::<i64>() {
        return Ok(v);
    }
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() < 1e15 => Ok(v.round() as i64),
        _ => Err((line, format!("`{name}` is `{field}`, not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_itp_rows_and_skips_empty_jobs() {
        let text = "job_id,submission_time,duration,num_gpu\n\
                    a,1999,13423,1\n\
                    b,2001,0,4\n\
                    c,2100,600,0\n\
                    d,3000.0,7200,16\n";
        let trace = parse_trace(text, TraceFormat::Itp).unwrap();
        assert_eq!(trace.skipped_rows, 2);
        assert_eq!(
            trace.jobs,
            vec![
                TraceJob {
                    id: "a".into(),
                    submit_s: 1999,
                    duration_s: 13423,
                    gpus: 1
                },
                TraceJob {
                    id: "d".into(),
                    submit_s: 3000,
                    duration_s: 7200,
                    gpus: 16
                },
            ]
        );
    }

    #[test]
    fn reads_alibaba_pods_from_scheduling_to_deletion() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    openb-pod-0000,12000,16384,1,1000,,LS,Running,0,12537496,0\n\
                    openb-pod-0001,6000,12288,1,460,,LS,Running,427061,12902960,427061\n\
                    openb-pod-0002,8000,1024,0,0,,BE,Succeeded,100,200,100\n\
                    openb-pod-0003,8000,1024,8,1000,V100M16,LS,Succeeded,100,7300,300\n\
                    openb-pod-0004,8000,1024,1,1000,,LS,Pending,500,,\n";
        let trace = parse_trace(text, TraceFormat::Alibaba).unwrap();
        assert_eq!(
            trace.skipped_rows, 2,
            "a CPU-only pod and one that never ran"
        );
        assert_eq!(trace.jobs.len(), 3);
        assert_eq!(trace.jobs[2].duration_s, 7000);
        assert_eq!(trace.jobs[2].gpus, 8);
    }

    #[test]
    fn wrong_format_and_bad_numbers_name_the_line() {
        let err = parse_trace("a,b,c\n1,2,3\n", TraceFormat::Itp).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("job_id") && err.1.contains("--trace-format"));
        let err = parse_trace(
            "job_id,submission_time,duration,num_gpu\nx,1,2,1\ny,soon,2,1\n",
            TraceFormat::Itp,
        )
        .unwrap_err();
        assert_eq!(err.0, 3);
        assert!(err.1.contains("submission_time"), "{}", err.1);
        let err = parse_trace(
            "job_id,submission_time,duration,num_gpu\nx,1\n",
            TraceFormat::Itp,
        )
        .unwrap_err();
        assert_eq!(err, (2, "missing `duration`".to_owned()));
    }
}
