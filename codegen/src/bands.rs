//! Banded Winograd convolutions (`Winograd::band`): the input transform, the products
//! and the output transform run one band of rows of tiles at a time, so the
//! transformed input and the products hold one band (and stay in cache) instead of
//! the whole plane. The program runs the three steps in a loop over the bands, each
//! step's arguments given the band's first row (`ArgSource::BandStart`).

use std::collections::HashMap;

use cnnc_ir::op::Winograd;
use cnnc_ir::{Graph, NodeId, Op, TensorType, Value};

use crate::CodegenError;

/// One banded convolution: its three nodes, and its bands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Banded {
    pub input: NodeId,
    pub products: NodeId,
    pub output: NodeId,
    /// The bands, the rows of tiles of each, and the rows in all: band `b` starts at
    /// row `min(b * band, rows - band)` (the last band overlaps the one before when
    /// `band` does not divide `rows`).
    pub count: usize,
    pub band: usize,
    pub rows: usize,
}

/// The banded convolutions of `graph`, each checked to be the chain the `winograd`
/// pass builds: an input transform read only by the products, a 1x1 convolution
/// (stride 1, no padding or epilogue) read only by the output transform, the two
/// transforms of the same tiles and bands; and every banded input transform in one.
pub fn find(graph: &Graph) -> Result<Vec<Banded>, CodegenError> {
    let mut found = Vec::new();
    for output in graph.node_ids() {
        let Op::WinogradOutput(w) = &graph.node(output).op else {
            continue;
        };
        if w.band == 0 {
            continue;
        }
        let broken = |why: &str| {
            CodegenError::Unsupported(format!(
                "banded Winograd convolution {}: {why}",
                graph.node(output).name
            ))
        };
        let only_reader = |v: Value, reader: NodeId| {
            graph.users(v).iter().all(|&(n, _)| n == reader) && !graph.is_output(v)
        };
        let m = graph.inputs_of(output)[0];
        let products = m.node;
        let pointwise = match &graph.node(products).op {
            Op::Conv(c) => c.is_pointwise() && c.epilogue.is_empty(),
            _ => false,
        };
        if !pointwise || !only_reader(m, output) {
            return Err(broken(
                "its products are not a pointwise convolution read by it alone",
            ));
        }
        let v = graph.inputs_of(products)[0];
        let input = v.node;
        let same = |wi: &Winograd| {
            let unbanded = Winograd {
                epilogue: w.epilogue,
                ..wi.clone()
            };
            &unbanded == w
        };
        match &graph.node(input).op {
            Op::WinogradInput(wi) if same(wi) && only_reader(v, products) => {}
            _ => {
                return Err(broken(
                    "its products do not read an input transform of its tiles alone",
                ));
            }
        }
        let (count, band) = w.bands();
        found.push(Banded {
            input,
            products,
            output,
            count,
            band,
            rows: w.tiles()[0],
        });
    }
    for id in graph.node_ids() {
        if let Op::WinogradInput(w) = &graph.node(id).op
            && w.band > 0
            && !found.iter().any(|b| b.input == id)
        {
            return Err(CodegenError::Unsupported(format!(
                "banded Winograd input transform {}: no banded output transform reads its products",
                graph.node(id).name
            )));
        }
    }
    Ok(found)
}

/// `order` with each banded convolution's input transform and products moved to just
/// before its output transform, so its three steps are consecutive (their inputs are
/// all computed earlier still, and nothing else reads what they write).
pub fn schedule(order: &[NodeId], banded: &[Banded]) -> Vec<NodeId> {
    let moved: HashMap<NodeId, &Banded> = banded
        .iter()
        .flat_map(|b| [(b.input, b), (b.products, b)])
        .collect();
    let at_output: HashMap<NodeId, &Banded> = banded.iter().map(|b| (b.output, b)).collect();
    let mut out = Vec::with_capacity(order.len());
    for &id in order {
        if moved.contains_key(&id) {
            continue;
        }
        if let Some(b) = at_output.get(&id) {
            out.extend([b.input, b.products]);
        }
        out.push(id);
    }
    out
}

/// The types the transformed input and the products are stored as: one band's rows
/// (`Winograd::stored_plane`).
pub fn storage(graph: &Graph, banded: &[Banded]) -> HashMap<Value, TensorType> {
    let mut types = HashMap::new();
    for b in banded {
        for node in [b.input, b.products] {
            let v = Value::new(node, 0);
            let mut ty = graph.value_type(v).clone();
            ty.shape[2] = b.band;
            types.insert(v, ty);
        }
    }
    types
}

