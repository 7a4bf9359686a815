//! Kernel generators, one file per op family, and the context they emit through.
//!
//! A node becomes one or more *launches*: task functions `fn(bufs, task)` that the
//! entry function runs `tasks` times (in parallel when the caller gives a thread
//! pool). `bufs` holds the node's argument pointers in the order the generator asked
//! for them: inputs, outputs, scratch memory and constant tables.

mod activation;
mod channel_shuffle;
mod conv;
mod conv_transpose;
mod depthwise;
mod depthwise_blocked;
mod depthwise_rows;
mod direct_conv;
mod elementwise;
mod gemm;
pub mod microkernel;
mod movement;
mod nest;
mod norm;
mod plane_products;
mod pool;
mod reduce;
mod resize;
mod softmax;
mod winograd;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cnnc_ir::op::Tile;
use cnnc_ir::{DType, Op, Tensor, TensorType, Value};
use cranelift_codegen::Context;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};

use crate::CodegenError;
use crate::compile::{Order, Queue};
use crate::emit::Fx;
use crate::target::Features;

pub(crate) use movement::{CopyPlan, concat, copy_launch};

/// Where a kernel argument's memory comes from.
#[derive(Clone, Debug)]
pub enum ArgSource {
    /// A tensor of the graph.
    Value(Value),
    /// Private scratch memory of this many bytes, live during the node.
    Scratch(usize),
    /// Constant bytes (packed weights, index tables) in the read-only data.
    Table(Table),
    /// The caller's buffer for graph output `j` (copies of inputs and constants).
    GraphOutput(usize),
    /// The first row of tiles of the band being run, an integer in a pointer's place:
    /// the transforms of a banded Winograd convolution (`Winograd::band`).
    BandStart,
}

/// Writes a [`Table::Fill`]'s floats into their place.
pub type Filler = Arc<dyn Fn(&mut [f32]) + Send + Sync>;

/// Constant data of a kernel.
#[derive(Clone)]
pub enum Table {
    /// Bytes computed while the kernel was generated.
    Bytes(Bytes),
    /// `len` floats that `fill` writes (into zeroed memory) where the constant data is
    /// laid out: packed weights, which can be hundreds of MiB, go straight to their
    /// place instead of through an allocation of their own.
    Fill { len: usize, fill: Filler },
}

impl Table {
    /// Its size in bytes.
    pub fn byte_len(&self) -> usize {
        match self {
            Table::Bytes(b) => b.len(),
            Table::Fill { len, .. } => len * 4,
        }
    }
}

/// `t`, checked to hold f32, for a [`Table::Fill`] to read when the constant data is
/// laid out (cloning shares the data).
pub(crate) fn f32_constant(t: &Tensor) -> Result<Tensor, CodegenError> {
    if t.dtype() != DType::F32 {
        return Err(CodegenError::Unsupported(format!(
            "{} weights (f32 only)",
            t.dtype()
        )));
    }
    Ok(t.clone())
}

/// Work (floats written) worth spreading over every core: VGG-19's Winograd products
/// pack 37 MB a layer, its first fully connected layer 411 MB.
const PARALLEL_WORK: usize = 1 << 20;

/// Runs `f` on every part, the parts shared among the cores when `work` is large
/// enough to be worth the threads: compile-time packing of large weights.
pub(crate) fn on_every_core<T: Send>(parts: &mut [T], work: usize, f: impl Fn(&mut T) + Sync) {
    let threads = if work >= PARALLEL_WORK {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        1
    };
    if threads == 1 {
        parts.iter_mut().for_each(f);
        return;
    }
    let (f, per) = (&f, parts.len().div_ceil(threads).max(1));
    std::thread::scope(|s| {
        for chunk in parts.chunks_mut(per) {
            s.spawn(move || chunk.iter_mut().for_each(f));
        }
    });
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Table::Bytes(b) => write!(f, "Table::Bytes({} bytes)", b.len()),
            Table::Fill { len, .. } => write!(f, "Table::Fill({len} floats)"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub func: FuncId,
    pub tasks: usize,
}

/// An operand of the node being generated.
pub struct Operand<'g> {
    pub value: Value,
    pub ty: &'g TensorType,
    /// The value, when it is a compile-time constant.
    pub constant: Option<&'g Tensor>,
}

/// Largest number of tasks a loop is split into, and the least work (elements or
/// multiply-adds) worth a task of its own.
pub const MAX_TASKS: usize = 16;
pub const MIN_TASK_WORK: usize = 1 << 15;

