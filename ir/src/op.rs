//! The operations of the IR, with typed attributes.
//!
//! Every attribute that ONNX may pass as a tensor input (Reshape's shape, Pad's pads,
//! Resize's scales, Slice's bounds, Clip's limits, ...) is resolved by the importer to a
//! plain value here, so an op's inputs are only the tensors it computes on. Spatial
//! attributes (`kernel`, `strides`, `pads`, `dilations`) have one entry per spatial axis.

use std::fmt;

use crate::types::Dims;
use crate::{DType, Layout, Tensor};

#[derive(Clone, Debug)]
pub enum Op {
    /// A graph input; its position is its place in `Graph::inputs`.
    Input,
    /// A compile-time constant.
    Const(Tensor),

    /// Inputs: x `[N, C, spatial...]`, weight `[M, C/groups, kernel...]`, optional bias `[M]`,
    /// then the epilogue's inputs.
    Conv(Conv),
    /// A convolution with one group per input channel (`groups == C`, `M = C * k`), which
    /// has a kernel of its own. Inputs as `Conv`.
    DepthwiseConv(Conv),
    /// Inputs: x `[N, C, spatial...]`, weight `[C, M/groups, kernel...]`, optional bias `[M]`.
    ConvTranspose(ConvTranspose),
    /// The scatter half of a transposed convolution whose product is done (see
    /// `conv_transpose_gemm`): columns `[N, M*K, spatial...]`, channel `(g * K + k) *
    /// M/groups + m` the values of output channel `m` of group `g` at kernel tap `k` (of
    /// `K`, row-major; tap-major within a group, so that a tap's channels are
    /// consecutive, whole blocks in a blocked layout), each added to the output at `i *
    /// stride + k * dilation - pad`, to `[N, M, out...]`; then an optional bias `[M]`
    /// and the epilogue. The attributes are the transposed convolution's. Inputs:
    /// columns, optional bias, then the epilogue's inputs.
    Col2Im(ConvTranspose),
    Pool(Pool),
    /// Pooling over all spatial axes to `[N, C, 1, ...]`.
    GlobalPool(PoolKind),
    /// Local response normalization across channels.
    Lrn(Lrn),
    /// Inference batch normalization over axis 1. Inputs: x, scale, bias, mean, variance.
    BatchNorm {
        epsilon: f32,
    },
    /// Inputs: x, scale `[C]`, bias `[C]`.
    InstanceNorm {
        epsilon: f32,
    },
    /// `alpha * op(A) * op(B) + beta * C`. Inputs: A, B, optional C (broadcast to `[M, N]`),
    /// then the epilogue's inputs.
    Gemm(Gemm),
    /// numpy `matmul` (1-D operands promoted, batch axes broadcast), then an optional bias
    /// broadcast to the result, then the epilogue's inputs.
    MatMul {
        bias: bool,
        epilogue: Epilogue,
    },
    /// `x * scale[c] + shift[c]` per channel (axis 1): a batch normalization with nothing
    /// to fold into. Inputs: x, scale `[C]`, shift `[C]`. Its epilogue is at most a
    /// cheap activation (ReLU, Clip, LeakyRelu: `fuse_activation`), without inputs.
    ScaleShift(Epilogue),
    /// `x * s[n, c]` per image and channel: the gate of a squeeze-and-excitation block.
    /// Inputs: x `[N, C, spatial...]`, s `[N, C, 1...]`.
    ChannelScale,
    /// A Winograd convolution's input transform: x `[N, C, H, W]` to `[N, t*t*C,
    /// plane...]`, channel `xi * C + c` holding position `xi` of channel `c`'s
    /// transformed input tiles (`Bᵀ d B`, see [`crate::winograd`]), tile `(th, tw)` at
    /// flat position `th * tiles_w + tw` of the plane.
    WinogradInput(Winograd),
    /// A Winograd convolution's output transform: the `t*t` products `[N, t*t*M,
    /// plane...]` to `[N, M, out...]` (`Aᵀ p A`), plus the bias, then the epilogue.
    /// Inputs: products, bias `[M]`, then the epilogue's inputs.
    WinogradOutput(Winograd),
    /// The same tensor in another memory layout.
    Reorder {
        to: Layout,
    },
    Unary(Unary),
    /// Elementwise with numpy broadcasting.
    Binary(Binary),
    /// Inputs: condition (bool), x, y, broadcast together.
    Where,
    /// Softmax (or log-softmax) along one axis.
    Softmax {
        axis: usize,
        log: bool,
    },
    Reduce {
        kind: ReduceKind,
        axes: Vec<usize>,
        keep_dims: bool,
    },

    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// ShuffleNet's channel shuffle, `[N, C, ..]` with the channels read as a
    /// `groups x C/groups` matrix and transposed: output channel `j * groups + i` is
    /// input channel `i * C/groups + j`. Found by the `channel_shuffle` pass in the
    /// reshape-transpose-reshape that spells it in ONNX.
    ChannelShuffle {
        groups: usize,
    },
    Concat {
        axis: usize,
    },
    /// One output per entry of `sizes`.
    Split {
        axis: usize,
        sizes: Vec<usize>,
    },
    /// One entry per axis: output index `i` reads input index `start + i * step`.
    Slice {
        axes: Vec<SliceAxis>,
    },
    /// `pads[axis] = (begin, end)`; negative values crop.
    Pad {
        pads: Vec<(isize, isize)>,
        mode: PadMode,
    },
    Resize(Resize),
    DepthToSpace {
        block: usize,
        mode: DepthToSpaceMode,
    },
    SpaceToDepth {
        block: usize,
        mode: DepthToSpaceMode,
    },
    Tile {
        repeats: Vec<usize>,
    },
    /// Broadcast the input to `shape` (numpy rules, both ways).
    Expand {
        shape: Vec<usize>,
    },
    /// Inputs: data, indices (i64 or i32; negative counts from the end).
    Gather {
        axis: usize,
    },
    Cast {
        to: DType,
    },
    /// The input's dims `start..end` as an i64 vector; reads only the input's type.
    Shape {
        start: usize,
        end: usize,
    },
    Identity,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `(begin, end)` zero padding per spatial axis.
    pub pads: Vec<(usize, usize)>,
    pub groups: usize,
    pub epilogue: Epilogue,
}

