//! The dashboard's page (`frontend/`, React and Vite): built with npm into `frontend/dist/`,
//! which the api serves (`AMPEL_WEB_DIR`). For `obs-up` with prebuilt binaries and the browser
//! e2e.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::util;

/// The page's npm project, relative to the workspace root.
pub const FRONTEND: &str = "frontend";

/// Installs the page's dependencies when the lock file is newer than the install, builds it,
/// and returns the built folder.
pub fn build() -> anyhow::Result<PathBuf> {
    let dir = util::project_root().join(FRONTEND);
    let prefix = dir.display().to_string();
    let npm = |step: &str, args: &[&str]| {
        let mut argv = vec!["--prefix".to_owned(), prefix.clone()];
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        util::run(step, "npm", &argv, &[]).with_context(|| {
            format!("the page in {FRONTEND}/ did not build: is Node.js (20.19 or newer) with npm installed?")
        })
    };
    if stale_install(&dir) {
        npm("npm ci", &["ci", "--no-audit", "--no-fund"])?;
    }
    npm("the page's build", &["run", "build"])?;
    Ok(dir.join("dist"))
}

/// Whether `node_modules` is missing or older than `package-lock.json`.
fn stale_install(dir: &std::path::Path) -> bool {
    let modified = |path: PathBuf| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    match (
        modified(dir.join("node_modules/.package-lock.json")),
        modified(dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    }
}
