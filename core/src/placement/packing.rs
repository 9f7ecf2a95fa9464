//! GPU bookkeeping and gang packing.
//!
//! Each site keeps its eligible nodes in buckets by free GPU count, so best-fit packing
//! (the nodes with the fewest free GPUs that still fit a replica) walks a handful of
//! buckets instead of every node. Placements made during the cycle move nodes between
//! buckets, so nothing is ever over-committed.
//!
//! The head-of-queue reservation (see `reservation.rs`) takes its nodes out of the
//! buckets: a job that ends before the reserved start may use all of their free GPUs, a
//! longer one only what the head will leave over at its start.

use std::collections::{BTreeMap, BTreeSet};

use super::snapshot::Node;

/// GPUs freed on `node` when a running job (or one placed this cycle) is expected to end.
#[derive(Clone, Copy, Debug)]
pub struct Release {
    pub node: u32,
    pub gpus: u32,
    pub end_s: i64,
}

/// A gang to fit: `replicas` × `gpus_per_replica`, drawing GPUs until `end_s`.
#[derive(Clone, Copy, Debug)]
pub struct GangRequest<'a> {
    pub replicas: u32,
    pub gpus_per_replica: u32,
    pub end_s: i64,
    /// The job's allowed nodes at this site, sorted and unique; `None` = all of them.
    pub allowed: Option<&'a [u32]>,
}

/// A packing: `(node, replicas on it)`, in pick order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub site: usize,
    pub picks: Vec<(u32, u32)>,
}

impl Plan {
    /// One node index per replica, in replica order.
    pub fn node_per_replica(&self) -> Vec<u32> {
        self.picks
            .iter()
            .flat_map(|&(node, k)| std::iter::repeat_n(node, k as usize))
            .collect()
    }
}

/// A future gang start held for the head of the queue.
#[derive(Clone, Debug)]
pub struct NodeReservation {
    pub site: usize,
    pub start_s: i64,
    /// Per reserved node: GPUs the head takes at `start_s`, and GPUs expected free then.
    pub nodes: BTreeMap<u32, ReservedNode>,
}

/// Where and when the head of the queue could start, from `NodePool::shadow_plan`.
#[derive(Clone, Debug)]
pub struct ShadowPlan {
    pub site: usize,
    pub start_s: i64,
    /// Per node: `(node, GPUs the head takes, GPUs expected free at start_s)`.
    pub nodes: Vec<(u32, ReservedNode)>,
}

#[derive(Clone, Copy, Debug)]
pub struct ReservedNode {
    pub reserved_gpus: u32,
    pub free_at_start: u32,
}

/// Free GPUs of every eligible node, bucketed per site.
#[derive(Clone, Debug)]
pub struct NodePool {
    free_now: Vec<u32>,
    allocatable: Vec<u32>,
    /// Site index of each eligible node (schedulable, at a known site).
    node_site: Vec<Option<usize>>,
    /// `buckets[site][free]`: nodes with exactly `free` free GPUs, reserved nodes excluded.
    buckets: Vec<Vec<BTreeSet<u32>>>,
    reservation: Option<NodeReservation>,
    static_capacity: BTreeMap<(usize, u32), u64>,
}

impl NodePool {
    /// `site_of` maps a node's site name to a site index (`None`: unknown site).
    pub fn new(nodes: &[Node], site_count: usize, site_of: impl Fn(&str) -> Option<usize>) -> Self {
        let allocatable: Vec<u32> = nodes.iter().map(|n| n.gpus_allocatable).collect();
        let free_now: Vec<u32> = nodes
            .iter()
            .map(|n| n.gpus_allocatable.saturating_sub(n.gpus_used))
            .collect();
        let node_site: Vec<Option<usize>> = nodes
            .iter()
            .map(|n| match &n.site {
                Some(site) if n.schedulable && n.gpus_allocatable > 0 => site_of(site),
                _ => None,
            })
            .collect();
        let mut buckets: Vec<Vec<BTreeSet<u32>>> = vec![Vec::new(); site_count];
        for (i, site) in node_site.iter().enumerate() {
            if let Some(site) = *site {
                let bucket = &mut buckets[site];
                let free = free_now[i] as usize;
                if bucket.len() <= allocatable[i] as usize {
                    bucket.resize(allocatable[i] as usize + 1, BTreeSet::new());
                }
                bucket[free].insert(i as u32);
            }
        }
        Self {
            free_now,
            allocatable,
            node_site,
            buckets,
            reservation: None,
            static_capacity: BTreeMap::new(),
        }
    }

