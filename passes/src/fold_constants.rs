//! Constant folding: every node whose inputs are all constants (or that is a `Shape`,
//! which reads only its input's static type) is evaluated with the reference
//! interpreter and becomes a constant.
//!
//! This is what removes the Shape/Gather/Concat/Unsqueeze arithmetic exporters emit,
//! and it is required before code generation, which computes only on float32 and
//! boolean run-time data.

use cnnc_ir::{Graph, IrError, Op, Tensor, TensorType, interp};

use crate::{Pass, TargetInfo};

pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold_constants"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        fold_constants(graph)
    }
}

/// Folds constant subgraphs in place. Returns how many nodes became constants.
pub fn fold_constants(graph: &mut Graph) -> Result<usize, IrError> {
    let mut folded = 0;
    for id in graph.topo_order()? {
        let node = graph.node(id);
        if matches!(node.op, Op::Input | Op::Const(_)) {
            continue;
        }
        let inputs = graph.inputs_of(id);
        let values: Vec<Tensor> = if let Op::Shape { start, end } = node.op {
            vec![interp::shape_of(graph.value_type(inputs[0]), start, end)?]
        } else {
            let args: Option<Vec<&Tensor>> = inputs
                .iter()
                .map(|&v| crate::util::constant(graph, v))
                .collect();
            let Some(args) = args else { continue };
            let types: Vec<TensorType> = node.outputs.iter().map(|o| o.ty.clone()).collect();
            interp::eval(&node.op, &args, &types).map_err(|e| e.at(&node.name, node.op.name()))?
        };
        graph.replace_with_consts(id, values);
        folded += 1;
    }
    if folded > 0 {
        graph.remove_dead();
    }
    Ok(folded)
}
