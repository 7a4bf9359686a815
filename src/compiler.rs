//! The compilation pipeline and its results: JIT-compiled models and object files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use cnnc_codegen::target::{self, Linking};
use cnnc_codegen::{Listing, ListingKind, ModelInfo, ObjectCode, TensorInfo, WriteError};
use cnnc_passes::{OptLevel, PassRecord, Pipeline, TargetInfo};
use cnnc_runtime::{AlignedBuffer, Executable, ThreadPool};
use serde::Serialize;

use crate::ir::{Graph, Tensor};
use crate::{Error, ImportOptions, Model};

/// Builds compiled models from ONNX models.
///
/// ```
/// let model = cnnc::Model::load("examples/lenet/model.onnx")?;
/// let compiled = cnnc::Compiler::new()
///     .threads(2)
///     .input_shape("image", &[4, 1, 28, 28]) // the model's batch is symbolic
///     .compile(&model)?;
/// assert_eq!(compiled.inputs()[0].shape, [4, 1, 28, 28]);
/// let batch = cnnc::Tensor::from_vec(vec![4, 1, 28, 28], vec![0.25f32; 4 * 784])?;
/// let probabilities = &compiled.run(&[batch])?[0];
/// assert_eq!(probabilities.shape(), &[4, 10]);
///
/// // The wrong shape is an error naming the input.
/// let wrong = cnnc::Tensor::from_vec(vec![1, 784], vec![0.0f32; 784])?;
/// assert!(compiled.run(&[wrong]).unwrap_err().to_string().contains("'image'"));
/// # Ok::<(), cnnc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Compiler {
    target: Option<String>,
    cpu: Option<String>,
    threads: usize,
    name: Option<String>,
    options: ImportOptions,
    opt_level: OptLevel,
    stop_after: Option<String>,
    profile: bool,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

/// An object file and what goes beside it.
pub struct ObjectFile {
    code: ObjectCode,
    /// The C header declaring the entry points.
    pub header: String,
    /// The same metadata as JSON, for tools.
    pub json: String,
    pub info: ModelInfo,
}

impl ObjectFile {
    /// The object file's bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        Ok(self.code.to_bytes()?)
    }

    /// Writes the object file to `path`, encoding it straight into the file (no copy
    /// of the whole file in memory first: VGG-19's is 819 MB). A regular file left
    /// half written by a failure is removed, so no build tool takes it for current.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = BufWriter::new(File::create(path).map_err(io)?);
        let written = match self.code.write_to(&mut file) {
            Ok(()) => file.flush().map_err(io),
            Err(WriteError::Io(e)) => Err(io(e)),
            Err(WriteError::Encoding(e)) => Err(e.into()),
        };
        drop(file);
        if written.is_err() && std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(path);
        }
        written
    }
}

#[derive(Serialize)]
struct JsonTensor<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [usize],
    elements: usize,
}

#[derive(Serialize)]
struct JsonModel<'a> {
    name: &'a str,
    cnnc_version: &'a str,
    target: &'a str,
    cpu: &'a str,
    inputs: Vec<JsonTensor<'a>>,
    outputs: Vec<JsonTensor<'a>>,
    workspace_size: usize,
    constant_bytes: usize,
    entry_points: [String; 3],
}

fn json_tensors(ts: &[TensorInfo]) -> Vec<JsonTensor<'_>> {
    ts.iter()
        .map(|t| JsonTensor {
            name: &t.name,
            dtype: t.dtype.name(),
            shape: &t.shape,
            elements: t.numel(),
        })
        .collect()
}

impl Compiler {
    /// For the host CPU, one thread.
    pub fn new() -> Self {
        Compiler {
            target: None,
            cpu: None,
            threads: 1,
            name: None,
            options: ImportOptions::default(),
            opt_level: OptLevel::O2,
            stop_after: None,
            profile: false,
        }
    }

    /// Generates code for `triple` (object files only; the JIT runs on the host).
    pub fn target(mut self, triple: &str) -> Result<Self, Error> {
        target::isa(Some(triple), None, Linking::Object)?;
        self.target = Some(triple.to_string());
        Ok(self)
    }

