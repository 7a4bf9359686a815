//! The Rust API: JIT compilation, input checking, thread counts.

use std::path::PathBuf;

use cnnc::{Compiler, Model, Tensor};

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

fn lenet() -> Model {
    Model::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/lenet/model.onnx"))
        .unwrap()
}

fn image() -> Tensor {
    let data: Vec<f32> = (0..784).map(|i| ((i * 37) % 101) as f32 / 101.0).collect();
    Tensor::from_vec(vec![1, 1, 28, 28], data).unwrap()
}

#[test]
fn compiled_model_reports_its_tensors_and_runs() {
    let compiled = Compiler::new().compile(&lenet()).unwrap();
    assert_eq!(compiled.inputs()[0].name, "image");
    assert_eq!(compiled.inputs()[0].shape, [1, 1, 28, 28]);
    assert_eq!(compiled.outputs()[0].shape, [1, 10]);
    let out = compiled.run(&[image()]).unwrap();
    let p = out[0].view::<f32>().unwrap();
    let sum: f32 = p.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
}

#[test]
fn wrong_inputs_are_rejected_with_the_input_named() {
    let compiled = Compiler::new().compile(&lenet()).unwrap();
    let e = compiled.run(&[]).unwrap_err().to_string();
    assert!(e.contains("takes 1 inputs") && e.contains("image"), "{e}");
    let wrong = Tensor::from_vec(vec![1, 1, 28, 27], vec![0f32; 756]).unwrap();
    let e = compiled.run(&[wrong]).unwrap_err().to_string();
    assert!(
        e.contains("'image'") && e.contains("[1, 1, 28, 28]") && e.contains("f32[1,1,28,27]"),
        "{e}"
    );
    let flat = Tensor::from_vec(vec![784], vec![0f32; 784]).unwrap();
    assert!(compiled.run(&[flat]).is_err());
    let ints = Tensor::from_vec(vec![1, 1, 28, 28], vec![0i64; 784]).unwrap();
    assert!(compiled.run(&[ints]).is_err());
}

#[test]
fn one_and_two_threads_give_identical_outputs() {
    for model in [
        lenet(),
        Model::load(shared(
            "onnx-conformance/models/squeezenet_random/model.onnx",
        ))
        .unwrap(),
    ] {
        let one = Compiler::new().compile(&model).unwrap();
        let two = Compiler::new().threads(2).compile(&model).unwrap();
        assert_eq!(two.threads(), 2);
        let x = &one.inputs()[0];
        let n: usize = x.shape.iter().product();
        let input = Tensor::from_vec(
            x.shape.clone(),
            (0..n)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect(),
        )
        .unwrap();
        let (a, b) = (
            one.run(std::slice::from_ref(&input)).unwrap(),
            two.run(&[input]).unwrap(),
        );
        for (a, b) in a.iter().zip(&b) {
            assert!(a.bitwise_eq(b), "1 and 2 threads differ");
        }
    }
}

#[test]
fn a_compiled_model_is_shared_between_threads() {
    let compiled = std::sync::Arc::new(Compiler::new().threads(2).compile(&lenet()).unwrap());
    let want = compiled.run(&[image()]).unwrap();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let c = std::sync::Arc::clone(&compiled);
            std::thread::spawn(move || c.run(&[image()]).unwrap())
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap()[0].bitwise_eq(&want[0]));
    }
}

#[test]
fn symbolic_batch_takes_the_given_shape() {
    let compiled = Compiler::new()
        .input_shape("image", &[3, 1, 28, 28])
        .compile(&lenet())
        .unwrap();
    assert_eq!(compiled.outputs()[0].shape, [3, 10]);
    let single = Compiler::new()
        .compile(&lenet())
        .unwrap()
        .run(&[image()])
        .unwrap();
    let batch =
        Tensor::from_vec(vec![3, 1, 28, 28], image().view::<f32>().unwrap().repeat(3)).unwrap();
    let out = compiled.run(&[batch]).unwrap();
    let (o, s) = (
        out[0].view::<f32>().unwrap(),
        single[0].view::<f32>().unwrap(),
    );
    for b in 0..3 {
        for k in 0..10 {
            assert!((o[b * 10 + k] - s[k]).abs() < 1e-6);
        }
    }
}

#[test]
fn jit_refuses_a_foreign_target() {
    let e = Compiler::new()
        .target("aarch64-unknown-linux-gnu")
        .unwrap()
        .compile(&lenet())
        .err()
        .unwrap();
    assert!(e.to_string().contains("host"), "{e}");
}

#[test]
fn profiled_runs_call_back_after_every_step_with_the_same_outputs() {
    let model = lenet();
    let input = Tensor::from_vec(vec![1, 1, 28, 28], vec![0.5f32; 784]).unwrap();
    let plain = Compiler::new().compile(&model).unwrap();
    let err = plain
        .run_profiled(std::slice::from_ref(&input), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("profil"), "{err}");
    for threads in [1, 2] {
        let profiled = Compiler::new()
            .threads(threads)
            .profile(true)
            .compile(&model)
            .unwrap();
        let mut seen = Vec::new();
        let out = profiled
            .run_profiled(std::slice::from_ref(&input), &mut |k| seen.push(k))
            .unwrap();
        let steps = profiled.info().steps.len();
        assert_eq!(seen, (0..steps).collect::<Vec<_>>());
        assert!(out[0].bitwise_eq(&plain.run(std::slice::from_ref(&input)).unwrap()[0]));
    }
}

