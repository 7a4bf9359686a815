//! The gate of a squeeze-and-excitation block, `x * s` with `s` of shape `[N, C, 1...]`
//! (GlobalAveragePool, two 1x1 convolutions, a sigmoid), becomes a per-channel scale
//! instead of a broadcasting elementwise multiply.

use cnnc_ir::op::Binary;
use cnnc_ir::{Graph, IrError, Op, Value};

use crate::{Pass, TargetInfo};

pub struct SqueezeExcite;

impl Pass for SqueezeExcite {
    fn name(&self) -> &'static str {
        "squeeze_excite"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            if !matches!(graph.node(id).op, Op::Binary(Binary::Mul)) {
                continue;
            }
            let inputs = graph.inputs_of(id);
            let out = graph.value_type(Value::new(id, 0)).shape.clone();
            for (x, s) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
                let (xs, ss) = (&graph.value_type(x).shape, &graph.value_type(s).shape);
                let gate = xs.len() >= 3
                    && *xs == out
                    && ss.len() == xs.len()
                    && ss[..2] == xs[..2]
                    && ss[2..].iter().all(|&d| d == 1)
                    && xs[2..].iter().product::<usize>() > 1;
                if gate {
                    graph.rewrite(id, Op::ChannelScale, &[x, s])?;
                    changes += 1;
                    break;
                }
            }
        }
        Ok(changes)
    }
}
