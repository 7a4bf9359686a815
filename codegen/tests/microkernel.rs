//! The micro-kernels (`cnnc_codegen::microkernel`): every register tile the tiling pass
//! can choose (up to 12 pixels by 4 vectors, 2 or 4 channels per step, within the 16
//! xmm registers of x86-64), and the plane tile of each plane of plain products,
//! compiles without spilling a vector register to the stack, and the code of the
//! common shapes is snapshotted, so a change in what Cranelift makes of them shows in
//! review.

use cnnc_codegen::microkernel::{PlaneTile, TileShape, plane_tile_listing, tile_listing};
use cnnc_codegen::target::{Linking, isa};

/// The tile compiled for x86-64-v3 (FMA and AVX): the same code on every host.
fn listing(shape: TileShape) -> String {
    tile_listing(shape, &*x86_64_v3()).unwrap()
}

fn x86_64_v3() -> std::sync::Arc<dyn cranelift_codegen::isa::TargetIsa> {
    isa(
        Some("x86_64-unknown-linux-gnu"),
        Some("x86-64-v3"),
        Linking::Object,
    )
    .unwrap()
}

/// Lines that move a vector register to or from the stack frame.
fn spills(code: &str) -> Vec<&str> {
    code.lines()
        .filter(|l| l.contains("%xmm") && l.contains("%rsp"))
        .collect()
}

/// The shapes the tiling pass can choose (up to 12 pixels by 4 vectors, 2 channels per
/// step, or 4 for one vector) as code generation makes them: narrow ones with partial
/// sums over a whole block per step.
fn shapes() -> Vec<TileShape> {
    let mut shapes = Vec::new();
    for vectors in 1..=4 {
        let unrolls: &[usize] = if vectors == 1 { &[2, 4] } else { &[2] };
        for &unroll in unrolls {
            for pixels in 1..=12 {
                let shape = TileShape::of(pixels, vectors, unroll);
                if !shapes.contains(&shape) {
                    shapes.push(shape);
                }
            }
        }
    }
    shapes
}

#[test]
fn no_tile_the_tiling_pass_can_choose_spills() {
    let mut checked = 0;
    for shape in shapes().into_iter().filter(|s| s.fits(16)) {
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
    // One vector: 5 narrow tiles (1-5 pixels), 7 of 2 channels a step, 3 of 4; two
    // vectors: 2 narrow, 4 more; three: 1 and 3; four: 1 and 2.
    assert_eq!(checked, 15 + 6 + 4 + 3);
}

#[test]
fn a_tile_beyond_the_registers_spills() {
    // The check above can fail: 20 accumulators do not fit, nor 9 pixels with a whole
    // block of weights and broadcasts.
    for (pixels, vectors, unroll) in [(5, 4, 2), (9, 1, 4)] {
        let shape = TileShape::of(pixels, vectors, unroll);
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
        let code = listing(TileShape::of(pixels, vectors, unroll));
        insta::assert_snapshot!(format!("tile_{pixels}x{vectors}u{unroll}"), code);
    }
}

#[test]
fn a_narrow_tile_adds_into_independent_partial_sums() {
    // A border column of one pixel and one vector: four partial sums over a whole
    // block per step, each FMA into its own (no FMA reads another's result).
    let shape = TileShape::of(1, 1, 2);
    assert_eq!((shape.unroll, shape.split), (4, 4));
    let code = listing(shape);
    let fmas: Vec<&str> = code.lines().filter(|l| l.contains("vfmadd")).collect();
    assert_eq!(fmas.len(), 4);
    let dest = |l: &str| l.rsplit(' ').next().unwrap().to_string();
    let dests: std::collections::HashSet<String> = fmas.iter().map(|l| dest(l)).collect();
    assert_eq!(dests.len(), 4, "{fmas:?}");
    for (i, l) in fmas.iter().enumerate() {
        let sources = l.rsplit_once(',').unwrap().0;
        for earlier in &fmas[..i] {
            let d = dest(earlier);
            assert!(!sources.contains(&d), "{l} reads {d}, from {earlier}");
        }
    }
    insta::assert_snapshot!("tile_1x1u4s4", code);
    // Up to five accumulators take two partial sums, over two channels a step where a
    // whole block's would leave no register spare; from six on a tile goes alone.
    let s = TileShape::of(3, 1, 2);
    assert_eq!((s.unroll, s.split), (4, 2));
    let s = TileShape::of(4, 1, 2);
    assert_eq!((s.unroll, s.split), (2, 2));
    let s = TileShape::of(5, 1, 2);
    assert_eq!((s.unroll, s.split), (2, 2));
    assert_eq!(TileShape::of(6, 1, 2).split, 1);
}

/// Every plane of plain products (1 to 13 vectors) takes a tile that fits the
/// registers: one FMA per accumulator and unrolled channel, each on a register it
/// overwrites (no copies of the broadcasts, no FMA memory operands), and no spill.
#[test]
fn no_plane_tile_spills() {
    let isa = x86_64_v3();
    let tiles: Vec<PlaneTile> = (1..=13).map(|v| PlaneTile::of(v, 512)).collect();
    let shapes: Vec<_> = tiles
        .iter()
        .map(|t| (t.rows, t.vectors, t.unroll))
        .collect();
    let mut want = vec![(6, 1, 1), (4, 2, 1), (3, 3, 1), (2, 4, 2)];
    want.extend((5..=13).map(|v| (1, v, if v <= 11 { 2 } else { 1 })));
    assert_eq!(shapes, want);
    for tile in tiles {
        let code = plane_tile_listing(tile, &*isa).unwrap();
        let s = spills(&code);
        assert!(s.is_empty(), "{tile:?} spills:\n{}", s.join("\n"));
        let fmas: Vec<&str> = code.lines().filter(|l| l.contains("vfmadd")).collect();
        assert_eq!(
            fmas.len(),
            tile.unroll * tile.rows * tile.vectors,
            "{tile:?}"
        );
        assert!(
            fmas.iter()
                .all(|l| l.contains("vfmadd213ps") && !l.contains('(')),
            "{tile:?}: {fmas:?}"
        );
        if tile.vectors == 4 {
            insta::assert_snapshot!("plane_tile_2x4u2", code);
        }
    }
    // Fewer output channels than a tile's rows: one tile of them all.
    assert_eq!(PlaneTile::of(4, 1).rows, 1);
}
