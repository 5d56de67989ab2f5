//! A table function call in the logical plan: [`TableCallNode`], an extension node whose
//! children are ordinary scans of the tables the call names and whose options are plain data
//! ([`TableCall`]), so EXPLAIN shows them and a codec can ship them.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::{DFSchema, DFSchemaRef, Result, exec_datafusion_err};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::TableFunction;

/// What a call computes, as plain data: the function, the tables it reads (in the order of
/// the node's children) and its literal options.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableCall {
    pub function: String,
    /// (role, table or view name) of each input.
    pub inputs: Vec<(String, String)>,
    pub options: Map<String, Value>,
    /// The call as SQL with every argument it was planned with, defaults included
    /// ([`super::Arguments::call_text`]): what a model remembers of how it was trained.
    #[serde(default)]
    pub sql: String,
}

impl TableCall {
    /// The options as the function's own options type.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.options.clone()))
            .map_err(|e| exec_datafusion_err!("{}: damaged options {:?}: {e}", self.function, self.options))
    }

    /// Whether an input plays `role`.
    pub fn has_input(&self, role: &str) -> bool {
        self.inputs.iter().any(|(r, _)| r == role)
    }
}

impl fmt::Display for TableCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.function)?;
        let tables = self.inputs.iter().map(|(role, name)| format!("{role}={name}"));
        let options = self
            .options
            .iter()
            .map(|(key, value)| format!("{key}={}", shown(value)));
        let parts: Vec<String> = tables.chain(options).collect();
        write!(f, " {}", parts.join(", "))
    }
}

/// An option as EXPLAIN shows it: text unquoted, and a number that came from an f32 as that f32
/// prints (0.01, not 0.009999999776482582).
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) if number.is_f64() => {
            let wide = number.as_f64().unwrap_or(f64::NAN);
            let narrow = wide as f32;
            if f64::from(narrow) == wide {
                format!("{narrow:?}")
            } else {
                format!("{wide:?}")
            }
        }
        other => other.to_string(),
    }
}

/// The logical node of a table function call.
#[derive(Debug, Clone)]
pub struct TableCallNode {
    pub call: TableCall,
    pub function: Arc<dyn TableFunction>,
    pub inputs: Vec<LogicalPlan>,
    pub schema: DFSchemaRef,
}

impl TableCallNode {
    pub fn new(
        call: TableCall,
        function: Arc<dyn TableFunction>,
        inputs: Vec<LogicalPlan>,
        schema: datafusion::arrow::datatypes::SchemaRef,
    ) -> Result<Self> {
        Ok(Self {
            call,
            function,
            inputs,
            schema: Arc::new(DFSchema::try_from(schema.as_ref().clone())?),
        })
    }
}

// The implementation is found from `call.function`, so equality is that of the plain parts.
impl PartialEq for TableCallNode {
    fn eq(&self, other: &Self) -> bool {
        self.call == other.call && self.inputs == other.inputs && self.schema == other.schema
    }
}

impl Eq for TableCallNode {}

impl Hash for TableCallNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.call.hash(state);
        self.inputs.hash(state);
        self.schema.hash(state);
    }
}

impl PartialOrd for TableCallNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.call.to_string().cmp(&other.call.to_string()) {
            Ordering::Equal => self.inputs.partial_cmp(&other.inputs),
            order => Some(order),
        }
    }
}

impl UserDefinedLogicalNodeCore for TableCallNode {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    /// A filter on a call's result is not a filter on its inputs: none passes below the node.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.call)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(Self { inputs, ..self.clone() })
    }
}
