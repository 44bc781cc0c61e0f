//! Secrets on their way to flyctl: the `flyctl secrets import` line that carries one, the env
//! file they may be read from, and the [`Mask`] that keeps their values out of what flyctl
//! prints.
//!
//! Values belong on flyctl's stdin and nowhere else: not in argv (other users can read it in
//! /proc), not in a plan, not in error messages.

use std::path::Path;

use anyhow::bail;

/// flyctl reads stdin with a line scanner whose buffer is 64 KiB.
pub const MAX_VALUE_BYTES: usize = 60 * 1024;

/// The secret values to hide in anything shown. No `Debug`, so a value cannot slip into a log
/// line.
#[derive(Default)]
pub struct Mask {
    /// Longest first, so a value that contains another is masked whole.
    values: Vec<String>,
}

impl Mask {
    /// A mask of `values`.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        Self { values }
    }

    /// `text` with every secret value replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        self.values
            .iter()
            .fold(text.to_owned(), |text, value| text.replace(value, "***"))
    }
}

/// One line of `flyctl secrets import` input that its parser reads back as exactly `value`;
/// an error, naming only the secret, for a value it would change.
pub fn import_line(name: &str, value: &str) -> anyhow::Result<String> {
    let set_by_hand =
        format!("set {name} with `flyctl secrets set` by hand, then run the deploy without it");
    if value.contains(['\n', '\r']) {
        bail!(
            "{name} spans several lines, which `flyctl secrets import` would split: {set_by_hand}"
        );
    }
    if value.len() > MAX_VALUE_BYTES {
        bail!("{name} is longer than flyctl's 64 KiB line limit: {set_by_hand}");
    }
    // flyctl drops everything from the first `#` when the text before it holds an even number of
    // `"`. The opening `"""` adds three, so an odd count inside the value would truncate it.
    if let Some(hash) = value.find('#')
        && value[..hash].matches('"').count() % 2 == 1
    {
        bail!(
            "{name} has a `#` after an odd number of `\"`, which flyctl would cut off: {set_by_hand}"
        );
    }
    Ok(format!("{name}=\"\"\"{value}\"\"\""))
}

/// The `NAME=VALUE` lines of `text`, the env file at `path`; blank lines, `#` comments and an
/// `export ` prefix are skipped, and one pair of matching quotes around a value is removed.
/// Errors name the line, never its text.
pub fn parse_env_file(path: &Path, text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            bail!(
                "{}:{}: not a NAME=VALUE line; fix or remove it",
                path.display(),
                index + 1
            );
        };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|quote| {
                value
                    .strip_prefix(*quote)
                    .and_then(|rest| rest.strip_suffix(*quote))
            })
            .unwrap_or(value);
        pairs.push((name.trim().to_owned(), unquoted.to_owned()));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDER_TOKEN_VAR: &str = "PROVIDER_TOKEN";

    /// Values that flyctl's import parser would change are refused, naming only the secret.
    #[test]
    fn values_flyctl_would_mangle_are_refused() {
        for value in ["two\nlines", "a\"b#c"] {
            let err = import_line(PROVIDER_TOKEN_VAR, value)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{PROVIDER_TOKEN_VAR} ")), "{err}");
            assert!(!err.contains(value), "{err}");
        }
        assert_eq!(
            import_line("DATABASE_URL", "postgres://u:p#1@h/db").unwrap(),
            "DATABASE_URL=\"\"\"postgres://u:p#1@h/db\"\"\""
        );
    }

    /// Secret values never survive redaction, even when one contains another.
    #[test]
    fn redact_masks_every_value() {
        let mask = Mask::new(["secret", "redis://secret"].map(str::to_owned));
        assert_eq!(
            mask.redact("got redis://secret and secret"),
            "got *** and ***"
        );
    }

    /// The env file's syntax: comments, `export`, quotes; a bad line is named by number only.
    #[test]
    fn env_file_is_parsed() {
        let path = Path::new("prod.env");
        let text = "# prod\nexport REDIS_URL='redis://r'\n\nDATABASE_URL=\"postgres://p\"\n";
        assert_eq!(
            parse_env_file(path, text).unwrap(),
            [
                ("REDIS_URL".to_owned(), "redis://r".to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://p".to_owned())
            ]
        );
        let err = parse_env_file(path, "hunter2\n").unwrap_err().to_string();
        assert!(
            err.ends_with("prod.env:1: not a NAME=VALUE line; fix or remove it"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }
}
