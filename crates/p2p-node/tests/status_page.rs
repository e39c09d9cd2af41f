//! The status page in a real browser (Debian's headless Chromium): it loads
//! from the API server, shows the node, shows a peer once it connects and a
//! resource once the node announces it, and renders something (its
//! screenshot is not blank). Fails, naming the missing program, where
//! Chromium is not installed (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Output;

use common::{Proc, WAIT, joining, temp_dir};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`),
/// bounded; the flags keep it off the network beyond the page.
async fn chromium(profile: &Path, url: &str, args: &[&str]) -> Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
    );
    let child = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            // Lets the page's script and its first API answers run first.
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT * 3, child.wait_with_output())
        .await
        .expect("chromium did not finish")
        .unwrap()
}

/// The page's DOM once its script ran.
async fn page(profile: &Path, url: &str) -> String {
    let out = chromium(profile, url, &["--dump-dom"]).await;
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_node_and_a_peer_that_connects() {
    let dir = temp_dir("status");
    let mut a = Proc::spawn(&dir, &[]);
    let listening = a.next(|v| v["event"] == "listening").await;
    let a_id = listening["peerId"].as_str().unwrap().to_owned();
    let api = listening["api"].as_str().unwrap().to_owned();
    let token = std::fs::read_to_string(dir.join("api.cookie")).unwrap();
    let url = format!("http://{api}/#token={token}");
    let profile = temp_dir("status-chromium");

    // Alone: the page names the node and lists no peer.
    let dom = page(&profile, &url).await;
    assert!(
        dom.contains(&format!(r#"<div class="id" id="peer-id">{a_id}</div>"#)),
        "{dom}"
    );
    assert!(dom.contains(r#"<tbody id="peers"></tbody>"#), "{dom}");
    assert!(dom.contains(r#"<tbody id="announced"></tbody>"#), "{dom}");
    assert!(
        ["unknown", "public", "private"]
            .iter()
            .any(|status| dom.contains(&format!(r#"<b id="reachability">{status}</b>"#))),
        "{dom}"
    );

    // A peer connects: it appears, with its connection marked direct.
    let (_b, b_id) = joining("status-b", listening["addrs"][0].as_str().unwrap()).await;
    a.next(|v| v["event"] == "peer:connect" && v["peerId"] == b_id.as_str())
        .await;
    // The node announces a resource: the page lists it.
    let announced = a.cmd(r#"announce session s-status {"round":1} 600"#).await;
    assert_eq!(announced["ok"], true, "{announced}");
    // The token was kept by the browser profile: the plain address works.
    let dom = page(&profile, &format!("http://{api}/")).await;
    assert!(dom.contains(&format!(r#"data-peer="{b_id}""#)), "{dom}");
    assert!(dom.contains("(direct)"), "{dom}");
    assert!(
        dom.contains(r#"data-resource="resource:session:s-status""#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"{&quot;round&quot;:1}"#) || dom.contains(r#"{"round":1}"#),
        "{dom}"
    );

    // Rendered, not blank: the screenshot has text and colour on it.
    let shot = profile.join("status.png");
    let out = chromium(
        &profile,
        &format!("http://{api}/"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,800",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let pixels = &pixels[..frame.buffer_size()];
    let step = frame.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels.chunks(step).collect();
    assert!(
        colours.len() > 16,
        "only {} colours: a blank page",
        colours.len()
    );
}
