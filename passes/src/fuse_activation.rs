//! Activations fused into the convolution or matrix product that feeds them: Relu, Clip
//! (ReLU6 and general), LeakyRelu, Elu, Selu, HardSigmoid, HardSwish, Sigmoid, Tanh,
//! Softplus, Mish and Gelu as themselves; PRelu with a constant per-channel slope (into
//! convolutions); and `x * sigmoid(x)` as SiLU (Swish). A ScaleShift (a batch
//! normalization with nothing to fold into, as DenseNet's before each ReLU) takes ReLU,
//! Clip and LeakyRelu.

use cnnc_ir::op::{Activation, Binary, Unary};
use cnnc_ir::{Graph, IrError, NodeId, Op, Value};

use crate::fuse_residual::{fusable_producer, set_epilogue, with_bias};
use crate::util::{per_channel, replace_node, sole_user, users};
use crate::{Pass, TargetInfo};

pub struct FuseActivation;

fn fusable_unary(u: Unary) -> bool {
    matches!(
        u,
        Unary::Relu
            | Unary::Clip { .. }
            | Unary::LeakyRelu { .. }
            | Unary::Elu { .. }
            | Unary::Selu { .. }
            | Unary::HardSigmoid { .. }
            | Unary::HardSwish
            | Unary::Sigmoid
            | Unary::Tanh
            | Unary::Softplus
            | Unary::Mish
            | Unary::Gelu { .. }
    )
}

/// An activation a ScaleShift applies to the vector it stores: a few operations on
/// at most two constants. Costlier ones stay ops of their own, whose kernel runs them
/// four vectors side by side (see `cnnc-codegen`'s `activation.rs`).
fn cheap(a: Activation) -> bool {
    matches!(
        a,
        Activation::Unary(Unary::Relu | Unary::Clip { .. } | Unary::LeakyRelu { .. })
    )
}

/// An activation node: what it applies, the value it applies to, and the nodes it
/// consists of (two for SiLU: the Sigmoid and the Mul).
struct Found {
    activation: Activation,
    x: Value,
    slope: Option<Value>,
    nodes: Vec<NodeId>,
}

fn recognize(graph: &Graph, id: NodeId) -> Option<Found> {
    let inputs = graph.inputs_of(id);
    match &graph.node(id).op {
        Op::Unary(u) if fusable_unary(*u) => Some(Found {
            activation: Activation::Unary(*u),
            x: inputs[0],
            slope: None,
            nodes: vec![id],
        }),
        Op::Binary(Binary::PRelu) => {
            let (x, slope) = (inputs[0], inputs[1]);
            // The kernel reads one slope per output channel.
            let shape = &graph.value_type(x).shape;
            let channels = *shape.get(1)?;
            let per_channel = per_channel(graph, slope, shape).is_some()
                && graph.value_type(slope).numel() == channels;
            per_channel.then_some(Found {
                activation: Activation::PRelu,
                x,
                slope: Some(slope),
                nodes: vec![id],
            })
        }
        Op::Binary(Binary::Mul) => {
            // x * sigmoid(x), in either order, the sigmoid read only here.
            for (x, s) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
                let sig = s.node;
                if matches!(graph.node(sig).op, Op::Unary(Unary::Sigmoid))
                    && graph.inputs_of(sig)[0] == x
                    && sole_user(graph, s) == Some(id)
                {
                    return Some(Found {
                        activation: Activation::Silu,
                        x,
                        slope: None,
                        nodes: vec![sig, id],
                    });
                }
            }
            None
        }
        _ => None,
    }
}

impl Pass for FuseActivation {
    fn name(&self) -> &'static str {
        "fuse_activation"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            if !graph.contains(id) {
                continue;
            }
            let Some(found) = recognize(graph, id) else {
                continue;
            };
            let p = found.x.node;
            let op = &graph.node(p).op;
            // The producer's result must be read by the activation alone.
            let mut readers = users(graph, found.x).unwrap_or_default();
            readers.sort();
            readers.dedup();
            let mut expected = found.nodes.clone();
            expected.sort();
            let producer =
                fusable_producer(op) || matches!(op, Op::ScaleShift(_)) && cheap(found.activation);
            let ok = found.x.port == 0
                && producer
                && op.epilogue().is_some_and(|e| e.activation.is_none())
                && readers == expected
                && (found.activation != Activation::PRelu
                    || matches!(op, Op::Conv(_) | Op::DepthwiseConv(_)));
            if !ok {
                continue;
            }
            let (mut op, mut ins) = with_bias(graph, p)?;
            set_epilogue(&mut op, |e| e.activation = Some(found.activation));
            ins.extend(found.slope);
            graph.rewrite(p, op, &ins)?;
            let last = *found.nodes.last().expect("one node at least");
            replace_node(graph, last, found.x);
            for &n in &found.nodes[..found.nodes.len() - 1] {
                graph.remove_node(n);
            }
            changes += 1;
        }
        Ok(changes)
    }
}
