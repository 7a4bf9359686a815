//! ONNX graph to IR graph.
//!
//! The importer binds every graph input to a static type, turns initializers into
//! constants, orders the nodes by their data dependencies, and translates each node
//! (see `ops/`) into IR nodes whose types the IR infers. Attribute-like inputs
//! (Reshape's shape, Slice's bounds, ...) are evaluated at compile time through the
//! reference interpreter; a model whose such inputs depend on run-time data is refused.

use std::collections::{HashMap, HashSet};

use cnnc_ir::interp::ConstEval;
use cnnc_ir::{DType, Graph, NodeId, Op, Tensor, TensorType, Value};

use crate::attrs::Attrs;
use crate::error::{ImportError, NodeRef, Result, bail, unsupported};
use crate::load::OnnxModel;
use crate::proto::{GraphProto, NodeProto, ValueInfoProto, data_type};
use crate::tensor::{ExternalData, dtype_of, tensor_from_proto};

/// What the caller fixes about a model's inputs.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Full shapes for inputs with symbolic or unknown dimensions.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Inputs bound as compile-time constants; they stop being inputs of the graph.
    pub constants: HashMap<String, Tensor>,
}

/// Imports the model's graph. The result has static types everywhere and has passed
/// `cnnc_ir::verify`.
pub fn import(model: &OnnxModel, opts: &ImportOptions) -> Result<Graph> {
    let run = || -> Result<Graph> {
        let opset = model.opset()?;
        let proto = model.proto.graph.as_ref().expect("checked when decoding");
        if !model.proto.functions.is_empty() {
            unsupported!("model-local functions");
        }
        let mut imp = Importer {
            opset,
            graph: Graph::new(),
            values: HashMap::new(),
            consts: ConstEval::new(),
            names: HashSet::new(),
            external: ExternalData::new(model.dir()),
        };
        imp.import_graph(proto, opts)?;
        Ok(imp.graph)
    };
    run().map_err(|e| match model.path() {
        Some(p) => e.in_file(p),
        None => e,
    })
}

pub(crate) struct Importer {
    opset: i64,
    graph: Graph,
    /// ONNX tensor name -> IR value.
    values: HashMap<String, Value>,
    consts: ConstEval,
    /// Every tensor name in use, so generated names stay unique.
    names: HashSet<String>,
    external: ExternalData,
}

impl Importer {
    fn import_graph(&mut self, g: &GraphProto, opts: &ImportOptions) -> Result<()> {
        if !g.sparse_initializer.is_empty() {
            unsupported!("sparse initializers");
        }
        let initializers: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        for name in opts.input_shapes.keys().chain(opts.constants.keys()) {
            if !g.input.iter().any(|i| &i.name == name) {
                bail!("'{name}' is not an input of the graph");
            }
        }
        self.reserve_names(g)?;

        for t in &g.initializer {
            if t.name.is_empty() {
                bail!("an initializer has no name");
            }
            if opts.constants.contains_key(&t.name) {
                continue;
            }
            let tensor = tensor_from_proto(t, &mut self.external).map_err(|e| ImportError {
                message: format!("initializer '{}': {}", t.name, e.message),
                ..e
            })?;
            let v = self.graph.add_const(t.name.clone(), tensor);
            self.values.insert(t.name.clone(), v);
        }
        for input in &g.input {
            if let Some(t) = opts.constants.get(&input.name) {
                let v = self.graph.add_const(input.name.clone(), t.clone());
                self.values.insert(input.name.clone(), v);
            } else if !initializers.contains(input.name.as_str()) {
                let ty = input_type(input, opts.input_shapes.get(&input.name))?;
                let v = self.graph.add_input(input.name.clone(), ty)?;
                self.values.insert(input.name.clone(), v);
            }
        }

        for node in order_nodes(g, &self.values)? {
            let node_ref = node_ref(node);
            self.import_node(node).map_err(|e| e.at_node(&node_ref))?;
        }

        let mut seen = HashSet::new();
        for out in &g.output {
            if !seen.insert(out.name.as_str()) {
                bail!("graph output '{}' is listed twice", out.name);
            }
            let Some(&v) = self.values.get(&out.name) else {
                bail!("graph output '{}' is not computed by any node", out.name);
            };
            check_declared(out, self.graph.value_type(v))?;
            self.graph.add_output(out.name.clone(), v);
        }
        self.graph.remove_dead();
        cnnc_ir::verify(&self.graph)?;
        Ok(())
    }

