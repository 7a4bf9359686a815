//! Layout assignment: 2-D and 3-D convolutions (plain and depthwise) write
//! blocked-channel tensors (NC[D]HWc with one vector of channels per block), and the
//! ops between them that work on stored elements as they are (elementwise ops on equal
//! shapes, channel concatenation) or on a channel block's vectors as on channels
//! (pools, per-channel scale and shift, squeeze-and-excitation gates) keep the blocked
//! layout. Reorders are inserted only where a consumer needs plain NCHW: the graph
//! outputs and every op without a blocked kernel.
//!
//! Blocked tensors are 4-D or 5-D; LRN and the Winograd transforms keep a blocked
//! layout on 4-D ones only. A 2-D or 3-D max pool is blocked even when its input is
//! not (its blocked kernel is several times faster than the plain one, which is worth
//! a reorder).
//!
//! A convolution is blocked when its output channels (and, grouped, each group's input
//! and output channels) fill whole blocks, a depthwise one only when its input already
//! is blocked or its output goes only to blocked convolutions (it moves as many bytes
//! as it computes, so a reorder of its own would cost as much as the kernel saves; a
//! reorder its output needs anyway can as well come before it: ShuffleNet's channel
//! shuffles). A convolution's input may not fill whole blocks (the graph's
//! RGB input): the reorder into it zeroes the padding lanes, and the packed weights of
//! those lanes are zero. Every other blocked tensor fills whole blocks, so elementwise ops never
//! compute on padding.

use std::collections::HashMap;

use cnnc_ir::op::{Conv, LayoutRule, PoolKind};
use cnnc_ir::{Graph, IrError, Layout, NodeId, Op, TensorType, Value};

use crate::util::Names;
use crate::{Pass, TargetInfo};

pub struct AssignLayout;

/// Whether a convolution (with constant weights) has a blocked kernel for these types:
/// whole blocks of output channels, of each group's channels when grouped, and one
/// output channel per input channel when depthwise.
fn blockable(op: &Op, x: &TensorType, y: &TensorType, block: usize) -> bool {
    let (cin, cout) = (x.shape[1], y.shape[1]);
    let whole = |n: usize| n.is_multiple_of(block);
    let fits = match op {
        Op::Conv(c) => c.groups == 1 || (whole(cin / c.groups) && whole(cout / c.groups)),
        Op::DepthwiseConv(_) => cin == cout,
        _ => false,
    };
    blocked_rank(x.rank()) && whole(cout) && fits
}

/// Ranks a blocked tensor may have: NCHWc and NCDHWc.
fn blocked_rank(rank: usize) -> bool {
    (4..=5).contains(&rank)
}

/// Whether the convolution `id` has a blocked kernel: constant weights and the
/// types [`blockable`] asks for.
fn has_blocked_kernel(graph: &Graph, id: NodeId, block: usize) -> bool {
    let op = &graph.node(id).op;
    let inputs = graph.inputs_of(id);
    op.layout_rule() == LayoutRule::Chooses
        && crate::util::constant(graph, inputs[1]).is_some()
        && blockable(
            op,
            graph.value_type(inputs[0]),
            &graph.node(id).outputs[0].ty,
            block,
        )
}

/// Whether `v` goes only to (non-depthwise) convolutions that will be blocked, as
/// their input or residual: left plain, it would be reordered there anyway.
fn feeds_blocked_convs(graph: &Graph, v: Value, block: usize) -> bool {
    let users = graph.users(v);
    !users.is_empty()
        && !graph.is_output(v)
        && users.iter().all(|&(u, port)| match &graph.node(u).op {
            Op::Conv(c) => {
                conv_data_ports(c).contains(&port) && has_blocked_kernel(graph, u, block)
            }
            _ => false,
        })
}

/// The data inputs that must share a blocked convolution's layout: x and the residual.
fn conv_data_ports(c: &Conv) -> Vec<usize> {
    let mut ports = vec![0];
    if c.epilogue.residual {
        ports.push(3);
    }
    ports
}

