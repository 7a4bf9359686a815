//! Operators whose attributes became inputs (or changed meaning) between opset
//! versions: each case is built in its old and new form and must give the same
//! hand-computed result through the reference interpreter.

use cnnc_frontend::builder::*;
use cnnc_frontend::proto::{NodeProto, TensorProto};
use cnnc_frontend::{ImportOptions, OnnxModel, import};
use cnnc_ir::{DType, Tensor};

/// Builds a graph of `nodes` over the float input `x` of `shape`, imports it at `opset`
/// and runs it on `data`, returning the named outputs.
fn run_x(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    shape: &[usize],
    data: &[f32],
    outputs: &[&str],
) -> Vec<Tensor> {
    let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let g = graph(
        nodes,
        vec![input("x", &dims)],
        outputs.iter().map(|o| output(o)).collect(),
        inits,
    );
    let m = OnnxModel::from_bytes(model(g, opset)).unwrap();
    let imported = import(&m, &ImportOptions::default())
        .unwrap_or_else(|e| panic!("opset {opset}: import failed: {e}"));
    let x = Tensor::from_vec(shape.to_vec(), data.to_vec()).unwrap();
    cnnc_ir::interp::run(&imported, &[x])
        .unwrap_or_else(|e| panic!("opset {opset}: run failed: {e}"))
}

/// [`run_x`] for a graph with the single output `y`.
fn run_y(
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    shape: &[usize],
    data: &[f32],
) -> Tensor {
    run_x(opset, nodes, inits, shape, data, &["y"]).remove(0)
}

fn f32s(t: &Tensor) -> Vec<f32> {
    assert_eq!(t.dtype(), DType::F32, "{t:?}");
    t.view::<f32>().unwrap().into_owned()
}

/// Checks shape and values exactly.
#[track_caller]
fn assert_exact(t: &Tensor, shape: &[usize], want: &[f32], what: &str) {
    assert_eq!(t.shape(), shape, "{what}: shape");
    assert_eq!(f32s(t), want, "{what}: values");
}

