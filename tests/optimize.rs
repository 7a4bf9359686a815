//! What `-O2` leaves of the conformance models in `../shared/onnx-conformance/models`:
//! no batch normalization, identity (Dropout imports as one), shape arithmetic or
//! integer data, no activation left standalone after a convolution or matrix product,
//! fewer ops than imported, and a memory plan within 10% of the peak of live bytes. And
//! what `-Os` keeps out of an object.

use std::path::Path;

use cnnc::inspect::compute_ops;
use cnnc::ir::{DType, Graph, Op, Value};
use cnnc::{Compiler, Model};

fn model(name: &str) -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/onnx-conformance/models")
        .join(name)
        .join("model.onnx");
    Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every problem with the optimized graph, one line each.
fn leftovers(g: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for id in g.node_ids() {
        let node = g.node(id);
        let what = format!("{} ({})", node.name, node.op.name());
        match &node.op {
            Op::BatchNorm { .. } | Op::Identity | Op::Shape { .. } => {
                problems.push(format!("{what} is left"));
            }
            Op::Unary(_) => {
                let producer = &g.node(g.inputs_of(id)[0].node).op;
                if matches!(
                    producer,
                    Op::Conv(_)
                        | Op::DepthwiseConv(_)
                        | Op::ConvTranspose(_)
                        | Op::Gemm(_)
                        | Op::MatMul { .. }
                ) {
                    problems.push(format!("{what} after a {} is not fused", producer.name()));
                }
            }
            _ => {}
        }
        for (p, out) in node.outputs.iter().enumerate() {
            let computed = !matches!(node.op, Op::Input | Op::Const(_));
            if computed && out.ty.dtype != DType::F32 && !g.is_output(Value::new(id, p)) {
                problems.push(format!("{what} computes {} data", out.ty.dtype));
            }
        }
    }
    problems
}

fn check(name: &str) {
    let m = model(name);
    let o0 = Compiler::new()
        .opt_level(cnnc::OptLevel::O0)
        .graph(&m)
        .unwrap();
    let compiler = Compiler::new();
    let o2 = compiler.graph(&m).unwrap();
    let problems = leftovers(&o2);
    assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
    // A Winograd convolution is three ops (transforms around the products) for one, a
    // strided one split into phases three (a pad and a space-to-depth before it).
    let transforms = o2
        .node_ids()
        .filter(|&id| matches!(o2.node(id).op, Op::WinogradInput(_) | Op::WinogradOutput(_)))
        .count();
    let phases = |g: &cnnc_ir::Graph| {
        g.node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::SpaceToDepth { .. }))
            .count()
    };
    let splits = phases(&o2) - phases(&o0);
    assert!(
        compute_ops(&o2) - transforms - 2 * splits < compute_ops(&o0),
        "{name}: {} ops at -O2 ({transforms} Winograd transforms, {splits} convolutions split into phases), {} at -O0",
        compute_ops(&o2),
        compute_ops(&o0)
    );
    let info = compiler.compile_graph(&o2).unwrap().info().clone();
    assert!(
        info.workspace_size * 10 <= info.peak_live_bytes * 11,
        "{name}: arena of {} bytes for a peak of {} live",
        info.workspace_size,
        info.peak_live_bytes
    );
}

/// `-Os` leaves out the passes that enlarge the constants: SqueezeNet's object is about
/// its model file's size (at -O2 Winograd's transformed weights make it larger), and
/// its outputs are those of -O2.
#[test]
fn size_level_objects_keep_the_size_of_the_weights() {
    let m = model("squeezenet_random");
    let file = m
        .path()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .unwrap() as usize;
    let size = Compiler::new().opt_level(cnnc::OptLevel::Os);
    let g = size.graph(&m).unwrap();
    let grown = g.node_ids().find(|&id| {
        matches!(
            g.node(id).op,
            Op::WinogradInput(_) | Op::WinogradOutput(_) | Op::SpaceToDepth { .. }
        )
    });
    assert_eq!(grown.map(|id| g.node(id).name.clone()), None);
    let small = size.object(&m, "m").unwrap().bytes().unwrap().len();
    let fast = Compiler::new()
        .object(&m, "m")
        .unwrap()
        .bytes()
        .unwrap()
        .len();
    assert!(
        small * 20 <= file * 21,
        "{small} bytes of object for {file} of model"
    );
    assert!(fast > small * 11 / 10, "-O2 {fast} bytes, -Os {small}");

    let (o2, os) = (
        Compiler::new().compile(&m).unwrap(),
        size.compile(&m).unwrap(),
    );
    let shape = o2.inputs()[0].shape.clone();
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = [cnnc::Tensor::from_vec(shape, x).unwrap()];
    let (a, b) = (o2.run(&x).unwrap(), os.run(&x).unwrap());
    let (a, b) = (a[0].view::<f32>().unwrap(), b[0].view::<f32>().unwrap());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b.iter())
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(
        worst <= 1e-4 * scale,
        "outputs differ by {worst} (largest {scale})"
    );
}

macro_rules! models {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

models!(
    bvlc_alexnet,
    densenet121,
    densenet121_random,
    inception_v1,
    inception_v2,
    resnet50,
    shufflenet,
    shufflenet_random,
    squeezenet,
    squeezenet_random,
    vgg19,
    zfnet512,
);
