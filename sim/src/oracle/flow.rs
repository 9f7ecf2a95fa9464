//! A primal network simplex for minimum-cost circulations with integer capacities and
//! costs: the oracle's program is a flow network (see [`super::program`]), and a network
//! simplex keeps only the arcs and a spanning tree in memory, where an interior-point
//! solver factorises a system of every variable and bound.
//!
//! The algorithm is the textbook one (Ahuja, Magnanti and Orlin, *Network Flows*, ch. 11),
//! as LEMON implements it: an artificial root joined to every node by an uncapacitated arc
//! gives the first spanning tree, block search prices the arcs, and the leaving-arc rule
//! keeps the tree strongly feasible, so degenerate pivots cannot cycle. The tree is held
//! as parent pointers with child lists and depths; a pivot re-hangs one subtree and shifts
//! its potentials. Integer data makes every step exact: no tolerances.

/// An uncapacitated arc's capacity. Flows stay far below it (the oracle's total is under
/// 10¹³ GPU-seconds), so residuals computed from it never overflow.
pub(super) const UNBOUNDED: i64 = i64::MAX / 4;

const NONE: u32 = u32::MAX;

/// A directed graph with a capacity and a cost per unit of flow on each arc.
#[derive(Default)]
pub(super) struct Network {
    nodes: usize,
    source: Vec<u32>,
    target: Vec<u32>,
    cap: Vec<i64>,
    cost: Vec<i64>,
}

impl Network {
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            ..Self::default()
        }
    }

    /// Adds an arc `from → to` carrying up to `cap` units at `cost` each; returns its index.
    pub fn add_arc(&mut self, from: usize, to: usize, cap: i64, cost: i64) -> usize {
        debug_assert!(from < self.nodes && to < self.nodes && from != to && cap >= 0);
        self.source.push(from as u32);
        self.target.push(to as u32);
        self.cap.push(cap);
        self.cost.push(cost);
        self.source.len() - 1
    }

    pub fn arcs(&self) -> usize {
        self.source.len()
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The flow of least total cost that is conserved at every node (a circulation), per
    /// arc in the order the arcs were added. Zero flow is always feasible, so there is
    /// always an optimum; a cycle of negative cost and unbounded capacity is the one way
    /// to have none, and the caller's networks have none (every cycle passes a bounded arc).
    pub fn min_cost_circulation(self) -> Vec<i64> {
        let arcs = self.arcs();
        let mut simplex = Simplex::new(self);
        simplex.run();
        simplex.flow.truncate(arcs);
        simplex.flow
    }
}

/// The simplex's state: the network with one artificial arc per node (`node → root`), the
/// flows, each arc's state and the spanning tree.
struct Simplex {
    net: Network,
    flow: Vec<i64>,
    /// Per arc: `1` at its lower bound, `-1` at its upper bound, `0` in the tree.
    state: Vec<i8>,
    parent: Vec<u32>,
    /// The tree arc joining a node to its parent.
    pred: Vec<u32>,
    depth: Vec<u32>,
    first_child: Vec<u32>,
    next_sibling: Vec<u32>,
    prev_sibling: Vec<u32>,
    potential: Vec<i64>,
    /// Real arcs (the artificial ones never enter: no flow can leave the root).
    search_arcs: usize,
    block: usize,
    next_arc: usize,
    /// Scratch for a pivot's path and subtree walks.
    path: Vec<u32>,
    stack: Vec<u32>,
}

const STATE_LOWER: i8 = 1;
const STATE_UPPER: i8 = -1;
const STATE_TREE: i8 = 0;

