//! Lowering a graph to a program: one step per node (its kernel launches), storage for
//! every tensor (caller's input or output buffer, read-only constants, or an offset in
//! the workspace arena from the memory plan), and the entry function that runs the
//! steps in order (a banded Winograd convolution's three steps in a loop over its
//! bands, see `bands`).

use std::collections::{HashMap, HashSet};

use cnnc_ir::{DType, Graph, Op, Value};
use cnnc_passes::memory::{self, Buffer};
use cnnc_runtime::ALIGN;
use cranelift_codegen::Context;
use cranelift_codegen::ir;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{I32, I64};
use cranelift_codegen::ir::{
    AbiParam, InstBuilder, Signature, StackSlotData, StackSlotKind, UserFuncName,
};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataDescription, DataId, FuncId, Linkage, Module};

use crate::bands::{self, Banded};
use crate::compile::Queue;
use crate::const_memory::ConstMemory;
use crate::kernels::{self, ArgSource, CopyPlan, KernelCx, Launch, Operand, Table, copy_launch};
use crate::placement::Placement;
use crate::target::Features;
use crate::{CodegenError, Listing};

/// A tensor crossing the model's interface.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a caller of the compiled model needs to know.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    /// Symbol prefix: `{name}_run`, `{name}_run_threaded`, `{name}_workspace_size`.
    pub name: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// Bytes of scratch the caller provides, 64-byte aligned.
    pub workspace_size: usize,
    /// The most intermediate bytes live at once (no plan can need less).
    pub peak_live_bytes: usize,
    /// Bytes of constant data (weights and tables) in the code.
    pub constant_bytes: usize,
    /// Number of kernel launches per run.
    pub launches: usize,
    /// What each step of a run computes, in order: the node it runs (or the graph
    /// output a copy fills), for per-step timing.
    pub steps: Vec<StepInfo>,
}

/// One step of a run: the kernel launches of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    /// The name of the node's (first) output tensor, as `cnnc inspect` lists it, or
    /// `output NAME` for a copy into a graph output.
    pub name: String,
    /// The op's short name (`conv`, `copy`, ...).
    pub op: String,
}

/// Where a buffer is at run time.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Loc {
    Input(usize),
    /// Graph output `j`, at a byte offset.
    Output(usize, usize),
    Const(usize),
    Arena(usize),
    /// The first row of tiles of the band being run (`ArgSource::BandStart`).
    BandStart,
}

/// How the constant data reaches the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constants {
    /// Defined in the module as read-only data (object files).
    Define,
    /// Imported by symbol; the caller maps the symbol to the returned bytes (JIT).
    Import,
}

pub struct Lowered {
    pub info: ModelInfo,
    /// `run_threaded(inputs, outputs, workspace, parallel_for, pool) -> i32`.
    pub entry: FuncId,
    /// With profiling: the same with `(hook, hook_ctx)` after `pool`, calling
    /// `hook(hook_ctx, step)` after each step (after each band of a banded
    /// convolution's steps; see `abi::ProfiledRunFn`).
    pub profiled: Option<FuncId>,
    /// For `Constants::Import`, the constant data (64-byte aligned pieces) to map to
    /// the symbol `{name}_constants`; `None` where the module holds it.
    pub constants: Option<ConstMemory>,
}

struct Step {
    args: Vec<ArgSource>,
    launches: Vec<Launch>,
}

/// A step as the entry function runs it: where its arguments are, its launches.
type StepCode = (Vec<Loc>, Vec<Launch>);

/// The constant data: 64-byte aligned pieces, each distinct content stored once (shared
/// biases, identical tables), written once into memory of their total size.
struct ConstBlob {
    bytes: ConstMemory,
    /// Offsets of the pieces by a hash of their content.
    pieces: HashMap<u64, Vec<(usize, usize)>>,
}

impl ConstBlob {
    fn with_capacity(capacity: usize) -> Result<Self, CodegenError> {
        Ok(ConstBlob {
            bytes: ConstMemory::with_capacity(capacity)?,
            pieces: HashMap::new(),
        })
    }

    /// The offset of `bytes` in the data, appended unless already there.
    fn push(&mut self, bytes: &[u8]) -> usize {
        let key = content_key(bytes);
        if let Some(at) = self.find(key, bytes) {
            return at;
        }
        let at = self.next();
        self.bytes.extend_at(at, bytes.len()).copy_from_slice(bytes);
        self.pieces.entry(key).or_default().push((at, bytes.len()));
        at
    }

