//! Depthwise convolutions (one group per input channel) become their own op, which
//! code generation gives a kernel of its own.

use cnnc_ir::{Graph, IrError, Op};

use crate::{Pass, TargetInfo};

pub struct Depthwise;

impl Pass for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Op::Conv(c) = &graph.node(id).op else {
                continue;
            };
            let inputs = graph.inputs_of(id);
            let channels = graph.value_type(inputs[0]).shape[1];
            if c.groups > 1 && c.groups == channels {
                let op = Op::DepthwiseConv(c.clone());
                graph.rewrite(id, op, &inputs)?;
                changes += 1;
            }
        }
        Ok(changes)
    }
}
