//! Initializers and constants in every encoding ONNX allows: each is imported, run
//! through the reference interpreter and its values checked.

use bytes::Bytes;
use cnnc_frontend::builder::*;
use cnnc_frontend::proto::{GraphProto, NodeProto, TensorProto, data_type};
use cnnc_frontend::{ImportError, ImportOptions, OnnxModel, import};
use cnnc_ir::{DType, Graph, Scalar, Tensor};

const OPSET: i64 = 13;

fn import_bytes(bytes: Vec<u8>) -> Result<Graph, ImportError> {
    import(&OnnxModel::from_bytes(bytes)?, &ImportOptions::default())
}

fn import_graph(g: GraphProto) -> Graph {
    import_bytes(model(g, OPSET)).unwrap_or_else(|e| panic!("import failed: {e}"))
}

fn run_graph(graph: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    cnnc_ir::interp::run(graph, inputs).unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// Imports `g` at opset 13 and runs it on `inputs`.
fn run(g: GraphProto, inputs: &[Tensor]) -> Vec<Tensor> {
    run_graph(&import_graph(g), inputs)
}

fn f32_tensor(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), data.to_vec()).unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    assert_eq!(t.dtype(), DType::F32, "{t:?}");
    t.view::<f32>().unwrap().into_owned()
}

fn i64s(t: &Tensor) -> Vec<i64> {
    assert_eq!(t.dtype(), DType::I64, "{t:?}");
    t.view::<i64>().unwrap().into_owned()
}

fn i32s(t: &Tensor) -> Vec<i32> {
    assert_eq!(t.dtype(), DType::I32, "{t:?}");
    t.view::<i32>().unwrap().into_owned()
}

fn bools(t: &Tensor) -> Vec<bool> {
    assert_eq!(t.dtype(), DType::Bool, "{t:?}");
    t.view::<u8>().unwrap().iter().map(|&b| b != 0).collect()
}

/// A float32 tensor stored in `float_data`.
fn f32_float_data(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// An int64 tensor stored as `raw_data`.
fn i64_raw(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::INT64,
        name: name.into(),
        raw_data: Bytes::copy_from_slice(bytemuck::cast_slice(data)),
        ..Default::default()
    }
}

/// An int32 tensor stored in `int32_data`.
fn i32_int32_data(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::INT32,
        name: name.into(),
        int32_data: data.to_vec(),
        ..Default::default()
    }
}

/// A bool tensor stored in `int32_data` (one int32 per element).
fn bool_int32_data(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::BOOL,
        name: name.into(),
        int32_data: data.to_vec(),
        ..Default::default()
    }
}

/// A bool tensor stored as `raw_data` (one byte per element).
fn bool_raw(name: &str, dims: &[i64], data: &[u8]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::BOOL,
        name: name.into(),
        raw_data: Bytes::copy_from_slice(data),
        ..Default::default()
    }
}

/// `Identity(name) -> out`, making an initializer a graph output.
fn identity(name: &str, out: &str) -> NodeProto {
    node("Identity", &[name], &[out], vec![])
}

// ---------------------------------------------------------------- float32

