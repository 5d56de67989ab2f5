//! recfusion's Ballista codecs: a table function call ([`TableCallNode`], and the operator it
//! plans to) travels as its [`TableCall`] — function, inputs and options as JSON — plus its
//! output schema; an in-memory table travels by value, as Arrow IPC, up to
//! [`MEMORY_TABLE_CAP`]. Everything else goes to Ballista's own codecs.
//!
//! Our payloads start with a zero byte, which no protobuf message does, so decoding tells them
//! from Ballista's without guessing.

use std::io::Cursor;
use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::{
    DFSchema, DFSchemaRef, DataFusionError, Result, TableReference, exec_datafusion_err, plan_err,
};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{EmptyRelation, Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use prost::Message;
use recfusion_udfs::scoring::{RecommendExec, RerankExec};
use recfusion_udfs::table_function::planner::operator;
use recfusion_udfs::table_function::{ComputeExec, TableCall, TableCallNode, TableFunction};
use recfusion_udfs::text::EmbedTextsExec;

/// The most an in-memory table (`CREATE TABLE … AS`, `VALUES`) may hold to travel with a
/// query; larger tables are kept as Parquet under the client's cluster directory.
pub const MEMORY_TABLE_CAP: usize = 64 << 20;

const TABLE_CALL: &[u8] = b"\0recfusion:table-call\0";
const MEMORY_TABLE: &[u8] = b"\0recfusion:memory-table\0";

/// The logical codec of recfusion's client and scheduler.
#[derive(Debug, Default)]
pub struct RecfusionLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for RecfusionLogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        let Some(payload) = buf.strip_prefix(TABLE_CALL) else {
            return self.inner.try_decode(buf, inputs, ctx);
        };
        let decoded = decode_call(payload)?;
        let function = function_of(&decoded.call)?;
        let mut schemas = decoded.inputs.into_iter();
        let inputs = inputs.iter().map(|input| with_schema(input, schemas.next())).collect();
        let node = TableCallNode::new(decoded.call, function, inputs, decoded.schema)?;
        Ok(Extension { node: Arc::new(node) })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        let Some(call) = node.node.as_any().downcast_ref::<TableCallNode>() else {
            return self.inner.try_encode(node, buf);
        };
        let inputs: Vec<DFSchemaRef> = call.inputs.iter().map(|input| Arc::clone(input.schema())).collect();
        encode_call(&call.call, call.schema.inner(), &inputs, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(payload) = buf.strip_prefix(MEMORY_TABLE) else {
            return self.inner.try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let partitions = decode_partitions(payload)
            .map_err(|e| e.context(format!("reading the in-memory table '{table_ref}' sent with the query")))?;
        Ok(Arc::new(MemTable::try_new(schema, partitions)?))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let Some(table) = node.downcast_ref::<MemTable>() else {
            return self.inner.try_encode_table_provider(table_ref, node, buf).map_err(|_| {
                DataFusionError::Plan(format!(
                    "the table '{table_ref}' is held by this process and cannot be sent to the cluster; \
                     write it to a Parquet file every executor can read and query the file instead"
                ))
            });
        };
        buf.extend_from_slice(MEMORY_TABLE);
        encode_partitions(table_ref, table, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// The physical codec of recfusion's scheduler and executors.
#[derive(Debug, Default)]
pub struct RecfusionPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for RecfusionPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(payload) = buf.strip_prefix(TABLE_CALL) else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let decoded = decode_call(payload)?;
        let function = function_of(&decoded.call)?;
        operator(&decoded.call, &function, inputs, decoded.schema)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let call = if let Some(exec) = node.downcast_ref::<ComputeExec>() {
            exec.call()
        } else if let Some(exec) = node.downcast_ref::<RecommendExec>() {
            exec.call()
        } else if let Some(exec) = node.downcast_ref::<RerankExec>() {
            exec.call()
        } else if let Some(exec) = node.downcast_ref::<EmbedTextsExec>() {
            exec.call()
        } else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        encode_call(call, &node.schema(), &[], buf)
    }
}

fn function_of(call: &TableCall) -> Result<Arc<dyn TableFunction>> {
    recfusion_udfs::table_function(&call.function).ok_or_else(|| {
        exec_datafusion_err!(
            "this process has no table function {}: scheduler, executors and client must run the same recfusion",
            call.function
        )
    })
}

/// After the tag: the call as JSON, the output schema as an Arrow IPC stream, then — on the
/// logical side — each input's schema, each part length-prefixed. The inputs' schemas are
/// there because DataFusion's codec sends an empty input (`WHERE false`) without its columns.
fn encode_call(call: &TableCall, schema: &SchemaRef, inputs: &[DFSchemaRef], buf: &mut Vec<u8>) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| exec_datafusion_err!("{}: encoding the call: {e}", call.function);
    buf.extend_from_slice(TABLE_CALL);
    put(buf, &serde_json::to_vec(call).map_err(|e| failed(&e))?);
    let mut ipc = Vec::new();
    StreamWriter::try_new(&mut ipc, schema)?.finish()?;
    put(buf, &ipc);
    for input in inputs {
        let proto = protobuf::DfSchema::try_from(input).map_err(|e| failed(&e))?;
        put(buf, &proto.encode_to_vec());
    }
    Ok(())
}

struct DecodedCall {
    call: TableCall,
    schema: SchemaRef,
    inputs: Vec<DFSchema>,
}

fn decode_call(mut payload: &[u8]) -> Result<DecodedCall> {
    let damaged = |what: &dyn std::fmt::Display| {
        exec_datafusion_err!("a table function call sent by the cluster is damaged: {what}")
    };
    let call: TableCall = serde_json::from_slice(take(&mut payload)?).map_err(|e| damaged(&e))?;
    let schema = StreamReader::try_new(Cursor::new(take(&mut payload)?), None)?.schema();
    let mut inputs = Vec::new();
    while !payload.is_empty() {
        let proto = protobuf::DfSchema::decode(take(&mut payload)?).map_err(|e| damaged(&e))?;
        inputs.push(DFSchema::try_from(&proto).map_err(|e| damaged(&e))?);
    }
    Ok(DecodedCall { call, schema, inputs })
}

/// An input as it was sent: an empty relation arrives without columns, and gets back its own.
fn with_schema(input: &LogicalPlan, schema: Option<DFSchema>) -> LogicalPlan {
    match (input, schema) {
        (LogicalPlan::EmptyRelation(empty), Some(schema)) if empty.schema.fields().is_empty() => {
            LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: empty.produce_one_row,
                schema: Arc::new(schema),
            })
        }
        _ => input.clone(),
    }
}

