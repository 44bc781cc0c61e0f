//! Small helpers shared by the commands: paths and a thin process runner over duct.

use std::path::PathBuf;

use anyhow::Context as _;

/// The workspace root (the parent of `xtask/`), whatever the current directory.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_owned()
}

/// The cargo that runs us (`$CARGO`), so toolchain overrides carry through.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `program args…` with inherited stdio after echoing it; fails with the step's name.
///
/// The child does not inherit the variables cargo set for xtask itself: `cargo xtask` is `cargo
/// run`, which gives us xtask's `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, … and some build scripts
/// (ring's) declare `rerun-if-env-changed` on exactly those, so an inner cargo that inherits them
/// rebuilds half the tree, and the next plain `cargo build` rebuilds it back (~50 s each way).
pub fn run(
    step: &str,
    program: &str,
    args: &[String],
    env: &[(&str, String)],
) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let mut expression = duct::cmd(program, args);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&&*key)
        {
            expression = expression.env_remove(&*key);
        }
    }
    for (key, value) in env {
        expression = expression.env(key, value);
    }
    expression.run().with_context(|| format!("{step} failed"))?;
    Ok(())
}

/// Serves `app` on a free 127.0.0.1 port in the background: local stand-ins (the fake provider,
/// the bench's OTLP sink). Returns the address and the task; abort the task to stop it.
pub async fn serve_on_loopback(
    what: &str,
    app: axum::Router,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .with_context(|| format!("bind {what}"))?;
    let address = listener.local_addr()?;
    let what = what.to_owned();
    let server = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("{what} stopped: {err}");
        }
    });
    Ok((address, server))
}