#[test]
fn float32_initializer_as_raw_data() {
    let w = tensor_f32("w", &[2, 3], &[0.5, -1.0, 2.0, 3.25, 0.0, -7.5]);
    assert!(!w.raw_data.is_empty() && w.float_data.is_empty());
    let g = graph(
        vec![
            node("Add", &["x", "w"], &["y"], vec![]),
            identity("w", "w_out"),
        ],
        vec![input("x", &[2, 3])],
        vec![output("y"), output("w_out")],
        vec![w],
    );
    let x = f32_tensor(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let out = run(g, &[x]);
    assert_eq!(out[0].shape(), &[2, 3]);
    assert_eq!(f32s(&out[0]), [1.5, 1.0, 5.0, 7.25, 5.0, -1.5]);
    assert_eq!(out[1].shape(), &[2, 3]);
    assert_eq!(f32s(&out[1]), [0.5, -1.0, 2.0, 3.25, 0.0, -7.5]);
}

#[test]
fn float32_initializer_as_float_data() {
    let w = f32_float_data("w", &[2, 3], &[0.5, -1.0, 2.0, 3.25, 0.0, -7.5]);
    let g = graph(
        vec![
            node("Mul", &["x", "w"], &["y"], vec![]),
            identity("w", "w_out"),
        ],
        vec![input("x", &[2, 3])],
        vec![output("y"), output("w_out")],
        vec![w],
    );
    let x = f32_tensor(&[2, 3], &[2.0, 2.0, 2.0, -1.0, 9.0, 0.5]);
    let out = run(g, &[x]);
    assert_eq!(f32s(&out[0]), [1.0, -2.0, 4.0, -3.25, 0.0, -3.75]);
    assert_eq!(out[1].shape(), &[2, 3]);
    assert_eq!(f32s(&out[1]), [0.5, -1.0, 2.0, 3.25, 0.0, -7.5]);
}

#[test]
fn float32_raw_data_and_float_data_give_the_same_tensor() {
    let data = [1.0e-30f32, -0.0, f32::MAX, f32::MIN_POSITIVE, 3.5, -2.25];
    let raw = tensor_f32("a", &[3, 2], &data);
    let typed = f32_float_data("b", &[3, 2], &data);
    let g = graph(
        vec![identity("a", "a_out"), identity("b", "b_out")],
        vec![],
        vec![output("a_out"), output("b_out")],
        vec![raw, typed],
    );
    let out = run(g, &[]);
    for t in &out {
        assert_eq!(t.shape(), &[3, 2]);
        let bits: Vec<u32> = f32s(t).iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, want);
    }
}

// ---------------------------------------------------------------- int64 / int32

#[test]
fn int64_initializer_as_int64_data() {
    let t = tensor_i64("t", &[2, 2], &[-5, 0, i64::MAX, i64::MIN]);
    assert!(t.raw_data.is_empty() && !t.int64_data.is_empty());
    let g = graph(vec![identity("t", "y")], vec![], vec![output("y")], vec![t]);
    let out = run(g, &[]);
    assert_eq!(out[0].shape(), &[2, 2]);
    assert_eq!(i64s(&out[0]), [-5, 0, i64::MAX, i64::MIN]);
}

#[test]
fn int64_initializer_as_raw_data() {
    let t = i64_raw("t", &[3], &[7, -1, 1 << 40]);
    let g = graph(vec![identity("t", "y")], vec![], vec![output("y")], vec![t]);
    let out = run(g, &[]);
    assert_eq!(out[0].shape(), &[3]);
    assert_eq!(i64s(&out[0]), [7, -1, 1 << 40]);
}

#[test]
fn int64_shape_in_either_encoding_drives_reshape() {
    let x = f32_tensor(
        &[2, 6],
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
    );
    for s in [
        tensor_i64("s", &[3], &[3, -1, 2]),
        i64_raw("s", &[3], &[3, -1, 2]),
    ] {
        let g = graph(
            vec![node("Reshape", &["x", "s"], &["y"], vec![])],
            vec![input("x", &[2, 6])],
            vec![output("y")],
            vec![s],
        );
        let imported = import_graph(g);
        assert_eq!(
            imported.value_type(imported.outputs()[0].value).shape,
            vec![3, 2, 2]
        );
        let out = run_graph(&imported, std::slice::from_ref(&x));
        assert_eq!(out[0].shape(), &[3, 2, 2]);
        assert_eq!(f32s(&out[0]), f32s(&x));
    }
}

#[test]
fn int32_initializer_as_int32_data() {
    let t = i32_int32_data("t", &[4], &[-3, 0, 5, i32::MAX]);
    let g = graph(
        vec![
            identity("t", "t_out"),
            node("Cast", &["t"], &["tf"], vec![attr_int("to", 1)]),
            node("Add", &["x", "tf"], &["y"], vec![]),
        ],
        vec![input("x", &[4])],
        vec![output("t_out"), output("y")],
        vec![t],
    );
    let out = run(g, &[f32_tensor(&[4], &[0.5, 0.5, 0.5, 0.0])]);
    assert_eq!(out[0].shape(), &[4]);
    assert_eq!(i32s(&out[0]), [-3, 0, 5, i32::MAX]);
    assert_eq!(f32s(&out[1]), [-2.5, 0.5, 5.5, i32::MAX as f32]);
}