/// A graph built in code goes through the same passes as an imported model: here the
/// ReLU is fused into the convolution before compiling.
#[test]
fn a_graph_built_in_code_is_optimized_and_compiled() {
    use cnnc::ir::op::{Conv, Unary};
    use cnnc::ir::{Graph, Op, TensorType};

    let c = 16;
    let mut g = Graph::new();
    let x = g.add_input("x", TensorType::f32(vec![1, c, 4, 4])).unwrap();
    // y = relu(0.5 - x) per channel: a 1x1 convolution by minus the identity.
    let w: Vec<f32> = (0..c * c)
        .map(|i| if i / c == i % c { -1.0 } else { 0.0 })
        .collect();
    let w = g.add_const("w", Tensor::from_vec(vec![c, c, 1, 1], w).unwrap());
    let b = g.add_const("b", Tensor::from_vec(vec![c], vec![0.5; c]).unwrap());
    let conv = Op::Conv(Conv {
        kernel: vec![1, 1],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(0, 0), (0, 0)],
        groups: 1,
        epilogue: Default::default(),
    });
    let y = g.add("conv", conv, &[x, w, b]).unwrap();
    let y = g.add("relu", Op::Unary(Unary::Relu), &[y]).unwrap();
    g.add_output("y", y);

    let compiler = Compiler::new();
    let (optimized, log) = compiler.optimize_graph(g).unwrap();
    assert!(!log.is_empty());
    let ops: Vec<&str> = optimized
        .node_ids()
        .map(|id| optimized.node(id).op.name())
        .collect();
    assert!(!ops.contains(&"relu"), "{ops:?}");
    let compiled = compiler
        .compile_graph(&compiler.codegen_ready(optimized).unwrap())
        .unwrap();
    let data: Vec<f32> = (0..c * 16).map(|i| (i % 9) as f32 / 8.0).collect();
    let out = compiled
        .run(&[Tensor::from_vec(vec![1, c, 4, 4], data.clone()).unwrap()])
        .unwrap();
    let want: Vec<f32> = data.iter().map(|v| (0.5 - v).max(0.0)).collect();
    assert_eq!(out[0].view::<f32>().unwrap(), &want[..]);
}

/// A convolution whose Winograd transforms would not fit the cache runs band by band
/// (`Winograd::band`): the profiled entry reports its three steps once per band, in
/// turn, every other step once, and the per-layer profile sums them into one entry
/// per step.
#[test]
fn banded_winograd_steps_report_once_per_band() {
    use cnnc::ir::op::Conv;
    use cnnc::ir::{Graph, Op, TensorType};

    // 16 channels at 512x512: 60 MB of transformed input and products under F(6x6),
    // beyond half of any L3 below 120 MB.
    let (c, hw) = (16, 512);
    let mut g = Graph::new();
    let x = g
        .add_input("x", TensorType::f32(vec![1, c, hw, hw]))
        .unwrap();
    let w: Vec<f32> = (0..c * c * 9)
        .map(|i| ((i % 7) as f32 - 3.0) / 8.0)
        .collect();
    let w = g.add_const("w", Tensor::from_vec(vec![c, c, 3, 3], w).unwrap());
    let b = g.add_const("b", Tensor::from_vec(vec![c], vec![0.25; c]).unwrap());
    let conv = Op::Conv(Conv {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![(1, 1), (1, 1)],
        groups: 1,
        epilogue: Default::default(),
    });
    let y = g.add("conv", conv, &[x, w, b]).unwrap();
    g.add_output("y", y);
    let compiler = Compiler::new().profile(true);
    let (optimized, _) = compiler.optimize_graph(g).unwrap();
    let ready = compiler.codegen_ready(optimized).unwrap();
    let bands = ready.node_ids().find_map(|id| match &ready.node(id).op {
        Op::WinogradOutput(w) if w.band > 0 => Some(w.bands().0),
        _ => None,
    });
    let bands = bands.expect("a banded Winograd convolution");
    assert!(bands > 1, "{bands} bands");
    let compiled = compiler.compile_graph(&ready).unwrap();
    let data: Vec<f32> = (0..c * hw * hw).map(|i| (i % 13) as f32 / 13.0).collect();
    let input = Tensor::from_vec(vec![1, c, hw, hw], data).unwrap();
    let mut seen = Vec::new();
    let out = compiled
        .run_profiled(std::slice::from_ref(&input), &mut |k| seen.push(k))
        .unwrap();
    assert!(out[0].bitwise_eq(&compiled.run(std::slice::from_ref(&input)).unwrap()[0]));
    let steps = &compiled.info().steps;
    let first = steps
        .iter()
        .position(|s| s.op == "winograd_input")
        .expect("the input transform's step");
    for (k, step) in steps.iter().enumerate() {
        let times = seen.iter().filter(|&&s| s == k).count();
        let want = if (first..first + 3).contains(&k) {
            bands
        } else {
            1
        };
        assert_eq!(times, want, "step {k} ({})", step.name);
    }
    assert_eq!(
        seen[first..first + 6],
        [first, first + 1, first + 2].repeat(2)
    );
    let layers = cnnc::profile::per_layer(&compiled, &ready, &[input], 0, 1).unwrap();
    assert_eq!(layers.len(), steps.len());
}