    /// Records every tensor name of the graph and rejects duplicates.
    fn reserve_names(&mut self, g: &GraphProto) -> Result<()> {
        let declared = g
            .input
            .iter()
            .map(|i| &i.name)
            .chain(g.initializer.iter().map(|t| &t.name));
        for name in declared {
            self.names.insert(name.clone());
        }
        let mut produced = HashSet::new();
        for node in &g.node {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                if !produced.insert(out.as_str()) || self.names.contains(out) {
                    return Err(
                        ImportError::invalid(format!("tensor '{out}' is defined twice"))
                            .at_node(&node_ref(node)),
                    );
                }
            }
        }
        self.names.extend(produced.into_iter().map(String::from));
        Ok(())
    }

    fn unique_name(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn import_node(&mut self, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            unsupported!("operator domain '{}'", node.domain);
        }
        let attrs = Attrs::new(node)?;
        let mut cx = NodeCx {
            imp: self,
            node,
            attrs,
            fresh: Vec::new(),
        };
        let results = crate::ops::translate(&mut cx)?;
        cx.attrs.check_all_read()?;
        let fresh = std::mem::take(&mut cx.fresh);
        let mut renamed = HashSet::new();
        for (i, name) in node.output.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            let Some(&v) = results.get(i) else {
                unsupported!("output {i} ('{name}')");
            };
            if fresh.contains(&v) && renamed.insert(v) {
                // A value made for this node takes the ONNX tensor's name.
                self.names
                    .remove(&self.graph.node(v.node).outputs[v.port].name);
                self.graph.node_mut(v.node).outputs[v.port].name = name.clone();
            }
            self.values.insert(name.clone(), v);
        }
        Ok(())
    }
}

/// The translation context of one ONNX node.
pub(crate) struct NodeCx<'a> {
    imp: &'a mut Importer,
    node: &'a NodeProto,
    pub attrs: Attrs<'a>,
    /// Values created for this node, renamed to its output names when bound.
    fresh: Vec<Value>,
}

