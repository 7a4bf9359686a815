//! The dataflow graph: a petgraph `StableGraph` of ops; edges carry tensors.
//!
//! An edge `a -> b` with ports `(from, to)` means output `from` of node `a` is input
//! `to` of node `b`. A node's inputs are exactly its incoming edges, numbered
//! `0..n` without gaps; nothing else records them, so they cannot disagree.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;

use crate::op::Tile;
use crate::{IrError, Op, Tensor, TensorType};

pub type NodeId = NodeIndex<u32>;

/// One output of one node: a tensor in the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value {
    pub node: NodeId,
    pub port: usize,
}

impl Value {
    pub fn new(node: NodeId, port: usize) -> Self {
        Value { node, port }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// Name of the source node (ONNX node name), for messages.
    pub name: String,
    pub op: Op,
    pub outputs: Vec<Output>,
    /// How code generation blocks this node's matrix product, when the tiling pass
    /// chose (Conv, Gemm and MatMul only).
    pub tile: Option<Tile>,
}

/// A node output: the tensor's name (unique in the graph) and type.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub ty: TensorType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from_port: usize,
    pub to_port: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub name: String,
    pub value: Value,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    graph: StableGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    outputs: Vec<GraphOutput>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> Result<Value, IrError> {
        ty.check_size()?;
        let name = name.into();
        let id = self.graph.add_node(Node {
            name: name.clone(),
            op: Op::Input,
            outputs: vec![Output { name, ty }],
            tile: None,
        });
        self.inputs.push(id);
        Ok(Value::new(id, 0))
    }

    pub fn add_const(&mut self, name: impl Into<String>, tensor: Tensor) -> Value {
        let name = name.into();
        let ty = tensor.ty();
        let id = self.graph.add_node(Node {
            name: name.clone(),
            op: Op::Const(tensor),
            outputs: vec![Output { name, ty }],
            tile: None,
        });
        Value::new(id, 0)
    }

