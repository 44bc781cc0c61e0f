//! `cargo xtask` as a library: the stack commands (`obs-up`, `obs-down`, `status`) and what every
//! package of xtask shares (`flags`, `compose`, `engine`, `util`).
//!
//! The other commands live in packages of their own, so that the stack commands compile neither
//! the app nor containers: `xtask-contract` (`xtask/contract/`: `check`, `codegen`, `deploy`,
//! which link the app crates) and `xtask-lab` (`xtask/lab/`: `test`, `e2e`, `bench`, which run
//! containers). Both link this library for the flags and the compose model.

pub mod compose;
pub mod engine;
pub mod flags;
pub mod obs_down;
pub mod obs_up;
pub mod queries;
pub mod status;
pub mod util;
pub mod web;
