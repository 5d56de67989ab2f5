//! The differentially private aggregates `dp_count`, `dp_sum`, `dp_avg` and `dp_vector_mean`:
//! segment sizes, totals, averages and average profiles that can be released without revealing
//! whether any one person is in the data.
//!
//! The contract: each privacy unit (a user) contributes at most one row to a group. With a
//! `privacy_unit` argument that is enforced rather than trusted — a unit's rows are first
//! combined into one bounded contribution (counted once; its sum clamped; its values or
//! vectors averaged) — and without one, every row is taken to be a different unit. Values
//! are clamped to `[lower, upper]`, vectors clipped to L2 norm `clip_norm`; contributions are
//! summed exactly on a lattice and the noise is drawn exactly ([`super::mechanism`]), from the
//! operating system's randomness unless a `seed` is given (tests only: seeded noise is a
//! function of the data and the seed, so it protects nothing).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, Documentation, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use super::mechanism::{EPSILON_RANGE, Mechanism};
use super::noise::NoiseSource;
use crate::vector::{Vectors, check_vector_type, fixed_dimension, output_type, vector_array};

/// Which aggregate, and where its arguments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpKind {
    Count,
    Sum,
    Avg,
    VectorMean,
}

impl DpKind {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "dp_count",
            Self::Sum => "dp_sum",
            Self::Avg => "dp_avg",
            Self::VectorMean => "dp_vector_mean",
        }
    }

    /// The arguments that must be constants, by name, before `privacy_unit` and `seed`.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Self::Count => &["epsilon"],
            Self::Sum | Self::Avg => &["x", "lower", "upper", "epsilon"],
            Self::VectorMean => &["v", "clip_norm", "epsilon", "delta"],
        }
    }

    fn unit_position(self) -> usize {
        self.parameters().len()
    }

    fn arities(self) -> std::ops::RangeInclusive<usize> {
        let required = self.parameters().len();
        required..=required + 2
    }
}

/// The options every call fixes: constant bounds and budget, checked when the query starts.
#[derive(Debug, Clone)]
struct Options {
    kind: DpKind,
    lower: f64,
    upper: f64,
    clip_norm: f64,
    epsilon: f64,
    delta: f64,
    seed: Option<u64>,
    /// Whether rows are combined per privacy unit: a unit argument of a type other than NULL.
    by_unit: bool,
}

fn constant(kind: DpKind, args: &AccumulatorArgs, position: usize) -> Result<ScalarValue> {
    let name = kind.name();
    let parameter = kind.parameters().get(position).copied().unwrap_or("seed");
    match args.exprs.get(position).and_then(|e| e.downcast_ref::<Literal>()) {
        Some(literal) => Ok(literal.value().clone()),
        None => plan_err!("{name}: argument {} ({parameter}) must be a constant", position + 1),
    }
}

fn constant_number(kind: DpKind, args: &AccumulatorArgs, position: usize) -> Result<f64> {
    let name = kind.name();
    let parameter = kind.parameters()[position];
    match constant(kind, args, position)?
        .cast_to(&DataType::Float64)
        .unwrap_or(ScalarValue::Float64(None))
    {
        ScalarValue::Float64(Some(x)) if x.is_finite() => Ok(x),
        other => plan_err!(
            "{name}: argument {} ({parameter}) must be a finite number, got {other}",
            position + 1
        ),
    }
}