impl NodeCx<'_> {
    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    pub fn op_type(&self) -> &str {
        &self.node.op_type
    }

    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// How many outputs the node lists, used or not.
    pub fn num_outputs(&self) -> usize {
        self.node.output.len()
    }

    /// Whether output `i` is listed with a name.
    pub fn output_used(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|n| !n.is_empty())
    }

    /// Input `i`, or `None` when it is absent or given as "".
    pub fn opt_input(&self, i: usize) -> Option<Value> {
        let name = self.node.input.get(i)?;
        if name.is_empty() {
            return None;
        }
        // `order_nodes` checked that every input is bound before this node runs.
        Some(self.imp.values[name])
    }

    /// A required input.
    pub fn input(&self, i: usize) -> Result<Value> {
        match self.opt_input(i) {
            Some(v) => Ok(v),
            None => bail!("input {i} is required"),
        }
    }

    /// The inputs given, skipping absent ones.
    pub fn inputs(&self) -> Vec<Value> {
        (0..self.num_inputs())
            .filter_map(|i| self.opt_input(i))
            .collect()
    }

    pub fn ty(&self, v: Value) -> &TensorType {
        self.imp.graph.value_type(v)
    }

    /// The value of an input that must be known at compile time (a shape, pads, scales,
    /// ...), or `None` when the input is absent.
    pub fn static_input(&mut self, i: usize, what: &str) -> Result<Option<Tensor>> {
        let Some(v) = self.opt_input(i) else {
            return Ok(None);
        };
        match self.imp.consts.value(&self.imp.graph, v)? {
            Some(t) => Ok(Some(t)),
            None => unsupported!(
                "the {what} (input {i}, '{}') depends on run-time data; cnnc compiles static shapes only \
                 (bind the graph inputs it depends on as constants)",
                self.node.input[i]
            ),
        }
    }

    /// A static input read as integers (i64 or i32 tensor).
    pub fn static_ints(&mut self, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.static_input(i, what)? {
            None => Ok(None),
            Some(t) if t.dtype().is_integer() => Ok(Some(t.to_i64s()?)),
            Some(t) => bail!("the {what} must be integers, got {}", t.ty()),
        }
    }

    /// A static input read as one float (a rank-0 or one-element f32 tensor).
    pub fn static_scalar(&mut self, i: usize, what: &str) -> Result<Option<f32>> {
        match self.static_input(i, what)? {
            None => Ok(None),
            Some(t) if t.dtype() == DType::F32 && t.numel() == 1 => Ok(Some(t.view::<f32>()?[0])),
            Some(t) => bail!("the {what} must be a single float, got {}", t.ty()),
        }
    }

    /// Adds an IR node computing `op`; its outputs get provisional names.
    pub fn add_multi(&mut self, op: Op, inputs: &[Value], outputs: usize) -> Result<Vec<Value>> {
        let base = self
            .node
            .output
            .iter()
            .find(|o| !o.is_empty())
            .cloned()
            .unwrap_or_else(|| self.display_name());
        let names: Vec<String> = (0..outputs)
            .map(|_| self.imp.unique_name(&format!("{base}~")))
            .collect();
        let id: NodeId = self
            .imp
            .graph
            .add_node(self.display_name(), op, inputs, names)?;
        let values: Vec<Value> = (0..outputs).map(|p| Value::new(id, p)).collect();
        self.fresh.extend(&values);
        Ok(values)
    }

    pub fn add(&mut self, op: Op, inputs: &[Value]) -> Result<Value> {
        Ok(self.add_multi(op, inputs, 1)?[0])
    }

    pub fn constant(&mut self, t: Tensor) -> Value {
        let base = self
            .node
            .output
            .iter()
            .find(|o| !o.is_empty())
            .cloned()
            .unwrap_or_else(|| self.display_name());
        let name = self.imp.unique_name(&format!("{base}~"));
        let v = self.imp.graph.add_const(name, t);
        self.fresh.push(v);
        v
    }

    /// Reads a tensor stored in an attribute.
    pub fn attr_tensor(&mut self, name: &str) -> Result<Option<Tensor>> {
        match self.attrs.tensor(name)? {
            None => Ok(None),
            Some(t) => Ok(Some(tensor_from_proto(t, &mut self.imp.external)?)),
        }
    }

    fn display_name(&self) -> String {
        node_ref(self.node).name
    }
}

fn node_ref(node: &NodeProto) -> NodeRef {
    let name = if !node.name.is_empty() {
        node.name.clone()
    } else {
        node.output
            .iter()
            .find(|o| !o.is_empty())
            .cloned()
            .unwrap_or_default()
    };
    NodeRef {
        name,
        op_type: node.op_type.clone(),
    }
}

/// Orders nodes so that each comes after the producers of its inputs (ONNX requires
/// this already, but not every writer complies). Fails on a missing input or a cycle.
fn order_nodes<'g>(
    g: &'g GraphProto,
    known: &HashMap<String, Value>,
) -> Result<Vec<&'g NodeProto>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, node) in g.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            producer.insert(out, i);
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    let mut pending = vec![0usize; g.node.len()];
    for (i, node) in g.node.iter().enumerate() {
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            if let Some(&p) = producer.get(name.as_str()) {
                deps[p].push(i);
                pending[i] += 1;
            } else if !known.contains_key(name) {
                return Err(ImportError::invalid(format!(
                    "input '{name}' is not produced by any node, initializer or graph input"
                ))
                .at_node(&node_ref(node)));
            }
        }
    }
    let mut ready: Vec<usize> = (0..g.node.len())
        .rev()
        .filter(|&i| pending[i] == 0)
        .collect();
    let mut order = Vec::with_capacity(g.node.len());
    while let Some(i) = ready.pop() {
        order.push(&g.node[i]);
        for &d in deps[i].iter().rev() {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push(d);
            }
        }
    }
    if let Some(i) = (0..g.node.len()).find(|&i| pending[i] > 0) {
        return Err(
            ImportError::invalid("the graph has a cycle through this node")
                .at_node(&node_ref(&g.node[i])),
        );
    }
    Ok(order)
}

