//! Code generation for cnnc with Cranelift.
//!
//! A graph (constant-folded, so only float32 and boolean data flow at run time) is
//! lowered to one kernel per node, each specialized for its shapes, plus an entry
//! function that runs them over one workspace arena ([`program`]). The result is
//! loaded in memory ([`compile_jit`]) or written as a relocatable object with a C
//! header ([`compile_object`], [`header`]).

mod bands;
mod compile;
mod const_memory;
mod emit;
pub mod header;
mod jit;
mod kernels;
mod math;
mod object;
pub mod peak;
mod placement;
mod program;
pub mod target;

use cranelift_module::ModuleError;

pub use jit::compile_jit;
pub use kernels::microkernel;
pub use object::{ObjectCode, WriteError, compile_object};
pub use program::{ModelInfo, TensorInfo};

/// What `--emit` asks for besides the code itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingKind {
    /// Cranelift IR of every function, before optimization.
    Clif,
    /// Disassembly of every function.
    Asm,
}

/// Text collected while compiling.
#[derive(Clone, Debug)]
pub struct Listing {
    pub kind: ListingKind,
    pub text: String,
}

impl Listing {
    pub fn new(kind: ListingKind) -> Self {
        Listing {
            kind,
            text: String::new(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CodegenError {
    /// The target or CPU cannot be used.
    #[error("{0}")]
    Target(String),
    /// A graph feature the code generator does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A graph that cannot be compiled as given.
    #[error("{0}")]
    Invalid(String),
    /// Cranelift refused the generated code: a bug in cnnc.
    #[error("code generation failed: {0}")]
    Cranelift(String),
    /// A broken assumption inside cnnc.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Ir(#[from] cnnc_ir::IrError),
    #[error("node '{name}' ({op}): {source}")]
    Node {
        name: String,
        op: String,
        source: Box<CodegenError>,
    },
}

impl CodegenError {
    /// Locates the error at a node (once).
    pub fn at(self, name: &str, op: &str) -> Self {
        match self {
            CodegenError::Node { .. } => self,
            other => CodegenError::Node {
                name: name.into(),
                op: op.into(),
                source: Box::new(other),
            },
        }
    }

    /// Whether the cause is an unimplemented feature rather than a defect.
    pub fn is_unsupported(&self) -> bool {
        match self {
            CodegenError::Unsupported(_) | CodegenError::Target(_) => true,
            CodegenError::Ir(e) => e.is_unsupported(),
            CodegenError::Node { source, .. } => source.is_unsupported(),
            _ => false,
        }
    }
}

impl From<ModuleError> for CodegenError {
    fn from(e: ModuleError) -> Self {
        CodegenError::Cranelift(format!("{e:?}"))
    }
}