impl Conv {
    /// A 1x1 kernel at stride 1 without padding: every output pixel is one input
    /// pixel, so the convolution is a matrix product over the pixels.
    pub fn is_pointwise(&self) -> bool {
        self.kernel.iter().all(|&k| k == 1)
            && self.strides.iter().all(|&s| s == 1)
            && self.pads.iter().all(|&p| p == (0, 0))
    }

    /// Whether the plane kernel (`plane_products.rs` in `cnnc-codegen`) runs this
    /// convolution of an input of shape `x`, plain, with `inputs` inputs: pointwise,
    /// without bias or epilogue, on planes (the spatial sizes' product) of whole
    /// vectors of `lanes` up to [`PLANE_PIXELS`]. The plain Winograd products are such
    /// convolutions (`Winograd::plain_products`); the tiling pass gives these no tile.
    pub fn on_plane_kernel(&self, x: &[usize], inputs: usize, lanes: usize) -> bool {
        let plane: usize = x.iter().skip(2).product();
        self.is_pointwise()
            && x.len() >= 3
            && inputs == 2
            && self.epilogue.is_empty()
            && plane.is_multiple_of(lanes)
            && (lanes..=PLANE_PIXELS).contains(&plane)
    }
}

/// Most pixels a plane of the plane kernel holds: 13 vectors of 4, one register tile.
pub const PLANE_PIXELS: usize = 52;

