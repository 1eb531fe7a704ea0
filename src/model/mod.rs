//! Pure types and rules: no I/O, no clock reads, no SQL.

pub mod audit;
