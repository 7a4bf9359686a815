//! Element types.
//!
//! Only `F32` flows through generated kernels. The integer and boolean types exist
//! for shape arithmetic (folded at compile time) and for comparison results.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    I64,
    I32,
    /// One byte per element, 0 or 1.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DType::I64 | DType::I32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be the element of a dense tensor. `u8` stands for `Bool`.
pub trait Element:
    bytemuck::Pod + Default + PartialEq + PartialOrd + fmt::Debug + Send + Sync + 'static
{
    const DTYPE: DType;
    fn to_scalar(self) -> Scalar;
    /// Converts like numpy's `astype` from float64 (truncating for integers).
    fn from_f64(v: f64) -> Self;
}

impl Element for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    const DTYPE: DType = DType::F32;
    fn to_scalar(self) -> Scalar {
        Scalar::F32(self)
    }
}
impl Element for i64 {
    fn from_f64(v: f64) -> Self {
        v as i64
    }
    const DTYPE: DType = DType::I64;
    fn to_scalar(self) -> Scalar {
        Scalar::I64(self)
    }
}
impl Element for i32 {
    fn from_f64(v: f64) -> Self {
        v as i32
    }
    const DTYPE: DType = DType::I32;
    fn to_scalar(self) -> Scalar {
        Scalar::I32(self)
    }
}
impl Element for u8 {
    fn from_f64(v: f64) -> Self {
        (v != 0.0) as u8
    }
    const DTYPE: DType = DType::Bool;
    fn to_scalar(self) -> Scalar {
        Scalar::Bool(self != 0)
    }
}

/// One value of any element type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    F32(f32),
    I64(i64),
    I32(i32),
    Bool(bool),
}

impl Scalar {
    pub fn dtype(self) -> DType {
        match self {
            Scalar::F32(_) => DType::F32,
            Scalar::I64(_) => DType::I64,
            Scalar::I32(_) => DType::I32,
            Scalar::Bool(_) => DType::Bool,
        }
    }

    /// The value as f64 (exact for every f32, i32 and bool; i64 beyond 2^53 rounds).
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::F32(v) => v as f64,
            Scalar::I64(v) => v as f64,
            Scalar::I32(v) => v as f64,
            Scalar::Bool(v) => v as u8 as f64,
        }
    }

    /// Little-endian bytes of the value, `dtype().size()` long.
    pub(crate) fn to_le_bytes(self) -> Vec<u8> {
        match self {
            Scalar::F32(v) => v.to_le_bytes().to_vec(),
            Scalar::I64(v) => v.to_le_bytes().to_vec(),
            Scalar::I32(v) => v.to_le_bytes().to_vec(),
            Scalar::Bool(v) => vec![v as u8],
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::F32(v) => write!(f, "{v:?}"),
            Scalar::I64(v) => write!(f, "{v}"),
            Scalar::I32(v) => write!(f, "{v}"),
            Scalar::Bool(v) => write!(f, "{v}"),
        }
    }
}
