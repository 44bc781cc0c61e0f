//! Several containers under names (a compose file's services, say), started at once and
//! removed together. Configuration values that refer to them as `//name:port` or `@name:port`
//! (a URL, a DSN) are rewritten to the addresses the host reaches them at. Started with
//! [`Group::start_on_network`], the members also reach each other under those names, across
//! restarts.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use anyhow::Context as _;

use super::{ContainerSpec, Running, create_network, engine, start};

/// Started, ready containers by name.
pub struct Group {
    members: Vec<(String, Running)>,
    /// The user-defined network of [`Group::start_on_network`], removed with the group.
    network: Option<String>,
}

impl Group {
    /// Starts every `(name, spec)` at once and waits until each is ready, printing progress to
    /// stderr. When one fails, the others are removed again, and the error names each that
    /// failed with what it saw.
    pub async fn start(
        specs: impl IntoIterator<Item = (impl Into<String>, ContainerSpec)>,
    ) -> anyhow::Result<Self> {
        Self::start_with(specs, None).await
    }

    /// Like [`Group::start`], and every member also joins a user-defined network of the
    /// group's own under its name, so members reach each other as `name:port` (compose's own
    /// URLs, `http://jaeger:4318`) even after one restarted with a new address. The network
    /// goes with [`Group::stop`]; a group only dropped (a panicking test) leaves it behind.
    pub async fn start_on_network(
        specs: impl IntoIterator<Item = (impl Into<String>, ContainerSpec)>,
    ) -> anyhow::Result<Self> {
        static NETWORKS: AtomicU32 = AtomicU32::new(0);
        let network = format!(
            "otel-testkit-{}-{}",
            std::process::id(),
            NETWORKS.fetch_add(1, Ordering::Relaxed)
        );
        create_network(&network).await?;
        Self::start_with(specs, Some(network)).await
    }

    async fn start_with(
        specs: impl IntoIterator<Item = (impl Into<String>, ContainerSpec)>,
        network: Option<String>,
    ) -> anyhow::Result<Self> {
        let specs: Vec<(String, ContainerSpec)> = specs
            .into_iter()
            .map(|(name, spec)| (name.into(), spec))
            .collect();
        if specs.is_empty() {
            // Removes the network again, if there is one.
            Group {
                members: Vec::new(),
                network,
            }
            .stop()
            .await;
            anyhow::bail!("a group needs at least one container");
        }
        let started = futures::future::join_all(
            specs
                .into_iter()
                .map(|(name, spec)| start_member(name, spec, network.as_deref())),
        )
        .await;
        let mut group = Group {
            members: Vec::new(),
            network,
        };
        let mut errors = Vec::new();
        for result in started {
            match result {
                Ok(member) => group.members.push(member),
                Err(err) => errors.push(format!("{err:#}")),
            }
        }
        if !errors.is_empty() {
            group.stop().await;
            anyhow::bail!("{}", errors.join("\n"));
        }
        Ok(group)
    }

    /// Starts one more member, on the group's network if it has one, and waits until it is
    /// ready: for a container whose settings need the others' addresses (the host's gateway).
    pub async fn add(
        &mut self,
        name: impl Into<String>,
        spec: ContainerSpec,
    ) -> anyhow::Result<()> {
        let name = name.into();
        anyhow::ensure!(
            self.get(&name).is_none(),
            "the group already has a member {name:?}"
        );
        let member = start_member(name, spec, self.network.as_deref()).await?;
        self.members.push(member);
        Ok(())
    }

    /// The container started as `name`.
    pub fn get(&self, name: &str) -> Option<&Running> {
        self.members
            .iter()
            .find_map(|(member, running)| (member == name).then_some(running))
    }

