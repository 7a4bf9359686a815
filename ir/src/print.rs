//! The deterministic text form of a graph, used by `--emit ir`, `inspect` and the
//! snapshot tests. Nodes appear in `Graph::topo_order`; values are shown by their
//! tensor names; constants show their values when small and a content hash otherwise,
//! so a snapshot changes exactly when a constant does.

use std::fmt::Write;

use crate::op::Attrs;
use crate::{Graph, Op, Tensor, Value};

/// Constants with at most this many elements are printed in full.
const INLINE_ELEMENTS: usize = 8;

pub fn print(graph: &Graph) -> String {
    let mut s = String::new();
    let inputs: Vec<String> = graph
        .inputs()
        .iter()
        .map(|&id| {
            let out = &graph.node(id).outputs[0];
            format!("%{}: {}", out.name, out.ty)
        })
        .collect();
    let _ = writeln!(s, "graph({}) {{", inputs.join(", "));
    let order = graph
        .topo_order()
        .unwrap_or_else(|_| graph.node_ids().collect());
    for id in order {
        let node = graph.node(id);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let outs: Vec<String> = node
            .outputs
            .iter()
            .map(|o| format!("%{}", o.name))
            .collect();
        let types: Vec<String> = node.outputs.iter().map(|o| o.ty.to_string()).collect();
        let _ = write!(s, "  {} = {}", outs.join(", "), node.op.name());
        if let Op::Const(t) = &node.op {
            let _ = writeln!(s, " {} {}", types[0], const_value(t));
            continue;
        }
        let args: Vec<String> = graph
            .inputs_of(id)
            .into_iter()
            .map(|v| format!("%{}", value_name(graph, v)))
            .collect();
        let _ = writeln!(
            s,
            "({}){} : {}",
            args.join(", "),
            Attrs(&node.op, node.tile),
            types.join(", ")
        );
    }
    let outs: Vec<String> = graph
        .outputs()
        .iter()
        .map(|o| {
            let v = value_name(graph, o.value);
            if v == o.name {
                format!("%{v}")
            } else {
                format!("%{v} as {}", o.name)
            }
        })
        .collect();
    let _ = writeln!(s, "  return {}", outs.join(", "));
    s.push_str("}\n");
    s
}

fn value_name(graph: &Graph, v: Value) -> &str {
    graph.value_name(v)
}

fn const_value(t: &Tensor) -> String {
    if let Some(v) = t.splat_value() {
        return format!("splat({v})");
    }
    if t.numel() <= INLINE_ELEMENTS {
        let vals: Vec<String> = (0..t.numel())
            .filter_map(|i| t.get(i))
            .map(|v| v.to_string())
            .collect();
        return format!("[{}]", vals.join(", "));
    }
    let bytes = t.dense_bytes().map(|b| &b[..]).unwrap_or(&[]);
    format!("dense(fnv={:016x})", fnv1a(bytes))
}

/// FNV-1a: a stable content hash for snapshot output (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
