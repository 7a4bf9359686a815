//! Banded Winograd convolutions (`Winograd::band`): the input transform, the products
//! and the output transform run one band of rows of tiles at a time, so the
//! transformed input and the products hold one band (and stay in cache) instead of
//! the whole plane. The program runs the three steps in a loop over the bands, each
//! step's arguments given the band's first row (`ArgSource::BandStart`).

use std::collections::HashMap;

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
/// pass builds: an input transform read only by the products, a pointwise
/// convolution read only by the output transform, the two with the same bands.
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
        if !matches!(graph.node(products).op, Op::Conv(_)) || !only_reader(m, output) {
            return Err(broken(
                "its products are not a convolution read by it alone",
            ));
        }
        let v = graph.inputs_of(products)[0];
        let input = v.node;
        match &graph.node(input).op {
            Op::WinogradInput(wi) if wi.band == w.band && only_reader(v, products) => {}
            _ => return Err(broken("its products do not read its input transform alone")),
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

/// The types the transformed input and the products are stored as: one band's rows.
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

#[cfg(test)]
mod tests {
    use super::*;
    use cnnc_ir::op::{Conv, Epilogue, Winograd};
    use cnnc_ir::{Tensor, TensorType};

    /// `x -> input transform -> products -> output transform` in bands of 2 of F(2x2)'s
    /// 4 rows of tiles (8x8 outputs), with a ReLU of `x` computed in between in
    /// topological order; the products also a graph output when `leak`.
    fn banded_graph(leak: bool) -> (Graph, [NodeId; 4]) {
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
            epilogue: Epilogue::default(),
        };
        let v = g.add("v", Op::WinogradInput(w.clone()), &[x]).expect("v");
        let relu = g
            .add("relu", Op::Unary(cnnc_ir::op::Unary::Relu), &[x])
            .expect("relu");
        let u = g.add_const(
            "u",
            Tensor::from_vec(vec![64, 4, 1, 1], vec![0.5f32; 256]).expect("u"),
        );
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
        let y = g.add("y", Op::WinogradOutput(w), &[m, bias]).expect("y");
        g.add_output("y", y);
        g.add_output("relu", relu);
        if leak {
            g.add_output("m", m);
        }
        (g, [v.node, relu.node, m.node, y.node])
    }

    #[test]
    fn the_three_steps_run_together_and_store_one_band() {
        let (g, [v, relu, m, y]) = banded_graph(false);
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
    fn products_read_elsewhere_are_an_error() {
        let (g, _) = banded_graph(true);
        let err = find(&g).expect_err("the products are a graph output");
        assert!(
            err.to_string().contains("banded Winograd convolution y"),
            "{err}"
        );
    }
}
