//! Reading files that DataFusion's own readers refuse: `read_csv` for delimited text in other
//! encodings.

pub mod read_csv;

pub use read_csv::ReadCsv;
