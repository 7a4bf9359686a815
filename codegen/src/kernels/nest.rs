//! Loop nests over a tensor's index space with affine offsets per operand: the
//! skeleton of elementwise, broadcasting, reduction and copy kernels.

use cranelift_codegen::ir::{InstBuilder, Value};

use crate::emit::Fx;

/// Dims of the iteration space, and for each operand its stride (in elements) per dim.
#[derive(Clone, Debug, PartialEq)]
pub struct Nest {
    pub dims: Vec<usize>,
    pub strides: Vec<Vec<isize>>,
}

impl Nest {
    /// Iterating `out` (operand 0, dense) with each of `inputs` read under numpy
    /// broadcasting.
    pub fn broadcast(out: &[usize], inputs: &[&[usize]]) -> Nest {
        let mut strides = vec![dense_strides(out)];
        for shape in inputs {
            let own = dense_strides(shape);
            let off = out.len() - shape.len();
            strides.push(
                (0..out.len())
                    .map(|i| {
                        if i < off || shape[i - off] == 1 {
                            0
                        } else {
                            own[i - off]
                        }
                    })
                    .collect(),
            );
        }
        Nest {
            dims: out.to_vec(),
            strides,
        }
        .coalesced()
    }

    /// Drops unit dims and merges neighbours that every operand walks contiguously,
    /// so the innermost loop is as long as possible. Keeps at least one dim.
    pub fn coalesced(self) -> Nest {
        let keep: Vec<usize> = (0..self.dims.len())
            .filter(|&i| self.dims[i] != 1)
            .collect();
        let mut dims: Vec<usize> = keep.iter().map(|&i| self.dims[i]).collect();
        let mut strides: Vec<Vec<isize>> = self
            .strides
            .iter()
            .map(|s| keep.iter().map(|&i| s[i]).collect())
            .collect();
        let mut i = dims.len();
        while i > 1 {
            i -= 1;
            let inner = dims[i] as isize;
            if strides.iter().all(|s| s[i - 1] == s[i] * inner) {
                dims[i - 1] *= dims[i];
                dims.remove(i);
                for s in &mut strides {
                    s.remove(i - 1);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in &mut strides {
                s.push(0);
            }
        }
        Nest { dims, strides }
    }

    pub fn total(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Row-major strides in elements.
pub fn dense_strides(shape: &[usize]) -> Vec<isize> {
    let mut s = vec![1isize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

impl Fx<'_> {
    /// Runs `body(offsets)` over every index of `dims[..depth]`, where `offsets[k]` is
    /// `base[k] + sum(index * strides[k])` in elements. The outermost dim runs only over
    /// `outer` when given (a task's share).
    pub fn for_nest(
        &mut self,
        dims: &[usize],
        strides: &[Vec<isize>],
        base: &[Value],
        outer: Option<(Value, Value)>,
        body: &mut dyn FnMut(&mut Self, &[Value]),
    ) {
        let Some((&d, rest)) = dims.split_first() else {
            body(self, base);
            return;
        };
        let mut step = |fx: &mut Self, i: Value| {
            let offs: Vec<Value> = base
                .iter()
                .zip(strides)
                .map(|(&b, s)| match s[0] {
                    0 => b,
                    1 => fx.b.ins().iadd(b, i),
                    k => {
                        let m = fx.b.ins().imul_imm_s(i, k as i64);
                        fx.b.ins().iadd(b, m)
                    }
                })
                .collect();
            let inner: Vec<Vec<isize>> = strides.iter().map(|s| s[1..].to_vec()).collect();
            fx.for_nest(rest, &inner, &offs, None, body);
        };
        match outer {
            Some((lo, hi)) => self.for_range(lo, hi, |fx, i| step(fx, i)),
            None => self.for_n(d as u64, |fx, i| step(fx, i)),
        }
    }

    /// `[lo, hi)` of `n` units for task `task` of `tasks`.
    pub fn task_range(&mut self, task: Value, n: usize, tasks: usize) -> (Value, Value) {
        let t = self.b.ins().imul_imm_s(task, n as i64);
        let lo = self.b.ins().udiv_imm_u(t, tasks as i64);
        let t1 = self.b.ins().iadd_imm_s(t, n as i64);
        let hi = self.b.ins().udiv_imm_u(t1, tasks as i64);
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_coalesces_contiguous_dims() {
        let n = Nest::broadcast(&[2, 3, 4], &[&[2, 3, 4], &[4]]);
        assert_eq!(n.dims, vec![6, 4]);
        assert_eq!(n.strides, vec![vec![4, 1], vec![4, 1], vec![0, 1]]);
        let n = Nest::broadcast(&[2, 3, 4], &[&[2, 3, 4], &[2, 3, 4]]);
        assert_eq!(n.dims, vec![24]);
        let n = Nest::broadcast(&[1, 8, 1, 5], &[&[8, 1, 1]]);
        assert_eq!(n.dims, vec![8, 5]);
        assert_eq!(n.strides, vec![vec![5, 1], vec![1, 0]]);
        let n = Nest::broadcast(&[], &[&[]]);
        assert_eq!(n.dims, vec![1]);
    }
}