/// How many tasks `work` is worth, however it divides.
pub fn wanted_tasks(work: usize) -> usize {
    (work / MIN_TASK_WORK).clamp(1, MAX_TASKS)
}

/// How many tasks `units` independent pieces of work totalling `work` should form.
pub fn tasks_for(units: usize, work: usize) -> usize {
    wanted_tasks(work).min(units.max(1))
}

/// Blocks of output rows for `planes` independent planes of `rows` rows totalling
/// `work`: the rows per block and the number of blocks per plane, small enough that
/// `planes * blocks` units give every task the work is worth.
pub fn row_blocks(planes: usize, rows: usize, work: usize) -> (usize, usize) {
    let wanted = wanted_tasks(work);
    let per_block = rows.div_ceil(wanted.div_ceil(planes.max(1)).clamp(1, rows.max(1)));
    (per_block, rows.div_ceil(per_block.max(1)))
}

pub struct KernelCx<'a> {
    pub module: &'a mut dyn Module,
    pub ctx: &'a mut Context,
    pub fctx: &'a mut FunctionBuilderContext,
    pub features: Features,
    /// Symbol prefix of the model; kernels are named `{prefix}_k{n}`.
    pub prefix: &'a str,
    pub counter: &'a mut usize,
    /// Where the finished functions wait to be compiled.
    pub queue: &'a mut Queue,
    pub inputs: Vec<Operand<'a>>,
    pub outputs: Vec<(Value, &'a TensorType)>,
    /// The node's blocking, when the tiling pass chose one.
    pub tile: Option<Tile>,
    args: Vec<ArgSource>,
    arg_of_value: HashMap<Value, usize>,
    launches: Vec<Launch>,
}

impl<'a> KernelCx<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        module: &'a mut dyn Module,
        ctx: &'a mut Context,
        fctx: &'a mut FunctionBuilderContext,
        features: Features,
        prefix: &'a str,
        counter: &'a mut usize,
        queue: &'a mut Queue,
        inputs: Vec<Operand<'a>>,
        outputs: Vec<(Value, &'a TensorType)>,
    ) -> Self {
        KernelCx {
            module,
            ctx,
            fctx,
            features,
            prefix,
            counter,
            queue,
            inputs,
            outputs,
            tile: None,
            args: Vec::new(),
            arg_of_value: HashMap::new(),
            launches: Vec::new(),
        }
    }

    /// The arguments and launches generated, for the program to place and run.
    pub fn finish(self) -> (Vec<ArgSource>, Vec<Launch>) {
        (self.args, self.launches)
    }

    fn value_arg(&mut self, v: Value) -> usize {
        if let Some(&k) = self.arg_of_value.get(&v) {
            return k;
        }
        self.args.push(ArgSource::Value(v));
        self.arg_of_value.insert(v, self.args.len() - 1);
        self.args.len() - 1
    }

    /// The argument slot of input `i`.
    pub fn input(&mut self, i: usize) -> usize {
        let v = self.inputs[i].value;
        self.value_arg(v)
    }

    /// The argument slot of output `i`.
    pub fn output(&mut self, i: usize) -> usize {
        let v = self.outputs[i].0;
        self.value_arg(v)
    }

    /// Adds an argument as it is.
    pub fn arg(&mut self, a: ArgSource) -> usize {
        self.args.push(a);
        self.args.len() - 1
    }

    /// A new scratch buffer of `bytes`, live while this node runs.
    pub fn scratch(&mut self, bytes: usize) -> usize {
        self.args.push(ArgSource::Scratch(bytes));
        self.args.len() - 1
    }

    /// New constant data holding `data` (index tables, small weights), kept in its own
    /// allocation until the constant data is laid out (no copy to bytes).
    pub fn table<T: bytemuck::Pod + Send>(&mut self, data: Vec<T>) -> usize {
        self.args
            .push(ArgSource::Table(Table::Bytes(cnnc_ir::vec_bytes(data))));
        self.args.len() - 1
    }

    /// New constant data of `len` floats, written by `fill` when the constant data is
    /// laid out (see [`Table::Fill`]).
    pub fn table_filled(
        &mut self,
        len: usize,
        fill: impl Fn(&mut [f32]) + Send + Sync + 'static,
    ) -> usize {
        self.args.push(ArgSource::Table(Table::Fill {
            len,
            fill: Arc::new(fill),
        }));
        self.args.len() - 1
    }

    /// Emits a task function run `tasks` times; `body(fx, task, ptrs)` gets the task
    /// index and the pointers of every argument declared so far.
    pub fn launch(
        &mut self,
        tasks: usize,
        body: impl FnOnce(
            &mut Fx,
            cranelift_codegen::ir::Value,
            &[cranelift_codegen::ir::Value],
        ) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let name = format!("{}_k{}", self.prefix, self.counter);
        *self.counter += 1;
        let mut sig = Signature::new(self.module.isa().default_call_conv());
        sig.params.push(AbiParam::new(I64));
        sig.params.push(AbiParam::new(I64));
        let args = self.args.len();
        let id = self.define(&name, sig, Order::Optimized, |fx, params| {
            let (bufs, task) = (params[0], params[1]);
            let ptrs: Vec<_> = (0..args)
                .map(|k| {
                    let flags = crate::emit::mem().with_readonly();
                    fx.b.ins().load(I64, flags, bufs, (8 * k) as i32)
                })
                .collect();
            body(fx, task, &ptrs)
        })?;
        self.launches.push(Launch { func: id, tasks });
        Ok(())
    }

    /// Declares function `name` of signature `sig` (local to the module), builds it
    /// with `body(fx, params)` and queues it for compiling in `order`.
    pub fn define(
        &mut self,
        name: &str,
        sig: Signature,
        order: Order,
        body: impl FnOnce(&mut Fx, &[cranelift_codegen::ir::Value]) -> Result<(), CodegenError>,
    ) -> Result<FuncId, CodegenError> {
        let id = self.module.declare_function(name, Linkage::Local, &sig)?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        let frontend_config = self.module.target_config();
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let params = b.block_params(entry).to_vec();
            let mut fx = Fx {
                b,
                features: self.features,
            };
            body(&mut fx, &params)?;
            fx.b.ins().return_(&[]);
            fx.b.seal_all_blocks();
            fx.b.finalize(frontend_config);
        }
        self.queue.push_ordered(&*self.module, id, self.ctx, order);
        Ok(id)
    }
}

