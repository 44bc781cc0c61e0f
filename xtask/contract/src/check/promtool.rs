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
    let installed = duct::cmd("promtool", ["--version"])
        .stdout_null()
        .stderr_null()
        .run()
        .is_ok();
    if !installed {
        return None;
    }
    let mut problems = Vec::new();
    let runs = [
        (
            CONFIG,
            vec!["check".to_owned(), "config".into(), CONFIG.into()],
        ),
        (
            RULES,
            ["check", "rules"]
                .map(Into::into)
                .into_iter()
                .chain(yaml_files(root, RULES))
                .collect(),
        ),
        (
            TESTS,
            ["test", "rules"]
                .map(Into::into)
                .into_iter()
                .chain(yaml_files(root, TESTS))
                .collect(),
        ),
    ];
    for (file, args) in runs {
        if args.len() == 2 {
            continue;
        }
        let output = duct::cmd("promtool", &args)
            .dir(root)
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run();
        let (ok, text) = match output {
            Ok(output) => (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            ),
            Err(err) => (false, err.to_string()),
        };
        if !ok {
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .collect();
            problems.push(Problem::new(
                file,
                None,
                format!(
                    "`promtool {}` failed; fix what it names:\n    {}",
                    args.join(" "),
                    lines.join("\n    ")
                ),
            ));
        }
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

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A rule that promtool rejects, and a unit test that fails, each become a problem. Skipped
    /// (with a note) where promtool is not installed.
    #[test]
    fn promtool_failures_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, CONFIG, "rule_files:\n  - rules/*.yml\n");
        write(
            root,
            &format!("{RULES}/broken.yml"),
            "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: sum(up\n",
        );
        write(
            root,
            &format!("{TESTS}/good.test.yml"),
            "rule_files: []\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=\"a\"}'\n        values: '1'\n    promql_expr_test:\n      - expr: up\n        eval_time: 0m\n        exp_samples:\n          - labels: 'up{job=\"a\"}'\n            value: 2\n",
        );
        let Some(problems) = problems(root) else {
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
