//! Graph passes and memory planning for cnnc.
//!
//! Each pass is one file; [`Pipeline`] runs them in order for an optimization level.
//! [`memory`] places a program's buffers in one arena.

mod channel_shuffle;
mod conv_transpose_gemm;
mod depthwise;
mod eliminate_identities;
mod fold_batch_norm;
mod fold_constants;
mod fold_pad;
mod fuse_activation;
mod fuse_residual;
mod layout;
mod lift_1d;
mod manager;
pub mod memory;
mod pack_weights;
mod pointwise_to_matmul;
pub mod space_to_depth;
mod squeeze_excite;
mod subsample_pointwise;
mod tiling;
mod util;
pub mod winograd;

pub use fold_constants::fold_constants;
pub use manager::{OptLevel, Pass, PassRecord, Pipeline, SIZE_PASSES};
pub use tiling::choose_tile;

/// What the cost-driven passes know of the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// f32 lanes of a vector register.
    pub lanes: usize,
    /// Vector registers the allocator can use.
    pub vector_registers: usize,
    /// Weight pointers a direct-convolution tile's loop keeps in general registers
    /// beside the state of the loops around it. A tile of several vectors reads the
    /// weights through one pointer per pixel (equal loads would be merged, see
    /// `cnnc-codegen`'s `direct_conv.rs`); on x86-64 a third spilled the pointers to the
    /// stack every iteration: ResNet-50's 3x3 stride-2 convolutions ran 4-8% faster
    /// with 2 x 4 tiles than with 3 x 4 (4.98 -> 4.77 and 5.40 -> 4.97 ms).
    pub weight_pointers: usize,
    /// Vector fused multiply-adds and loads started per cycle, operations issued per
    /// cycle, and cycles from an FMA to its result.
    pub fma_per_cycle: f64,
    pub loads_per_cycle: f64,
    pub issue_width: f64,
    pub fma_latency: f64,
    /// Vector ALU operations (FMAs, shuffles, register copies) executed per cycle.
    pub vector_ops_per_cycle: f64,
    /// Data cache bytes per core.
    pub l1_bytes: usize,
    pub l2_bytes: usize,
    /// The last-level cache (shared by the cores).
    pub l3_bytes: usize,
    /// Bytes per cycle one core streams from beyond L2 (L3 or memory), and from L2.
    pub far_bytes_per_cycle: f64,
    pub l2_bytes_per_cycle: f64,
}

impl Default for TargetInfo {
    /// x86-64 with 128-bit vectors (xmm0-15), as on Zen 4 and Sapphire Rapids: two
    /// FMAs, three loads, three vector ALU operations (Sapphire Rapids' ports 0, 1 and
    /// 5) and six operations a cycle, FMA latency 4; 32 KiB L1 and 1 MiB L2 (the
    /// smaller of the two), 32 MiB L3; weights stream from L3 at about 4 bytes a cycle
    /// (measured here: 36 MB of Winograd products' weights in 9 ms), from L2 at about
    /// 32.
    fn default() -> Self {
        TargetInfo {
            lanes: 4,
            vector_registers: 16,
            weight_pointers: 2,
            fma_per_cycle: 2.0,
            loads_per_cycle: 3.0,
            issue_width: 6.0,
            fma_latency: 4.0,
            vector_ops_per_cycle: 3.0,
            l1_bytes: 32 << 10,
            l2_bytes: 1 << 20,
            l3_bytes: 32 << 20,
            far_bytes_per_cycle: 4.0,
            l2_bytes_per_cycle: 32.0,
        }
    }
}

impl TargetInfo {
    /// The machine model for a target triple's architecture; for the host (`None`)
    /// with the data cache sizes Linux reports.
    pub fn for_triple(triple: Option<&str>) -> Self {
        let arch = triple
            .and_then(|t| t.split('-').next())
            .unwrap_or(std::env::consts::ARCH);
        let mut t = match arch {
            // NEON: 32 vector registers (and 31 general ones, which would hold more
            // weight pointers than x86-64's: not measured, so the same 2).
            "aarch64" | "arm64" => TargetInfo {
                vector_registers: 32,
                ..Self::default()
            },
            _ => Self::default(),
        };
        if triple.is_none() {
            if let Some(l1) = host_cache_bytes(1) {
                t.l1_bytes = l1;
            }
            if let Some(l2) = host_cache_bytes(2) {
                t.l2_bytes = l2;
            }
            if let Some(l3) = host_cache_bytes(3) {
                t.l3_bytes = l3;
            }
        }
        t
    }
}

/// The size of the host's level-`level` data (or unified) cache of CPU 0, from sysfs.
fn host_cache_bytes(level: u32) -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let read = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let kind = read("type")?;
        if read("level")?.trim() != level.to_string() || kind.trim() == "Instruction" {
            return None;
        }
        let size = read("size")?;
        let size = size.trim();
        let (digits, scale) = match size.strip_suffix('K') {
            Some(d) => (d, 1 << 10),
            None => match size.strip_suffix('M') {
                Some(d) => (d, 1 << 20),
                None => (size, 1),
            },
        };
        digits.parse::<usize>().ok().map(|d| d * scale)
    })
}

/// Every pass, in pipeline order.
pub fn all_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(fold_constants::FoldConstants),
        Box::new(eliminate_identities::EliminateIdentities(
            "eliminate_identities",
        )),
        Box::new(channel_shuffle::ChannelShuffle),
        Box::new(fold_pad::FoldPad),
        Box::new(fold_batch_norm::FoldBatchNorm),
        Box::new(depthwise::Depthwise),
        Box::new(fuse_residual::FuseResidual),
        Box::new(fuse_activation::FuseActivation),
        Box::new(squeeze_excite::SqueezeExcite),
        Box::new(conv_transpose_gemm::ConvTransposeGemm),
        Box::new(subsample_pointwise::SubsamplePointwise),
        Box::new(space_to_depth::SpaceToDepth),
        Box::new(lift_1d::Lift1d),
        Box::new(layout::AssignLayout),
        Box::new(pointwise_to_matmul::PointwiseToMatMul),
        Box::new(winograd::WinogradConv),
        Box::new(pack_weights::PackWeights),
        Box::new(eliminate_identities::EliminateIdentities("cleanup")),
        Box::new(tiling::Tiling),
    ]
}
