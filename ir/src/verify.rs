//! Structural and type checks of a whole graph, run after import and after every pass
//! in debug builds and tests.

use std::collections::HashSet;

use crate::types::Layout;
use crate::{DType, Graph, IrError, Op};

/// Checks that the graph is acyclic, that every node's inputs are connected without
/// gaps, that every node's recorded output types are what its op infers from its
/// inputs, that tensor names are unique, and that the graph outputs exist.
pub fn verify(graph: &Graph) -> Result<(), IrError> {
    let order = graph.topo_order()?;
    let mut names = HashSet::new();
    for &id in &order {
        let node = graph.node(id);
        let located = |e: IrError| e.at(&node.name, node.op.name());
        let is_input = graph.inputs().contains(&id);
        if is_input != matches!(node.op, Op::Input) {
            return Err(located(IrError::invalid(
                "input nodes and graph inputs disagree",
            )));
        }
        let inputs = graph.inputs_of(id);
        let ports = graph.raw_in_ports(id);
        if ports != (0..inputs.len()).collect::<Vec<_>>() {
            return Err(located(IrError::invalid(format!(
                "input ports {ports:?} are not 0..n"
            ))));
        }
        for v in &inputs {
            if v.port >= graph.node(v.node).outputs.len() {
                return Err(located(IrError::invalid(format!(
                    "reads missing output {v:?}"
                ))));
            }
        }
        if !is_input {
            let types: Vec<_> = inputs.iter().map(|&v| graph.value_type(v)).collect();
            let inferred = node.op.infer(&types).map_err(located)?;
            let recorded: Vec<_> = node
                .outputs
                .iter()
                .map(|o| (&o.ty.shape, o.ty.dtype))
                .collect();
            let expected: Vec<_> = inferred.iter().map(|t| (&t.shape, t.dtype)).collect();
            if recorded != expected {
                return Err(located(IrError::invalid(format!(
                    "recorded output types {recorded:?} differ from inferred {expected:?}"
                ))));
            }
        }
        if let Some(t) = node.tile {
            let product = matches!(node.op, Op::Conv(_) | Op::Gemm(_) | Op::MatMul { .. });
            if !product || [t.rows, t.cols, t.k_block, t.col_block].contains(&0) {
                return Err(located(IrError::invalid(format!("tile {t}"))));
            }
        }
        for out in &node.outputs {
            out.ty.check_size().map_err(located)?;
            if let Layout::Blocked { block } = out.ty.layout
                && (out.ty.dtype != DType::F32 || out.ty.rank() < 3 || block == 0)
            {
                return Err(located(IrError::invalid(format!(
                    "blocked layout on {}",
                    out.ty
                ))));
            }
            if !names.insert(out.name.as_str()) {
                return Err(located(IrError::invalid(format!(
                    "tensor name '{}' is used twice",
                    out.name
                ))));
            }
        }
    }
    for o in graph.outputs() {
        if !graph.contains(o.value.node) || o.value.port >= graph.node(o.value.node).outputs.len() {
            return Err(IrError::invalid(format!(
                "graph output '{}' has no producer",
                o.name
            )));
        }
    }
    Ok(())
}
