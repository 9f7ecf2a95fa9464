//! Renewable headroom over time at one site, as an exact step function.
//!
//! headroom(t) = supply(t) − committed(t), where committed(t) is the site's base load plus
//! every job expected to draw power at t (running jobs, placements made earlier in the
//! cycle, and the head-of-queue reservation). Both terms are step functions, so their
//! difference is one too, and the renewable energy a job can get is integrated exactly,
//! segment by segment.
//!
//! Why no prefix integrals: a job can only use headroom up to its own power, so the
//! integrand is `clamp(headroom, 0, job power)`, which depends on the job. A prefix sum of
//! headroom would be exact only when the job's power exceeds every segment, so the engine
//! walks the (few dozen) segments in the job's window instead; see docs/scheduling.md.
//!
//! # Batteries
//! A site's batteries ([`Storage`]) follow the committed load: from their state of charge
//! at `now_s` they charge from every segment's surplus and discharge into its deficit
//! (`soc_at_start`, recomputed when load is added). A new load on `[from, to)` gets the
//! headroom directly, plus what the batteries deliver into its deficit beyond what the
//! committed load alone would have taken from the same state of charge (the committed
//! load is served first). [`HeadroomTimeline::at`] adds the discharge power of the
//! batteries that still hold energy above their floor.

use super::snapshot::SupplyPoint;
use crate::energy::{BatteryState, Storage};

/// Relative slack for comparisons of kW and fractions computed by different summation orders.
pub const EPS: f64 = 1e-9;

/// The step function `headroom_kw[i]` on `[starts_s[i], starts_s[i + 1])`; the last
/// segment extends forever. `starts_s[0]` is the cycle's `now_s`: the past is never asked.
#[derive(Clone, Debug)]
pub struct HeadroomTimeline {
    starts_s: Vec<i64>,
    headroom_kw: Vec<f64>,
    /// The batteries at `now_s`.
    storage: Storage,
    /// Their states of charge at each segment start under the committed load alone.
    soc_at_start: Vec<Vec<f64>>,
}

/// A temporary change of headroom, `kw` added on `[.., until_s)`, used to ask "what if"
/// without editing the timeline.
#[derive(Clone, Copy, Debug)]
pub struct Adjustment {
    pub until_s: i64,
    pub kw: f64,
}

impl HeadroomTimeline {
    /// Builds the timeline from `now_s` on. `loads` are `(end_s, kw)` pairs drawing from
    /// `now_s` until `end_s`.
    pub fn new(
        now_s: i64,
        supply: &[SupplyPoint],
        base_load_kw: f64,
        loads: &[(i64, f64)],
    ) -> Self {
        let supply = SupplyCurve::new(supply);
        let mut starts_s = vec![now_s];
        starts_s.extend(supply.boundaries_s().filter(|t| *t > now_s));
        starts_s.extend(loads.iter().map(|(end, _)| *end).filter(|t| *t > now_s));
        starts_s.sort_unstable();
        starts_s.dedup();

        let mut ends: Vec<(i64, f64)> = loads
            .iter()
            .copied()
            .filter(|(end, _)| *end > now_s)
            .collect();
        // A canonical order makes the float sums independent of the order of the input jobs.
        ends.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut committed_kw = base_load_kw + ends.iter().map(|(_, kw)| kw).sum::<f64>();
        let mut next_end = 0;
        let headroom_kw = starts_s
            .iter()
            .map(|&t| {
                while next_end < ends.len() && ends[next_end].0 <= t {
                    committed_kw -= ends[next_end].1;
                    next_end += 1;
                }
                supply.kw_at(t) - committed_kw
            })
            .collect();
        Self {
            starts_s,
            headroom_kw,
            storage: Storage::default(),
            soc_at_start: Vec::new(),
        }
    }

    /// The same timeline with the site's batteries, in their state at `now_s`.
    pub fn with_storage(mut self, batteries: &[BatteryState]) -> Self {
        self.storage = Storage::new(batteries.to_vec());
        self.follow_committed_load();
        self
    }

    /// Renewable energy, kW·s, the batteries would deliver to a load of `power_kw` on
    /// `[from_s, to_s)` beyond the headroom itself (0 without batteries).
    pub fn battery_kws(&self, from_s: i64, to_s: i64, power_kw: f64) -> f64 {
        self.storage_kws(from_s, to_s, power_kw, 0.0, None)
    }

