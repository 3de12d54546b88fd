//! The hunt's reports, one module per format.
pub mod html;
