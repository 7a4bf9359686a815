//! Bad models give errors that name the file, the node and the problem; never a panic.

use cnnc_frontend::builder::*;
use cnnc_frontend::proto::{ModelProto, TensorProto, data_type};
use cnnc_frontend::{ErrorKind, ImportError, ImportOptions, OnnxModel, import};
use prost::Message;

fn import_bytes(bytes: Vec<u8>) -> Result<cnnc_ir::Graph, ImportError> {
    import(&OnnxModel::from_bytes(bytes)?, &ImportOptions::default())
}

fn import_graph(g: cnnc_frontend::proto::GraphProto) -> Result<cnnc_ir::Graph, ImportError> {
    import_bytes(model(g, 13))
}

/// The error's node name and op type.
fn node_of(e: &ImportError) -> (String, String) {
    let n = e
        .node
        .as_ref()
        .unwrap_or_else(|| panic!("error does not name a node: {e}"));
    (n.name.clone(), n.op_type.clone())
}

fn relu_model() -> Vec<u8> {
    model(
        graph(
            vec![node("Relu", &["x"], &["y"], vec![])],
            vec![input("x", &[1, 3, 4, 4])],
            vec![output("y")],
            vec![],
        ),
        13,
    )
}

#[test]
fn empty_file_is_not_a_model() {
    let e = OnnxModel::from_bytes(Vec::<u8>::new())
        .err()
        .expect("error");
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("empty"), "{e}");
}

#[test]
fn text_file_is_not_a_model() {
    let e = OnnxModel::from_bytes(b"this is not a protobuf\n".to_vec())
        .err()
        .expect("error");
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("not"), "{e}");
}

#[test]
fn every_truncation_is_an_error_or_a_smaller_valid_model() {
    let bytes = relu_model();
    for len in 0..bytes.len() {
        // Must not panic; most prefixes fail to decode.
        let _ = import_bytes(bytes[..len].to_vec());
    }
    assert!(import_bytes(bytes).is_ok());
}

#[test]
fn truncated_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    let bytes = relu_model();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let e = OnnxModel::open(&path).err().expect("error");
    assert!(e.to_string().contains("broken.onnx"), "{e}");
}

#[test]
fn missing_file_is_an_io_error() {
    let e = OnnxModel::open("/nonexistent/model.onnx")
        .err()
        .expect("error");
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(e.to_string().contains("/nonexistent/model.onnx"), "{e}");
}

#[test]
fn missing_input_tensor_names_the_node() {
    let g = graph(
        vec![node("Add", &["x", "ghost"], &["y"], vec![])],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e), ("Add_y".into(), "Add".into()));
    assert!(e.message.contains("ghost"), "{e}");
}

#[test]
fn cycle_names_a_node_on_it() {
    let g = graph(
        vec![
            node("Add", &["x", "b"], &["a"], vec![]),
            node("Relu", &["a"], &["b"], vec![]),
        ],
        vec![input("x", &[2])],
        vec![output("b")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.message.contains("cycle"), "{e}");
    assert!(node_of(&e).0 == "Add_a" || node_of(&e).0 == "Relu_b", "{e}");
}

#[test]
fn graph_outputs_listed_twice() {
    let g = graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![input("x", &[2])],
        vec![output("y"), output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.message.contains("listed twice"), "{e}");
}

#[test]
fn tensor_defined_twice_names_the_node() {
    let g = graph(
        vec![
            node("Relu", &["x"], &["y"], vec![]),
            node("Neg", &["x"], &["y"], vec![]),
        ],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e).1, "Neg");
    assert!(e.message.contains("defined twice"), "{e}");
}