/// Checks shape and values to a relative tolerance (for results the interpreter
/// computes in f64 and rounds).
#[track_caller]
fn assert_close(t: &Tensor, shape: &[usize], want: &[f64], what: &str) {
    assert_eq!(t.shape(), shape, "{what}: shape");
    let got = f32s(t);
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}: element {i} is {g}, expected {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

fn scalar_f32(name: &str, v: f32) -> TensorProto {
    tensor_f32(name, &[], &[v])
}

fn ints(name: &str, v: &[i64]) -> TensorProto {
    tensor_i64(name, &[v.len() as i64], v)
}

/// 0, 1, 2, ... as floats.
fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

// ---------------------------------------------------------------- Clip

const CLIP_X: [f32; 6] = [-3.0, -1.0, 0.0, 1.5, 2.0, 5.0];

#[test]
fn clip_min_max_as_attributes_and_as_inputs() {
    let want = [-1.0, -1.0, 0.0, 1.5, 2.0, 2.0];
    let old = run_y(
        6,
        vec![node(
            "Clip",
            &["x"],
            &["y"],
            vec![attr_float("min", -1.0), attr_float("max", 2.0)],
        )],
        vec![],
        &[6],
        &CLIP_X,
    );
    assert_exact(&old, &[6], &want, "opset 6");
    for opset in [11, 13] {
        let new = run_y(
            opset,
            vec![node("Clip", &["x", "lo", "hi"], &["y"], vec![])],
            vec![scalar_f32("lo", -1.0), scalar_f32("hi", 2.0)],
            &[6],
            &CLIP_X,
        );
        assert_exact(&new, &[6], &want, &format!("opset {opset}"));
    }
}

#[test]
fn clip_with_only_max() {
    let want = [-3.0, -1.0, 0.0, 1.5, 1.5, 1.5];
    let old = run_y(
        6,
        vec![node("Clip", &["x"], &["y"], vec![attr_float("max", 1.5)])],
        vec![],
        &[6],
        &CLIP_X,
    );
    assert_exact(&old, &[6], &want, "opset 6");
    let new = run_y(
        13,
        vec![node("Clip", &["x", "", "hi"], &["y"], vec![])],
        vec![scalar_f32("hi", 1.5)],
        &[6],
        &CLIP_X,
    );
    assert_exact(&new, &[6], &want, "opset 13");
}

#[test]
fn clip_without_bounds_is_identity() {
    let old = run_y(
        6,
        vec![node("Clip", &["x"], &["y"], vec![])],
        vec![],
        &[6],
        &CLIP_X,
    );
    assert_exact(&old, &[6], &CLIP_X, "opset 6");
    let new = run_y(
        13,
        vec![node("Clip", &["x"], &["y"], vec![])],
        vec![],
        &[6],
        &CLIP_X,
    );
    assert_exact(&new, &[6], &CLIP_X, "opset 13");
}

// ---------------------------------------------------------------- Pad

/// [[1, 2, 3], [4, 5, 6]]
const PAD_X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

/// Pads `PAD_X` with `pads` (ONNX order: all begins, then all ends) in every opset form:
/// attributes (6), inputs (11, 13), inputs with all axes listed in reverse order (18).
/// Returns the results, labelled.
fn pad_all_forms(mode: &str, pads: [i64; 4], value: Option<f32>) -> Vec<(String, Tensor)> {
    let mut results = Vec::new();

    let mut attrs = vec![attr_string("mode", mode), attr_ints("pads", &pads)];
    if let Some(v) = value {
        attrs.push(attr_float("value", v));
    }
    let t = run_y(
        6,
        vec![node("Pad", &["x"], &["y"], attrs)],
        vec![],
        &[2, 3],
        &PAD_X,
    );
    results.push(("opset 6 attributes".to_string(), t));

    for opset in [11, 13, 18] {
        let mut inits = vec![ints("pads", &pads)];
        let mut inputs = vec!["x", "pads"];
        if let Some(v) = value {
            inits.push(scalar_f32("cv", v));
            inputs.push("cv");
        }
        let t = run_y(
            opset,
            vec![node(
                "Pad",
                &inputs,
                &["y"],
                vec![attr_string("mode", mode)],
            )],
            inits,
            &[2, 3],
            &PAD_X,
        );
        results.push((format!("opset {opset} inputs"), t));
    }

    // Opset 18: axes [-1, 0], so the pads are reordered to match.
    let reordered = [pads[1], pads[0], pads[3], pads[2]];
    let mut inits = vec![ints("pads", &reordered), ints("axes", &[-1, 0])];
    let cv = if let Some(v) = value {
        inits.push(scalar_f32("cv", v));
        "cv"
    } else {
        ""
    };
    let t = run_y(
        18,
        vec![node(
            "Pad",
            &["x", "pads", cv, "axes"],
            &["y"],
            vec![attr_string("mode", mode)],
        )],
        inits,
        &[2, 3],
        &PAD_X,
    );
    results.push(("opset 18 axes input".to_string(), t));
    results
}

#[test]
fn pad_constant_in_every_form() {
    // Axis 1 gets one column before, axis 0 one row after.
    let want = [
        9.0, 1.0, 2.0, 3.0, //
        9.0, 4.0, 5.0, 6.0, //
        9.0, 9.0, 9.0, 9.0,
    ];
    for (what, t) in pad_all_forms("constant", [0, 1, 1, 0], Some(9.0)) {
        assert_exact(&t, &[3, 4], &want, &what);
    }
}

#[test]
fn pad_constant_defaults_to_zero() {
    let want = [
        0.0, 0.0, 0.0, 0.0, 0.0, //
        1.0, 2.0, 3.0, 0.0, 0.0, //
        4.0, 5.0, 6.0, 0.0, 0.0,
    ];
    for (what, t) in pad_all_forms("constant", [1, 0, 0, 2], None) {
        assert_exact(&t, &[3, 5], &want, &what);
    }
}

#[test]
fn pad_reflect_in_every_form() {
    // Rows: reflect 1 before and after -> r1 r0 r1 r0.
    // Columns: reflect 2 before, 1 after -> c b a b c b.
    let want = [
        6.0, 5.0, 4.0, 5.0, 6.0, 5.0, //
        3.0, 2.0, 1.0, 2.0, 3.0, 2.0, //
        6.0, 5.0, 4.0, 5.0, 6.0, 5.0, //
        3.0, 2.0, 1.0, 2.0, 3.0, 2.0,
    ];
    for (what, t) in pad_all_forms("reflect", [1, 2, 1, 1], None) {
        assert_exact(&t, &[4, 6], &want, &what);
    }
}

#[test]
fn pad_edge_in_every_form() {
    // Rows: one copy of r0 before. Columns: two copies of the last after.
    let want = [
        1.0, 2.0, 3.0, 3.0, 3.0, //
        1.0, 2.0, 3.0, 3.0, 3.0, //
        4.0, 5.0, 6.0, 6.0, 6.0,
    ];
    for (what, t) in pad_all_forms("edge", [1, 0, 0, 2], None) {
        assert_exact(&t, &[3, 5], &want, &what);
    }
}

#[test]
fn pad_opset_18_with_a_subset_of_axes() {
    // Only axis 1: one column each side.
    let want = [
        7.0, 1.0, 2.0, 3.0, 7.0, //
        7.0, 4.0, 5.0, 6.0, 7.0,
    ];
    let t = run_y(
        18,
        vec![node("Pad", &["x", "pads", "cv", "axes"], &["y"], vec![])],
        vec![
            ints("pads", &[1, 1]),
            scalar_f32("cv", 7.0),
            ints("axes", &[1]),
        ],
        &[2, 3],
        &PAD_X,
    );
    assert_exact(&t, &[2, 5], &want, "opset 18 axes [1]");
    let old = run_y(
        6,
        vec![node(
            "Pad",
            &["x"],
            &["y"],
            vec![attr_ints("pads", &[0, 1, 0, 1]), attr_float("value", 7.0)],
        )],
        vec![],
        &[2, 3],
        &PAD_X,
    );
    assert_exact(&old, &[2, 5], &want, "opset 6");
}

// ---------------------------------------------------------------- Squeeze / Unsqueeze

fn squeeze_like(op: &str, opset: i64, axes: Option<&[i64]>) -> NodeProto {
    match axes {
        None => node(op, &["x"], &["y"], vec![]),
        Some(_) if opset >= 13 => node(op, &["x", "axes"], &["y"], vec![]),
        Some(a) => node(op, &["x"], &["y"], vec![attr_ints("axes", a)]),
    }
}

fn squeeze_like_inits(opset: i64, axes: Option<&[i64]>) -> Vec<TensorProto> {
    match axes {
        Some(a) if opset >= 13 => vec![ints("axes", a)],
        _ => vec![],
    }
}

/// Runs `op` with `axes` as an attribute (opset 11) and as an input (13); both must give
/// `want_shape` with the data unchanged.
fn check_squeeze_like(op: &str, x_shape: &[usize], axes: Option<&[i64]>, want_shape: &[usize]) {
    let n: usize = x_shape.iter().product();
    let data = iota(n);
    for opset in [11, 13] {
        let t = run_y(
            opset,
            vec![squeeze_like(op, opset, axes)],
            squeeze_like_inits(opset, axes),
            x_shape,
            &data,
        );
        assert_exact(
            &t,
            want_shape,
            &data,
            &format!("{op} opset {opset} axes {axes:?}"),
        );
    }
}

#[test]
fn squeeze_axes_attribute_and_input() {
    check_squeeze_like("Squeeze", &[1, 3, 1, 2], Some(&[0, 2]), &[3, 2]);
    check_squeeze_like("Squeeze", &[1, 3, 1, 2], Some(&[-2]), &[1, 3, 2]);
    check_squeeze_like("Squeeze", &[1, 3, 1, 2], Some(&[0, -2]), &[3, 2]);
    check_squeeze_like("Squeeze", &[1, 3, 1, 2], None, &[3, 2]);
}

#[test]
fn unsqueeze_axes_attribute_and_input() {
    check_squeeze_like("Unsqueeze", &[3, 2], Some(&[0]), &[1, 3, 2]);
    // Negative axes count in the output's rank (4): -1 is axis 3.
    check_squeeze_like("Unsqueeze", &[3, 2], Some(&[-1, 0]), &[1, 3, 2, 1]);
    check_squeeze_like("Unsqueeze", &[3, 2], Some(&[1, -2]), &[3, 1, 1, 2]);
}

// ---------------------------------------------------------------- Split

/// x = [[0..5], [5..10]], split on axis 1.
fn check_split(outs: &[Tensor], sizes: &[usize], what: &str) {
    assert_eq!(outs.len(), sizes.len(), "{what}");
    let mut start = 0;
    for (k, (t, &len)) in outs.iter().zip(sizes).enumerate() {
        let mut want = Vec::new();
        for row in 0..2 {
            for col in start..start + len {
                want.push((row * 5 + col) as f32);
            }
        }
        assert_exact(t, &[2, len], &want, &format!("{what}, part {k}"));
        start += len;
    }
    assert_eq!(start, 5);
}

#[test]
fn split_sizes_as_attribute_and_as_input() {
    let x = iota(10);
    let outs = ["a", "b"];
    let old = run_x(
        11,
        vec![node(
            "Split",
            &["x"],
            &outs,
            vec![attr_int("axis", 1), attr_ints("split", &[2, 3])],
        )],
        vec![],
        &[2, 5],
        &x,
        &outs,
    );
    check_split(&old, &[2, 3], "opset 11 attribute");
    for opset in [13, 18] {
        let new = run_x(
            opset,
            vec![node(
                "Split",
                &["x", "split"],
                &outs,
                vec![attr_int("axis", -1)],
            )],
            vec![ints("split", &[2, 3])],
            &[2, 5],
            &x,
            &outs,
        );
        check_split(&new, &[2, 3], &format!("opset {opset} input"));
    }
}

#[test]
fn split_num_outputs_with_uneven_last_chunk() {
    // 5 into 3: ceil(5 / 3) = 2, so [2, 2, 1].
    let outs = ["a", "b", "c"];
    let new = run_x(
        18,
        vec![node(
            "Split",
            &["x"],
            &outs,
            vec![attr_int("axis", 1), attr_int("num_outputs", 3)],
        )],
        vec![],
        &[2, 5],
        &iota(10),
        &outs,
    );
    check_split(&new, &[2, 2, 1], "opset 18 num_outputs 3");
    let old = run_x(
        11,
        vec![node(
            "Split",
            &["x"],
            &outs,
            vec![attr_int("axis", 1), attr_ints("split", &[2, 2, 1])],
        )],
        vec![],
        &[2, 5],
        &iota(10),
        &outs,
    );
    check_split(&old, &[2, 2, 1], "opset 11 split [2, 2, 1]");
}

#[test]
fn split_without_sizes_is_even() {
    // Axis 0 of [4, 2] into 2 outputs, by the number of outputs.
    let outs = ["a", "b"];
    for opset in [11, 13] {
        let r = run_x(
            opset,
            vec![node("Split", &["x"], &outs, vec![])],
            vec![],
            &[4, 2],
            &iota(8),
            &outs,
        );
        assert_exact(
            &r[0],
            &[2, 2],
            &[0.0, 1.0, 2.0, 3.0],
            &format!("opset {opset}"),
        );
        assert_exact(
            &r[1],
            &[2, 2],
            &[4.0, 5.0, 6.0, 7.0],
            &format!("opset {opset}"),
        );
    }
}

// ---------------------------------------------------------------- ReduceMean / ReduceSum

/// [[1, 2, 3], [4, 5, 6]]
const RED_X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

/// `op` over `RED_X` with `axes` as an attribute below `input_from` and as an input
/// from it; `extra` attributes are added to both.
fn reduce(
    op: &str,
    opset: i64,
    input_from: i64,
    axes: Option<&[i64]>,
    extra: Vec<cnnc_frontend::proto::AttributeProto>,
) -> Tensor {
    let (n, inits) = match axes {
        Some(a) if opset >= input_from => (
            node(op, &["x", "axes"], &["y"], extra),
            vec![ints("axes", a)],
        ),
        Some(a) => {
            let mut attrs = extra;
            attrs.push(attr_ints("axes", a));
            (node(op, &["x"], &["y"], attrs), vec![])
        }
        None => (node(op, &["x"], &["y"], extra), vec![]),
    };
    run_y(opset, vec![n], inits, &[2, 3], &RED_X)
}

#[test]
fn reduce_mean_axes_attribute_and_input() {
    for (opset, axes) in [(13, [1]), (13, [-1]), (18, [1]), (18, [-1])] {
        let what = format!("ReduceMean opset {opset} axes {axes:?}");
        let t = reduce("ReduceMean", opset, 18, Some(&axes), vec![]);
        assert_close(&t, &[2, 1], &[2.0, 5.0], &what);
        let t = reduce(
            "ReduceMean",
            opset,
            18,
            Some(&axes),
            vec![attr_int("keepdims", 0)],
        );
        assert_close(&t, &[2], &[2.0, 5.0], &format!("{what} keepdims 0"));
    }
    for opset in [13, 18] {
        let t = reduce(
            "ReduceMean",
            opset,
            18,
            Some(&[0]),
            vec![attr_int("keepdims", 1)],
        );
        assert_close(
            &t,
            &[1, 3],
            &[2.5, 3.5, 4.5],
            &format!("opset {opset} axis 0"),
        );
    }
}

#[test]
fn reduce_sum_axes_attribute_and_input() {
    for opset in [11, 13] {
        let what = format!("ReduceSum opset {opset}");
        let t = reduce("ReduceSum", opset, 13, Some(&[0]), vec![]);
        assert_close(&t, &[1, 3], &[5.0, 7.0, 9.0], &what);
        let t = reduce(
            "ReduceSum",
            opset,
            13,
            Some(&[0]),
            vec![attr_int("keepdims", 0)],
        );
        assert_close(&t, &[3], &[5.0, 7.0, 9.0], &format!("{what} keepdims 0"));
        let t = reduce(
            "ReduceSum",
            opset,
            13,
            Some(&[-1, 0]),
            vec![attr_int("keepdims", 0)],
        );
        assert_close(&t, &[], &[21.0], &format!("{what} all axes"));
    }
}

#[test]
fn reduce_without_axes_reduces_everything() {
    for (op, opset, want) in [
        ("ReduceSum", 11, 21.0),
        ("ReduceSum", 13, 21.0),
        ("ReduceMean", 13, 3.5),
        ("ReduceMean", 18, 3.5),
    ] {
        let what = format!("{op} opset {opset}");
        let t = reduce(op, opset, 0, None, vec![]);
        assert_close(&t, &[1, 1], &[want], &what);
        let t = reduce(op, opset, 0, None, vec![attr_int("keepdims", 0)]);
        assert_close(&t, &[], &[want], &format!("{what} keepdims 0"));
    }
    // noop_with_empty_axes = 0 spelled out keeps that meaning.
    let t = reduce(
        "ReduceSum",
        13,
        13,
        None,
        vec![attr_int("noop_with_empty_axes", 0)],
    );
    assert_close(&t, &[1, 1], &[21.0], "ReduceSum opset 13 noop 0");
}

#[test]
fn reduce_noop_with_empty_axes_is_identity() {
    for (op, opset) in [("ReduceSum", 13), ("ReduceMean", 18)] {
        // Axes absent.
        let t = reduce(
            op,
            opset,
            opset,
            None,
            vec![attr_int("noop_with_empty_axes", 1)],
        );
        assert_exact(&t, &[2, 3], &RED_X, &format!("{op} opset {opset} no axes"));
        // Axes given as an empty tensor.
        let t = reduce(
            op,
            opset,
            opset,
            Some(&[]),
            vec![attr_int("noop_with_empty_axes", 1), attr_int("keepdims", 0)],
        );
        assert_exact(
            &t,
            &[2, 3],
            &RED_X,
            &format!("{op} opset {opset} empty axes"),
        );
        // With axes, noop_with_empty_axes changes nothing.
        let t = reduce(
            op,
            opset,
            opset,
            Some(&[1]),
            vec![attr_int("noop_with_empty_axes", 1)],
        );
        let want = if op == "ReduceSum" {
            [6.0, 15.0]
        } else {
            [2.0, 5.0]
        };
        assert_close(&t, &[2, 1], &want, &format!("{op} opset {opset} axes [1]"));
    }
}

// ---------------------------------------------------------------- Slice

/// 0..12 as [3, 4].
fn slice_at(
    opset: i64,
    starts: &[i64],
    ends: &[i64],
    axes: &[i64],
    steps: Option<&[i64]>,
) -> Tensor {
    let (n, inits) = if opset < 10 {
        assert!(steps.is_none());
        (
            node(
                "Slice",
                &["x"],
                &["y"],
                vec![
                    attr_ints("starts", starts),
                    attr_ints("ends", ends),
                    attr_ints("axes", axes),
                ],
            ),
            vec![],
        )
    } else {
        let mut inits = vec![
            ints("starts", starts),
            ints("ends", ends),
            ints("axes", axes),
        ];
        let mut inputs = vec!["x", "starts", "ends", "axes"];
        if let Some(s) = steps {
            inits.push(ints("steps", s));
            inputs.push("steps");
        }
        (node("Slice", &inputs, &["y"], vec![]), inits)
    };
    run_y(opset, vec![n], inits, &[3, 4], &iota(12))
}

#[test]
fn slice_bounds_as_attributes_and_as_inputs() {
    // Rows 1.., columns 0..3.
    let want = [4.0, 5.0, 6.0, 8.0, 9.0, 10.0];
    let old = slice_at(9, &[1, 0], &[i64::MAX, 3], &[0, 1], None);
    assert_exact(&old, &[2, 3], &want, "opset 9");
    for opset in [10, 13] {
        let new = slice_at(opset, &[1, 0], &[i64::MAX, 3], &[0, 1], None);
        assert_exact(&new, &[2, 3], &want, &format!("opset {opset}"));
        let new = slice_at(opset, &[0, 1], &[3, i64::MAX], &[1, 0], Some(&[1, 1]));
        assert_exact(
            &new,
            &[2, 3],
            &want,
            &format!("opset {opset} axes reordered"),
        );
        let new = slice_at(opset, &[-4, -2], &[-1, i64::MAX], &[-1, -2], None);
        assert_exact(&new, &[2, 3], &want, &format!("opset {opset} negative"));
    }
}

#[test]
fn slice_with_negative_steps() {
    // Columns reversed: start -1, end INT64_MIN (before the first), step -1.
    let t = slice_at(13, &[-1], &[i64::MIN], &[1], Some(&[-1]));
    let want = [3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0, 11.0, 10.0, 9.0, 8.0];
    assert_exact(&t, &[3, 4], &want, "reverse columns");

    // Start INT64_MAX clamps to the last column; every other column backwards: 3, 1.
    let t = slice_at(13, &[i64::MAX], &[i64::MIN], &[1], Some(&[-2]));
    assert_exact(&t, &[3, 2], &[3.0, 1.0, 7.0, 5.0, 11.0, 9.0], "step -2");

    // Rows 2 down to (not including) 0, columns 0.. by 3: rows 2, 1, columns 0, 3.
    let t = slice_at(13, &[2, 0], &[0, i64::MAX], &[0, 1], Some(&[-1, 3]));
    assert_exact(&t, &[2, 2], &[8.0, 11.0, 4.0, 7.0], "mixed steps");
}

#[test]
fn slice_that_is_empty() {
    let t = slice_at(13, &[2], &[1], &[1], Some(&[1]));
    assert_eq!(t.shape(), &[3, 0]);
    let old = slice_at(9, &[2], &[1], &[1], None);
    assert_eq!(old.shape(), &[3, 0]);
}

// ---------------------------------------------------------------- Softmax

const SM_SHAPE: [usize; 3] = [2, 2, 3];

fn sm_x() -> Vec<f32> {
    (0..12).map(|i| (i as f32 * 0.37).sin() * 2.0).collect()
}

/// Softmax of `x` over contiguous groups of `group` elements with stride `stride`
/// inside blocks of `block` elements: the general "one axis" loop.
fn softmax_loop(x: &[f32], block: usize, group: usize, stride: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; x.len()];
    for b in 0..x.len() / block {
        for s in 0..stride {
            let idx: Vec<usize> = (0..group).map(|k| b * block + k * stride + s).collect();
            let max = idx.iter().map(|&i| x[i] as f64).fold(f64::MIN, f64::max);
            let sum: f64 = idx.iter().map(|&i| (x[i] as f64 - max).exp()).sum();
            for &i in &idx {
                out[i] = (x[i] as f64 - max).exp() / sum;
            }
        }
    }
    out
}

