//! Three wallets sign one message together with MuSig2: each runs a node and
//! a signer, advertises its signer key in the DHT, and all three run the same
//! session (keys, message, session id). Each ends with the same 64-byte Lotus
//! Schnorr signature, valid under the aggregated key a Lotus wallet would pay
//! to (the Lotus SDK's `musigKeyAgg`).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use p2p_core::{DhtConfig, DhtModeSetting, Node};
use p2p_musig2::Musig2;
use p2p_musig2::lotus_musig2::{self, PublicKey, SecretKey};

const WAIT: Duration = Duration::from_secs(30);

async fn node() -> Result<Node> {
    let node = Node::builder()
        .listen("/ip4/127.0.0.1/tcp/0".parse()?)
        .dht({
            let mut c = DhtConfig::default();
            c.mode = DhtModeSetting::Server;
            c
        })
        .build()?;
    node.start().await?;
    Ok(node)
}

#[tokio::main]
async fn main() -> Result<()> {
    // Three nodes; the second and third join through the first.
    let first = node().await?;
    let first_addr = first
        .listen_addrs()
        .await?
        .remove(0)
        .with_p2p(first.peer_id())
        .map_err(|_| anyhow::anyhow!("address"))?;
    let mut nodes = vec![first];
    for _ in 0..2 {
        let node = node().await?;
        let joined = node.wait_for(WAIT, |e| {
            matches!(
                e.as_node(),
                Some(p2p_core::NodeEvent::RoutingUpdated { .. })
            )
        });
        node.connect(first_addr.clone()).await?;
        joined.await.context("routing table stayed empty")?;
        nodes.push(node);
    }

    // A signer key per wallet, advertised: "this key signs at this node".
    let mut signers = Vec::new();
    for (name, node) in ["alice", "bob", "carol"].into_iter().zip(&nodes) {
        let signer = Musig2::new(node.clone(), SecretKey::generate()?, Default::default())?;
        signer.advertise().await?;
        println!("{name} signs with {}", signer.public_key());
        signers.push(signer);
    }
    let keys: Vec<PublicKey> = signers.iter().map(|s| *s.public_key()).collect();

    // Everyone runs the same session; they find each other from the keys.
    let message = [0x5a; 32];
    let sessions = signers
        .iter()
        .map(|s| s.sign("example-session", &message, &keys, WAIT));
    let results = futures::future::join_all(sessions).await;
    let mut signatures = Vec::new();
    for (name, result) in ["alice", "bob", "carol"].into_iter().zip(results) {
        let signed = result.with_context(|| format!("{name}'s session failed"))?;
        println!("{name} has signature {}", signed.signature);
        signatures.push(signed);
    }
    let signed = signatures.first().context("no signer")?;
    ensure!(
        signatures.iter().all(|s| s == signed),
        "the signers ended with different signatures"
    );
    lotus_musig2::verify(&signed.aggregated_key, &message, &signed.signature)?;
    println!("aggregated key {}", signed.aggregated_key);
    println!("signature verifies under the aggregated key: true");
    for node in &nodes {
        node.stop().await?;
    }
    Ok(())
}
