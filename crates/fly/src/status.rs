//! `flyctl status --json`: an app's Machines, the image each runs and its checks; [`Status::ready`]
//! says whether a release is the one running, for apps without a public address to ask.

use anyhow::ensure;
use serde::Deserialize;

use crate::flyctl::{Failure, Flyctl};
use crate::secrets::Mask;

/// The command whose answer [`Flyctl::status`] reads, for a plan to show.
pub fn status_args(app: &str) -> [&str; 4] {
    ["status", "--app", app, "--json"]
}

/// `flyctl status --json`, as far as [`Status::ready`] reads it.
#[derive(Deserialize)]
pub struct Status {
    #[serde(rename = "Machines", default)]
    machines: Vec<Machine>,
}

#[derive(Deserialize)]
struct Machine {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    image_ref: ImageRef,
    #[serde(default)]
    checks: Vec<CheckStatus>,
}

#[derive(Default, Deserialize)]
struct ImageRef {
    #[serde(default)]
    tag: String,
}

#[derive(Deserialize)]
struct CheckStatus {
    name: String,
    status: String,
}

impl Flyctl {
    /// One look at `app`'s Machines.
    pub fn status(&self, app: &str, mask: &Mask) -> Result<Status, Failure> {
        self.json(&status_args(app), mask)
    }
}

impl Status {
    /// `Ok` when every Machine is started, on the image tagged `revision` and passing its
    /// checks; otherwise what is not.
    pub fn ready(&self, revision: &str) -> anyhow::Result<()> {
        ensure!(!self.machines.is_empty(), "no Machines");
        let mut unready = Vec::new();
        for machine in &self.machines {
            let failing: Vec<String> = machine
                .checks
                .iter()
                .filter(|check| check.status != "passing")
                .map(|check| format!("{}={}", check.name, check.status))
                .collect();
            let (state, tag) = (&machine.state, &machine.image_ref.tag);
            if state != "started" || tag != revision || !failing.is_empty() {
                let checks = failing.join(", ");
                unready.push(format!(
                    "Machine {} is {state} on image {tag} with checks [{checks}]",
                    machine.id
                ));
            }
        }
        ensure!(unready.is_empty(), "{}", unready.join("; "));
        Ok(())
    }
}
