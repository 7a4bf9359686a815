//! cnnc: an ahead-of-time compiler for convolutional neural networks.
//!
//! An ONNX model is imported into a typed graph IR ([`ir`]) with static shapes; the
//! reference interpreter runs it, and the conformance runner ([`verify`]) checks it
//! against ONNX test data.
//!
//! ```no_run
//! let model = cnnc::Model::load("model.onnx")?;
//! let graph = model.import(&cnnc::ImportOptions::default())?;
//! print!("{}", cnnc::ir::print(&graph));
//! # Ok::<(), cnnc::Error>(())
//! ```

use std::path::{Path, PathBuf};

pub use cnnc_frontend::{ImportError, ImportOptions};
pub use cnnc_ir as ir;

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
        !matches!(self, Error::Ir(_))
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
