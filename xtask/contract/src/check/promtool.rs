//! Prometheus' own checks, when `promtool` is on PATH (Debian's `prometheus` package has it):
//! `check config`, `check rules` and `test rules` over observability/prometheus/.
//!
//! The one part of `check` that runs a process; the rest only reads files.

use std::path::Path;

use super::Problem;

const CONFIG: &str = "observability/prometheus/prometheus.yml";
const RULES: &str = "observability/prometheus/rules";
const TESTS: &str = "observability/prometheus/tests";

/// Problems promtool finds under `root`, or `None` when promtool is not installed.
pub fn problems(root: &Path) -> Option<Vec<Problem>> {
    let version = duct::cmd!("promtool", "--version");
    version.stdout_null().stderr_null().run().ok()?;
    let runs = [
        (CONFIG, ["check", "config"], vec![CONFIG.to_owned()]),
        (RULES, ["check", "rules"], yaml_files(root, RULES)),
        (TESTS, ["test", "rules"], yaml_files(root, TESTS)),
    ];
    let mut problems = Vec::new();
    for (file, command, files) in runs.into_iter().filter(|(_, _, files)| !files.is_empty()) {
        let args: Vec<&str> = command
            .into_iter()
            .chain(files.iter().map(String::as_str))
            .collect();
        let run = duct::cmd("promtool", &args).dir(root);
        let command = format!("promtool {}", args.join(" "));
        problems.extend(super::tool_problem(file, &command, run));
    }
    Some(problems)
}

/// `folder/*.yml` (and `.yaml`) under `root`, sorted, relative to `root`.
fn yaml_files(root: &Path, folder: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root.join(folder))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
        .map(|name| format!("{folder}/{name}"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule that promtool rejects, and a unit test that fails, each become a problem. Skipped
    /// (with a note) where promtool is not installed, except under `CI`, which installs it.
    #[test]
    fn promtool_failures_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let files = [
            (CONFIG.to_owned(), "rule_files:\n  - rules/*.yml\n"),
            (
                format!("{RULES}/broken.yml"),
                "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: sum(up\n",
            ),
            (
                format!("{TESTS}/good.test.yml"),
                "rule_files: []\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=\"a\"}'\n        values: '1'\n    promql_expr_test:\n      - expr: up\n        eval_time: 0m\n        exp_samples:\n          - labels: 'up{job=\"a\"}'\n            value: 2\n",
            ),
        ];
        for (file, text) in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let Some(problems) = problems(root) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not on PATH, and CI needs it (Debian: apt-get install prometheus)"
            );
            eprintln!("promtool is not on PATH; skipping");
            return;
        };
        let files: Vec<&str> = problems.iter().map(|p| p.file.as_str()).collect();
        // The config names the broken rules file, so `check config` fails too.
        assert_eq!(files, [CONFIG, RULES, TESTS], "{problems:#?}");
        assert!(
            problems[1].message.contains("promtool check rules"),
            "{problems:#?}"
        );
    }
}
