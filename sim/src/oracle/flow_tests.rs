//! The network simplex on a network solved by hand, and on generated networks against the
//! interior-point solver with the same program written as a linear program.

use good_lp::solvers::clarabel::clarabel;
use good_lp::{Expression, ProblemVariables, Solution, SolverModel, variable};

use super::{Network, UNBOUNDED};
use crate::workload::SplitMix64;

struct Arc {
    from: usize,
    to: usize,
    cap: i64,
    cost: i64,
}

fn network(nodes: usize, arcs: &[Arc]) -> Network {
    let mut net = Network::new(nodes);
    for a in arcs {
        net.add_arc(a.from, a.to, a.cap, a.cost);
    }
    net
}

/// Every arc within its bounds and every node balanced; returns the flow's cost.
fn checked_cost(nodes: usize, arcs: &[Arc], flow: &[i64]) -> i64 {
    assert_eq!(flow.len(), arcs.len());
    let mut balance = vec![0; nodes];
    for (a, f) in arcs.iter().zip(flow) {
        assert!(
            *f >= 0 && *f <= a.cap,
            "flow {f} on an arc of capacity {}",
            a.cap
        );
        balance[a.from] -= f;
        balance[a.to] += f;
    }
    assert!(balance.iter().all(|b| *b == 0), "unbalanced: {balance:?}");
    arcs.iter().zip(flow).map(|(a, f)| a.cost * f).sum()
}

/// The same circulation as a linear program, by the interior-point solver.
fn lp_cost(nodes: usize, arcs: &[Arc]) -> f64 {
    let mut vars = ProblemVariables::new();
    let cap = |a: &Arc| {
        if a.cap >= UNBOUNDED {
            1e7
        } else {
            a.cap as f64
        }
    };
    let xs: Vec<_> = arcs
        .iter()
        .map(|a| vars.add(variable().min(0.0).max(cap(a))))
        .collect();
    let mut objective = Expression::default();
    let mut balance = vec![Expression::default(); nodes];
    for (a, x) in arcs.iter().zip(&xs) {
        objective.add_mul(a.cost as f64, *x);
        balance[a.from].add_mul(-1.0, *x);
        balance[a.to].add_mul(1.0, *x);
    }
    let mut model = vars.minimise(objective.clone()).using(clarabel);
    model.settings().verbose(false);
    for b in balance {
        model.add_constraint(b.eq(0.0));
    }
    let solution = model.solve().unwrap();
    arcs.iter()
        .zip(&xs)
        .map(|(a, x)| a.cost as f64 * solution.value(*x))
        .sum()
}

#[test]
fn solves_a_network_worked_by_hand() {
    // 0 feeds 1 (up to 4) and 2 (up to 2); 1 drains to 3 at -5 (up to 3) and passes on to 2
    // (up to 1); 2 drains at -2 (up to 3); 3 returns to 0. Best: 3 units through 1 at -5,
    // and 2 fills its 3 from 0 and 1 at -2: -21.
    let arcs = [
        Arc {
            from: 0,
            to: 1,
            cap: 4,
            cost: 0,
        },
        Arc {
            from: 0,
            to: 2,
            cap: 2,
            cost: 0,
        },
        Arc {
            from: 1,
            to: 3,
            cap: 3,
            cost: -5,
        },
        Arc {
            from: 1,
            to: 2,
            cap: 1,
            cost: 0,
        },
        Arc {
            from: 2,
            to: 3,
            cap: 3,
            cost: -2,
        },
        Arc {
            from: 3,
            to: 0,
            cap: UNBOUNDED,
            cost: 0,
        },
    ];
    let flow = network(4, &arcs).min_cost_circulation();
    assert_eq!(checked_cost(4, &arcs, &flow), -21);
    assert_eq!(flow[..5], [4, 2, 3, 1, 3]);
}

#[test]
fn nothing_to_gain_is_no_flow() {
    let arcs = [
        Arc {
            from: 0,
            to: 1,
            cap: 5,
            cost: 1,
        },
        Arc {
            from: 1,
            to: 0,
            cap: UNBOUNDED,
            cost: 0,
        },
    ];
    assert_eq!(network(2, &arcs).min_cost_circulation(), [0, 0]);
    assert!(Network::new(3).min_cost_circulation().is_empty());
}

#[test]
fn matches_the_linear_program_on_generated_networks() {
    for seed in 0..40 {
        let mut rng = SplitMix64::new(seed, 3, 11);
        let mut below = |n: u64| (rng.next_u64() % n) as i64;
        let nodes = 4 + below(16) as usize;
        let mut arcs = Vec::new();
        for _ in 0..nodes * (2 + below(5) as usize) {
            let from = below(nodes as i64 as u64) as usize;
            let to = below(nodes as u64) as usize;
            if from == to {
                continue;
            }
            // Few distinct costs and many ties: degenerate pivots. An unbounded arc costs
            // at least 0, so no cycle of negative cost is unbounded.
            let unbounded = below(8) == 0;
            let cost = match unbounded {
                true => below(3),
                false => below(7) - 4,
            };
            let cap = if unbounded { UNBOUNDED } else { below(12) };
            arcs.push(Arc {
                from,
                to,
                cap,
                cost,
            });
        }
        let flow = network(nodes, &arcs).min_cost_circulation();
        let cost = checked_cost(nodes, &arcs, &flow);
        let lp = lp_cost(nodes, &arcs);
        assert!(
            (cost as f64 - lp).abs() <= 1e-4 * lp.abs().max(1.0),
            "seed {seed}: network simplex {cost}, linear program {lp}"
        );
    }
}
