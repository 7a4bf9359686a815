//! Tensor values: constants in the graph and the interpreter's data.
//!
//! Dense data is a shared, immutable [`Bytes`] buffer, so cloning a tensor never
//! copies it and a weight read from a memory-mapped model can stay in the map. The
//! buffer is always aligned for its element type, so typed views are free.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::types::{MAX_TENSOR_BYTES, checked_numel};
use crate::{DType, Element, IrError, Scalar, TensorType};

#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    storage: Storage,
}

#[derive(Clone)]
enum Storage {
    /// `numel * dtype.size()` little-endian bytes, aligned to `dtype.size()`.
    Dense(Bytes),
    /// Every element has this value (ConstantOfShape, zero padding): no buffer at all.
    Splat(Scalar),
}

/// Keeps a typed vector alive behind a `Bytes` handle, so its alignment is kept.
struct VecOwner<T>(Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for VecOwner<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// The bytes of `data` behind a `Bytes` handle, without copying them.
pub fn vec_bytes<T: bytemuck::Pod + Send>(data: Vec<T>) -> Bytes {
    Bytes::from_owner(VecOwner(data))
}

fn checked_len(dtype: DType, shape: &[usize]) -> Result<usize, IrError> {
    checked_numel(shape)
        .filter(|n| {
            n.checked_mul(dtype.size())
                .is_some_and(|b| b <= MAX_TENSOR_BYTES)
        })
        .ok_or_else(|| IrError::shape(format!("tensor {dtype}{shape:?} is too large")))
}

impl Tensor {
    /// A dense tensor owning `data`.
    pub fn from_vec<T: Element>(shape: Vec<usize>, data: Vec<T>) -> Result<Self, IrError> {
        let n = checked_len(T::DTYPE, &shape)?;
        if n != data.len() {
            return Err(IrError::shape(format!(
                "{} elements given for a tensor of shape {shape:?} ({n} elements)",
                data.len()
            )));
        }
        Ok(Tensor {
            dtype: T::DTYPE,
            shape,
            storage: Storage::Dense(vec_bytes(data)),
        })
    }

    /// A dense tensor over little-endian `bytes`. Shares the buffer when it is aligned
    /// for `dtype` (the usual case for memory-mapped weights); copies it once otherwise.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Bytes) -> Result<Self, IrError> {
        let n = checked_len(dtype, &shape)?;
        if bytes.len() != n * dtype.size() {
            return Err(IrError::shape(format!(
                "{} bytes given for a {dtype} tensor of shape {shape:?} ({} bytes)",
                bytes.len(),
                n * dtype.size()
            )));
        }
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(dtype.size());
        let bytes = match dtype {
            DType::Bool if bytes.iter().any(|&b| b > 1) => {
                vec_bytes(bytes.iter().map(|&b| (b != 0) as u8).collect())
            }
            _ if aligned => bytes,
            DType::F32 => copy_unaligned::<f32>(&bytes),
            DType::I64 => copy_unaligned::<i64>(&bytes),
            DType::I32 => copy_unaligned::<i32>(&bytes),
            DType::Bool => bytes,
        };
        Ok(Tensor {
            dtype,
            shape,
            storage: Storage::Dense(bytes),
        })
    }

    /// A tensor whose elements all equal `value`, stored as that one value.
    pub fn splat(shape: Vec<usize>, value: Scalar) -> Result<Self, IrError> {
        checked_len(value.dtype(), &shape)?;
        Ok(Tensor {
            dtype: value.dtype(),
            shape,
            storage: Storage::Splat(value),
        })
    }

    /// A rank-0 tensor.
    pub fn scalar(value: Scalar) -> Self {
        Tensor {
            dtype: value.dtype(),
            shape: Vec::new(),
            storage: Storage::Splat(value),
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape.clone())
    }

    /// The value of every element, when the tensor is stored as a splat.
    pub fn splat_value(&self) -> Option<Scalar> {
        match self.storage {
            Storage::Splat(v) => Some(v),
            Storage::Dense(_) => None,
        }
    }

    /// The dense bytes, when the tensor is not a splat.
    pub fn dense_bytes(&self) -> Option<&Bytes> {
        match &self.storage {
            Storage::Dense(b) => Some(b),
            Storage::Splat(_) => None,
        }
    }

    /// The same data under another shape with the same element count.
    pub fn reshape(&self, shape: Vec<usize>) -> Result<Self, IrError> {
        if checked_numel(&shape) != Some(self.numel()) {
            return Err(IrError::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                self.shape
            )));
        }
        Ok(Tensor {
            dtype: self.dtype,
            shape,
            storage: self.storage.clone(),
        })
    }

    /// The elements as `T`, borrowed when dense. Fails if `T` is not the element type.
    pub fn view<T: Element>(&self) -> Result<Cow<'_, [T]>, IrError> {
        if T::DTYPE != self.dtype {
            return Err(IrError::shape(format!(
                "expected a {} tensor, got {}",
                T::DTYPE,
                self.dtype
            )));
        }
        Ok(match &self.storage {
            Storage::Dense(b) => Cow::Borrowed(bytemuck::cast_slice(b)),
            Storage::Splat(v) => {
                let bytes = v.to_le_bytes();
                Cow::Owned(vec![
                    bytemuck::pod_read_unaligned::<T>(&bytes);
                    self.numel()
                ])
            }
        })
    }

    /// The elements of an integer tensor (i64 or i32) as i64: shape arithmetic.
    pub fn to_i64s(&self) -> Result<Vec<i64>, IrError> {
        match self.dtype {
            DType::I64 => Ok(self.view::<i64>()?.into_owned()),
            DType::I32 => Ok(self.view::<i32>()?.iter().map(|&v| v as i64).collect()),
            other => Err(IrError::shape(format!(
                "expected an integer tensor, got {other}"
            ))),
        }
    }

    /// The elements converted to f64 (any element type).
    pub fn to_f64s(&self) -> Vec<f64> {
        match self.dtype {
            DType::F32 => self.typed::<f32>().iter().map(|&v| v as f64).collect(),
            DType::I64 => self.typed::<i64>().iter().map(|&v| v as f64).collect(),
            DType::I32 => self.typed::<i32>().iter().map(|&v| v as f64).collect(),
            DType::Bool => self.typed::<u8>().iter().map(|&v| v as f64).collect(),
        }
    }

    /// Element `i` in row-major order.
    pub fn get(&self, i: usize) -> Option<Scalar> {
        if i >= self.numel() {
            return None;
        }
        Some(match (&self.storage, self.dtype) {
            (Storage::Splat(v), _) => *v,
            (Storage::Dense(_), DType::F32) => Scalar::F32(self.typed::<f32>()[i]),
            (Storage::Dense(_), DType::I64) => Scalar::I64(self.typed::<i64>()[i]),
            (Storage::Dense(_), DType::I32) => Scalar::I32(self.typed::<i32>()[i]),
            (Storage::Dense(_), DType::Bool) => Scalar::Bool(self.typed::<u8>()[i] != 0),
        })
    }

    /// Bit-exact equality of type and contents (NaNs with equal bits are equal).
    pub fn bitwise_eq(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype
            && self.shape == other.shape
            && (0..self.numel()).all(|i| {
                let (a, b) = (self.get(i), other.get(i));
                match (a, b) {
                    (Some(Scalar::F32(x)), Some(Scalar::F32(y))) => x.to_bits() == y.to_bits(),
                    _ => a == b,
                }
            })
    }

    fn typed<T: Element>(&self) -> Cow<'_, [T]> {
        self.view::<T>().expect("dtype checked by caller")
    }
}

fn copy_unaligned<T: Element>(bytes: &[u8]) -> Bytes {
    let data: Vec<T> = bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(bytemuck::pod_read_unaligned)
        .collect();
    vec_bytes(data)
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}", self.ty())?;
        match self.storage {
            Storage::Splat(v) => write!(f, " splat {v})"),
            Storage::Dense(_) if self.numel() <= 16 => {
                let vals: Vec<String> = (0..self.numel())
                    .map(|i| self.get(i).map(|v| v.to_string()).unwrap_or_default())
                    .collect();
                write!(f, " [{}])", vals.join(", "))
            }
            Storage::Dense(_) => f.write_str(" dense)"),
        }
    }
}

/// The transpose of the row-major `rows x cols` matrix `v` (`cols x rows`, row-major),
/// a 32 x 32 block at a time so that reads and writes both stay in cache: a 400 MB
/// fully connected layer transposes in a fraction of a second instead of seconds.
pub fn transpose_2d<T: Copy + Default>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    const B: usize = 32;
    debug_assert_eq!(v.len(), rows * cols);
    let mut t = vec![T::default(); rows * cols];
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    t[c * rows + r] = v[r * cols + c];
                }
            }
        }
    }
    t
}
