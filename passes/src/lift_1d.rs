//! One-dimensional convolutions, depthwise convolutions and pools become the 2-D ones
//! of height 1 between two reshapes, so that they get the blocked layout and the 2-D
//! kernels (the direct convolution, the blocked depthwise and pool kernels):
//!
//! `x[N, C, L] -> Conv k`  becomes  `x -> Reshape [N, C, 1, L] -> Conv 1 x k ->
//! Reshape [N, M, L']`
//!
//! The kernel gets a height of 1 (weights `[M, C/g, 1, k]`), no padding, stride and
//! dilation 1 along it. An input that is itself a lifted result seen through its
//! reshape is read as the 2-D tensor, so a chain of such ops stays 2-D (and blocked)
//! from end to end; a unary op between two of them is lifted with them. The reshapes
//! left without readers go.
//!
//! Measured on Zen 5 (alternating runs of `cnnc bench`): a 1-D convolution of 64
//! channels, kernel 3, on 8192 samples ran 6.7 ms through im2col and the plain matrix
//! product and 3.5 ms as a blocked 2-D one, reorders included (with SiLU 7.9 against
//! 3.6 ms); an M5-style audio net (four convolutions of 128-512 channels, max pools of
//! 4) 6.2 against 5.1 ms, most of it its first max pool (0.67 against 0.03 ms).

use cnnc_ir::op::{Conv, Pool};
use cnnc_ir::{Graph, IrError, Op, Value};

use crate::util::{Names, view};
use crate::{Pass, TargetInfo};

pub struct Lift1d;

impl Pass for Lift1d {
    fn name(&self) -> &'static str {
        "lift_1d"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let inputs = graph.inputs_of(id);
            let lifted = match &graph.node(id).op {
                Op::Conv(c) if c.kernel.len() == 1 => Op::Conv(lift_conv(c)),
                Op::DepthwiseConv(c) if c.kernel.len() == 1 => Op::DepthwiseConv(lift_conv(c)),
                Op::Pool(p) if p.kernel.len() == 1 => Op::Pool(lift_pool(p)),
                op @ Op::Unary(_) if two_d_source(graph, inputs[0]).is_some() => op.clone(),
                _ => continue,
            };
            let base = graph.node(id).name.clone();
            let name = graph.node(id).outputs[0].name.clone();
            let mut ins = inputs.clone();
            ins[0] = lift(graph, &mut names, inputs[0])?;
            if let Op::Conv(c) | Op::DepthwiseConv(c) = &lifted {
                ins[1] = lift(graph, &mut names, inputs[1])?;
                let own = inputs.len() - c.epilogue.extra_inputs();
                if c.epilogue.residual {
                    ins[own] = lift(graph, &mut names, inputs[own])?;
                }
                // A PRelu slope (one value per channel, checked when it was fused)
                // broadcasts against the taller output as `[M, 1, 1]`.
                if let Some(&slope) = inputs.get(own + c.epilogue.residual as usize) {
                    let shape = vec![graph.value_type(slope).numel(), 1, 1];
                    let name = format!("{}/2d", graph.value_name(slope));
                    ins[own + c.epilogue.residual as usize] =
                        view(graph, &mut names, slope, shape, &name)?;
                }
            }
            let out = Value::new(id, 0);
            let shape = graph.value_type(out).shape.clone();
            let y2 = graph.add(names.fresh(&format!("{name}/2d")), lifted, &ins)?;
            let y = graph.add(
                names.fresh(&format!("{name}/1d")),
                Op::Reshape { shape },
                &[y2],
            )?;
            graph.replace_uses(out, y);
            graph.remove_node(id);
            // The 2-D node takes the 1-D one's names (the profile and the listings
            // show them).
            let node = graph.node_mut(y2.node);
            node.name = base;
            node.outputs[0].name = name;
            changes += 1;
        }
        if changes > 0 {
            graph.remove_dead();
        }
        Ok(changes)
    }
}

fn lift_conv(c: &Conv) -> Conv {
    Conv {
        kernel: vec![1, c.kernel[0]],
        strides: vec![1, c.strides[0]],
        dilations: vec![1, c.dilations[0]],
        pads: vec![(0, 0), c.pads[0]],
        groups: c.groups,
        epilogue: c.epilogue,
    }
}

fn lift_pool(p: &Pool) -> Pool {
    Pool {
        kind: p.kind,
        kernel: vec![1, p.kernel[0]],
        strides: vec![1, p.strides[0]],
        dilations: vec![1, p.dilations[0]],
        pads: vec![(0, 0), p.pads[0]],
        ceil_mode: p.ceil_mode,
    }
}

/// The shape of `v` (`[N, C, L]`) as height 1: `[N, C, 1, L]`.
fn two_d(graph: &Graph, v: Value) -> Vec<usize> {
    let mut shape = graph.value_type(v).shape.clone();
    shape.insert(2, 1);
    shape
}

/// The 2-D tensor `v` is a reshape of, when it is one of `v`'s shape with height 1
/// (a result this pass lifted, or any other such view).
fn two_d_source(graph: &Graph, v: Value) -> Option<Value> {
    let Op::Reshape { .. } = graph.node(v.node).op else {
        return None;
    };
    let src = graph.inputs_of(v.node)[0];
    (graph.value_type(src).shape == two_d(graph, v)).then_some(src)
}

/// `v` with height 1: its 2-D source, else a view.
fn lift(graph: &mut Graph, names: &mut Names, v: Value) -> Result<Value, IrError> {
    if let Some(src) = two_d_source(graph, v) {
        return Ok(src);
    }
    let (shape, name) = (two_d(graph, v), format!("{}/2d", graph.value_name(v)));
    view(graph, names, v, shape, &name)
}
