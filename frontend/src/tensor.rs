//! `TensorProto` to IR tensors, for every encoding ONNX allows: `raw_data`, the typed
//! repeated fields, and external data files.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use cnnc_ir::{DType, Tensor, checked_numel};
use prost::Message;

use crate::error::{ImportError, Result, bail, unsupported};
use crate::proto::{DATA_LOCATION_EXTERNAL, TensorProto, data_type};

/// The IR element type of an ONNX data type, or why it is not supported.
pub fn dtype_of(t: i32) -> Result<DType> {
    match t {
        data_type::FLOAT => Ok(DType::F32),
        data_type::INT64 => Ok(DType::I64),
        data_type::INT32 => Ok(DType::I32),
        data_type::BOOL => Ok(DType::Bool),
        0 => bail!("tensor has no data type"),
        other => unsupported!(
            "{} tensors (cnnc computes in float32; int64, int32 and bool are accepted for shape arithmetic)",
            data_type::name(other)
        ),
    }
}

/// Resolves external-data locations against the model's folder, mapping each file once.
pub struct ExternalData {
    dir: Option<PathBuf>,
    files: HashMap<PathBuf, Bytes>,
}

impl ExternalData {
    pub fn new(dir: Option<&Path>) -> Self {
        ExternalData {
            dir: dir.map(Path::to_path_buf),
            files: HashMap::new(),
        }
    }

    fn read(&mut self, t: &TensorProto) -> Result<Bytes> {
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        let Some(location) = entry("location") else {
            bail!("external data without a location");
        };
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        ImportError::invalid(format!("external data {key} '{v}' is not a size"))
                    })
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        let Some(dir) = &self.dir else {
            bail!(
                "external data '{location}' needs the model's folder (load the model from a file)"
            );
        };
        let rel = Path::new(location);
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("external data location '{location}' must be a path inside the model's folder");
        }
        let path = dir.join(rel);
        // Also refuse symlinks that lead out of the folder.
        let real = path
            .canonicalize()
            .map_err(|e| ImportError::io(path.clone(), &e))?;
        let real_dir = dir
            .canonicalize()
            .map_err(|e| ImportError::io(dir.clone(), &e))?;
        if !real.starts_with(&real_dir) {
            bail!("external data location '{location}' leads outside the model's folder");
        }
        let file = match self.files.get(&real) {
            Some(b) => b.clone(),
            None => {
                let b = crate::load::map_file(&real)?;
                self.files.insert(real.clone(), b.clone());
                b
            }
        };
        let end = match length {
            Some(len) => offset.checked_add(len),
            None => Some(file.len()),
        };
        match end {
            Some(end) if offset <= end && end <= file.len() => Ok(file.slice(offset..end)),
            _ => bail!(
                "external data '{location}' (offset {offset}, length {length:?}) lies beyond the end of the file ({} bytes)",
                file.len()
            ),
        }
    }
}

/// Converts a `TensorProto`. `raw_data` and external data are shared, not copied.
pub fn tensor_from_proto(t: &TensorProto, external: &mut ExternalData) -> Result<Tensor> {
    let dtype = dtype_of(t.data_type)?;
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| ImportError::invalid(format!("negative dimension {d}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(numel) = checked_numel(&shape) else {
        bail!("tensor of shape {shape:?} is too large");
    };
    if t.segment.is_some() {
        unsupported!("segmented tensors");
    }
    let typed_len = match dtype {
        DType::F32 => t.float_data.len(),
        DType::I64 => t.int64_data.len(),
        DType::I32 | DType::Bool => t.int32_data.len(),
    };
    let bytes = if t.data_location == DATA_LOCATION_EXTERNAL {
        external.read(t)?
    } else if !t.raw_data.is_empty() || typed_len == 0 {
        t.raw_data.clone()
    } else {
        if typed_len != numel {
            bail!("tensor of shape {shape:?} has {typed_len} values, expected {numel}");
        }
        let tensor = match dtype {
            DType::F32 => Tensor::from_vec(shape, t.float_data.clone()),
            DType::I64 => Tensor::from_vec(shape, t.int64_data.clone()),
            DType::I32 => Tensor::from_vec(shape, t.int32_data.clone()),
            DType::Bool => Tensor::from_vec(
                shape,
                t.int32_data.iter().map(|&v| (v != 0) as u8).collect(),
            ),
        };
        return Ok(tensor?);
    };
    if bytes.len() != numel * dtype.size() {
        bail!(
            "tensor of shape {shape:?} ({dtype}) needs {} bytes of data, has {}",
            numel * dtype.size(),
            bytes.len()
        );
    }
    Ok(Tensor::from_bytes(dtype, shape, bytes)?)
}

/// Reads a serialized `TensorProto` file, as in ONNX test-data folders
/// (`test_data_set_0/input_0.pb`). Returns the tensor and its name.
pub fn read_tensor_file(path: &Path) -> Result<(String, Tensor)> {
    let bytes = crate::load::map_file(path)?;
    let proto = TensorProto::decode(bytes)
        .map_err(|e| ImportError::invalid(format!("not a TensorProto: {e}")).in_file(path))?;
    let mut external = ExternalData::new(path.parent());
    let tensor = tensor_from_proto(&proto, &mut external).map_err(|e| e.in_file(path))?;
    Ok((proto.name, tensor))
}