    /// The container started as `name`, to halt, kill or resume it.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Running> {
        self.members
            .iter_mut()
            .find_map(|(member, running)| (member == name).then_some(running))
    }

    /// The members' own network (see [`Group::start_on_network`]).
    pub fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }

    /// `http://127.0.0.1:<host port>` of `port` of `name`; an error when `name` is not in the
    /// group or does not publish `port`.
    pub fn url(&self, name: &str, port: u16) -> anyhow::Result<String> {
        self.get(name)
            .filter(|running| running.ports.contains_key(&port))
            .map(|running| running.url(port))
            .with_context(|| format!("no container {name:?} publishing port {port} in the group"))
    }

    /// Where containers reach the host; every container of a group reports the same bridge
    /// gateway (see [`Running::gateway`]).
    pub fn gateway(&self) -> IpAddr {
        self.members[0].1.gateway()
    }

    /// `value` with every `//name:port` and `@name:port` of a published port of the group
    /// replaced by its host address (`//127.0.0.1:49153`), so a URL written for the containers'
    /// network works from the host.
    pub fn rewrite(&self, value: &str) -> String {
        let published = self.members.iter().flat_map(|(name, running)| {
            running
                .ports
                .iter()
                .map(move |(port, address)| (name.as_str(), *port, *address))
        });
        rewrite(value, published)
    }

    /// `value` with every `//name:PORT` and `@name:PORT` of a member replaced by its address on
    /// the bridge network (`//10.88.0.5:PORT`), so a URL written for compose's network works from
    /// another container (the engine's default network resolves no names).
    pub fn rewrite_for_containers(&self, value: &str, ports: &[u16]) -> String {
        let inside = self.members.iter().flat_map(|(name, running)| {
            ports
                .iter()
                .map(move |port| (name.as_str(), *port, SocketAddr::new(running.ip(), *port)))
        });
        rewrite(value, inside)
    }

    /// Removes every container, then the group's network, and waits; what cannot be removed
    /// is a warning.
    pub async fn stop(self) {
        futures::future::join_all(self.members.into_iter().map(|(name, running)| async move {
            if let Err(err) = running.stop().await {
                eprintln!("warning: could not remove the {name} container: {err:#}");
            }
        }))
        .await;
        if let Some(network) = self.network {
            let removed = match engine().await {
                Ok(docker) => docker.remove_network(&network).await.map_err(Into::into),
                Err(err) => Err(err),
            };
            if let Err(err) = removed {
                eprintln!("warning: could not remove the network {network}: {err:#}");
            }
        }
    }

    /// Leaves the containers running (to look at them after a run) and prints their ids and
    /// published ports.
    pub fn keep(self) {
        eprintln!("containers kept; remove them with `docker rm -f <id>`:");
        if let Some(network) = &self.network {
            eprintln!("  (and their network with `docker network rm {network}`)");
        }
        for (name, running) in self.members {
            let mut ports: Vec<String> = running
                .ports
                .iter()
                .map(|(port, address)| format!("{port}->{address}"))
                .collect();
            ports.sort();
            eprintln!("  {name:<13} {} {}", running.keep(), ports.join(" "));
        }
    }
}

/// Starts `spec` as the member `name`, on `network` (under its name) if there is one, and waits
/// until it is ready, printing progress to stderr.
async fn start_member(
    name: String,
    spec: ContainerSpec,
    network: Option<&str>,
) -> anyhow::Result<(String, Running)> {
    let spec = match network {
        Some(network) => spec.network(network, &name),
        None => spec,
    };
    let since = Instant::now();
    eprintln!("starting {name} ({})", spec.image());
    let running = start(&spec)
        .await
        .with_context(|| format!("start {name}"))?;
    eprintln!("{name} ready in {:.1}s", since.elapsed().as_secs_f64());
    Ok((name, running))
}