#[test]
fn softmax_opset_11_coerces_to_2d() {
    // axis=1 on [2, 2, 3]: each batch's 6 elements are normalized together.
    let x = sm_x();
    let want = softmax_loop(&x, 6, 6, 1);
    let t = run_y(
        11,
        vec![node("Softmax", &["x"], &["y"], vec![attr_int("axis", 1)])],
        vec![],
        &SM_SHAPE,
        &x,
    );
    assert_close(&t, &SM_SHAPE, &want, "opset 11 axis 1");
    // Each batch sums to one; single rows along axis 1 do not.
    let got = f32s(&t);
    for b in 0..2 {
        let s: f32 = got[b * 6..b * 6 + 6].iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "batch {b} sums to {s}");
    }
    // The default axis before opset 13 is 1.
    let t = run_y(
        11,
        vec![node("Softmax", &["x"], &["y"], vec![])],
        vec![],
        &SM_SHAPE,
        &x,
    );
    assert_close(&t, &SM_SHAPE, &want, "opset 11 default axis");
}

#[test]
fn softmax_opset_13_uses_one_axis() {
    // axis=1 on [2, 2, 3]: for each (batch, k), the 2 elements 3 apart.
    let x = sm_x();
    let want = softmax_loop(&x, 6, 2, 3);
    let t = run_y(
        13,
        vec![node("Softmax", &["x"], &["y"], vec![attr_int("axis", 1)])],
        vec![],
        &SM_SHAPE,
        &x,
    );
    assert_close(&t, &SM_SHAPE, &want, "opset 13 axis 1");
    // The two opsets really differ here.
    let coerced = softmax_loop(&x, 6, 6, 1);
    assert!(
        want.iter().zip(&coerced).any(|(a, b)| (a - b).abs() > 1e-3),
        "the test input does not tell the two semantics apart"
    );
}