    pub fn site_of_node(&self, node: u32) -> Option<usize> {
        self.node_site.get(node as usize).copied().flatten()
    }

    pub fn free_now(&self, node: u32) -> u32 {
        self.free_now[node as usize]
    }

    /// Replicas of `gpus_per_replica` the site could hold if all its allowed nodes were idle.
    pub fn static_capacity(
        &mut self,
        site: usize,
        gpus_per_replica: u32,
        allowed: Option<&[u32]>,
    ) -> u64 {
        let per_node = |n: &u32| u64::from(self.allocatable[*n as usize] / gpus_per_replica);
        match allowed {
            Some(list) => list.iter().map(per_node).sum(),
            None => {
                if let Some(&c) = self.static_capacity.get(&(site, gpus_per_replica)) {
                    return c;
                }
                let c = self.buckets[site]
                    .iter()
                    .flatten()
                    .map(per_node)
                    .sum::<u64>()
                    + self
                        .reservation
                        .iter()
                        .filter(|r| r.site == site)
                        .flat_map(|r| r.nodes.keys())
                        .map(per_node)
                        .sum::<u64>();
                self.static_capacity.insert((site, gpus_per_replica), c);
                c
            }
        }
    }

    /// GPUs on `node` a gang ending at `end_s` may use now. With `honor_reservation`, a
    /// gang that outlives the reserved start may not dip into the head's share.
    fn capacity(&self, node: u32, end_s: i64, honor_reservation: bool) -> u32 {
        let free = self.free_now[node as usize];
        match &self.reservation {
            Some(r) if honor_reservation && end_s > r.start_s => {
                r.nodes.get(&node).map_or(free, |rn| {
                    free.min(rn.free_at_start.saturating_sub(rn.reserved_gpus))
                })
            }
            _ => free,
        }
    }

    /// Best-fit packing of the whole gang at `site` now, or, if it does not fit, how many
    /// of its replicas would.
    pub fn plan(
        &self,
        site: usize,
        req: &GangRequest<'_>,
        honor_reservation: bool,
    ) -> Result<Plan, u32> {
        let g = req.gpus_per_replica;
        if g == 0 || req.replicas == 0 {
            return Err(0);
        }
        let mut need = req.replicas;
        let mut picks = Vec::new();
        let mut take = |node: u32, cap: u32| {
            let k = (cap / g).min(need);
            if k > 0 {
                picks.push((node, k));
                need -= k;
            }
            need == 0
        };
        let done = match req.allowed {
            Some(list) => {
                let mut fits: Vec<(u32, u32)> = list
                    .iter()
                    .map(|&n| (self.capacity(n, req.end_s, honor_reservation), n))
                    .filter(|(cap, _)| *cap >= g)
                    .collect();
                fits.sort_unstable();
                fits.into_iter().any(|(cap, n)| take(n, cap))
            }
            None => {
                let mut reserved: Vec<(u32, u32)> = match &self.reservation {
                    Some(r) if r.site == site => r
                        .nodes
                        .keys()
                        .map(|&n| (self.capacity(n, req.end_s, honor_reservation), n))
                        .filter(|(cap, _)| *cap >= g)
                        .collect(),
                    _ => Vec::new(),
                };
                reserved.sort_unstable();
                let buckets = &self.buckets[site];
                // Bucket sizes tell how many replicas fit without visiting a node, so a
                // gang that cannot fit (common on a full cluster) costs O(max GPUs per node).
                let fitting: u64 = (g as usize..buckets.len())
                    .map(|free| buckets[free].len() as u64 * (free as u64 / u64::from(g)))
                    .chain(reserved.iter().map(|&(cap, _)| u64::from(cap / g)))
                    .sum();
                if fitting < u64::from(req.replicas) {
                    return Err(fitting as u32);
                }
                let mut reserved = reserved.into_iter().peekable();
                (g as usize..buckets.len()).any(|free| {
                    while let Some(&(cap, n)) = reserved.peek() {
                        if cap as usize != free {
                            break;
                        }
                        reserved.next();
                        if take(n, cap) {
                            return true;
                        }
                    }
                    buckets[free].iter().any(|&n| take(n, free as u32))
                })
            }
        };
        if done {
            Ok(Plan { site, picks })
        } else {
            Err(req.replicas - need)
        }
    }

