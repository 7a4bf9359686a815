//! `cnnc inspect`: what the compiler made of a model. A table of the ops (output shape,
//! layout, tile, multiply-adds, bytes, and with `--time` the median time of each),
//! totals, the memory plan, the pass log and the IR.

use std::collections::HashMap;
use std::fmt::Write;

use cnnc_ir::{Graph, Layout, NodeId, Op, TensorType, Value};

use crate::{Compiler, Error, Model, PassRecord};

/// Multiply-adds of one node.
pub fn macs(graph: &Graph, id: NodeId) -> u64 {
    let node = graph.node(id);
    let inputs = graph.inputs_of(id);
    let ty = |v: Value| graph.value_type(v);
    let out = &node.outputs[0].ty;
    let numel = |t: &TensorType| t.shape.iter().product::<usize>() as u64;
    match &node.op {
        Op::Conv(_) | Op::DepthwiseConv(_) => {
            // Each output element: C/groups * kernel products.
            let w = ty(inputs[1]);
            numel(out) * w.shape[1..].iter().product::<usize>() as u64
        }
        Op::ConvTranspose(_) => {
            // Each input element meets M/groups * kernel weights.
            let w = ty(inputs[1]);
            numel(ty(inputs[0])) * w.shape[1..].iter().product::<usize>() as u64
        }
        Op::Gemm(g) => {
            let a = ty(inputs[0]);
            numel(out) * if g.trans_a { a.shape[0] } else { a.shape[1] } as u64
        }
        Op::MatMul { .. } => {
            let a = ty(inputs[0]);
            numel(out) * *a.shape.last().unwrap_or(&1) as u64
        }
        _ => 0,
    }
}

fn layout(t: &TensorType) -> String {
    match t.layout {
        Layout::Plain => "plain".into(),
        Layout::Blocked { block } => format!("c{block}"),
    }
}

/// Ops that compute: neither inputs nor constants nor reshapes (views of their input
/// that cost nothing at run time).
pub fn compute_ops(graph: &Graph) -> usize {
    graph
        .node_ids()
        .filter(|&id| {
            !matches!(
                graph.node(id).op,
                Op::Input | Op::Const(_) | Op::Reshape { .. }
            )
        })
        .count()
}

/// The report for `model` compiled by `compiler`: the graph as the last pass it runs
/// left it, and the memory plan of its code. With `time_runs`, the model also runs in
/// this process and each op gets its median time over that many runs.
pub fn inspect(
    compiler: &Compiler,
    model: &Model,
    time_runs: Option<usize>,
) -> Result<String, Error> {
    let imported = model.import(compiler.import_options())?;
    let (graph, log) = compiler.optimize(model)?;
    let ready = compiler.codegen_ready(graph.clone())?;
    let times: Option<HashMap<String, f64>> = match time_runs {
        Some(runs) => {
            let compiled = compiler.clone().profile(true).compile_graph(&ready)?;
            let inputs = crate::profile::random_inputs(&compiled)?;
            let layers = crate::profile::per_layer(&compiled, &ready, &inputs, 1, runs)?;
            Some(layers.into_iter().map(|l| (l.name, l.median_ms)).collect())
        }
        None => None,
    };
    let mut s = String::new();
    let order = graph.topo_order()?;
    let _ = write!(
        s,
        "{:<32} {:<18} {:<22} {:<7} {:<18} {:>14} {:>12}",
        "node", "op", "output", "layout", "tile", "MACs", "bytes"
    );
    let _ = writeln!(s, "{}", if times.is_some() { "        ms" } else { "" });
    let (mut total_macs, mut params, mut weight_bytes) = (0u64, 0u64, 0u64);
    for &id in &order {
        let node = graph.node(id);
        if let Op::Const(t) = &node.op {
            params += t.numel() as u64;
            weight_bytes += (t.numel() * t.dtype().size()) as u64;
            continue;
        }
        if matches!(node.op, Op::Input) {
            continue;
        }
        let m = macs(&graph, id);
        total_macs += m;
        let out = &node.outputs[0].ty;
        let _ = write!(
            s,
            "{:<32} {:<18} {:<22} {:<7} {:<18} {:>14} {:>12}",
            truncate(&node.outputs[0].name, 32),
            node.op.name(),
            truncate(&out.to_string(), 22),
            layout(out),
            node.tile.map_or("-".into(), |t| t.to_string()),
            m,
            out.byte_size()
        );
        // Ops that emit no code (views, constants folded later) have no time.
        let _ = match &times {
            Some(t) => match t.get(&node.outputs[0].name) {
                Some(ms) => writeln!(s, " {ms:>9.3}"),
                None => writeln!(s, " {:>9}", "-"),
            },
            None => writeln!(s),
        };
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "ops (reshapes excluded): {} imported, {} after passes",
        compute_ops(&imported),
        compute_ops(&graph)
    );
    let _ = writeln!(s, "multiply-adds: {total_macs}");
    let _ = writeln!(
        s,
        "parameters: {params} ({weight_bytes} bytes of constants)"
    );
    let (info, _, _) = compiler.object_of(&ready, "model")?;
    let ratio = info.workspace_size as f64 / info.peak_live_bytes.max(1) as f64;
    let _ = writeln!(
        s,
        "arena: {} bytes; peak live: {} bytes ({:.3}x); {} kernel launches",
        info.workspace_size, info.peak_live_bytes, ratio, info.launches
    );
    let _ = writeln!(s, "\npasses:");
    for r in &log {
        let _ = writeln!(s, "  {}", pass_line(r));
    }
    let _ = writeln!(s, "\n{}", cnnc_ir::print(&graph));
    Ok(s)
}

pub fn pass_line(r: &PassRecord) -> String {
    format!(
        "{:<22} {:>5} changes  nodes {:>5} -> {:<5} {:>8.2} ms",
        r.pass,
        r.changes,
        r.nodes_before,
        r.nodes_after,
        r.micros as f64 / 1e3
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(n - 1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}
