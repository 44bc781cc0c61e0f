//! A Prometheus configuration that a test points at its own processes while Prometheus runs.
//! It lives in a [`SharedDir`] that the container mounts at [`super::CONFIG_DIR`]. It starts
//! from a template (global settings, rule files, jobs), and jobs' static targets are set at run
//! time: each change rewrites the file in one rename, then [`super::Prometheus::reload`].
//!
//! ```no_run
//! # fn demo(template: &str, address: std::net::SocketAddr) -> anyhow::Result<()> {
//! use otel_testkit::prometheus::{self, ScrapeConfig};
//! let config = ScrapeConfig::new(template, &["prometheus"], &["api"])?;
//! let spec = prometheus::spec(&prometheus::image()).mount_ro(config.dir().path(), prometheus::CONFIG_DIR);
//! // … start it; bind the service to the container gateway's address, then:
//! config.add(&[("api", address)], &[("run", "one")])?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Mutex;

use anyhow::Context as _;
use serde_yaml::{Mapping, Value};

use crate::container::SharedDir;

/// The file [`super::spec`]'s command reads, in the shared folder.
const FILE: &str = "prometheus.yml";

/// A template and the targets added so far, written to a shared folder.
pub struct ScrapeConfig {
    dir: SharedDir,
    template: Mapping,
    /// The jobs whose static targets are the added ones.
    targeted: Vec<String>,
    /// `(job, address, labels)` of every target added so far.
    targets: Mutex<Vec<(String, SocketAddr, Mapping)>>,
}

impl ScrapeConfig {
    /// From the text of a `prometheus.yml`: everything but its jobs as it is; of its jobs, those
    /// in `keep` as they are and those in `targeted` with no target until [`ScrapeConfig::add`];
    /// the others left out. A name that is not a job of the template is an error.
    pub fn new(template: &str, keep: &[&str], targeted: &[&str]) -> anyhow::Result<Self> {
        let mut template: Mapping =
            serde_yaml::from_str(template).context("parse the Prometheus configuration")?;
        let jobs = jobs(&mut template)?;
        for wanted in keep.iter().chain(targeted) {
            anyhow::ensure!(
                jobs.iter().any(|job| job_name(job) == *wanted),
                "the Prometheus configuration has no job {wanted:?}"
            );
        }
        jobs.retain(|job| keep.contains(&job_name(job)) || targeted.contains(&job_name(job)));
        let config = Self {
            dir: SharedDir::new("otel-testkit-prometheus-")?,
            template,
            targeted: targeted.iter().map(|job| (*job).to_owned()).collect(),
            targets: Mutex::new(Vec::new()),
        };
        config.write(&[])?;
        Ok(config)
    }

    /// The folder to mount at [`super::CONFIG_DIR`]; rule files the template names go here too.
    pub fn dir(&self) -> &SharedDir {
        &self.dir
    }

    /// Adds `(job, address)` targets, each labelled with `labels`, and rewrites the file; then
    /// [`super::Prometheus::reload`]. Targets added at once from several tasks are all kept.
    pub fn add(
        &self,
        targets: &[(&str, SocketAddr)],
        labels: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let labels: Mapping = labels
            .iter()
            .map(|(key, value)| (Value::from(*key), Value::from(*value)))
            .collect();
        for (job, _) in targets {
            anyhow::ensure!(
                self.targeted.iter().any(|targeted| targeted == job),
                "job {job:?} does not take added targets: name it in ScrapeConfig::new"
            );
        }
        // Held while the file is written, so that no task's targets are lost.
        let mut all = self.targets.lock().expect("no thread panics holding it");
        all.extend(
            targets
                .iter()
                .map(|(job, address)| ((*job).to_owned(), *address, labels.clone())),
        );
        self.write(&all)
    }

    /// Leaves the folder behind (to look at after a run) and returns where it is.
    pub fn keep(self) -> std::path::PathBuf {
        self.dir.keep()
    }

    fn write(&self, targets: &[(String, SocketAddr, Mapping)]) -> anyhow::Result<()> {
        let mut config = self.template.clone();
        for job in jobs(&mut config)? {
            let name = job_name(job).to_owned();
            if self.targeted.contains(&name) {
                let static_configs = targets
                    .iter()
                    .filter(|(target_job, _, _)| *target_job == name)
                    .map(|(_, address, labels)| {
                        let mut entry = Mapping::new();
                        entry.insert("targets".into(), vec![address.to_string()].into());
                        entry.insert("labels".into(), Value::Mapping(labels.clone()));
                        Value::Mapping(entry)
                    })
                    .collect();
                job["static_configs"] = Value::Sequence(static_configs);
            }
        }
        let text = serde_yaml::to_string(&config).context("render the Prometheus configuration")?;
        let text = format!("# Written by otel_testkit::prometheus::ScrapeConfig.\n{text}");
        self.dir.write(FILE, text.as_bytes())
    }
}

fn jobs(config: &mut Mapping) -> anyhow::Result<&mut Vec<Value>> {
    config
        .get_mut("scrape_configs")
        .and_then(Value::as_sequence_mut)
        .context("the Prometheus configuration has no scrape_configs list")
}

fn job_name(job: &Value) -> &str {
    job.get("job_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "\
global:
  scrape_interval: 5s
rule_files:
  - rules/*.yml
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [localhost:9090]
  - job_name: api
    static_configs:
      - targets: [api:9091]
  - job_name: exporter
    static_configs:
      - targets: [exporter:9121]
";

    fn written(config: &ScrapeConfig) -> Value {
        let text = std::fs::read_to_string(config.dir().path().join(FILE)).unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    /// Kept jobs stay as they are, targeted jobs start empty and take what is added with its
    /// labels, other jobs and nothing else go.
    #[test]
    fn targets_are_set_at_run_time() {
        let config = ScrapeConfig::new(TEMPLATE, &["prometheus"], &["api"]).unwrap();
        let expected = |api_targets: &str| -> Value {
            serde_yaml::from_str(&format!(
                "global: {{scrape_interval: 5s}}\nrule_files: [rules/*.yml]\nscrape_configs:\n\
                 - {{job_name: prometheus, static_configs: [{{targets: [localhost:9090]}}]}}\n\
                 - {{job_name: api, static_configs: [{api_targets}]}}\n"
            ))
            .unwrap()
        };
        assert_eq!(written(&config), expected(""));
        let one = SocketAddr::from(([10, 88, 0, 1], 4000));
        let two = SocketAddr::from(([10, 88, 0, 1], 4001));
        config.add(&[("api", one)], &[("run", "a")]).unwrap();
        config.add(&[("api", two)], &[("run", "b")]).unwrap();
        assert_eq!(
            written(&config),
            expected(
                "{targets: ['10.88.0.1:4000'], labels: {run: a}}, \
                 {targets: ['10.88.0.1:4001'], labels: {run: b}}"
            )
        );
    }

    /// A job the template lacks, or one that takes no added targets, is an error that names it.
    #[test]
    fn unknown_jobs_are_errors() {
        let err = ScrapeConfig::new(TEMPLATE, &["prometheus"], &["worker"])
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("no job \"worker\""), "{err:#}");
        let config = ScrapeConfig::new(TEMPLATE, &["prometheus"], &["api"]).unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let err = config.add(&[("prometheus", address)], &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("job \"prometheus\" does not take"),
            "{err:#}"
        );
        let err = ScrapeConfig::new("global: {}", &[], &[]).err().unwrap();
        assert!(
            format!("{err:#}").contains("no scrape_configs list"),
            "{err:#}"
        );
    }
}
