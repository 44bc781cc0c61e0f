//! `cargo xtask test`: the workspace's tests against real PostgreSQL and Redis.

use anyhow::Context as _;

use crate::{flags, util};

impl flags::Test {
    pub fn run(self) -> anyhow::Result<()> {
        let database_url = std::env::var("DATABASE_URL").context(
            "DATABASE_URL is not set: start PostgreSQL and Redis (`bash .ci/services.sh` on Debian, or `cargo xtask obs-up --no-app`) and export DATABASE_URL=postgres://ampel:ampel@127.0.0.1:5432/ampel REDIS_URL=redis://127.0.0.1:6379",
        )?;
        let redis_url = std::env::var("REDIS_URL")
            .context("REDIS_URL is not set: export REDIS_URL=redis://127.0.0.1:6379")?;
        let mut args = vec!["test".to_owned(), "--workspace".to_owned()];
        if !self.cargo_args.is_empty() {
            args.push("--".to_owned());
            args.extend(self.cargo_args);
        }
        util::run(
            "cargo test",
            &util::cargo(),
            &args,
            &[("DATABASE_URL", database_url), ("REDIS_URL", redis_url)],
        )
    }
}
