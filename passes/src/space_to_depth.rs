//! Strided convolutions with kernels wider than their stride (the 7x7 stride-2 stems of
//! ResNet, GoogLeNet and ZFNet, AlexNet's 11x11 stride 4, ZFNet's 5x5 stride-2 conv2 on
//! 96 channels) split into their phases. With `s` the stride, pixel
//! `(s i + a, s j + b)` of channel `c` of the padded input is pixel `(i, j)` of channel
//! `(a s + b) C + c` of its space-to-depth image, and the convolution becomes a stride-1
//! one over `s * s * C` channels with kernels of `ceil(k / s)` taps a side (the taps
//! past `k` zero):
//!
//! `x -> Conv k x k /s`  becomes  `x -> Pad -> SpaceToDepth s -> Conv ceil(k/s) /1`
//!
//! That alone is more multiply-adds (a 7x7/2 on 3 channels: 192 per output instead of
//! 147), but Winograd takes a stride-1 convolution: F(3x3, 4x4) multiplies 4x less than
//! the phases' direct kernel. So the rewrite happens only where the Winograd cost model
//! prices the phases' transform, with the copies that make the phases, below the direct
//! kernel on both the strided convolution and the phases, by the Winograd pass's
//! margin; that pass then rewrites the phases' convolution. Deep layers split too when
//! the model says so: ZFNet's conv2 becomes a 3x3 convolution over 384 phase channels
//! under F(4x4, 3x3), 2.4x fewer multiplies (ZFNet 36.9-37.8 -> 30.7-31.7 ms).

use cnnc_ir::op::{Conv, DepthToSpaceMode, PadMode};
use cnnc_ir::{Graph, IrError, NodeId, Op, Tensor};

use crate::util::{Names, constant};
use crate::winograd::{Candidate, MARGIN, STREAM_BYTES_PER_CYCLE, best_winograd, direct_cycles};
use crate::{Pass, TargetInfo};

pub struct SpaceToDepth;

impl Pass for SpaceToDepth {
    fn name(&self) -> &'static str {
        "space_to_depth"
    }

    fn run(&self, graph: &mut Graph, target: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Some(split) = phases(graph, id, target) else {
                continue;
            };
            let (direct, phased) = (
                direct_cycles(&split.strided, target),
                direct_cycles(&split.phased, target),
            );
            if let Some((cycles, _)) = best_winograd(&split.phased, target)
                && (cycles + copy_cycles(&split)) * MARGIN < direct.min(phased)
            {
                rewrite(graph, id, &split, &mut names)?;
                changes += 1;
            }
        }
        Ok(changes)
    }
}

/// Splits convolution `id` into its phases whatever the cost model would choose; false
/// if it is not a convolution this applies to. For tests.
pub fn split_with(graph: &mut Graph, id: NodeId, target: &TargetInfo) -> Result<bool, IrError> {
    let Some(split) = phases(graph, id, target) else {
        return Ok(false);
    };
    rewrite(graph, id, &split, &mut Names::of(graph))?;
    Ok(true)
}

/// A strided convolution and the stride-1 convolution of its phases.
struct Split {
    strided: Candidate,
    phased: Candidate,
    /// Padding of the input's rows and columns (begin, end) to `s` times the phases'
    /// rows and columns; an end below zero crops rows no output reads.
    pads: [(isize, isize); 2],
    /// Whether the input will be blocked (the output of a convolution or what follows
    /// one, not the graph's RGB input): the pad, on plain tensors, reorders it first.
    blocked_input: bool,
}

/// The copies that make the phases: the pad, the space-to-depth and the reorder into
/// blocks each read and write the input once (Inception v1's: 0.22 ms of 2.6), and a
/// blocked input's reorder to plain before them.
fn copy_cycles(split: &Split) -> f64 {
    let [rows, cols] = split.phased.input;
    let bytes = 4 * split.phased.images * split.phased.shape[0] * rows * cols;
    let copies = if split.blocked_input { 4.0 } else { 3.0 };
    copies * 2.0 * bytes as f64 / STREAM_BYTES_PER_CYCLE
}

