//! N nodes in one process (default 50; memory transport, or TCP with
//! `--tcp`), bootstrapped through the first; every node announces a resource
//! and discovers every other node's. Prints a timing summary.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use p2p_core::{AnnounceOptions, DhtConfig, DhtModeSetting, Node, ResourceType, TransportKind};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = match args.iter().position(|a| a == "--nodes") {
        Some(i) => args.get(i + 1).context("--nodes needs a number")?.parse()?,
        None => 50,
    };
    let tcp = args.iter().any(|a| a == "--tcp");
    if count < 2 {
        bail!("need at least 2 nodes");
    }
    let (transport, listen) = if tcp {
        (TransportKind::Tcp, "/ip4/127.0.0.1/tcp/0")
    } else {
        (TransportKind::Memory, "/memory/0")
    };

    let started = Instant::now();
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let node = Node::builder()
            .transport(transport)
            .listen(listen.parse()?)
            .dht({
                let mut c = DhtConfig::default();
                c.mode = DhtModeSetting::Server;
                c
            })
            .build()?;
        node.start().await?;
        nodes.push(node);
    }
    let t_start = started.elapsed();

    let hub = nodes.first().context("no nodes")?.clone();
    let hub_addr = hub
        .listen_addrs()
        .await?
        .remove(0)
        .with_p2p(hub.peer_id())
        .map_err(|_| anyhow::anyhow!("address"))?;
    let connecting = Instant::now();
    for node in nodes.iter().skip(1) {
        node.connect(hub_addr.clone()).await?;
    }
    // Every routing table holds at least the hub plus one more.
    let deadline = Instant::now() + WAIT;
    for node in nodes.iter().skip(1) {
        while node.stats().await?.dht.routing_table_size < 2 {
            if Instant::now() > deadline {
                bail!("routing tables did not populate");
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), node.subscribe().recv()).await;
        }
    }
    let t_connect = connecting.elapsed();

    let kind: ResourceType = "node".parse()?;
    let kind = &kind;
    let announcing = Instant::now();
    for (i, node) in nodes.iter().enumerate() {
        node.announce(
            kind,
            &format!("n{i}").parse()?,
            format!("{{\"index\":{i}}}"),
            AnnounceOptions::default(),
        )
        .await?;
    }
    let t_announce = announcing.elapsed();

    let discovering = Instant::now();
    let lookups = nodes.iter().enumerate().map(|(i, node)| async move {
        let mut found = 0usize;
        for j in (0..count).filter(|&j| j != i) {
            let Ok(id) = format!("n{j}").parse() else {
                continue;
            };
            if node.discover(kind, &id, WAIT).await.is_ok() {
                found += 1;
            }
        }
        found
    });
    let found: usize = futures::future::join_all(lookups).await.into_iter().sum();
    let t_discover = discovering.elapsed();
    let expected = count * (count - 1);

    let sizes: Vec<usize> = futures::future::join_all(nodes.iter().map(|n| async move {
        n.stats()
            .await
            .map(|s| s.dht.routing_table_size)
            .unwrap_or(0)
    }))
    .await;
    println!(
        "{count} nodes ({}): start {:?}, connect+populate {:?}, announce {:?}, {found}/{expected} discoveries in {:?} ({:.0}/s); routing tables {}..{}",
        if tcp { "tcp" } else { "memory" },
        t_start,
        t_connect,
        t_announce,
        t_discover,
        found as f64 / t_discover.as_secs_f64(),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
    );
    for node in &nodes {
        node.stop().await?;
    }
    if found != expected {
        bail!("{} discoveries failed", expected - found);
    }
    Ok(())
}
