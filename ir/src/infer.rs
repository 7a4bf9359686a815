//! Output types of every op from its input types and attributes.
//!
//! The importer builds nodes through this, and `verify` re-runs it after every pass,
//! so a node's recorded output types always agree with its op. All arithmetic on
//! dimensions is checked: the numbers come from model files.

use crate::op::{Activation, Binary, Epilogue, LayoutRule, Op, Unary};
use crate::types::checked_numel;
use crate::{DType, IrError, Layout, TensorType, ensure};

fn err<T>(msg: impl Into<String>) -> Result<T, IrError> {
    Err(IrError::shape(msg))
}

fn overflow() -> IrError {
    IrError::shape("dimension arithmetic overflows")
}

/// numpy broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, IrError> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        let off = rank - s.len();
        if i < off { 1 } else { s[i - off] }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Whether `from` broadcasts to exactly `to` (ONNX "unidirectional" broadcasting).
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// Spatial output size of a convolution or pooling window:
/// `(in + pads - ((k - 1) * d + 1)) / s + 1`, rounded down or (ceil_mode) up.
pub fn window_output(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    ceil_mode: bool,
) -> Result<usize, IrError> {
    ensure!(kernel >= 1, "kernel size must be at least 1");
    ensure!(stride >= 1, "stride must be at least 1");
    ensure!(dilation >= 1, "dilation must be at least 1");
    let span = (kernel - 1)
        .checked_mul(dilation)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(overflow)?;
    let padded = input
        .checked_add(pads.0)
        .and_then(|v| v.checked_add(pads.1))
        .ok_or_else(overflow)?;
    ensure!(
        padded >= span,
        "window of {span} (kernel {kernel}, dilation {dilation}) is larger than the padded input {padded}"
    );
    let mut out = if ceil_mode {
        (padded - span).div_ceil(stride) + 1
    } else {
        (padded - span) / stride + 1
    };
    // The last window must start inside the input or the left padding.
    let last_start = (out - 1).checked_mul(stride);
    if ceil_mode && last_start.is_none_or(|start| start >= input + pads.0) {
        out -= 1;
    }
    Ok(out)
}

/// Output size of a transposed convolution along one axis:
/// `stride * (in - 1) + output_padding + (k - 1) * d + 1 - pad_begin - pad_end`.
pub fn transposed_output(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    output_padding: usize,
) -> Result<usize, IrError> {
    ensure!(input >= 1, "transposed convolution of an empty axis");
    ensure!(
        stride >= 1 && dilation >= 1 && kernel >= 1,
        "strides, dilations and kernel must be at least 1"
    );
    let full = stride
        .checked_mul(input - 1)
        .and_then(|v| v.checked_add(output_padding))
        .and_then(|v| v.checked_add((kernel - 1).checked_mul(dilation)?))
        .and_then(|v| v.checked_add(1))
        .ok_or_else(overflow)?;
    let cropped = pads.0.checked_add(pads.1).ok_or_else(overflow)?;
    ensure!(
        full > cropped,
        "pads {pads:?} crop the whole output of size {full}"
    );
    Ok(full - cropped)
}

/// Element types outside what an op computes on are unsupported (ONNX may allow them).
fn expect_dtype(t: &TensorType, dtype: DType, what: &str) -> Result<(), IrError> {
    if t.dtype != dtype {
        return Err(IrError::unsupported(format!("{what} of type {}", t.dtype)));
    }
    Ok(())
}

/// The spatial axes of `x` for a transposed convolution's (or col2im's) attributes.
fn transposed_spatial(c: &crate::op::ConvTranspose, x: &TensorType) -> Result<usize, IrError> {
    check_spatial(
        x.rank(),
        &[
            ("kernel", c.kernel.len()),
            ("strides", c.strides.len()),
            ("dilations", c.dilations.len()),
            ("pads", c.pads.len()),
            ("output_padding", c.output_padding.len()),
        ],
    )
}