    /// The offset of `table`'s content, appended unless already there. A filled table
    /// is written in place first, and taken back if an equal piece was there before.
    fn push_table(&mut self, table: &Table) -> usize {
        let (bytes, fill) = match table {
            Table::Bytes(b) => return self.push(b),
            Table::Fill { len, fill } => (*len * 4, fill),
        };
        let (before, at) = (self.bytes.len(), self.next());
        fill(bytemuck::cast_slice_mut(self.bytes.extend_at(at, bytes)));
        let written = &self.bytes.as_slice()[at..];
        let key = content_key(written);
        if let Some(found) = self.find(key, written) {
            self.bytes.truncate(before);
            return found;
        }
        self.pieces.entry(key).or_default().push((at, bytes));
        at
    }

    /// Where the next piece goes.
    fn next(&self) -> usize {
        self.bytes.len().div_ceil(ALIGN) * ALIGN
    }

    /// An earlier piece equal to `bytes`, of content key `key`.
    fn find(&self, key: u64, bytes: &[u8]) -> Option<usize> {
        let data = self.bytes.as_slice();
        let same = self.pieces.get(&key)?;
        same.iter()
            .find(|&&(at, len)| &data[at..at + len] == bytes)
            .map(|&(at, _)| at)
    }
}

/// A key from the length and a sample of `bytes` (weights can be hundreds of MiB);
/// pieces of equal keys are compared in full.
fn content_key(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write_usize(bytes.len());
    let step = (bytes.len() / 64).max(1);
    for chunk in bytes.chunks(8).step_by(step.div_ceil(8)).take(64) {
        h.write(chunk);
    }
    h.write(&bytes[bytes.len().saturating_sub(32)..]);
    h.finish()
}

