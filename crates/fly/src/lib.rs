#![doc = include_str!("../README.md")]

pub mod account;
pub mod config;
pub mod flyctl;
pub mod secrets;
pub mod status;