#[test]
fn softmax_on_the_last_axis_agrees_across_opsets() {
    let x = sm_x();
    let want = softmax_loop(&x, 3, 3, 1);
    for opset in [11, 13] {
        for a in [2, -1] {
            let t = run_y(
                opset,
                vec![node("Softmax", &["x"], &["y"], vec![attr_int("axis", a)])],
                vec![],
                &SM_SHAPE,
                &x,
            );
            assert_close(&t, &SM_SHAPE, &want, &format!("opset {opset} axis {a}"));
        }
    }
    // Opset 13's default axis is -1.
    let t = run_y(
        13,
        vec![node("Softmax", &["x"], &["y"], vec![])],
        vec![],
        &SM_SHAPE,
        &x,
    );
    assert_close(&t, &SM_SHAPE, &want, "opset 13 default axis");
}

// ---------------------------------------------------------------- Upsample / Resize

/// Nearest upsampling by integer factors: every element repeated `sh` x `sw` times.
fn repeat_2d(x: &[f32], h: usize, w: usize, sh: usize, sw: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..h * sh {
        for j in 0..w * sw {
            out.push(x[(i / sh) * w + j / sw]);
        }
    }
    out
}

fn check_upsample_forms(h: usize, w: usize, sh: usize, sw: usize) {
    let x: Vec<f32> = (1..=h * w).map(|v| v as f32).collect();
    let shape = [1, 1, h, w];
    let scales = [1.0, 1.0, sh as f32, sw as f32];
    let out_shape = [1, 1, h * sh, w * sw];
    let want = repeat_2d(&x, h, w, sh, sw);
    let nearest = || attr_string("mode", "nearest");

    let t = run_y(
        7,
        vec![node(
            "Upsample",
            &["x"],
            &["y"],
            vec![nearest(), attr_floats("scales", &scales)],
        )],
        vec![],
        &shape,
        &x,
    );
    assert_exact(&t, &out_shape, &want, "Upsample opset 7");

    let t = run_y(
        9,
        vec![node("Upsample", &["x", "scales"], &["y"], vec![nearest()])],
        vec![tensor_f32("scales", &[4], &scales)],
        &shape,
        &x,
    );
    assert_exact(&t, &out_shape, &want, "Upsample opset 9");

    let t = run_y(
        10,
        vec![node("Resize", &["x", "scales"], &["y"], vec![nearest()])],
        vec![tensor_f32("scales", &[4], &scales)],
        &shape,
        &x,
    );
    assert_exact(&t, &out_shape, &want, "Resize opset 10");

    // Opset 13's default half_pixel / round_prefer_floor also repeats for these scales.
    let t = run_y(
        13,
        vec![node(
            "Resize",
            &["x", "", "scales"],
            &["y"],
            vec![nearest()],
        )],
        vec![tensor_f32("scales", &[4], &scales)],
        &shape,
        &x,
    );
    assert_exact(&t, &out_shape, &want, "Resize opset 13");
}

