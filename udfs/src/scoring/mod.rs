//! Scoring and top-k: `recommend` (user × item vectors through the blocked top-k kernel in
//! [`selection`]), the neighbourhood and content recommenders `item_knn`, `user_knn` and
//! `content_knn` (sharing [`knn`]), `similar_items` (item × item through the same kernel),
//! `recommend`'s explanations ([`because`]), re-ranking for diversity and calibration
//! (`rerank_mmr`, `rerank_calibrated` in [`rerank`]), rank fusion (`fuse_ranks`), and the
//! `top_k` aggregate for scores computed in SQL.

mod because;
pub mod content_knn;
pub mod fuse_ranks;
pub mod item_knn;
mod knn;
pub mod recommend;
pub mod rerank;
pub mod selection;
pub mod similar_items;
pub mod top_k;
pub mod user_knn;

pub use content_knn::ContentKnn;
pub use fuse_ranks::FuseRanks;
pub use item_knn::ItemKnn;
pub use recommend::{Recommend, RecommendExec};
pub use rerank::{RerankCalibrated, RerankExec, RerankMmr};
pub use similar_items::SimilarItems;
pub use top_k::TopK;
pub use user_knn::UserKnn;