/// The static type of a graph input: its declared element type and shape, with symbolic
/// dimensions taken from `shape` (the caller's `--input-shape`) or, for a symbolic batch
/// dimension (axis 0), 1.
fn input_type(input: &ValueInfoProto, shape: Option<&Vec<usize>>) -> Result<TensorType> {
    let name = &input.name;
    let Some(tt) = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        unsupported!(
            "input '{name}' is not a tensor (sequence, map and optional inputs are not supported)"
        );
    };
    let dtype = dtype_of(tt.elem_type).map_err(|e| ImportError {
        message: format!("input '{name}': {}", e.message),
        ..e
    })?;
    if dtype != DType::F32 {
        unsupported!(
            "input '{name}' is {} at run time; cnnc runs float32 inputs only (bind it as a compile-time constant)",
            data_type::name(tt.elem_type)
        );
    }
    let declared = tt.shape.as_ref().map(|s| s.dim.as_slice());
    let dims: Vec<usize> = match (declared, shape) {
        (None, None) => bail!("input '{name}' has no declared shape; give one with --input-shape"),
        (None, Some(s)) => s.clone(),
        (Some(dims), given) => {
            if let Some(s) = given
                && s.len() != dims.len()
            {
                bail!(
                    "input '{name}' has rank {}, the given shape {s:?} has rank {}",
                    dims.len(),
                    s.len()
                );
            }
            let mut out = Vec::with_capacity(dims.len());
            for (axis, d) in dims.iter().enumerate() {
                let fixed = d
                    .dim_value
                    .filter(|&v| v > 0 || (v == 0 && d.dim_param.is_none()));
                let dim = match (fixed, given) {
                    (Some(v), Some(s)) if s[axis] as i64 != v => {
                        bail!(
                            "input '{name}' has dimension {v} at axis {axis}, the given shape says {}",
                            s[axis]
                        )
                    }
                    (Some(v), _) => usize::try_from(v).map_err(|_| {
                        ImportError::invalid(format!("input '{name}' has negative dimension {v}"))
                    })?,
                    (None, Some(s)) => s[axis],
                    (None, None) if axis == 0 => 1,
                    (None, None) => {
                        let what = d
                            .dim_param
                            .as_deref()
                            .map_or("an unknown dimension".into(), |p| {
                                format!("symbolic dimension '{p}'")
                            });
                        bail!(
                            "input '{name}' has {what} at axis {axis}; give its shape with --input-shape {name}=..."
                        )
                    }
                };
                out.push(dim);
            }
            out
        }
    };
    Ok(TensorType::new(dtype, dims))
}

/// Checks an output's computed type against what the model declares (fixed dims only).
fn check_declared(out: &ValueInfoProto, ty: &TensorType) -> Result<()> {
    let Some(tt) = out.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Ok(());
    };
    if tt.elem_type != 0 {
        let declared = dtype_of(tt.elem_type)?;
        if declared != ty.dtype {
            bail!(
                "graph output '{}' is declared {declared} but computes {}",
                out.name,
                ty.dtype
            );
        }
    }
    if let Some(shape) = &tt.shape {
        let fits = shape.dim.len() == ty.rank()
            && shape
                .dim
                .iter()
                .zip(&ty.shape)
                .all(|(d, &n)| match d.dim_value {
                    Some(v) if d.dim_param.is_none() && v > 0 => v as usize == n,
                    _ => true,
                });
        if !fits {
            bail!(
                "graph output '{}' is declared with shape {:?} but computes {ty}",
                out.name,
                shape
                    .dim
                    .iter()
                    .map(|d| d.dim_value.unwrap_or(-1))
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}
