//! Pointwise convolutions (1x1 kernel, stride 1, no padding, one group) rewritten as a
//! matrix product over the pixel axis: `[M, C] x [N, C, pixels] -> [N, M, pixels]`,
//! the bias broadcast per row and the epilogue kept, between two reshapes.

use cnnc_ir::{Graph, IrError, Op, Value};

use crate::util::{Names, view};
use crate::{Pass, TargetInfo};

pub struct PointwiseToMatMul;

impl Pass for PointwiseToMatMul {
    fn name(&self) -> &'static str {
        "pointwise_to_matmul"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut names = Names::of(graph);
        let mut changes = 0;
        for id in graph.topo_order()? {
            let Op::Conv(c) = &graph.node(id).op else {
                continue;
            };
            // A blocked convolution has its own pointwise kernel in its layout.
            let plain = graph.node(id).outputs[0].ty.layout == cnnc_ir::Layout::Plain;
            let pointwise = plain
                && c.groups == 1
                && c.is_pointwise()
                && c.epilogue.activation != Some(cnnc_ir::op::Activation::PRelu);
            if !pointwise {
                continue;
            }
            let c = c.clone();
            let inputs = graph.inputs_of(id);
            let own = inputs.len() - c.epilogue.extra_inputs();
            let out = Value::new(id, 0);
            let out_shape = graph.value_type(out).shape.clone();
            let x_shape = graph.value_type(inputs[0]).shape.clone();
            let (n, ch, m) = (x_shape[0], x_shape[1], out_shape[1]);
            let pixels: usize = x_shape[2..].iter().product();
            let base = graph.node(id).name.clone();
            let mut ins = vec![
                view(
                    graph,
                    &mut names,
                    inputs[1],
                    vec![m, ch],
                    &format!("{base}/weight"),
                )?,
                view(
                    graph,
                    &mut names,
                    inputs[0],
                    vec![n, ch, pixels],
                    &format!("{base}/pixels"),
                )?,
            ];
            if own > 2 {
                ins.push(view(
                    graph,
                    &mut names,
                    inputs[2],
                    vec![m, 1],
                    &format!("{base}/bias"),
                )?);
            }
            if c.epilogue.residual {
                ins.push(view(
                    graph,
                    &mut names,
                    inputs[own],
                    vec![n, m, pixels],
                    &format!("{base}/residual"),
                )?);
            }
            let op = Op::MatMul {
                bias: own > 2,
                epilogue: c.epilogue,
            };
            let product = graph.add(names.fresh(&format!("{base}/matmul")), op, &ins)?;
            let name = graph.node(id).outputs[0].name.clone();
            let y = graph.add(
                names.fresh(&format!("{name}/image")),
                Op::Reshape { shape: out_shape },
                &[product],
            )?;
            graph.replace_uses(out, y);
            graph.remove_node(id);
            // The result keeps the convolution's tensor name.
            graph.node_mut(y.node).outputs[0].name = name;
            changes += 1;
        }
        Ok(changes)
    }
}
