//! The `threshold-wait` baseline (Wiesner et al., "Let's Wait Awhile", 2021): a waiting
//! job may start only where renewables cover a threshold share of the site's load.

use std::collections::BTreeMap;

use super::{RunState, Simulation};

impl Simulation<'_> {
    /// `threshold-wait`: the sites at which each waiting job may start now: anywhere once
    /// its latest start has come, else where renewables would cover at least `threshold`
    /// of the site's load with it (jobs admitted earlier in this cycle included). Jobs
    /// absent from the map wait.
    pub(super) fn threshold_gate(
        &self,
        now_s: i64,
        draw: &[(f64, f64)],
    ) -> BTreeMap<usize, Vec<String>> {
        let shape = &self.config.cluster;
        let mut supply_kw = Vec::with_capacity(self.sites.len());
        let mut load_kw = Vec::with_capacity(self.sites.len());
        for (s, site) in self.sites.iter().enumerate() {
            supply_kw.push(site.supply_kw_at(now_s));
            load_kw.push(shape.site_facility_kw(site, draw[s].0, draw[s].1));
        }
        let mut allowed = BTreeMap::new();
        for &j in &self.active {
            if !matches!(self.live[j].state, RunState::Pending | RunState::Suspended) {
                continue;
            }
            let job = &self.jobs[j];
            if job.deadline_s.is_some_and(|d| {
                now_s >= self.latest_start_s(d, self.live[j].remaining_s.ceil() as i64)
            }) {
                allowed.insert(j, Vec::new());
                continue;
            }
            let mut best: Option<(usize, f64)> = None;
            let mut passing = Vec::new();
            for s in 0..self.sites.len() {
                // Starting the job turns its GPUs from idle to busy.
                let added_kw = f64::from(job.gpus())
                    * (shape.gpu_max_watts - shape.gpu_idle_watts)
                    * self.sites[s].pue
                    / 1000.0;
                let share = supply_kw[s] / (load_kw[s] + added_kw).max(f64::MIN_POSITIVE);
                if share >= self.config.threshold {
                    passing.push(self.sites[s].name.clone());
                    let headroom = supply_kw[s] - load_kw[s];
                    if best.is_none_or(|(_, h)| headroom > h) {
                        best = Some((s, headroom));
                    }
                }
            }
            if let Some((s, _)) = best {
                load_kw[s] += self.job_kw(j, s);
                allowed.insert(j, passing);
            }
        }
        allowed
    }
}
