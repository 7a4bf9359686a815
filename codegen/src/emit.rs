//! Building blocks for emitting kernels with `cranelift-frontend`: counted loops with
//! carried values, addressing, vector and scalar loads and stores, fused multiply-add.
//!
//! Every trip count and stride is known when compiling, so loops count with constant
//! bounds and addresses fold into the instructions' addressing modes.

use std::collections::{HashMap, HashSet};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, F32X4, I64};
use cranelift_codegen::ir::{Block, Inst, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;

use crate::target::Features;

/// Lanes in a vector register (128-bit f32x4).
pub const LANES: usize = 4;

/// A function being emitted.
pub struct Fx<'a> {
    pub b: FunctionBuilder<'a>,
    pub features: Features,
}

/// Memory accesses of kernels never trap (addresses come from the memory plan) and
/// are not assumed aligned.
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Flags of a bitcast between vector types of different lanes: little-endian lanes.
pub fn bitcast_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(cranelift_codegen::ir::Endianness::Little)
}

impl Fx<'_> {
    pub fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(I64, v)
    }

    pub fn f32(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }

    /// A vector with all lanes `v`.
    pub fn splat_const(&mut self, v: f32) -> Value {
        let s = self.f32(v);
        self.b.ins().splat(F32X4, s)
    }

    /// `f32` constant of lane type `ty` (scalar or splatted vector).
    pub fn fconst(&mut self, ty: Type, v: f32) -> Value {
        if ty == F32 {
            self.f32(v)
        } else {
            self.splat_const(v)
        }
    }

    /// `base + index * scale + offset` (bytes).
    pub fn addr(&mut self, base: Value, index: Value, scale: i64, offset: i64) -> Value {
        let scaled = if scale == 1 {
            index
        } else {
            self.b.ins().imul_imm_s(index, scale)
        };
        let a = self.b.ins().iadd(base, scaled);
        if offset == 0 {
            a
        } else {
            self.b.ins().iadd_imm_s(a, offset)
        }
    }

    /// `base + offset` (bytes).
    pub fn add(&mut self, base: Value, offset: i64) -> Value {
        if offset == 0 {
            base
        } else {
            self.b.ins().iadd_imm_s(base, offset)
        }
    }

    pub fn load(&mut self, ty: Type, addr: Value, offset: i32) -> Value {
        self.b.ins().load(ty, mem(), addr, offset)
    }

    /// A load of memory that nothing writes while the kernel runs (weights, and the
    /// inputs of an op that does not work in place): the optimizer may move it, so it
    /// is placed next to its use and can become an instruction's memory operand.
    pub fn load_fixed(&mut self, ty: Type, addr: Value, offset: i32) -> Value {
        let flags = mem().with_readonly().with_can_move();
        self.b.ins().load(ty, flags, addr, offset)
    }

    pub fn store(&mut self, v: Value, addr: Value, offset: i32) {
        self.b.ins().store(mem(), v, addr, offset);
    }

    /// `a * b + c`: one fused instruction where the ISA has it, else multiply and add
    /// (Cranelift would otherwise call libm's `fmaf`).
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.features.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// `f(0)` .. `f(n - 1)`, the same straight-line code on different inputs, with
    /// their instructions interleaved one by one: `n` independent dependency chains
    /// side by side, so the CPU's scheduler holds a few operations of each instead of
    /// one long chain whose later operations all wait. What does not depend on the
    /// inputs (the constants) is emitted once, by the first chain, right before the
    /// step that uses it. Only a function queued as written keeps this order (see
    /// `Order::AsWritten`): the optimizer would put each chain back together.
    pub fn interleaved(
        &mut self,
        n: usize,
        mut f: impl FnMut(&mut Self, usize) -> Value,
    ) -> Vec<Value> {
        let block = self.b.current_block().expect("emitting into a block");
        let mut chains: Vec<Vec<Inst>> = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for k in 0..n {
            let before = self.b.func.layout.last_inst(block);
            values.push(f(self, k));
            assert_eq!(self.b.current_block(), Some(block), "a chain branched");
            let layout = &self.b.func.layout;
            let mut next = before.map_or(layout.first_inst(block), |i| layout.next_inst(i));
            let mut insts = Vec::new();
            while let Some(i) = next {
                insts.push(i);
                next = layout.next_inst(i);
            }
            chains.push(insts);
        }
        let func = &mut *self.b.func;
        // The first chain's instructions that depend on nothing but each other.
        let mut constant: HashSet<Value> = HashSet::new();
        let shared: Vec<bool> = chains[0]
            .iter()
            .map(|&i| {
                let op = func.dfg.insts[i].opcode();
                let pure = !(op.can_load() || op.can_store() || op.other_side_effects());
                let is = pure && func.dfg.inst_args(i).iter().all(|a| constant.contains(a));
                if is {
                    constant.extend(func.dfg.inst_results(i));
                }
                is
            })
            .collect();
        // The others use the first chain's constants instead of their own copies.
        for (chain, value) in chains.iter().zip(&mut values).skip(1) {
            assert_eq!(chain.len(), chains[0].len(), "chains differ");
            let mut renamed: HashMap<Value, Value> = HashMap::new();
            for (k, &i) in chain.iter().enumerate() {
                for a in func.dfg.inst_args_mut(i) {
                    *a = renamed.get(a).copied().unwrap_or(*a);
                }
                let first = chains[0][k];
                if shared[k] {
                    assert!(func.dfg.insts[i] == func.dfg.insts[first], "chains differ");
                    let pairs = func
                        .dfg
                        .inst_results(i)
                        .iter()
                        .zip(func.dfg.inst_results(first));
                    renamed.extend(pairs.map(|(&a, &b)| (a, b)));
                } else {
                    let op = |i: Inst| func.dfg.insts[i].opcode();
                    assert_eq!(op(i), op(first), "chains differ");
                }
            }
            *value = renamed.get(value).copied().unwrap_or(*value);
        }
        let layout = &mut func.layout;
        for &i in chains.iter().flatten() {
            layout.remove_inst(i);
        }
        for (k, &is_shared) in shared.iter().enumerate() {
            layout.append_inst(chains[0][k], block);
            if !is_shared {
                for chain in &chains[1..] {
                    layout.append_inst(chain[k], block);
                }
            }
        }
        values
    }

    /// Runs `body(i)` for `i` in `0..n` (an i64), carrying `init` through the
    /// iterations: `body` returns the next carried values. Returns the final ones.
    pub fn for_n_carry(
        &mut self,
        n: u64,
        init: &[Value],
        body: impl FnMut(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        match n {
            0 => init.to_vec(),
            1 => {
                let zero = self.iconst(0);
                let mut body = body;
                body(self, zero, init)
            }
            _ => {
                let (lo, hi) = (self.iconst(0), self.iconst(n as i64));
                self.for_range_carry(lo, hi, init, body)
            }
        }
    }

    /// Runs `body(i)` for `i` in `0..n`.
    pub fn for_n(&mut self, n: u64, mut body: impl FnMut(&mut Self, Value)) {
        self.for_n_carry(n, &[], |fx, i, _| {
            body(fx, i);
            Vec::new()
        });
    }

    /// Runs `body(i)` for `i` in `lo..hi`, bounds known only at run time.
    pub fn for_range(&mut self, lo: Value, hi: Value, mut body: impl FnMut(&mut Self, Value)) {
        let header = self.b.create_block();
        let body_block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, I64);
        self.b.ins().jump(header, &[lo.into()]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.b.ins().brif(more, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        body(self, i);
        let i1 = self.b.ins().iadd_imm_s(i, 1);
        self.b.ins().jump(header, &[i1.into()]);
        self.b.switch_to_block(exit);
    }

    /// Runs `body(i)` for `i` in `lo..hi` (run-time bounds, possibly empty), carrying
    /// `init` through the iterations like [`Fx::for_n_carry`]. Returns the final values.
    ///
    /// The test is at the top and the exit reads the header's parameters, so each
    /// value the body computes has one use (the back edge): a load used once by an
    /// instruction can then become its memory operand, which Cranelift refuses for a
    /// value with several uses (as a bottom test passing it to both targets makes).
    /// The counter is the back edge's last argument: Cranelift elaborates a block's
    /// pure instructions in the order of the branch arguments that use them, so the
    /// increment comes after the work instead of living across it in a register.
    pub fn for_range_carry(
        &mut self,
        lo: Value,
        hi: Value,
        init: &[Value],
        mut body: impl FnMut(&mut Self, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let types: Vec<Type> = init
            .iter()
            .map(|&v| self.b.func.dfg.value_type(v))
            .collect();
        let (header, body_block, exit) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        for &t in &types {
            self.b.append_block_param(header, t);
        }
        self.b.append_block_param(header, I64);
        let start: Vec<_> = init
            .iter()
            .copied()
            .chain(std::iter::once(lo))
            .map(Into::into)
            .collect();
        self.b.ins().jump(header, &start);
        self.b.switch_to_block(header);
        let params = self.b.block_params(header).to_vec();
        let (carried, i) = (&params[..types.len()], params[types.len()]);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.b.ins().brif(more, body_block, &[], exit, &[]);
        self.b.switch_to_block(body_block);
        let next = body(self, i, carried);
        let i1 = self.b.ins().iadd_imm_s(i, 1);
        let back: Vec<_> = next
            .iter()
            .copied()
            .chain(std::iter::once(i1))
            .map(Into::into)
            .collect();
        self.b.ins().jump(header, &back);
        self.b.switch_to_block(exit);
        carried.to_vec()
    }

    /// `if cond { then() }`.
    pub fn if_then(&mut self, cond: Value, then: impl FnOnce(&mut Self)) {
        let (t, done): (Block, Block) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(cond, t, &[], done, &[]);
        self.b.switch_to_block(t);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// `if cond { then() } else { other() }`.
    pub fn if_else(
        &mut self,
        cond: Value,
        then: impl FnOnce(&mut Self),
        other: impl FnOnce(&mut Self),
    ) {
        let (t, e, done) = (
            self.b.create_block(),
            self.b.create_block(),
            self.b.create_block(),
        );
        self.b.ins().brif(cond, t, &[], e, &[]);
        self.b.switch_to_block(t);
        then(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(e);
        other(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Four 32-bit lanes picked from `a` (lanes 0..4) and `b` (lanes 4..8), both i8x16.
    /// Cranelift lowers the unpack and `shufps` patterns to one instruction each.
    pub fn shuffle32(&mut self, a: Value, b: Value, lanes: [u8; 4]) -> Value {
        let bytes: Vec<u8> = lanes
            .iter()
            .flat_map(|&l| (0..4).map(move |k| 4 * l + k))
            .collect();
        let mask = self.b.func.dfg.immediates.push(bytes.into());
        self.b.ins().shuffle(a, b, mask)
    }

    /// The transpose of four vectors of four 32-bit lanes (i8x16): eight unpacks.
    pub fn transpose4(&mut self, r: [Value; 4]) -> [Value; 4] {
        let lo01 = self.shuffle32(r[0], r[1], [0, 4, 1, 5]);
        let lo23 = self.shuffle32(r[2], r[3], [0, 4, 1, 5]);
        let hi01 = self.shuffle32(r[0], r[1], [2, 6, 3, 7]);
        let hi23 = self.shuffle32(r[2], r[3], [2, 6, 3, 7]);
        [
            self.shuffle32(lo01, lo23, [0, 1, 4, 5]),
            self.shuffle32(lo01, lo23, [2, 3, 6, 7]),
            self.shuffle32(hi01, hi23, [0, 1, 4, 5]),
            self.shuffle32(hi01, hi23, [2, 3, 6, 7]),
        ]
    }

    /// Horizontal sum of an f32x4.
    pub fn hsum(&mut self, v: Value) -> Value {
        let lanes: Vec<Value> = (0..LANES as u8)
            .map(|l| self.b.ins().extractlane(v, l))
            .collect();
        let a = self.b.ins().fadd(lanes[0], lanes[1]);
        let b = self.b.ins().fadd(lanes[2], lanes[3]);
        self.b.ins().fadd(a, b)
    }

    /// Horizontal maximum of an f32x4 (NaN-propagating).
    pub fn hmax(&mut self, v: Value) -> Value {
        let lanes: Vec<Value> = (0..LANES as u8)
            .map(|l| self.b.ins().extractlane(v, l))
            .collect();
        let a = self.b.ins().fmax(lanes[0], lanes[1]);
        let b = self.b.ins().fmax(lanes[2], lanes[3]);
        self.b.ins().fmax(a, b)
    }
}
