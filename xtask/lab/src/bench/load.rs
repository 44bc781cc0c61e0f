//! Load: wrk for throughput and latency, curl for an exact number of requests (callgrind).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use super::app::LOAD_CPU;

/// One route under load.
#[derive(Debug, Clone)]
pub struct Route {
    /// Short name for tables and file names (`trivial`, `postgres`).
    pub name: &'static str,
    pub method: &'static str,
    /// The path requested, e.g. `/api/repositories/42`.
    pub path: String,
    /// The route's template as the api names its span and metric label.
    pub template: &'static str,
    /// A JSON body, for POST.
    pub body: Option<&'static str>,
}

impl Route {
    /// `POST /api/vitals` (a web-vitals beacon): metered, no database or queue, a handler of a
    /// few thousand instructions, so telemetry's own cost stands out.
    pub fn trivial() -> Self {
        Self {
            name: "trivial",
            method: "POST",
            path: "/api/vitals".into(),
            template: "/api/vitals",
            body: Some(r#"{"name":"LCP","value":1234.5,"rating":"good"}"#),
        }
    }

    /// The server span's name: method and route template.
    pub fn span_name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Wrk {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Runs wrk (one thread, `connections` keep-alive connections) against `route` for `duration`,
/// pinned to [`LOAD_CPU`]. Fails on any non-2xx answer or socket error: a benchmark of error
/// pages would measure the wrong thing.
pub async fn wrk(
    base_url: &str,
    route: &Route,
    connections: u32,
    duration: Duration,
    dir: &Path,
) -> anyhow::Result<Wrk> {
    let mut command = tokio::process::Command::new("taskset");
    command.args([
        "-c",
        &LOAD_CPU.to_string(),
        "wrk",
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs().max(1)),
        "--latency",
    ]);
    if let Some(script) = script(route, dir)? {
        command.arg("-s").arg(script);
    }
    let url = format!("{base_url}{}", route.path);
    let output = command
        .arg(&url)
        .kill_on_drop(true)
        .output()
        .await
        .context("run wrk: is it installed (`apt-get install -y wrk`)?")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "wrk {url} failed ({}): {}{}",
        output.status,
        text.trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    parse_wrk(&text).with_context(|| format!("wrk {url}: unexpected output:\n{text}"))
}

/// wrk's `--latency` report: totals, the distribution and any errors.
fn parse_wrk(text: &str) -> anyhow::Result<Wrk> {
    let mut requests = None;
    let mut seconds = None;
    let mut p50 = None;
    let mut p99 = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => p50 = Some(micros(value)?),
            ["99%", value] => p99 = Some(micros(value)?),
            [count, "requests", "in", time, ..] => {
                requests = Some(count.parse::<u64>()?);
                seconds = Some(micros(time.trim_end_matches(','))? / 1e6);
            }
            ["Non-2xx", ..] | ["Socket", "errors:", ..] => {
                anyhow::bail!("{line}: the route answered errors; see the app's log")
            }
            _ => {}
        }
    }
    let (requests, seconds) = requests.zip(seconds).context("no request count")?;
    Ok(Wrk {
        requests,
        seconds,
        rps: requests as f64 / seconds,
        p50_us: p50.context("no 50% line")?,
        p99_us: p99.context("no 99% line")?,
    })
}

/// `215.00us`, `1.03ms`, `2.00s`, `1.50m` in microseconds.
fn micros(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("{value:?} has no unit"))?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("{value:?} is not a number"))?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        other => anyhow::bail!("unknown unit {other:?} in {value:?}"),
    };
    Ok(number * scale)
}

/// A wrk Lua script for routes with a body; `None` for plain GETs.
fn script(route: &Route, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Some(body) = route.body else {
        return Ok(None);
    };
    let path = dir.join(format!("{}.lua", route.name));
    let text = format!(
        "wrk.method = {method:?}\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        method = route.method,
    );
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(Some(path))
}

/// Sends exactly `count` requests to `route`, one after the other on one keep-alive connection,
/// with curl (pinned to [`LOAD_CPU`]); fails unless every answer is 2xx.
pub async fn curl(base_url: &str, route: &Route, count: u64, dir: &Path) -> anyhow::Result<()> {
    let paths = std::iter::repeat_n(route.path.as_str(), count as usize);
    curl_paths(base_url, route.name, route.method, route.body, paths, dir).await
}

/// Sends one `method` request per path, in order, as [`curl`] does.
pub async fn curl_paths<'a>(
    base_url: &str,
    name: &str,
    method: &str,
    body: Option<&str>,
    paths: impl Iterator<Item = &'a str>,
    dir: &Path,
) -> anyhow::Result<()> {
    // A config file rather than arguments: thousands of URLs would overflow the command line.
    let mut config = format!("silent\nrequest = {method:?}\nwrite-out = \"%{{http_code}}\\n\"\n");
    if let Some(body) = body {
        config.push_str("header = \"Content-Type: application/json\"\n");
        config.push_str(&format!("data = {body:?}\n"));
    }
    let mut count = 0_u64;
    for path in paths {
        config.push_str(&format!(
            "url = \"{base_url}{path}\"\noutput = \"/dev/null\"\n"
        ));
        count += 1;
    }
    let url = format!("{base_url} ({name})");
    let path = dir.join(format!("{name}.curl"));
    std::fs::write(&path, config).with_context(|| format!("write {}", path.display()))?;
    let output = tokio::process::Command::new("taskset")
        .args(["-c", &LOAD_CPU.to_string(), "curl", "--config"])
        .arg(&path)
        .kill_on_drop(true)
        .output()
        .await
        .context("run curl: is it installed (`apt-get install -y curl`)?")?;
    let codes = String::from_utf8_lossy(&output.stdout);
    let ok = codes.lines().filter(|code| code.starts_with('2')).count() as u64;
    anyhow::ensure!(
        output.status.success() && ok == count,
        "curl {url}: {ok} of {count} requests answered 2xx ({}); {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    /// wrk's report, as wrk 4.1 prints it, reads into totals and percentiles.
    #[test]
    fn wrk_output_parses() {
        let text = "Running 3s test @ http://127.0.0.1:8080/version
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   315.12us   80.11us   2.01ms   90.00%
    Req/Sec    50.12k     1.20k   52.00k    70.00%
  Latency Distribution
     50%  301.00us
     75%  330.00us
     90%  380.00us
     99%    1.03ms
  150360 requests in 3.00s, 29.07MB read
Requests/sec:  50120.00
Transfer/sec:      9.69MB
";
        let wrk = super::parse_wrk(text).unwrap();
        assert_eq!(wrk.requests, 150_360);
        assert!((wrk.seconds - 3.0).abs() < 1e-9);
        assert!((wrk.p50_us - 301.0).abs() < 1e-9);
        assert!((wrk.p99_us - 1030.0).abs() < 1e-9);
        assert!(
            super::parse_wrk(
                &text.replace("Requests/sec", "Non-2xx or 3xx responses: 3\nRequests/sec")
            )
            .is_err()
        );
    }
}
