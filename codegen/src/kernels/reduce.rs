//! ReduceSum and ReduceMean over any set of axes: every input element is added into
//! its output element (reduced axes have output stride 0), then means are scaled.

use cnnc_ir::op::ReduceKind;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::types::{F32, F32X4};

use super::nest::{Nest, dense_strides};
use super::{KernelCx, tasks_for};
use crate::CodegenError;
use crate::emit::LANES;

pub fn emit(cx: &mut KernelCx, kind: ReduceKind, axes: &[usize]) -> Result<(), CodegenError> {
    let shape = cx.inputs[0].ty.shape.clone();
    if cx.inputs[0].ty.dtype != cnnc_ir::DType::F32 {
        return Err(CodegenError::Unsupported(format!(
            "reduction of {} data at run time",
            cx.inputs[0].ty.dtype
        )));
    }
    let kept: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let out_strides: Vec<isize> = dense_strides(&kept)
        .into_iter()
        .enumerate()
        .map(|(i, s)| if axes.contains(&i) { 0 } else { s })
        .collect();
    // Operand 0 is the output (accumulated into), operand 1 the input.
    let nest = Nest {
        dims: shape.clone(),
        strides: vec![out_strides, dense_strides(&shape)],
    }
    .coalesced();
    let n_out: usize = kept.iter().product();
    let count: usize = axes.iter().map(|&a| shape[a]).product();
    let (x, y) = (cx.input(0), cx.output(0));
    // Tasks split the outermost dim only when it is not reduced (they would race).
    let units = if nest.dims.len() > 1 && nest.strides[0][0] != 0 {
        nest.dims[0]
    } else {
        1
    };
    let tasks = tasks_for(units, nest.total());
    let inner = nest.dims.len() - 1;
    cx.launch(1, |fx, _, ptrs| {
        fx.fill_f32(ptrs[y], n_out, 0.0);
        Ok(())
    })?;
    cx.launch(tasks, |fx, task, ptrs| {
        let zero = fx.iconst(0);
        let outer = (tasks > 1).then(|| fx.task_range(task, nest.dims[0], tasks));
        let (dims, strides) = (nest.dims.clone(), nest.strides.clone());
        let n = dims[inner];
        let (os, is) = (strides[0][inner], strides[1][inner]);
        let (py, px) = (ptrs[y], ptrs[x]);
        fx.for_nest(
            &dims[..inner],
            &strides,
            &[zero, zero],
            outer,
            &mut |fx, offs| {
                let out = fx.addr(py, offs[0], 4, 0);
                let src = fx.addr(px, offs[1], 4, 0);
                match (os, is) {
                    // Sum of a contiguous run into one output element.
                    (0, 1) => {
                        let s = fx.reduce_plane(src, n, false);
                        let o = fx.load(F32, out, 0);
                        let t = fx.b.ins().fadd(o, s);
                        fx.store(t, out, 0);
                    }
                    // A contiguous run added into a contiguous output run.
                    (1, 1) => {
                        fx.for_n((n / LANES) as u64, |fx, i| {
                            let sa = fx.addr(src, i, 16, 0);
                            let oa = fx.addr(out, i, 16, 0);
                            let v = fx.load(F32X4, sa, 0);
                            let o = fx.load(F32X4, oa, 0);
                            let t = fx.b.ins().fadd(o, v);
                            fx.store(t, oa, 0);
                        });
                        for j in n / LANES * LANES..n {
                            let v = fx.load(F32, src, (4 * j) as i32);
                            let o = fx.load(F32, out, (4 * j) as i32);
                            let t = fx.b.ins().fadd(o, v);
                            fx.store(t, out, (4 * j) as i32);
                        }
                    }
                    _ => fx.for_n(n as u64, |fx, i| {
                        let sa = fx.addr(src, i, 4 * is as i64, 0);
                        let oa = fx.addr(out, i, 4 * os as i64, 0);
                        let v = fx.load(F32, sa, 0);
                        let o = fx.load(F32, oa, 0);
                        let t = fx.b.ins().fadd(o, v);
                        fx.store(t, oa, 0);
                    }),
                }
            },
        );
        Ok(())
    })?;
    if kind == ReduceKind::Mean && count != 1 {
        cx.launch(1, |fx, _, ptrs| {
            let k = fx.f32(count as f32);
            let kv = fx.b.ins().splat(F32X4, k);
            let py = ptrs[y];
            fx.for_n((n_out / LANES) as u64, |fx, i| {
                let a = fx.addr(py, i, 16, 0);
                let v = fx.load(F32X4, a, 0);
                let r = fx.b.ins().fdiv(v, kv);
                fx.store(r, a, 0);
            });
            for j in n_out / LANES * LANES..n_out {
                let v = fx.load(F32, py, (4 * j) as i32);
                let r = fx.b.ins().fdiv(v, k);
                fx.store(r, py, (4 * j) as i32);
            }
            Ok(())
        })?;
    }
    Ok(())
}