impl Options {
    fn from_args(kind: DpKind, args: &AccumulatorArgs) -> Result<Self> {
        let name = kind.name();
        let mut options = Self {
            kind,
            lower: 0.0,
            upper: 0.0,
            clip_norm: 0.0,
            epsilon: 0.0,
            delta: 0.0,
            seed: None,
            // Decided as state_fields decides it, so the state has the layout it declares.
            by_unit: by_unit(kind, args.expr_fields),
        };
        let epsilon_position = kind.parameters().iter().position(|p| *p == "epsilon").expect("epsilon");
        options.epsilon = constant_number(kind, args, epsilon_position)?;
        let (low, high) = EPSILON_RANGE;
        if !(low..=high).contains(&options.epsilon) {
            return plan_err!(
                "{name}: argument {} (epsilon) must be between {low:e} and {high:e}, got {}",
                epsilon_position + 1,
                options.epsilon
            );
        }
        match kind {
            DpKind::Count => {}
            DpKind::Sum | DpKind::Avg => {
                options.lower = constant_number(kind, args, 1)?;
                options.upper = constant_number(kind, args, 2)?;
                if options.lower > options.upper {
                    return plan_err!(
                        "{name}: argument 2 (lower) must not exceed argument 3 (upper), got {} > {}",
                        options.lower,
                        options.upper
                    );
                }
            }
            DpKind::VectorMean => {
                options.clip_norm = constant_number(kind, args, 1)?;
                if options.clip_norm < 0.0 {
                    return plan_err!(
                        "{name}: argument 2 (clip_norm) must be a non-negative number, got {}",
                        options.clip_norm
                    );
                }
                options.delta = constant_number(kind, args, 3)?;
                if !(options.delta > 0.0 && options.delta < 1.0) {
                    return plan_err!(
                        "{name}: argument 4 (delta) must be between 0 and 1 (exclusive), got {}",
                        options.delta
                    );
                }
            }
        }
        let seed_position = kind.unit_position() + 1;
        if args.exprs.len() > seed_position {
            let seed = constant(kind, args, seed_position)?;
            options.seed = match seed.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(seed))) => Some(seed as u64),
                _ if seed.is_null() => None,
                _ => {
                    return plan_err!(
                        "{name}: argument {} (seed) must be an integer, got {seed}",
                        seed_position + 1
                    );
                }
            };
        }
        Ok(options)
    }

    /// What values are centred on before they are summed: the middle of the bounds for
    /// averages (which halves the sum's sensitivity), 0 otherwise.
    fn centre(&self) -> f64 {
        match self.kind {
            DpKind::Avg => (self.lower + self.upper) / 2.0,
            _ => 0.0,
        }
    }

    /// A row's value as its unit contributes it: clamped, and centred for averages.
    fn clamp(&self, x: f64) -> f64 {
        x.clamp(self.lower, self.upper) - self.centre()
    }

    fn sum_mechanism(&self, dim: usize) -> Result<Mechanism> {
        let mechanism = match self.kind {
            DpKind::Count => Mechanism::count(self.epsilon),
            DpKind::Sum => Mechanism::laplace_sum(self.lower.abs().max(self.upper.abs()), self.epsilon),
            DpKind::Avg => Mechanism::laplace_sum((self.upper - self.lower) / 2.0, self.epsilon / 2.0),
            DpKind::VectorMean => Mechanism::gaussian_sum(self.clip_norm, dim, self.epsilon / 2.0, self.delta),
        };
        mechanism.ok_or_else(|| {
            datafusion::common::DataFusionError::Execution(format!(
                "{}: the noise for these bounds and epsilon {} is too large to sample exactly",
                self.kind.name(),
                self.epsilon
            ))
        })
    }

    /// The mechanism of the count that divides sums into averages: half the budget.
    fn count_mechanism(&self) -> Result<Mechanism> {
        Mechanism::count(self.epsilon / 2.0).ok_or_else(|| {
            datafusion::common::DataFusionError::Execution(format!("{}: epsilon is too small", self.kind.name()))
        })
    }
}

