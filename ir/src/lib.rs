//! The typed graph IR of cnnc.
//!
//! A model is a [`Graph`]: a petgraph `StableGraph` whose nodes are [`Op`]s with typed
//! attributes and whose edges carry tensors. Every tensor has a static shape, an element
//! type and a layout ([`TensorType`]); constants are [`Tensor`]s sharing their bytes.
//! [`verify`] checks a graph, [`print`] writes its deterministic text form, and
//! [`interp`] is the reference interpreter: the oracle for every generated kernel.

#[cfg(target_endian = "big")]
compile_error!("cnnc stores tensors little-endian and supports little-endian hosts only");

mod dtype;
mod error;
mod graph;
pub mod infer;
pub mod interp;
pub mod op;
mod print;
mod tensor;
mod types;
mod verify;
pub mod window;
pub mod winograd;

pub use dtype::{DType, Element, Scalar};
pub use error::IrError;
pub use graph::{Edge, Graph, GraphOutput, Node, NodeId, Output, Value};
pub use op::Op;
pub use print::print;
pub use tensor::{Tensor, transpose_2d, vec_bytes};
pub use types::{Dims, Layout, MAX_TENSOR_BYTES, TensorType, checked_numel, strides_of};
pub use verify::verify;
