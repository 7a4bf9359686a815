use thiserror::Error;

/// Errors from building, checking or evaluating a graph.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IrError {
    /// Input types an op cannot accept, or attributes that contradict them.
    #[error("{0}")]
    Shape(String),
    /// Valid ONNX that cnnc does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A value-dependent failure while evaluating (index out of range, division by zero).
    #[error("{0}")]
    Eval(String),
    /// A broken graph invariant found by `verify` or a graph edit.
    #[error("invalid graph: {0}")]
    Invalid(String),
    /// Any of the above, located at a node.
    #[error("node '{name}' ({op}): {source}")]
    Node {
        name: String,
        op: String,
        source: Box<IrError>,
    },
}

impl IrError {
    pub fn shape(msg: impl Into<String>) -> Self {
        IrError::Shape(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        IrError::Unsupported(msg.into())
    }
    pub fn eval(msg: impl Into<String>) -> Self {
        IrError::Eval(msg.into())
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        IrError::Invalid(msg.into())
    }

    /// Attaches the node this error happened at (once: an error already located keeps
    /// its innermost node).
    pub fn at(self, name: &str, op: &str) -> Self {
        match self {
            IrError::Node { .. } => self,
            other => IrError::Node {
                name: name.to_string(),
                op: op.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// The error without its node location.
    pub fn root(&self) -> &IrError {
        match self {
            IrError::Node { source, .. } => source.root(),
            other => other,
        }
    }

    pub fn is_unsupported(&self) -> bool {
        matches!(self.root(), IrError::Unsupported(_))
    }
}

/// `Err(IrError::Shape(format!(...)))` unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::IrError::Shape(format!($($fmt)+)));
        }
    };
}
