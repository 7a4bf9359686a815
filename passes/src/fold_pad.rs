//! Explicit padding folded into the window op that reads it: zero padding into a
//! convolution's pads; -inf padding into a max pool's; zero padding into an average
//! pool without pads of its own, which then counts the padding.

use cnnc_ir::op::{PadMode, PoolKind};
use cnnc_ir::{Graph, IrError, Op, Value};

use crate::util::sole_user;
use crate::{Pass, TargetInfo};

pub struct FoldPad;

impl Pass for FoldPad {
    fn name(&self) -> &'static str {
        "fold_pad"
    }

    fn run(&self, graph: &mut Graph, _: &TargetInfo) -> Result<usize, IrError> {
        let mut changes = 0;
        for id in graph.topo_order()? {
            if !graph.contains(id) {
                continue;
            }
            let Op::Pad {
                pads,
                mode: PadMode::Constant(value),
            } = &graph.node(id).op
            else {
                continue;
            };
            let (pads, value) = (pads.clone(), *value);
            // Only non-negative padding of the spatial axes.
            if pads.len() < 3
                || pads[..2].iter().any(|&p| p != (0, 0))
                || pads.iter().any(|p| p.0 < 0 || p.1 < 0)
            {
                continue;
            }
            let out = Value::new(id, 0);
            let Some(user) = sole_user(graph, out) else {
                continue;
            };
            let x = graph.inputs_of(id)[0];
            let mut ins = graph.inputs_of(user);
            if ins[0] != out || ins[1..].contains(&out) {
                continue;
            }
            let spatial: Vec<(usize, usize)> = pads[2..]
                .iter()
                .map(|&(b, e)| (b as usize, e as usize))
                .collect();
            let add = |own: &[(usize, usize)]| {
                own.iter()
                    .zip(&spatial)
                    .map(|(a, b)| (a.0 + b.0, a.1 + b.1))
                    .collect::<Vec<_>>()
            };
            let op = match graph.node(user).op.clone() {
                Op::Conv(mut c) if value == 0.0 => {
                    c.pads = add(&c.pads);
                    Op::Conv(c)
                }
                Op::DepthwiseConv(mut c) if value == 0.0 => {
                    c.pads = add(&c.pads);
                    Op::DepthwiseConv(c)
                }
                Op::Pool(mut p) if p.kind == PoolKind::Max && value == f32::NEG_INFINITY => {
                    p.pads = add(&p.pads);
                    Op::Pool(p)
                }
                Op::Pool(mut p)
                    if matches!(p.kind, PoolKind::Avg { .. })
                        && value == 0.0
                        && p.pads.iter().all(|&q| q == (0, 0)) =>
                {
                    p.pads = spatial.clone();
                    p.kind = PoolKind::Avg {
                        count_include_pad: true,
                    };
                    Op::Pool(p)
                }
                _ => continue,
            };
            ins[0] = x;
            // A ceil-mode pool may drop a window that now starts in the padding.
            let types: Vec<_> = ins.iter().map(|&v| graph.value_type(v)).collect();
            let shape = op.infer(&types)?.remove(0).shape;
            if shape != graph.value_type(Value::new(user, 0)).shape {
                continue;
            }
            graph.rewrite(user, op, &ins)?;
            graph.remove_node(id);
            changes += 1;
        }
        Ok(changes)
    }
}