/// Emits the kernels of one node.
pub fn emit(cx: &mut KernelCx, op: &Op) -> Result<(), CodegenError> {
    match op {
        Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Cast { .. } => elementwise::emit(cx, op),
        Op::Conv(c) => conv::emit(cx, c),
        Op::DepthwiseConv(c) => depthwise::emit(cx, c),
        Op::ScaleShift(e) => norm::scale_shift(cx, e),
        Op::ChannelScale => norm::channel_scale(cx),
        Op::WinogradInput(w) => winograd::input(cx, w),
        Op::WinogradOutput(w) => winograd::output(cx, w),
        Op::Reorder { to } => movement::reorder(cx, *to),
        Op::ConvTranspose(c) => conv_transpose::emit(cx, c),
        Op::Col2Im(c) => conv_transpose::col2im(cx, c),
        Op::Pool(p) => pool::emit(cx, p),
        Op::GlobalPool(kind) => pool::emit_global(cx, *kind),
        Op::Gemm(g) => gemm::emit_gemm(cx, g),
        Op::MatMul { bias, epilogue } => gemm::emit_matmul(cx, *bias, epilogue),
        Op::BatchNorm { epsilon } => norm::batch_norm(cx, *epsilon),
        Op::InstanceNorm { epsilon } => norm::instance_norm(cx, *epsilon),
        Op::Lrn(l) => norm::lrn(cx, l),
        Op::Softmax { axis, log } => softmax::emit(cx, *axis, *log),
        Op::Reduce { kind, axes, .. } => reduce::emit(cx, *kind, axes),
        Op::Resize(r) => resize::emit(cx, r),
        Op::ChannelShuffle { groups } => channel_shuffle::emit(cx, *groups),
        Op::Concat { axis } => movement::concat(cx, *axis, &vec![false; cx.inputs.len()]),
        Op::Reshape { .. }
        | Op::Identity
        | Op::Transpose { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::Tile { .. }
        | Op::Expand { .. }
        | Op::Gather { .. } => movement::emit(cx, op),
        Op::Input | Op::Const(_) | Op::Shape { .. } => Err(CodegenError::Internal(format!(
            "{} reaches code generation; constants must be folded first",
            op.name()
        ))),
    }
}