/// An `r x r` stride-1 2-D convolution computed by Winograd's F(m x m, r x r): the
/// input transform, one matrix product per position of the `t x t` transformed tile (a
/// 1x1 convolution with `t*t` groups), the output transform.
#[derive(Clone, Debug, PartialEq)]
pub struct Winograd {
    /// Output tile side `m` (2, 4 or 6 for 3x3 kernels, 3 for 4x4, 2 or 4 for 5x5, 1 for
    /// 1x1); input tiles are `m + r - 1` wide.
    pub tile: usize,
    /// Kernel side `r` (1, 3, 4 or 5). F(1x1, 1x1) is the identity: a pointwise
    /// convolution through plain products (`plain_products`), whose transforms only
    /// convert between blocks and planes.
    pub kernel: usize,
    /// Zero padding above the first row and left of the first column.
    pub pads: [usize; 2],
    /// The convolution's output rows and columns.
    pub out: [usize; 2],
    /// The tiles (`ceil(out / m)` by rows and columns, row-major) stored as a plane of
    /// this shape: rows of tiles long enough for the matrix-product kernel's tiles.
    /// Positions past the last tile are unused: they move the planes of the
    /// transformed tensors apart (so that a product tile's reads of every channel
    /// block do not crowd a few cache sets); nothing reads their products.
    pub plane: [usize; 2],
    /// Rows of tiles per band, 0 for none. A banded convolution (one row of tiles per
    /// plane row) runs its three steps (input transform, products, output transform)
    /// a band of rows at a time, the transformed input and the products holding one
    /// band's rows ([`Winograd::stored_plane`]) so they stay in cache between the
    /// steps. The values are the same: only the schedule and the storage differ (the
    /// bands overlap when they do not divide the rows: the last one ends at the last
    /// row).
    pub band: usize,
    /// `Some(block)`: the transformed input and the products are plain (each channel's
    /// plane of tiles contiguous, the tiles innermost) while the convolution's input
    /// and output are blocked, `block` channels a vector; the input transform converts
    /// to plain and the output transform back. The products then run on the kernel for
    /// small planes (`plane_products.rs` in `cnnc-codegen`), which reads each weight
    /// once for the whole plane. `None`: both in the convolution's layout.
    pub plain_products: Option<u32>,
    /// The output transform's epilogue; empty on the input transform.
    pub epilogue: Epilogue,
}

impl Winograd {
    /// The transform of its tile and kernel sides, if there is one.
    pub fn transform(&self) -> Option<&'static crate::winograd::Transform> {
        crate::winograd::transform(self.tile, self.kernel)
    }

    /// Positions of the plane (`plane[0] * plane[1]`, at least the tiles).
    pub fn plane_len(&self) -> usize {
        self.plane[0] * self.plane[1]
    }

    /// Tiles per column and per row of the output.
    pub fn tiles(&self) -> [usize; 2] {
        [
            self.out[0].div_ceil(self.tile),
            self.out[1].div_ceil(self.tile),
        ]
    }

    /// The plane as the transformed input and the products are stored: one band's
    /// rows when banded.
    pub fn stored_plane(&self) -> [usize; 2] {
        match self.band {
            0 => self.plane,
            b => [b, self.plane[1]],
        }
    }

    /// The bands, `(count, rows each)`: one of all the rows when not banded.
    pub fn bands(&self) -> (usize, usize) {
        let rows = self.tiles()[0];
        match self.band {
            0 => (1, rows),
            b => (rows.div_ceil(b), b),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Cropped from the full output, `(begin, end)` per spatial axis.
    pub pads: Vec<(usize, usize)>,
    /// Extra rows added at the end of each spatial axis.
    pub output_padding: Vec<usize>,
    pub groups: usize,
    pub epilogue: Epilogue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// `count_include_pad`: the divisor counts padding positions (not those added by
    /// `ceil_mode` beyond the padding).
    Avg {
        count_include_pad: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub kind: PoolKind,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<(usize, usize)>,
    /// Output size rounds up; a window must still start inside the input or left pad.
    pub ceil_mode: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub epilogue: Epilogue,
}

/// The blocking of a matrix product `C[M, N] += A[M, K] B[K, N]` (a convolution's
/// output channels by pixels, through im2col), chosen by the tiling pass from a cost
/// model of the target and followed by code generation. For a convolution on blocked
/// channels (the direct kernel), `rows` are output pixels of a row, `cols` output
/// channels, `k_block` its input channels and `col_block` the output channels of a
/// cache block (whose weights stay in L2), `unroll` its input channels per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Rows of C per register tile.
    pub rows: usize,
    /// Columns of C per register tile (whole vectors).
    pub cols: usize,
    /// Inner-dimension block: the A and B slivers a tile reads stay in L1.
    pub k_block: usize,
    /// Columns per cache block (a convolution's im2col panel): the B panel stays in L2.
    pub col_block: usize,
    /// Steps of the inner dimension per iteration of the innermost loop.
    pub unroll: usize,
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}/k{}/n{}/u{}",
            self.rows, self.cols, self.k_block, self.col_block, self.unroll
        )
    }
}

