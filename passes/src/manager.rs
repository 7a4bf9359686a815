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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OptLevel {
    /// No passes (code generation still folds constants, which it needs).
    O0,
    /// Every pass.
    O2,
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
