//! Gemm and MatMul.

use cnnc_ir::op::{Epilogue, Gemm};
use cnnc_ir::{Op, Value};

use crate::error::Result;
use crate::import::NodeCx;

pub fn gemm(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let gemm = Gemm {
        alpha: cx.attrs.float_or("alpha", 1.0)?,
        beta: cx.attrs.float_or("beta", 1.0)?,
        trans_a: cx.attrs.bool_or("transA", false)?,
        trans_b: cx.attrs.bool_or("transB", false)?,
        epilogue: Epilogue::default(),
    };
    // Before opset 7, `broadcast` allowed C to broadcast; the IR always allows it.
    cx.attrs.ignore(&["broadcast"]);
    let mut inputs = vec![cx.input(0)?, cx.input(1)?];
    inputs.extend(cx.opt_input(2));
    Ok(vec![cx.add(Op::Gemm(gemm), &inputs)?])
}

pub fn matmul(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    Ok(vec![cx.add(
        Op::MatMul {
            bias: false,
            epilogue: Epilogue::default(),
        },
        &[a, b],
    )?])
}
