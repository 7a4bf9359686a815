//! Typed access to a node's attributes.
//!
//! Every read is recorded; after a node is translated, [`Attrs::check_all_read`] fails
//! on any attribute the translator did not look at. An attribute cnnc does not know
//! could change the op's meaning, so ignoring it silently could give a wrong answer.

use std::cell::RefCell;
use std::collections::HashSet;

use crate::error::{ImportError, Result, bail, unsupported};
use crate::proto::{AttributeProto, NodeProto, TensorProto, attribute_type as ty};

pub struct Attrs<'a> {
    node: &'a NodeProto,
    read: RefCell<HashSet<&'a str>>,
}

fn type_name(t: i32) -> &'static str {
    match t {
        ty::FLOAT => "a float",
        ty::INT => "an int",
        ty::STRING => "a string",
        ty::TENSOR => "a tensor",
        ty::GRAPH => "a graph",
        ty::FLOATS => "floats",
        ty::INTS => "ints",
        ty::STRINGS => "strings",
        ty::TENSORS => "tensors",
        ty::GRAPHS => "graphs",
        ty::SPARSE_TENSOR | ty::SPARSE_TENSORS => "a sparse tensor",
        ty::TYPE_PROTO | ty::TYPE_PROTOS => "a type",
        _ => "of unknown type",
    }
}

/// The attribute's type: its `type` field, or for old writers that leave it unset, the
/// field that holds a value.
fn attr_type(a: &AttributeProto) -> i32 {
    if a.r#type != 0 {
        return a.r#type;
    }
    if !a.ints.is_empty() {
        ty::INTS
    } else if !a.floats.is_empty() {
        ty::FLOATS
    } else if !a.strings.is_empty() {
        ty::STRINGS
    } else if a.t.is_some() {
        ty::TENSOR
    } else if a.g.is_some() {
        ty::GRAPH
    } else if !a.s.is_empty() {
        ty::STRING
    } else if a.f != 0.0 {
        ty::FLOAT
    } else {
        ty::INT
    }
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Result<Self> {
        let mut seen = HashSet::new();
        for a in &node.attribute {
            if !seen.insert(a.name.as_str()) {
                bail!("attribute '{}' is given twice", a.name);
            }
            if !a.ref_attr_name.is_empty() {
                unsupported!("attribute '{}' refers to a function attribute", a.name);
            }
        }
        Ok(Attrs {
            node,
            read: RefCell::new(HashSet::new()),
        })
    }

    fn get(&self, name: &str, want: i32) -> Result<Option<&'a AttributeProto>> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        self.read.borrow_mut().insert(a.name.as_str());
        let have = attr_type(a);
        // An empty list is stored without values, so its type cannot be told apart.
        let empty_list = a.r#type == 0 && matches!(want, ty::INTS | ty::FLOATS | ty::STRINGS);
        if have != want && !empty_list {
            bail!(
                "attribute '{name}' should be {}, not {}",
                type_name(want),
                type_name(have)
            );
        }
        Ok(Some(a))
    }

    pub fn has(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name == name)
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name, ty::INT)?.map(|a| a.i))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An int attribute that must be 0 or 1.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => bail!("attribute '{name}' must be 0 or 1, got {v}"),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self.get(name, ty::FLOAT)?.map(|a| a.f))
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
        self.get(name, ty::STRING)?
            .map(|a| {
                String::from_utf8(a.s.to_vec())
                    .map_err(|_| ImportError::invalid(format!("attribute '{name}' is not UTF-8")))
            })
            .transpose()
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, ty::INTS)?.map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self.get(name, ty::FLOATS)?.map(|a| a.floats.clone()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        match self.get(name, ty::TENSOR)? {
            None => Ok(None),
            Some(a) => match &a.t {
                Some(t) => Ok(Some(t)),
                None => bail!("attribute '{name}' holds no tensor"),
            },
        }
    }

    /// Marks attributes that do not change inference results as read.
    pub fn ignore(&self, names: &[&str]) {
        for a in &self.node.attribute {
            if names.contains(&a.name.as_str()) {
                self.read.borrow_mut().insert(a.name.as_str());
            }
        }
    }

    /// Fails on the first attribute that nothing read.
    pub fn check_all_read(&self) -> Result<()> {
        let read = self.read.borrow();
        match self
            .node
            .attribute
            .iter()
            .find(|a| !read.contains(a.name.as_str()))
        {
            Some(a) => unsupported!("attribute '{}'", a.name),
            None => Ok(()),
        }
    }
}
