//! The hunt written out for people and tools: one module per format.

pub mod junit;
