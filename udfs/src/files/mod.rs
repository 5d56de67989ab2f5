//! Reading files that DataFusion's own readers refuse: `read_csv` for delimited text in other
//! encodings; and very wide files in batches of bounded size (`wide_scans`).

pub mod read_csv;
pub mod wide_scans;

pub use read_csv::ReadCsv;
