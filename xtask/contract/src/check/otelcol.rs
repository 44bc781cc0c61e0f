//! The collector's own check, when a collector binary is at hand: `validate` of
//! observability/otel-collector/config.yaml, alone and with Fly's overlay merged over it as the
//! Fly image runs them (components exist in the build, pipelines reference what is defined,
//! values parse). `AMPEL_OTELCOL` names the binary (CI's build: `.ci/images.sh`
//! writes it to `.ci/images.env`), else the first of `otelcol-contrib`, `otelcol` on PATH.

use std::ffi::OsString;
use std::path::Path;

use super::Problem;

pub const CONFIG: &str = "observability/otel-collector/config.yaml";
const FLY_OVERLAY: &str = "fly/collector.yaml";
/// The secrets the overlay reads, for `validate` only: it fails on a variable that is unset.
const FLY_SECRETS: [&str; 2] = [
    "OTELCOL_EXPORT_AUTHORIZATION",
    "OTELCOL_METRICS_AUTHORIZATION",
];
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

/// What `validate` finds in the configs under `root`, or `None` when no collector is at hand.
pub fn problems(root: &Path) -> Option<Vec<Problem>> {
    let program = binary()?;
    let mut runs = vec![(CONFIG, vec![CONFIG])];
    if root.join(FLY_OVERLAY).exists() {
        runs.push((FLY_OVERLAY, vec![CONFIG, FLY_OVERLAY]));
    }
    let mut problems = Vec::new();
    for (file, configs) in runs {
        let mut args: Vec<OsString> = vec!["validate".into()];
        for config in &configs {
            args.extend(["--config".into(), root.join(config).into()]);
        }
        let mut run = duct::cmd(&program, &args);
        for secret in FLY_SECRETS {
            run = run.env(secret, "placeholder");
        }
        let command = format!(
            "{} validate --config {}",
            Path::new(&program).display(),
            configs.join(" --config ")
        );
        problems.extend(super::tool_problem(file, &command, run));
    }
    Some(problems)
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
        let broken = problems(root).unwrap();
        assert_eq!(broken.len(), 1, "{broken:#?}");
        assert!(broken[0].message.contains("nowhere"), "{broken:#?}");
        // The overlay is validated merged over the shared config.
        std::fs::write(&path, &real).unwrap();
        let overlay = root.join(FLY_OVERLAY);
        std::fs::create_dir_all(overlay.parent().unwrap()).unwrap();
        std::fs::write(
            &overlay,
            "exporters:\n  otlp_http/traces:\n    timeout: soon\n",
        )
        .unwrap();
        let broken = problems(root).unwrap();
        assert_eq!(broken.len(), 1, "{broken:#?}");
        assert_eq!(broken[0].file, FLY_OVERLAY, "{broken:#?}");
    }
}
