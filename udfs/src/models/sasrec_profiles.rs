//! `sasrec_profiles(model, interactions)`: each user's ordered history encoded by a saved
//! SASRec model ([`super::sasrec`]) into a profile in the item space, as (user, vector) rows
//! for `recommend()` with `model_vectors(model, 'items')`. Items the model does not know are
//! skipped — unless the model reads item features and an item_features table gives theirs —
//! and users with none known get no row.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use datafusion::arrow::array::{ArrayRef, Float32Array, ListArray, RecordBatch, StructArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::{DataFusionError, Result, exec_datafusion_err, plan_err};
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use super::directory::model_argument;
use super::file::{ModelFile, named_error};
use super::sasrec::{self, SasRecConfig};
use super::train_sasrec::ItemFeatureRows;
use super::training::histories;
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Planned, Run, TableFunction};
use crate::vector::{vector_array, vector_type};

const NAME: &str = "sasrec_profiles";

#[user_doc(
    doc_section(label = "Model Functions"),
    description = "Each user's ordered history encoded by a saved SASRec model (train_sasrec) into a profile in the item space: (user, vector) rows, for recommend() with model_vectors(model, 'items'). Items the model does not know are skipped, unless the model was trained with item_features and an item_features table gives their vectors: then they count, represented by their vector alone, as the model's own new items are. Users with no item known get no row. With attention => true an attention column says which items the profile was made of: the last block's attention of the latest item over the items read (the last max_len), averaged over heads, largest first.",
    syntax_example = "sasrec_profiles(model, interactions [, attention => false] [, item_features => 'table'] [, user => 'column', item => 'column', order => 'column'])",
    sql_example = r#"```sql
> CREATE TABLE profiles AS SELECT * FROM sasrec_profiles('sasrec_v1', 'events',
                                                         user => 'user_id', item => 'item_id', order => 'ts');