/// Partial sums per accumulator of a register tile with `accumulators` accumulators.
/// A narrow tile (a border column, a row's tail) has too few to hide the FMA latency
/// (two pipes of 4 cycles on the cores we target want 8 independent chains):
/// each channel of a step adds into its own partial sum, summed once the reduction is
/// done. 4 for one accumulator, 2 for up to 5, else 1: more would not leave a
/// register spare beside the step's broadcasts and weights of x86-64's sixteen (the
/// epilogue's constants, such as ReLU's zero, may stay live through the loops).
pub fn partial_sums(accumulators: usize) -> usize {
    match accumulators {
        0..=1 => 4,
        2..=5 => 2,
        _ => 1,
    }
}

/// What a producer applies to its result before storing it (fused by the passes):
/// `activation(y + residual)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epilogue {
    /// Add one more input of the output's shape (a residual connection).
    pub residual: bool,
    pub activation: Option<Activation>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Unary(Unary),
    /// `y < 0 ? slope * y : y`, the slope one more input (per channel).
    PRelu,
    /// `y * sigmoid(y)`.
    Silu,
}

impl Epilogue {
    /// Inputs the epilogue reads after the op's own: the residual, then a PRelu slope.
    pub fn extra_inputs(&self) -> usize {
        self.residual as usize + (self.activation == Some(Activation::PRelu)) as usize
    }

