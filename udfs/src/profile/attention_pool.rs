//! `attention_pool(vector, query [, bias])`: attention pooling of a user's event vectors into
//! one profile, `logit_i = q_i·z_i / √d + bias_i` (see [`super::pooling`]).

use datafusion::logical_expr::Signature;
use datafusion_macros::user_doc;

use super::pooling::{Logits, pooling_udaf};

#[user_doc(
    doc_section(label = "Profile Functions"),
    description = "Attention pooling of a group's vectors into one profile: Σ a_i·z_i with a = softmax(q_i·z_i/√d + bias_i). The query q is a column (the user's feature profile, or the mean of the user's vectors joined in; NULL leaves only the bias); bias carries recency and event weights, e.g. -0.1 * position or ln(rating).",
    syntax_example = "attention_pool(vector, query [, bias])",
    sql_example = r#"```sql
> SELECT e.user_id, attention_pool(i.embedding, m.profile, -0.05 * e.position)
  FROM events e JOIN items i USING (item_id) JOIN means m USING (user_id) GROUP BY e.user_id;
```"#,
    argument(name = "vector", description = "The event's vector, e.g. the item's embedding."),
    argument(name = "query", description = "The query vector, same dimension; NULL for none."),
    argument(name = "bias", description = "A number added to the event's logit (optional).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AttentionPool {
    signature: Signature,
}

pooling_udaf!(AttentionPool, Logits::Attention, [2usize, 3]);