/// The output of a transposed convolution (or col2im) of `x` to `m` channels, after
/// checking its optional bias.
fn transposed_type(
    c: &crate::op::ConvTranspose,
    x: &TensorType,
    m: usize,
    bias: Option<&&TensorType>,
    spatial: usize,
) -> Result<Vec<TensorType>, IrError> {
    if let Some(b) = bias {
        expect_dtype(b, DType::F32, "bias")?;
        ensure!(b.shape == [m], "bias {b} must be [{m}]");
    }
    let mut out = vec![x.shape[0], m];
    for i in 0..spatial {
        out.push(transposed_output(
            x.shape[2 + i],
            c.kernel[i],
            c.strides[i],
            c.dilations[i],
            c.pads[i],
            c.output_padding[i],
        )?);
    }
    Ok(vec![TensorType::f32(out)])
}

fn check_spatial(rank: usize, lens: &[(&str, usize)]) -> Result<usize, IrError> {
    ensure!(
        rank >= 3,
        "expected a tensor of rank 3 or more (N, C, spatial...), got rank {rank}"
    );
    let spatial = rank - 2;
    for (name, len) in lens {
        ensure!(
            *len == spatial,
            "{name} has {len} entries for {spatial} spatial axes"
        );
    }
    Ok(spatial)
}