pub fn lower(
    graph: &Graph,
    module: &mut dyn Module,
    name: &str,
    constants: Constants,
    profile: bool,
    listing: Option<&mut Listing>,
) -> Result<Lowered, CodegenError> {
    let features = Features::of(module.isa());
    let mut step_info = Vec::new();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();
    let mut queue = Queue::default();
    let mut counter = 0usize;
    let banded = bands::find(graph)?;
    let order = bands::schedule(&graph.topo_order()?, &banded);
    let storage = bands::storage(graph, &banded);
    let stored = |v: Value| storage.get(&v).unwrap_or_else(|| graph.value_type(v));
    // The first step of each banded convolution, and its bands.
    let mut band_steps: Vec<(usize, Banded)> = Vec::new();

    let placement = Placement::of(graph, &order);
    let mut steps: Vec<Step> = Vec::new();
    for &id in &order {
        let node = graph.node(id);
        let inputs = graph.inputs_of(id);
        if matches!(node.op, Op::Input | Op::Const(_)) || placement.is_view(id) {
            continue;
        }
        let in_place: Vec<bool> = (0..inputs.len())
            .map(|k| placement.in_concat(id, k))
            .collect();
        if in_place.iter().all(|&p| p) && matches!(node.op, Op::Concat { .. }) {
            continue;
        }
        let operands: Vec<Operand> = inputs
            .iter()
            .map(|&v| {
                let (root, offset) = placement.find(v);
                Operand {
                    value: v,
                    ty: stored(v),
                    constant: match &graph.node(root.node).op {
                        Op::Const(t) if offset == 0 => Some(t),
                        _ => None,
                    },
                }
            })
            .collect();
        let outputs = (0..node.outputs.len())
            .map(|p| (Value::new(id, p), stored(Value::new(id, p))))
            .collect();
        // The products and the output transform are the next two steps (`schedule`).
        if let Some(b) = banded.iter().find(|b| b.input == id) {
            band_steps.push((steps.len(), *b));
        }
        let mut cx = KernelCx::new(
            module,
            &mut ctx,
            &mut fctx,
            features,
            name,
            &mut counter,
            &mut queue,
            operands,
            outputs,
        );
        cx.tile = node.tile;
        match &node.op {
            Op::Concat { axis } => kernels::concat(&mut cx, *axis, &in_place),
            op => kernels::emit(&mut cx, op),
        }
        .map_err(|e| e.at(&node.name, node.op.name()))?;
        let (args, launches) = cx.finish();
        steps.push(Step { args, launches });
        step_info.push(StepInfo {
            name: node.outputs[0].name.clone(),
            op: node.op.name().to_string(),
        });
    }

    // Graph outputs: a value computed by a kernel is written straight into the
    // caller's buffer; inputs, constants and repeated outputs are copied there.
    let mut output_of: HashMap<Value, usize> = HashMap::new();
    let computed = |v: Value| !matches!(graph.node(v.node).op, Op::Input | Op::Const(_));
    for (j, out) in graph.outputs().iter().enumerate() {
        let (v, offset) = placement.find(out.value);
        if computed(v)
            && offset == 0
            && graph.value_type(v).byte_size() == graph.value_type(out.value).byte_size()
            && !output_of.contains_key(&v)
        {
            output_of.insert(v, j);
            continue;
        }
        let ty = graph.value_type(out.value);
        let operands = vec![Operand {
            value: out.value,
            ty,
            constant: None,
        }];
        let mut cx = KernelCx::new(
            module,
            &mut ctx,
            &mut fctx,
            features,
            name,
            &mut counter,
            &mut queue,
            operands,
            vec![],
        );
        let src = cx.input(0);
        let dst = cx.arg(ArgSource::GraphOutput(j));
        copy_launch(
            &mut cx,
            src,
            dst,
            CopyPlan::dense(ty.numel(), ty.dtype.size()),
        )?;
        let (args, launches) = cx.finish();
        steps.push(Step { args, launches });
        step_info.push(StepInfo {
            name: format!("output {}", out.name),
            op: "copy".into(),
        });
    }

    // Lifetimes of arena buffers, in steps: a buffer lives while any value in it does
    // (through all three steps of a banded convolution when during any).
    let mut first: HashMap<Value, usize> = HashMap::new();
    let mut last: HashMap<Value, usize> = HashMap::new();
    for (s, step) in steps.iter().enumerate() {
        for a in &step.args {
            if let ArgSource::Value(v) = a {
                let root = placement.find(*v).0;
                first.entry(root).or_insert(s);
                last.insert(root, s);
            }
        }
    }
    let starts: Vec<usize> = band_steps.iter().map(|&(s, _)| s).collect();
    let lifetime = |steps| bands::lifetime(steps, &starts);
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_of: HashMap<Value, usize> = HashMap::new();
    let mut scratch_of: HashMap<(usize, usize), usize> = HashMap::new();
    for (s, step) in steps.iter().enumerate() {
        for (k, a) in step.args.iter().enumerate() {
            match a {
                ArgSource::Value(v) => {
                    let root = placement.find(*v).0;
                    if computed(root)
                        && !output_of.contains_key(&root)
                        && !buffer_of.contains_key(&root)
                    {
                        buffer_of.insert(root, buffers.len());
                        let (first, last) = lifetime((first[&root], last[&root]));
                        buffers.push(Buffer {
                            size: stored(root).byte_size(),
                            first,
                            last,
                        });
                    }
                }
                ArgSource::Scratch(bytes) => {
                    scratch_of.insert((s, k), buffers.len());
                    let (first, last) = lifetime((s, s));
                    buffers.push(Buffer {
                        size: *bytes,
                        first,
                        last,
                    });
                }
                _ => {}
            }
        }
    }
    let plan = memory::plan(&buffers, ALIGN);

    // Constant data: graph constants the kernels read, then their tables, in one
    // allocation of their total (hundreds of MiB with large weights; growing it would
    // copy it several times). Only constants read as they are count: weights a kernel
    // packs into a table are not stored twice, and the allocation is zeroed up front,
    // so room never used would still cost its page faults. At least one piece of room:
    // empty constants still need an address.
    let args = || steps.iter().flat_map(|s| &s.args);
    let tables: usize = args()
        .map(|a| match a {
            ArgSource::Table(t) => t.byte_len() + ALIGN,
            _ => 0,
        })
        .sum();
    let mut read = HashSet::new();
    let tensors: usize = args()
        .filter_map(|a| match a {
            ArgSource::Value(v) => Some(placement.find(*v).0),
            _ => None,
        })
        .filter_map(|root| match &graph.node(root.node).op {
            Op::Const(t) if read.insert(root) => Some(t.numel() * t.dtype().size() + ALIGN),
            _ => None,
        })
        .sum();
    let mut consts = ConstBlob::with_capacity(tables + tensors + ALIGN)?;
    let mut const_at: HashMap<Value, usize> = HashMap::new();
    let mut locs: Vec<Vec<Loc>> = Vec::new();
    for (s, step) in steps.iter().enumerate() {
        let mut l = Vec::with_capacity(step.args.len());
        for (k, a) in step.args.iter().enumerate() {
            l.push(match a {
                ArgSource::Value(v) => {
                    let (root, offset) = placement.find(*v);
                    match &graph.node(root.node).op {
                        Op::Input => Loc::Input(
                            graph
                                .inputs()
                                .iter()
                                .position(|&i| i == root.node)
                                .expect("an input"),
                        ),
                        Op::Const(t) => Loc::Const(
                            *const_at
                                .entry(root)
                                .or_insert_with(|| consts.push(&t.le_bytes())),
                        ),
                        _ => match output_of.get(&root) {
                            Some(&j) => Loc::Output(j, offset),
                            None => Loc::Arena(plan.offsets[buffer_of[&root]] + offset),
                        },
                    }
                }
                ArgSource::Scratch(_) => Loc::Arena(plan.offsets[scratch_of[&(s, k)]]),
                ArgSource::GraphOutput(j) => Loc::Output(*j, 0),
                ArgSource::Table(t) => Loc::Const(consts.push_table(t)),
                ArgSource::BandStart => Loc::BandStart,
            });
        }
        locs.push(l);
    }

    let mut blob = consts.bytes;
    if blob.is_empty() && locs.iter().flatten().any(|l| matches!(l, Loc::Const(_))) {
        blob.extend_at(0, ALIGN);
    }
    let constant_bytes = blob.len();
    let constants_symbol = format!("{name}_constants");
    let data = if blob.is_empty() {
        None
    } else {
        let linkage = match constants {
            Constants::Define => Linkage::Local,
            Constants::Import => Linkage::Import,
        };
        Some(module.declare_data(&constants_symbol, linkage, false, false)?)
    };
    let blob = match (constants, data) {
        (Constants::Define, Some(id)) => {
            // The module copies the bytes into its section: the blob goes before that,
            // so that a large model's constants are not held three times over (VGG-19:
            // 818 MB).
            let bytes: Box<[u8]> = blob.as_slice().into();
            drop(blob);
            let mut desc = DataDescription::new();
            desc.set_align(ALIGN as u64);
            desc.define(bytes);
            module.define_data(id, &desc)?;
            None
        }
        (Constants::Define, None) => None,
        (Constants::Import, _) => Some(blob),
    };
    let info = ModelInfo {
        name: name.to_string(),
        inputs: graph
            .inputs()
            .iter()
            .map(|&i| info_of(graph, Value::new(i, 0), None))
            .collect(),
        outputs: graph
            .outputs()
            .iter()
            .map(|o| info_of(graph, o.value, Some(&o.name)))
            .collect(),
        workspace_size: plan.arena_size,
        peak_live_bytes: plan.peak_live,
        constant_bytes,
        launches: steps
            .iter()
            .enumerate()
            .map(|(s, step)| {
                let runs = band_steps
                    .iter()
                    .find(|(first, _)| (*first..first + 3).contains(&s))
                    .map_or(1, |(_, b)| b.count);
                step.launches.len() * runs
            })
            .sum(),
        steps: step_info,
    };
    let launches: Vec<StepCode> = locs
        .into_iter()
        .zip(steps)
        .map(|(l, s)| (l, s.launches))
        .collect();
    let entry = emit_entry(
        module,
        &mut ctx,
        &mut fctx,
        (name, false),
        &info,
        data,
        &launches,
        &band_steps,
        &mut queue,
    )?;
    let profiled = if profile {
        Some(emit_entry(
            module,
            &mut ctx,
            &mut fctx,
            (name, true),
            &info,
            data,
            &launches,
            &band_steps,
            &mut queue,
        )?)
    } else {
        None
    };
    emit_wrappers(
        module,
        &mut ctx,
        &mut fctx,
        name,
        entry,
        info.workspace_size,
        &mut queue,
    )?;
    queue.compile(module, listing)?;
    Ok(Lowered {
        info,
        entry,
        profiled,
        constants: blob,
    })
}