    /// The batteries' energy above their floors at `t_s` under the committed load, kWh.
    pub fn battery_deliverable_kwh(&self, t_s: i64) -> f64 {
        self.storage_at(t_s).deliverable_kwh()
    }

    /// The batteries' states of charge at each segment start, following the committed load.
    fn follow_committed_load(&mut self) {
        self.soc_at_start.clear();
        if self.storage.is_empty() {
            return;
        }
        let mut storage = self.storage.clone();
        for i in 0..self.starts_s.len() {
            self.soc_at_start
                .push(storage.batteries.iter().map(|b| b.soc_kwh).collect());
            if let Some(&next) = self.starts_s.get(i + 1) {
                storage.step(self.headroom_kw[i], (next - self.starts_s[i]) as f64);
            }
        }
    }

    /// The batteries at `t_s` (≥ `now_s`) under the committed load.
    fn storage_at(&self, t_s: i64) -> Storage {
        let mut storage = self.storage.clone();
        if storage.is_empty() {
            return storage;
        }
        let t_s = t_s.max(self.now_s());
        let i = self.segment_of(t_s);
        for (b, soc) in storage.batteries.iter_mut().zip(&self.soc_at_start[i]) {
            b.soc_kwh = *soc;
        }
        storage.step(self.headroom_kw[i], (t_s - self.starts_s[i]) as f64);
        storage
    }

    /// The batteries' part of `covered_kws`.
    fn storage_kws(
        &self,
        from_s: i64,
        to_s: i64,
        power_kw: f64,
        offset_kw: f64,
        adjustment: Option<Adjustment>,
    ) -> f64 {
        let from_s = from_s.max(self.now_s());
        if self.storage.is_empty() || to_s <= from_s || power_kw <= 0.0 {
            return 0.0;
        }
        let mut with_load = self.storage_at(from_s);
        let mut total_kwh = 0.0;
        let mut piece = |h: f64, dt_s: i64| {
            let dt = dt_s as f64;
            let mut alone = with_load.clone();
            let committed = alone.step(h, dt).discharged_kwh;
            let both = with_load.step(h - power_kw, dt).discharged_kwh;
            let direct_kw = h.clamp(0.0, power_kw);
            total_kwh += (both - committed).clamp(0.0, (power_kw - direct_kw) * dt / 3600.0);
        };
        let mut i = self.segment_of(from_s);
        let mut t = from_s;
        while t < to_s {
            let seg_end = self
                .starts_s
                .get(i + 1)
                .map_or(to_s, |&next| next.min(to_s));
            let h = self.headroom_kw[i] + offset_kw;
            match adjustment {
                Some(adj) if adj.until_s > t => {
                    let split = adj.until_s.min(seg_end);
                    piece(h + adj.kw, split - t);
                    if seg_end > split {
                        piece(h, seg_end - split);
                    }
                }
                _ => piece(h, seg_end - t),
            }
            t = seg_end;
            i += 1;
        }
        total_kwh * 3600.0
    }

    pub fn now_s(&self) -> i64 {
        self.starts_s[0]
    }

    /// Headroom at instant `t_s` (clamped to `now_s`), with the discharge power of the
    /// batteries that still hold energy above their floor then.
    pub fn at(&self, t_s: i64) -> f64 {
        let h = self.headroom_kw[self.segment_of(t_s)];
        if self.storage.is_empty() {
            return h;
        }
        h + self.storage_at(t_s).available_discharge_kw()
    }

    /// Commits `kw` of load on `[from_s, to_s)` (negative `kw` releases load).
    pub fn add_load(&mut self, from_s: i64, to_s: i64, kw: f64) {
        let from_s = from_s.max(self.now_s());
        if to_s <= from_s || kw == 0.0 {
            return;
        }
        let first = self.split_at(from_s);
        let end = self.split_at(to_s);
        for h in &mut self.headroom_kw[first..end] {
            *h -= kw;
        }
        self.follow_committed_load();
    }