    pub fn is_empty(&self) -> bool {
        !self.residual && self.activation.is_none()
    }
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Unary(u) => u.name(),
            Activation::PRelu => "prelu",
            Activation::Silu => "silu",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Sigmoid,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Tanh,
    Softplus,
    Softsign,
    Mish,
    /// `tanh`: the tanh approximation instead of the exact erf form.
    Gelu {
        tanh: bool,
    },
    Erf,
    Exp,
    Sqrt,
    Abs,
    Neg,
    /// `min(max(x, min), max)`; with `min > max` every element becomes `max`.
    Clip {
        min: f32,
        max: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// `x < 0 ? slope * x : x` with inputs (x, slope).
    PRelu,
    Equal,
    Less,
    Greater,
}

impl Binary {
    /// Comparisons produce bool.
    pub fn is_comparison(self) -> bool {
        matches!(self, Binary::Equal | Binary::Less | Binary::Greater)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    pub start: usize,
    pub step: isize,
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthToSpaceMode {
    /// Depth-column-row: channel index `(by * b + bx) * C' + c`.
    Dcr,
    /// Column-row-depth: channel index `(c * b + by) * b + bx`.
    Crd,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    /// Scale per axis (output / input), as the coordinate transform uses it.
    pub scales: Vec<f64>,
    /// Output dims. Not always `floor(scale * input)`: ONNX `sizes` fixes them directly.
    pub sizes: Vec<usize>,
    /// Neighbours outside the input get weight 0 and the rest are renormalized.
    pub exclude_outside: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResizeMode {
    Nearest(NearestMode),
    Linear,
    Cubic { a: f32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
}

/// How an op treats tensors in a blocked-channel layout: the contract between the
/// layout pass, the verifier and code generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutRule {
    /// Converts between layouts (`Reorder`).
    Converts,
    /// Either plain throughout, or its data input, residual and output blocked alike
    /// (2-D and 3-D convolutions, plain and depthwise, and col2im, which have a kernel
    /// for each; col2im is blocked only when its columns are).
    Chooses,
    /// Its output has its inputs' layout, which they share: elementwise ops on equal
    /// shapes and channel concatenation work on the stored elements as they are, and
    /// pooling and per-image channel scaling on a channel block's vectors as on single
    /// channels; a channel shuffle moves whole vectors' lanes (when its groups fill
    /// whole blocks).
    Follows,
    /// Its output has its first input's layout; the other inputs are per-channel
    /// parameters, plain (ScaleShift's scale and shift), except an epilogue's residual,
    /// which has the output's layout (Winograd's output transform).
    FollowsFirst,
    /// Plain inputs and outputs only.
    Plain,
}

impl Op {
    pub fn layout_rule(&self) -> LayoutRule {
        match self {
            Op::Reorder { .. } => LayoutRule::Converts,
            Op::Conv(c) | Op::DepthwiseConv(c) if (2..=3).contains(&c.kernel.len()) => {
                LayoutRule::Chooses
            }
            Op::Col2Im(_) => LayoutRule::Chooses,
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Concat { .. }
            | Op::Pool(_)
            | Op::GlobalPool(_)
            | Op::ChannelScale
            | Op::Lrn(_)
            | Op::ChannelShuffle { .. }
            | Op::WinogradInput(_) => LayoutRule::Follows,
            Op::ScaleShift(_) | Op::WinogradOutput(_) => LayoutRule::FollowsFirst,
            _ => LayoutRule::Plain,
        }
    }

    /// Short lowercase name used by the printer and in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Const(_) => "const",
            Op::Conv(_) => "conv",
            Op::DepthwiseConv(_) => "depthwise_conv",
            Op::ScaleShift(_) => "scale_shift",
            Op::ChannelScale => "channel_scale",
            Op::WinogradInput(_) => "winograd_input",
            Op::WinogradOutput(_) => "winograd_output",
            Op::Reorder { .. } => "reorder",
            Op::ConvTranspose(_) => "conv_transpose",
            Op::Col2Im(_) => "col2im",
            Op::Pool(p) => match p.kind {
                PoolKind::Max => "max_pool",
                PoolKind::Avg { .. } => "avg_pool",
            },
            Op::GlobalPool(PoolKind::Max) => "global_max_pool",
            Op::GlobalPool(PoolKind::Avg { .. }) => "global_avg_pool",
            Op::Lrn(_) => "lrn",
            Op::BatchNorm { .. } => "batch_norm",
            Op::InstanceNorm { .. } => "instance_norm",
            Op::Gemm(_) => "gemm",
            Op::MatMul { .. } => "matmul",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Where => "where",
            Op::Softmax { log: false, .. } => "softmax",
            Op::Softmax { log: true, .. } => "log_softmax",
            Op::Reduce {
                kind: ReduceKind::Sum,
                ..
            } => "reduce_sum",
            Op::Reduce {
                kind: ReduceKind::Mean,
                ..
            } => "reduce_mean",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::ChannelShuffle { .. } => "channel_shuffle",
            Op::Concat { .. } => "concat",
            Op::Split { .. } => "split",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Resize(_) => "resize",
            Op::DepthToSpace { .. } => "depth_to_space",
            Op::SpaceToDepth { .. } => "space_to_depth",
            Op::Tile { .. } => "tile",
            Op::Expand { .. } => "expand",
            Op::Gather { .. } => "gather",
            Op::Cast { .. } => "cast",
            Op::Shape { .. } => "shape",
            Op::Identity => "identity",
        }
    }
}

impl Unary {
    pub fn name(&self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::LeakyRelu { .. } => "leaky_relu",
            Unary::Elu { .. } => "elu",
            Unary::Selu { .. } => "selu",
            Unary::Sigmoid => "sigmoid",
            Unary::HardSigmoid { .. } => "hard_sigmoid",
            Unary::HardSwish => "hard_swish",
            Unary::Tanh => "tanh",
            Unary::Softplus => "softplus",
            Unary::Softsign => "softsign",
            Unary::Mish => "mish",
            Unary::Gelu { .. } => "gelu",
            Unary::Erf => "erf",
            Unary::Exp => "exp",
            Unary::Sqrt => "sqrt",
            Unary::Abs => "abs",
            Unary::Neg => "neg",
            Unary::Clip { .. } => "clip",
        }
    }
}

impl Binary {
    pub fn name(&self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Pow => "pow",
            Binary::Max => "max",
            Binary::Min => "min",
            Binary::PRelu => "prelu",
            Binary::Equal => "equal",
            Binary::Less => "less",
            Binary::Greater => "greater",
        }
    }
}

