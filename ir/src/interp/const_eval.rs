//! Values known at compile time: constants and everything computed from them alone.

use std::collections::HashMap;

use crate::{Graph, IrError, Op, Tensor, TensorType, Value};

/// Evaluates, on demand and with memoization, the values a graph fixes at compile
/// time. A value is known when its node is a constant, a `Shape` (which reads only its
/// input's static type), or any op whose inputs are all known.
#[derive(Default)]
pub struct ConstEval {
    known: HashMap<Value, Option<Tensor>>,
}

impl ConstEval {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `v` if the graph fixes it at compile time, `None` if it depends on a
    /// graph input.
    pub fn value(&mut self, graph: &Graph, v: Value) -> Result<Option<Tensor>, IrError> {
        // Post-order walk with an explicit stack: graphs can be deep.
        let mut stack = vec![(v.node, false)];
        while let Some((id, inputs_done)) = stack.pop() {
            if self.known.contains_key(&Value::new(id, 0)) {
                continue;
            }
            let node = graph.node(id);
            let inputs = graph.inputs_of(id);
            let direct = match &node.op {
                Op::Input => Some(vec![None]),
                Op::Const(t) => Some(vec![Some(t.clone())]),
                Op::Shape { start, end } => {
                    let ty = graph.value_type(inputs[0]);
                    Some(vec![Some(super::shape_of(ty, *start, *end)?)])
                }
                _ => None,
            };
            let results = match direct {
                Some(r) => r,
                None if !inputs_done => {
                    stack.push((id, true));
                    for v in &inputs {
                        if !self.known.contains_key(v) {
                            stack.push((v.node, false));
                        }
                    }
                    continue;
                }
                None => {
                    let args: Option<Vec<&Tensor>> =
                        inputs.iter().map(|v| self.known[v].as_ref()).collect();
                    match args {
                        None => vec![None; node.outputs.len()],
                        Some(args) => {
                            let types: Vec<TensorType> =
                                node.outputs.iter().map(|o| o.ty.clone()).collect();
                            super::eval(&node.op, &args, &types)
                                .map_err(|e| e.at(&node.name, node.op.name()))?
                                .into_iter()
                                .map(Some)
                                .collect()
                        }
                    }
                }
            };
            for (port, r) in results.into_iter().enumerate() {
                self.known.insert(Value::new(id, port), r);
            }
        }
        Ok(self.known[&v].clone())
    }
}
