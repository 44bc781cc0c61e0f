//! The Dockerfile's stages, as far as `check` and the preflight read them: each stage's name, the
//! program its ENTRYPOINT runs, the variables its ENV sets, the ports it EXPOSEs and where it
//! COPYs the dashboard's page, with their lines, and what it inherits from the stage it is built
//! FROM. A stage that runs a binary is the image compose and Fly run, so it is a deploy target of
//! its own, and theirs start from it.

use std::collections::BTreeMap;

use crate::binaries::{self, Deployment, Kind, Listed, Request};
use crate::problem::{Problem, Stated};
use xtask::web::FRONTEND;

/// One `FROM … [AS name]` stage.
#[derive(Debug, Default, Clone)]
pub struct Stage {
    pub name: Option<String>,
    /// The FROM line, 1-based.
    pub line: usize,
    /// The first word of its ENTRYPOINT, exec form (`["/usr/local/bin/x", …]`) or shell form.
    pub entrypoint: Option<Stated<String>>,
    pub env: BTreeMap<String, Stated<String>>,
    /// Its EXPOSE ports, as routes.
    pub expose: Vec<Stated<Request>>,
    /// Where its image holds the dashboard's page: the destination of the last COPY from the
    /// page's npm project ([`FRONTEND`]) or from a stage that copied from it (the page's build).
    pub page: Option<Stated<String>>,
    /// Whether it COPYs from [`FRONTEND`], so its files are the page's.
    pub from_frontend: bool,
}

/// The stages of `text` (the Dockerfile at `file`), in order. Instructions before the first FROM
/// (global ARGs) and continuation lines are skipped: no rule reads them.
pub fn stages(file: &str, text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let at = |value: &str| {
            Stated::new(
                value.trim_matches(['"', '\'']).to_owned(),
                file,
                Some(index + 1),
            )
        };
        let line = line.trim();
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        if instruction.eq_ignore_ascii_case("FROM") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let base = stages
                .iter()
                .find(|stage| stage.name.as_deref() == words.first().copied());
            stages.push(Stage {
                name: match words.as_slice() {
                    [.., as_, name] if as_.eq_ignore_ascii_case("AS") => Some((*name).to_owned()),
                    _ => None,
                },
                line: index + 1,
                ..base.cloned().unwrap_or_default()
            });
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ENTRYPOINT") {
            stage.entrypoint = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(argv) => argv.first().map(|program| at(program)),
                Err(_) => rest.split_whitespace().next().map(at),
            };
        } else if instruction.eq_ignore_ascii_case("EXPOSE") {
            let ports = rest
                .split_whitespace()
                .map(|port| port.trim_end_matches("/tcp").parse());
            let route = |port| Stated::new(Request::new(Some(port), None), file, Some(index + 1));
            stage.expose.extend(ports.flatten().map(route));
        } else if instruction.eq_ignore_ascii_case("COPY") {
            let Some((from, sources, destination)) = copy(rest) else {
                continue;
            };
            let from_frontend = match from {
                Some(from) => (stages.iter())
                    .any(|other| other.name.as_deref() == Some(from) && other.from_frontend),
                None => sources.iter().any(|source| in_frontend(source)),
            };
            let stage = stages.last_mut().expect("a COPY follows a FROM");
            if from_frontend {
                stage.page = Some(at(&destination));
            }
            stage.from_frontend |= from.is_none() && from_frontend;
        } else if instruction.eq_ignore_ascii_case("ENV") {
            match rest.split_once(char::is_whitespace) {
                // The legacy form `ENV NAME value` sets one variable to the rest of the line.
                Some((name, value)) if !name.contains('=') => {
                    stage.env.insert(name.to_owned(), at(value.trim()));
                }
                _ => stage.env.extend(
                    rest.split_whitespace()
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(name, value)| (name.to_owned(), at(value))),
                ),
            }
        }
    }
    stages
}

/// `[--from=stage] [--other flags] source… destination`, shell or exec form: the stage, the
/// sources and the destination.
fn copy(rest: &str) -> Option<(Option<&str>, Vec<String>, String)> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let flags = words.iter().take_while(|word| word.starts_with("--"));
    let from = flags.clone().find_map(|flag| flag.strip_prefix("--from="));
    let rest = words[flags.count()..].join(" ");
    let mut paths = match serde_json::from_str::<Vec<String>>(&rest) {
        Ok(paths) => paths,
        Err(_) => rest.split_whitespace().map(str::to_owned).collect(),
    };
    let destination = paths.pop()?;
    (!paths.is_empty()).then_some((from, paths, destination))
}