fn info_of(graph: &Graph, v: Value, name: Option<&str>) -> TensorInfo {
    let t = graph.value_type(v);
    TensorInfo {
        name: name.unwrap_or(graph.value_name(v)).to_string(),
        dtype: t.dtype,
        shape: t.shape.clone(),
    }
}

/// Status codes, as `cnnc_runtime::abi::status`.
const NULL_TENSOR: i64 = cnnc_runtime::abi::status::NULL_TENSOR as i64;
const NULL_WORKSPACE: i64 = cnnc_runtime::abi::status::NULL_WORKSPACE as i64;

/// `{name}_run_threaded`, or with `profiled` the local `{name}_run_profiled`, which
/// takes `(hook, hook_ctx)` after the pool and calls `hook(hook_ctx, step)` after each
/// step.
#[allow(clippy::too_many_arguments)]
fn emit_entry(
    module: &mut dyn Module,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    (name, profiled): (&str, bool),
    info: &ModelInfo,
    data: Option<DataId>,
    steps: &[StepCode],
    band_steps: &[(usize, Banded)],
    queue: &mut Queue,
) -> Result<FuncId, CodegenError> {
    let call_conv = module.isa().default_call_conv();
    let mut sig = Signature::new(call_conv);
    for _ in 0..if profiled { 7 } else { 5 } {
        sig.params.push(AbiParam::new(I64));
    }
    sig.returns.push(AbiParam::new(I32));
    let id = if profiled {
        module.declare_function(&format!("{name}_run_profiled"), Linkage::Local, &sig)?
    } else {
        module.declare_function(&format!("{name}_run_threaded"), Linkage::Export, &sig)?
    };
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut task_sig = Signature::new(call_conv);
    task_sig.params.push(AbiParam::new(I64));
    task_sig.params.push(AbiParam::new(I64));
    let mut pfor_sig = Signature::new(call_conv);
    for _ in 0..4 {
        pfor_sig.params.push(AbiParam::new(I64));
    }
    let mut hook_sig = Signature::new(call_conv);
    hook_sig.params.push(AbiParam::new(I64));
    hook_sig.params.push(AbiParam::new(I64));
    let func_refs: HashMap<FuncId, ir::FuncRef> = steps
        .iter()
        .flat_map(|(_, l)| l.iter().map(|l| l.func))
        .map(|f| (f, module.declare_func_in_func(f, &mut ctx.func)))
        .collect();
    let gv = data.map(|d| module.declare_data_in_func(d, &mut ctx.func));
    let max_args = steps.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let frontend_config = module.target_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let p = b.block_params(entry).to_vec();
        let (inputs, outputs, workspace, pfor, pool) = (p[0], p[1], p[2], p[3], p[4]);
        // Null checks, each failing to its status code.
        let check = |b: &mut FunctionBuilder, ptr, code: i64| {
            let fail = b.create_block();
            let ok = b.create_block();
            b.ins().brif(ptr, ok, &[], fail, &[]);
            b.switch_to_block(fail);
            let c = b.ins().iconst(I32, code);
            b.ins().return_(&[c]);
            b.switch_to_block(ok);
        };
        check(&mut b, inputs, NULL_TENSOR);
        check(&mut b, outputs, NULL_TENSOR);
        let flags = crate::emit::mem();
        let in_ptrs: Vec<_> = (0..info.inputs.len())
            .map(|i| {
                let v = b.ins().load(I64, flags, inputs, (8 * i) as i32);
                check(&mut b, v, NULL_TENSOR);
                v
            })
            .collect();
        let out_ptrs: Vec<_> = (0..info.outputs.len())
            .map(|i| {
                let v = b.ins().load(I64, flags, outputs, (8 * i) as i32);
                check(&mut b, v, NULL_TENSOR);
                v
            })
            .collect();
        if info.workspace_size > 0 {
            check(&mut b, workspace, NULL_WORKSPACE);
        }
        let base = gv.map(|gv| b.ins().symbol_value(I64, gv));
        let slot = b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (8 * max_args.max(1)) as u32,
            3,
        ));
        let has_pool = b.ins().icmp_imm_s(IntCC::NotEqual, pfor, 0);
        let pfor_sig = b.import_signature(pfor_sig);
        let hook = profiled.then(|| (p[5], p[6], b.import_signature(hook_sig)));
        let run = Runner {
            in_ptrs,
            out_ptrs,
            workspace,
            base,
            slot,
            has_pool,
            pfor: (pfor, pool, pfor_sig),
            func_refs: &func_refs,
            hook,
        };
        let mut step = 0;
        while step < steps.len() {
            let Some(&(_, banded)) = band_steps.iter().find(|(s, _)| *s == step) else {
                run.step(&mut b, step, &steps[step], None);
                step += 1;
                continue;
            };
            // The three steps of a banded convolution, band by band.
            counted_loop(&mut b, banded.count, |b, band| {
                let start = b.ins().imul_imm_s(band, banded.band as i64);
                let last = b.ins().iconst(I64, (banded.rows - banded.band) as i64);
                let start = b.ins().umin(start, last);
                for (k, code) in steps.iter().enumerate().skip(step).take(3) {
                    run.step(b, k, code, Some(start));
                }
            });
            step += 3;
        }
        let ok = b.ins().iconst(I32, 0);
        b.ins().return_(&[ok]);
        b.seal_all_blocks();
        b.finalize(frontend_config);
    }
    queue.push(module, id, ctx);
    Ok(id)
}

