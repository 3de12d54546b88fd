//! The hunt's reports: for people (human), CI dashboards (junit) and browsers (html).
pub mod html;
pub mod human;
pub mod junit;