/// Whether a build-context path is inside the page's npm project.
fn in_frontend(source: &str) -> bool {
    let source = source.trim_start_matches("./");
    source
        .strip_prefix(FRONTEND)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Stage {
    /// The image as it runs, before compose or Fly add their own settings.
    pub fn deployment(&self, file: &str) -> Deployment {
        let name = self.name.clone().unwrap_or_default();
        Deployment {
            name: format!("stage {name}"),
            stage: Some(Stated::new(name, file, Some(self.line))),
            program: self.entrypoint.clone(),
            env: self.env.clone(),
            page: self.page.clone(),
            ..Deployment::default()
        }
    }
}

/// The stage a compose service or a Fly app builds (`target`, where it names it).
pub fn find<'a>(
    stages: &'a [Stage],
    file: &str,
    target: &Stated<String>,
) -> Result<&'a Stage, Problem> {
    let wanted = Some(target.value.as_str());
    let message = format!(
        "{file} has no stage `AS {}`; add it or change this build target",
        target.value
    );
    let stage = stages.iter().find(|stage| stage.name.as_deref() == wanted);
    stage.ok_or_else(|| target.problem(message))
}

/// Every stage whose ENTRYPOINT runs one of the binaries, held to it as it is, EXPOSE included.
pub fn problems(file: &str, text: &str) -> Vec<Problem> {
    let stages = stages(file, text);
    let binaries = stages.iter().filter_map(|stage| {
        let binary = binaries::running(&stage.entrypoint.as_ref()?.value)?;
        let mut deployment = stage.deployment(file);
        let section = format!(
            "stage {}'s EXPOSE",
            stage.name.as_deref().unwrap_or_default()
        );
        let section = Stated::new(section, file, Some(stage.line));
        deployment
            .lists
            .push(Listed::new(Kind::Route, section, stage.expose.clone()));
        Some(binary.problems(&deployment))
    });
    binaries.flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_inherit_and_read_entrypoints_env_and_expose() {
        let stages = stages(
            "Dockerfile",
            "ARG BASE=debian\nFROM ${BASE} AS runtime\nENV RUST_LOG=info\n\nFROM runtime AS api\n\
             ENV A=\"1\" B=2\nENV LEGACY some value\nEXPOSE 8080/tcp\nENTRYPOINT [\"/usr/local/bin/ampel-api\"]\n\
             FROM runtime\nENTRYPOINT /bin/sh -c true\n",
        );
        let names: Vec<(Option<&str>, usize)> =
            stages.iter().map(|s| (s.name.as_deref(), s.line)).collect();
        assert_eq!(names, [(Some("runtime"), 2), (Some("api"), 5), (None, 10)]);
        let program = |stage: &Stage| stage.entrypoint.clone().map(|e| (e.value, e.line));
        assert_eq!(
            program(&stages[1]),
            Some(("/usr/local/bin/ampel-api".into(), Some(9)))
        );
        assert_eq!(program(&stages[2]), Some(("/bin/sh".into(), Some(11))));
        let env: Vec<(&str, &str, Option<usize>)> = stages[1]
            .env
            .iter()
            .map(|(name, s)| (name.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            env,
            [
                ("A", "1", Some(6)),
                ("B", "2", Some(6)),
                ("LEGACY", "some value", Some(7)),
                ("RUST_LOG", "info", Some(3))
            ]
        );
        let route = Request::new(Some(8080), None);
        assert_eq!(
            stages[1].expose,
            [Stated::new(route, "Dockerfile", Some(8))]
        );
        assert!(stages[2].env.contains_key("RUST_LOG") && stages[2].expose.is_empty());
    }

    /// The page is what a COPY brings from frontend/, directly or from a stage that copied from
    /// it; other COPYs (a binary, the whole context) are not.
    #[test]
    fn stages_know_where_their_page_is() {
        let stages = stages(
            "Dockerfile",
            "FROM node AS web\nCOPY frontend/package.json ./\nRUN npm run build\n\
             FROM rust AS builder\nCOPY . .\n\
             FROM debian AS api\nCOPY --from=builder /out/ampel-api /usr/local/bin/\n\
             COPY --chown=1:1 --from=web /web/dist /srv/web\n\
             FROM api AS again\n\
             FROM debian AS prebuilt\nCOPY [\"./frontend/dist\", \"/srv/page\"]\n\
             FROM debian AS none\nCOPY --from=builder /src/frontend-x /srv/x\nCOPY frontendx /srv/y\n",
        );
        let pages: Vec<String> = (stages.iter())
            .map(|stage| {
                let name = stage.name.as_deref().unwrap_or_default();
                match &stage.page {
                    Some(page) => format!("{name}: {} at {:?}", page.value, page.line),
                    None => format!("{name}: none"),
                }
            })
            .collect();
        assert_eq!(
            pages,
            [
                "web: ./ at Some(2)",
                "builder: none",
                "api: /srv/web at Some(8)",
                "again: /srv/web at Some(8)",
                "prebuilt: /srv/page at Some(11)",
                "none: none",
            ]
        );
    }
}