    /// Adds a node computing `op` on `inputs`, with output types inferred. `output_names`
    /// must name every output.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[Value],
        output_names: Vec<String>,
    ) -> Result<NodeId, IrError> {
        let name = name.into();
        let located = |e: IrError| e.at(&name, op.name());
        let types = inputs
            .iter()
            .map(|&v| self.try_value_type(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(located)?;
        let out_types = op.infer(&types).map_err(located)?;
        if out_types.len() != output_names.len() {
            return Err(located(IrError::invalid(format!(
                "{} outputs named for {} results",
                output_names.len(),
                out_types.len()
            ))));
        }
        for t in &out_types {
            t.check_size().map_err(located)?;
        }
        let outputs = output_names
            .into_iter()
            .zip(out_types)
            .map(|(name, ty)| Output { name, ty })
            .collect();
        let id = self.graph.add_node(Node {
            name,
            op,
            outputs,
            tile: None,
        });
        for (to_port, v) in inputs.iter().enumerate() {
            self.graph.add_edge(
                v.node,
                id,
                Edge {
                    from_port: v.port,
                    to_port,
                },
            );
        }
        Ok(id)
    }

    /// [`Graph::add_node`] for a single-output op whose output is named like the node.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[Value],
    ) -> Result<Value, IrError> {
        let name = name.into();
        let id = self.add_node(name.clone(), op, inputs, vec![name])?;
        Ok(Value::new(id, 0))
    }

    pub fn add_output(&mut self, name: impl Into<String>, value: Value) {
        self.outputs.push(GraphOutput {
            name: name.into(),
            value,
        });
    }

    /// Makes the graph outputs that are `old` be `new` (keeping their names).
    pub fn replace_output(&mut self, old: Value, new: Value) {
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[GraphOutput] {
        &self.outputs
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.graph[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.graph.contains_node(id)
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// All node ids in index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph.node_indices()
    }

    pub fn value_type(&self, v: Value) -> &TensorType {
        &self.graph[v.node].outputs[v.port].ty
    }

    pub fn value_name(&self, v: Value) -> &str {
        &self.graph[v.node].outputs[v.port].name
    }

    fn try_value_type(&self, v: Value) -> Result<&TensorType, IrError> {
        self.graph
            .node_weight(v.node)
            .and_then(|n| n.outputs.get(v.port))
            .map(|o| &o.ty)
            .ok_or_else(|| IrError::invalid(format!("no value {v:?}")))
    }

    /// The node's inputs in order.
    pub fn inputs_of(&self, id: NodeId) -> Vec<Value> {
        let mut edges: Vec<(usize, Value)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| {
                (
                    e.weight().to_port,
                    Value::new(e.source(), e.weight().from_port),
                )
            })
            .collect();
        edges.sort_by_key(|&(port, _)| port);
        edges.into_iter().map(|(_, v)| v).collect()
    }

    /// The `to_port` of every incoming edge, sorted (for `verify`).
    pub(crate) fn raw_in_ports(&self, id: NodeId) -> Vec<usize> {
        let mut ports: Vec<usize> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.weight().to_port)
            .collect();
        ports.sort();
        ports
    }

    /// `(node, input port)` of every use of `v` by a node, in a deterministic order.
    pub fn users(&self, v: Value) -> Vec<(NodeId, usize)> {
        let mut users: Vec<(NodeId, usize)> = self
            .graph
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_port == v.port)
            .map(|e| (e.target(), e.weight().to_port))
            .collect();
        users.sort();
        users
    }

    /// Whether `v` is a graph output.
    pub fn is_output(&self, v: Value) -> bool {
        self.outputs.iter().any(|o| o.value == v)
    }

    /// Makes every user of `old` (nodes and graph outputs) use `new` instead.
    pub fn replace_uses(&mut self, old: Value, new: Value) {
        let edges: Vec<_> = self
            .graph
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().from_port == old.port)
            .map(|e| (e.id(), e.target(), e.weight().to_port))
            .collect();
        for (edge, target, to_port) in edges {
            self.graph.remove_edge(edge);
            self.graph.add_edge(
                new.node,
                target,
                Edge {
                    from_port: new.port,
                    to_port,
                },
            );
        }
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    /// Replaces node `id`'s op and inputs in place, keeping its name, output names and
    /// users; the output types are inferred again (and must keep their number), and
    /// the tile is dropped.
    pub fn rewrite(&mut self, id: NodeId, op: Op, inputs: &[Value]) -> Result<(), IrError> {
        let located = |e: IrError| e.at(&self.graph[id].name, op.name());
        let types = inputs
            .iter()
            .map(|&v| self.try_value_type(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(located)?;
        let out_types = op.infer(&types).map_err(located)?;
        if out_types.len() != self.graph[id].outputs.len() {
            return Err(located(IrError::invalid(
                "a rewrite must keep the number of outputs",
            )));
        }
        let incoming: Vec<_> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in incoming {
            self.graph.remove_edge(e);
        }
        for (to_port, v) in inputs.iter().enumerate() {
            self.graph.add_edge(
                v.node,
                id,
                Edge {
                    from_port: v.port,
                    to_port,
                },
            );
        }
        let node = &mut self.graph[id];
        node.op = op;
        // A tile was chosen for the old op.
        node.tile = None;
        for (o, t) in node.outputs.iter_mut().zip(out_types) {
            o.ty = t;
        }
        Ok(())
    }

    /// Turns node `id` into constants with the given output values (one per output),
    /// keeping its tensor names: output 0 becomes the node itself, other outputs new
    /// constant nodes. The node's inputs are disconnected.
    pub fn replace_with_consts(&mut self, id: NodeId, values: Vec<Tensor>) {
        debug_assert_eq!(values.len(), self.graph[id].outputs.len());
        let mut values = values.into_iter();
        let first = values.next().expect("a node has an output");
        for (port, t) in values.enumerate().map(|(i, t)| (i + 1, t)) {
            let name = self.graph[id].outputs[port].name.clone();
            let v = self.add_const(name, t);
            self.replace_uses(Value::new(id, port), v);
        }
        let incoming: Vec<_> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in incoming {
            self.graph.remove_edge(e);
        }
        let node = &mut self.graph[id];
        node.outputs.truncate(1);
        node.outputs[0].ty = first.ty();
        node.op = Op::Const(first);
        node.tile = None;
    }

    /// Removes a node and its edges. Graph inputs cannot be removed.
    pub fn remove_node(&mut self, id: NodeId) {
        debug_assert!(!self.inputs.contains(&id), "graph inputs stay");
        self.graph.remove_node(id);
    }

    /// Removes every node that no graph output depends on (graph inputs stay).
    /// Returns how many nodes were removed.
    pub fn remove_dead(&mut self) -> usize {
        let mut live: HashSet<NodeId> = self.inputs.iter().copied().collect();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|o| o.value.node).collect();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(self.graph.neighbors_directed(id, Direction::Incoming));
            }
        }
        let dead: Vec<NodeId> = self
            .graph
            .node_indices()
            .filter(|id| !live.contains(id))
            .collect();
        for &id in &dead {
            self.graph.remove_node(id);
        }
        dead.len()
    }

    /// Nodes in dependency order; among ready nodes the lowest index goes first, so the
    /// order is deterministic. Fails, naming a node on the cycle, if there is one.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, IrError> {
        let mut pending: HashMap<NodeId, usize> = HashMap::new();
        let mut ready = BinaryHeap::new();
        for id in self.graph.node_indices() {
            let n = self.graph.edges_directed(id, Direction::Incoming).count();
            if n == 0 {
                ready.push(Reverse(id));
            } else {
                pending.insert(id, n);
            }
        }
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for e in self.graph.edges_directed(id, Direction::Outgoing) {
                let n = pending
                    .get_mut(&e.target())
                    .expect("target has an incoming edge");
                *n -= 1;
                if *n == 0 {
                    pending.remove(&e.target());
                    ready.push(Reverse(e.target()));
                }
            }
        }
        match pending.keys().min() {
            None => Ok(order),
            Some(&id) => {
                let n = &self.graph[id];
                Err(IrError::invalid("the graph has a cycle").at(&n.name, n.op.name()))
            }
        }
    }
}
