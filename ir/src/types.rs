//! Tensor types: element type, static shape and memory layout.

use std::fmt;

use crate::{DType, IrError};

/// The largest tensor, in bytes, that the IR accepts. Keeping every size below
/// `isize::MAX` lets later stages compute byte offsets without overflow checks.
pub const MAX_TENSOR_BYTES: usize = isize::MAX as usize / 2;

/// How a tensor's elements are arranged in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Dense row-major in logical axis order (NCHW for images): the ONNX layout.
    Plain,
    /// Channels (axis 1) split into blocks of `block` lanes that are stored innermost:
    /// `N, C/block, spatial..., block` (NCHWc). The channel count is padded up to a
    /// multiple of `block`.
    Blocked { block: u32 },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub layout: Layout,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<usize>) -> Self {
        TensorType {
            dtype,
            shape,
            layout: Layout::Plain,
        }
    }

    pub fn f32(shape: Vec<usize>) -> Self {
        Self::new(DType::F32, shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements. Types in a graph are validated by [`TensorType::check_size`],
    /// so this cannot overflow for them.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes the tensor occupies in its layout.
    pub fn byte_size(&self) -> usize {
        let elems = match self.layout {
            Layout::Plain => self.numel(),
            Layout::Blocked { block } => {
                let block = block as usize;
                let c = self.shape.get(1).copied().unwrap_or(1);
                self.numel() / c.max(1) * c.div_ceil(block) * block
            }
        };
        elems * self.dtype.size()
    }

    /// Rejects shapes whose byte size overflows or exceeds [`MAX_TENSOR_BYTES`].
    pub fn check_size(&self) -> Result<(), IrError> {
        let bytes = checked_numel(&self.shape)
            .and_then(|n| n.checked_mul(self.dtype.size()))
            .filter(|&b| b <= MAX_TENSOR_BYTES);
        match bytes {
            Some(_) => Ok(()),
            None => Err(IrError::shape(format!("tensor {self} is too large"))),
        }
    }
}

/// Product of the dimensions, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Row-major strides (in elements) of a dense tensor of this shape.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Writes `[a,b,c]`.
pub struct Dims<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for Dims<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, Dims(&self.shape))?;
        match self.layout {
            Layout::Plain => Ok(()),
            Layout::Blocked { block } => write!(f, "@c{block}"),
        }
    }
}
