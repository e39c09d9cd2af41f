//! The original's basic example, really working: two nodes connect, Alice
//! sends Bob a signed message, announces a resource, Bob discovers it through
//! the DHT (not from Alice's cache), and both print their stats.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use p2p_core::{AnnounceOptions, DhtConfig, DhtModeSetting, Event, Node, ResourceId, ResourceType};

const WAIT: Duration = Duration::from_secs(10);

fn node() -> Result<Node> {
    Ok(Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .dht({
            let mut c = DhtConfig::default();
            c.mode = DhtModeSetting::Server;
            c
        })
        .build()?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let (alice, bob) = (node()?, node()?);
    alice.start().await?;
    bob.start().await?;
    println!("alice {}\nbob   {}", alice.peer_id(), bob.peer_id());

    let bob_addr = bob
        .listen_addrs()
        .await?
        .remove(0)
        .with_p2p(bob.peer_id())
        .map_err(|_| anyhow::anyhow!("address"))?;
    let bob_in_table = bob.wait_for(WAIT, |e| {
        matches!(
            e.as_node(),
            Some(p2p_core::NodeEvent::RoutingUpdated { .. })
        )
    });
    alice.connect(bob_addr).await?;
    bob_in_table
        .await
        .context("Bob's routing table stayed empty")?;
    println!("connected; DHT routing tables populated");

    // 1. A direct, signed message.
    let greeting = bob.wait_for(WAIT, |e| matches!(e, Event::Message { .. }));
    let message = alice.sign(
        alice
            .message("greeting".parse()?)
            .payload(&br#"{"text":"Hello Bob!"}"#[..]),
    )?;
    alice.send(bob.peer_id(), &message).await?;
    let Event::Message {
        message, verified, ..
    } = greeting.await?
    else {
        bail!("no message")
    };
    println!(
        "bob got {} from alice (signature verified: {verified}): {}",
        message.kind,
        String::from_utf8_lossy(&message.payload)
    );

    // 2. Alice announces a resource for an hour.
    let options = {
        let mut c = AnnounceOptions::default();
        c.ttl = Some(Duration::from_secs(3600));
        c
    };
    // Resource types and ids are typed: a name that would make the DHT key
    // ambiguous cannot be built.
    let kind: ResourceType = "example-resource".parse()?;
    let id: ResourceId = "resource-123".parse()?;
    let announced = alice
        .announce(
            &kind,
            &id,
            r#"{"name":"Example","data":"hello DHT"}"#,
            options,
        )
        .await?;
    println!(
        "alice announced {} (stored by {} peer(s))",
        announced.record.key, announced.stored_by
    );

    // 3. Bob discovers it through the DHT.
    let found = bob.discover(&kind, &id, WAIT).await?;
    println!(
        "bob discovered {} created by {}: {}",
        found.key,
        found.creator,
        String::from_utf8_lossy(&found.data)
    );
    if found.creator != alice.peer_id() {
        bail!("wrong creator");
    }

    // 4–5. Stats.
    for (name, node) in [("alice", &alice), ("bob", &bob)] {
        let s = node.stats().await?;
        println!(
            "{name}: {} connected peer(s), {} listen address(es), DHT {:?} with {} peer(s) and {} record(s), messages sent {} received {}",
            s.connected_peers,
            s.listen_addrs,
            s.dht.mode,
            s.dht.routing_table_size,
            s.dht.records_stored,
            s.messages.sent,
            s.messages.received
        );
    }
    alice.stop().await?;
    bob.stop().await?;
    Ok(())
}
