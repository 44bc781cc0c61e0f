//! `cargo xtask`: the workspace's automation, in Rust, needing only cargo.
//!
//! ```text
//! cargo xtask --help
//! ```
//!
//! `main` parses the flags (all in `flags.rs`), moves to the workspace root and runs one command;
//! each command lives in the module named after it. `compose.rs` reads `compose/`, the one
//! source of truth for service names, images and ports.

mod bench;
mod check;
mod compose;
mod deploy;
mod e2e;
mod engine;
mod flags;
mod obs_down;
mod obs_up;
mod status;
mod test;
mod util;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let flags = flags::Xtask::parse();
    std::env::set_current_dir(util::project_root())?;
    match flags.command {
        flags::Command::Test(cmd) => cmd.run(),
        flags::Command::Deploy(cmd) => cmd.run(),
        flags::Command::E2e(cmd) => cmd.run(),
        flags::Command::ObsUp(cmd) => cmd.run(),
        flags::Command::ObsDown(cmd) => cmd.run(),
        flags::Command::Status(cmd) => cmd.run(),
        flags::Command::Check(cmd) => cmd.run(),
        flags::Command::Bench(cmd) => cmd.run(),
    }
}
