//! `decayed_mean(vector, age, half_life)`: time-decayed mean pooling, weights
//! `0.5^(age / half_life)` — attention whose logits are `-ln 2 · age / half_life` (see
//! [`super::pooling`]).

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use super::pooling::{Logits, pooling_udaf};

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "Time-decayed mean of a group's vectors: weights 0.5^(age / half_life), so an event half_life old counts half as much as one happening now.",
    syntax_example = "decayed_mean(vector, age, half_life)",
    sql_example = r#"```sql
> SELECT user_id, decayed_mean(embedding, now_ts - ts, 86400 * 30) FROM events GROUP BY user_id;
```"#,
    argument(name = "vector", description = "The event's vector."),
    argument(name = "age", description = "How old the event is, in any unit."),
    argument(
        name = "half_life",
        description = "The age at which an event's weight halves, same unit; positive."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecayedMean {
    signature: Signature,
}

pooling_udaf!(DecayedMean, Logits::Decay, [3usize]);
