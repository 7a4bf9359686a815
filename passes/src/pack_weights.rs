//! Constant weights of matrix products laid out for the kernel at compile time: a Gemm
//! whose constant B is transposed (`[N, K]`, as Linear layers export it) gets B
//! transposed once, here, to the row-major `[K, N]` the GEMM tile reads, unless A has
//! one row (a fully connected layer at batch 1), which the matrix-vector kernel
//! computes from B's `[N, K]` rows as they are.

use cnnc_ir::op::Gemm;
use cnnc_ir::{Graph, IrError, Op, Tensor, transpose_2d};

use crate::util::{Names, constant};
use crate::{Pass, TargetInfo};

pub struct PackWeights;

impl Pass for PackWeights {
    fn name(&self) -> &'static str {
        "pack_weights"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Op::Gemm(g) = &graph.node(id).op else {
                continue;
            };
            let mut inputs = graph.inputs_of(id);
            let Some(b) = constant(graph, inputs[1]).filter(|_| g.trans_b) else {
                continue;
            };
            // One row of A (batch 1): the matrix-vector kernel reads B's `[N, K]` rows.
            if graph.node(id).outputs[0].ty.shape[0] == 1 {
                continue;
            }
            let (n, k) = (b.shape()[0], b.shape()[1]);
            // A splat (an untrained or randomized model) stays one value.
            let packed = match b.splat_value() {
                Some(s) => Tensor::splat(vec![k, n], s)?,
                None => Tensor::from_vec(vec![k, n], transpose_2d(&b.view::<f32>()?, n, k))?,
            };
            let op = Op::Gemm(Gemm {
                trans_b: false,
                ..g.clone()
            });
            let base = format!("{}/packed_weight", graph.node(id).name);
            inputs[1] = graph.add_const(names.fresh(&base), packed);
            graph.rewrite(id, op, &inputs)?;
            changes += 1;
        }
        graph.remove_dead();
        Ok(changes)
    }
}
