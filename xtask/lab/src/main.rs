//! `xtask-lab`: the `cargo xtask` commands that run the app against real containers and
//! measure it: `test`, `e2e`, `bench`. `cargo xtask` hands these over with the same arguments:
//!
//! ```text
//! cargo xtask e2e --traces jaeger --logs victorialogs   # runs: cargo run -p xtask-lab -- e2e …
//! ```
//!
//! The flags are `xtask::flags` (one definition for both binaries).

mod bench;
mod e2e;
mod test;

use clap::Parser as _;
use xtask::{flags, util};

/// A command this package runs: the flag structs are `xtask`'s, so the method is a trait's.
trait Run {
    fn run(self) -> anyhow::Result<()>;
}

fn main() -> anyhow::Result<()> {
    let flags = flags::Xtask::parse();
    std::env::set_current_dir(util::project_root())?;
    match flags.command {
        flags::Command::Test(cmd) => cmd.run(),
        flags::Command::E2e(cmd) => cmd.run(),
        flags::Command::Bench(cmd) => cmd.run(),
        other => anyhow::bail!(
            "xtask-lab runs test, e2e and bench only; run `cargo xtask` for {other:?}"
        ),
    }
}
