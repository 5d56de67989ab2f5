//! Models trained in-process from SQL, kept by name in the models directory ([`directory`],
//! listed by `models()`) or saved at a path, and used again by either. One file per
//! table function (`train_als.rs`, `model_vectors.rs`, `train_sasrec.rs`, `sasrec_profiles.rs`,
//! …), one per training algorithm (`als.rs`, `item2vec.rs`, `sasrec.rs`, `two_tower.rs`), the
//! model files themselves ([`file`]), what every training run shares ([`training`],
//! [`progress`]), and the candle operations with hand-written backward passes that SASRec
//! trains with (`cross_entropy.rs`, `layers.rs`, `encoder_block.rs`, on `matrix.rs`'s
//! products).

pub mod als;
pub mod als_explain;
pub(crate) mod cross_entropy;
pub mod directory;
pub(crate) mod encoder_block;
pub mod file;
pub mod item2vec;
pub(crate) mod layers;
pub(crate) mod matrix;
pub mod model_info;
pub mod model_vectors;
// The file of the `models()` function, named after it as every function's file is.
#[allow(clippy::module_inception)]
pub mod models;
pub mod progress;
pub mod sasrec;
pub mod sasrec_profiles;
pub mod train_als;
pub mod train_attention_query;
pub mod train_item2vec;
pub mod train_sasrec;
pub mod train_two_tower;
pub(crate) mod training;
pub mod two_tower;
pub mod two_tower_profiles;

pub use als_explain::AlsExplain;
pub use model_info::ModelInfo;
pub use model_vectors::ModelVectors;
pub use models::Models;
pub use sasrec_profiles::SasRecProfiles;
pub use train_als::TrainAls;
pub use train_attention_query::TrainAttentionQuery;
pub use train_item2vec::TrainItem2Vec;
pub use train_sasrec::TrainSasRec;
pub use train_two_tower::TrainTwoTower;
pub use two_tower_profiles::TwoTowerProfiles;
