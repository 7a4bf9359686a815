//! Constant weights of matrix products laid out for the kernel at compile time: a Gemm
//! whose constant B is transposed (`[N, K]`, as Linear layers export it) gets B
//! transposed once, here, to the row-major `[K, N]` the GEMM tile reads.

use cnnc_ir::op::Gemm;
use cnnc_ir::{Graph, IrError, Op, Tensor};

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
            let (n, k) = (b.shape()[0], b.shape()[1]);
            // A splat (an untrained or randomized model) stays one value.
            let packed = match b.splat_value() {
                Some(s) => Tensor::splat(vec![k, n], s)?,
                None => {
                    let v = b.view::<f32>()?;
                    let mut t = vec![0f32; n * k];
                    for j in 0..n {
                        for p in 0..k {
                            t[p * n + j] = v[j * k + p];
                        }
                    }
                    Tensor::from_vec(vec![k, n], t)?
                }
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