    /// Renewable energy, in kW·s, that a load of `power_kw` on `[from_s, to_s)` can take:
    /// ∫ clamp(headroom(t) + offset_kw (+ adjustment), 0, power_kw) dt.
    pub fn covered_kws(
        &self,
        from_s: i64,
        to_s: i64,
        power_kw: f64,
        offset_kw: f64,
        adjustment: Option<Adjustment>,
    ) -> f64 {
        let from_s = from_s.max(self.now_s());
        if to_s <= from_s || power_kw <= 0.0 {
            return 0.0;
        }
        let covered = |h: f64| (h + offset_kw).clamp(0.0, power_kw);
        let mut total = 0.0;
        let mut i = self.segment_of(from_s);
        let mut t = from_s;
        while t < to_s {
            let seg_end = self
                .starts_s
                .get(i + 1)
                .map_or(to_s, |&next| next.min(to_s));
            let h = self.headroom_kw[i];
            match adjustment {
                Some(adj) if adj.until_s > t => {
                    let split = adj.until_s.min(seg_end);
                    total += covered(h + adj.kw) * (split - t) as f64;
                    total += covered(h) * (seg_end - split) as f64;
                }
                _ => total += covered(h) * (seg_end - t) as f64,
            }
            t = seg_end;
            i += 1;
        }
        total + self.storage_kws(from_s, to_s, power_kw, offset_kw, adjustment)
    }

    /// Share of the energy of `power_kw` over `[start_s, start_s + duration_s)` covered by
    /// positive headroom. A job drawing nothing is fully green.
    pub fn renewable_fraction(&self, start_s: i64, duration_s: i64, power_kw: f64) -> f64 {
        if power_kw <= 0.0 || duration_s <= 0 {
            return 1.0;
        }
        let kws = self.covered_kws(start_s, start_s + duration_s, power_kw, 0.0, None);
        (kws / (power_kw * duration_s as f64)).clamp(0.0, 1.0)
    }

    /// Index of the segment containing `t_s` (times before `now_s` map to the first).
    fn segment_of(&self, t_s: i64) -> usize {
        self.starts_s
            .partition_point(|&s| s <= t_s)
            .saturating_sub(1)
    }

    /// Makes `t_s` a segment start and returns its index; the new segment inherits the value.
    fn split_at(&mut self, t_s: i64) -> usize {
        let i = self.segment_of(t_s);
        if self.starts_s[i] == t_s {
            return i;
        }
        let soc: Option<Vec<f64>> = (!self.soc_at_start.is_empty()).then(|| {
            self.storage_at(t_s)
                .batteries
                .iter()
                .map(|b| b.soc_kwh)
                .collect()
        });
        self.starts_s.insert(i + 1, t_s);
        self.headroom_kw.insert(i + 1, self.headroom_kw[i]);
        if let Some(soc) = soc {
            self.soc_at_start.insert(i + 1, soc);
        }
        i + 1
    }
}

/// The forecast as a step function with the conventions of `Site::supply`.
#[derive(Clone, Debug)]
pub struct SupplyCurve {
    points: Vec<SupplyPoint>,
    end_s: i64,
}

impl SupplyCurve {
    pub fn new(points: &[SupplyPoint]) -> Self {
        let mut points: Vec<SupplyPoint> = points.to_vec();
        points.sort_by_key(|p| p.start_s);
        let end_s = match points.as_slice() {
            [] => i64::MIN,
            [only] => only.start_s + 3600,
            [.., before, last] => last.start_s + (last.start_s - before.start_s).max(1),
        };
        Self { points, end_s }
    }

