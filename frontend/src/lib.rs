//! ONNX import for cnnc.
//!
//! [`OnnxModel::open`] memory-maps and decodes a model; [`import`] turns it into an
//! IR graph with static types for every tensor. [`compile_time_inputs`] names the graph
//! inputs that the graph needs as compile-time constants (shapes, pads, scales fed as
//! inputs), and [`read_tensor_file`] reads ONNX test-data tensors.

mod attrs;
pub mod builder;
mod error;
mod import;
mod load;
mod ops;
pub mod proto;
mod static_inputs;
mod tensor;

pub use error::{ErrorKind, ImportError, NodeRef};
pub use import::{ImportOptions, import};
pub use load::{MAX_OPSET, MIN_OPSET, OnnxModel};
pub use static_inputs::compile_time_inputs;
pub use tensor::read_tensor_file;