/// A col2im is blocked when its columns are (the product before it was blocked) and
/// each group's output channels fill whole blocks: a tap's block of columns is then a
/// block of output channels. Its residual follows; else everything is plain.
fn col2im_layout(
    graph: &mut Graph,
    reorders: &mut Reorders,
    id: NodeId,
    c: &cnnc_ir::op::ConvTranspose,
    block: usize,
) -> Result<usize, IrError> {
    let inputs = graph.inputs_of(id);
    let x = graph.value_type(inputs[0]);
    let m = graph.node(id).outputs[0].ty.shape[1];
    let blocked = Layout::Blocked {
        block: block as u32,
    };
    let fits =
        x.layout == blocked && blocked_rank(x.rank()) && (m / c.groups).is_multiple_of(block);
    if !fits {
        reorders.all_plain(graph, id)?;
        return Ok(0);
    }
    if c.epilogue.residual {
        let port = inputs.len() - c.epilogue.extra_inputs();
        let r = reorders.of(graph, inputs[port], blocked)?;
        set_input(graph, id, port, r)?;
    }
    graph.node_mut(id).outputs[0].ty.layout = blocked;
    Ok(1)
}

struct Reorders {
    names: Names,
    /// One reorder per value and layout, shared by every consumer.
    made: HashMap<(Value, Layout), Value>,
    count: usize,
}

impl Reorders {
    /// `v` in layout `to`: itself, or a (shared) reorder of it.
    fn of(&mut self, graph: &mut Graph, v: Value, to: Layout) -> Result<Value, IrError> {
        if graph.value_type(v).layout == to {
            return Ok(v);
        }
        if let Some(&r) = self.made.get(&(v, to)) {
            return Ok(r);
        }
        let suffix = match to {
            Layout::Plain => "plain".to_string(),
            Layout::Blocked { block } => format!("c{block}"),
        };
        let name = self
            .names
            .fresh(&format!("{}/{suffix}", graph.value_name(v)));
        let r = graph.add(name, Op::Reorder { to }, &[v])?;
        self.made.insert((v, to), r);
        self.count += 1;
        Ok(r)
    }
}

impl Reorders {
    /// Points every input of node `id` at a plain version of it.
    fn all_plain(&mut self, graph: &mut Graph, id: NodeId) -> Result<(), IrError> {
        for (port, v) in graph.inputs_of(id).into_iter().enumerate() {
            let p = self.of(graph, v, Layout::Plain)?;
            set_input(graph, id, port, p)?;
        }
        Ok(())
    }
}

/// Points input `port` of node `id` at `v`.
fn set_input(graph: &mut Graph, id: NodeId, port: usize, v: Value) -> Result<(), IrError> {
    let mut inputs = graph.inputs_of(id);
    if inputs[port] == v {
        return Ok(());
    }
    inputs[port] = v;
    let op = graph.node(id).op.clone();
    let tile = graph.node(id).tile;
    let layouts: Vec<Layout> = graph.node(id).outputs.iter().map(|o| o.ty.layout).collect();
    graph.rewrite(id, op, &inputs)?;
    let node = graph.node_mut(id);
    node.tile = tile;
    for (o, l) in node.outputs.iter_mut().zip(layouts) {
        o.ty.layout = l;
    }
    Ok(())
}

