//! The micro-kernel (`cnnc_codegen::microkernel`): every register tile the tiling pass
//! can choose (up to 12 pixels by 4 vectors, 2 or 4 channels per step, within the 16
//! xmm registers of x86-64)
//! compiles without spilling a vector register to the stack, and the code of the
//! common shapes is snapshotted, so a change in what Cranelift makes of them shows in
//! review.

use cnnc_codegen::microkernel::{TileShape, tile_listing};
use cnnc_codegen::target::{Linking, isa};

/// The tile compiled for x86-64-v3 (FMA and AVX): the same code on every host.
fn listing(shape: TileShape) -> String {
    let isa = isa(
        Some("x86_64-unknown-linux-gnu"),
        Some("x86-64-v3"),
        Linking::Object,
    )
    .unwrap();
    tile_listing(shape, &*isa).unwrap()
}

/// Lines that move a vector register to or from the stack frame.
fn spills(code: &str) -> Vec<&str> {
    code.lines()
        .filter(|l| l.contains("%xmm") && l.contains("%rsp"))
        .collect()
}

/// The shapes the tiling pass can choose: up to 12 pixels by 4 vectors, 2 channels per
/// step, or 4 for one vector.
fn shapes() -> impl Iterator<Item = TileShape> {
    (1..=4).flat_map(|vectors| {
        let unrolls: &[usize] = if vectors == 1 { &[2, 4] } else { &[2] };
        unrolls.iter().flat_map(move |&unroll| {
            (1..=12).map(move |pixels| TileShape {
                pixels,
                vectors,
                unroll,
            })
        })
    })
}

#[test]
fn no_tile_the_tiling_pass_can_choose_spills() {
    let mut checked = 0;
    for shape in shapes().filter(|s| s.fits(16)) {
        let code = listing(shape);
        let s = spills(&code);
        assert!(s.is_empty(), "{shape:?} spills:\n{}", s.join("\n"));
        assert_eq!(
            code.matches("vfmadd").count(),
            shape.unroll * shape.pixels * shape.vectors,
            "{shape:?}: one FMA per accumulator and unrolled channel"
        );
        checked += 1;
    }
    assert_eq!(checked, 12 + 8 + 6 + 4 + 3);
}

#[test]
fn a_tile_beyond_the_registers_spills() {
    // The check above can fail: 20 accumulators do not fit, nor 9 pixels with a whole
    // block of weights and broadcasts.
    for (pixels, vectors, unroll) in [(5, 4, 2), (9, 1, 4)] {
        let shape = TileShape {
            pixels,
            vectors,
            unroll,
        };
        assert!(!shape.fits(16), "{shape:?}");
        assert!(!spills(&listing(shape)).is_empty(), "{shape:?}");
    }
}

#[test]
fn tile_code_per_shape() {
    for (pixels, vectors, unroll) in [
        (3, 4, 2),
        (4, 3, 2),
        (2, 4, 2),
        (6, 2, 2),
        (12, 1, 2),
        (8, 1, 4),
    ] {
        let code = listing(TileShape {
            pixels,
            vectors,
            unroll,
        });
        insta::assert_snapshot!(format!("tile_{pixels}x{vectors}u{unroll}"), code);
    }
}