    /// Step starts, then the end of the forecast.
    pub fn boundaries_s(&self) -> impl Iterator<Item = i64> + '_ {
        self.points
            .iter()
            .map(|p| p.start_s)
            .chain((!self.points.is_empty()).then_some(self.end_s))
    }

    /// Step starts only: the candidate start times of a deferral.
    pub fn step_starts_s(&self) -> impl Iterator<Item = i64> + '_ {
        self.points.iter().map(|p| p.start_s)
    }

    pub fn kw_at(&self, t_s: i64) -> f64 {
        if t_s >= self.end_s {
            return 0.0;
        }
        let i = self
            .points
            .partition_point(|p| p.start_s <= t_s)
            .saturating_sub(1);
        self.points.get(i).map_or(0.0, |p| p.kw.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(kws: &[f64]) -> Vec<SupplyPoint> {
        kws.iter()
            .enumerate()
            .map(|(i, &kw)| SupplyPoint {
                start_s: i as i64 * 3600,
                kw,
            })
            .collect()
    }

    #[test]
    fn supply_is_a_step_function_that_ends_one_step_after_the_last_point() {
        let curve = SupplyCurve::new(&points(&[10.0, 20.0, 30.0]));
        assert_eq!(curve.kw_at(0), 10.0);
        assert_eq!(curve.kw_at(3599), 10.0);
        assert_eq!(curve.kw_at(3600), 20.0);
        assert_eq!(curve.kw_at(3 * 3600 - 1), 30.0);
        assert_eq!(curve.kw_at(3 * 3600), 0.0);
        assert_eq!(curve.kw_at(-100), 10.0, "the first point covers now");
    }

    #[test]
    fn headroom_subtracts_base_load_and_running_jobs_until_they_end() {
        let tl = HeadroomTimeline::new(0, &points(&[100.0, 100.0]), 10.0, &[(1800, 30.0)]);
        assert_eq!(tl.at(0), 60.0);
        assert_eq!(tl.at(1800), 90.0);
        assert_eq!(
            tl.at(7200),
            -10.0,
            "after the forecast only the base load remains"
        );
    }

    #[test]
    fn fraction_integrates_exactly_across_steps_and_clamps_to_job_power() {
        // 50 kW for an hour, then 0: a 40 kW job over 2 h gets 40 kWh of 80 kWh.
        let tl = HeadroomTimeline::new(0, &points(&[50.0, 0.0]), 0.0, &[]);
        assert!((tl.renewable_fraction(0, 7200, 40.0) - 0.5).abs() < 1e-12);
        // Half an hour in: 30 min at 40 kW covered, 90 min not.
        assert!((tl.renewable_fraction(1800, 7200, 40.0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn add_load_splits_segments_and_adjustments_do_not_mutate() {
        let mut tl = HeadroomTimeline::new(0, &points(&[100.0]), 0.0, &[]);
        tl.add_load(600, 1200, 70.0);
        assert_eq!(tl.at(0), 100.0);
        assert_eq!(tl.at(600), 30.0);
        assert_eq!(tl.at(1200), 100.0);
        let adj = Adjustment {
            until_s: 900,
            kw: -30.0,
        };
        let with = tl.covered_kws(600, 1200, 50.0, 0.0, Some(adj));
        assert_eq!(with, 300.0 * 0.0 + 300.0 * 30.0);
        assert_eq!(tl.at(600), 30.0);
    }

    fn battery(soc_kwh: f64) -> BatteryState {
        BatteryState {
            battery: crate::energy::Battery {
                name: "b".to_owned(),
                capacity_kwh: 100.0,
                max_charge_kw: 50.0,
                max_discharge_kw: 40.0,
                round_trip_efficiency: 1.0,
                min_soc_fraction: 0.0,
            },
            soc_kwh,
        }
    }

    #[test]
    fn batteries_charge_from_surplus_and_cover_a_new_load_after_the_committed_one() {
        // 100 kW for an hour, then 0 for two; 20 kW of base load. The battery (empty now)
        // stores 50 kWh in hour 0 and gives the base load 20 kWh in each of hours 1 and 2.
        let tl = HeadroomTimeline::new(0, &points(&[100.0, 0.0, 0.0]), 20.0, &[])
            .with_storage(&[battery(0.0)]);
        assert_eq!(tl.battery_deliverable_kwh(3600), 50.0);
        assert_eq!(tl.battery_deliverable_kwh(3 * 3600), 10.0);
        // A 30 kW job in hour 1: 40 kW of discharge, 20 of them for the base load.
        let battery_kws = tl.battery_kws(3600, 7200, 30.0);
        assert!((battery_kws - 20.0 * 3600.0).abs() < 1e-6, "{battery_kws}");
        assert!((tl.renewable_fraction(3600, 3600, 30.0) - 20.0 / 30.0).abs() < 1e-12);
        // In hour 0 the job is covered directly: the battery adds nothing.
        assert_eq!(tl.battery_kws(0, 3600, 30.0), 0.0);
        // Now: 80 kW of surplus + 0 (the battery is empty); in hour 1: −20 + 40.
        assert_eq!(tl.at(0), 80.0);
        assert_eq!(tl.at(3600), 20.0);
        // The base load empties it half an hour after the forecast ends.
        assert_eq!(tl.at(4 * 3600), -20.0);
    }

    #[test]
    fn load_added_later_runs_the_battery_down_sooner() {
        let mut tl =
            HeadroomTimeline::new(0, &points(&[0.0, 0.0]), 0.0, &[]).with_storage(&[battery(30.0)]);
        tl.add_load(0, 1800, 40.0);
        // 40 kW for half an hour takes 20 kWh: 10 are left at 1800 s.
        assert!((tl.battery_deliverable_kwh(1800) - 10.0).abs() < 1e-9);
        assert!((tl.battery_kws(1800, 3600, 40.0) - 10.0 * 3600.0).abs() < 1e-6);
    }
}
