//! Graph passes and memory planning for cnnc.
//!
//! Each pass is one file; [`Pipeline`] runs them in order for an optimization level.
//! [`memory`] places a program's buffers in one arena.

mod depthwise;
mod eliminate_identities;
mod fold_batch_norm;
mod fold_constants;
mod fold_pad;
mod fuse_activation;
mod fuse_residual;
mod manager;
pub mod memory;
mod pack_weights;
mod pointwise_to_matmul;
mod squeeze_excite;
mod util;

pub use fold_constants::fold_constants;
pub use manager::{OptLevel, Pass, PassRecord, Pipeline};

/// What the cost-driven passes know of the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// f32 lanes of a vector register.
    pub lanes: usize,
    /// Vector registers the allocator can use.
    pub vector_registers: usize,
    pub l1_bytes: usize,
    pub l2_bytes: usize,
}

impl Default for TargetInfo {
    /// x86-64 with 128-bit vectors (xmm0-15) and Zen 4's caches.
    fn default() -> Self {
        TargetInfo {
            lanes: 4,
            vector_registers: 16,
            l1_bytes: 32 << 10,
            l2_bytes: 1 << 20,
        }
    }
}

/// Every pass, in pipeline order.
pub fn all_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(fold_constants::FoldConstants),
        Box::new(eliminate_identities::EliminateIdentities(
            "eliminate_identities",
        )),
        Box::new(fold_pad::FoldPad),
        Box::new(fold_batch_norm::FoldBatchNorm),
        Box::new(depthwise::Depthwise),
        Box::new(fuse_residual::FuseResidual),
        Box::new(fuse_activation::FuseActivation),
        Box::new(squeeze_excite::SqueezeExcite),
        Box::new(pointwise_to_matmul::PointwiseToMatMul),
        Box::new(pack_weights::PackWeights),
        Box::new(eliminate_identities::EliminateIdentities("cleanup")),
    ]
}
