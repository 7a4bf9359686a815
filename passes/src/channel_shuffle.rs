//! Channel shuffle: ShuffleNet's mixing of grouped convolutions' channels is spelled in
//! ONNX as a reshape that splits the channels into `g` groups, a transpose of the two
//! channel axes and a reshape back:
//!
//! `x [N, C, ..] -> Reshape [N, g, C/g, ..] -> Transpose (0 2 1 ..) -> Reshape [N, C, ..]`
//!
//! which becomes one `ChannelShuffle { groups: g }` of `x`. On its own that saves two
//! copies; it also keeps blocked tensors blocked (when `C/g` fills whole blocks),
//! where the transpose would need a reorder to plain and one back around it. The
//! spatial axes may be split or merged differently in the middle (`[N, g, C/g, H*W]`):
//! only their total matters. One or `C` groups leave the channels in place. The
//! transpose and the first reshape stay only if something else reads them.

use cnnc_ir::{Graph, IrError, NodeId, Op, Value};

use crate::util::replace_node;
use crate::{Pass, TargetInfo};

pub struct ChannelShuffle;

impl Pass for ChannelShuffle {
    fn name(&self) -> &'static str {
        "channel_shuffle"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Some((x, groups)) = shuffle_of(graph, id) else {
                continue;
            };
            if groups == 1 || groups == graph.value_type(x).shape[1] {
                replace_node(graph, id, x);
            } else {
                graph.rewrite(id, Op::ChannelShuffle { groups }, &[x])?;
            }
            changes += 1;
        }
        changes += graph.remove_dead();
        Ok(changes)
    }
}

/// If `id` is the final reshape of a channel shuffle: its input `x` and the groups.
fn shuffle_of(graph: &Graph, id: NodeId) -> Option<(Value, usize)> {
    let Op::Reshape { shape } = &graph.node(id).op else {
        return None;
    };
    let t = graph.inputs_of(id)[0];
    let Op::Transpose { perm } = &graph.node(t.node).op else {
        return None;
    };
    let swaps_channel_axes = perm.len() >= 3
        && perm[..3] == [0, 2, 1]
        && perm.iter().enumerate().skip(3).all(|(k, &p)| k == p);
    let split = graph.inputs_of(t.node)[0];
    if !swaps_channel_axes || !matches!(graph.node(split.node).op, Op::Reshape { .. }) {
        return None;
    }
    let x = graph.inputs_of(split.node)[0];
    let (xs, ss) = (&graph.value_type(x).shape, &graph.value_type(split).shape);
    // A reshape keeps the element count, so the spatial axes hold as many as before.
    let splits_channels =
        xs.len() >= 2 && ss[0] == xs[0] && ss[1].checked_mul(ss[2]) == Some(xs[1]);
    (splits_channels && shape == xs).then_some((x, ss[1]))
}
