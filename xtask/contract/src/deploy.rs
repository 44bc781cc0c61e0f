//! `cargo xtask deploy`: ship the collector, the api and the worker.
//!
//! ```text
//! cargo xtask deploy fly --dry-run
//! ```
//!
//! Layout: what is Ampel's is here, what is Fly's is the `fly_deploy` crate (crates/fly):
//! running flyctl with secrets masked, the model of fly.toml, the JSON of flyctl's account and
//! status queries, and the `flyctl secrets import` line format.
//! `fly.rs` runs the deploy (plan, steps, errors); `preflight.rs` checks `fly/*.toml`
//! against the binaries and the Dockerfile, and `fly/collector.toml` against the collector's
//! config (`preflight/collector.rs`), without touching the network (`cargo xtask check` reuses
//! [`preflight::fly_problems`]); `dockerfile.rs` reads the Dockerfile's stages (compose's
//! check reads them too);
//! `secrets.rs` knows which app gets which secret and reads them from the environment or an env
//! file; `verify.rs` waits for the new version to answer.
//! The tests drive the whole command against crates/fake-flyctl, which stands in for Fly's
//! API because CI cannot reach it.

pub mod dockerfile;
mod fly;
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
