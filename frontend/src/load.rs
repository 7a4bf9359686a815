//! Reading ONNX files: the model is memory-mapped and decoded in place, so a weight
//! stored as `raw_data` stays in the mapped file until something needs it.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use memmap2::MmapOptions;
use prost::Message;

use crate::error::{ImportError, Result, bail};
use crate::proto::{ModelProto, OperatorSetIdProto};

/// The opsets of the default domain that cnnc imports.
pub const MIN_OPSET: i64 = 6;
pub const MAX_OPSET: i64 = 28;

/// A decoded ONNX model, not yet imported.
pub struct OnnxModel {
    pub(crate) proto: ModelProto,
    path: Option<PathBuf>,
    /// Folder that external-data locations are relative to.
    dir: Option<PathBuf>,
}

/// Maps a whole file. Empty files cannot be mapped and are returned as empty buffers.
pub(crate) fn map_file(path: &Path) -> Result<Bytes> {
    let file = File::open(path).map_err(|e| ImportError::io(path.to_path_buf(), &e))?;
    let len = file
        .metadata()
        .map_err(|e| ImportError::io(path.to_path_buf(), &e))?
        .len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // Populated: the file is read here, not by whichever later step first touches a
    // weight (compile time would otherwise include reading a cold file).
    // SAFETY: the map is read-only. Like every reader of memory-mapped files we rely on
    // the file not being truncated while the model is in use.
    let map = unsafe { MmapOptions::new().populate().map(&file) }
        .map_err(|e| ImportError::io(path.to_path_buf(), &e))?;
    Ok(Bytes::from_owner(map))
}

impl OnnxModel {
    /// Maps and decodes the model at `path`. External data is looked up beside it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = map_file(path)?;
        let dir = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        });
        let mut model = Self::decode(bytes).map_err(|e| e.in_file(path))?;
        model.path = Some(path.to_path_buf());
        model.dir = dir;
        Ok(model)
    }

    /// Decodes a model held in memory. Such a model cannot use external data.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Result<Self> {
        Self::decode(bytes.into())
    }

    fn decode(bytes: Bytes) -> Result<Self> {
        if bytes.is_empty() {
            bail!("empty file, not an ONNX model");
        }
        let proto = ModelProto::decode(bytes)
            .map_err(|e| ImportError::invalid(format!("not a valid ONNX model: {e}")))?;
        if proto.graph.is_none() || proto.ir_version <= 0 {
            bail!("not an ONNX model: no graph or IR version");
        }
        Ok(OnnxModel {
            proto,
            path: None,
            dir: None,
        })
    }

    /// The file the model was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Names of the graph inputs that are not initializers, in graph order: the tensors
    /// a caller feeds (or binds as constants).
    pub fn input_names(&self) -> Vec<String> {
        let g = self.proto.graph.as_ref().expect("checked when decoding");
        let init: std::collections::HashSet<&str> =
            g.initializer.iter().map(|t| t.name.as_str()).collect();
        g.input
            .iter()
            .filter(|i| !init.contains(i.name.as_str()))
            .map(|i| i.name.clone())
            .collect()
    }

    pub fn ir_version(&self) -> i64 {
        self.proto.ir_version
    }

    /// The imported version of the default (`ai.onnx`) domain.
    pub fn opset(&self) -> Result<i64> {
        let default: Vec<&OperatorSetIdProto> = self
            .proto
            .opset_import
            .iter()
            .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .collect();
        let version = match default.as_slice() {
            [] if self.proto.ir_version < 3 => 1,
            [] => bail!("the model imports no version of the default ONNX domain"),
            [one] => one.version,
            _ => bail!("the model imports the default ONNX domain twice"),
        };
        if !(MIN_OPSET..=MAX_OPSET).contains(&version) {
            return Err(ImportError::unsupported(format!(
                "opset {version} (cnnc imports opsets {MIN_OPSET} to {MAX_OPSET})"
            )));
        }
        Ok(version)
    }
}
