//! Where each value's bytes live, decided before any kernel is emitted.
//!
//! A value either owns its bytes or lives inside another value's bytes at an offset:
//! - a view (Reshape, Identity) is its input's bytes and emits no code;
//! - an elementwise op writes its result over an input of the same type that dies
//!   there, so a chain like scale-shift → relu needs one buffer, not two;
//! - a Concat whose dims before the axis are all 1 is a run of contiguous pieces, one
//!   per input: an input computed by a kernel is written by its producer straight into
//!   its piece, and the Concat copies only the others (graph inputs, constants, graph
//!   outputs, inputs given twice, values already living elsewhere).
//!   Inception and DenseNet concatenate without copying; DenseNet's growing chain of
//!   concatenations becomes one buffer per dense block, each a prefix of the next.
//!
//! Bytes may be overwritten in place only when every value that shares them is read
//! once, by the next op of the chain, is no graph output and was computed by a kernel,
//! and no concatenation holding them has a piece other ops still read: no reader can
//! see them change, and the caller's inputs and the constants are never written.

use std::collections::{HashMap, HashSet};

use cnnc_ir::{Graph, NodeId, Op, Value};

pub struct Placement {
    /// The value whose bytes a value lives in, at a byte offset.
    parent: HashMap<Value, (Value, usize)>,
    views: HashSet<NodeId>,
    /// Concatenations holding a piece that other ops read too.
    pinned: HashSet<Value>,
    /// Concat inputs `(node, input index)` written in place by their producers.
    in_concat: HashSet<(NodeId, usize)>,
}

/// Ops whose output element `i` depends only on element `i` of a same-shaped input, and
/// whose kernels read that element before writing it.
fn elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::ScaleShift(_)
            | Op::ChannelScale
    )
}

impl Placement {
    /// Decides placement for the nodes of `graph` in `order` (a topological order).
    pub fn of(graph: &Graph, order: &[NodeId]) -> Self {
        let mut uses: HashMap<Value, usize> = HashMap::new();
        for &id in order {
            for v in graph.inputs_of(id) {
                *uses.entry(v).or_default() += 1;
            }
        }
        let mut p = Placement {
            parent: HashMap::new(),
            views: HashSet::new(),
            pinned: HashSet::new(),
            in_concat: HashSet::new(),
        };
        // Computed by a kernel and no graph output: its bytes are ours to place.
        let computed = |v: Value| {
            !graph.is_output(v) && !matches!(graph.node(v.node).op, Op::Input | Op::Const(_))
        };
        // ... and read once, so they may be overwritten after that read.
        let exclusive = |v: Value| computed(v) && uses.get(&v) == Some(&1);
        for &id in order {
            let node = graph.node(id);
            let inputs = graph.inputs_of(id);
            let out = Value::new(id, 0);
            match &node.op {
                Op::Reshape { .. } | Op::Identity if !graph.is_output(out) => {
                    p.parent.insert(out, (inputs[0], 0));
                    p.views.insert(id);
                }
                op if elementwise(op) && !graph.is_output(out) => {
                    let ty = graph.value_type(out);
                    if let Some(&x) = inputs.iter().find(|&&x| {
                        graph.value_type(x) == ty
                            && p.chain_is(x, &|v| exclusive(v) && !p.pinned.contains(&v))
                    }) {
                        p.parent.insert(out, (x, 0));
                    }
                }
                Op::Concat { axis } => {
                    let shape = &graph.value_type(out).shape;
                    if shape[..*axis].iter().any(|&d| d != 1) {
                        continue;
                    }
                    let mut at = 0;
                    for (k, &x) in inputs.iter().enumerate() {
                        let bytes = graph.value_type(x).byte_size();
                        let (root, offset) = p.find(x);
                        let once = inputs.iter().filter(|&&y| y == x).count() == 1;
                        if once
                            && offset == 0
                            && graph.value_type(root).byte_size() == bytes
                            && p.chain_is(x, &computed)
                        {
                            // A piece others still read must keep its bytes: the
                            // concatenation may then not be overwritten in place.
                            if !p.chain_is(x, &exclusive) || p.pinned.contains(&root) {
                                p.pinned.insert(out);
                            }
                            p.parent.insert(root, (out, at));
                            p.in_concat.insert((id, k));
                        }
                        at += bytes;
                    }
                }
                _ => {}
            }
        }
        p
    }

    /// Whether `v` and every value whose bytes it lives in satisfy `test`.
    fn chain_is(&self, mut v: Value, test: &impl Fn(Value) -> bool) -> bool {
        loop {
            if !test(v) {
                return false;
            }
            match self.parent.get(&v) {
                Some(&(p, _)) => v = p,
                None => return true,
            }
        }
    }

    /// The value that owns `v`'s bytes, and `v`'s byte offset in them.
    pub fn find(&self, mut v: Value) -> (Value, usize) {
        let mut offset = 0;
        while let Some(&(p, o)) = self.parent.get(&v) {
            v = p;
            offset += o;
        }
        (v, offset)
    }

    /// Whether node `id` is a view that emits no code.
    pub fn is_view(&self, id: NodeId) -> bool {
        self.views.contains(&id)
    }

    /// Whether input `k` of Concat node `id` is already in place.
    pub fn in_concat(&self, id: NodeId, k: usize) -> bool {
        self.in_concat.contains(&(id, k))
    }
}
