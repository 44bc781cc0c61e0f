//! The Dockerfile's stages, as far as the preflight and `check` read them: each stage's name,
//! the program its ENTRYPOINT runs and the variables its ENV sets, with their lines.

/// One `FROM … [AS name]` stage.
#[derive(Debug, Default)]
pub struct Stage {
    pub name: Option<String>,
    /// The first word of its ENTRYPOINT, exec form (`["/usr/local/bin/x", …]`) or shell form.
    pub entrypoint: Option<String>,
    pub env: Vec<EnvSetting>,
}

/// One variable an `ENV` instruction sets.
#[derive(Debug, PartialEq, Eq)]
pub struct EnvSetting {
    /// 1-based.
    pub line: usize,
    pub name: String,
    pub value: String,
}

/// The stages of `dockerfile`, in order. Instructions before the first FROM (global ARGs) and
/// continuation lines are skipped: no rule reads them.
pub fn stages(dockerfile: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for (index, line) in dockerfile.lines().enumerate() {
        let line = line.trim();
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        if instruction.eq_ignore_ascii_case("FROM") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [.., as_, name] if as_.eq_ignore_ascii_case("AS") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push(Stage {
                name,
                ..Stage::default()
            });
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            continue;
        };
        if instruction.eq_ignore_ascii_case("ENTRYPOINT") {
            stage.entrypoint = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(argv) => argv.into_iter().next(),
                Err(_) => rest.split_whitespace().next().map(str::to_owned),
            };
        } else if instruction.eq_ignore_ascii_case("ENV") {
            let setting = |name: &str, value: &str| EnvSetting {
                line: index + 1,
                name: name.to_owned(),
                value: value.trim_matches(['"', '\'']).to_owned(),
            };
            match rest.split_once(char::is_whitespace) {
                // The legacy form `ENV NAME value` sets one variable to the rest of the line.
                Some((name, value)) if !name.contains('=') => {
                    stage.env.push(setting(name, value.trim()));
                }
                _ => stage.env.extend(
                    rest.split_whitespace()
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(name, value)| setting(name, value)),
                ),
            }
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_with_entrypoints_and_env() {
        let stages = stages(
            "ARG BASE=debian\nFROM ${BASE} AS runtime\nENV RUST_LOG=info\n\nFROM runtime AS api\n\
             ENV A=\"1\" B=2\nENV LEGACY some value\nENTRYPOINT [\"/usr/local/bin/ampel-api\"]\n\
             FROM runtime\nENTRYPOINT /bin/sh -c true\n",
        );
        let names: Vec<Option<&str>> = stages.iter().map(|s| s.name.as_deref()).collect();
        assert_eq!(names, [Some("runtime"), Some("api"), None]);
        assert_eq!(
            stages[1].entrypoint.as_deref(),
            Some("/usr/local/bin/ampel-api")
        );
        assert_eq!(stages[2].entrypoint.as_deref(), Some("/bin/sh"));
        let env: Vec<(usize, &str, &str)> = stages[1]
            .env
            .iter()
            .map(|s| (s.line, s.name.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            env,
            [(6, "A", "1"), (6, "B", "2"), (7, "LEGACY", "some value")]
        );
    }
}
