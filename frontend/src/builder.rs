//! Small constructors for ONNX messages, to write models from Rust (tests, examples,
//! generated benchmarks) without Python.
//!
//! ```
//! use cnnc_frontend::builder::*;
//! let g = graph(
//!     vec![node("Relu", &["x"], &["y"], vec![])],
//!     vec![input("x", &[1, 4])],
//!     vec![output("y")],
//!     vec![],
//! );
//! let bytes = model(g, 13);
//! let m = cnnc_frontend::OnnxModel::from_bytes(bytes).unwrap();
//! assert_eq!(m.input_names(), ["x"]);
//! ```

use bytes::Bytes;
use prost::Message;

use crate::proto::*;

/// A serialized model (IR version 8) importing `opset` of the default domain.
pub fn model(graph: GraphProto, opset: i64) -> Vec<u8> {
    model_proto(graph, opset).encode_to_vec()
}

pub fn model_proto(graph: GraphProto, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "cnnc-builder".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

pub fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        node: nodes,
        name: "g".into(),
        initializer: initializers,
        input: inputs,
        output: outputs,
        ..Default::default()
    }
}

pub fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: format!("{op}_{}", outputs.first().copied().unwrap_or("")),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

/// A float32 graph input; a negative dim is symbolic (`N`).
pub fn input(name: &str, dims: &[i64]) -> ValueInfoProto {
    typed_input(name, data_type::FLOAT, dims)
}

pub fn typed_input(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| {
            if d < 0 {
                Dimension {
                    dim_value: None,
                    dim_param: Some("N".into()),
                }
            } else {
                Dimension {
                    dim_value: Some(d),
                    dim_param: None,
                }
            }
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
            ..Default::default()
        }),
    }
}

/// A graph output without a declared type.
pub fn output(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: None,
    }
}

/// A float32 tensor stored as `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: Bytes::copy_from_slice(bytemuck::cast_slice(data)),
        ..Default::default()
    }
}

/// An int64 tensor stored in `int64_data`.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::INT64,
        name: name.into(),
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i: v,
        ..Default::default()
    }
}

pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f: v,
        ..Default::default()
    }
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INTS,
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOATS,
        floats: v.to_vec(),
        ..Default::default()
    }
}

pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::STRING,
        s: Bytes::copy_from_slice(v.as_bytes()),
        ..Default::default()
    }
}

pub fn attr_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::TENSOR,
        t: Some(t),
        ..Default::default()
    }
}
