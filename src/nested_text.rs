//! CSV has no lists or structs: vectors, lists and structs are written as their display text,
//! `[0.1, 0.2]` and `{k: 1}`, as DuckDB writes them — by the CLI's CSV output and by
//! `COPY … TO 'file.csv'` alike.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// A nested array as text; NULL stays NULL.
pub fn nested_to_text(column: &ArrayRef) -> Result<ArrayRef> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
    let text: StringArray = (0..column.len())
        .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
        .collect();
    Ok(Arc::new(text))
}

/// `batch` with every nested column as text.
pub fn batch_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(nested_to_text(column)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(DataFusionError::from)
}

/// `plan` with every nested column as text, or `None` when it has none.
pub fn plan_as_text(plan: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    let schema = plan.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(None);
    }
    let as_text = Arc::new(ScalarUDF::from(AsText::default()));
    let columns = schema.iter().map(|(qualifier, field)| {
        let column = Expr::Column((qualifier, field).into());
        if field.data_type().is_nested() {
            as_text.call(vec![column]).alias(field.name())
        } else {
            column
        }
    });
    LogicalPlanBuilder::from(plan.clone())
        .project(columns)?
        .build()
        .map(Some)
}

/// The expression `as_text(nested)` in plans that write CSV; not registered as a function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AsText {
    signature: Signature,
}

impl Default for AsText {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for AsText {
    fn name(&self) -> &str {
        "as_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        Ok(ColumnarValue::Array(nested_to_text(&arrays[0])?))
    }
}