#[test]
fn upsample_and_resize_nearest_2x2_to_4x4() {
    check_upsample_forms(2, 2, 2, 2);
}

#[test]
fn upsample_and_resize_nearest_uneven_factors() {
    check_upsample_forms(2, 3, 3, 2);
}

/// ONNX's own Resize-10 example (`test_resize_downsample_nearest` in onnx 1.5, opset
/// 10): [[1, 2, 3, 4], [5, 6, 7, 8]] scaled by 0.6 gives [[1, 3]]. Resize-10 and
/// Upsample use the source coordinate `out / scale`; onnxruntime's "simple" nearest
/// mode for them rounds it down when upsampling and up when downsampling (columns
/// 0 / 0.6 = 0 and 1 / 0.6 = 1.67 -> 2).
#[test]
fn resize_opset_10_nearest_downsampling() {
    let t = run_y(
        10,
        vec![node(
            "Resize",
            &["x", "scales"],
            &["y"],
            vec![attr_string("mode", "nearest")],
        )],
        vec![tensor_f32("scales", &[4], &[1.0, 1.0, 0.6, 0.6])],
        &[1, 1, 2, 4],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    );
    assert_exact(
        &t,
        &[1, 1, 1, 2],
        &[1.0, 3.0],
        "Resize opset 10, scales 0.6",
    );
}