```"#,
    argument(
        name = "model",
        description = "A model saved by train_sasrec: its name or its file's path."
    ),
    argument(name = "interactions", description = "A table or view of (user, item, order) rows."),
    argument(
        name = "attention",
        description = "true to add the attention column: (item, weight) pairs over the user's latest items (default false)."
    ),
    argument(
        name = "item_features",
        description = "An (item, vector) table, as train_sasrec's item_features: vectors of items the model was not trained with, so that histories holding them count (default: none)."
    ),
    argument(
        name = "user",
        description = "The column of interactions that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column that holds the item id (default: the second)."
    ),
    argument(
        name = "order",
        description = "The column that orders each user's items, e.g. a timestamp (default: the third)."
    )
)]
#[derive(Debug, Default)]
pub struct SasRecProfiles;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    attention: bool,
}

/// The saved model at `path` with the settings it was trained with.
fn load(path: &str) -> Result<(ModelFile, SasRecConfig)> {
    let file = ModelFile::load(Path::new(path), Some("sasrec")).map_err(named_error(NAME))?;
    let value = |key: &str| file.setting(key).map_err(named_error(NAME));
    // Models trained without item features have neither setting.
    let optional = |key: &str| match file.config.get(key) {
        None => Ok(0),
        Some(_) => value(key),
    };
    let config = SasRecConfig {
        items: value("items")?,
        cold_items: optional("cold_items")?,
        feature_dim: optional("feature_dim")?,
        id_dropout: 0.0,
        dim: value("dim")?,
        layers: value("layers")?,
        heads: value("heads")?,
        max_len: value("max_len")?,
        dropout: 0.0,
        epochs: 0,
        patience: 0,
        refit: false,
        learning_rate: 0.0,
        batch: 0,
        seed: 0,
    };
    Ok((file, config))
}

impl TableFunction for SasRecProfiles {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(2..=4)?;
        let path = model_argument(args, 0)?;
        let input = args.required_input(1, "interactions", Some("user, item, order"))?;
        let attention = args.boolean(2, "attention", false)?;
        let features = args.input(3, "item_features", None)?;
        let (_, config) = load(&path)?;
        if features.is_some() && config.feature_dim == 0 {
            return plan_err!(
                "{NAME}: model '{path}' was trained without item_features, so it cannot read item vectors; train it with item_features => 'table'"
            );
        }
        let schema = input.table.provider.schema();
        if schema.fields().len() < 3 {
            return plan_err!("{NAME}: the interactions table needs (user, item, order) columns");
        }
        let mut fields = vec![
            Field::new(schema.field(0).name(), schema.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(config.dim), false),
        ];
        if attention {
            fields.push(Field::new(
                "attention",
                attention_type(schema.field(1).data_type()),
                true,
            ));
        }
        let inputs = std::iter::once(input).chain(features).collect();
        Planned::new(inputs, &Options { path, attention }, Arc::new(Schema::new(fields)))
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { path, attention } = run.call.options()?;
        let (file, mut config) = load(&path)?;
        let mut tensors = file.network();
        let mut known = Arc::clone(file.matrix("items", "items").map_err(named_error(NAME))?.2);
        if let Some(features) = inputs.get(1) {
            known = with_new_items(&mut config, &mut tensors, &known, features)?;
        }
        let model = sasrec::load(config, tensors).map_err(|e| {
            DataFusionError::Execution(format!("{NAME}: model '{path}' does not match its configuration: {e}"))
        })?;
        let batch = &inputs[0];
        let (user_ids, histories) = histories(batch)?;
        // The model's items in its own order: trained ones (sorted by id), then new ones.
        let positions = IdIndex::by_row(&known)?.lookup(batch.column(1))?;
        let mut users = Vec::new();
        let mut sequences = Vec::new();
        // The interactions row of each item of each sequence.
        let mut sequence_rows = Vec::new();
        for (user, rows) in histories.iter().enumerate() {
            let known: Vec<usize> = rows.iter().copied().filter(|&row| positions[row].is_some()).collect();
            if !known.is_empty() {
                users.push(user as u32);
                sequences.push(
                    known
                        .iter()
                        .filter_map(|&row| positions[row].map(|i| i + 1))
                        .collect::<Vec<u32>>(),
                );
                sequence_rows.push(known);
            }
        }
        let profiles = model
            .profiles(&sequences)
            .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
        let vectors = vector_array(&vector_type(config.dim), profiles, config.dim, users.len(), None)?;
        let ids = take(user_ids.as_ref(), &UInt32Array::from(users), None)?;
        if attention {
            let weights = model
                .attention(&sequences)
                .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
            let attention = attention_column(batch.column(1), &sequence_rows, weights)?;
            return Ok(RecordBatch::try_new(
                Arc::clone(run.schema),
                vec![ids, vectors, attention],
            )?);
        }
        Ok(RecordBatch::try_new(Arc::clone(run.schema), vec![ids, vectors])?)
    }
}

/// Adds to a model with item features the items of `features` it does not know — their id
/// embedding zero, their vector its own — and returns the model's item ids with theirs after.
fn with_new_items(
    config: &mut SasRecConfig,
    tensors: &mut HashMap<String, Tensor>,
    known: &ArrayRef,
    features: &RecordBatch,
) -> Result<ArrayRef> {
    let failed = |e: candle_core::Error| exec_datafusion_err!("{NAME}: {e}");
    let table = ItemFeatureRows::read(NAME, 4, features, known.data_type(), config.feature_dim)?;
    let found = IdIndex::by_row(known)?.lookup(&table.ids)?;
    let new_rows: Vec<u32> = table
        .rows
        .iter()
        .copied()
        .filter(|&row| found[row as usize].is_none())
        .collect();
    let matrix: Vec<f32> = new_rows.iter().flat_map(|&row| table.vector(row)).copied().collect();
    if new_rows.is_empty() {
        return Ok(Arc::clone(known));
    }
    let extra = new_rows.len();
    let mut extend = |name: &str, rows: Tensor| -> Result<()> {
        let saved = tensors
            .get(name)
            .ok_or_else(|| exec_datafusion_err!("{NAME}: the model has no '{name}'; the file is damaged"))?;
        let extended = Tensor::cat(&[saved, &rows], 0).map_err(failed)?;
        tensors.insert(name.to_string(), extended);
        Ok(())
    };
    extend(
        "features",
        Tensor::from_vec(matrix, (extra, config.feature_dim), &Device::Cpu).map_err(failed)?,
    )?;
    extend(
        "items.weight",
        Tensor::zeros((extra, config.dim), DType::F32, &Device::Cpu).map_err(failed)?,
    )?;
    config.cold_items += extra;
    let new_ids = take(table.ids.as_ref(), &UInt32Array::from(new_rows), None)?;
    Ok(concat(&[known.as_ref(), new_ids.as_ref()])?)
}

fn attention_type(item_type: &DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(Fields::from(vec![
            Field::new("item", item_type.clone(), true),
            Field::new("weight", DataType::Float32, false),
        ])),
        true,
    )))
}

/// The attention column: each user's (item, weight) pairs, largest weight first (ties: the
/// later item first), `weights` holding (position in the sequence, weight).
fn attention_column(items: &ArrayRef, rows: &[Vec<usize>], weights: Vec<Vec<(usize, f32)>>) -> Result<ArrayRef> {
    let mut offsets = vec![0i32];
    let (mut item_rows, mut values) = (Vec::new(), Vec::new());
    for (rows, mut pairs) in rows.iter().zip(weights) {
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        for (position, weight) in pairs {
            item_rows.push(rows[position] as u32);
            values.push(weight);
        }
        offsets.push(item_rows.len() as i32);
    }
    let DataType::List(field) = attention_type(items.data_type()) else {
        unreachable!("attention_type is a list")
    };
    let DataType::Struct(fields) = field.data_type().clone() else {
        unreachable!("attention_type holds structs")
    };
    let entries = StructArray::try_new(
        fields,
        vec![
            take(items.as_ref(), &UInt32Array::from(item_rows), None)?,
            Arc::new(Float32Array::from(values)),
        ],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(entries),
        None,
    )?))
}
