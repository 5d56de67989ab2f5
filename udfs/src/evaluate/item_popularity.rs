//! `item_popularity(interactions [, head_share])`: each item's popularity, for the measures of
//! popularity bias: how many users interacted with it, their share of all users `p(i)`, its
//! self-information `−log2 p(i)` (novelty), and whether it is in the short head — the most
//! popular items that together hold `head_share` (default 80 %) of the (user, item) pairs, as
//! Elliot splits them — or the long tail. With a list's items joined in, the mean `users` is the
//! average recommendation popularity (ARP), the mean of `NOT head` the share of long-tail items
//! (APLT, Abdollahpouri et al. 2019), and `novelty(share)` the list's novelty.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;
use serde::{Deserialize, Serialize};

use crate::table_function::interactions::Interactions;
use crate::table_function::{Arguments, Planned, Run, TableFunction};

const NAME: &str = "item_popularity";

#[user_doc(
    doc_section(label = "Evaluation Functions"),
    description = "Each item's popularity over (user, item) rows, most popular first: users (how many distinct users interacted with it), share (users / all users, p(i)), novelty (−log2 p(i)) and head (true for the short head: the most popular items that together hold head_share of the distinct (user, item) pairs, as Elliot splits them; the rest is the long tail). Joined to recommendation lists: ARP = the mean over users of each list's mean users, APLT = the mean over users of each list's share of NOT head, novelty(share) the mean self-information.",
    syntax_example = "item_popularity(interactions [, head_share => 0.8] [, user => 'column', item => 'column'])",
    sql_example = r#"```sql
> SELECT avg(aplt) FROM (SELECT r.user_id, avg(CASE WHEN p.head THEN 0.0 ELSE 1.0 END) AS aplt
  FROM recs r JOIN item_popularity('train') p USING (item_id) GROUP BY r.user_id);
```"#,
    argument(name = "interactions", description = "A table or view of (user, item) rows."),
    argument(
        name = "head_share",
        description = "The share of (user, item) pairs the short head holds, above 0 and at most 1 (default 0.8)."
    ),
    argument(
        name = "user",
        description = "The column of interactions that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of interactions that holds the item id (default: the second)."
    )
)]
#[derive(Debug, Default)]
pub struct ItemPopularity;

#[derive(Debug, Serialize, Deserialize)]
struct Options {
    head_share: f64,
}

impl TableFunction for ItemPopularity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=2)?;
        let input = args.required_input(0, "interactions", Some("user, item"))?;
        let head_share = args.number(1, "head_share", 0.0..=1.0, 0.8)?;
        if head_share == 0.0 {
            return Err(args.invalid(1, "head_share", "a number above 0 and at most 1", head_share));
        }
        let item = input.table.provider.schema().field(1).clone();
        let schema = Arc::new(Schema::new(vec![
            Field::new(item.name(), item.data_type().clone(), true),
            Field::new("users", DataType::Int64, false),
            Field::new("share", DataType::Float64, false),
            Field::new("novelty", DataType::Float64, false),
            Field::new("head", DataType::Boolean, false),
        ]));
        Planned::new(vec![input], &Options { head_share }, schema)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { head_share } = run.call.options()?;
        let interactions = Interactions::from_batch(NAME, &inputs[0])?;
        run.reserve(interactions.memory_size())?;
        let users = interactions.users().max(1) as f64;
        let mut items: Vec<(u32, usize)> = (0..interactions.items())
            .map(|item| (item as u32, interactions.by_item.row_len(item)))
            .collect();
        // Most popular first; equal popularity in id order.
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let pairs: usize = items.iter().map(|&(_, n)| n).sum();
        let mut left = head_share * pairs as f64;
        let head: BooleanArray = items
            .iter()
            .map(|&(_, n)| {
                let in_head = left > 0.0;
                left -= n as f64;
                Some(in_head)
            })
            .collect();
        let shares: Vec<f64> = items.iter().map(|&(_, n)| n as f64 / users).collect();
        let columns = vec![
            take(
                interactions.item_ids.as_ref(),
                &UInt32Array::from_iter_values(items.iter().map(|&(item, _)| item)),
                None,
            )?,
            Arc::new(Int64Array::from_iter_values(items.iter().map(|&(_, n)| n as i64))) as _,
            Arc::new(Float64Array::from(shares.clone())) as _,
            Arc::new(Float64Array::from_iter_values(shares.iter().map(|s| -s.log2()))) as _,
            Arc::new(head) as _,
        ];
        Ok(RecordBatch::try_new(Arc::clone(run.schema), columns)?)
    }
}
