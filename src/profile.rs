//! Per-layer time: runs a model compiled with [`crate::Compiler::profile`] and times
//! each step (the kernels of one node) between the hooks the profiled entry point
//! calls, for `cnnc bench --per-layer`.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

use cnnc_ir::Graph;

use crate::{CompiledModel, Error, Tensor};

/// Deterministic inputs for timing runs: values in [-1, 1) from a fixed xorshift.
pub fn random_inputs(compiled: &CompiledModel) -> Result<Vec<Tensor>, Error> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    compiled
        .inputs()
        .iter()
        .map(|t| {
            let data: Vec<f32> = (0..t.numel())
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                })
                .collect();
            Ok(Tensor::from_vec(t.shape.clone(), data)?)
        })
        .collect()
}

/// One step of a run and its time.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerTime {
    pub name: String,
    pub op: String,
    /// Median over the timed runs.
    pub median_ms: f64,
    pub macs: u64,
}

impl LayerTime {
    /// Floating-point operations per second (two per multiply-add), in billions.
    pub fn gflops(&self) -> f64 {
        if self.median_ms > 0.0 {
            2.0 * self.macs as f64 / (self.median_ms * 1e6)
        } else {
            0.0
        }
    }
}

/// Runs `compiled` (from `graph`, compiled with profiling) `warmup` times untimed and
/// `iters` times timed, and returns each step's median time, in step order.
pub fn per_layer(
    compiled: &CompiledModel,
    graph: &Graph,
    inputs: &[Tensor],
    warmup: usize,
    iters: usize,
) -> Result<Vec<LayerTime>, Error> {
    let steps = &compiled.info().steps;
    for _ in 0..warmup {
        compiled.run(inputs)?;
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(iters); steps.len()];
    for _ in 0..iters.max(1) {
        // A step's time in this run: the steps of a banded convolution run by turns,
        // once per band.
        let mut run = vec![0.0; steps.len()];
        let mut last = Instant::now();
        compiled.run_profiled(inputs, &mut |k| {
            let now = Instant::now();
            run[k] += (now - last).as_secs_f64() * 1e3;
            last = now;
        })?;
        for (t, r) in times.iter_mut().zip(run) {
            t.push(r);
        }
    }
    let macs: HashMap<&str, u64> = graph
        .node_ids()
        .map(|id| {
            (
                graph
                    .node(id)
                    .outputs
                    .first()
                    .map_or("", |o| o.name.as_str()),
                crate::inspect::macs(graph, id),
            )
        })
        .collect();
    Ok(steps
        .iter()
        .zip(times)
        .map(|(s, mut t)| {
            t.sort_by(f64::total_cmp);
            LayerTime {
                name: s.name.clone(),
                op: s.op.clone(),
                median_ms: t.get(t.len() / 2).copied().unwrap_or(0.0),
                macs: macs.get(s.name.as_str()).copied().unwrap_or(0),
            }
        })
        .collect())
}

/// The per-layer table (in run order, with each layer's share of the total), then the
/// time per op kind, largest first. With `peak` (GFLOP/s of all the threads the layers
/// ran on) each layer's GFLOP/s also as a percentage of it.
pub fn table(layers: &[LayerTime], peak: Option<f64>) -> String {
    let peak = peak.filter(|&p| p > 0.0);
    let total: f64 = layers.iter().map(|l| l.median_ms).sum();
    let share = |ms: f64| {
        if total > 0.0 { 100.0 * ms / total } else { 0.0 }
    };
    let of_peak =
        |gflops: f64| peak.map_or(String::new(), |p| format!(" {:>7.1}", 100.0 * gflops / p));
    let mut s = String::new();
    writeln!(
        s,
        "{:<32} {:<16} {:>10} {:>6} {:>14} {:>8}{}",
        "node",
        "op",
        "ms",
        "%",
        "MACs",
        "GFLOP/s",
        if peak.is_some() { "  % peak" } else { "" }
    )
    .unwrap();
    for l in layers {
        writeln!(
            s,
            "{:<32} {:<16} {:>10.3} {:>6.1} {:>14} {:>8.1}{}",
            l.name,
            l.op,
            l.median_ms,
            share(l.median_ms),
            l.macs,
            l.gflops(),
            of_peak(l.gflops())
        )
        .unwrap();
    }
    let mut by_op: Vec<(String, f64, u64)> = Vec::new();
    for l in layers {
        match by_op.iter_mut().find(|(op, _, _)| *op == l.op) {
            Some(e) => {
                e.1 += l.median_ms;
                e.2 += l.macs;
            }
            None => by_op.push((l.op.clone(), l.median_ms, l.macs)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    writeln!(s, "\nper op (sum of medians {total:.3} ms):").unwrap();
    for (op, median_ms, macs) in by_op {
        let kind = LayerTime {
            name: String::new(),
            op,
            median_ms,
            macs,
        };
        writeln!(
            s,
            "  {:<16} {median_ms:>10.3} ms {:>6.1}% {:>8.1} GFLOP/s",
            kind.op,
            share(median_ms),
            kind.gflops()
        )
        .unwrap();
    }
    s
}
