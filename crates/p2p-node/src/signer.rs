//! The node's MuSig2 signer: its key in the data dir (created, mode 0600, on
//! first use), the `musig2` handler, and its advert kept published.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use p2p_core::Node;
use p2p_musig2::{Musig2, signer_key};
use tokio::sync::OnceCell;

/// Longest pause between attempts to publish the advert (it needs DHT peers).
const ADVERT_RETRY_MAX: Duration = Duration::from_secs(30);

pub(crate) struct Signer {
    node: Node,
    path: PathBuf,
    signer: OnceCell<Musig2>,
    /// Set once a DHT peer stored the advert.
    advertised: Arc<AtomicBool>,
}

impl Signer {
    pub(crate) fn new(node: Node, path: PathBuf) -> Self {
        Signer {
            node,
            path,
            signer: OnceCell::new(),
            advertised: Arc::default(),
        }
    }

    /// A signer key that exists from an earlier run is loaded and advertised
    /// at start; none is created.
    pub(crate) async fn resume(&self) -> Result<()> {
        if self.path.exists() {
            self.get().await?;
        }
        Ok(())
    }

    /// The signer, if its key was loaded or created.
    pub(crate) fn existing(&self) -> Option<&Musig2> {
        self.signer.get()
    }

    /// The signer, its key loaded or created on the first call.
    pub(crate) async fn get(&self) -> Result<&Musig2> {
        self.signer
            .get_or_try_init(|| async {
                let key = signer_key::load_or_create(&self.path)
                    .with_context(|| format!("signer key {}", self.path.display()))?;
                let signer = Musig2::new(self.node.clone(), key, Default::default())?;
                tokio::spawn(keep_advertised(
                    signer.clone(),
                    Arc::clone(&self.advertised),
                ));
                Ok(signer)
            })
            .await
    }

    /// The signer, with its advert published once more now if no DHT peer
    /// has stored it yet (before a session, so co-signers can find us).
    pub(crate) async fn advertised(&self) -> Result<&Musig2> {
        let signer = self.get().await?;
        if !self.advertised.load(Ordering::Relaxed)
            && let Ok(announced) = signer.advertise().await
            && announced.stored_by > 0
        {
            self.advertised.store(true, Ordering::Relaxed);
        }
        Ok(signer)
    }
}

/// Publishes the advert until a DHT peer stores it (the node republishes it
/// from then on), retrying with a doubling pause.
async fn keep_advertised(signer: Musig2, advertised: Arc<AtomicBool>) {
    let mut pause = Duration::from_millis(500);
    while !advertised.load(Ordering::Relaxed) {
        match signer.advertise().await {
            Ok(announced) if announced.stored_by > 0 => advertised.store(true, Ordering::Relaxed),
            Ok(_) => tracing::debug!("signer advert stored by no peer yet; retrying"),
            Err(error) => tracing::debug!(%error, "signer advert not published yet; retrying"),
        }
        if !advertised.load(Ordering::Relaxed) {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(ADVERT_RETRY_MAX);
        }
    }
}