/// `(first, last)` steps of a buffer in a program whose banded convolutions start at
/// the steps `starts` (three steps each): a buffer live during any step of one is live
/// through all three, since they run by turns, band after band.
pub fn lifetime((mut first, mut last): (usize, usize), starts: &[usize]) -> (usize, usize) {
    for &s in starts {
        if first <= s + 2 && last >= s {
            (first, last) = (first.min(s), last.max(s + 2));
        }
    }
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnnc_ir::op::{Conv, Epilogue, Winograd};
    use cnnc_ir::{Tensor, TensorType};

    /// How [`banded_graph`] goes wrong.
    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        /// The products are also a graph output.
        ProductsRead,
        /// The transformed input is also a graph output.
        InputRead,
        /// The input transform is banded for other output rows.
        OtherTiles,
        /// The output transform is not banded.
        Unbanded,
    }

    /// `x -> input transform -> products -> output transform` in bands of 2 of F(2x2)'s
    /// 4 rows of tiles (8x8 outputs), with a ReLU of `x` computed in between in
    /// topological order, broken by `fault`.
    fn banded_graph(fault: Fault) -> (Graph, [NodeId; 4]) {
        let mut g = Graph::new();
        let x = g
            .add_input("x", TensorType::f32(vec![1, 4, 8, 8]))
            .expect("an input");
        let w = Winograd {
            tile: 2,
            kernel: 3,
            pads: [1, 1],
            out: [8, 8],
            plane: [4, 4],
            band: 2,
            plain_products: None,
            epilogue: Epilogue::default(),
        };
        let wi = match fault {
            Fault::OtherTiles => Winograd {
                out: [7, 8],
                ..w.clone()
            },
            _ => w.clone(),
        };
        let v = g.add("v", Op::WinogradInput(wi), &[x]).expect("v");
        let relu = g
            .add("relu", Op::Unary(cnnc_ir::op::Unary::Relu), &[x])
            .expect("relu");
        let u = Tensor::from_vec(vec![64, 4, 1, 1], vec![0.5f32; 256]).expect("u");
        let u = g.add_const("u", u);
        let products = Conv {
            kernel: vec![1, 1],
            strides: vec![1, 1],
            dilations: vec![1, 1],
            pads: vec![(0, 0); 2],
            groups: 16,
            epilogue: Epilogue::default(),
        };
        let m = g.add("m", Op::Conv(products), &[v, u]).expect("m");
        let bias = g.add_const("b", Tensor::from_vec(vec![4], vec![0f32; 4]).expect("b"));
        let wo = match fault {
            Fault::Unbanded => Winograd { band: 0, ..w },
            _ => w,
        };
        let y = g.add("y", Op::WinogradOutput(wo), &[m, bias]).expect("y");
        g.add_output("y", y);
        g.add_output("relu", relu);
        match fault {
            Fault::ProductsRead => g.add_output("m", m),
            Fault::InputRead => g.add_output("v", v),
            _ => {}
        }
        (g, [v.node, relu.node, m.node, y.node])
    }

    #[test]
    fn the_three_steps_run_together_and_store_one_band() {
        let (g, [v, relu, m, y]) = banded_graph(Fault::None);
        let banded = find(&g).expect("a banded convolution");
        let want = Banded {
            input: v,
            products: m,
            output: y,
            count: 2,
            band: 2,
            rows: 4,
        };
        assert_eq!(banded, [want]);
        let topo = g.topo_order().expect("an order");
        let before = |a, b| {
            let at = |id| topo.iter().position(|&n| n == id);
            at(a) < at(b)
        };
        assert!(
            before(v, relu) && before(relu, y),
            "the ReLU between: {topo:?}"
        );
        let order = schedule(&topo, &banded);
        let at = |id| order.iter().position(|&n| n == id).expect("scheduled");
        assert!(at(relu) < at(v), "the ReLU first: {order:?}");
        assert_eq!((at(m), at(y)), (at(v) + 1, at(v) + 2));
        let types = storage(&g, &banded);
        assert_eq!(types[&Value::new(v, 0)].shape, [1, 64, 2, 4]);
        assert_eq!(types[&Value::new(m, 0)].shape, [1, 64, 2, 4]);
    }

    #[test]
    fn chains_other_than_the_passes_are_errors() {
        for (fault, node) in [
            (Fault::ProductsRead, "banded Winograd convolution y"),
            (Fault::InputRead, "banded Winograd convolution y"),
            (Fault::OtherTiles, "banded Winograd convolution y"),
            (Fault::Unbanded, "banded Winograd input transform v"),
        ] {
            let (g, _) = banded_graph(fault);
            let err = find(&g).expect_err("a broken chain");
            assert!(err.to_string().contains(node), "{err}");
        }
    }

    #[test]
    fn buffers_live_during_a_banded_step_live_through_all_three() {
        // Banded convolutions at steps 3-5 and 9-11.
        let starts = [3, 9];
        // Read last by the input transform; first written by the output transform.
        assert_eq!(lifetime((0, 3), &starts), (0, 5));
        assert_eq!(lifetime((5, 7), &starts), (3, 7));
        // Scratch of the products; across both convolutions.
        assert_eq!(lifetime((4, 4), &starts), (3, 5));
        assert_eq!(lifetime((4, 10), &starts), (3, 11));
        // Between them, or before: unchanged.
        assert_eq!(lifetime((6, 8), &starts), (6, 8));
        assert_eq!(lifetime((0, 2), &starts), (0, 2));
    }
}
