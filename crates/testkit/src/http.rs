//! What every client does with an answer: a 404 is "nothing stored under that id yet", any
//! other failure names the request and quotes the body.

use anyhow::Context as _;

/// Sends `request` and returns the body of a successful answer; `None` for a 404; otherwise an
/// error naming `what` with an excerpt of the body.
pub(crate) async fn fetch(
    request: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<Option<String>> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = response
        .text()
        .await
        .with_context(|| format!("{what}: read the body"))?;
    anyhow::ensure!(status.is_success(), "{what}: {status}: {}", excerpt(&body));
    Ok(Some(body))
}

/// A short, single-line excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    /// Excerpts are one line and cut at 300 characters.
    #[test]
    fn excerpts_are_short_and_flat() {
        assert_eq!(super::excerpt("a\n  b\tc"), "a b c");
        let long = "x".repeat(400);
        let cut = super::excerpt(&long);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
    }
}