impl Simplex {
    fn new(mut net: Network) -> Self {
        let n = net.nodes;
        let real = net.arcs();
        let root = n as u32;
        net.nodes = n + 1;
        for u in 0..n {
            net.add_arc(u, n, UNBOUNDED, 0);
        }
        let mut state = vec![STATE_LOWER; real + n];
        state[real..].fill(STATE_TREE);
        let mut next_sibling = vec![NONE; n + 1];
        let mut prev_sibling = vec![NONE; n + 1];
        for u in 0..n {
            next_sibling[u] = if u + 1 < n { u as u32 + 1 } else { NONE };
            prev_sibling[u] = if u > 0 { u as u32 - 1 } else { NONE };
        }
        let mut first_child = vec![NONE; n + 1];
        if n > 0 {
            first_child[n] = 0;
        }
        let mut depth = vec![1; n + 1];
        depth[n] = 0;
        Self {
            flow: vec![0; real + n],
            state,
            parent: (0..=n).map(|u| if u < n { root } else { NONE }).collect(),
            pred: (0..=n)
                .map(|u| if u < n { (real + u) as u32 } else { NONE })
                .collect(),
            depth,
            first_child,
            next_sibling,
            prev_sibling,
            potential: vec![0; n + 1],
            search_arcs: real,
            block: ((real as f64).sqrt() as usize).max(10),
            next_arc: 0,
            path: Vec::new(),
            stack: Vec::new(),
            net,
        }
    }

    fn reduced_cost(&self, e: usize) -> i64 {
        let (u, v) = (self.net.source[e] as usize, self.net.target[e] as usize);
        self.net.cost[e] + self.potential[u] - self.potential[v]
    }

    /// `1` where a node's tree arc points up to its parent, `-1` where it points down.
    fn direction(&self, u: u32) -> i64 {
        match self.net.source[self.pred[u as usize] as usize] == u {
            true => 1,
            false => -1,
        }
    }

    fn run(&mut self) {
        while let Some(entering) = self.entering_arc() {
            self.pivot(entering);
        }
    }

    /// Block search: the arc of most negative signed reduced cost in the first block (from
    /// where the last search stopped) that has one.
    fn entering_arc(&mut self) -> Option<usize> {
        let arcs = self.search_arcs;
        if arcs == 0 {
            return None;
        }
        let (mut best, mut best_cost) = (None, 0);
        let mut left = self.block;
        let mut e = self.next_arc;
        for _ in 0..arcs {
            let c = i64::from(self.state[e]) * self.reduced_cost(e);
            if c < best_cost {
                best_cost = c;
                best = Some(e);
            }
            e = if e + 1 == arcs { 0 } else { e + 1 };
            left -= 1;
            if left == 0 {
                if best.is_some() {
                    break;
                }
                left = self.block;
            }
        }
        self.next_arc = e;
        best
    }

    fn join(&self, mut a: u32, mut b: u32) -> u32 {
        while self.depth[a as usize] > self.depth[b as usize] {
            a = self.parent[a as usize];
        }
        while self.depth[b as usize] > self.depth[a as usize] {
            b = self.parent[b as usize];
        }
        while a != b {
            a = self.parent[a as usize];
            b = self.parent[b as usize];
        }
        a
    }

    /// The residual of `u`'s tree arc for flow moving down (parent to `u`) or up.
    fn residual(&self, u: u32, down: bool) -> i64 {
        let e = self.pred[u as usize] as usize;
        let with_arc = (self.direction(u) == -1) == down;
        match with_arc {
            true => self.net.cap[e].saturating_sub(self.flow[e]),
            false => self.flow[e],
        }
    }

