//! Transposed convolutions with constant weights split into their multiply-adds, a
//! pointwise convolution, and the scatter of its columns (`Op::Col2Im`):
//!
//! `x -> ConvTranspose(W [C, M/g, K...])`  becomes
//! `x -> Conv 1x1 (W' [M*K, C/g, 1...], g groups) -> Col2Im (bias, epilogue)`
//!
//! Channel `(g * K + k) * M/g + m` of the product holds every input pixel's
//! contribution to output channel `m` of group `g` through kernel tap `k`; Col2Im adds
//! each such plane into the output where the tap moves it. The product runs on the
//! convolution kernels (blocked and tiled like any other); the scatter that is left
//! adds `K` planes per output channel, where the transposed convolution's own kernel
//! multiplied each input channel into them one scalar at a time (a U-Net up-convolution, 2x2 stride 2 from 128 to 64 channels at
//! 28x28, ran at 3% of the FMA peak: 22.1 ms, now 1.4). Ungrouped, it pays from one
//! input channel up (a kernel-3 stride-2 up-sampling from 1, 2, 3 and 4 channels to 16
//! at 64x64: 0.49, 0.90, 1.61, 1.73 ms against 0.26, 0.37, 0.31, 0.40 after). Groups
//! of fewer than four input channels keep the scatter: their product is a plain
//! grouped convolution with nothing to reuse (depthwise, 16 channels at 64x64: 0.96 ms
//! against 1.38 lowered; two channels a group: 1.75 against 1.86).

use cnnc_ir::op::{Conv, Epilogue};
use cnnc_ir::{Graph, IrError, Op, Tensor};

use crate::util::{Names, constant};
use crate::{Pass, TargetInfo};

pub struct ConvTransposeGemm;

/// Input channels per group below which a grouped transposed convolution keeps the
/// scatter (see the module comment).
const MIN_GROUP_CHANNELS: usize = 4;

/// The weights `[C, M/g, K]` of a transposed convolution as those of the pointwise
/// convolution `[g * K * M/g, C/g]` (row `(group, k, m)`, column `c`).
fn columns_weights(w: &[f32], cin: usize, mg: usize, taps: usize, groups: usize) -> Vec<f32> {
    let cg = cin / groups;
    let mut out = Vec::with_capacity(w.len());
    for grp in 0..groups {
        for k in 0..taps {
            for m in 0..mg {
                out.extend((0..cg).map(|c| w[((grp * cg + c) * mg + m) * taps + k]));
            }
        }
    }
    out
}

impl Pass for ConvTransposeGemm {
    fn name(&self) -> &'static str {
        "conv_transpose_gemm"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Op::ConvTranspose(c) = &graph.node(id).op else {
                continue;
            };
            let c = c.clone();
            let inputs = graph.inputs_of(id);
            let Some(w) = constant(graph, inputs[1]) else {
                continue;
            };
            let ws = w.shape().to_vec();
            let (cin, mg) = (ws[0], ws[1]);
            if c.groups > 1 && cin / c.groups < MIN_GROUP_CHANNELS {
                continue;
            }
            let taps: usize = c.kernel.iter().product();
            let spatial = c.kernel.len();
            let mut shape = vec![c.groups * mg * taps, cin / c.groups];
            shape.resize(2 + spatial, 1);
            let weights = Tensor::from_vec(
                shape,
                columns_weights(&w.view::<f32>()?, cin, mg, taps, c.groups),
            )?;
            let name = graph.node(id).outputs[0].name.clone();
            let weights = graph.add_const(names.fresh(&format!("{name}/columns_weights")), weights);
            let product = Conv {
                kernel: vec![1; spatial],
                strides: vec![1; spatial],
                dilations: vec![1; spatial],
                pads: vec![(0, 0); spatial],
                groups: c.groups,
                epilogue: Epilogue::default(),
            };
            let columns = graph.add(
                names.fresh(&format!("{name}/columns")),
                Op::Conv(product),
                &[inputs[0], weights],
            )?;
            let mut rest = vec![columns];
            rest.extend(&inputs[2..]);
            graph.rewrite(id, Op::Col2Im(c), &rest)?;
            changes += 1;
        }
        Ok(changes)
    }
}
