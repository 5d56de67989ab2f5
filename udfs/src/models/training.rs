//! Pieces every training function shares: the interactions and path arguments, the end of a
//! run (cancelled? finite loss? save, summary), the report row, and for the candle models
//! seeded initial weights (candle's CPU generator cannot be seeded), the optimiser and a
//! seeded shuffle.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Result as DfResult, exec_err, plan_err};
use datafusion::execution::TaskContext;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::als::SplitMix;
use super::directory::{is_model_name, model_path};
use super::file::{ModelFile, check_replaceable};
use super::progress::{Progress, ProgressMode, TrainingProgress};
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Input, Run};

/// Sets every variable of `varmap` — except layer norms, which keep their ones and zeros — to
/// uniform ±1/√fan_in drawn from `random` in name order, so a seed fixes the initial model.
pub fn seeded_init(varmap: &VarMap, random: &mut SplitMix) -> Result<()> {
    let data = varmap.data().lock().expect("variables");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names.into_iter().filter(|n| !n.contains("norm")) {
        let var = &data[name];
        let dims = var.as_tensor().dims().to_vec();
        let bound = 1.0 / (*dims.last().unwrap_or(&1) as f32).sqrt();
        let values: Vec<f32> = (0..var.as_tensor().elem_count())
            .map(|_| (random.next_f32() * 2.0 - 1.0) * bound)
            .collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

/// AdamW over every variable of `varmap`, without weight decay.
pub fn optimizer(varmap: &VarMap, learning_rate: f64) -> Result<AdamW> {
    AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
}

/// Shuffles `order` in place (Fisher–Yates) with `random`.
pub fn shuffle(order: &mut [usize], random: &mut SplitMix) {
    for i in (1..order.len()).rev() {
        order.swap(i, (random.next_f32() * (i + 1) as f32) as usize % (i + 1));
    }
}

/// Where a training run saves its model: the `model` argument as the call gave it (a name, or
/// a path) and the path of the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub model: String,
    pub path: String,
}

/// What every training function starts from: the interactions table (argument 1), of which
/// the columns `columns` names are read (e.g. "user, item[, weight]"), and the model (argument
/// 2): a name in the models directory — `kind` when none is given — or a path.
pub fn interactions_and_model(args: &Arguments, columns: &'static str, kind: &str) -> DfResult<(Input, Target)> {
    let input = args.required_input(0, "interactions", Some(columns))?;
    let model = args.text_or(1, "model", kind)?;
    let what = format!("{}: argument 2 (model)", args.function());
    let path = model_path(args.session().config(), &what, &model)?;
    let directory = path.parent().filter(|p| !p.as_os_str().is_empty());
    if is_model_name(&model) {
        // The models directory is made when the first model is named into it.
        if let Some(directory) = directory {
            std::fs::create_dir_all(directory).map_err(|e| {
                let found = format!(
                    "'{model}', but the models directory '{}' cannot be made: {e}",
                    directory.display()
                );
                args.invalid(1, "model", "a model name or path", found)
            })?;
        }
    } else if let Some(directory) = directory.filter(|d| !d.is_dir()) {
        // Checked before training, which may take long, rather than when saving.
        let found = format!("'{model}', whose directory '{}' does not exist", directory.display());
        return Err(args.invalid(1, "model", "a model name or a path in an existing directory", found));
    }
    check_replaceable(&path).map_err(|found| {
        args.invalid(
            1,
            "model",
            "a model name or the path of a new or recfusion model file",
            found,
        )
    })?;
    let target = Target {
        model,
        path: path.display().to_string(),
    };
    Ok((input, target))
}

/// The progress mode the session asks for (silent when it says nothing).
pub fn progress_mode(run: &Run) -> ProgressMode {
    session_progress_mode(run.context)
}

/// The progress mode `context`'s session asks for, for operators that run without a [`Run`].
pub fn session_progress_mode(context: &TaskContext) -> ProgressMode {
    context
        .session_config()
        .get_extension::<TrainingProgress>()
        .map(|p| p.0)
        .unwrap_or_default()
}

/// The end of every training run: an error that writes nothing when the run was cancelled or
/// its loss is not finite (`advice` says what to change), else the model saved at `path` with
/// how it was trained (the call with every option, the `rows` it read, the final loss) and the
/// summary on stderr.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    progress: &Progress,
    run: &Run,
    loss: f32,
    advice: &str,
    file: &ModelFile,
    path: &Path,
    rows: usize,
    summary: &str,
) -> DfResult<()> {
    check_finished(progress, run, loss, advice)?;
    let training = json!({ "call": run.call.sql, "rows": rows, "loss": loss });
    file.save(&run.call.function, path, Some(&training))?;
    progress.finish(&format!("{summary} → {}", path.display()));
    Ok(())
}

