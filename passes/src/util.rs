//! Small queries and edits the passes share.

use std::collections::HashSet;

use cnnc_ir::{Graph, IrError, NodeId, Op, Tensor, Value};

/// The constant behind `v`, if it is one.
pub fn constant(graph: &Graph, v: Value) -> Option<&Tensor> {
    match &graph.node(v.node).op {
        Op::Const(t) => Some(t),
        _ => None,
    }
}

/// The one node that reads `v` (once), if `v` has exactly one use and is not a graph
/// output: the condition for rewriting its producer in place.
pub fn sole_user(graph: &Graph, v: Value) -> Option<NodeId> {
    if graph.is_output(v) {
        return None;
    }
    match graph.users(v).as_slice() {
        [(id, _)] => Some(*id),
        _ => None,
    }
}

/// The nodes that read `v` (a node reading it twice is listed twice), if `v` is not a
/// graph output.
pub fn users(graph: &Graph, v: Value) -> Option<Vec<NodeId>> {
    if graph.is_output(v) {
        return None;
    }
    Some(graph.users(v).into_iter().map(|(id, _)| id).collect())
}

/// Tensor names in use, so that new nodes get unique ones.
pub struct Names(HashSet<String>);

impl Names {
    pub fn of(graph: &Graph) -> Self {
        Names(
            graph
                .node_ids()
                .flat_map(|id| graph.node(id).outputs.iter().map(|o| o.name.clone()))
                .collect(),
        )
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free.
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// `v` viewed with `shape`, named `base` (or a free variant of it): a constant
/// reshaped, else a Reshape node.
pub fn view(
    graph: &mut Graph,
    names: &mut Names,
    v: Value,
    shape: Vec<usize>,
    base: &str,
) -> Result<Value, IrError> {
    if let Some(t) = constant(graph, v) {
        let t = t.reshape(shape)?;
        return Ok(graph.add_const(names.fresh(base), t));
    }
    graph.add(names.fresh(base), Op::Reshape { shape }, &[v])
}

/// Makes the users of `old` read `new` and drops `old`'s node.
pub fn replace_node(graph: &mut Graph, old: NodeId, new: Value) {
    graph.replace_uses(Value::new(old, 0), new);
    graph.remove_node(old);
}

/// A constant that varies along the channel axis (1) of `out` only (numpy-aligned),
/// as one value per channel.
pub fn per_channel(graph: &Graph, v: Value, out: &[usize]) -> Option<Vec<f64>> {
    let t = constant(graph, v)?;
    let c = *out.get(1)?;
    let shape = t.shape();
    if shape.len() > out.len() {
        return None;
    }
    let off = out.len() - shape.len();
    let only_channels = shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || (i + off == 1 && d == c));
    if !only_channels {
        return None;
    }
    let vals = t.view::<f32>().ok()?;
    Some(
        (0..c)
            .map(|i| vals[if vals.len() == 1 { 0 } else { i }] as f64)
            .collect(),
    )
}