    /// `native`, a CPU or level name (`x86-64-v2`, `x86-64-v3`, `znver4`, ...) or
    /// explicit features (`+fma,+avx2`).
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = Some(cpu.to_string());
        self
    }

    /// Threads a JIT-compiled model runs on (the caller's included).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The full shape of an input with symbolic dimensions.
    pub fn input_shape(mut self, name: &str, shape: &[usize]) -> Self {
        self.options
            .input_shapes
            .insert(name.to_string(), shape.to_vec());
        self
    }

    /// Binds an input as a compile-time constant (shape arithmetic fed as an input).
    pub fn constant(mut self, name: &str, value: Tensor) -> Self {
        self.options.constants.insert(name.to_string(), value);
        self
    }

    /// The symbol prefix of an object file (default: from the file name).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(cnnc_codegen::header::c_identifier(name));
        self
    }

    pub fn import_options(&self) -> &ImportOptions {
        &self.options
    }

    /// `O2` (the default) runs every pass; `O0` none; `Os` all but the passes that
    /// enlarge the constants (`cnnc_passes::SIZE_PASSES`).
    pub fn opt_level(mut self, level: OptLevel) -> Self {
        self.opt_level = level;
        self
    }

    /// Also compiles the profiled entry point, for [`CompiledModel::run_profiled`]
    /// (JIT only; object files never carry it).
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }

    /// A usage error when [`Compiler::stop_after`] names a pass the level does not run.
    pub fn check_stop_after(&self) -> Result<(), Error> {
        let names = Pipeline::new(self.opt_level).pass_names();
        match &self.stop_after {
            Some(pass) if !names.contains(&pass.as_str()) => Err(Error::Usage(format!(
                "no pass '{pass}' at -O{}; the passes are: {}",
                self.opt_level.flag(),
                names.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Runs the passes only up to and including `pass` (to find which pass changes
    /// an answer, or to measure what a pass gains).
    pub fn stop_after(mut self, pass: &str) -> Self {
        self.stop_after = Some(pass.to_string());
        self
    }

    /// The graph code generation receives: imported, optimized, constant-folded.
    pub fn graph(&self, model: &Model) -> Result<Graph, Error> {
        let (graph, _) = self.optimize(model)?;
        self.codegen_ready(graph)
    }

    /// `graph` with whatever constant computation the passes left folded: code
    /// generation computes only on float data.
    pub fn codegen_ready(&self, mut graph: Graph) -> Result<Graph, Error> {
        cnnc_passes::fold_constants(&mut graph)?;
        cnnc_ir::verify(&graph)?;
        Ok(graph)
    }

    /// Imports and runs the passes (up to [`Compiler::stop_after`]); returns the graph
    /// as the last pass left it and what each pass did.
    pub fn optimize(&self, model: &Model) -> Result<(Graph, Vec<PassRecord>), Error> {
        self.optimize_graph(model.import(&self.options)?)
    }

    /// [`Compiler::optimize`] for a graph built in code rather than imported (single
    /// layers in benchmarks). Feed the result through [`Compiler::codegen_ready`] to
    /// [`Compiler::compile_graph`].
    pub fn optimize_graph(&self, mut graph: Graph) -> Result<(Graph, Vec<PassRecord>), Error> {
        self.check_stop_after()?;
        let pipeline = Pipeline::new(self.opt_level);
        let log = pipeline.run(
            &mut graph,
            &TargetInfo::for_triple(self.target.as_deref()),
            self.stop_after.as_deref(),
        )?;
        cnnc_ir::verify(&graph)?;
        Ok((graph, log))
    }

    /// Object code for a graph from [`Compiler::graph`], its description and the target
    /// triple.
    pub fn object_of(
        &self,
        graph: &Graph,
        default_name: &str,
    ) -> Result<(ModelInfo, ObjectCode, String), Error> {
        let isa = target::isa(self.target.as_deref(), self.cpu.as_deref(), Linking::Object)?;
        let triple = isa.triple().to_string();
        let (info, code) =
            cnnc_codegen::compile_object(graph, isa, &self.symbol(default_name), None)?;
        Ok((info, code, triple))
    }

    fn symbol(&self, default: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| cnnc_codegen::header::c_identifier(default))
    }

    /// Compiles for this process and loads the code.
    pub fn compile(&self, model: &Model) -> Result<CompiledModel, Error> {
        let graph = self.graph(model)?;
        self.compile_graph(&graph)
    }

    /// Compiles a graph from [`Compiler::graph`] for this process.
    pub fn compile_graph(&self, graph: &Graph) -> Result<CompiledModel, Error> {
        if self.target.is_some() {
            return Err(Error::Usage(
                "a JIT-compiled model runs on the host; --target applies to object files".into(),
            ));
        }
        let isa = target::isa(None, self.cpu.as_deref(), Linking::Jit)?;
        let (info, exe) =
            cnnc_codegen::compile_jit(graph, isa, &self.symbol("model"), self.profile, None)?;
        Ok(CompiledModel::new(info, exe, self.threads))
    }

    /// Compiles to an object file with its header and metadata.
    pub fn object(&self, model: &Model, default_name: &str) -> Result<ObjectFile, Error> {
        let graph = self.graph(model)?;
        let (info, code, triple) = self.object_of(&graph, default_name)?;
        let header = cnnc_codegen::header::c_header(&info, &triple);
        let n = &info.name;
        let json = JsonModel {
            name: n,
            cnnc_version: env!("CARGO_PKG_VERSION"),
            target: &triple,
            cpu: self.cpu.as_deref().unwrap_or(if self.target.is_none() {
                "native"
            } else {
                "baseline"
            }),
            inputs: json_tensors(&info.inputs),
            outputs: json_tensors(&info.outputs),
            workspace_size: info.workspace_size,
            constant_bytes: info.constant_bytes,
            entry_points: [
                format!("{n}_run"),
                format!("{n}_run_threaded"),
                format!("{n}_workspace_size"),
            ],
        };
        let json = serde_json::to_string_pretty(&json).expect("plain data serializes");
        Ok(ObjectFile {
            code,
            header,
            json,
            info,
        })
    }

    /// Writes `path` (the object), and beside it `NAME.h` and `NAME.json` named after the
    /// object's stem.
    pub fn write_object(&self, model: &Model, path: impl AsRef<Path>) -> Result<ModelInfo, Error> {
        let path = path.as_ref();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let obj = self.object(model, stem)?;
        obj.write(path)?;
        write(&path.with_extension("h"), obj.header.as_bytes())?;
        write(&path.with_extension("json"), obj.json.as_bytes())?;
        Ok(obj.info)
    }

    /// The Cranelift IR or disassembly of every function, for `--emit`.
    pub fn listing(&self, model: &Model, kind: ListingKind) -> Result<String, Error> {
        let graph = self.graph(model)?;
        let isa = target::isa(self.target.as_deref(), self.cpu.as_deref(), Linking::Object)?;
        let mut listing = Listing::new(kind);
        cnnc_codegen::compile_object(&graph, isa, &self.symbol("model"), Some(&mut listing))?;
        Ok(listing.text)
    }
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A model compiled into this process, ready to run.
pub struct CompiledModel {
    info: ModelInfo,
    exe: Executable,
    pool: Option<ThreadPool>,
    workspace: Mutex<AlignedBuffer>,
}

impl CompiledModel {
    fn new(info: ModelInfo, exe: Executable, threads: usize) -> Self {
        let workspace = Mutex::new(AlignedBuffer::new(exe.workspace_size()));
        let pool = (threads > 1).then(|| ThreadPool::new(threads));
        CompiledModel {
            info,
            exe,
            pool,
            workspace,
        }
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.info.inputs
    }

    pub fn outputs(&self) -> &[TensorInfo] {
        &self.info.outputs
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Threads the model runs on.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.threads())
    }

    /// Runs the model. Each input must have the shape and element type the model
    /// declares (`inputs()`); the outputs come back in model order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        self.run_with(inputs, None)
    }

    /// [`CompiledModel::run`], calling `on_step(k)` as soon as step `k` (see
    /// `info().steps`) has finished: with a clock read there, the time of each step.
    /// The three steps of a banded Winograd convolution run band by band, so each of
    /// theirs finishes once per band, the calls for `k`, `k + 1`, `k + 2` repeating:
    /// sum a step's times over a run.
    /// The model must be compiled with [`Compiler::profile`].
    pub fn run_profiled(
        &self,
        inputs: &[Tensor],
        on_step: &mut dyn FnMut(usize),
    ) -> Result<Vec<Tensor>, Error> {
        if !self.exe.can_profile() {
            return Err(Error::Usage(
                "the model was compiled without profiling (Compiler::profile)".into(),
            ));
        }
        self.run_with(inputs, Some(on_step))
    }

    fn run_with(
        &self,
        inputs: &[Tensor],
        on_step: Option<&mut dyn FnMut(usize)>,
    ) -> Result<Vec<Tensor>, Error> {
        if inputs.len() != self.info.inputs.len() {
            return Err(Error::Usage(format!(
                "the model takes {} inputs ({}), {} given",
                self.info.inputs.len(),
                self.info
                    .inputs
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            )));
        }
        let mut data = Vec::with_capacity(inputs.len());
        for (t, want) in inputs.iter().zip(&self.info.inputs) {
            if t.dtype() != want.dtype || t.shape() != want.shape.as_slice() {
                return Err(Error::Usage(format!(
                    "input '{}' must be {}{:?}, got {}",
                    want.name,
                    want.dtype,
                    want.shape,
                    t.ty()
                )));
            }
            data.push(t.view::<f32>()?);
        }
        let in_ptrs: Vec<*const f32> = data.iter().map(|d| d.as_ptr()).collect();
        let mut outs: Vec<AlignedBuffer> = self
            .info
            .outputs
            .iter()
            .map(|t| AlignedBuffer::new(t.numel() * t.dtype.size()))
            .collect();
        let out_ptrs: Vec<*mut f32> = outs
            .iter_mut()
            .map(|b| b.as_mut_ptr() as *mut f32)
            .collect();
        let status = {
            let mut ws = self.workspace.lock().expect("workspace lock");
            // SAFETY: inputs were checked against the model's shapes, outputs and the
            // workspace are allocated at the sizes the compiler reported.
            unsafe {
                match on_step {
                    None => self.exe.run(
                        in_ptrs.as_ptr(),
                        out_ptrs.as_ptr(),
                        ws.as_mut_ptr(),
                        self.pool.as_ref(),
                    ),
                    Some(f) => self
                        .exe
                        .run_profiled(
                            in_ptrs.as_ptr(),
                            out_ptrs.as_ptr(),
                            ws.as_mut_ptr(),
                            self.pool.as_ref(),
                            f,
                        )
                        .expect("checked by run_profiled"),
                }
            }
        };
        if status != 0 {
            return Err(Error::Usage(format!(
                "the compiled model returned status {status}"
            )));
        }
        // The tensors own the buffers the run wrote: no second copy of the outputs
        // (a segmentation map can be megabytes).
        self.info
            .outputs
            .iter()
            .zip(outs)
            .map(|(t, buffer)| {
                let written = Written {
                    buffer,
                    len: t.numel() * t.dtype.size(),
                };
                Ok(Tensor::from_bytes(
                    t.dtype,
                    t.shape.clone(),
                    bytes::Bytes::from_owner(written),
                )?)
            })
            .collect()
    }
}

/// An output buffer after a successful run, which wrote all of its first `len` bytes.
struct Written {
    buffer: AlignedBuffer,
    len: usize,
}

impl AsRef<[u8]> for Written {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the buffer holds at least `len` bytes, all written by the run.
        unsafe { std::slice::from_raw_parts(self.buffer.as_ptr(), self.len) }
    }
}