/// The first half of [`finish`], for runs that have more to compute before they save.
pub fn check_finished(progress: &Progress, run: &Run, loss: f32, advice: &str) -> DfResult<()> {
    let function = &run.call.function;
    if run.interrupt.cancelled() {
        progress.cancelled();
        return exec_err!("{function}: cancelled; no model written");
    }
    if !loss.is_finite() {
        progress.finish("the loss became NaN or infinite; no model written");
        return exec_err!(
            "{function}: the loss became {loss} (NaN or infinite), so training stopped and no model was written; {advice}"
        );
    }
    Ok(())
}

/// The columns of the report row most training functions return.
pub fn report_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("users", DataType::Int64, false),
        Field::new("items", DataType::Int64, false),
        Field::new("factors", DataType::Int64, false),
        Field::new("iterations", DataType::Int64, false),
        Field::new("loss", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

/// The report row of a finished training run; `model` is the name or path the call gave.
pub fn report(
    model: &str,
    users: usize,
    items: usize,
    factors: usize,
    iterations: usize,
    loss: f32,
    seconds: f64,
) -> DfResult<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![model.to_string()])),
        Arc::new(Int64Array::from(vec![users as i64])),
        Arc::new(Int64Array::from(vec![items as i64])),
        Arc::new(Int64Array::from(vec![factors as i64])),
        Arc::new(Int64Array::from(vec![iterations as i64])),
        Arc::new(Float64Array::from(vec![f64::from(loss)])),
        Arc::new(Float64Array::from(vec![seconds])),
    ];
    Ok(RecordBatch::try_new(report_schema(), columns)?)
}

/// The variables of a trained network, by name, each prefixed `network.` as model files keep
/// them.
pub fn network_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    varmap
        .data()
        .lock()
        .expect("variables")
        .iter()
        .map(|(name, var)| (format!("network.{name}"), var.as_tensor().clone()))
        .collect()
}

/// Each user's rows, ordered by the third column (then item), as row indices.
pub fn histories(batch: &RecordBatch) -> DfResult<(ArrayRef, Vec<Vec<usize>>)> {
    if batch.num_columns() < 3 {
        return plan_err!("the interactions table needs (user, item, order) columns");
    }
    let (_, users, first_rows) = IdIndex::build(batch.column(0))?;
    let order = batch.column(2);
    let order = if order.data_type().is_temporal() {
        cast(order, &DataType::Int64)?
    } else {
        Arc::clone(order)
    };
    let order = cast(&order, &DataType::Float64)?;
    let order = order.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    // Equal order keys are broken by item id, so histories do not depend on row order.
    let (_, items, _) = IdIndex::build(batch.column(1))?;
    let mut rows: Vec<(u32, f64, u32, usize)> = (0..batch.num_rows())
        .filter(|&row| order.is_valid(row))
        .filter_map(|row| Some((users[row]?, order.value(row), items[row]?, row)))
        .collect();
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    let mut histories = vec![Vec::new(); first_rows.len()];
    for (user, _, _, row) in rows {
        histories[user as usize].push(row);
    }
    let user_ids = take(batch.column(0).as_ref(), &UInt32Array::from(first_rows), None)?;
    Ok((user_ids, histories))
}
