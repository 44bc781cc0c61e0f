//! `cargo xtask status`: what runs, and does it answer?
//!
//! ```text
//! cargo xtask status
//! ```
//!
//! One row per service: the container's state from `compose ps --format json`, the result of its
//! compose healthcheck run once now (the check `obs-up` waits on; compose's health column is not
//! used because Podman without systemd never runs healthchecks), and the URL to open.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::compose;
use crate::engine::{Compose, Variant};
use crate::flags;
use crate::obs_up::print_table;
use crate::obs_up::ready::{self, Target};

impl flags::Status {
    pub fn run(self) -> anyhow::Result<()> {
        let compose = Compose::find(self.stack.engine, Variant::Everything)?;
        let containers = compose.containers()?;
        if containers.is_empty() {
            anyhow::bail!(
                "read the stack's state: no container exists; start the stack with `cargo xtask obs-up`"
            );
        }
        let states: BTreeMap<&str, String> = containers
            .iter()
            .map(|container| (container.service.as_str(), container.describe()))
            .collect();
        // The variant is the one whose own services have containers: the peers file's additions
        // exist only after `obs-up --peers`.
        let peers_only = compose::read(compose::PEERS)?;
        let main = compose::read(compose::MAIN)?;
        let peers = states.keys().any(|service| {
            peers_only.services.contains_key(*service) && !main.services.contains_key(*service)
        });
        let variant = if peers {
            Variant::Peers
        } else {
            Variant::Grafana
        };
        let model = Variant::Everything.model()?;
        let expected = variant.model()?;
        let names: Vec<&String> = model
            .services
            .keys()
            .filter(|name| {
                states.contains_key(name.as_str())
                    || expected.active(&[]).any(|(active, _)| active == *name)
            })
            .collect();
        let targets = names
            .iter()
            .map(|name| Target::new(name, &model.services[*name]))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the async runtime")?;
        let http = ready::http_client()?;
        let probes = runtime.block_on(futures::future::join_all(
            targets.iter().map(|target| target.check(&compose, &http)),
        ));

        let mut unhealthy = Vec::new();
        let rows: Vec<Vec<String>> = targets
            .iter()
            .zip(probes)
            .map(|(target, probe)| {
                let state = states.get(target.service.as_str()).cloned();
                let health = match (&state, probe) {
                    (None, _) => "-".to_owned(),
                    (Some(_), Ok(())) => "ready".to_owned(),
                    (Some(_), Err(seen)) => {
                        unhealthy.push(target.service.clone());
                        format!("not ready: {seen}")
                    }
                };
                if state.as_deref().is_some_and(|state| state != "running")
                    && !unhealthy.contains(&target.service)
                {
                    unhealthy.push(target.service.clone());
                }
                vec![
                    target.service.clone(),
                    state.unwrap_or_else(|| "not created".into()),
                    health,
                    target.url.clone(),
                ]
            })
            .collect();
        print_table(&["SERVICE", "STATE", "HEALTH", "URL"], &rows);
        if unhealthy.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "check the stack: {} not running or not ready. Next: `{}` shows why; `cargo xtask obs-up` starts what is missing",
            unhealthy.join(", "),
            compose.display(&["logs", "--tail", "30", &unhealthy[0]])
        )
    }
}
