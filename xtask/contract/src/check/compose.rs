//! Rules on the compose files themselves: they parse, publish on loopback only, mount no engine
//! socket, mount files that exist, name images `${AMPEL_<NAME>_IMAGE:-…}`, and every service has
//! a readiness check (a healthcheck, or `x-ampel: ready-from-host:`).

use super::{Problem, Sources};
use xtask::compose::{self, AmpelService as _, ComposeFile};

/// Both compose files parsed and laid over each other (what `-f compose.yaml -f
/// compose.peers.yaml` sees), or `None` when one does not parse (reported by [`check`]).
pub fn model(sources: &Sources) -> Option<ComposeFile> {
    let mut merged = ComposeFile::default();
    for file in [compose::MAIN, compose::PEERS] {
        merged.merge(ComposeFile::parse(sources.get(file)?).ok()?);
    }
    Some(merged)
}

pub fn check(sources: &Sources, problems: &mut Vec<Problem>) {
    for file in [compose::MAIN, compose::PEERS] {
        if sources.get(file).is_none() {
            problems.push(Problem::new(
                file,
                None,
                "missing; obs-up, e2e and check read it: restore it from git",
            ));
        }
    }
    for (file, text) in sources.in_folder("compose", &[".yaml", ".yml"]) {
        let parsed = match ComposeFile::parse(text) {
            Ok(parsed) => parsed,
            Err(err) => {
                let line = err
                    .downcast_ref::<serde_yaml::Error>()
                    .and_then(serde_yaml::Error::location)
                    .map(|location| location.line());
                problems.push(Problem::new(
                    file,
                    line,
                    format!("does not parse as a compose file ({err:#}); fix the YAML"),
                ));
                continue;
            }
        };
        for (name, service) in &parsed.services {
            let at = |needle: &str| super::line_of(text, needle);
            // The newline anchors the match to a service key; the key is on the line after it.
            let service_line = at(&format!("\n  {name}:")).map(|line| line + 1);
            let mut report = |line, message| problems.push(Problem::new(file, line, message));
            // The model reads each port as `127.0.0.1:HOST:CONTAINER` and says why one is not.
            if let Err(err) = service.published_ports() {
                report(service_line, format!("service {name}: {err:#}"));
            }
            for volume in &service.volumes {
                if volume.contains("docker.sock") || volume.contains("podman.sock") {
                    report(
                        at(volume),
                        format!(
                            "service {name} mounts the container engine's socket ({volume}), which is root on the host; remove the mount"
                        ),
                    );
                }
                if let Some(source) = repo_path(volume)
                    && !sources.exists(&source)
                {
                    report(
                        at(volume),
                        format!(
                            "service {name} mounts {source}, which does not exist; create it or fix the path (relative to compose/)"
                        ),
                    );
                }
            }
            if let Some(image) = &service.image {
                let variable = format!("AMPEL_{}_IMAGE", name.to_uppercase().replace('-', "_"));
                if !image.starts_with(&format!("${{{variable}:-")) {
                    report(
                        at(image),
                        format!(
                            "service {name}: image {image:?} cannot be overridden; write ${{{variable}:-<upstream image:tag>}}"
                        ),
                    );
                }
            }
            // A service only overridden here (no image, no build) is completed by another file.
            let defines = service.image.is_some() || service.build.is_some();
            if defines && let Err(err) = service.readiness(name) {
                report(service_line, format!("{err:#}"));
            }
        }
    }
}

/// A bind mount's source as a path from the workspace root (`../observability/x` from compose/
/// is `observability/x`); `None` for named volumes and absolute paths.
pub fn repo_path(volume: &str) -> Option<String> {
    let source = volume.split(':').next()?;
    if let Some(rest) = source.strip_prefix("../") {
        Some(rest.to_owned())
    } else {
        source
            .strip_prefix("./")
            .map(|rest| format!("compose/{rest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: [(&str, &str); 3] = [
        (
            compose::MAIN,
            "services:
  redis:
    image: ${AMPEL_REDIS_IMAGE:-redis:8}
    ports:
      - \"127.0.0.1:6379:6379\"
    volumes:
      - ../observability/redis.conf:/etc/redis.conf:ro
      - redis-data:/data
    healthcheck:
      test: [\"CMD\", \"redis-cli\", \"ping\"]
",
        ),
        (compose::PEERS, "services: {}\n"),
        ("observability/redis.conf", ""),
    ];

    /// Each edit of the clean fixture makes one problem, which says what to change.
    #[test]
    fn each_rule_fires_on_its_break() {
        let memcached = "ping\"]\n  memcached:\n    image: ${AMPEL_MEMCACHED_IMAGE:-memcached:1}\n";
        let edits = [
            (compose::MAIN, "- \"127.0.0.1:6379:6379\"", "5"),
            (compose::MAIN, "127.0.0.1:6379:6379", "6379:6379"),
            (
                compose::MAIN,
                "redis-data:/data",
                "/var/run/docker.sock:/run/docker.sock",
            ),
            (
                compose::MAIN,
                "../observability/redis.conf",
                "../observability/redis.cnf",
            ),
            (compose::MAIN, "${AMPEL_REDIS_IMAGE:-redis:8}", "redis:8"),
            (compose::MAIN, "ping\"]\n", memcached),
        ];
        let found = Sources::found_after_edits(&FIXTURE, &edits, check);
        assert_eq!(
            found,
            [
                "compose/compose.yaml:5: does not parse as a compose file (services.redis.ports: invalid type: integer `5`, expected a sequence at line 5 column 7); fix the YAML",
                "compose/compose.yaml:2: service redis: port \"6379:6379\" must be \"127.0.0.1:HOST:CONTAINER\" (never published on every interface)",
                "compose/compose.yaml:8: service redis mounts the container engine's socket (/var/run/docker.sock:/run/docker.sock), which is root on the host; remove the mount",
                "compose/compose.yaml:7: service redis mounts observability/redis.cnf, which does not exist; create it or fix the path (relative to compose/)",
                "compose/compose.yaml:3: service redis: image \"redis:8\" cannot be overridden; write ${AMPEL_REDIS_IMAGE:-<upstream image:tag>}",
                "compose/compose.yaml:11: service memcached has no healthcheck and no `x-ampel: ready-from-host:` path, so nothing can tell when it is ready: add one of them in compose/",
            ]
        );
        let mut found = Vec::new();
        check(&Sources::from_files(&FIXTURE[1..]), &mut found);
        let found: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            ["compose/compose.yaml: missing; obs-up, e2e and check read it: restore it from git"]
        );
    }
}