fn put(buf: &mut Vec<u8>, part: &[u8]) {
    buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
    buf.extend_from_slice(part);
}

fn take<'a>(payload: &mut &'a [u8]) -> Result<&'a [u8]> {
    let damaged = || exec_datafusion_err!("a plan sent by the cluster is damaged: shorter than its lengths");
    let (length, rest) = payload.split_first_chunk::<8>().ok_or_else(damaged)?;
    let length = usize::try_from(u64::from_le_bytes(*length)).map_err(|_| damaged())?;
    if rest.len() < length {
        return Err(damaged());
    }
    let (part, rest) = rest.split_at(length);
    *payload = rest;
    Ok(part)
}

/// The partitions, each an Arrow IPC stream.
fn encode_partitions(table_ref: &TableReference, table: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    for partition in &table.batches {
        let batches = partition.try_read().map_err(|_| {
            DataFusionError::Plan(format!("the in-memory table '{table_ref}' is being written; try again"))
        })?;
        let mut stream = Vec::new();
        let mut writer = StreamWriter::try_new(&mut stream, &table.schema())?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
        writer.finish()?;
        drop(writer);
        put(buf, &stream);
        if buf.len() - start > MEMORY_TABLE_CAP {
            return too_large(table_ref);
        }
    }
    Ok(())
}

fn too_large<T>(table_ref: &TableReference) -> Result<T> {
    plan_err!(
        "the in-memory table '{table_ref}' holds more than {} MB, the most a table created in this session \
         can carry to the cluster with a query; start recfusion with --cluster-dir DIR, a directory every \
         executor can read, so larger tables are kept there as Parquet",
        MEMORY_TABLE_CAP >> 20
    )
}

fn decode_partitions(mut payload: &[u8]) -> Result<Vec<Vec<RecordBatch>>> {
    let mut partitions = Vec::new();
    while !payload.is_empty() {
        let reader = StreamReader::try_new(Cursor::new(take(&mut payload)?), None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
    }
    Ok(partitions)
}