    /// Takes the GPUs of `plan` (made with the reservation honoured) for a gang ending at `end_s`.
    pub fn commit(&mut self, plan: &Plan, gpus_per_replica: u32, end_s: i64) {
        for &(node, k) in &plan.picks {
            let used = k * gpus_per_replica;
            let i = node as usize;
            let old = self.free_now[i];
            debug_assert!(used <= old, "over-commit on node {node}");
            self.free_now[i] = old.saturating_sub(used);
            let reserved = self
                .reservation
                .as_mut()
                .filter(|r| r.site == plan.site)
                .and_then(|r| {
                    let start_s = r.start_s;
                    r.nodes.get_mut(&node).map(|rn| (rn, start_s))
                });
            match reserved {
                Some((rn, start_s)) => {
                    if end_s > start_s {
                        rn.free_at_start = rn.free_at_start.saturating_sub(used);
                    }
                }
                None => {
                    let bucket = &mut self.buckets[plan.site];
                    bucket[old as usize].remove(&node);
                    bucket[self.free_now[i] as usize].insert(node);
                }
            }
        }
    }

    /// The earliest time ≥ `earliest_s` at which the gang fits at `site` if `releases`
    /// happen as expected, and the best-fit nodes it would take then.
    pub fn shadow_plan(
        &self,
        site: usize,
        req: &GangRequest<'_>,
        releases: &[Release],
        earliest_s: i64,
    ) -> Option<ShadowPlan> {
        let g = req.gpus_per_replica;
        if g == 0 || req.replicas == 0 {
            return None;
        }
        let candidates: Vec<u32> = match req.allowed {
            Some(list) => list.to_vec(),
            None => self.buckets[site].iter().flatten().copied().collect(),
        };
        let is_candidate = |n: u32| match req.allowed {
            Some(list) => list.binary_search(&n).is_ok(),
            None => self.site_of_node(n) == Some(site),
        };
        let mut free_at: BTreeMap<u32, u32> = BTreeMap::new();
        let mut fit: u64 = candidates
            .iter()
            .map(|&n| u64::from(self.free_now(n) / g))
            .sum();
        let mut events: Vec<Release> = releases
            .iter()
            .copied()
            .filter(|r| is_candidate(r.node))
            .collect();
        events.sort_by_key(|r| r.end_s);

        let mut start_s = earliest_s;
        let mut next = 0;
        loop {
            while next < events.len() && events[next].end_s <= start_s {
                let r = events[next];
                let old = free_at
                    .get(&r.node)
                    .copied()
                    .unwrap_or(self.free_now(r.node));
                let new = (old + r.gpus).min(self.allocatable[r.node as usize]);
                fit = fit + u64::from(new / g) - u64::from(old / g);
                free_at.insert(r.node, new);
                next += 1;
            }
            if fit >= u64::from(req.replicas) {
                break;
            }
            start_s = events.get(next)?.end_s;
        }

        let mut fits: Vec<(u32, u32)> = candidates
            .iter()
            .map(|&n| (free_at.get(&n).copied().unwrap_or(self.free_now(n)), n))
            .filter(|(free, _)| *free >= g)
            .collect();
        fits.sort_unstable();
        let mut need = req.replicas;
        let mut nodes = Vec::new();
        for (free, n) in fits {
            let k = (free / g).min(need);
            nodes.push((
                n,
                ReservedNode {
                    reserved_gpus: k * g,
                    free_at_start: free,
                },
            ));
            need -= k;
            if need == 0 {
                break;
            }
        }
        Some(ShadowPlan {
            site,
            start_s,
            nodes,
        })
    }

    /// What-if: `gpus` more free on `node` (a running job's, were it stopped). Used on a
    /// copy of the pool to find which suspensions would let a gang fit.
    pub fn free_up(&mut self, node: u32, gpus: u32) {
        let i = node as usize;
        let Some(site) = self.node_site.get(i).copied().flatten() else {
            return;
        };
        let old = self.free_now[i];
        let new = (old + gpus).min(self.allocatable[i]);
        self.free_now[i] = new;
        let reserved = self
            .reservation
            .as_ref()
            .is_some_and(|r| r.site == site && r.nodes.contains_key(&node));
        if !reserved {
            let bucket = &mut self.buckets[site];
            bucket[old as usize].remove(&node);
            bucket[new as usize].insert(node);
        }
    }

    /// Holds the nodes of `shadow` for the head of the queue.
    pub fn reserve(&mut self, shadow: &ShadowPlan) {
        for &(node, _) in &shadow.nodes {
            self.buckets[shadow.site][self.free_now[node as usize] as usize].remove(&node);
        }
        self.reservation = Some(NodeReservation {
            site: shadow.site,
            start_s: shadow.start_s,
            nodes: shadow.nodes.iter().copied().collect(),
        });
    }
}
