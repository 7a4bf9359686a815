//! `.npy` files for `cnnc run`: float32 tensors in, tensors of any element type out.

use std::io::BufWriter;
use std::path::Path;

use npyz::WriterBuilder;

use crate::Error;
use crate::ir::{DType, Tensor};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a C-ordered float32 `.npy` file (float64 is converted).
pub fn read(path: &Path) -> Result<Tensor, Error> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |why: String| Error::Usage(format!("{}: {why}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    if npy.order() != npyz::Order::C {
        return Err(bad(
            "Fortran-ordered arrays are not supported; save with C order".into(),
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let type_str = npy.dtype().descr();
    let data: Vec<f32> = match type_str.as_str() {
        "'<f4'" => npy.into_vec::<f32>().map_err(|e| bad(e.to_string()))?,
        "'<f8'" => npy
            .into_vec::<f64>()
            .map_err(|e| bad(e.to_string()))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => return Err(bad(format!("element type {other} is not float32"))),
    };
    Ok(Tensor::from_vec(shape, data)?)
}

/// Writes a tensor as `.npy` with its own element type.
pub fn write(path: &Path, t: &Tensor) -> Result<(), Error> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let result = match t.dtype() {
        DType::F32 => write_typed(path, &shape, t.view::<f32>()?.iter().copied()),
        DType::I64 => write_typed(path, &shape, t.view::<i64>()?.iter().copied()),
        DType::I32 => write_typed(path, &shape, t.view::<i32>()?.iter().copied()),
        DType::Bool => write_typed(path, &shape, t.view::<u8>()?.iter().map(|&b| b != 0)),
    };
    result.map_err(io(path))
}

fn write_typed<T: npyz::Serialize + npyz::AutoSerialize>(
    path: &Path,
    shape: &[u64],
    data: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(file)
        .begin_nd()?;
    w.extend(data)?;
    w.finish()
}
