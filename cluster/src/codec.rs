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
use datafusion::common::{DataFusionError, Result, TableReference, exec_datafusion_err, plan_err};
use datafusion::datasource::MemTable;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use recfusion_udfs::scoring::RecommendExec;
use recfusion_udfs::table_function::planner::operator;
use recfusion_udfs::table_function::{ComputeExec, TableCall, TableCallNode, TableFunction};

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
        let (call, schema) = decode_call(payload)?;
        let function = function_of(&call)?;
        let node = TableCallNode::new(call, function, inputs.to_vec(), schema)?;
        Ok(Extension { node: Arc::new(node) })
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        let Some(call) = node.node.as_any().downcast_ref::<TableCallNode>() else {
            return self.inner.try_encode(node, buf);
        };
        encode_call(&call.call, call.schema.inner(), buf)
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
        let (call, schema) = decode_call(payload)?;
        let function = function_of(&call)?;
        operator(&call, &function, inputs, schema)
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
        } else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        encode_call(call, &node.schema(), buf)
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

/// `[json length: u32][TableCall as JSON][schema as an Arrow IPC stream]`, after the tag.
fn encode_call(call: &TableCall, schema: &SchemaRef, buf: &mut Vec<u8>) -> Result<()> {
    let json =
        serde_json::to_vec(call).map_err(|e| exec_datafusion_err!("{}: encoding the call: {e}", call.function))?;
    buf.extend_from_slice(TABLE_CALL);
    buf.extend_from_slice(
        &u32::try_from(json.len())
            .map_err(|_| exec_datafusion_err!("{}: call too large", call.function))?
            .to_le_bytes(),
    );
    buf.extend_from_slice(&json);
    let mut writer = StreamWriter::try_new(buf, schema)?;
    writer.finish()?;
    Ok(())
}

fn decode_call(payload: &[u8]) -> Result<(TableCall, SchemaRef)> {
    let damaged = |what: &str| exec_datafusion_err!("a table function call sent by the cluster is damaged: {what}");
    let (length, rest) = payload.split_first_chunk::<4>().ok_or_else(|| damaged("no length"))?;
    let length = u32::from_le_bytes(*length) as usize;
    if rest.len() < length {
        return Err(damaged("shorter than its length"));
    }
    let (json, schema) = rest.split_at(length);
    let call: TableCall = serde_json::from_slice(json).map_err(|e| damaged(&e.to_string()))?;
    let schema = StreamReader::try_new(Cursor::new(schema), None)?.schema();
    Ok((call, schema))
}

/// `[partitions: u32]` then per partition `[length: u64][Arrow IPC stream]`.
fn encode_partitions(table_ref: &TableReference, table: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    let start = buf.len();
    buf.extend_from_slice(&(table.batches.len() as u32).to_le_bytes());
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
        buf.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        buf.extend_from_slice(&stream);
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

fn decode_partitions(payload: &[u8]) -> Result<Vec<Vec<RecordBatch>>> {
    let damaged = || exec_datafusion_err!("damaged: shorter than its lengths");
    let (count, mut rest) = payload.split_first_chunk::<4>().ok_or_else(damaged)?;
    let count = u32::from_le_bytes(*count) as usize;
    let mut partitions = Vec::with_capacity(count.min(rest.len()));
    for _ in 0..count {
        let (length, tail) = rest.split_first_chunk::<8>().ok_or_else(damaged)?;
        let length = usize::try_from(u64::from_le_bytes(*length)).map_err(|_| damaged())?;
        if tail.len() < length {
            return Err(damaged());
        }
        let (stream, tail) = tail.split_at(length);
        let reader = StreamReader::try_new(Cursor::new(stream), None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<_>, _>>()?);
        rest = tail;
    }
    Ok(partitions)
}
