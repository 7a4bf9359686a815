//! The instruction set to generate for: the host's for JIT, a `--target` triple and
//! `--cpu` for object files.

use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use target_lexicon::{Architecture, PointerWidth, Triple};

use crate::CodegenError;

/// How the code will be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linking {
    /// Into this process's memory by the JIT.
    Jit,
    /// As a relocatable object linked by the system linker (position independent).
    Object,
}

/// Builds the ISA for `triple` (default: the host) and `cpu`: `native` (the host's
/// features, host only), a CPU or level name Cranelift knows (`x86-64-v2`,
/// `x86-64-v3`, `znver4`, `apple-m1`, ...), or explicit features (`+fma,+avx2`).
/// Default: `native` for the host, the architecture's baseline otherwise.
pub fn isa(
    triple: Option<&str>,
    cpu: Option<&str>,
    linking: Linking,
) -> Result<OwnedTargetIsa, CodegenError> {
    let host = Triple::host();
    let triple = match triple {
        None => host.clone(),
        Some(t) => Triple::from_str(t)
            .map_err(|e| CodegenError::Target(format!("invalid target triple '{t}': {e}")))?,
    };
    if triple.pointer_width() != Ok(PointerWidth::U64) {
        return Err(CodegenError::Target(format!(
            "target '{triple}' is not 64-bit"
        )));
    }
    let is_host = triple == host;
    let cpu = cpu.unwrap_or(if is_host { "native" } else { "" });
    let mut builder = if cpu == "native" {
        if !is_host {
            return Err(CodegenError::Target(format!(
                "--cpu native needs the host target, not '{triple}'"
            )));
        }
        cranelift_native::builder().map_err(|e| CodegenError::Target(e.to_string()))?
    } else {
        isa::lookup(triple.clone())
            .map_err(|e| CodegenError::Target(format!("target '{triple}': {e}")))?
    };
    if cpu != "native" && !cpu.is_empty() {
        if cpu.starts_with('+') || cpu.starts_with('-') {
            for feature in cpu.split(',') {
                let (on, name) = feature.split_at(1);
                let flag = format!("has_{}", name.trim().replace(['.', '-'], ""));
                builder
                    .set(&flag, if on == "+" { "true" } else { "false" })
                    .map_err(|e| CodegenError::Target(format!("CPU feature '{feature}': {e}")))?;
            }
        } else {
            builder.enable(cpu).map_err(|e| {
                CodegenError::Target(format!(
                    "unknown CPU '{cpu}' for {}: {e}",
                    triple.architecture
                ))
            })?;
        }
        // AVX2 and FMA imply AVX on every x86 CPU, but Cranelift's x86-64-v3/v4 presets
        // leave `has_avx` off, which disables FMA and VEX encodings altogether.
        let implies_avx = matches!(cpu, "x86-64-v3" | "x86-64-v4")
            || cpu.contains("+avx2")
            || cpu.contains("+fma");
        if triple.architecture == Architecture::X86_64 && implies_avx {
            builder
                .set("has_avx", "true")
                .map_err(|e| CodegenError::Target(e.to_string()))?;
        }
    }
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).expect("a known Cranelift setting")
    };
    set(&mut flags, "opt_level", "speed");
    set(&mut flags, "enable_probestack", "false");
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    );
    match linking {
        Linking::Jit => {
            set(&mut flags, "is_pic", "false");
            set(&mut flags, "use_colocated_libcalls", "false");
        }
        Linking::Object => set(&mut flags, "is_pic", "true"),
    }
    builder
        .finish(settings::Flags::new(flags))
        .map_err(|e| CodegenError::Target(format!("{triple}: {e}")))
}

/// What the generators may use on this ISA.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// A fused multiply-add instruction (without it `fma` becomes a libm call).
    pub fma: bool,
    /// Round-to-integral instructions (`floor`, `ceil`, `nearest`); without them they
    /// become libm calls too.
    pub round: bool,
}

impl Features {
    pub fn of(isa: &dyn isa::TargetIsa) -> Self {
        let flag = |name: &str| {
            isa.isa_flags()
                .iter()
                .any(|v| v.name == name && v.as_bool() == Some(true))
        };
        match isa.triple().architecture {
            // Cranelift emits `vfmadd` only with AVX too (VEX encoding).
            Architecture::X86_64 => Features {
                fma: flag("has_fma") && flag("has_avx"),
                round: flag("has_sse41"),
            },
            // AArch64 and the others Cranelift supports have both in their base ISA.
            _ => Features {
                fma: true,
                round: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_the_cpu() {
        let v2 = isa(
            Some("x86_64-unknown-linux-gnu"),
            Some("x86-64-v2"),
            Linking::Object,
        )
        .unwrap();
        let f = Features::of(&*v2);
        assert!(!f.fma && f.round);
        let v3 = isa(
            Some("x86_64-unknown-linux-gnu"),
            Some("x86-64-v3"),
            Linking::Object,
        )
        .unwrap();
        assert!(Features::of(&*v3).fma);
        let arm = isa(Some("aarch64-unknown-linux-gnu"), None, Linking::Object).unwrap();
        assert!(Features::of(&*arm).fma);
    }
}
