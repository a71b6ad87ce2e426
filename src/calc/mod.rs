//! The postfix calculator protocol (placeholder; being written).

pub mod cli;
