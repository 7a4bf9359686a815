//! Residual connections fused into their producer: `Add(y, r)` where `y` comes from a
//! convolution or matrix product that nothing else reads becomes that producer with a
//! residual epilogue (ResNet's and MobileNetV2's skip connections). Runs before
//! activation fusion, so `Relu(Add(Conv, r))` ends as one convolution.

use cnnc_ir::op::{Binary, Gemm};
use cnnc_ir::{Graph, IrError, NodeId, Op, Scalar, Tensor, Value};

use crate::util::{replace_node, sole_user};
use crate::{Pass, TargetInfo};

pub struct FuseResidual;

/// The producer's inputs with its optional bias made explicit (epilogue inputs need a
/// fixed position), and its op.
pub fn with_bias(graph: &mut Graph, producer: NodeId) -> Result<(Op, Vec<Value>), IrError> {
    let op = graph.node(producer).op.clone();
    let mut inputs = graph.inputs_of(producer);
    let out = graph.value_type(Value::new(producer, 0)).clone();
    let name = graph.node(producer).name.clone();
    let mut zeros = |shape: Vec<usize>| -> Result<Value, IrError> {
        Ok(graph.add_const(
            format!("{name}/zero_bias"),
            Tensor::splat(shape, Scalar::F32(0.0))?,
        ))
    };
    let op = match op {
        Op::Conv(_) | Op::DepthwiseConv(_) | Op::ConvTranspose(_) if inputs.len() == 2 => {
            inputs.push(zeros(vec![out.shape[1]])?);
            op
        }
        Op::Gemm(g) if inputs.len() == 2 => {
            inputs.push(zeros(vec![out.shape[1]])?);
            Op::Gemm(Gemm { beta: 1.0, ..g })
        }
        op => op,
    };
    Ok((op, inputs))
}

/// Whether `op` can take a residual or activation into its epilogue.
pub fn fusable_producer(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv(_) | Op::DepthwiseConv(_) | Op::ConvTranspose(_) | Op::Gemm(_) | Op::MatMul { .. }
    )
}

impl Pass for FuseResidual {
    fn name(&self) -> &'static str {
        "fuse_residual"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            if !graph.contains(id) || !matches!(graph.node(id).op, Op::Binary(Binary::Add)) {
                continue;
            }
            let inputs = graph.inputs_of(id);
            let out = graph.value_type(Value::new(id, 0)).clone();
            for (y, r) in [(inputs[0], inputs[1]), (inputs[1], inputs[0])] {
                let p = y.node;
                // With the Add the only reader of the producer's one output, the
                // residual cannot depend on the producer (nor be `y` itself).
                let ok = y.port == 0
                    && fusable_producer(&graph.node(p).op)
                    && graph.node(p).op.epilogue().is_some_and(|e| e.is_empty())
                    && sole_user(graph, y) == Some(id)
                    && graph.value_type(y) == &out
                    && graph.value_type(r) == &out;
                if !ok {
                    continue;
                }
                let (mut op, mut ins) = with_bias(graph, p)?;
                set_epilogue(&mut op, |e| e.residual = true);
                ins.push(r);
                graph.rewrite(p, op, &ins)?;
                replace_node(graph, id, y);
                changes += 1;
                break;
            }
        }
        Ok(changes)
    }
}

/// Edits the epilogue of an op that has one.
pub fn set_epilogue(op: &mut Op, f: impl FnOnce(&mut cnnc_ir::op::Epilogue)) {
    match op {
        Op::Conv(c) | Op::DepthwiseConv(c) => f(&mut c.epilogue),
        Op::ConvTranspose(c) => f(&mut c.epilogue),
        Op::Gemm(g) => f(&mut g.epilogue),
        Op::MatMul { epilogue, .. } => f(epilogue),
        Op::ScaleShift(e) => f(e),
        _ => unreachable!("only ops with an epilogue"),
    }
}
