//! The micro-kernel (`cnnc_codegen::microkernel`): every register tile the tiling pass
//! can choose (up to 12 pixels by 4 vectors, within the 16 xmm registers of x86-64)
//! compiles without spilling a vector register to the stack, and the code of the
//! common shapes is snapshotted, so a change in what Cranelift makes of them shows in
//! review.

use cnnc_codegen::microkernel::{TileShape, tile_listing};
use cnnc_codegen::target::{Linking, isa};

/// The tile compiled for x86-64-v3 (FMA and AVX): the same code on every host.
fn listing(pixels: usize, vectors: usize) -> String {
    let isa = isa(
        Some("x86_64-unknown-linux-gnu"),
        Some("x86-64-v3"),
        Linking::Object,
    )
    .unwrap();
    tile_listing(TileShape { pixels, vectors }, &*isa).unwrap()
}

/// Lines that move a vector register to or from the stack frame.
fn spills(code: &str) -> Vec<&str> {
    code.lines()
        .filter(|l| l.contains("%xmm") && l.contains("%rsp"))
        .collect()
}

#[test]
fn no_tile_the_tiling_pass_can_choose_spills() {
    let mut checked = 0;
    for vectors in 1..=4 {
        for pixels in 1..=12 {
            let shape = TileShape { pixels, vectors };
            if !shape.fits(16) {
                continue;
            }
            let code = listing(pixels, vectors);
            let s = spills(&code);
            assert!(s.is_empty(), "{pixels}x{vectors} spills:\n{}", s.join("\n"));
            assert_eq!(
                code.matches("vfmadd").count(),
                2 * pixels * vectors,
                "{pixels}x{vectors}: one FMA per accumulator and unrolled channel"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12 + 6 + 4 + 3);
}

#[test]
fn a_tile_beyond_the_registers_spills() {
    // The check above can fail: 20 accumulators do not fit.
    assert!(
        !TileShape {
            pixels: 5,
            vectors: 4
        }
        .fits(16)
    );
    assert!(!spills(&listing(5, 4)).is_empty());
}

#[test]
fn tile_code_per_shape() {
    for (pixels, vectors) in [(3, 4), (4, 3), (2, 4), (6, 2), (12, 1)] {
        insta::assert_snapshot!(format!("tile_{pixels}x{vectors}"), listing(pixels, vectors));
    }
}
