//! Structural and type checks of a whole graph, run after import and after every pass
//! in debug builds and tests.

use std::collections::HashSet;

use crate::op::LayoutRule;
use crate::types::Layout;
use crate::{DType, Graph, IrError, Op, Output, TensorType, Value};

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
            check_layouts(graph, &node.op, &inputs, &node.outputs).map_err(located)?;
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

/// The layouts of a node's inputs and outputs against its op's [`LayoutRule`]. A
/// blocked tensor whose channels do not fill whole blocks has padding lanes, which
/// only a reorder (that zeroes them) may write and only a convolution may read.
fn check_layouts(
    graph: &Graph,
    op: &Op,
    inputs: &[Value],
    outputs: &[Output],
) -> Result<(), IrError> {
    let ins: Vec<&TensorType> = inputs.iter().map(|&v| graph.value_type(v)).collect();
    let blocked = |t: &TensorType| t.layout != Layout::Plain;
    let padded = |t: &TensorType| match t.layout {
        Layout::Blocked { block } => !t.shape[1].is_multiple_of(block as usize),
        Layout::Plain => false,
    };
    let bad = |what: &str| Err(IrError::invalid(format!("layouts: {what}")));
    let out = &outputs[0].ty;
    // Plain products: the input transform converts blocked to plain, the output
    // transform plain to blocked (its bias plain, its residual the output's).
    if let Op::WinogradInput(w) | Op::WinogradOutput(w) = op
        && let Some(block) = w.plain_products
    {
        let conv_side = Layout::Blocked { block };
        let (data, conv) = match op {
            Op::WinogradInput(_) => (out, ins[0]),
            _ => (ins[0], out),
        };
        // The output transform's parameters: the bias, then the residual and the
        // PRelu slope of its epilogue.
        let params_ok = ins.iter().enumerate().skip(1).all(|(i, t)| {
            let residual = i == 2 && w.epilogue.residual;
            t.layout == if residual { conv_side } else { Layout::Plain }
        });
        if data.layout != Layout::Plain || conv.layout != conv_side || padded(conv) || !params_ok {
            return bad(
                "plain products: the transformed tensors plain, the convolution's side blocked in whole blocks",
            );
        }
        return Ok(());
    }
    match op.layout_rule() {
        LayoutRule::Converts => Ok(()),
        LayoutRule::Plain => {
            if ins
                .iter()
                .copied()
                .chain(outputs.iter().map(|o| &o.ty))
                .any(blocked)
            {
                return bad("this op reads and writes plain tensors only");
            }
            Ok(())
        }
        LayoutRule::Follows => {
            if ins.iter().any(|t| t.layout != out.layout) {
                return bad("inputs and output must share one layout");
            }
            if blocked(out) {
                if ins.iter().any(|t| padded(t)) || padded(out) {
                    return bad("blocked operands must fill whole channel blocks");
                }
                let same = ins.iter().all(|t| t.shape == ins[0].shape);
                let ok = match op {
                    Op::Binary(_) => same,
                    Op::Concat { axis } => *axis == 1,
                    _ => true,
                };
                if !ok {
                    return bad("blocked operands must be equal shapes (or a channel concat)");
                }
            }
            Ok(())
        }
        LayoutRule::FollowsFirst => {
            let residual = match op {
                Op::WinogradOutput(w) if w.epilogue.residual => Some(2),
                _ => None,
            };
            let params_plain = ins
                .iter()
                .enumerate()
                .skip(1)
                .all(|(i, t)| Some(i) == residual || !blocked(t));
            if residual.is_some_and(|r| ins[r].layout != out.layout) {
                return bad("the residual must have the output's layout");
            }
            if ins[0].layout != out.layout || !params_plain {
                return bad("the data input and output share a layout, the parameters are plain");
            }
            if padded(ins[0]) {
                return bad("blocked operands must fill whole channel blocks");
            }
            Ok(())
        }
        LayoutRule::Chooses => {
            let (Op::Conv(c) | Op::DepthwiseConv(c)) = op else {
                return Ok(());
            };
            let Layout::Blocked { block } = out.layout else {
                if ins.iter().copied().any(blocked) {
                    return bad("a plain convolution reads plain tensors only");
                }
                return Ok(());
            };
            let block = block as usize;
            let (cin, cout) = (ins[0].shape[1], out.shape[1]);
            let (cg, mg) = (cin / c.groups, cout / c.groups);
            let grouped_ok = match op {
                Op::DepthwiseConv(_) => cin == cout,
                _ => c.groups == 1 || (cg.is_multiple_of(block) && mg.is_multiple_of(block)),
            };
            if ins[0].layout != out.layout || padded(out) || !grouped_ok {
                return bad(
                    "a blocked convolution reads and writes one block size, whole blocks of output channels (and of each group's channels, or one per input channel if depthwise)",
                );
            }
            if ins[1..3.min(ins.len())].iter().any(|t| blocked(t)) {
                return bad("weights and bias stay plain");
            }
            if c.epilogue.residual && ins[3].layout != out.layout {
                return bad("the residual must have the output's layout");
            }
            Ok(())
        }
    }
}