// ---------------------------------------------------------------- Dropout

const DROP_X: [f32; 4] = [1.0, -2.0, 3.5, 0.0];

#[test]
fn dropout_opset_7_ratio_attribute_is_identity() {
    let t = run_y(
        7,
        vec![node(
            "Dropout",
            &["x"],
            &["y"],
            vec![attr_float("ratio", 0.3)],
        )],
        vec![],
        &[2, 2],
        &DROP_X,
    );
    assert_exact(&t, &[2, 2], &DROP_X, "opset 7");
}

#[test]
fn dropout_opset_12_inference_is_identity() {
    let t = run_y(
        12,
        vec![node("Dropout", &["x"], &["y"], vec![])],
        vec![],
        &[2, 2],
        &DROP_X,
    );
    assert_exact(&t, &[2, 2], &DROP_X, "opset 12 no ratio");
    let t = run_y(
        12,
        vec![node("Dropout", &["x", "ratio"], &["y"], vec![])],
        vec![scalar_f32("ratio", 0.3)],
        &[2, 2],
        &DROP_X,
    );
    assert_exact(&t, &[2, 2], &DROP_X, "opset 12 ratio 0.3");
    let t = run_y(
        13,
        vec![node("Dropout", &["x", "ratio", "training"], &["y"], vec![])],
        vec![
            scalar_f32("ratio", 0.3),
            TensorProto {
                data_type: cnnc_frontend::proto::data_type::BOOL,
                name: "training".into(),
                int32_data: vec![0],
                ..Default::default()
            },
        ],
        &[2, 2],
        &DROP_X,
    );
    assert_exact(&t, &[2, 2], &DROP_X, "opset 13 training_mode false");
}