impl Op {
    /// `(min, max)` number of inputs.
    /// With epilogue inputs the optional bias must be present, so the positions of
    /// every input are unambiguous.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input | Op::Const(_) => (0, 0),
            Op::Conv(_) | Op::DepthwiseConv(_) | Op::ConvTranspose(_) | Op::Gemm(_) => {
                match self.epilogue().map_or(0, Epilogue::extra_inputs) {
                    0 => (2, 3),
                    e => (3 + e, 3 + e),
                }
            }
            Op::Col2Im(c) => match c.epilogue.extra_inputs() {
                0 => (1, 2),
                e => (2 + e, 2 + e),
            },
            Op::MatMul { bias, epilogue } => {
                let n = 2 + *bias as usize + epilogue.extra_inputs();
                (n, n)
            }
            Op::BatchNorm { .. } => (5, 5),
            Op::InstanceNorm { .. } | Op::Where | Op::ScaleShift(_) => (3, 3),
            Op::WinogradOutput(w) => {
                let n = 2 + w.epilogue.extra_inputs();
                (n, n)
            }
            Op::Binary(_) | Op::Gather { .. } | Op::ChannelScale => (2, 2),
            Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }

    /// The epilogue of ops that have one.
    pub fn epilogue(&self) -> Option<&Epilogue> {
        match self {
            Op::Conv(c) | Op::DepthwiseConv(c) => Some(&c.epilogue),
            Op::ConvTranspose(c) | Op::Col2Im(c) => Some(&c.epilogue),
            Op::Gemm(g) => Some(&g.epilogue),
            Op::MatMul { epilogue, .. } => Some(epilogue),
            Op::WinogradOutput(w) => Some(&w.epilogue),
            Op::ScaleShift(e) => Some(e),
            _ => None,
        }
    }

    /// Output types for these input types, or why the inputs do not fit the op. The
    /// outputs are plain, except that an op which follows its input's layout (see
    /// [`LayoutRule::Follows`]) keeps it; a convolution's layout is the layout pass's
    /// choice, recorded on its output.
    pub fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, IrError> {
        let mut out = self.infer_shapes(inputs)?;
        if matches!(
            self.layout_rule(),
            LayoutRule::Follows | LayoutRule::FollowsFirst
        ) && let (Some(x), [y]) = (inputs.first(), out.as_mut_slice())
        {
            y.layout = x.layout;
        }
        // Plain products: the transforms convert (see `Winograd::plain_products`).
        match (self, out.as_mut_slice()) {
            (Op::WinogradInput(w), [y]) if w.plain_products.is_some() => y.layout = Layout::Plain,
            (Op::WinogradOutput(w), [y]) => {
                if let Some(block) = w.plain_products {
                    y.layout = Layout::Blocked { block };
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn infer_shapes(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, IrError> {
        let (lo, hi) = self.arity();
        ensure!(
            inputs.len() >= lo && inputs.len() <= hi,
            "{} takes {} inputs, got {}",
            self.name(),
            if lo == hi {
                lo.to_string()
            } else if hi == usize::MAX {
                format!("{lo}+")
            } else {
                format!("{lo} to {hi}")
            },
            inputs.len()
        );
        if let Some(e) = self.epilogue() {
            let own = inputs.len() - e.extra_inputs();
            let outs = self.infer_own(&inputs[..own])?;
            check_epilogue(e, &inputs[own..], &outs[0])?;
            return Ok(outs);
        }
        self.infer_own(inputs)
    }

    /// Output types from the op's own inputs (without the epilogue's).
    fn infer_own(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, IrError> {
        let one = |t: TensorType| Ok(vec![t]);
        match self {
            Op::Input => Err(IrError::invalid("input types are declared, not inferred")),
            Op::Const(t) => one(t.ty()),
            Op::DepthwiseConv(c) => {
                ensure!(
                    c.groups == inputs[0].shape.get(1).copied().unwrap_or(0),
                    "a depthwise convolution has one group per input channel"
                );
                Op::Conv(c.clone()).infer_own(inputs)
            }
            Op::Conv(c) => {
                let (x, w) = (inputs[0], inputs[1]);
                expect_dtype(x, DType::F32, "conv input")?;
                expect_dtype(w, DType::F32, "conv weight")?;
                let spatial = check_spatial(
                    x.rank(),
                    &[
                        ("kernel", c.kernel.len()),
                        ("strides", c.strides.len()),
                        ("dilations", c.dilations.len()),
                        ("pads", c.pads.len()),
                    ],
                )?;
                ensure!(
                    w.rank() == x.rank(),
                    "weight {w} must have the rank of input {x}"
                );
                ensure!(
                    w.shape[2..] == c.kernel[..],
                    "weight {w} does not match kernel {:?}",
                    c.kernel
                );
                let (m, cin) = (w.shape[0], x.shape[1]);
                ensure!(c.groups >= 1, "groups must be at least 1");
                ensure!(
                    cin % c.groups == 0 && m % c.groups == 0,
                    "{cin} input and {m} output channels are not divisible into {} groups",
                    c.groups
                );
                let expected = w.shape[1].checked_mul(c.groups).ok_or_else(overflow)?;
                ensure!(
                    expected == cin,
                    "weight {w} expects {expected} input channels, input {x} has {cin}"
                );
                if let Some(b) = inputs.get(2) {
                    expect_dtype(b, DType::F32, "conv bias")?;
                    ensure!(b.shape == [m], "bias {b} must be [{m}]");
                }
                let mut out = vec![x.shape[0], m];
                for i in 0..spatial {
                    out.push(window_output(
                        x.shape[2 + i],
                        c.kernel[i],
                        c.strides[i],
                        c.dilations[i],
                        c.pads[i],
                        false,
                    )?);
                }
                one(TensorType::f32(out))
            }
            Op::ConvTranspose(c) => {
                let (x, w) = (inputs[0], inputs[1]);
                expect_dtype(x, DType::F32, "conv_transpose input")?;
                expect_dtype(w, DType::F32, "conv_transpose weight")?;
                let spatial = transposed_spatial(c, x)?;
                ensure!(
                    w.rank() == x.rank(),
                    "weight {w} must have the rank of input {x}"
                );
                ensure!(
                    w.shape[2..] == c.kernel[..],
                    "weight {w} does not match kernel {:?}",
                    c.kernel
                );
                let cin = x.shape[1];
                ensure!(c.groups >= 1, "groups must be at least 1");
                ensure!(
                    w.shape[0] == cin,
                    "weight {w} expects {} input channels, input {x} has {cin}",
                    w.shape[0]
                );
                ensure!(
                    cin % c.groups == 0,
                    "{cin} input channels are not divisible into {} groups",
                    c.groups
                );
                let m = w.shape[1].checked_mul(c.groups).ok_or_else(overflow)?;
                transposed_type(c, x, m, inputs.get(2), spatial)
            }
            Op::Col2Im(c) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "col2im columns")?;
                let spatial = transposed_spatial(c, x)?;
                let taps = checked_numel(&c.kernel).ok_or_else(overflow)?;
                let per_tap = taps.checked_mul(c.groups).ok_or_else(overflow)?;
                ensure!(
                    per_tap > 0 && x.shape[1].is_multiple_of(per_tap),
                    "{x} does not hold whole columns of kernel {:?} in {} groups",
                    c.kernel,
                    c.groups
                );
                let m = x.shape[1] / taps;
                transposed_type(c, x, m, inputs.get(1), spatial)
            }
            Op::Pool(p) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "pool input")?;
                let spatial = check_spatial(
                    x.rank(),
                    &[
                        ("kernel", p.kernel.len()),
                        ("strides", p.strides.len()),
                        ("dilations", p.dilations.len()),
                        ("pads", p.pads.len()),
                    ],
                )?;
                let mut out = x.shape[..2].to_vec();
                for i in 0..spatial {
                    out.push(window_output(
                        x.shape[2 + i],
                        p.kernel[i],
                        p.strides[i],
                        p.dilations[i],
                        p.pads[i],
                        p.ceil_mode,
                    )?);
                }
                one(TensorType::f32(out))
            }
            Op::GlobalPool(_) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "pool input")?;
                check_spatial(x.rank(), &[])?;
                let mut out = x.shape.clone();
                out[2..].fill(1);
                one(TensorType::f32(out))
            }
            Op::Lrn(l) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "lrn input")?;
                ensure!(x.rank() >= 2, "lrn input must have a channel axis, got {x}");
                ensure!(l.size >= 1, "lrn size must be at least 1");
                one(x.clone())
            }
            Op::BatchNorm { .. } | Op::InstanceNorm { .. } => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "normalization input")?;
                let min_rank = if matches!(self, Op::InstanceNorm { .. }) {
                    3
                } else {
                    2
                };
                ensure!(
                    x.rank() >= min_rank,
                    "normalization input {x} needs rank {min_rank} or more"
                );
                let c = x.shape[1];
                for p in &inputs[1..] {
                    expect_dtype(p, DType::F32, "normalization parameter")?;
                    ensure!(p.shape == [c], "parameter {p} must be [{c}]");
                }
                one(x.clone())
            }
            Op::Gemm(g) => {
                let (a, b) = (inputs[0], inputs[1]);
                expect_dtype(a, DType::F32, "gemm A")?;
                expect_dtype(b, DType::F32, "gemm B")?;
                ensure!(
                    a.rank() == 2 && b.rank() == 2,
                    "gemm needs 2-D A and B, got {a} and {b}"
                );
                let (m, ka) = if g.trans_a {
                    (a.shape[1], a.shape[0])
                } else {
                    (a.shape[0], a.shape[1])
                };
                let (kb, n) = if g.trans_b {
                    (b.shape[1], b.shape[0])
                } else {
                    (b.shape[0], b.shape[1])
                };
                ensure!(
                    ka == kb,
                    "gemm inner dimensions differ: {a} and {b} (trans_a={}, trans_b={})",
                    g.trans_a,
                    g.trans_b
                );
                if let Some(c) = inputs.get(2) {
                    expect_dtype(c, DType::F32, "gemm C")?;
                    ensure!(
                        broadcasts_to(&c.shape, &[m, n]),
                        "gemm C {c} does not broadcast to [{m}, {n}]"
                    );
                }
                one(TensorType::f32(vec![m, n]))
            }
            Op::MatMul { bias, .. } => {
                let (a, b) = (inputs[0], inputs[1]);
                expect_dtype(a, DType::F32, "matmul A")?;
                expect_dtype(b, DType::F32, "matmul B")?;
                let shape = matmul_shape(&a.shape, &b.shape)?;
                if *bias {
                    let c = inputs[2];
                    expect_dtype(c, DType::F32, "matmul bias")?;
                    ensure!(
                        broadcasts_to(&c.shape, &shape),
                        "bias {c} does not broadcast to {shape:?}"
                    );
                }
                one(TensorType::f32(shape))
            }
            Op::ScaleShift(e) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "scale_shift input")?;
                ensure!(
                    e.extra_inputs() == 0,
                    "a scale_shift epilogue is an activation without inputs"
                );
                ensure!(x.rank() >= 2, "scale_shift needs a channel axis, got {x}");
                for p in &inputs[1..] {
                    expect_dtype(p, DType::F32, "scale_shift parameter")?;
                    ensure!(
                        p.shape == [x.shape[1]],
                        "parameter {p} must be [{}]",
                        x.shape[1]
                    );
                }
                one(x.clone())
            }
            Op::WinogradInput(w) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "winograd_input input")?;
                ensure!(x.rank() == 4, "winograd_input needs [N, C, H, W], got {x}");
                ensure!(w.epilogue.is_empty(), "an input transform has no epilogue");
                let t = winograd_input_side(w)?;
                let (n, c) = (x.shape[0], x.shape[1]);
                let ch = checked_numel(&[t, t, c]).ok_or_else(overflow)?;
                one(TensorType::f32(vec![n, ch, w.plane[0], w.plane[1]]))
            }
            Op::WinogradOutput(w) => {
                let (p, b) = (inputs[0], inputs[1]);
                expect_dtype(p, DType::F32, "winograd_output products")?;
                let t = winograd_input_side(w)?;
                ensure!(
                    p.rank() == 4 && p.shape[1] % (t * t) == 0 && p.shape[2..] == w.plane,
                    "winograd_output products {p} must be [N, {}*M, {}, {}]",
                    t * t,
                    w.plane[0],
                    w.plane[1]
                );
                let m = p.shape[1] / (t * t);
                expect_dtype(b, DType::F32, "winograd_output bias")?;
                ensure!(b.shape == [m], "bias {b} must be [{m}]");
                one(TensorType::f32(vec![p.shape[0], m, w.out[0], w.out[1]]))
            }
            Op::ChannelScale => {
                let (x, g) = (inputs[0], inputs[1]);
                expect_dtype(x, DType::F32, "channel_scale input")?;
                expect_dtype(g, DType::F32, "channel_scale gate")?;
                ensure!(x.rank() >= 2, "channel_scale needs a channel axis, got {x}");
                let mut want = x.shape.clone();
                want[2..].fill(1);
                ensure!(g.shape == want, "gate {g} must be {want:?}");
                one(x.clone())
            }
            Op::Reorder { to } => {
                let x = inputs[0];
                let t = TensorType {
                    layout: *to,
                    ..x.clone()
                };
                one(t)
            }
            Op::Unary(u) => {
                let x = inputs[0];
                let int_ok = matches!(u, Unary::Abs | Unary::Neg);
                if !(x.dtype == DType::F32 || (int_ok && x.dtype.is_integer())) {
                    return Err(IrError::unsupported(format!("{} of {}", u.name(), x.dtype)));
                }
                one(TensorType::new(x.dtype, x.shape.clone()))
            }
            Op::Binary(op) => {
                let (a, b) = (inputs[0], inputs[1]);
                ensure!(
                    a.dtype == b.dtype,
                    "operands {a} and {b} have different types"
                );
                let numeric = a.dtype == DType::F32 || a.dtype.is_integer();
                if !(numeric || *op == Binary::Equal) {
                    return Err(IrError::unsupported(format!(
                        "{} of {}",
                        op.name(),
                        a.dtype
                    )));
                }
                if *op == Binary::PRelu {
                    ensure!(a.dtype == DType::F32, "prelu needs f32");
                    ensure!(
                        broadcasts_to(&b.shape, &a.shape),
                        "slope {b} does not broadcast to {a}"
                    );
                    return one(TensorType::f32(a.shape.clone()));
                }
                let shape = broadcast_shapes(&a.shape, &b.shape)?;
                let dtype = if op.is_comparison() {
                    DType::Bool
                } else {
                    a.dtype
                };
                one(TensorType::new(dtype, shape))
            }
            Op::Where => {
                let (c, x, y) = (inputs[0], inputs[1], inputs[2]);
                expect_dtype(c, DType::Bool, "where condition")?;
                ensure!(
                    x.dtype == y.dtype,
                    "where branches {x} and {y} have different types"
                );
                let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &x.shape)?, &y.shape)?;
                one(TensorType::new(x.dtype, shape))
            }
            Op::Softmax { axis, .. } => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "softmax input")?;
                ensure!(*axis < x.rank(), "axis {axis} out of range for {x}");
                one(x.clone())
            }
            Op::Reduce {
                axes, keep_dims, ..
            } => {
                let x = inputs[0];
                ensure!(
                    x.dtype == DType::F32 || x.dtype.is_integer(),
                    "cannot reduce {}",
                    x.dtype
                );
                ensure!(
                    axes.windows(2).all(|w| w[0] < w[1]),
                    "axes {axes:?} must be sorted and distinct"
                );
                ensure!(
                    axes.iter().all(|&a| a < x.rank()),
                    "axes {axes:?} out of range for {x}"
                );
                let shape = x
                    .shape
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &d)| match (axes.contains(&i), keep_dims) {
                        (false, _) => Some(d),
                        (true, true) => Some(1),
                        (true, false) => None,
                    })
                    .collect();
                one(TensorType::new(x.dtype, shape))
            }
            Op::Reshape { shape } => {
                let x = inputs[0];
                ensure!(
                    checked_numel(shape) == Some(x.numel()),
                    "cannot reshape {x} to {shape:?}"
                );
                one(TensorType::new(x.dtype, shape.clone()))
            }
            Op::Transpose { perm } => {
                let x = inputs[0];
                let mut seen = vec![false; x.rank()];
                ensure!(
                    perm.len() == x.rank(),
                    "perm {perm:?} does not match rank of {x}"
                );
                for &p in perm {
                    ensure!(
                        p < x.rank() && !seen[p],
                        "perm {perm:?} is not a permutation"
                    );
                    seen[p] = true;
                }
                one(TensorType::new(
                    x.dtype,
                    perm.iter().map(|&p| x.shape[p]).collect(),
                ))
            }
            Op::ChannelShuffle { groups } => {
                let x = inputs[0];
                ensure!(
                    x.rank() >= 2 && *groups >= 1 && x.shape[1].is_multiple_of(*groups),
                    "channel_shuffle needs channels divisible by its {groups} groups, got {x}"
                );
                one(x.clone())
            }
            Op::Concat { axis } => {
                let first = inputs[0];
                ensure!(*axis < first.rank(), "axis {axis} out of range for {first}");
                let mut total = 0usize;
                for t in inputs {
                    ensure!(
                        t.dtype == first.dtype && t.rank() == first.rank(),
                        "cannot concat {first} and {t}"
                    );
                    for i in 0..t.rank() {
                        ensure!(
                            i == *axis || t.shape[i] == first.shape[i],
                            "cannot concat {first} and {t} along axis {axis}"
                        );
                    }
                    total = total.checked_add(t.shape[*axis]).ok_or_else(overflow)?;
                }
                let mut shape = first.shape.clone();
                shape[*axis] = total;
                one(TensorType::new(first.dtype, shape))
            }
            Op::Split { axis, sizes } => {
                let x = inputs[0];
                ensure!(*axis < x.rank(), "axis {axis} out of range for {x}");
                ensure!(!sizes.is_empty(), "split into no outputs");
                let sum = sizes
                    .iter()
                    .try_fold(0usize, |a, &s| a.checked_add(s))
                    .ok_or_else(overflow)?;
                ensure!(
                    sum == x.shape[*axis],
                    "split sizes {sizes:?} do not add up to {} (axis {axis} of {x})",
                    x.shape[*axis]
                );
                Ok(sizes
                    .iter()
                    .map(|&s| {
                        let mut shape = x.shape.clone();
                        shape[*axis] = s;
                        TensorType::new(x.dtype, shape)
                    })
                    .collect())
            }
            Op::Slice { axes } => {
                let x = inputs[0];
                ensure!(
                    axes.len() == x.rank(),
                    "slice has {} axes for {x}",
                    axes.len()
                );
                for (a, &dim) in axes.iter().zip(&x.shape) {
                    if a.len == 0 {
                        continue;
                    }
                    let last = (a.start as i128) + (a.len as i128 - 1) * (a.step as i128);
                    ensure!(
                        a.step != 0 && a.start < dim && last >= 0 && last < dim as i128,
                        "slice {a:?} reads outside an axis of {dim}"
                    );
                }
                one(TensorType::new(
                    x.dtype,
                    axes.iter().map(|a| a.len).collect(),
                ))
            }
            Op::Pad { pads, mode } => {
                let x = inputs[0];
                ensure!(pads.len() == x.rank(), "{} pads for {x}", pads.len());
                let mut shape = Vec::with_capacity(x.rank());
                for (&(b, e), &d) in pads.iter().zip(&x.shape) {
                    let out = (d as i128) + (b as i128) + (e as i128);
                    ensure!(out >= 0, "pads ({b}, {e}) crop more than the axis of {d}");
                    let grows = b > 0 || e > 0;
                    ensure!(
                        !grows || d > 0 || matches!(mode, crate::op::PadMode::Constant(_)),
                        "cannot {mode:?}-pad an empty axis"
                    );
                    shape.push(usize::try_from(out).map_err(|_| overflow())?);
                }
                one(TensorType::new(x.dtype, shape))
            }
            Op::Resize(r) => {
                let x = inputs[0];
                expect_dtype(x, DType::F32, "resize input")?;
                ensure!(
                    r.scales.len() == x.rank() && r.sizes.len() == x.rank(),
                    "resize needs one scale and size per axis of {x}"
                );
                ensure!(
                    r.scales.iter().all(|&s| s > 0.0 && s.is_finite()),
                    "resize scales {:?} must be positive",
                    r.scales
                );
                ensure!(
                    x.shape.iter().all(|&d| d > 0),
                    "cannot resize the empty tensor {x}"
                );
                one(TensorType::f32(r.sizes.clone()))
            }
            Op::DepthToSpace { block, .. } => {
                let x = inputs[0];
                ensure!(
                    x.rank() == 4 && *block >= 1,
                    "depth_to_space needs a 4-D input, got {x}"
                );
                let bb = block.checked_mul(*block).ok_or_else(overflow)?;
                ensure!(
                    x.shape[1].is_multiple_of(bb),
                    "channels of {x} are not divisible by {bb}"
                );
                let h = x.shape[2].checked_mul(*block).ok_or_else(overflow)?;
                let w = x.shape[3].checked_mul(*block).ok_or_else(overflow)?;
                one(TensorType::new(
                    x.dtype,
                    vec![x.shape[0], x.shape[1] / bb, h, w],
                ))
            }
            Op::SpaceToDepth { block, .. } => {
                let x = inputs[0];
                ensure!(
                    x.rank() == 4 && *block >= 1,
                    "space_to_depth needs a 4-D input, got {x}"
                );
                ensure!(
                    x.shape[2].is_multiple_of(*block) && x.shape[3].is_multiple_of(*block),
                    "spatial dims of {x} are not divisible by {block}"
                );
                let c = block
                    .checked_mul(*block)
                    .and_then(|bb| x.shape[1].checked_mul(bb))
                    .ok_or_else(overflow)?;
                one(TensorType::new(
                    x.dtype,
                    vec![x.shape[0], c, x.shape[2] / block, x.shape[3] / block],
                ))
            }
            Op::Tile { repeats } => {
                let x = inputs[0];
                ensure!(
                    repeats.len() == x.rank(),
                    "{} repeats for {x}",
                    repeats.len()
                );
                let shape = x
                    .shape
                    .iter()
                    .zip(repeats)
                    .map(|(&d, &r)| d.checked_mul(r).ok_or_else(overflow))
                    .collect::<Result<_, _>>()?;
                one(TensorType::new(x.dtype, shape))
            }
            Op::Expand { shape } => {
                let x = inputs[0];
                one(TensorType::new(x.dtype, broadcast_shapes(&x.shape, shape)?))
            }
            Op::Gather { axis } => {
                let (x, idx) = (inputs[0], inputs[1]);
                ensure!(
                    idx.dtype.is_integer(),
                    "gather indices must be integers, got {idx}"
                );
                ensure!(*axis < x.rank(), "axis {axis} out of range for {x}");
                let mut shape = x.shape[..*axis].to_vec();
                shape.extend_from_slice(&idx.shape);
                shape.extend_from_slice(&x.shape[axis + 1..]);
                one(TensorType::new(x.dtype, shape))
            }
            Op::Cast { to } => one(TensorType::new(*to, inputs[0].shape.clone())),
            Op::Shape { start, end } => {
                let x = inputs[0];
                ensure!(
                    start <= end && *end <= x.rank(),
                    "shape range {start}..{end} out of range for {x}"
                );
                one(TensorType::new(DType::I64, vec![end - start]))
            }
            Op::Identity => one(inputs[0].clone()),
        }
    }
}

