//! `cargo xtask obs-down`: stop the local stack, whichever variant `obs-up` started.
//!
//! ```text
//! cargo xtask obs-down              # keep the data volumes
//! cargo xtask obs-down --volumes    # delete them too
//! ```
//!
//! Compose is given both files and every profile, so `down` knows the services (and volumes) of
//! both variants and removes whatever exists.

use crate::engine::{Compose, Variant};
use crate::flags;

impl flags::ObsDown {
    pub fn run(self) -> anyhow::Result<()> {
        let compose = Compose::find(self.stack.engine, Variant::Everything)?;
        let mut args = vec!["down", "--remove-orphans"];
        if self.volumes {
            args.push("--volumes");
        }
        compose.run(
            "stop the stack: see compose's output above; `cargo xtask status` shows what is left",
            &args,
        )
    }
}
