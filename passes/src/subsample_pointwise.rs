//! Strided pointwise convolutions (1x1 kernel, stride above 1, no padding, as in
//! ResNet's downsampling shortcuts) split into a subsample and a stride-1 pointwise
//! convolution:
//!
//! `x -> Conv 1x1 /s`  becomes  `x -> MaxPool 1x1 /s -> Conv 1x1`
//!
//! A one-element max pool copies the pixels it picks, bit for bit (NaN included). The
//! convolution then reads consecutive pixels instead of one in `s` (the strided kernel
//! pulls whole cache lines of which it uses `1/s`), and on a small plane it becomes
//! one row of all its pixels, which streams its weights once (measured on ResNet-50's
//! three: 1024 to 2048 channels at 14x14 went 8.8 -> 6.7 ms, 512 to 1024 at 28x28
//! 7.6 -> 6.0, 256 to 512 at 56x56 8.7 -> 8.1, the subsample included). The copy moves
//! one input element per output pixel and channel, against a multiply-add per output
//! channel for the convolution.

use cnnc_ir::op::{Pool, PoolKind};
use cnnc_ir::{Graph, IrError, Op};

use crate::util::Names;
use crate::{Pass, TargetInfo};

pub struct SubsamplePointwise;

impl Pass for SubsamplePointwise {
    fn name(&self) -> &'static str {
        "subsample_pointwise"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Op::Conv(c) = &graph.node(id).op else {
                continue;
            };
            let strided = c.kernel.iter().all(|&k| k == 1)
                && c.pads.iter().all(|&p| p == (0, 0))
                && c.strides.iter().any(|&s| s > 1);
            if !strided {
                continue;
            }
            let mut c = c.clone();
            let spatial = c.kernel.len();
            let subsample = Op::Pool(Pool {
                kind: PoolKind::Max,
                kernel: vec![1; spatial],
                strides: std::mem::replace(&mut c.strides, vec![1; spatial]),
                dilations: vec![1; spatial],
                pads: vec![(0, 0); spatial],
                ceil_mode: false,
            });
            let mut inputs = graph.inputs_of(id);
            let name = names.fresh(&format!("{}/subsample", graph.node(id).name));
            inputs[0] = graph.add(name, subsample, &[inputs[0]])?;
            graph.rewrite(id, Op::Conv(c), &inputs)?;
            changes += 1;
        }
        Ok(changes)
    }
}
