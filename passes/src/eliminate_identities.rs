//! Dead code and identities: Identity (what Dropout became at import), Reshapes to the
//! same shape, Reshapes of Reshapes, Transposes by the identity permutation, and any
//! node (or unused constant) no output needs.

use cnnc_ir::{Graph, IrError, Op, Value};

use crate::{Pass, TargetInfo};

/// `name` lets the pipeline run this twice under two names (once early, once as the
/// final cleanup).
pub struct EliminateIdentities(pub &'static str);

impl Pass for EliminateIdentities {
    fn name(&self) -> &'static str {
        self.0
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            let inputs = graph.inputs_of(id);
            let out = Value::new(id, 0);
            let identity = match &graph.node(id).op {
                Op::Identity => true,
                Op::Reshape { shape } => {
                    // Reshape(Reshape(x)) reads x directly.
                    let x = inputs[0];
                    if let Op::Reshape { .. } = graph.node(x.node).op {
                        let inner = graph.inputs_of(x.node)[0];
                        let shape = shape.clone();
                        graph.rewrite(id, Op::Reshape { shape }, &[inner])?;
                        changes += 1;
                    }
                    graph.value_type(graph.inputs_of(id)[0]).shape == graph.value_type(out).shape
                }
                Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
                _ => false,
            };
            if identity {
                let x = graph.inputs_of(id)[0];
                crate::util::replace_node(graph, id, x);
                changes += 1;
            }
        }
        changes += graph.remove_dead();
        Ok(changes)
    }
}