/// `residual=add`, `act=relu` / `act=clip(0.0,6.0)` items of an epilogue.
fn epilogue_items(e: &Epilogue, add: &mut impl FnMut(&str, String)) {
    if e.residual {
        add("residual", "add".into());
    }
    if let Some(a) = e.activation {
        let params = match a {
            Activation::Unary(Unary::LeakyRelu { alpha })
            | Activation::Unary(Unary::Elu { alpha }) => {
                format!("({alpha:?})")
            }
            Activation::Unary(Unary::Clip { min, max }) => format!("({min:?},{max:?})"),
            Activation::Unary(Unary::HardSigmoid { alpha, beta }) => {
                format!("({alpha:?},{beta:?})")
            }
            Activation::Unary(Unary::Selu { alpha, gamma }) => format!("({alpha:?},{gamma:?})"),
            _ => String::new(),
        };
        add("act", format!("{}{params}", a.name()));
    }
}

/// Writes ` {k=v, ...}` for the op's attributes and the node's tile (nothing when
/// there are none).
pub(crate) struct Attrs<'a>(pub &'a Op, pub Option<Tile>);

struct Pads<'a, T>(&'a [(T, T)]);

impl<T: fmt::Display> fmt::Display for Pads<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ONNX order: all begins, then all ends.
        let v: Vec<String> = (self.0.iter().map(|p| p.0.to_string()))
            .chain(self.0.iter().map(|p| p.1.to_string()))
            .collect();
        write!(f, "[{}]", v.join(","))
    }
}

