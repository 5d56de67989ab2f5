//! recfusion engine.
