//! Rules on the compose files themselves: they parse, publish on loopback only, mount no engine
//! socket, mount files that exist, name images `${AMPEL_<NAME>_IMAGE:-…}`, and every service has
//! a readiness check (a healthcheck, or `x-ampel: ready-from-host:`).

use super::{Problem, Sources};
use xtask::compose::{self, ComposeFile};

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
        check_file(file, text, &parsed, sources, problems);
    }
}

fn check_file(
    file: &str,
    text: &str,
    parsed: &ComposeFile,
    sources: &Sources,
    problems: &mut Vec<Problem>,
) {
    for (name, service) in &parsed.services {
        let at = |needle: &str| super::line_of(text, needle);
        // The newline anchors the match to a service key; the key is on the line after it.
        let service_line = at(&format!("\n  {name}:")).map(|line| line + 1);
        for spec in &service.ports {
            let parts: Vec<&str> = spec.split(':').collect();
            if parts.len() != 3 || parts[0] != "127.0.0.1" {
                problems.push(Problem::new(
                    file,
                    at(spec),
                    format!(
                        "service {name} publishes {spec:?} beyond this machine; write \"127.0.0.1:HOST:CONTAINER\""
                    ),
                ));
            } else if let Err(err) = service.published_ports() {
                problems.push(Problem::new(
                    file,
                    at(spec),
                    format!("service {name}: {err:#}"),
                ));
            }
        }
        for volume in &service.volumes {
            if volume.contains("docker.sock") || volume.contains("podman.sock") {
                problems.push(Problem::new(
                    file,
                    at(volume),
                    format!(
                        "service {name} mounts the container engine's socket ({volume}), which is root on the host; remove the mount"
                    ),
                ));
            }
            if let Some(source) = repo_path(volume)
                && !sources.exists(&source)
            {
                problems.push(Problem::new(
                    file,
                    at(volume),
                    format!(
                        "service {name} mounts {source}, which does not exist; create it or fix the path (relative to compose/)"
                    ),
                ));
            }
        }
        if let Some(image) = &service.image {
            let variable = format!("AMPEL_{}_IMAGE", name.to_uppercase().replace('-', "_"));
            if !image.starts_with(&format!("${{{variable}:-")) {
                problems.push(Problem::new(
                    file,
                    at(image),
                    format!(
                        "service {name}: image {image:?} cannot be overridden; write ${{{variable}:-<upstream image:tag>}}"
                    ),
                ));
            }
        }
        // A service only overridden here (no image, no build) is completed by another file.
        let defines = service.image.is_some() || service.build.is_some();
        if defines && let Err(err) = service.readiness(name) {
            problems.push(Problem::new(file, service_line, format!("{err:#}")));
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

    fn problems_of(compose_yaml: &str, extra: &[(&str, &str)]) -> Vec<String> {
        let mut files = vec![
            ("compose/compose.yaml", compose_yaml),
            ("compose/compose.peers.yaml", "services: {}\n"),
        ];
        files.extend_from_slice(extra);
        let mut problems = Vec::new();
        check(&Sources::from_files(&files), &mut problems);
        problems.iter().map(ToString::to_string).collect()
    }

    const GOOD: &str = "services:
  redis:
    image: ${AMPEL_REDIS_IMAGE:-redis:8}
    ports:
      - \"127.0.0.1:6379:6379\"
    volumes:
      - ../observability/redis.conf:/etc/redis.conf:ro
      - redis-data:/data
    healthcheck:
      test: [\"CMD\", \"redis-cli\", \"ping\"]
";

    /// The fixture itself is clean, so each test below shows one rule.
    #[test]
    fn good_compose_has_no_problems() {
        let problems = problems_of(GOOD, &[("observability/redis.conf", "")]);
        assert_eq!(problems, Vec::<String>::new());
    }

    /// YAML that is not a compose file is reported with its line.
    #[test]
    fn unparsable_compose() {
        let problems = problems_of("services:\n  redis:\n    ports: 5\n", &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("compose/compose.yaml:3: does not parse"),
            "{problems:?}"
        );
    }

    /// A port published on every interface.
    #[test]
    fn port_beyond_loopback() {
        let yaml = GOOD.replace("127.0.0.1:6379:6379", "6379:6379");
        let problems = problems_of(&yaml, &[("observability/redis.conf", "")]);
        assert_eq!(
            problems,
            [
                "compose/compose.yaml:5: service redis publishes \"6379:6379\" beyond this machine; write \"127.0.0.1:HOST:CONTAINER\""
            ]
        );
    }

    /// The engine's socket mounted into a container.
    #[test]
    fn engine_socket_mount() {
        let yaml = GOOD.replace(
            "redis-data:/data",
            "/var/run/docker.sock:/var/run/docker.sock",
        );
        let problems = problems_of(&yaml, &[("observability/redis.conf", "")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("mounts the container engine's socket"));
    }

    /// A bind mount of a file that is not in the repository.
    #[test]
    fn missing_bind_mount_source() {
        let problems = problems_of(GOOD, &[]);
        assert_eq!(
            problems,
            [
                "compose/compose.yaml:7: service redis mounts observability/redis.conf, which does not exist; create it or fix the path (relative to compose/)"
            ]
        );
    }

    /// An image that no AMPEL_*_IMAGE variable can override.
    #[test]
    fn image_without_override() {
        let yaml = GOOD.replace("${AMPEL_REDIS_IMAGE:-redis:8}", "redis:8");
        let problems = problems_of(&yaml, &[("observability/redis.conf", "")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("${AMPEL_REDIS_IMAGE:-<upstream image:tag>}"));
    }

    /// A service nothing can tell the readiness of.
    #[test]
    fn service_without_readiness() {
        let yaml =
            format!("{GOOD}  memcached:\n    image: ${{AMPEL_MEMCACHED_IMAGE:-memcached:1}}\n");
        let problems = problems_of(&yaml, &[("observability/redis.conf", "")]);
        assert_eq!(
            problems,
            [
                "compose/compose.yaml:11: service memcached has no healthcheck and no `x-ampel: ready-from-host:` path, so nothing can tell when it is ready: add one of them in compose/"
            ]
        );
    }

    /// A missing compose file.
    #[test]
    fn missing_compose_file() {
        let mut problems = Vec::new();
        check(&Sources::from_files(&[]), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