/// `value` with `//name:port` and `@name:port` replaced by `//address` and `@address` for each
/// `(name, port, address)`; a longer port (`name:80` in `name:8080`) is left alone.
fn rewrite<'a>(
    value: &str,
    published: impl IntoIterator<Item = (&'a str, u16, SocketAddr)>,
) -> String {
    let mut value = value.to_owned();
    for (name, port, address) in published {
        for prefix in ["//", "@"] {
            let from = format!("{prefix}{name}:{port}");
            let mut out = String::with_capacity(value.len());
            let mut rest = value.as_str();
            while let Some(at) = rest.find(&from) {
                let after = &rest[at + from.len()..];
                out.push_str(&rest[..at]);
                if after.starts_with(|next: char| next.is_ascii_digit()) {
                    out.push_str(&from);
                } else {
                    out.push_str(&format!("{prefix}{address}"));
                }
                rest = after;
            }
            out.push_str(rest);
            value = out;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use testcontainers::bollard::query_parameters::ListContainersOptions;

    use super::*;
    use crate::container::require_engine;
    use crate::prometheus;

    /// URLs and DSNs that name a member's port point at its host address; other names, other
    /// ports and longer ports stay.
    #[test]
    fn references_to_published_ports_are_rewritten() {
        let db = SocketAddr::from(([127, 0, 0, 1], 49153));
        let api = SocketAddr::from(([127, 0, 0, 1], 49154));
        let published = [("db", 5432, db), ("api", 80, api)];
        let cases = [
            (
                "postgres://u:p@db:5432/x",
                "postgres://u:p@127.0.0.1:49153/x",
            ),
            ("http://api:80/ready", "http://127.0.0.1:49154/ready"),
            (
                "http://api:8080 http://api:80",
                "http://api:8080 http://127.0.0.1:49154",
            ),
            (
                "http://db:5433 http://other:5432 mydb:5432",
                "http://db:5433 http://other:5432 mydb:5432",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(rewrite(value, published), expected, "{value}");
        }
    }

    /// A started group answers by name and port, rewrites references to its ports, and says
    /// which name or port it lacks.
    #[tokio::test]
    async fn a_group_reaches_its_members_by_name() {
        let image = prometheus::image();
        let test = "a_group_reaches_its_members_by_name";
        if require_engine(test, &[&image]).await.is_none() {
            return;
        }
        let spec = prometheus::spec(&image).name_prefix("otel-testkit-group");
        let group = Group::start([("metrics", spec)]).await.unwrap();
        let address = group.get("metrics").unwrap().address(prometheus::API_PORT);
        let url = group.url("metrics", prometheus::API_PORT).unwrap();
        assert_eq!(url, format!("http://{address}"));
        assert_eq!(
            group.rewrite("http://metrics:9090/api"),
            format!("http://{address}/api")
        );
        let wrong_port = group.url("metrics", 1).unwrap_err().to_string();
        assert!(
            wrong_port.contains("no container \"metrics\" publishing port 1"),
            "{wrong_port}"
        );
        assert!(group.url("logs", prometheus::API_PORT).is_err());
        assert!(!group.gateway().is_loopback());
        let ip = group.get("metrics").unwrap().ip();
        assert!(!ip.is_loopback() && ip != group.gateway(), "{ip}");
        assert_eq!(
            group.rewrite_for_containers("http://metrics:4318 http://metrics:9", &[4318]),
            format!("http://{ip}:4318 http://metrics:9")
        );
        group.stop().await;
    }

    /// The peer finds `metrics` by name on the group's network. The engine's DNS learns of a
    /// joined or restarted member within moments, but its server for a new network can be slow
    /// to answer on a loaded machine, and one unanswered lookup alone takes the resolver's
    /// timeouts (seen in CI: 40 s), so the deadline leaves room for a second lookup.
    async fn resolve(group: &Group) {
        let argv = ["getent", "hosts", "metrics"].map(String::from);
        let peer = group.get("peer").unwrap();
        let resolved = crate::eventually(
            "peer resolves metrics",
            Instant::now(),
            Duration::from_secs(60),
            || async {
                let output = peer.exec(&argv).await?;
                anyhow::ensure!(output.code == Some(0), "getent exited {:?}", output.code);
                Ok(output.stdout)
            },
        )
        .await;
        if let Err(timed_out) = resolved {
            panic!("{timed_out}");
        }
    }

    /// On the group's own network a member keeps its name, its alias and its host port across a
    /// stop and start and across a SIGKILL and start, while the engine may give it a new bridge
    /// address. An engine that picks new host ports (Docker) must fail the resume and say so.
    #[tokio::test]
    async fn a_restarted_member_keeps_its_name_and_port() {
        let image = prometheus::image();
        let test = "a_restarted_member_keeps_its_name_and_port";
        let Some(docker) = require_engine(test, &[&image]).await else {
            return;
        };
        let podman = docker
            .version()
            .await
            .unwrap()
            .components
            .unwrap_or_default();
        let podman = podman.iter().any(|part| part.name.contains("Podman"));
        let spec = || prometheus::spec(&image).name_prefix("otel-testkit-restart");
        // The peer joins later (`add`) and reaches the first member by name all the same.
        let mut group = Group::start_on_network([("metrics", spec())])
            .await
            .unwrap();
        group.add("peer", spec()).await.unwrap();
        let twice = group.add("peer", spec()).await.unwrap_err().to_string();
        assert!(twice.contains("already has a member \"peer\""), "{twice}");
        let network = group.network().unwrap().to_owned();
        resolve(&group).await;
        let url = group.url("metrics", prometheus::API_PORT).unwrap();
        let name = group.get("metrics").unwrap().name().to_owned();
        for kill in [false, true] {
            let metrics = group.get_mut("metrics").unwrap();
            if kill {
                metrics.kill().await.unwrap();
            } else {
                metrics.halt(Duration::from_secs(5)).await.unwrap();
            }
            assert!(
                reqwest::get(format!("{url}/-/ready")).await.is_err(),
                "{url} still answers"
            );
            match metrics.resume().await {
                Ok(()) => {}
                Err(err) if !podman => {
                    let err = format!("{err:#}");
                    assert!(err.contains("picks new host ports"), "{err}");
                    group.stop().await;
                    return;
                }
                Err(err) => panic!("resume after kill={kill}: {err:#}"),
            }
            assert_eq!(metrics.name(), name);
            assert_eq!(group.url("metrics", prometheus::API_PORT).unwrap(), url);
            let ready = reqwest::get(format!("{url}/-/ready")).await.unwrap();
            assert!(ready.status().is_success(), "{url}: {}", ready.status());
            resolve(&group).await;
        }
        group.stop().await;
        assert!(
            docker.inspect_network(&network, None).await.is_err(),
            "the network {network} outlived its group"
        );
    }

    /// When one member cannot start, the error names it and the members that did start are
    /// removed again.
    #[tokio::test]
    async fn a_failed_member_removes_the_others() {
        let image = prometheus::image();
        let test = "a_failed_member_removes_the_others";
        let Some(docker) = require_engine(test, &[&image]).await else {
            return;
        };
        let prefix = format!("otel-testkit-group-failed-{}", std::process::id());
        let started = Group::start([
            ("metrics", prometheus::spec(&image).name_prefix(&prefix)),
            (
                "absent",
                ContainerSpec::new("localhost/otel-testkit/absent:none"),
            ),
        ])
        .await;
        let err = format!(
            "{:#}",
            started.err().expect("the absent image fails the group")
        );
        assert!(err.contains("start absent"), "{err}");
        assert!(!err.contains("start metrics"), "{err}");
        let left = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some([("name".to_owned(), vec![prefix.clone()])].into()),
                ..Default::default()
            }))
            .await
            .unwrap();
        assert!(left.is_empty(), "containers left behind: {left:?}");
    }
}
