//! The pass pipeline: an ordered list of passes for an optimization level, run with a
//! verification after each (in debug builds and tests), a record of what each changed,
//! and the option to stop after any of them.

use std::time::Instant;

use cnnc_ir::{Graph, IrError};

use crate::TargetInfo;

/// One graph rewrite.
pub trait Pass {
    /// The name `--after` and the pass log use.
    fn name(&self) -> &'static str;
    /// Rewrites `graph` in place; returns how many rewrites it made.
    fn run(&self, graph: &mut Graph, target: &TargetInfo) -> Result<usize, IrError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptLevel {
    /// No passes (code generation still folds constants, which it needs).
    O0,
    /// Every pass.
    O2,
    /// Every pass but those that buy speed with constant bytes ([`SIZE_PASSES`]), so
    /// that an object's constants stay about the size of the model's weights.
    Os,
}

/// The passes `-Os` leaves out: Winograd stores a 3x3 kernel's transformed weights,
/// 16/9 to 4 times its own (VGG-19's object 819 MB from 575 MB of weights), and
/// space-to-depth a strided kernel's phases, padded with zeros.
pub const SIZE_PASSES: [&str; 2] = ["space_to_depth", "winograd"];

impl OptLevel {
    /// The level as `-O` spells it: 0, 2 or s.
    pub fn flag(self) -> &'static str {
        match self {
            OptLevel::O0 => "0",
            OptLevel::O2 => "2",
            OptLevel::Os => "s",
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, PartialEq)]
pub struct PassRecord {
    pub pass: &'static str,
    pub changes: usize,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub micros: u128,
}

pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
    verify: bool,
}

impl Pipeline {
    /// The passes of `level`, in order; each result is verified in debug builds.
    pub fn new(level: OptLevel) -> Self {
        let passes: Vec<Box<dyn Pass>> = match level {
            OptLevel::O0 => Vec::new(),
            OptLevel::O2 => crate::all_passes(),
            OptLevel::Os => crate::all_passes()
                .into_iter()
                .filter(|p| !SIZE_PASSES.contains(&p.name()))
                .collect(),
        };
        Pipeline {
            passes,
            verify: cfg!(debug_assertions),
        }
    }

    /// Verifies the graph after every pass (always, not only in debug builds).
    pub fn verify_each(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    pub fn pass_names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs the passes up to and including `stop_after` (all when `None`).
    pub fn run(
        &self,
        graph: &mut Graph,
        target: &TargetInfo,
        stop_after: Option<&str>,
    ) -> Result<Vec<PassRecord>, IrError> {
        if let Some(stop) = stop_after
            && !self.passes.iter().any(|p| p.name() == stop)
        {
            return Err(IrError::invalid(format!(
                "no pass '{stop}' (passes: {})",
                self.pass_names().join(", ")
            )));
        }
        let mut log = Vec::new();
        for pass in &self.passes {
            let before = graph.node_count();
            let start = Instant::now();
            let changes = pass.run(graph, target)?;
            let micros = start.elapsed().as_micros();
            if self.verify {
                cnnc_ir::verify(graph)
                    .map_err(|e| IrError::invalid(format!("after pass {}: {e}", pass.name())))?;
            }
            log.push(PassRecord {
                pass: pass.name(),
                changes,
                nodes_before: before,
                nodes_after: graph.node_count(),
                micros,
            });
            if stop_after == Some(pass.name()) {
                break;
            }
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_level_runs_every_pass_but_those_that_grow_the_constants() {
        let all = Pipeline::new(OptLevel::O2).pass_names();
        let size = Pipeline::new(OptLevel::Os).pass_names();
        for name in ["winograd", "space_to_depth"] {
            assert!(all.contains(&name) && !size.contains(&name), "{name}");
        }
        assert_eq!(size.len(), all.len() - 2);
        assert!(size.iter().all(|p| all.contains(p)));
    }
}