/// The input tile side `t` of a Winograd op, checked against its other attributes.
fn winograd_input_side(w: &crate::op::Winograd) -> Result<usize, IrError> {
    let Some(f) = w.transform() else {
        return Err(IrError::shape(format!(
            "no Winograd transform with {0}x{0} output tiles for {1}x{1} kernels (1 for 1x1; 2, 4 or 6 for 3x3; 3 for 4x4; 2 or 4 for 5x5)",
            w.tile, w.kernel
        )));
    };
    ensure!(
        w.out.iter().all(|&d| d > 0) && w.pads.iter().all(|&p| p < w.kernel),
        "Winograd output {0:?} and pads {1:?}: a {2}x{2} window needs outputs and pads below {2}",
        w.out,
        w.pads,
        w.kernel
    );
    let tiles = w.tiles();
    let count = tiles[0].checked_mul(tiles[1]).ok_or_else(overflow)?;
    let len = w.plane[0].checked_mul(w.plane[1]).ok_or_else(overflow)?;
    ensure!(
        len >= count,
        "a plane of {:?} cannot hold {:?} tiles",
        w.plane,
        tiles
    );
    ensure!(
        w.band == 0 || (w.band <= tiles[0] && w.plane[0] == tiles[0]),
        "bands of {} rows need at most {} rows of tiles, one a plane row (plane {:?})",
        w.band,
        tiles[0],
        w.plane
    );
    Ok(f.t)
}

/// The epilogue's inputs: a residual of the output's type, a PRelu slope broadcasting
/// to the output.
fn check_epilogue(e: &Epilogue, extra: &[&TensorType], out: &TensorType) -> Result<(), IrError> {
    let mut next = extra.iter();
    if e.residual {
        let r = next.next().expect("arity checked");
        ensure!(
            r.dtype == out.dtype && r.shape == out.shape,
            "residual {r} does not match the output {out}"
        );
    }
    if e.activation == Some(Activation::PRelu) {
        let s = next.next().expect("arity checked");
        expect_dtype(s, DType::F32, "prelu slope")?;
        ensure!(
            broadcasts_to(&s.shape, &out.shape),
            "slope {s} does not broadcast to {out}"
        );
    }
    Ok(())
}

/// Result shape of numpy `matmul`.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, IrError> {
    ensure!(
        !a.is_empty() && !b.is_empty(),
        "matmul operands must have rank 1 or more"
    );
    let a2: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    ensure!(k == kb, "matmul inner dimensions differ: {a:?} and {b:?}");
    let mut shape = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        shape.push(m);
    }
    if b.len() > 1 {
        shape.push(n);
    }
    Ok(shape)
}