#[test]
fn output_without_producer() {
    let g = graph(
        vec![],
        vec![input("x", &[2])],
        vec![output("nothing")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.message.contains("nothing"), "{e}");
}

#[test]
fn unsupported_operator_names_the_node() {
    let g = graph(
        vec![node("NonMaxSuppression", &["x"], &["y"], vec![])],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.is_unsupported());
    assert_eq!(node_of(&e).1, "NonMaxSuppression");
    assert!(e.to_string().contains("operator NonMaxSuppression"), "{e}");
}

#[test]
fn unsupported_domain() {
    let mut n = node("Relu", &["x"], &["y"], vec![]);
    n.domain = "com.microsoft".into();
    let g = graph(vec![n], vec![input("x", &[2])], vec![output("y")], vec![]);
    let e = import_graph(g).unwrap_err();
    assert!(
        e.is_unsupported() && e.message.contains("com.microsoft"),
        "{e}"
    );
}

#[test]
fn unknown_attribute_is_unsupported() {
    let g = graph(
        vec![node(
            "Relu",
            &["x"],
            &["y"],
            vec![attr_int("frobnicate", 1)],
        )],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(
        e.is_unsupported() && e.message.contains("frobnicate"),
        "{e}"
    );
    assert_eq!(node_of(&e).1, "Relu");
}

#[test]
fn attribute_of_the_wrong_type() {
    let g = graph(
        vec![node(
            "LeakyRelu",
            &["x"],
            &["y"],
            vec![attr_int("alpha", 1)],
        )],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.message.contains("alpha"), "{e}");
    assert_eq!(node_of(&e).1, "LeakyRelu");
}

#[test]
fn unsupported_initializer_dtype_names_it() {
    let w = TensorProto {
        dims: vec![2],
        data_type: data_type::DOUBLE,
        name: "w".into(),
        double_data: vec![1.0, 2.0],
        ..Default::default()
    };
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![w],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.is_unsupported());
    assert!(
        e.message.contains("'w'") && e.message.contains("float64"),
        "{e}"
    );
}

#[test]
fn unsupported_input_dtype_names_it() {
    let g = graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![typed_input("x", data_type::FLOAT16, &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(
        e.is_unsupported() && e.message.contains("'x'") && e.message.contains("float16"),
        "{e}"
    );
}

#[test]
fn shape_mismatch_names_the_node() {
    let w = tensor_f32("w", &[8, 5, 3, 3], &vec![0.0; 8 * 5 * 9]);
    let g = graph(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[1, 3, 8, 8])],
        vec![output("y")],
        vec![w],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e), ("Conv_y".into(), "Conv".into()));
    assert!(e.message.contains("input channels"), "{e}");
}

#[test]
fn kernel_larger_than_input() {
    let w = tensor_f32("w", &[1, 1, 5, 5], &[0.0; 25]);
    let g = graph(
        vec![node("Conv", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[1, 1, 3, 3])],
        vec![output("y")],
        vec![w],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e).1, "Conv");
    assert!(e.message.contains("larger than the padded input"), "{e}");
}

#[test]
fn overflowing_constant_of_shape() {
    let shape = tensor_i64("s", &[3], &[1 << 30, 1 << 30, 1 << 30]);
    let g = graph(
        vec![node("ConstantOfShape", &["s"], &["y"], vec![])],
        vec![],
        vec![output("y")],
        vec![shape],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e).1, "ConstantOfShape");
    assert!(e.message.contains("too large"), "{e}");
}

#[test]
fn overflowing_tile() {
    let reps = tensor_i64("r", &[2], &[i64::MAX / 2, 4]);
    let g = graph(
        vec![node("Tile", &["x", "r"], &["y"], vec![])],
        vec![input("x", &[4, 4])],
        vec![output("y")],
        vec![reps],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e).1, "Tile");
}

#[test]
fn overflowing_initializer_dims() {
    let t = TensorProto {
        dims: vec![i64::MAX, 4],
        data_type: data_type::FLOAT,
        name: "w".into(),
        ..Default::default()
    };
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![t],
    );
    let e = import_graph(g).unwrap_err();
    assert!(
        e.message.contains("'w'") && e.message.contains("too large"),
        "{e}"
    );
}

#[test]
fn initializer_with_too_little_data() {
    let mut t = tensor_f32("w", &[4], &[1.0, 2.0, 3.0, 4.0]);
    t.raw_data = t.raw_data.slice(0..12);
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![input("x", &[4])],
        vec![output("y")],
        vec![t],
    );
    let e = import_graph(g).unwrap_err();
    assert!(
        e.message.contains("'w'") && e.message.contains("bytes"),
        "{e}"
    );
}

#[test]
fn reshape_to_wrong_element_count() {
    let shape = tensor_i64("s", &[2], &[3, 3]);
    let g = graph(
        vec![node("Reshape", &["x", "s"], &["y"], vec![])],
        vec![input("x", &[2, 4])],
        vec![output("y")],
        vec![shape],
    );
    let e = import_graph(g).unwrap_err();
    assert_eq!(node_of(&e).1, "Reshape");
}