#[test]
fn dropout_mask_output() {
    // Opset 7: the mask has the input's type, all 1.0.
    let r = run_x(
        7,
        vec![node(
            "Dropout",
            &["x"],
            &["y", "mask"],
            vec![attr_float("ratio", 0.5)],
        )],
        vec![],
        &[2, 2],
        &DROP_X,
        &["y", "mask"],
    );
    assert_exact(&r[0], &[2, 2], &DROP_X, "opset 7 output");
    assert_exact(&r[1], &[2, 2], &[1.0; 4], "opset 7 mask");

    // Opset 10 and 12: a bool mask, all true.
    for opset in [10, 12] {
        let r = run_x(
            opset,
            vec![node("Dropout", &["x"], &["y", "mask"], vec![])],
            vec![],
            &[2, 2],
            &DROP_X,
            &["y", "mask"],
        );
        assert_exact(&r[0], &[2, 2], &DROP_X, &format!("opset {opset} output"));
        assert_eq!(r[1].dtype(), DType::Bool, "opset {opset}");
        assert_eq!(r[1].shape(), &[2, 2], "opset {opset}");
        assert!(
            r[1].view::<u8>().unwrap().iter().all(|&m| m == 1),
            "opset {opset}: {:?}",
            r[1]
        );
    }
}

