//! Which graph inputs a model needs fixed at compile time.
//!
//! cnnc compiles static shapes: an operand that decides a shape or an attribute (the
//! target of Reshape, the scales of Resize, the bounds of Slice, ...) must be known when
//! compiling. When such an operand traces back to a graph input (as in the ONNX node
//! tests, where `shape` or `pads` are inputs), that input has to be bound as a constant.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::load::OnnxModel;
use crate::proto::data_type;

/// Operand positions that must be known at compile time, per operator.
fn static_slots(op_type: &str) -> &'static [usize] {
    match op_type {
        "Reshape" | "Expand" | "Tile" | "Upsample" | "Squeeze" | "Unsqueeze" | "Split"
        | "ReduceSum" | "ReduceMean" => &[1],
        "ConstantOfShape" => &[0],
        "Range" => &[0, 1, 2],
        "Slice" => &[1, 2, 3, 4],
        "Pad" | "Resize" => &[1, 2, 3],
        "Clip" | "Dropout" => &[1, 2],
        _ => &[],
    }
}

/// Names of the graph inputs (in graph order) that must be bound as compile-time
/// constants: every input that is not float32, and every input a static operand
/// depends on.
pub fn compile_time_inputs(model: &OnnxModel) -> Result<Vec<String>> {
    let g = model.proto.graph.as_ref().expect("checked when decoding");
    let initializers: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut producer = HashMap::new();
    for node in &g.node {
        for out in &node.output {
            producer.insert(out.as_str(), node);
        }
    }
    let mut needed: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = Vec::new();
    for node in &g.node {
        for &slot in static_slots(&node.op_type) {
            if let Some(name) = node.input.get(slot).filter(|n| !n.is_empty()) {
                stack.push(name);
            }
        }
    }
    while let Some(name) = stack.pop() {
        if !needed.insert(name) {
            continue;
        }
        if let Some(node) = producer.get(name) {
            // Shape reads only its input's static type.
            if node.op_type != "Shape" {
                stack.extend(
                    node.input
                        .iter()
                        .filter(|n| !n.is_empty())
                        .map(String::as_str),
                );
            }
        }
    }
    Ok(g.input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .filter(|i| {
            let elem = i
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .map(|t| t.elem_type);
            needed.contains(i.name.as_str()) || elem.is_some_and(|e| e != data_type::FLOAT)
        })
        .map(|i| i.name.clone())
        .collect())
}
