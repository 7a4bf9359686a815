use std::fmt;
use std::path::PathBuf;

use cnnc_ir::IrError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The model is malformed or inconsistent.
    Invalid,
    /// Valid ONNX outside what cnnc implements (an op, a data type, an attribute value).
    Unsupported,
}

/// An ONNX node, as named in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    pub name: String,
    pub op_type: String,
}

/// Why a model could not be imported: the file, the node and the problem.
#[derive(Debug, Clone)]
pub struct ImportError {
    pub kind: ErrorKind,
    pub file: Option<PathBuf>,
    pub node: Option<NodeRef>,
    pub message: String,
}

impl ImportError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    pub fn io(file: PathBuf, err: &std::io::Error) -> Self {
        let mut e = Self::new(ErrorKind::Io, err.to_string());
        e.file = Some(file);
        e
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ImportError {
            kind,
            file: None,
            node: None,
            message: message.into(),
        }
    }

    /// Locates the error at a node unless it already is.
    pub fn at_node(mut self, node: &NodeRef) -> Self {
        self.node.get_or_insert_with(|| node.clone());
        self
    }

    /// Names the file unless it already is.
    pub fn in_file(mut self, file: &std::path::Path) -> Self {
        self.file.get_or_insert_with(|| file.to_path_buf());
        self
    }

    /// The node and the problem, without the file.
    pub fn reason(&self) -> String {
        match &self.node {
            Some(n) => format!("node '{}' ({}): {}", n.name, n.op_type, self.message),
            None => self.message.clone(),
        }
    }

    pub fn is_unsupported(&self) -> bool {
        self.kind == ErrorKind::Unsupported
    }
}

impl From<IrError> for ImportError {
    /// IR errors raised while importing a node: the caller locates them at the ONNX
    /// node, so the IR's own node location is dropped.
    fn from(e: IrError) -> Self {
        let kind = if e.is_unsupported() {
            ErrorKind::Unsupported
        } else {
            ErrorKind::Invalid
        };
        let message = match e.root() {
            IrError::Unsupported(m) => m.clone(),
            other => other.to_string(),
        };
        ImportError::new(kind, message)
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(n) = &self.node {
            write!(f, "node '{}' ({}): ", n.name, n.op_type)?;
        }
        if self.kind == ErrorKind::Unsupported {
            f.write_str("unsupported: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ImportError {}

pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// `return Err(ImportError::invalid(format!(...)))`.
macro_rules! bail {
    ($($fmt:tt)+) => {
        return Err($crate::error::ImportError::invalid(format!($($fmt)+)))
    };
}

/// `return Err(ImportError::unsupported(format!(...)))`.
macro_rules! unsupported {
    ($($fmt:tt)+) => {
        return Err($crate::error::ImportError::unsupported(format!($($fmt)+)))
    };
}

pub(crate) use {bail, unsupported};
