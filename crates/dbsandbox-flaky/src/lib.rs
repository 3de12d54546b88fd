//! `dbsandbox-flaky`: the flaky-test hunter behind `dbsandbox flaky -- <test command>`.
//!
//! It finds a suite's order-dependent and flaky tests, the test that polluted each victim (or set
//! up each brittle test's state), and the rows that test left behind. Every run is on a fresh
//! clone of the template, so each bisection step is sound.
//!
//! - [`adapter`]: one file per test runner (list, run an exact order, read outcomes).
//! - [`plan`]: detection, delta debugging and confirmation, over an [`plan::Executor`].
//! - [`model`]: the hunt's data, which is the `dbsandbox.flaky/v1` JSON document (`SCHEMA.md`).
//! - [`evidence`]: what a culprit left in its clone, compared with an untouched clone.
//! - [`report`]: the hunt written out for people, CI dashboards (JUnit XML) and browsers (HTML).
//! - [`exec`], [`hunt`], [`reading`]: runs on leased clones, the whole hunt, failures read by analyze.

pub mod adapter;
pub mod evidence;
pub mod exec;
pub mod hunt;
pub mod model;
pub mod plan;
pub mod reading;
pub mod report;