impl Pass for AssignLayout {
    fn name(&self) -> &'static str {
        "assign_layout"
    }

    fn run(&self, graph: &mut Graph, target: &TargetInfo) -> Result<usize, IrError> {
        let block = target.lanes;
        let blocked = Layout::Blocked {
            block: block as u32,
        };
        let mut reorders = Reorders {
            names: Names::of(graph),
            made: HashMap::new(),
            count: 0,
        };
        let mut changes = 0;
        for id in graph.topo_order()? {
            let inputs = graph.inputs_of(id);
            let op = graph.node(id).op.clone();
            match op.layout_rule() {
                LayoutRule::Converts => {}
                LayoutRule::Chooses => {
                    if let Op::Col2Im(c) = &op {
                        changes += col2im_layout(graph, &mut reorders, id, c, block)?;
                        continue;
                    }
                    let (Op::Conv(c) | Op::DepthwiseConv(c)) = &op else {
                        continue;
                    };
                    // A depthwise convolution moves as many bytes as it computes: not
                    // worth a reorder of its input, unless its output would need one.
                    let worth = matches!(op, Op::Conv(_))
                        || graph.value_type(inputs[0]).layout == blocked
                        || feeds_blocked_convs(graph, Value::new(id, 0), block);
                    if !worth || !has_blocked_kernel(graph, id, block) {
                        reorders.all_plain(graph, id)?;
                        continue;
                    }
                    for port in conv_data_ports(c) {
                        let v = reorders.of(graph, inputs[port], blocked)?;
                        set_input(graph, id, port, v)?;
                    }
                    graph.node_mut(id).outputs[0].ty.layout = blocked;
                    changes += 1;
                }
                LayoutRule::Follows => {
                    let types: Vec<&TensorType> =
                        inputs.iter().map(|&v| graph.value_type(v)).collect();
                    let four_d_only = matches!(op, Op::Lrn(_) | Op::WinogradInput(_));
                    let whole = |t: &TensorType| {
                        t.dtype == cnnc_ir::DType::F32
                            && (t.rank() == 4 || (!four_d_only && blocked_rank(t.rank())))
                            && t.shape[1].is_multiple_of(block)
                    };
                    let shapes_fit = match &op {
                        Op::Binary(_) => types.iter().all(|t| t.shape == types[0].shape),
                        Op::Concat { axis } => *axis == 1,
                        Op::ChannelShuffle { groups } => {
                            (types[0].shape[1] / groups).is_multiple_of(block)
                        }
                        _ => true,
                    };
                    // A 2-D or 3-D max pool's blocked kernel is several times faster
                    // than its plain one: worth reordering a plain input.
                    let max_pool = matches!(&op, Op::Pool(p) if p.kind == PoolKind::Max && p.kernel.len() >= 2)
                        && whole(types[0]);
                    let keep = shapes_fit
                        && types
                            .iter()
                            .all(|t| (t.layout == blocked || max_pool) && whole(t))
                        && whole(&graph.node(id).outputs[0].ty);
                    if keep {
                        if max_pool {
                            let v = reorders.of(graph, inputs[0], blocked)?;
                            set_input(graph, id, 0, v)?;
                        }
                        graph.node_mut(id).outputs[0].ty.layout = blocked;
                        changes += 1;
                    } else {
                        reorders.all_plain(graph, id)?;
                    }
                }
                LayoutRule::FollowsFirst => {
                    let x = graph.value_type(inputs[0]);
                    let four_d_only = matches!(op, Op::WinogradOutput(_));
                    let rank_fits = x.rank() == 4 || (!four_d_only && blocked_rank(x.rank()));
                    if x.layout == blocked && rank_fits && x.shape[1].is_multiple_of(block) {
                        graph.node_mut(id).outputs[0].ty.layout = blocked;
                        changes += 1;
                    } else {
                        let p = reorders.of(graph, inputs[0], Layout::Plain)?;
                        set_input(graph, id, 0, p)?;
                    }
                }
                LayoutRule::Plain => {
                    reorders.all_plain(graph, id)?;
                }
            }
        }
        // Graph outputs are plain NCHW: the reorder takes over the output's name.
        let outputs: Vec<Value> = graph.outputs().iter().map(|o| o.value).collect();
        for v in outputs {
            if graph.value_type(v).layout == Layout::Plain {
                continue;
            }
            let r = reorders.of(graph, v, Layout::Plain)?;
            graph.replace_output(v, r);
        }
        Ok(changes + reorders.count)
    }
}