/// What the entry function's steps use: its arguments, the argument slot, the thread
/// pool and the profiling hook.
struct Runner<'a> {
    in_ptrs: Vec<ir::Value>,
    out_ptrs: Vec<ir::Value>,
    workspace: ir::Value,
    base: Option<ir::Value>,
    slot: ir::StackSlot,
    has_pool: ir::Value,
    /// `parallel_for`, its pool and its signature.
    pfor: (ir::Value, ir::Value, ir::SigRef),
    func_refs: &'a HashMap<FuncId, ir::FuncRef>,
    /// `hook`, its context and its signature (the profiled entry).
    hook: Option<(ir::Value, ir::Value, ir::SigRef)>,
}

impl Runner<'_> {
    /// Step `step`: its arguments into the slot (`band_start` for a banded
    /// convolution's), its launches, then the hook.
    fn step(
        &self,
        b: &mut FunctionBuilder,
        step: usize,
        (locs, launches): &StepCode,
        band_start: Option<ir::Value>,
    ) {
        for (k, loc) in locs.iter().enumerate() {
            let ptr = match *loc {
                Loc::Input(i) => self.in_ptrs[i],
                Loc::Output(j, 0) => self.out_ptrs[j],
                Loc::Output(j, off) => b.ins().iadd_imm_s(self.out_ptrs[j], off as i64),
                Loc::Const(off) => b
                    .ins()
                    .iadd_imm_s(self.base.expect("constant data"), off as i64),
                Loc::Arena(off) => b.ins().iadd_imm_s(self.workspace, off as i64),
                Loc::BandStart => band_start.expect("only banded steps (bands::find) ask"),
            };
            b.ins().stack_store(I64, ptr, self.slot, (8 * k) as i32);
        }
        let bufs = b.ins().stack_addr(I64, self.slot, 0);
        let (pfor, pool, pfor_sig) = self.pfor;
        for l in launches {
            let f = self.func_refs[&l.func];
            if l.tasks == 1 {
                let zero = b.ins().iconst(I64, 0);
                b.ins().call(f, &[bufs, zero]);
                continue;
            }
            let (par, seq, done) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(self.has_pool, par, &[], seq, &[]);
            b.switch_to_block(par);
            let addr = b.ins().func_addr(I64, f);
            let n = b.ins().iconst(I64, l.tasks as i64);
            b.ins()
                .call_indirect(pfor_sig, pfor, &[pool, addr, bufs, n]);
            b.ins().jump(done, &[]);
            b.switch_to_block(seq);
            counted_loop(b, l.tasks, |b, i| {
                b.ins().call(f, &[bufs, i]);
            });
            b.ins().jump(done, &[]);
            b.switch_to_block(done);
        }
        if let Some((hook, hook_ctx, sig)) = self.hook {
            let k = b.ins().iconst(I64, step as i64);
            b.ins().call_indirect(sig, hook, &[hook_ctx, k]);
        }
    }
}

