//! Graph passes and memory planning for cnnc.

mod fold_constants;
pub mod memory;

pub use fold_constants::fold_constants;
