//! Tensor values: constants in the graph and the interpreter's data.
//!
//! Dense data is a shared, immutable [`Bytes`] buffer, so cloning a tensor never
//! copies it and a weight read from a memory-mapped model stays in the map, wherever
//! the file put it: typed views are free where the buffer is aligned for its element
//! type, and copies where it is not (`raw_data` in a protobuf starts at any byte).
//! Code that only moves bytes, like laying out a model's constant data, reads
//! [`Tensor::le_bytes`] and copies nothing.

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
    /// `numel * dtype.size()` little-endian bytes.
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

    /// A dense tensor over little-endian `bytes`, sharing the buffer.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, bytes: Bytes) -> Result<Self, IrError> {
        let n = checked_len(dtype, &shape)?;
        if bytes.len() != n * dtype.size() {
            return Err(IrError::shape(format!(
                "{} bytes given for a {dtype} tensor of shape {shape:?} ({} bytes)",
                bytes.len(),
                n * dtype.size()
            )));
        }
        let bytes = match dtype {
            DType::Bool if bytes.iter().any(|&b| b > 1) => {
                vec_bytes(bytes.iter().map(|&b| (b != 0) as u8).collect())
            }
            _ => bytes,
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

    /// The little-endian bytes of the elements: a dense tensor's own, wherever they
    /// are (in a model file, at any alignment), a splat's written out.
    pub fn le_bytes(&self) -> Cow<'_, [u8]> {
        match &self.storage {
            Storage::Dense(b) => Cow::Borrowed(b),
            Storage::Splat(v) => Cow::Owned(v.to_le_bytes().repeat(self.numel())),
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

    /// The elements as `T`, borrowed when dense and aligned for `T`, else copied. Fails
    /// if `T` is not the element type.
    pub fn view<T: Element>(&self) -> Result<Cow<'_, [T]>, IrError> {
        if T::DTYPE != self.dtype {
            return Err(IrError::shape(format!(
                "expected a {} tensor, got {}",
                T::DTYPE,
                self.dtype
            )));
        }
        Ok(match &self.storage {
            Storage::Dense(b) => match bytemuck::try_cast_slice(b) {
                Ok(typed) => Cow::Borrowed(typed),
                Err(_) => Cow::Owned(
                    b.chunks_exact(std::mem::size_of::<T>())
                        .map(bytemuck::pod_read_unaligned)
                        .collect(),
                ),
            },
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
        let b = match &self.storage {
            Storage::Splat(v) => return Some(*v),
            Storage::Dense(b) => b,
        };
        let size = self.dtype.size();
        let at = &b[i * size..(i + 1) * size];
        Some(match self.dtype {
            DType::F32 => Scalar::F32(bytemuck::pod_read_unaligned(at)),
            DType::I64 => Scalar::I64(bytemuck::pod_read_unaligned(at)),
            DType::I32 => Scalar::I32(bytemuck::pod_read_unaligned(at)),
            DType::Bool => Scalar::Bool(at[0] != 0),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of `values` starting one byte into a buffer: misaligned for any element.
    fn misaligned(values: &[u8]) -> Bytes {
        let mut buf = vec![0u8];
        buf.extend_from_slice(values);
        let b = Bytes::from(buf).slice(1..);
        assert!(!(b.as_ptr() as usize).is_multiple_of(4), "not misaligned");
        b
    }

    #[test]
    fn misaligned_data_is_shared_and_read_right() {
        let floats = [1.5f32, -2.0, 3.25];
        let raw = misaligned(bytemuck::cast_slice(&floats));
        let t = Tensor::from_bytes(DType::F32, vec![3], raw.clone()).unwrap();
        assert_eq!(t.dense_bytes().unwrap().as_ptr(), raw.as_ptr(), "copied");
        assert_eq!(&t.view::<f32>().unwrap()[..], &floats);
        assert_eq!(t.get(2), Some(Scalar::F32(3.25)));
        assert!(t.bitwise_eq(&Tensor::from_vec(vec![3], floats.to_vec()).unwrap()));
        let longs = [7i64, -1 << 40];
        let t = Tensor::from_bytes(
            DType::I64,
            vec![2],
            misaligned(bytemuck::cast_slice(&longs)),
        );
        assert_eq!(t.unwrap().to_i64s().unwrap(), longs);
    }
}
