//! cnnc: an ahead-of-time compiler for convolutional neural networks.
//!
//! An ONNX model ([`Model`]) is imported into a typed graph IR ([`ir`]) with static
//! shapes, optimized, and compiled by Cranelift, either into this process
//! ([`Compiler::compile`], a [`CompiledModel`] to run) or into an object file with a C
//! header ([`Compiler::write_object`]).
//!
//! ```
//! let model = cnnc::Model::load("examples/lenet/model.onnx")?;
//! let compiled = cnnc::Compiler::new().threads(2).compile(&model)?;
//! let image = cnnc::Tensor::from_vec(vec![1, 1, 28, 28], vec![0.5f32; 784])?;
//! let outputs = compiled.run(&[image])?;
//! assert_eq!(outputs[0].shape(), &[1, 10]);
//!
//! let dir = tempfile::tempdir().unwrap();
//! cnnc::Compiler::new()
//!     .target("aarch64-unknown-linux-gnu")?
//!     .write_object(&model, dir.path().join("lenet.o"))?; // and lenet.h, lenet.json
//! # Ok::<(), cnnc::Error>(())
//! ```

use std::path::{Path, PathBuf};

pub use cnnc_codegen::{ListingKind, ModelInfo, TensorInfo};
pub use cnnc_frontend::{ImportError, ImportOptions};
pub use cnnc_ir as ir;
pub use cnnc_ir::Tensor;
pub use cnnc_passes::{OptLevel, PassRecord};
pub use compiler::{CompiledModel, Compiler, ObjectFile};

/// The README's examples are tested too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod aot;
mod compiler;
pub mod inspect;
pub mod npy;
pub mod profile;
pub mod verify;

/// Everything that can go wrong, with the file and node it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be read or imported.
    #[error("{0}")]
    Import(#[from] ImportError),
    /// A graph could not be checked or evaluated.
    #[error("{0}")]
    Ir(#[from] ir::IrError),
    /// Code generation failed or the target cannot be used.
    #[error("{0}")]
    Codegen(#[from] cnnc_codegen::CodegenError),
    /// Reading or writing a file other than the model failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The caller asked for something inconsistent (wrong input count, bad option).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether the error is the input's fault (a bad model, file or request) rather
    /// than a defect in cnnc.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Ir(e) => e.is_unsupported(),
            Error::Codegen(e) => e.is_unsupported(),
            _ => true,
        }
    }

    /// Whether the cause is a feature cnnc does not implement.
    pub fn is_unsupported(&self) -> bool {
        match self {
            Error::Import(e) => e.is_unsupported(),
            Error::Ir(e) => e.is_unsupported(),
            Error::Codegen(e) => e.is_unsupported(),
            _ => false,
        }
    }
}

/// A decoded ONNX model.
pub struct Model {
    onnx: cnnc_frontend::OnnxModel,
}

impl Model {
    /// Reads (memory-maps) and decodes an ONNX file. Weights are not copied.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Model {
            onnx: cnnc_frontend::OnnxModel::open(path)?,
        })
    }

    /// Decodes a model held in memory (it cannot reference external data).
    pub fn from_bytes(bytes: impl Into<bytes::Bytes>) -> Result<Self, Error> {
        Ok(Model {
            onnx: cnnc_frontend::OnnxModel::from_bytes(bytes)?,
        })
    }

    /// Imports the model into the IR with static shapes.
    pub fn import(&self, options: &ImportOptions) -> Result<ir::Graph, Error> {
        Ok(cnnc_frontend::import(&self.onnx, options)?)
    }

    /// The graph inputs that must be bound as compile-time constants.
    pub fn compile_time_inputs(&self) -> Result<Vec<String>, Error> {
        Ok(cnnc_frontend::compile_time_inputs(&self.onnx)?)
    }

    /// Names of the graph inputs that are not initializers, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.onnx.input_names()
    }

    pub fn path(&self) -> Option<&Path> {
        self.onnx.path()
    }
}