#[test]
fn int32_shape_as_int32_data_drives_reshape() {
    let s = i32_int32_data("s", &[2], &[4, 1]);
    let g = graph(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![input("x", &[2, 2])],
        vec![output("y")],
        vec![s],
    );
    let out = run(g, &[f32_tensor(&[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    assert_eq!(out[0].shape(), &[4, 1]);
    assert_eq!(f32s(&out[0]), [1.0, 2.0, 3.0, 4.0]);
}

// ---------------------------------------------------------------- bool

/// `Where(cond, x, y)` with `cond` the given bool initializer and `y` a float_data
/// initializer; also returns `cond` itself.
fn where_with(cond: TensorProto) -> Vec<Tensor> {
    let y = f32_float_data("other", &[5], &[-1.0, -2.0, -3.0, -4.0, -5.0]);
    let g = graph(
        vec![
            node("Where", &["cond", "x", "other"], &["y"], vec![]),
            identity("cond", "cond_out"),
        ],
        vec![input("x", &[5])],
        vec![output("y"), output("cond_out")],
        vec![cond, y],
    );
    run(g, &[f32_tensor(&[5], &[10.0, 20.0, 30.0, 40.0, 50.0])])
}

#[test]
fn bool_initializer_as_int32_data_feeds_where() {
    // Any non-zero int32 is true.
    let out = where_with(bool_int32_data("cond", &[5], &[1, 0, 0, 1, 2]));
    assert_eq!(f32s(&out[0]), [10.0, -2.0, -3.0, 40.0, 50.0]);
    assert_eq!(bools(&out[1]), [true, false, false, true, true]);
}

#[test]
fn bool_initializer_as_raw_data_feeds_where() {
    let out = where_with(bool_raw("cond", &[5], &[0, 1, 1, 0, 1]));
    assert_eq!(f32s(&out[0]), [-1.0, 20.0, 30.0, -4.0, 50.0]);
    assert_eq!(bools(&out[1]), [false, true, true, false, true]);
}

#[test]
fn bool_raw_data_with_bytes_above_one_reads_as_true() {
    let out = where_with(bool_raw("cond", &[5], &[0, 2, 255, 0, 1]));
    assert_eq!(f32s(&out[0]), [-1.0, 20.0, 30.0, -4.0, 50.0]);
    assert_eq!(bools(&out[1]), [false, true, true, false, true]);
}

#[test]
fn bool_condition_broadcasts_in_where() {
    // A [2, 1] condition over a [2, 3] input.
    let cond = bool_raw("cond", &[2, 1], &[1, 0]);
    let other = tensor_f32("other", &[1], &[0.0]);
    let g = graph(
        vec![node("Where", &["cond", "x", "other"], &["y"], vec![])],
        vec![input("x", &[2, 3])],
        vec![output("y")],
        vec![cond, other],
    );
    let out = run(g, &[f32_tensor(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])]);
    assert_eq!(out[0].shape(), &[2, 3]);
    assert_eq!(f32s(&out[0]), [1.0, 2.0, 3.0, 0.0, 0.0, 0.0]);
}

// ---------------------------------------------------------------- zero elements

#[test]
fn zero_element_initializers_in_each_encoding() {
    // No data at all: neither raw_data nor a typed field is set.
    let empty_f32 = tensor_f32("ef", &[0], &[]);
    let empty_2d = TensorProto {
        dims: vec![2, 0],
        data_type: data_type::FLOAT,
        name: "e2".into(),
        ..Default::default()
    };
    let empty_i64 = tensor_i64("ei", &[0, 3], &[]);
    let g = graph(
        vec![
            node(
                "Concat",
                &["ef", "x", "ef"],
                &["y"],
                vec![attr_int("axis", 0)],
            ),
            identity("e2", "e2_out"),
            identity("ei", "ei_out"),
        ],
        vec![input("x", &[3])],
        vec![output("y"), output("e2_out"), output("ei_out")],
        vec![empty_f32, empty_2d, empty_i64],
    );
    let out = run(g, &[f32_tensor(&[3], &[1.0, 2.0, 3.0])]);
    assert_eq!(out[0].shape(), &[3]);
    assert_eq!(f32s(&out[0]), [1.0, 2.0, 3.0]);
    assert_eq!(out[1].shape(), &[2, 0]);
    assert_eq!(out[1].numel(), 0);
    assert!(f32s(&out[1]).is_empty());
    assert_eq!(out[2].shape(), &[0, 3]);
    assert!(i64s(&out[2]).is_empty());
}

#[test]
fn zero_element_shape_gives_a_scalar_constant_of_shape() {
    // ConstantOfShape of an empty shape is a rank-0 tensor.
    let s = tensor_i64("s", &[0], &[]);
    let value = tensor_f32("v", &[1], &[4.5]);
    let g = graph(
        vec![
            node(
                "ConstantOfShape",
                &["s"],
                &["c"],
                vec![attr_tensor("value", value)],
            ),
            node("Add", &["x", "c"], &["y"], vec![]),
        ],
        vec![input("x", &[2])],
        vec![output("c"), output("y")],
        vec![s],
    );
    let out = run(g, &[f32_tensor(&[2], &[1.0, -1.0])]);
    assert_eq!(out[0].shape(), &[] as &[usize]);
    assert_eq!(f32s(&out[0]), [4.5]);
    assert_eq!(f32s(&out[1]), [5.5, 3.5]);
}

// ---------------------------------------------------------------- IR version 3

#[test]
fn ir_version_3_initializer_listed_as_graph_input_is_a_constant() {
    let w = tensor_f32("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let s = tensor_i64("s", &[2], &[3, 2]);
    let g = graph(
        vec![
            node("Add", &["x", "w"], &["a"], vec![]),
            node("Reshape", &["a", "s"], &["y"], vec![]),
        ],
        // Old exporters list every initializer among the graph inputs too, the int64
        // shape included (which could not be a run-time input).
        vec![
            input("w", &[2, 3]),
            input("x", &[2, 3]),
            typed_input("s", data_type::INT64, &[2]),
        ],
        vec![output("y")],
        vec![w, s],
    );
    let mut proto = model_proto(g, 8);
    proto.ir_version = 3;
    let bytes = prost::Message::encode_to_vec(&proto);

    let m = OnnxModel::from_bytes(bytes.clone()).unwrap();
    assert_eq!(m.ir_version(), 3);
    assert_eq!(m.input_names(), ["x"]);

    let imported = import_bytes(bytes).unwrap_or_else(|e| panic!("import failed: {e}"));
    let names: Vec<&str> = imported
        .inputs()
        .iter()
        .map(|&id| imported.node(id).outputs[0].name.as_str())
        .collect();
    assert_eq!(names, ["x"]);
    assert_eq!(
        imported.value_type(imported.outputs()[0].value).shape,
        vec![3, 2]
    );

    let out = run_graph(
        &imported,
        &[f32_tensor(&[2, 3], &[10.0, 20.0, 30.0, 40.0, 50.0, 60.0])],
    );
    assert_eq!(out[0].shape(), &[3, 2]);
    assert_eq!(f32s(&out[0]), [11.0, 22.0, 33.0, 44.0, 55.0, 66.0]);
}

// ---------------------------------------------------------------- Constant

/// A graph of one `Constant` node with `attr`, whose output is the graph output.
fn constant_graph(attr: cnnc_frontend::proto::AttributeProto) -> GraphProto {
    graph(
        vec![node("Constant", &[], &["c"], vec![attr])],
        vec![],
        vec![output("c")],
        vec![],
    )
}

fn run_constant(attr: cnnc_frontend::proto::AttributeProto) -> Tensor {
    let out = run(constant_graph(attr), &[]);
    assert_eq!(out.len(), 1);
    out.into_iter().next().unwrap()
}

#[test]
fn constant_value_tensor_raw_data() {
    let t = run_constant(attr_tensor(
        "value",
        tensor_f32("", &[2, 2], &[1.0, -2.0, 3.5, 0.25]),
    ));
    assert_eq!(t.shape(), &[2, 2]);
    assert_eq!(f32s(&t), [1.0, -2.0, 3.5, 0.25]);
}

#[test]
fn constant_value_tensor_float_data() {
    let t = run_constant(attr_tensor(
        "value",
        f32_float_data("", &[3], &[9.0, 8.0, 7.0]),
    ));
    assert_eq!(t.shape(), &[3]);
    assert_eq!(f32s(&t), [9.0, 8.0, 7.0]);
}

#[test]
fn constant_value_tensor_int64_and_bool() {
    let t = run_constant(attr_tensor("value", i64_raw("", &[2], &[-4, 4])));
    assert_eq!(i64s(&t), [-4, 4]);
    let t = run_constant(attr_tensor("value", tensor_i64("", &[], &[12])));
    assert_eq!(t.shape(), &[] as &[usize]);
    assert_eq!(i64s(&t), [12]);
    let t = run_constant(attr_tensor("value", bool_int32_data("", &[3], &[0, 1, 0])));
    assert_eq!(bools(&t), [false, true, false]);
}

#[test]
fn constant_value_float() {
    let t = run_constant(attr_float("value_float", -1.5));
    assert_eq!(t.shape(), &[] as &[usize]);
    assert_eq!(f32s(&t), [-1.5]);
}

#[test]
fn constant_value_floats() {
    let t = run_constant(attr_floats("value_floats", &[0.5, 1.5, -2.5]));
    assert_eq!(t.shape(), &[3]);
    assert_eq!(f32s(&t), [0.5, 1.5, -2.5]);
}

#[test]
fn constant_value_int() {
    let t = run_constant(attr_int("value_int", -42));
    assert_eq!(t.shape(), &[] as &[usize]);
    assert_eq!(i64s(&t), [-42]);
}

#[test]
fn constant_value_ints() {
    let t = run_constant(attr_ints("value_ints", &[3, 1, 4, 1, 5]));
    assert_eq!(t.shape(), &[5]);
    assert_eq!(i64s(&t), [3, 1, 4, 1, 5]);
}

#[test]
fn constant_forms_feed_other_nodes() {
    // value_ints as a Reshape target, value_float broadcast in an Add.
    let g = graph(
        vec![
            node(
                "Constant",
                &[],
                &["shape"],
                vec![attr_ints("value_ints", &[3, 2])],
            ),
            node(
                "Constant",
                &[],
                &["k"],
                vec![attr_float("value_float", 0.5)],
            ),
            node("Reshape", &["x", "shape"], &["r"], vec![]),
            node("Add", &["r", "k"], &["y"], vec![]),
        ],
        vec![input("x", &[6])],
        vec![output("y")],
        vec![],
    );
    let out = run(g, &[f32_tensor(&[6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])]);
    assert_eq!(out[0].shape(), &[3, 2]);
    assert_eq!(f32s(&out[0]), [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
}

#[test]
fn constant_value_string_is_unsupported_and_names_the_node() {
    let e = import_bytes(model(
        constant_graph(attr_string("value_string", "hello")),
        OPSET,
    ))
    .unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    let n = e.node.as_ref().unwrap_or_else(|| panic!("no node in {e}"));
    assert_eq!(n.name, "Constant_c");
    assert_eq!(n.op_type, "Constant");
    assert!(e.message.contains("string"), "{e}");
    assert!(e.to_string().contains("Constant_c"), "{e}");
}

// ---------------------------------------------------------------- ConstantOfShape

/// Checks that `t` is stored as a splat of `value` with `shape`.
fn assert_splat(t: &Tensor, shape: &[usize], value: Scalar) {
    assert_eq!(t.shape(), shape);
    assert_eq!(t.splat_value(), Some(value), "{t:?}");
    for i in 0..t.numel() {
        assert_eq!(t.get(i), Some(value));
    }
}

#[test]
fn constant_of_shape_without_value_is_float_zero() {
    let s = tensor_i64("s", &[2], &[2, 3]);
    let g = graph(
        vec![node("ConstantOfShape", &["s"], &["c"], vec![])],
        vec![],
        vec![output("c")],
        vec![s],
    );
    let out = run(g, &[]);
    assert_eq!(out[0].dtype(), DType::F32);
    assert_splat(&out[0], &[2, 3], Scalar::F32(0.0));
    assert_eq!(f32s(&out[0]), [0.0; 6]);
}

#[test]
fn constant_of_shape_with_float_value() {
    let s = i64_raw("s", &[3], &[1, 2, 2]);
    let value = f32_float_data("v", &[1], &[2.5]);
    let g = graph(
        vec![
            node(
                "ConstantOfShape",
                &["s"],
                &["c"],
                vec![attr_tensor("value", value)],
            ),
            node("Mul", &["x", "c"], &["y"], vec![]),
        ],
        vec![input("x", &[1, 2, 2])],
        vec![output("c"), output("y")],
        vec![s],
    );
    let out = run(g, &[f32_tensor(&[1, 2, 2], &[1.0, 2.0, -3.0, 4.0])]);
    assert_splat(&out[0], &[1, 2, 2], Scalar::F32(2.5));
    assert_eq!(f32s(&out[1]), [2.5, 5.0, -7.5, 10.0]);
}

#[test]
fn constant_of_shape_with_int64_value() {
    let s = tensor_i64("s", &[2], &[3, 1]);
    let value = tensor_i64("v", &[1], &[-7]);
    let g = graph(
        vec![node(
            "ConstantOfShape",
            &["s"],
            &["c"],
            vec![attr_tensor("value", value)],
        )],
        vec![],
        vec![output("c")],
        vec![s],
    );
    let out = run(g, &[]);
    assert_eq!(out[0].dtype(), DType::I64);
    assert_splat(&out[0], &[3, 1], Scalar::I64(-7));
    assert_eq!(i64s(&out[0]), [-7, -7, -7]);
}

#[test]
fn constant_of_shape_of_a_runtime_inputs_shape() {
    // Shape(x) is known from x's static type, so the result is a constant.
    let value = tensor_f32("v", &[1], &[1.0]);
    let g = graph(
        vec![
            node("Shape", &["x"], &["s"], vec![]),
            node(
                "ConstantOfShape",
                &["s"],
                &["ones"],
                vec![attr_tensor("value", value)],
            ),
            node("Sub", &["x", "ones"], &["y"], vec![]),
        ],
        vec![input("x", &[2, 2])],
        vec![output("ones"), output("y")],
        vec![],
    );
    let out = run(g, &[f32_tensor(&[2, 2], &[5.0, 6.0, 7.0, 8.0])]);
    assert_splat(&out[0], &[2, 2], Scalar::F32(1.0));
    assert_eq!(f32s(&out[1]), [4.0, 5.0, 6.0, 7.0]);
}

// ---------------------------------------------------------------- Range

#[test]
fn range_of_float_initializers() {
    // Rank-0 scalars, in raw_data and in float_data.
    let g = graph(
        vec![node("Range", &["start", "limit", "delta"], &["r"], vec![])],
        vec![],
        vec![output("r")],
        vec![
            tensor_f32("start", &[], &[1.0]),
            f32_float_data("limit", &[], &[2.0]),
            tensor_f32("delta", &[], &[0.25]),
        ],
    );
    let out = run(g, &[]);
    assert_eq!(out[0].shape(), &[4]);
    assert_eq!(f32s(&out[0]), [1.0, 1.25, 1.5, 1.75]);
}

#[test]
fn range_of_float_with_a_partial_last_step() {
    // ceil((5 - 0) / 2) = 3 elements.
    let g = graph(
        vec![
            node("Range", &["start", "limit", "delta"], &["r"], vec![]),
            node("Add", &["x", "r"], &["y"], vec![]),
        ],
        vec![input("x", &[3])],
        vec![output("y")],
        vec![
            tensor_f32("start", &[], &[0.0]),
            tensor_f32("limit", &[], &[5.0]),
            tensor_f32("delta", &[], &[2.0]),
        ],
    );
    let out = run(g, &[f32_tensor(&[3], &[0.5, 0.5, 0.5])]);
    assert_eq!(f32s(&out[0]), [0.5, 2.5, 4.5]);
}

#[test]
fn range_of_int64_initializers() {
    let g = graph(
        vec![
            node("Range", &["start", "limit", "delta"], &["up"], vec![]),
            node("Range", &["limit", "start", "neg"], &["down"], vec![]),
        ],
        vec![],
        vec![output("up"), output("down")],
        vec![
            tensor_i64("start", &[], &[1]),
            i64_raw("limit", &[], &[10]),
            tensor_i64("delta", &[], &[3]),
            i64_raw("neg", &[], &[-4]),
        ],
    );
    let out = run(g, &[]);
    assert_eq!(out[0].shape(), &[3]);
    assert_eq!(i64s(&out[0]), [1, 4, 7]);
    assert_eq!(out[1].shape(), &[3]);
    assert_eq!(i64s(&out[1]), [10, 6, 2]);
}

#[test]
fn range_that_is_empty() {
    let g = graph(
        vec![node("Range", &["start", "limit", "delta"], &["r"], vec![])],
        vec![],
        vec![output("r")],
        vec![
            tensor_i64("start", &[], &[5]),
            tensor_i64("limit", &[], &[5]),
            tensor_i64("delta", &[], &[1]),
        ],
    );
    let out = run(g, &[]);
    assert_eq!(out[0].shape(), &[0]);
    assert!(i64s(&out[0]).is_empty());
}

// ---------------------------------------------------------------- PyTorch shape chain

/// `x.view(x.size(0), -1)` as PyTorch exports it: Shape -> Gather -> Unsqueeze ->
/// Concat -> Reshape, with Unsqueeze's axes an attribute (opset 11) or input (13).
fn pytorch_flatten(opset: i64) -> Vec<u8> {
    let unsqueeze = if opset >= 13 {
        node("Unsqueeze", &["n", "axes"], &["n1"], vec![])
    } else {
        node("Unsqueeze", &["n"], &["n1"], vec![attr_ints("axes", &[0])])
    };
    let mut inits = vec![
        tensor_i64("zero", &[], &[0]),
        tensor_i64("minus_one", &[1], &[-1]),
    ];
    if opset >= 13 {
        inits.push(tensor_i64("axes", &[1], &[0]));
    }
    let g = graph(
        vec![
            node("Shape", &["x"], &["s"], vec![]),
            node("Gather", &["s", "zero"], &["n"], vec![attr_int("axis", 0)]),
            unsqueeze,
            node(
                "Concat",
                &["n1", "minus_one"],
                &["shape"],
                vec![attr_int("axis", 0)],
            ),
            node("Reshape", &["x", "shape"], &["y"], vec![]),
        ],
        vec![input("x", &[-1, 3, 4])],
        vec![output("y")],
        inits,
    );
    model(g, opset)
}

#[test]
fn reshape_from_a_shape_gather_concat_unsqueeze_chain() {
    for opset in [11, 13] {
        let mut opts = ImportOptions::default();
        opts.input_shapes.insert("x".into(), vec![2, 3, 4]);
        let m = OnnxModel::from_bytes(pytorch_flatten(opset)).unwrap();
        let imported =
            import(&m, &opts).unwrap_or_else(|e| panic!("opset {opset}: import failed: {e}"));
        assert_eq!(imported.inputs().len(), 1);
        assert_eq!(
            imported.value_type(imported.outputs()[0].value).shape,
            vec![2, 12],
            "opset {opset}"
        );
        // The shape arithmetic is folded away: no Shape or Gather is left to run.
        for id in imported.node_ids() {
            let op = imported.node(id).op.name();
            assert!(
                !matches!(op, "shape" | "gather" | "concat"),
                "opset {opset}: {op} left"
            );
        }
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        let out = run_graph(&imported, &[f32_tensor(&[2, 3, 4], &data)]);
        assert_eq!(out[0].shape(), &[2, 12], "opset {opset}");
        assert_eq!(f32s(&out[0]), data, "opset {opset}");
    }
}

#[test]
fn reshape_chain_with_a_symbolic_batch_defaults_to_batch_one() {
    let imported = import_bytes(pytorch_flatten(13)).unwrap();
    assert_eq!(
        imported.value_type(imported.outputs()[0].value).shape,
        vec![1, 12]
    );
    let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let out = run_graph(&imported, &[f32_tensor(&[1, 3, 4], &data)]);
    assert_eq!(out[0].shape(), &[1, 12]);
    assert_eq!(f32s(&out[0]), data);
}