/// Generates the documented `AggregateUDFImpl` of one of the four aggregates.
macro_rules! dp_udaf {
    ($(#[$doc:meta])* $udaf:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $udaf {
            signature: Signature,
        }

        impl Default for $udaf {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $udaf {
            pub fn new() -> Self {
                Self {
                    signature: Signature::user_defined(Volatility::Volatile),
                }
            }
        }

        impl datafusion::logical_expr::AggregateUDFImpl for $udaf {
            fn name(&self) -> &str {
                $kind.name()
            }

            fn signature(&self) -> &Signature {
                &self.signature
            }

            fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
                coerce_types($kind, arg_types)
            }

            fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
                Ok(match $kind {
                    DpKind::Count => DataType::Int64,
                    DpKind::Sum | DpKind::Avg => DataType::Float64,
                    DpKind::VectorMean => output_type(&arg_types[0]),
                })
            }

            fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
                state_fields($kind, &args)
            }

            fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
                Ok(Box::new(DpAccumulator::new($kind, &args)?))
            }

            fn documentation(&self) -> Option<&Documentation> {
                self.doc()
            }
        }
    };
}

dp_udaf!(
    #[user_doc(
        doc_section(label = "Privacy Functions"),
        description = "Aggregate: a differentially private count of the rows of a group (each privacy unit counted once), with discrete Laplace noise of scale 1/epsilon; never below 0. Each privacy unit (user) must contribute at most one row to a group: give privacy_unit (the user column) to have that enforced, or aggregate one row per user first.",
        syntax_example = "dp_count(epsilon [, privacy_unit [, seed]])",
        sql_example = r#"```sql
> SELECT genre, dp_count(1.0, privacy_unit => user_id) FROM events GROUP BY genre;
```"#,
        argument(
            name = "epsilon",
            description = "The privacy budget, a constant in [1e-6, 1e6]; smaller is more private and noisier."
        ),
        argument(
            name = "privacy_unit",
            description = "Optional: the column naming whose row it is (the user); each unit counts once, and rows whose unit is NULL are left out. An untyped NULL or nothing: every row is a different unit."
        ),
        argument(
            name = "seed",
            description = "Optional, for tests only: an integer that makes the noise reproducible (and the result no longer private)."
        )
    )]
    DpCount,
    DpKind::Count
);

dp_udaf!(
    #[user_doc(
        doc_section(label = "Privacy Functions"),
        description = "Aggregate: a differentially private sum of x over a group, each value clamped to [lower, upper], with discrete Laplace noise of scale max(|lower|, |upper|)/epsilon. Each privacy unit (user) must contribute at most one row to a group: give privacy_unit to have that enforced (a unit's clamped values are summed, and the sum clamped), or aggregate one row per user first. NULL values add nothing.",
        syntax_example = "dp_sum(x, lower, upper, epsilon [, privacy_unit [, seed]])",
        sql_example = r#"```sql
> SELECT segment, dp_sum(minutes, 0, 600, 0.5, privacy_unit => user_id) FROM sessions GROUP BY segment;
```"#,
        argument(name = "x", description = "The number to sum."),
        argument(name = "lower", description = "Constant lower bound each value is clamped to."),
        argument(name = "upper", description = "Constant upper bound each value is clamped to."),
        argument(name = "epsilon", description = "The privacy budget, a constant in [1e-6, 1e6]."),
        argument(
            name = "privacy_unit",
            description = "Optional: the column naming whose row it is (the user); rows whose unit is NULL are left out. An untyped NULL or nothing: every row is a different unit."
        ),
        argument(
            name = "seed",
            description = "Optional, for tests only: makes the noise reproducible (and the result no longer private)."
        )
    )]
    DpSum,
    DpKind::Sum
);

dp_udaf!(
    #[user_doc(
        doc_section(label = "Privacy Functions"),
        description = "Aggregate: a differentially private mean of x over a group, each value clamped to [lower, upper]: a noisy sum of the values centred on (lower + upper)/2 divided by a noisy count, each with half of epsilon, the result clamped to [lower, upper]. Each privacy unit (user) must contribute at most one row to a group: give privacy_unit to have that enforced (a unit contributes the mean of its values), or aggregate one row per user first.",
        syntax_example = "dp_avg(x, lower, upper, epsilon [, privacy_unit [, seed]])",
        sql_example = r#"```sql
> SELECT segment, dp_avg(rating, 1, 5, 1.0, privacy_unit => user_id) FROM ratings GROUP BY segment;
```"#,
        argument(name = "x", description = "The number to average."),
        argument(name = "lower", description = "Constant lower bound each value is clamped to."),
        argument(name = "upper", description = "Constant upper bound each value is clamped to."),
        argument(name = "epsilon", description = "The privacy budget, a constant in [1e-6, 1e6]."),
        argument(
            name = "privacy_unit",
            description = "Optional: the column naming whose row it is (the user); rows whose unit is NULL are left out. An untyped NULL or nothing: every row is a different unit."
        ),
        argument(
            name = "seed",
            description = "Optional, for tests only: makes the noise reproducible (and the result no longer private)."
        )
    )]
    DpAvg,
    DpKind::Avg
);

dp_udaf!(
    #[user_doc(
        doc_section(label = "Privacy Functions"),
        description = "Aggregate: a differentially private mean vector of a group (an average profile of a segment): each vector clipped to L2 norm clip_norm, a noisy vector sum (discrete Gaussian noise on every coordinate, calibrated by the analytic Gaussian mechanism to epsilon/2 and delta) divided by a noisy count (discrete Laplace, epsilon/2), the result scaled back into the ball of radius clip_norm where noise took it out. Each privacy unit (user) must contribute at most one row to a group: give privacy_unit to have that enforced (a unit contributes the mean of its vectors), or aggregate one row per user first.",
        syntax_example = "dp_vector_mean(v, clip_norm, epsilon, delta [, privacy_unit [, seed]])",
        sql_example = r#"```sql
> SELECT segment, dp_vector_mean(profile, 1.0, 1.0, 1e-6, privacy_unit => user_id) FROM profiles GROUP BY segment;
```"#,
        argument(name = "v", description = "A vector column."),
        argument(
            name = "clip_norm",
            description = "Constant: each vector is scaled down to at most this L2 norm."
        ),
        argument(name = "epsilon", description = "The privacy budget, a constant in [1e-6, 1e6]."),
        argument(
            name = "delta",
            description = "The probability the epsilon guarantee may fail, a constant in (0, 1); at most 1/(number of users) is usual."
        ),
        argument(
            name = "privacy_unit",
            description = "Optional: the column naming whose row it is (the user); rows whose unit is NULL are left out. An untyped NULL or nothing: every row is a different unit."
        ),
        argument(
            name = "seed",
            description = "Optional, for tests only: makes the noise reproducible (and the result no longer private)."
        )
    )]
    DpVectorMean,
    DpKind::VectorMean
);

fn coerce_types(kind: DpKind, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    let name = kind.name();
    let arities = kind.arities();
    if !arities.contains(&arg_types.len()) {
        let listed = kind.parameters().join(", ");
        return plan_err!(
            "{name}: expected {} to {} arguments ({listed} [, privacy_unit [, seed]]), got {}",
            arities.start(),
            arities.end(),
            arg_types.len()
        );
    }
    let unit = kind.unit_position();
    let mut coerced = Vec::with_capacity(arg_types.len());
    for (position, data_type) in arg_types.iter().enumerate() {
        let parameter = kind.parameters().get(position).copied();
        coerced.push(match parameter {
            Some("v") => {
                check_vector_type(name, 1, data_type)?;
                data_type.clone()
            }
            Some(parameter) => {
                if !data_type.is_numeric() && !data_type.is_null() {
                    return plan_err!(
                        "{name}: argument {} ({parameter}) must be a number, got {data_type}",
                        position + 1
                    );
                }
                DataType::Float64
            }
            None if position == unit => data_type.clone(),
            None => {
                if !data_type.is_integer() && !data_type.is_null() {
                    return plan_err!(
                        "{name}: argument {} (seed) must be an integer, got {data_type}",
                        position + 1
                    );
                }
                DataType::Int64
            }
        });
    }
    Ok(coerced)
}

fn list_of(data_type: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(data_type, true)))
}

const SUM_UNITS: DataType = DataType::Decimal128(38, 0);

fn by_unit(kind: DpKind, input_fields: &[FieldRef]) -> bool {
    input_fields
        .get(kind.unit_position())
        .is_some_and(|f| !f.data_type().is_null())
}

fn state_fields(kind: DpKind, args: &StateFieldsArgs) -> Result<Vec<FieldRef>> {
    let name = args.name;
    let field = |suffix: &str, data_type: DataType| Arc::new(Field::new(format!("{name}[{suffix}]"), data_type, true));
    if by_unit(kind, args.input_fields) {
        let unit_type = args.input_fields[kind.unit_position()].data_type().clone();
        Ok(vec![
            field("units", list_of(unit_type)),
            field("rows", list_of(DataType::Int64)),
            field("sums", list_of(DataType::Float64)),
        ])
    } else {
        Ok(vec![field("count", DataType::Int64), field("sums", list_of(SUM_UNITS))])
    }
}

/// `values` scaled down to L2 norm `bound` when they are longer.
fn clipped(mut values: Vec<f64>, bound: f64) -> Vec<f64> {
    let norm = values.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > bound && norm > 0.0 {
        values.iter_mut().for_each(|x| *x *= bound / norm);
    }
    values
}

/// What the rows of one unit add up to so far: how many, and the sum of their clamped values
/// (or clipped vectors).
#[derive(Debug, Clone, Default)]
struct UnitTotal {
    rows: i64,
    sums: Vec<f64>,
}

#[derive(Debug)]
enum Contributions {
    /// Every row a unit: totals kept exactly, in lattice units.
    Rows { count: i64, sums: Vec<i128> },
    /// Rows combined per unit before they are bounded.
    ByUnit(HashMap<ScalarValue, UnitTotal>),
}

#[derive(Debug)]
struct DpAccumulator {
    options: Options,
    /// The lattice rows are summed on (decided by the first vector's dimension for vectors).
    mechanism: Option<Mechanism>,
    dim: Option<usize>,
    return_type: DataType,
    /// The type of the privacy unit column, which the state's list of units has.
    unit_type: DataType,
    contributions: Contributions,
}

impl DpAccumulator {
    fn new(kind: DpKind, args: &AccumulatorArgs) -> Result<Self> {
        let options = Options::from_args(kind, args)?;
        let dim = match kind {
            DpKind::Count => Some(0),
            DpKind::Sum | DpKind::Avg => Some(1),
            DpKind::VectorMean => fixed_dimension(args.return_type()),
        };
        let contributions = match options.by_unit {
            true => Contributions::ByUnit(HashMap::new()),
            false => Contributions::Rows {
                count: 0,
                sums: vec![0; dim.unwrap_or(0)],
            },
        };
        let mechanism = dim.map(|d| options.sum_mechanism(d)).transpose()?;
        let unit_type = args
            .expr_fields
            .get(kind.unit_position())
            .map_or(DataType::Null, |f| f.data_type().clone());
        Ok(Self {
            options,
            mechanism,
            dim,
            return_type: args.return_type().clone(),
            unit_type,
            contributions,
        })
    }

    fn name(&self) -> &'static str {
        self.options.kind.name()
    }

    /// Learns the dimension of a variable-length vector column from its first vector.
    fn accept_dimension(&mut self, dim: usize) -> Result<()> {
        match self.dim {
            Some(known) if known != dim => exec_err!(
                "{}: argument 1 (v) has vectors of dimension {known} and {dim}; all must have the same",
                self.name()
            ),
            Some(_) => Ok(()),
            None => {
                self.dim = Some(dim);
                self.mechanism = Some(self.options.sum_mechanism(dim)?);
                if let Contributions::Rows { sums, .. } = &mut self.contributions {
                    sums.resize(dim, 0);
                }
                Ok(())
            }
        }
    }

    /// Adds one bounded contribution (of one unit) to the exact lattice totals.
    fn add_contribution(
        function: &str,
        mechanism: &Mechanism,
        count: &mut i64,
        sums: &mut [i128],
        values: &[f64],
    ) -> Result<()> {
        *count += 1;
        for (sum, x) in sums.iter_mut().zip(values) {
            *sum = sum.checked_add(mechanism.to_units(*x)).ok_or_else(|| {
                datafusion::common::DataFusionError::Execution(format!("{function}: the sum overflows"))
            })?;
        }
        Ok(())
    }

    /// The values each row of a batch contributes (already bounded), `None` for rows that add
    /// nothing (NULL values).
    fn row_values(&mut self, values: &[ArrayRef]) -> Result<Vec<Option<Vec<f64>>>> {
        let rows = values.first().map_or(0, |v| v.len());
        match self.options.kind {
            DpKind::Count => Ok(vec![Some(Vec::new()); rows]),
            DpKind::Sum | DpKind::Avg => {
                let x = values[0].as_primitive::<Float64Type>();
                Ok((0..rows)
                    .map(|row| {
                        (x.is_valid(row) && x.value(row).is_finite()).then(|| vec![self.options.clamp(x.value(row))])
                    })
                    .collect())
            }
            DpKind::VectorMean => {
                let vectors = Vectors::try_new(self.name(), 1, &values[0])?;
                if let Some(dim) = vectors.dim() {
                    self.accept_dimension(dim)?;
                }
                Ok((0..rows)
                    .map(|row| {
                        vectors
                            .row(row)
                            .filter(|v| v.iter().all(|x| x.is_finite()))
                            .map(|v| clipped(v.iter().map(|x| f64::from(*x)).collect(), self.options.clip_norm))
                    })
                    .collect())
            }
        }
    }

    /// The bounded contribution of one unit from its combined rows.
    fn unit_contribution(&self, total: &UnitTotal) -> Vec<f64> {
        match self.options.kind {
            DpKind::Count => Vec::new(),
            // The sum of a unit's values, clamped as one value would be.
            DpKind::Sum => total
                .sums
                .iter()
                .map(|s| s.clamp(self.options.lower, self.options.upper))
                .collect(),
            // The mean of the unit's clamped (and centred) values: still within the bounds.
            DpKind::Avg => total.sums.iter().map(|s| s / total.rows as f64).collect(),
            DpKind::VectorMean => {
                let mean = total.sums.iter().map(|s| s / total.rows as f64).collect();
                clipped(mean, self.options.clip_norm)
            }
        }
    }

    /// The exact count of units and lattice sums of everything accumulated.
    fn totals(&self) -> Result<(i64, Vec<i128>)> {
        let mechanism = self.mechanism.as_ref();
        match &self.contributions {
            Contributions::Rows { count, sums } => Ok((*count, sums.clone())),
            Contributions::ByUnit(units) => {
                let (mut count, mut sums) = (0, vec![0; self.dim.unwrap_or(0)]);
                for total in units.values().filter(|t| t.rows > 0) {
                    let Some(mechanism) = mechanism else { break };
                    Self::add_contribution(
                        self.name(),
                        mechanism,
                        &mut count,
                        &mut sums,
                        &self.unit_contribution(total),
                    )?;
                }
                Ok((count, sums))
            }
        }
    }

    fn noise_source(&self, count: i64, sums: &[i128]) -> NoiseSource {
        match self.options.seed {
            None => NoiseSource::from_os(),
            Some(seed) => {
                let mut hasher = std::hash::DefaultHasher::new();
                (seed, count, sums).hash(&mut hasher);
                NoiseSource::seeded(hasher.finish())
            }
        }
    }
}

impl Accumulator for DpAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let contributed = self.row_values(values)?;
        match &mut self.contributions {
            Contributions::Rows { count, sums } => {
                let Some(mechanism) = self.mechanism.as_ref() else {
                    return Ok(());
                };
                for values in contributed.iter().flatten() {
                    Self::add_contribution(self.options.kind.name(), mechanism, count, sums, values)?;
                }
            }
            Contributions::ByUnit(units) => {
                let unit_column = &values[self.options.kind.unit_position()];
                for (row, values) in contributed.into_iter().enumerate() {
                    let Some(values) = values else { continue };
                    if unit_column.is_null(row) {
                        continue;
                    }
                    let unit = ScalarValue::try_from_array(unit_column, row)?;
                    let total = units.entry(unit).or_default();
                    total.rows += 1;
                    total.sums.resize(values.len(), 0.0);
                    for (sum, x) in total.sums.iter_mut().zip(values) {
                        *sum += x;
                    }
                }
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let width = self.dim;
        match &mut self.contributions {
            Contributions::Rows { count, sums } => {
                let counts = states[0].as_primitive::<Int64Type>();
                let lists = states[1].as_list::<i32>();
                for row in 0..counts.len() {
                    if counts.is_null(row) || lists.is_null(row) {
                        continue;
                    }
                    *count += counts.value(row);
                    let partial = lists.value(row);
                    let partial = partial.as_primitive::<Decimal128Type>();
                    if sums.len() < partial.len() {
                        sums.resize(partial.len(), 0);
                    }
                    for (sum, x) in sums.iter_mut().zip(partial.values()) {
                        *sum = sum.saturating_add(*x);
                    }
                }
                if width.is_none() && !sums.is_empty() {
                    let dim = sums.len();
                    self.accept_dimension(dim)?;
                }
            }
            Contributions::ByUnit(units) => {
                let unit_lists = states[0].as_list::<i32>();
                let row_lists = states[1].as_list::<i32>();
                let sum_lists = states[2].as_list::<i32>();
                let mut learned = None;
                for row in 0..unit_lists.len() {
                    if unit_lists.is_null(row) {
                        continue;
                    }
                    let (unit_values, rows, sums) = (unit_lists.value(row), row_lists.value(row), sum_lists.value(row));
                    let rows = rows.as_primitive::<Int64Type>();
                    let sums = sums.as_primitive::<Float64Type>().values();
                    let count = unit_values.len();
                    let per_unit = sums.len().checked_div(count).unwrap_or(0);
                    if per_unit > 0 {
                        learned = Some(per_unit);
                    }
                    for index in 0..count {
                        let unit = ScalarValue::try_from_array(&unit_values, index)?;
                        let total = units.entry(unit).or_default();
                        total.rows += rows.value(index);
                        total.sums.resize(per_unit, 0.0);
                        for (sum, x) in total
                            .sums
                            .iter_mut()
                            .zip(&sums[index * per_unit..(index + 1) * per_unit])
                        {
                            *sum += x;
                        }
                    }
                }
                if let (None, Some(dim), DpKind::VectorMean) = (width, learned, self.options.kind) {
                    self.accept_dimension(dim)?;
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        match &self.contributions {
            Contributions::Rows { count, sums } => Ok(vec![
                ScalarValue::Int64(Some(*count)),
                ScalarValue::List(ScalarValue::new_list_from_iter(
                    sums.iter().map(|s| ScalarValue::Decimal128(Some(*s), 38, 0)),
                    &SUM_UNITS,
                    true,
                )),
            ]),
            Contributions::ByUnit(units) => {
                let width = self.dim.unwrap_or(0);
                let mut unit_values = Vec::with_capacity(units.len());
                let mut rows = Vec::with_capacity(units.len());
                let mut sums = Vec::with_capacity(units.len() * width);
                for (unit, total) in units {
                    unit_values.push(unit.clone());
                    rows.push(total.rows);
                    sums.extend((0..width).map(|j| total.sums.get(j).copied().unwrap_or(0.0)));
                }
                Ok(vec![
                    ScalarValue::List(ScalarValue::new_list_nullable(&unit_values, &self.unit_type)),
                    ScalarValue::List(
                        ListArray::from_iter_primitive::<Int64Type, _, _>([Some(
                            rows.into_iter().map(Some).collect::<Vec<_>>(),
                        )])
                        .into(),
                    ),
                    ScalarValue::List(
                        ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
                            sums.into_iter().map(Some).collect::<Vec<_>>(),
                        )])
                        .into(),
                    ),
                ])
            }
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (count, sums) = self.totals()?;
        let mut source = self.noise_source(count, &sums);
        let options = &self.options;
        match options.kind {
            DpKind::Count => {
                let mechanism = self.mechanism.as_ref().expect("a count's mechanism");
                let noisy = mechanism.release(i128::from(count), &mut source).max(0.0);
                Ok(ScalarValue::Int64(Some(noisy as i64)))
            }
            DpKind::Sum => {
                let mechanism = self.mechanism.as_ref().expect("a sum's mechanism");
                Ok(ScalarValue::Float64(Some(mechanism.release(sums[0], &mut source))))
            }
            DpKind::Avg => {
                let mechanism = self.mechanism.as_ref().expect("an average's mechanism");
                let sum = mechanism.release(sums[0], &mut source);
                let units = options
                    .count_mechanism()?
                    .release(i128::from(count), &mut source)
                    .max(1.0);
                let mean = options.centre() + sum / units;
                Ok(ScalarValue::Float64(Some(mean.clamp(options.lower, options.upper))))
            }
            DpKind::VectorMean => {
                let (Some(mechanism), Some(dim)) = (self.mechanism.as_ref(), self.dim) else {
                    // A variable-length column with no vector in the group: no dimension to
                    // release a vector of.
                    return ScalarValue::try_from(&self.return_type);
                };
                let vector_sums: Vec<f64> = sums.iter().map(|s| mechanism.release(*s, &mut source)).collect();
                let units = options
                    .count_mechanism()?
                    .release(i128::from(count), &mut source)
                    .max(1.0);
                // The exact mean of clipped vectors lies in the ball of radius clip_norm, so
                // projecting the release onto it only removes noise (and costs no privacy).
                let mean = clipped(vector_sums.iter().map(|s| s / units).collect(), options.clip_norm);
                let mean: Vec<f32> = mean.iter().map(|x| *x as f32).collect();
                let array = vector_array(&self.return_type, mean, dim, 1, None)?;
                ScalarValue::try_from_array(&array, 0)
            }
        }
    }

    fn size(&self) -> usize {
        let contributions = match &self.contributions {
            Contributions::Rows { sums, .. } => sums.capacity() * size_of::<i128>(),
            Contributions::ByUnit(units) => units
                .iter()
                .map(|(unit, total)| unit.size() + size_of::<UnitTotal>() + total.sums.capacity() * size_of::<f64>())
                .sum(),
        };
        size_of::<Self>() + contributions
    }
}

/// The noise standard deviation `dp_sum` adds with these bounds and budget, for checking the
/// samplers against theory and peers.
pub fn dp_sum_noise_std(lower: f64, upper: f64, epsilon: f64) -> Option<f64> {
    Mechanism::laplace_sum(lower.abs().max(upper.abs()), epsilon).map(|m| m.noise_std())
}

/// The noise standard deviation of `dp_count` at this budget.
pub fn dp_count_noise_std(epsilon: f64) -> Option<f64> {
    Mechanism::count(epsilon).map(|m| m.noise_std())
}

/// The standard deviations of the noise on `dp_avg`'s centred sum and on its count.
pub fn dp_avg_noise_std(lower: f64, upper: f64, epsilon: f64) -> Option<(f64, f64)> {
    let sum = Mechanism::laplace_sum((upper - lower) / 2.0, epsilon / 2.0)?;
    let count = Mechanism::count(epsilon / 2.0)?;
    Some((sum.noise_std(), count.noise_std()))
}

/// The standard deviations of the noise on each coordinate of `dp_vector_mean`'s vector sum
/// and on its count.
pub fn dp_vector_mean_noise_std(clip_norm: f64, dim: usize, epsilon: f64, delta: f64) -> Option<(f64, f64)> {
    let sum = Mechanism::gaussian_sum(clip_norm, dim, epsilon / 2.0, delta)?;
    let count = Mechanism::count(epsilon / 2.0)?;
    Some((sum.noise_std(), count.noise_std()))
}
