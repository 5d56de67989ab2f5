//! `information_schema` that documents recfusion's functions. DataFusion 55 lists a table
//! function in `information_schema.routines` without its description, and a function with a
//! user-defined signature (most of ours: they take vectors of any dimension) without parameter
//! rows — so `SHOW FUNCTIONS`, which joins routines with parameters, shows none of them. This
//! module serves `information_schema` itself, from DataFusion's own tables, filling in what our
//! documentation says: descriptions and syntax of table functions, and parameter rows (named
//! as documented, typed `ANY`) for functions DataFusion could not describe.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue, exec_datafusion_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::{FunctionKind, function_docs};

const INFORMATION_SCHEMA: &str = "information_schema";

/// Catalogs that answer `information_schema` with [`DocumentedInformationSchema`].
#[derive(Debug)]
pub struct DocumentedCatalogList {
    inner: Arc<dyn CatalogProviderList>,
}

impl DocumentedCatalogList {
    pub fn new(inner: Arc<dyn CatalogProviderList>) -> Self {
        Self { inner }
    }
}

impl CatalogProviderList for DocumentedCatalogList {
    fn register_catalog(&self, name: String, catalog: Arc<dyn CatalogProvider>) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let catalog = self.inner.catalog(name)?;
        Some(Arc::new(DocumentedCatalog {
            inner: catalog,
            catalogs: Arc::clone(&self.inner),
        }))
    }
}

#[derive(Debug)]
struct DocumentedCatalog {
    inner: Arc<dyn CatalogProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl CatalogProvider for DocumentedCatalog {
    // `information_schema` is served, not listed, as DataFusion does: it lists its own tables.
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name.eq_ignore_ascii_case(INFORMATION_SCHEMA) {
            return Some(Arc::new(DocumentedInformationSchema {
                catalogs: Arc::clone(&self.catalogs),
            }));
        }
        self.inner.schema(name)
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(&self, name: &str, cascade: bool) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

/// DataFusion's `information_schema`, with `routines` and `parameters` completed.
#[derive(Debug)]
struct DocumentedInformationSchema {
    catalogs: Arc<dyn CatalogProviderList>,
}

#[async_trait]
impl SchemaProvider for DocumentedInformationSchema {
    fn table_names(&self) -> Vec<String> {
        InformationSchemaProvider::new(Arc::clone(&self.catalogs)).table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let stock = InformationSchemaProvider::new(Arc::clone(&self.catalogs));
        let Some(table) = stock.table(name).await? else {
            return Ok(None);
        };
        let completed = match name.to_ascii_lowercase().as_str() {
            "routines" => Completed::Routines,
            "parameters" => Completed::Parameters,
            _ => return Ok(Some(table)),
        };
        Ok(Some(Arc::new(CompletedTable {
            catalogs: Arc::clone(&self.catalogs),
            name: name.to_ascii_lowercase(),
            schema: table.schema(),
            completed,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        InformationSchemaProvider::new(Arc::clone(&self.catalogs)).table_exist(name)
    }
}

#[derive(Debug, Clone, Copy)]
enum Completed {
    Routines,
    Parameters,
}

/// An `information_schema` table computed by DataFusion when scanned, then completed.
#[derive(Debug)]
struct CompletedTable {
    catalogs: Arc<dyn CatalogProviderList>,
    name: String,
    schema: SchemaRef,
    completed: Completed,
}

#[async_trait]
impl TableProvider for CompletedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut stock = InformationSchemaProvider::new(Arc::clone(&self.catalogs));
        if let Some(state) = state.as_any().downcast_ref::<SessionState>() {
            stock = stock.with_table_functions(state.table_functions().clone());
        }
        let table = stock
            .table(&self.name)
            .await?
            .ok_or_else(|| exec_datafusion_err!("information_schema.{} is missing", self.name))?;
        let plan = table.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let batch = concat_batches(&self.schema, &batches)?;
        let defaults = &state.config_options().catalog;
        let batch = match self.completed {
            Completed::Routines => complete_routines(&batch)?,
            Completed::Parameters => complete_parameters(&batch, &defaults.default_catalog, &defaults.default_schema)?,
        };
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![batch]], Arc::clone(&self.schema), projection.cloned())?;
        Ok(exec)
    }
}

fn column_index(batch: &RecordBatch, name: &str) -> Result<usize> {
    batch
        .schema()
        .index_of(name)
        .map_err(|_| exec_datafusion_err!("information_schema: no column {name}"))
}

/// Fills in the description and syntax of recfusion's functions where DataFusion left them
/// empty (table functions).
fn complete_routines(batch: &RecordBatch) -> Result<RecordBatch> {
    let docs = function_docs();
    let names = batch
        .column(column_index(batch, "routine_name")?)
        .as_string::<i32>()
        .clone();
    let mut columns = batch.columns().to_vec();
    for (column, pick) in [
        (
            "description",
            (|d: &crate::FunctionDoc| d.documentation.description.clone()) as fn(&_) -> String,
        ),
        ("syntax_example", |d| d.documentation.syntax_example.clone()),
    ] {
        let index = column_index(batch, column)?;
        let current = cast(&columns[index], &datafusion::arrow::datatypes::DataType::Utf8)?;
        let current = current.as_string::<i32>();
        let filled: StringArray = (0..batch.num_rows())
            .map(|row| {
                if current.is_valid(row) {
                    return Some(current.value(row).to_string());
                }
                docs.iter().find(|d| d.name == names.value(row)).map(pick)
            })
            .collect();
        columns[index] = cast(&(Arc::new(filled) as ArrayRef), batch.schema().field(index).data_type())?;
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Adds parameter rows (documented names, type `ANY`, and an `OUT` row) for recfusion's scalar
/// and aggregate functions that DataFusion gave none.
fn complete_parameters(batch: &RecordBatch, catalog: &str, schema: &str) -> Result<RecordBatch> {
    let names = batch
        .column(column_index(batch, "specific_name")?)
        .as_string::<i32>()
        .clone();
    let modes = batch
        .column(column_index(batch, "parameter_mode")?)
        .as_string::<i32>()
        .clone();
    let described: HashSet<&str> = (0..batch.num_rows())
        .filter(|&row| modes.value(row) == "OUT")
        .map(|row| names.value(row))
        .collect();
    let mut rows: Vec<Vec<ScalarValue>> = Vec::new();
    for function in function_docs() {
        if function.kind == FunctionKind::Table || described.contains(function.name.as_str()) {
            continue;
        }
        let arguments = function.documentation.arguments.unwrap_or_default();
        let row = |position: usize, mode: &str, name: Option<&str>| {
            vec![
                ScalarValue::from(catalog),
                ScalarValue::from(schema),
                ScalarValue::from(function.name.as_str()),
                ScalarValue::UInt64(Some(position as u64)),
                ScalarValue::from(mode),
                ScalarValue::Utf8(name.map(str::to_string)),
                ScalarValue::from("ANY"),
                ScalarValue::Utf8(None),
                ScalarValue::Boolean(Some(false)),
                ScalarValue::UInt8(Some(0)),
            ]
        };
        for (position, (name, _)) in arguments.iter().enumerate() {
            rows.push(row(position + 1, "IN", Some(name)));
        }
        rows.push(row(1, "OUT", None));
    }
    if rows.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let added = (0..schema.fields().len())
        .map(|c| {
            let values = ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone()))?;
            Ok(cast(&values, schema.field(c).data_type())?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let added = RecordBatch::try_new(Arc::clone(&schema), added)?;
    Ok(concat_batches(&schema, [batch, &added])?)
}
