//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

use cnnc_ir::op::{Pool, PoolKind};
use cnnc_ir::{Op, Value};

use crate::error::{Result, bail, unsupported};
use crate::import::NodeCx;
use crate::ops::sizes;
use crate::ops::window::window;

pub fn pool(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let x = cx.input(0)?;
    let xt = cx.ty(x).clone();
    if xt.rank() < 3 {
        bail!("expects an input of rank 3 or more, got {xt}");
    }
    if cx.output_used(1) {
        unsupported!("MaxPool's Indices output");
    }
    let Some(kernel) = cx.attrs.ints("kernel_shape")? else {
        bail!("kernel_shape is required");
    };
    let kernel = sizes(&kernel, "kernel_shape")?;
    if kernel.len() != xt.rank() - 2 || kernel.contains(&0) {
        bail!("kernel_shape {kernel:?} does not fit input {xt}");
    }
    let win = window(cx, &kernel, &xt.shape[2..])?;
    let ceil_mode = cx.attrs.bool_or("ceil_mode", false)?;
    let kind = if cx.op_type() == "MaxPool" {
        // storage_order only affects the Indices output.
        cx.attrs.ignore(&["storage_order"]);
        PoolKind::Max
    } else {
        PoolKind::Avg {
            count_include_pad: cx.attrs.bool_or("count_include_pad", false)?,
        }
    };
    let op = Op::Pool(Pool {
        kind,
        kernel,
        strides: win.strides,
        dilations: win.dilations,
        pads: win.pads,
        ceil_mode,
    });
    Ok(vec![cx.add(op, &[x])?])
}

pub fn global_pool(cx: &mut NodeCx) -> Result<Vec<Value>> {
    let kind = if cx.op_type() == "GlobalMaxPool" {
        PoolKind::Max
    } else {
        PoolKind::Avg {
            count_include_pad: false,
        }
    };
    let x = cx.input(0)?;
    Ok(vec![cx.add(Op::GlobalPool(kind), &[x])?])
}