// ---------------------------------------------------------------- legacy broadcast

#[test]
fn add_with_legacy_broadcast_and_axis() {
    // A [2, 3, 4] + B [3] aligned at axis 1: B[c] is added to A[n, c, :].
    let a: Vec<f32> = iota(24);
    let b = [100.0, 200.0, 300.0];
    let mut want = Vec::new();
    for n in 0..2 {
        for c in 0..3 {
            for k in 0..4 {
                want.push(a[(n * 3 + c) * 4 + k] + b[c]);
            }
        }
    }
    let old = run_y(
        6,
        vec![node(
            "Add",
            &["x", "b"],
            &["y"],
            vec![attr_int("broadcast", 1), attr_int("axis", 1)],
        )],
        vec![tensor_f32("b", &[3], &b)],
        &[2, 3, 4],
        &a,
    );
    assert_exact(&old, &[2, 3, 4], &want, "opset 6 broadcast axis 1");
    // The same with numpy broadcasting from opset 7.
    let new = run_y(
        7,
        vec![node("Add", &["x", "b"], &["y"], vec![])],
        vec![tensor_f32("b", &[3, 1], &b)],
        &[2, 3, 4],
        &a,
    );
    assert_exact(&new, &[2, 3, 4], &want, "opset 7 numpy broadcast");
}

#[test]
fn add_with_legacy_broadcast_at_the_trailing_axes() {
    // broadcast=1 without axis aligns B at the end, like numpy.
    let a: Vec<f32> = iota(24);
    let b = [0.5, 1.5, 2.5, 3.5];
    let want: Vec<f32> = (0..24).map(|i| a[i] + b[i % 4]).collect();
    let old = run_y(
        6,
        vec![node(
            "Add",
            &["x", "b"],
            &["y"],
            vec![attr_int("broadcast", 1)],
        )],
        vec![tensor_f32("b", &[4], &b)],
        &[2, 3, 4],
        &a,
    );
    assert_exact(&old, &[2, 3, 4], &want, "opset 6 broadcast, no axis");
}

// ---------------------------------------------------------------- PRelu

#[test]
fn prelu_per_channel_slope_across_opsets() {
    // x [1, 3, 2, 2]; slope c for channel c is 0.1 * (c + 1).
    let x: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
    let slope = [0.1f32, 0.2, 0.3];
    let want: Vec<f32> = (0..12)
        .map(|i| {
            let c = i / 4;
            if x[i] < 0.0 { x[i] * slope[c] } else { x[i] }
        })
        .collect();
    let old = run_y(
        6,
        vec![node("PRelu", &["x", "slope"], &["y"], vec![])],
        vec![tensor_f32("slope", &[3], &slope)],
        &[1, 3, 2, 2],
        &x,
    );
    assert_exact(&old, &[1, 3, 2, 2], &want, "opset 6 slope [C]");
    let new = run_y(
        9,
        vec![node("PRelu", &["x", "slope"], &["y"], vec![])],
        vec![tensor_f32("slope", &[3, 1, 1], &slope)],
        &[1, 3, 2, 2],
        &x,
    );
    assert_exact(&new, &[1, 3, 2, 2], &want, "opset 9 slope [C, 1, 1]");
}

// ---------------------------------------------------------------- Gemm

#[test]
fn gemm_opset_6_broadcast_bias() {
    // A [2, 3] x B [3, 4] + C [4].
    let a = [1.0f32, 2.0, 3.0, -1.0, 0.5, 2.0];
    let b: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
    let c = [10.0f32, 20.0, 30.0, 40.0];
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..4 {
            let mut s = c[j] as f64;
            for k in 0..3 {
                s += a[i * 3 + k] as f64 * b[k * 4 + j] as f64;
            }
            want.push(s);
        }
    }
    let inits = || vec![tensor_f32("b", &[3, 4], &b), tensor_f32("c", &[4], &c)];
    let old = run_y(
        6,
        vec![node(
            "Gemm",
            &["x", "b", "c"],
            &["y"],
            vec![attr_int("broadcast", 1)],
        )],
        inits(),
        &[2, 3],
        &a,
    );
    assert_close(&old, &[2, 4], &want, "opset 6 broadcast=1");
    let new = run_y(
        13,
        vec![node("Gemm", &["x", "b", "c"], &["y"], vec![])],
        inits(),
        &[2, 3],
        &a,
    );
    assert_close(&new, &[2, 4], &want, "opset 13");
}
