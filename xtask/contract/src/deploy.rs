//! `cargo xtask deploy`: ship the collector, the api and the worker.
//!
//! ```text
//! cargo xtask deploy fly --dry-run
//! ```
//!
//! Layout: `fly.rs` runs the deploy (plan, steps, errors); `preflight.rs` checks `fly/*.toml`
//! against the binaries and the Dockerfile, and `fly/collector.toml` against the collector's
//! config (`preflight/collector.rs`), without touching the network (`cargo xtask check` reuses
//! [`preflight::fly_problems`]); `dockerfile.rs` reads the Dockerfile's stages;
//! `secrets.rs` reads secrets and hands them to flyctl on stdin; `flyctl.rs` runs flyctl;
//! `verify.rs` waits for the new version to answer.
//! The tests drive the whole command against crates/fake-flyctl, which stands in for Fly's
//! API because CI cannot reach it.

pub mod dockerfile;
mod fly;
mod flyctl;
pub mod preflight;
mod secrets;
mod verify;

use xtask::flags;

impl crate::Run for flags::Deploy {
    fn run(self) -> anyhow::Result<()> {
        match self.target {
            flags::DeployTarget::Fly(cmd) => cmd.run(),
        }
    }
}
