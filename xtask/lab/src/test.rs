//! `cargo xtask test`: every test of the workspace against real PostgreSQL and Redis, then the
//! e2e, the no-loss tests (`cargo xtask e2e --no-loss`), the live alert test (`--alerts`) and
//! the browser e2e (`--browser`).
//! The README's test command.

use anyhow::Context as _;

use crate::e2e;
use xtask::{flags, util};

impl crate::Run for flags::Test {
    fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new().context("start the Tokio runtime")?;
        let given = (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL"));
        let (datastores, database_url, redis_url) = match given {
            (Ok(database_url), Ok(redis_url)) => (None, database_url, redis_url),
            _ => {
                eprintln!(
                    "DATABASE_URL or REDIS_URL is not set: starting PostgreSQL and Redis in containers"
                );
                let datastores = runtime.block_on(e2e::Datastores::start()).context(
                    "start PostgreSQL and Redis: is Docker (or Podman's socket, DOCKER_HOST) up? Or export DATABASE_URL and REDIS_URL for servers you run (`bash .ci/services.sh` starts them on Debian)",
                )?;
                let (database_url, redis_url) = (
                    datastores.database_url.clone(),
                    datastores.redis_url.clone(),
                );
                (Some(datastores), database_url, redis_url)
            }
        };
        let mut args = vec!["test".to_owned(), "--workspace".to_owned()];
        if !self.cargo_args.is_empty() {
            args.push("--".to_owned());
            args.extend(self.cargo_args);
        }
        let tests = util::run(
            "cargo test",
            &util::cargo(),
            &args,
            &[("DATABASE_URL", database_url), ("REDIS_URL", redis_url)],
        );
        if let Some(datastores) = datastores {
            runtime.block_on(datastores.stop());
        }
        tests?;
        if self.no_e2e {
            return Ok(());
        }
        drop(runtime);
        // The e2e, the no-loss tests and the live alert test, each on a stack of its own.
        let e2e = |no_loss, alerts, browser| flags::E2e {
            traces: self.traces,
            logs: self.logs,
            keep: false,
            no_loss,
            alerts,
            rounds: flags::ALERT_ROUNDS,
            browser,
            broken: None,
        };
        e2e(false, false, false).run()?;
        e2e(true, false, false).run()?;
        e2e(false, true, false).run()?;
        e2e(false, false, true).run()
    }
}