/// `id` as a convolution to split: 2-D, square kernel and stride `s` of at least 2, no
/// dilation or groups, constant weights, and whole channel blocks of phases' channels
/// and of outputs.
fn phases(graph: &Graph, id: NodeId, target: &TargetInfo) -> Option<Split> {
    let Op::Conv(c) = &graph.node(id).op else {
        return None;
    };
    let inputs = graph.inputs_of(id);
    let (x, y) = (graph.value_type(inputs[0]), &graph.node(id).outputs[0].ty);
    let (k, s) = (*c.kernel.first()?, *c.strides.first()?);
    let phase_channels = s.checked_mul(s)?.checked_mul(*x.shape.get(1)?)?;
    let fits = x.shape.len() == 4
        && c.kernel == [k, k]
        && c.strides == [s, s]
        && s >= 2
        && c.dilations == [1, 1]
        && c.groups == 1
        && phase_channels.is_multiple_of(target.lanes)
        && y.shape[1].is_multiple_of(target.lanes)
        && constant(graph, inputs[1]).is_some();
    if !fits {
        return None;
    }
    let kk = k.div_ceil(s);
    let (m, ho, wo) = (y.shape[1], y.shape[2], y.shape[3]);
    let block = Some(target.lanes);
    let strided = Candidate {
        attrs: c.clone(),
        shape: [x.shape[1], m, ho, wo],
        input: [x.shape[2], x.shape[3]],
        images: y.shape[0],
        block,
    };
    let phased = Candidate {
        attrs: Conv {
            kernel: vec![kk, kk],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: vec![(0, 0); 2],
            groups: 1,
            epilogue: c.epilogue,
        },
        shape: [phase_channels, m, ho, wo],
        input: [ho + kk - 1, wo + kk - 1],
        images: y.shape[0],
        block,
    };
    let pad = |axis: usize, out: usize| {
        let begin = c.pads[axis].0 as isize;
        let padded = (s * (out + kk - 1)) as isize;
        (begin, padded - begin - x.shape[2 + axis] as isize)
    };
    Some(Split {
        strided,
        phased,
        pads: [pad(0, ho), pad(1, wo)],
        blocked_input: !graph.inputs().contains(&inputs[0].node)
            && x.shape[1].is_multiple_of(target.lanes),
    })
}

fn rewrite(graph: &mut Graph, id: NodeId, split: &Split, names: &mut Names) -> Result<(), IrError> {
    let inputs = graph.inputs_of(id);
    let name = graph.node(id).name.clone();
    let s = split.strided.attrs.strides[0];
    let weights = constant(graph, inputs[1]).expect("a split convolution has constant weights");
    let w = phase_weights(weights, s, split.phased.attrs.kernel[0])?;
    let w = graph.add_const(names.fresh(&format!("{name}/phase_weights")), w);
    let padded = graph.add(
        names.fresh(&format!("{name}/pad")),
        Op::Pad {
            pads: vec![(0, 0), (0, 0), split.pads[0], split.pads[1]],
            mode: PadMode::Constant(0.0),
        },
        &[inputs[0]],
    )?;
    let phases = graph.add(
        names.fresh(&format!("{name}/phases")),
        Op::SpaceToDepth {
            block: s,
            mode: DepthToSpaceMode::Dcr,
        },
        &[padded],
    )?;
    let mut new_inputs = vec![phases, w];
    new_inputs.extend(&inputs[2..]);
    graph.rewrite(id, Op::Conv(split.phased.attrs.clone()), &new_inputs)
}

/// `w'[o, (a s + b) C + c, i, j] = w[o, c, s i + a, s j + b]`, zero past the kernel.
fn phase_weights(w: &Tensor, s: usize, kk: usize) -> Result<Tensor, IrError> {
    let (m, c, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let w = w.view::<f32>()?;
    let cp = s * s * c;
    let mut out = vec![0f32; m * cp * kk * kk];
    for o in 0..m {
        for ch in 0..c {
            for p in 0..k {
                for q in 0..k {
                    let phase = ((p % s) * s + q % s) * c + ch;
                    let at = ((o * cp + phase) * kk + p / s) * kk + q / s;
                    out[at] = w[((o * c + ch) * k + p) * k + q];
                }
            }
        }
    }
    Tensor::from_vec(vec![m, cp, kk, kk], out)
}