    fn pivot(&mut self, entering: usize) {
        let (src, dst) = (self.net.source[entering], self.net.target[entering]);
        // Flow crosses the entering arc from `first` to `second`, climbs from `second` to
        // the join and descends to `first`.
        let (first, second) = match self.state[entering] {
            STATE_LOWER => (src, dst),
            _ => (dst, src),
        };
        let join = self.join(src, dst);
        // The leaving arc: the first bottleneck in the cycle's direction from the join
        // (ties on the `first` side go to the arc nearest the join, on the `second` side
        // to the one farthest from it), which keeps the tree strongly feasible.
        let mut delta = self.net.cap[entering];
        let mut leaving: Option<(u32, bool)> = None;
        let mut u = first;
        while u != join {
            let d = self.residual(u, true);
            if d < delta {
                delta = d;
                leaving = Some((u, true));
            }
            u = self.parent[u as usize];
        }
        let mut u = second;
        while u != join {
            let d = self.residual(u, false);
            if d <= delta {
                delta = d;
                leaving = Some((u, false));
            }
            u = self.parent[u as usize];
        }
        assert!(
            delta < UNBOUNDED / 2,
            "a cycle of negative cost and unbounded capacity"
        );
        if delta > 0 {
            let val = i64::from(self.state[entering]) * delta;
            self.flow[entering] += val;
            let mut u = src;
            while u != join {
                let e = self.pred[u as usize] as usize;
                self.flow[e] -= self.direction(u) * val;
                u = self.parent[u as usize];
            }
            let mut u = dst;
            while u != join {
                let e = self.pred[u as usize] as usize;
                self.flow[e] += self.direction(u) * val;
                u = self.parent[u as usize];
            }
        }
        let Some((out, on_first)) = leaving else {
            // The entering arc is its own bottleneck: it moves to its other bound.
            self.state[entering] = -self.state[entering];
            return;
        };
        let (u_in, v_in) = match on_first {
            true => (first, second),
            false => (second, first),
        };
        let out_arc = self.pred[out as usize] as usize;
        self.state[entering] = STATE_TREE;
        self.state[out_arc] = match self.flow[out_arc] {
            0 => STATE_LOWER,
            _ => STATE_UPPER,
        };
        self.rehang(u_in, v_in, out, entering as u32);
    }

    /// Cuts `out` from its parent and hangs its subtree from `v_in` by the entering arc at
    /// `u_in` (inside that subtree), reversing the tree path from `u_in` up to `out`; then
    /// updates the subtree's depths and potentials.
    fn rehang(&mut self, u_in: u32, v_in: u32, out: u32, entering: u32) {
        self.path.clear();
        let mut w = u_in;
        loop {
            self.path.push(w);
            if w == out {
                break;
            }
            w = self.parent[w as usize];
        }
        for i in 0..self.path.len() {
            self.detach(self.path[i]);
        }
        let mut carried = entering;
        let mut new_parent = v_in;
        for i in 0..self.path.len() {
            let w = self.path[i] as usize;
            let old_pred = self.pred[w];
            self.pred[w] = carried;
            self.parent[w] = new_parent;
            self.attach(w as u32, new_parent);
            carried = old_pred;
            new_parent = w as u32;
        }
        let cost = self.net.cost[entering as usize];
        let sigma = self.potential[v_in as usize]
            - self.potential[u_in as usize]
            - self.direction(u_in) * cost;
        self.stack.clear();
        self.stack.push(u_in);
        while let Some(w) = self.stack.pop() {
            let w = w as usize;
            self.depth[w] = self.depth[self.parent[w] as usize] + 1;
            self.potential[w] += sigma;
            let mut c = self.first_child[w];
            while c != NONE {
                self.stack.push(c);
                c = self.next_sibling[c as usize];
            }
        }
    }

    fn detach(&mut self, w: u32) {
        let w = w as usize;
        let (prev, next) = (self.prev_sibling[w], self.next_sibling[w]);
        match prev {
            NONE => self.first_child[self.parent[w] as usize] = next,
            p => self.next_sibling[p as usize] = next,
        }
        if next != NONE {
            self.prev_sibling[next as usize] = prev;
        }
    }

    fn attach(&mut self, w: u32, parent: u32) {
        let head = self.first_child[parent as usize];
        self.next_sibling[w as usize] = head;
        self.prev_sibling[w as usize] = NONE;
        if head != NONE {
            self.prev_sibling[head as usize] = w;
        }
        self.first_child[parent as usize] = w;
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
