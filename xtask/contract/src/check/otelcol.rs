//! The collector's own check, when a collector binary is at hand: `validate` of
//! observability/otel-collector/config.yaml (components exist in the build, pipelines reference
//! what is defined, values parse). `AMPEL_OTELCOL` names the binary (CI's build: `.ci/images.sh`
//! writes it to `.ci/images.env`), else the first of `otelcol-contrib`, `otelcol` on PATH.

use std::ffi::OsString;
use std::path::Path;

use super::Problem;

pub const CONFIG: &str = "observability/otel-collector/config.yaml";
/// Upstream's release binaries, in the order looked for.
const ON_PATH: [&str; 2] = ["otelcol-contrib", "otelcol"];

/// The collector binary to validate with, if there is one.
fn binary() -> Option<OsString> {
    let runs = |program: &OsString| {
        duct::cmd(program, ["--version"])
            .stdout_null()
            .stderr_null()
            .run()
            .is_ok()
    };
    match std::env::var_os("AMPEL_OTELCOL") {
        Some(program) => Some(program),
        None => ON_PATH.into_iter().map(OsString::from).find(runs),
    }
}

/// What `validate` finds in the config under `root`, or `None` when no collector is at hand.
pub fn problems(root: &Path) -> Option<Vec<Problem>> {
    let program = binary()?;
    let config = root.join(CONFIG);
    let run = duct::cmd(
        &program,
        [OsString::from("validate"), "--config".into(), config.into()],
    )
    .stderr_to_stdout()
    .stdout_capture()
    .unchecked()
    .run();
    let output = match run {
        Ok(output) if output.status.success() => return Some(Vec::new()),
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(err) => format!(
            "could not run {}: {err} (is AMPEL_OTELCOL right?)",
            program.display()
        ),
    };
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    Some(vec![Problem::new(
        CONFIG,
        None,
        format!(
            "`{} validate` failed; fix what it names:\n    {}",
            Path::new(&program).display(),
            lines.join("\n    ")
        ),
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipeline naming an exporter the config does not define is a problem. Skipped (with a
    /// note) where no collector binary is at hand, except under `CI`, whose images.env names one.
    #[test]
    fn validate_failures_become_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let path = root.join(CONFIG);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let real = std::fs::read_to_string(xtask::util::project_root().join(CONFIG)).unwrap();
        std::fs::write(&path, &real).unwrap();
        let Some(found) = problems(root) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no collector binary (AMPEL_OTELCOL, otelcol-contrib, otelcol), and CI needs one: `source .ci/images.env`"
            );
            eprintln!("no collector binary; skipping");
            return;
        };
        assert!(found.is_empty(), "{found:#?}");
        let broken = real.replace(
            "exporters: [otlp_http/traces]",
            "exporters: [otlp_http/nowhere]",
        );
        assert_ne!(broken, real, "the fixture's pipeline moved");
        std::fs::write(&path, broken).unwrap();
        let problems = problems(root).unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].message.contains("nowhere"), "{problems:#?}");
    }
}
