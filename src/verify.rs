//! Runs ONNX test-data folders and compares the outputs.
//!
//! A case is a folder with `model.onnx` and `test_data_set_N/` folders holding
//! `input_K.pb` (graph inputs in order, initializers excluded) and `output_K.pb`.
//! Outputs match when `|got - want| <= atol + rtol * |want|` for every element (the
//! ONNX backend-test rule); NaN matches NaN, and non-float outputs must be equal.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ir::{DType, Scalar, Tensor, interp};
use crate::{Compiler, Error, ImportOptions, Model};

/// What runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter, on the graph as imported.
    Ref,
    /// Compiled into this process.
    Jit,
    /// Compiled to an object file, linked into a C program with the system compiler.
    Aot,
}

#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            rtol: 1e-3,
            atol: 1e-7,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    /// Wrong output, or an error on a model that should work.
    Fail(String),
    /// The model uses something cnnc does not implement; the reason says what.
    Unsupported(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("pass"),
            Outcome::Fail(why) => write!(f, "FAIL: {why}"),
            Outcome::Unsupported(why) => write!(f, "unsupported: {why}"),
        }
    }
}

/// Runs every test-data set of the case in `dir`; the jit and aot backends compile with
/// `compiler`'s passes (its input shapes and constants come from each data set).
pub fn verify_case(dir: &Path, backend: Backend, tol: Tolerance, compiler: &Compiler) -> Outcome {
    match run_case(dir, backend, tol, compiler) {
        Ok(None) => Outcome::Pass,
        Ok(Some(mismatch)) => Outcome::Fail(mismatch),
        Err(Error::Import(e)) if e.is_unsupported() => Outcome::Unsupported(e.reason()),
        Err(e) if e.is_unsupported() => Outcome::Unsupported(e.to_string()),
        Err(e) => Outcome::Fail(e.to_string()),
    }
}

/// `Ok(Some(description))` on the first mismatch.
fn run_case(
    dir: &Path,
    backend: Backend,
    tol: Tolerance,
    base: &Compiler,
) -> Result<Option<String>, Error> {
    let model = Model::load(dir.join("model.onnx"))?;
    let names = model.input_names();
    let static_inputs = model.compile_time_inputs()?;
    let sets = test_data_sets(dir)?;
    if sets.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no test_data_set_* folders",
            dir.display()
        )));
    }
    for set in sets {
        let inputs = read_numbered(&set, "input")?;
        let expected = read_numbered(&set, "output")?;
        if inputs.len() != names.len() {
            return Err(Error::Usage(format!(
                "{}: {} input files for {} graph inputs",
                set.display(),
                inputs.len(),
                names.len()
            )));
        }
        let mut options = ImportOptions::default();
        let mut compiler = base.clone();
        let mut runtime = Vec::new();
        for (name, t) in names.iter().zip(inputs) {
            if static_inputs.contains(name) {
                options.constants.insert(name.clone(), t.clone());
                compiler = compiler.constant(name, t);
            } else {
                options
                    .input_shapes
                    .insert(name.clone(), t.shape().to_vec());
                compiler = compiler.input_shape(name, t.shape());
                runtime.push(t);
            }
        }
        let (got, output_names): (Vec<Tensor>, Vec<String>) = match backend {
            Backend::Ref => {
                let graph = model.import(&options)?;
                (
                    interp::run(&graph, &runtime)?,
                    graph.outputs().iter().map(|o| o.name.clone()).collect(),
                )
            }
            Backend::Jit => {
                let compiled = compiler.compile(&model)?;
                (
                    compiled.run(&runtime)?,
                    compiled.outputs().iter().map(|o| o.name.clone()).collect(),
                )
            }
            Backend::Aot => {
                let dir = tempfile::tempdir().map_err(|source| Error::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let (exe, info) = crate::aot::build(&compiler, &model, dir.path())?;
                (
                    crate::aot::run(&exe, &info, &runtime)?,
                    info.outputs.iter().map(|o| o.name.clone()).collect(),
                )
            }
        };
        if got.len() != expected.len() {
            return Ok(Some(format!(
                "{} outputs, {} expected",
                got.len(),
                expected.len()
            )));
        }
        for (k, (g, w)) in got.iter().zip(&expected).enumerate() {
            let name = &output_names[k];
            if let Some(m) = compare(g, w, tol) {
                return Ok(Some(format!("{}: output '{name}' {m}", set.display())));
            }
        }
    }
    Ok(None)
}

/// The `test_data_set_N` folders of a case, in numeric order.
fn test_data_sets(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut sets: Vec<(u32, PathBuf)> = read_dir(dir)?
        .into_iter()
        .filter_map(|p| {
            let n = p
                .file_name()?
                .to_str()?
                .strip_prefix("test_data_set_")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    sets.sort();
    Ok(sets.into_iter().map(|(_, p)| p).collect())
}

/// `{prefix}_0.pb`, `{prefix}_1.pb`, ... in numeric order.
fn read_numbered(dir: &Path, prefix: &str) -> Result<Vec<Tensor>, Error> {
    let mut files: Vec<(u32, PathBuf)> = read_dir(dir)?
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            let n = name
                .strip_prefix(prefix)?
                .strip_prefix('_')?
                .strip_suffix(".pb")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, p)| Ok(cnnc_frontend::read_tensor_file(&p)?.1))
        .collect()
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect()
}

/// Describes the worst mismatch between `got` and `want`, or `None` if they match.
pub fn compare(got: &Tensor, want: &Tensor, tol: Tolerance) -> Option<String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Some(format!("is {}, expected {}", got.ty(), want.ty()));
    }
    if got.dtype() != DType::F32 {
        let bad = (0..got.numel()).find(|&i| got.get(i) != want.get(i))?;
        return Some(format!(
            "[{bad}] = {}, expected {}",
            show(got.get(bad)),
            show(want.get(bad))
        ));
    }
    let (g, w) = (got.to_f64s(), want.to_f64s());
    let within = |a: f64, b: f64| {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol.atol + tol.rtol * b.abs()
    };
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        if !within(a, b) {
            bad += 1;
            // Rank by how far outside the tolerance the element is.
            let excess = (a - b).abs() / (tol.atol + tol.rtol * b.abs());
            let excess = if excess.is_nan() {
                f64::INFINITY
            } else {
                excess
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    let (i, _) = worst?;
    Some(format!(
        "[{i}] = {}, expected {} (|diff| {:.3e}; {bad} of {} elements out of tolerance)",
        g[i],
        w[i],
        (g[i] - w[i]).abs(),
        g.len()
    ))
}

fn show(v: Option<Scalar>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The case folders named by `paths`: a folder holding `model.onnx` is a case; any
/// other folder contributes its sub-folders that are cases, in name order.
pub fn expand_cases(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut cases = Vec::new();
    for p in paths {
        if p.join("model.onnx").is_file() {
            cases.push(p.clone());
            continue;
        }
        let mut subs: Vec<PathBuf> = read_dir(p)?
            .into_iter()
            .filter(|s| s.join("model.onnx").is_file())
            .collect();
        if subs.is_empty() {
            return Err(Error::Usage(format!(
                "{}: not a test case (no model.onnx) and holds none",
                p.display()
            )));
        }
        subs.sort();
        cases.extend(subs);
    }
    Ok(cases)
}