/// `body(b, i)` for `i` in `0..n` (`n` at least 1), a loop continuing in a new block.
fn counted_loop(
    b: &mut FunctionBuilder,
    n: usize,
    mut body: impl FnMut(&mut FunctionBuilder, ir::Value),
) {
    let (head, exit) = (b.create_block(), b.create_block());
    b.append_block_param(head, I64);
    let zero = b.ins().iconst(I64, 0);
    b.ins().jump(head, &[zero.into()]);
    b.switch_to_block(head);
    let i = b.block_params(head)[0];
    body(b, i);
    let next = b.ins().iadd_imm_s(i, 1);
    let more = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, next, n as i64);
    b.ins().brif(more, head, &[next.into()], exit, &[]);
    b.switch_to_block(exit);
}

/// `{name}_run(inputs, outputs, workspace)` (single-threaded) and
/// `{name}_workspace_size()`.
fn emit_wrappers(
    module: &mut dyn Module,
    ctx: &mut Context,
    fctx: &mut FunctionBuilderContext,
    name: &str,
    entry: FuncId,
    workspace_size: usize,
    queue: &mut Queue,
) -> Result<(), CodegenError> {
    let call_conv = module.isa().default_call_conv();
    let mut sig = Signature::new(call_conv);
    for _ in 0..3 {
        sig.params.push(AbiParam::new(I64));
    }
    sig.returns.push(AbiParam::new(I32));
    let id = module.declare_function(&format!("{name}_run"), Linkage::Export, &sig)?;
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let callee = module.declare_func_in_func(entry, &mut ctx.func);
    let frontend_config = module.target_config();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let mut args = b.block_params(block).to_vec();
        let null = b.ins().iconst(I64, 0);
        args.extend([null, null]);
        let call = b.ins().call(callee, &args);
        let r = b.inst_results(call)[0];
        b.ins().return_(&[r]);
        b.seal_all_blocks();
        b.finalize(frontend_config);
    }
    queue.push(module, id, ctx);

    let mut sig = Signature::new(call_conv);
    sig.returns.push(AbiParam::new(I64));
    let id = module.declare_function(&format!("{name}_workspace_size"), Linkage::Export, &sig)?;
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
        let block = b.create_block();
        b.switch_to_block(block);
        let v = b.ins().iconst(I64, workspace_size as i64);
        b.ins().return_(&[v]);
        b.seal_all_blocks();
        b.finalize(frontend_config);
    }
    queue.push(module, id, ctx);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn fill(values: Vec<f32>) -> Table {
        Table::Fill {
            len: values.len(),
            fill: Arc::new(move |dst: &mut [f32]| dst.copy_from_slice(&values)),
        }
    }

    #[test]
    fn filled_tables_are_written_in_place_and_stored_once() {
        let mut blob = ConstBlob::with_capacity(1024).unwrap();
        let a = blob.push_table(&fill(vec![1.0, 2.0, 3.0]));
        let b = blob.push_table(&Table::Bytes(cnnc_ir::vec_bytes(vec![7u8])));
        // Equal to the first: taken back, the room it used zero again.
        let c = blob.push_table(&fill(vec![1.0, 2.0, 3.0]));
        assert_eq!((a, b, c), (0, ALIGN, 0));
        assert_eq!(blob.bytes.len(), ALIGN + 1);
        assert!(blob.bytes.extend_at(2 * ALIGN, 12).iter().all(|&x| x == 0));
        blob.bytes.truncate(ALIGN + 1);
        let d = blob.push_table(&fill(vec![1.0, 2.0, 4.0]));
        let e = blob.push(bytemuck::cast_slice(&[1.0f32, 2.0, 4.0]));
        assert_eq!((d, e), (2 * ALIGN, 2 * ALIGN));
        let data = blob.bytes.as_slice();
        assert_eq!(data.len(), 2 * ALIGN + 12);
        assert_eq!(
            bytemuck::cast_slice::<u8, f32>(&data[..12]),
            &[1.0, 2.0, 3.0]
        );
        assert!(data[12..ALIGN].iter().all(|&x| x == 0));
        assert!(data[ALIGN + 1..2 * ALIGN].iter().all(|&x| x == 0));
        assert_eq!(
            bytemuck::cast_slice::<u8, f32>(&data[2 * ALIGN..]),
            &[1.0, 2.0, 4.0]
        );
    }
}
