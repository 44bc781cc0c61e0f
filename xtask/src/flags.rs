//! Every command and flag of `cargo xtask`, in one place.

use clap::{Args, Parser, Subcommand};

/// Ampel's workspace tasks: run the stack, test it, ship it.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every test of the workspace against real PostgreSQL and Redis.
    Test(Test),
}

/// `cargo xtask test`: `cargo test --workspace` with `DATABASE_URL` and `REDIS_URL` set.
#[derive(Debug, Args)]
#[command(long_about = "Runs `cargo test --workspace` against real PostgreSQL and Redis.\n\n\
Set DATABASE_URL and REDIS_URL to use servers you run (CI starts them with .ci/services.sh).")]
pub struct Test {
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}
