//! Shared harness: compile a graph with the JIT, run it, compare with the reference
//! interpreter.

#![allow(dead_code)]

use cnnc_codegen::target::{self, Linking};
use cnnc_codegen::{ModelInfo, compile_jit};
use cnnc_ir::{DType, Graph, Tensor, interp};
use cnnc_runtime::{AlignedBuffer, Executable, ThreadPool};

/// A small deterministic generator (xorshift), so failures reproduce from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(
            shape.to_vec(),
            (0..n).map(|_| self.unit()).collect::<Vec<f32>>(),
        )
        .unwrap()
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

pub fn compile(graph: &Graph) -> (ModelInfo, Executable) {
    let mut g = graph.clone();
    cnnc_passes::fold_constants(&mut g).unwrap();
    let isa = target::isa(None, None, Linking::Jit).unwrap();
    compile_jit(&g, isa, "test", false, None)
        .unwrap_or_else(|e| panic!("{e}\n{}", cnnc_ir::print(&g)))
}

/// Runs compiled code on `inputs`, on one thread or through a pool.
pub fn run(
    info: &ModelInfo,
    exe: &Executable,
    inputs: &[Tensor],
    pool: Option<&ThreadPool>,
) -> Vec<Tensor> {
    let ins: Vec<Vec<f32>> = inputs
        .iter()
        .map(|t| t.view::<f32>().unwrap().to_vec())
        .collect();
    let in_ptrs: Vec<*const f32> = ins.iter().map(|v| v.as_ptr()).collect();
    let mut outs: Vec<AlignedBuffer> = info
        .outputs
        .iter()
        .map(|t| AlignedBuffer::new(t.numel() * t.dtype.size()))
        .collect();
    let out_ptrs: Vec<*mut f32> = outs
        .iter_mut()
        .map(|b| b.as_mut_ptr() as *mut f32)
        .collect();
    let mut ws = AlignedBuffer::new(info.workspace_size);
    let status = unsafe { exe.run(in_ptrs.as_ptr(), out_ptrs.as_ptr(), ws.as_mut_ptr(), pool) };
    assert_eq!(status, 0);
    info.outputs
        .iter()
        .zip(&outs)
        .map(|(t, b)| {
            let bytes =
                unsafe { std::slice::from_raw_parts(b.as_ptr(), t.numel() * t.dtype.size()) };
            Tensor::from_bytes(
                t.dtype,
                t.shape.clone(),
                bytes::Bytes::copy_from_slice(bytes),
            )
            .unwrap()
        })
        .collect()
}

/// Worst `|got - want| / (atol + rtol |want|)` over all elements (> 1 fails).
pub fn excess(got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> f64 {
    assert_eq!(got.shape(), want.shape());
    assert_eq!(got.dtype(), want.dtype());
    if got.dtype() != DType::F32 {
        return if got.bitwise_eq(want) {
            0.0
        } else {
            f64::INFINITY
        };
    }
    got.to_f64s()
        .iter()
        .zip(want.to_f64s())
        .map(|(&a, b)| {
            if (a.is_nan() && b.is_nan()) || a == b {
                0.0
            } else {
                let e = (a - b).abs() / (atol + rtol * b.abs());
                if e.is_nan() { f64::INFINITY } else { e }
            }
        })
        .fold(0.0, f64::max)
}

/// Compiles and runs `graph` on one and on two threads and checks both against the
/// interpreter; also that both thread counts give identical bits.
pub fn check(graph: &Graph, inputs: &[Tensor], rtol: f64, atol: f64) -> Result<(), String> {
    let want = interp::run(graph, inputs).map_err(|e| format!("interpreter: {e}"))?;
    let (info, exe) = compile(graph);
    let one = run(&info, &exe, inputs, None);
    let pool = ThreadPool::new(2);
    let two = run(&info, &exe, inputs, Some(&pool));
    for (k, ((a, b), w)) in one.iter().zip(&two).zip(&want).enumerate() {
        if !a.bitwise_eq(b) {
            return Err(format!("output {k}: 1 and 2 threads differ"));
        }
        let e = excess(a, w, rtol, atol);
        if e > 1.0 {
            let (g, x) = (a.to_f64s(), w.to_f64s());
            let i = (0..g.len())
                .find(|&i| {
                    !((g[i].is_nan() && x[i].is_nan())
                        || (g[i] - x[i]).abs() <= atol + rtol * x[i].abs())
                })
                .unwrap_or(0);
            return Err(format!(
                "output {k}: excess {e:.3} (first bad [{i}]: got {} want {})",
                g[i], x[i]
            ));
        }
    }
    Ok(())
}