#[test]
fn shape_from_runtime_data_is_unsupported() {
    let g = graph(
        vec![
            node("Relu", &["s"], &["s2"], vec![]),
            node("Reshape", &["x", "s2"], &["y"], vec![]),
        ],
        vec![input("x", &[2, 4]), input("s", &[2])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g).unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    assert_eq!(node_of(&e).1, "Reshape");
    assert!(
        e.message.contains("compile time") || e.message.contains("run-time"),
        "{e}"
    );
}

#[test]
fn symbolic_batch_defaults_to_one_other_symbols_need_a_shape() {
    let g = graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![input("x", &[-1, 3])],
        vec![output("y")],
        vec![],
    );
    let imported = import_graph(g).unwrap();
    assert_eq!(
        imported.value_type(imported.outputs()[0].value).shape,
        vec![1, 3]
    );

    let g = graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![input("x", &[1, -1])],
        vec![output("y")],
        vec![],
    );
    let e = import_graph(g.clone()).unwrap_err();
    assert!(
        e.message.contains("'x'") && e.message.contains("--input-shape"),
        "{e}"
    );

    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![1, 7]);
    let imported = import(&OnnxModel::from_bytes(model(g, 13)).unwrap(), &opts).unwrap();
    assert_eq!(
        imported.value_type(imported.outputs()[0].value).shape,
        vec![1, 7]
    );
}

#[test]
fn input_shape_for_an_unknown_input() {
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("nope".into(), vec![1]);
    let e = import(&OnnxModel::from_bytes(relu_model()).unwrap(), &opts).unwrap_err();
    assert!(e.message.contains("'nope'"), "{e}");
}

#[test]
fn given_shape_must_agree_with_fixed_dims() {
    let mut opts = ImportOptions::default();
    opts.input_shapes.insert("x".into(), vec![1, 3, 5, 5]);
    let e = import(&OnnxModel::from_bytes(relu_model()).unwrap(), &opts).unwrap_err();
    assert!(e.message.contains("'x'"), "{e}");
}

#[test]
fn opset_out_of_range() {
    let g = graph(vec![], vec![input("x", &[1])], vec![output("x")], vec![]);
    let e = import_bytes(model(g, 3)).unwrap_err();
    assert!(e.is_unsupported() && e.message.contains("opset 3"), "{e}");
}

#[test]
fn error_from_a_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.onnx");
    let g = graph(
        vec![node("Frob", &["x"], &["y"], vec![])],
        vec![input("x", &[2])],
        vec![output("y")],
        vec![],
    );
    std::fs::write(&path, model(g, 13)).unwrap();
    let e = import(&OnnxModel::open(&path).unwrap(), &ImportOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("bad.onnx") && text.contains("node 'Frob_y' (Frob)"),
        "{text}"
    );
}

/// Random byte flips and truncations of a real model: each either imports or fails
/// with an error, and none panics.
#[test]
fn mutated_models_never_panic() {
    let w = tensor_f32("w", &[4, 3, 3, 3], &[0.5; 108]);
    let shape = tensor_i64("s", &[2], &[1, -1]);
    let g = graph(
        vec![
            node(
                "Conv",
                &["x", "w"],
                &["c"],
                vec![attr_ints("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", &["c"], &["r"], vec![]),
            node(
                "MaxPool",
                &["r"],
                &["p"],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("strides", &[2, 2]),
                ],
            ),
            node("Reshape", &["p", "s"], &["y"], vec![]),
        ],
        vec![input("x", &[1, 3, 8, 8])],
        vec![output("y")],
        vec![w, shape],
    );
    let original = model(g, 13);
    assert!(import_bytes(original.clone()).is_ok());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            bytes[i] = next() as u8;
        }
        if next() % 4 == 0 {
            bytes.truncate((next() as usize) % bytes.len());
        }
        let Ok(m) = OnnxModel::from_bytes(bytes) else {
            continue;
        };
        let Ok(g) = import(&m, &ImportOptions::default()) else {
            continue;
        };
        // A model that imports must also run.
        let inputs: Vec<_> = g
            .inputs()
            .iter()
            .map(|&id| {
                let ty = &g.node(id).outputs[0].ty;
                cnnc_ir::Tensor::splat(ty.shape.clone(), cnnc_ir::Scalar::F32(0.25)).unwrap()
            })
            .collect();
        let _ = cnnc_ir::interp::run(&g, &inputs);
    }
}

#[test]
fn decoded_proto_round_trips() {
    let bytes = relu_model();
    let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded.encode_to_vec(), bytes);
}