impl fmt::Display for Attrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        let mut add = |k: &str, v: String| items.push(format!("{k}={v}"));
        match self.0 {
            Op::Conv(c) | Op::DepthwiseConv(c) => {
                add("kernel", Dims(&c.kernel).to_string());
                add("strides", Dims(&c.strides).to_string());
                add("pads", Pads(&c.pads).to_string());
                add("dilations", Dims(&c.dilations).to_string());
                add("groups", c.groups.to_string());
                epilogue_items(&c.epilogue, &mut add);
            }
            Op::WinogradInput(w) | Op::WinogradOutput(w) => {
                add("tile", w.tile.to_string());
                add("kernel", w.kernel.to_string());
                add("pads", Dims(&w.pads).to_string());
                add("out", Dims(&w.out).to_string());
                add("plane", Dims(&w.plane).to_string());
                if w.band > 0 {
                    add("band", w.band.to_string());
                }
                if w.plain_products.is_some() {
                    add("products", "plain".to_string());
                }
                epilogue_items(&w.epilogue, &mut add);
            }
            Op::ConvTranspose(c) | Op::Col2Im(c) => {
                add("kernel", Dims(&c.kernel).to_string());
                add("strides", Dims(&c.strides).to_string());
                add("pads", Pads(&c.pads).to_string());
                add("dilations", Dims(&c.dilations).to_string());
                add("output_padding", Dims(&c.output_padding).to_string());
                add("groups", c.groups.to_string());
                epilogue_items(&c.epilogue, &mut add);
            }
            Op::Pool(p) => {
                add("kernel", Dims(&p.kernel).to_string());
                add("strides", Dims(&p.strides).to_string());
                add("pads", Pads(&p.pads).to_string());
                add("dilations", Dims(&p.dilations).to_string());
                if p.ceil_mode {
                    add("ceil_mode", "true".into());
                }
                if let PoolKind::Avg {
                    count_include_pad: true,
                } = p.kind
                {
                    add("count_include_pad", "true".into());
                }
            }
            Op::GlobalPool(_) => {}
            Op::Lrn(l) => {
                add("size", l.size.to_string());
                add("alpha", format!("{:?}", l.alpha));
                add("beta", format!("{:?}", l.beta));
                add("bias", format!("{:?}", l.bias));
            }
            Op::BatchNorm { epsilon } | Op::InstanceNorm { epsilon } => {
                add("epsilon", format!("{epsilon:?}"))
            }
            Op::Gemm(g) => {
                add("alpha", format!("{:?}", g.alpha));
                add("beta", format!("{:?}", g.beta));
                add("trans_a", g.trans_a.to_string());
                add("trans_b", g.trans_b.to_string());
                epilogue_items(&g.epilogue, &mut add);
            }
            Op::MatMul { bias, epilogue } => {
                if *bias {
                    add("bias", "true".into());
                }
                epilogue_items(epilogue, &mut add);
            }
            Op::ScaleShift(e) => epilogue_items(e, &mut add),
            Op::Reorder { to } => add(
                "to",
                match to {
                    Layout::Plain => "plain".into(),
                    Layout::Blocked { block } => format!("c{block}"),
                },
            ),
            Op::Unary(u) => match *u {
                Unary::LeakyRelu { alpha } | Unary::Elu { alpha } => {
                    add("alpha", format!("{alpha:?}"))
                }
                Unary::Selu { alpha, gamma } => {
                    add("alpha", format!("{alpha:?}"));
                    add("gamma", format!("{gamma:?}"));
                }
                Unary::HardSigmoid { alpha, beta } => {
                    add("alpha", format!("{alpha:?}"));
                    add("beta", format!("{beta:?}"));
                }
                Unary::Gelu { tanh: true } => add("approximate", "tanh".into()),
                Unary::Clip { min, max } => {
                    add("min", format!("{min:?}"));
                    add("max", format!("{max:?}"));
                }
                _ => {}
            },
            Op::Softmax { axis, .. } => add("axis", axis.to_string()),
            Op::Reduce {
                axes, keep_dims, ..
            } => {
                add("axes", Dims(axes).to_string());
                add("keep_dims", keep_dims.to_string());
            }
            Op::Reshape { shape } => add("shape", Dims(shape).to_string()),
            Op::Transpose { perm } => add("perm", Dims(perm).to_string()),
            Op::ChannelShuffle { groups } => add("groups", groups.to_string()),
            Op::Concat { axis } | Op::Gather { axis } => add("axis", axis.to_string()),
            Op::Split { axis, sizes } => {
                add("axis", axis.to_string());
                add("sizes", Dims(sizes).to_string());
            }
            Op::Slice { axes } => {
                let starts: Vec<usize> = axes.iter().map(|a| a.start).collect();
                let steps: Vec<isize> = axes.iter().map(|a| a.step).collect();
                add("starts", Dims(&starts).to_string());
                add("steps", Dims(&steps).to_string());
            }
            Op::Pad { pads, mode } => {
                add("pads", Pads(pads).to_string());
                match mode {
                    PadMode::Constant(v) => add("value", format!("{v:?}")),
                    PadMode::Reflect => add("mode", "reflect".into()),
                    PadMode::Edge => add("mode", "edge".into()),
                }
            }
            Op::Resize(r) => {
                let mode = match r.mode {
                    ResizeMode::Nearest(n) => format!("nearest({n:?})"),
                    ResizeMode::Linear => "linear".into(),
                    ResizeMode::Cubic { a } => format!("cubic(a={a:?})"),
                };
                add("mode", mode);
                add("coord", format!("{:?}", r.coord));
                let scales: Vec<String> = r.scales.iter().map(|s| format!("{s:?}")).collect();
                add("scales", format!("[{}]", scales.join(",")));
                if r.exclude_outside {
                    add("exclude_outside", "true".into());
                }
            }
            Op::DepthToSpace { block, mode } | Op::SpaceToDepth { block, mode } => {
                add("block", block.to_string());
                add("mode", format!("{mode:?}").to_lowercase());
            }
            Op::Tile { repeats } => add("repeats", Dims(repeats).to_string()),
            Op::Expand { shape } => add("shape", Dims(shape).to_string()),
            Op::Cast { to } => add("to", to.to_string()),
            Op::Shape { start, end } => {
                add("start", start.to_string());
                add("end", end.to_string());
            }
            Op::Input
            | Op::Const(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Identity
            | Op::ChannelScale => {}
        }
        if let Some(t) = self.1 {
            items.push(format!("tile={t}"));
        }
        if items.is_empty() {
            Ok(())
        } else {
            write!(f, " {{{}}}", items.join(", "))
        }
    }
}
