//! Functions that draw: pictures made of text, so a chart works in every output format.

mod bar;

pub use bar::Bar;
