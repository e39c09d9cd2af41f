//! `lotus-p2p`: run a lotus-p2p node, generate keys, print a key's PeerId.
//!
//! ```text
//! lotus-p2p run [--listen <multiaddr>]... [--bootstrap <multiaddr>]... [--dht-mode client|server|auto]
//!               [--data-dir <dir>] [--key-file <file>] [--mplex] [--json] [--metrics <ip:port>]
//!               [--accept-unsigned-records] [--accept-typescript-messages] [--sequence-numbers]
//!               [--external-address <multiaddr>]... [--no-autonat]
//!               [--autonat-delay-secs <s>] [--autonat-retry-secs <s>]
//! lotus-p2p keygen [--key-file <file>] [--force]
//! lotus-p2p id --key-file <file>
//! lotus-p2p musig2 keyagg <pubkey-hex>...
//! lotus-p2p musig2 verify <pubkey-hex> <msg32-hex> <sig64-hex>
//! ```
//!
//! While running, one command per line on stdin drives the node (see
//! `control.rs`); results and events are printed one per line (JSON with
//! `--json`). Logs go to stderr, filtered by `RUST_LOG`.

mod api;
mod client;
mod control;
mod limits;
mod metrics;
mod output;
mod settings;
mod signer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use p2p_core::{
    DhtModeSetting, Event, Identity, Multiaddr, Node, NodeConfig, NodeError, SwarmMetrics,
};
use tokio::sync::broadcast;

use crate::output::Output;

/// `--version`: the crate version and the git commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LOTUS_P2P_COMMIT"),
    ")"
);

/// Default TCP port (the WebSocket listener takes the next one).
const DEFAULT_TCP_PORT: u16 = 4001;

#[derive(Parser)]
#[command(name = "lotus-p2p", version = VERSION, about = "A lotus-p2p node")]
struct Cli {
    /// Data directory of the node to talk to (client commands) or to run
    /// (`run`'s own --data-dir wins). Default: $XDG_DATA_HOME/lotus-p2p or
    /// ~/.local/share/lotus-p2p.
    #[arg(long, env = "LOTUS_P2P_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Run(Box<RunArgs>),
    /// Print the settings `run` would use with these arguments (flags,
    /// environment, config file, defaults), where each came from, secrets
    /// hidden.
    Config(Box<RunArgs>),
    /// Create a key file (ed25519).
    Keygen {
        /// Where to write it. Default: <data dir>/node.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Data directory. Default: $XDG_DATA_HOME/lotus-p2p or ~/.local/share/lotus-p2p.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the PeerId of a key file.
    Id {
        /// The key file. Default: <data dir>/node.key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Data directory. Default: $XDG_DATA_HOME/lotus-p2p or ~/.local/share/lotus-p2p.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Lotus MuSig2 and Schnorr, offline (one JSON line on stdout).
    #[command(subcommand)]
    Musig2(Musig2Command),
    /// Any control command (`peers`, `stats`, `send <peer> <type> <json>`,
    /// `discover <type> <id>`, ...), sent to the running node's API found
    /// through the data dir; prints its JSON answer, exit status 1 when the
    /// command failed.
    #[command(external_subcommand)]
    Client(Vec<String>),
}

#[derive(Subcommand)]
enum Musig2Command {
    /// The aggregated key of signer keys, as the Lotus SDK's musigKeyAgg
    /// computes it: `{"aggregatedKey":"<hex33>"}`.
    Keyagg {
        /// Compressed secp256k1 public keys (66 hex digits), any order.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Verifies a Lotus Schnorr signature: `{"valid":true|false}`, exit
    /// status 0 when valid, 1 when not, 2 when an argument is malformed.
    Verify {
        /// Compressed public key (66 hex digits).
        public_key: String,
        /// The 32-byte message (64 hex digits).
        message: String,
        /// The 64-byte signature r || s (128 hex digits).
        signature: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DhtModeArg {
    Client,
    Server,
    Auto,
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML file of settings, its keys the long flags (`listen = [...]`,
    /// `api = "..."`). Default: <data dir>/config.toml when it exists.
    /// Flags win over `LOTUS_P2P_*` variables, which win over the file.
    #[arg(long, env = "LOTUS_P2P_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (repeatable). Default: /ip4/0.0.0.0/tcp/4001 and
    /// /ip4/0.0.0.0/tcp/4002/ws, plus /ip6/::/tcp/4001 and /ip6/::/tcp/4002/ws
    /// where the host has IPv6. A port that is taken is an error.
    #[arg(long, env = "LOTUS_P2P_LISTEN", value_delimiter = ',')]
    listen: Vec<Multiaddr>,
    /// Bootstrap peer, with /p2p/<id> (repeatable).
    #[arg(long, env = "LOTUS_P2P_BOOTSTRAP", value_delimiter = ',')]
    bootstrap: Vec<Multiaddr>,
    /// DHT mode.
    #[arg(long, value_enum, default_value = "auto", env = "LOTUS_P2P_DHT_MODE")]
    dht_mode: DhtModeArg,
    /// Data directory (holds node.key). Default: $XDG_DATA_HOME/lotus-p2p or ~/.local/share/lotus-p2p.
    #[arg(long, env = "LOTUS_P2P_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Key file. Default: <data dir>/node.key (created on first run).
    #[arg(long, env = "LOTUS_P2P_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// MuSig2 signer key file. Default: <data dir>/signer.key (created,
    /// mode 0600, by the first `signer-key` or `musig2-sign`).
    #[arg(long, env = "LOTUS_P2P_SIGNER_KEY_FILE")]
    signer_key_file: Option<PathBuf>,
    /// Also offer mplex, for the TypeScript system's Phase-1 nodes.
    #[arg(long, env = "LOTUS_P2P_MPLEX")]
    mplex: bool,
    /// JSON lines on stdout.
    #[arg(long, env = "LOTUS_P2P_JSON")]
    json: bool,
    /// Logs on stderr as text or as JSON lines (filtered by RUST_LOG).
    #[arg(long, value_enum, default_value = "text", env = "LOTUS_P2P_LOG_FORMAT")]
    log_format: LogFormat,
    /// Serve Prometheus metrics on this address (http://<addr>/metrics).
    #[arg(long, env = "LOTUS_P2P_METRICS")]
    metrics: Option<SocketAddr>,
    /// Accept unsigned resource records (TypeScript nodes do not sign theirs).
    #[arg(long, env = "LOTUS_P2P_ACCEPT_UNSIGNED_RECORDS")]
    accept_unsigned_records: bool,
    /// Serve the TypeScript system's /lotus/message/1.0.0 (unsigned JSON
    /// messages, accepted as unauthenticated content). Needed to receive
    /// messages from TypeScript nodes; sending to them works without it.
    #[arg(
        long,
        alias = "accept-legacy-messages",
        env = "LOTUS_P2P_ACCEPT_TYPESCRIPT_MESSAGES"
    )]
    accept_typescript_messages: bool,
    /// Number outgoing messages per protocol, so peers refuse replays past
    /// their seen-set (native peers only: the TypeScript format has no number).
    #[arg(long, env = "LOTUS_P2P_SEQUENCE_NUMBERS")]
    sequence_numbers: bool,
    /// An address this node is reachable at (repeatable): a public IP with a
    /// port forward, a DNS name. Confirmed at start, so `--dht-mode auto`
    /// serves the DHT at once.
    #[arg(long, env = "LOTUS_P2P_EXTERNAL_ADDRESS", value_delimiter = ',')]
    external_address: Vec<Multiaddr>,
    /// Serve the HTTP API on this address (default 127.0.0.1:4010; port 0
    /// picks a free port). Its address is written to <data dir>/api, its
    /// token to <data dir>/api.cookie (new each start, mode 0600).
    #[arg(long, default_value = "127.0.0.1:4010", env = "LOTUS_P2P_API")]
    api: SocketAddr,
    /// Use this API token instead of a fresh cookie.
    #[arg(long, env = "LOTUS_P2P_API_TOKEN")]
    api_token: Option<String>,
    /// Do not serve the HTTP API.
    #[arg(long, env = "LOTUS_P2P_NO_API")]
    no_api: bool,
    /// Do not probe reachability with AutoNAT nor answer others' probes.
    #[arg(long, env = "LOTUS_P2P_NO_AUTONAT")]
    no_autonat: bool,
    /// Seconds before the first AutoNAT probe (default 15).
    #[arg(long, env = "LOTUS_P2P_AUTONAT_DELAY_SECS")]
    autonat_delay_secs: Option<u64>,
    /// Seconds between AutoNAT probes while reachability is unknown
    /// (default 90).
    #[arg(long, env = "LOTUS_P2P_AUTONAT_RETRY_SECS")]
    autonat_retry_secs: Option<u64>,
    /// A relay to keep a reservation on while this node is not publicly
    /// reachable, with /p2p/<id> (repeatable): peers then reach this node at
    /// <relay>/p2p-circuit/p2p/<this id>.
    #[arg(long, env = "LOTUS_P2P_RELAY", value_delimiter = ',')]
    relay: Vec<Multiaddr>,
    /// Relay for other peers (Circuit Relay v2, bounded: 128 reservations,
    /// 16 circuits, 2 min and 1 MiB per circuit); serves once this node has
    /// a confirmed external address.
    #[arg(long, env = "LOTUS_P2P_RELAY_SERVER")]
    relay_server: bool,
    /// Do not upgrade relayed connections by hole punching (DCUtR).
    #[arg(long, env = "LOTUS_P2P_NO_HOLE_PUNCHING")]
    no_hole_punching: bool,
    /// Address ranges to treat as public, comma-separated CIDRs (a private
    /// deployment; tests on documentation ranges): the DHT keeps peers'
    /// addresses there as it keeps public ones.
    #[arg(long, value_delimiter = ',', env = "LOTUS_P2P_PUBLIC_RANGES")]
    public_ranges: Vec<p2p_core::IpNet>,
    #[command(flatten)]
    limits: limits::LimitArgs,
}

fn default_data_dir() -> PathBuf {
    settings::default_data_dir()
}

fn data_dir(args: &RunArgs) -> PathBuf {
    args.data_dir.clone().unwrap_or_else(default_data_dir)
}

fn key_path(key_file: Option<PathBuf>, data_dir: Option<PathBuf>) -> PathBuf {
    key_file.unwrap_or_else(|| data_dir.unwrap_or_else(default_data_dir).join("node.key"))
}

fn main() -> Result<()> {
    let mut cli = match parse()? {
        Some(cli) => cli,
        None => return Ok(()), // `config` printed the settings
    };
    if let Command::Run(args) = &mut cli.command
        && args.data_dir.is_none()
    {
        args.data_dir.clone_from(&cli.data_dir);
    }
    let log_json = matches!(&cli.command, Command::Run(args) if args.log_format == LogFormat::Json);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed, its reader gone)
        // is dropped. Reporting it would eprintln! to the same dead stderr,
        // which panics - in whichever task logged, the node's event loop
        // included.
        .log_internal_errors(false);
    if log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Keygen {
            key_file,
            data_dir,
            force,
        } => keygen(&key_path(key_file, data_dir.or(cli.data_dir)), force),
        Command::Id { key_file, data_dir } => {
            let path = key_path(key_file, data_dir.or(cli.data_dir));
            if !path.exists() {
                bail!("no key file at {}", path.display());
            }
            let key = Identity::KeyFile(path).keypair()?;
            println!("{}", key.public().to_peer_id());
            Ok(())
        }
        Command::Musig2(command) => musig2(command),
        Command::Client(words) => {
            let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
            let ok = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(client::run(&data_dir, &words))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Config(_) => Ok(()), // printed while parsing
        Command::Run(args) => {
            let json = args.json;
            let outcome = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(*args));
            match outcome {
                // With --json, a failure (a taken port, a bad key file) is
                // one JSON line on stdout too.
                Err(error) if json => {
                    println!(
                        "{}",
                        serde_json::json!({"event": "error", "error": format!("{error:#}")})
                    );
                    std::process::exit(1)
                }
                other => other,
            }
        }
    }
}

/// The command line, with `run`'s settings from the environment and the
/// config file; `None` when the command was `config` (printed here).
fn parse() -> Result<Option<Cli>> {
    use clap::{CommandFactory, FromArgMatches};
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let matches = command
        .clone()
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let Some((name @ ("run" | "config"), sub_matches)) = matches.subcommand() else {
        return Ok(Some(Cli::from_arg_matches(&matches)?));
    };
    let Some(sub) = command.find_subcommand(name) else {
        bail!("no {name} command");
    };
    let global_data_dir = matches.get_one::<PathBuf>("data_dir");
    let resolved = settings::resolve(
        argv,
        sub,
        sub_matches,
        global_data_dir.map(PathBuf::as_path),
    )?;
    let matches = command
        .clone()
        .try_get_matches_from(&resolved.argv)
        .unwrap_or_else(|e| e.exit());
    if name == "config" {
        if let Some((_, sub_matches)) = matches.subcommand() {
            println!("{}", settings::describe(sub_matches, &resolved));
        }
        return Ok(None);
    }
    Ok(Some(Cli::from_arg_matches(&matches)?))
}

/// `lotus-p2p musig2 ...`: exits 2 on a malformed argument.
fn musig2(command: Musig2Command) -> Result<()> {
    use p2p_musig2::lotus_musig2::{KeyAggContext, PublicKey, Signature};
    let malformed = |what: &str, error: &dyn std::fmt::Display| -> ! {
        eprintln!("{what}: {error}");
        std::process::exit(2)
    };
    let key = |text: &str| {
        text.parse::<PublicKey>()
            .unwrap_or_else(|e| malformed(&format!("public key {text}"), &e))
    };
    match command {
        Musig2Command::Keyagg { keys } => {
            let context = KeyAggContext::new(keys.iter().map(|k| key(k)))?;
            println!(
                "{}",
                serde_json::json!({"aggregatedKey": context.aggregated_key().to_string()})
            );
            Ok(())
        }
        Musig2Command::Verify {
            public_key,
            message,
            signature,
        } => {
            let public_key = key(&public_key);
            let mut msg = [0u8; 32];
            hex::decode_to_slice(&message, &mut msg)
                .unwrap_or_else(|e| malformed("message (32 bytes of hex)", &e));
            let mut sig = [0u8; 64];
            hex::decode_to_slice(&signature, &mut sig)
                .unwrap_or_else(|e| malformed("signature (64 bytes of hex)", &e));
            // An encoding out of range (r >= p, s >= n) is an invalid signature.
            let valid = Signature::from_bytes(&sig)
                .and_then(|sig| p2p_musig2::lotus_musig2::verify(&public_key, &msg, &sig))
                .is_ok();
            println!("{}", serde_json::json!({"valid": valid}));
            if !valid {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn keygen(path: &Path, force: bool) -> Result<()> {
    if path.exists() {
        if !force {
            bail!("{} exists; pass --force to replace it", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let key = p2p_core::load_or_create_key_file(path)?;
    println!("{}", key.public().to_peer_id());
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn config(
    args: &RunArgs,
    (listen, optional): (Vec<Multiaddr>, Vec<Multiaddr>),
    metrics: Option<SwarmMetrics>,
) -> NodeConfig {
    let mut config = NodeConfig::default();
    config.metrics = metrics;
    config.identity = Identity::KeyFile(key_path(args.key_file.clone(), args.data_dir.clone()));
    config.listen = listen;
    config.listen_optional = optional;
    config.bootstrap = args.bootstrap.clone();
    config.mplex = args.mplex;
    config.accept_unsigned_records = args.accept_unsigned_records;
    config.accept_typescript_messages = args.accept_typescript_messages;
    config.sequence_numbers = args.sequence_numbers;
    config.nat.external_addresses = args.external_address.clone();
    config.nat.autonat = !args.no_autonat;
    if let Some(secs) = args.autonat_delay_secs {
        config.nat.probe_delay = Duration::from_secs(secs);
    }
    if let Some(secs) = args.autonat_retry_secs {
        config.nat.retry_interval = Duration::from_secs(secs);
    }
    config.nat.relays = args.relay.clone();
    config.nat.relay_server = args.relay_server.then(p2p_core::RelayServerConfig::default);
    config.nat.hole_punching = !args.no_hole_punching;
    config.dht.public_ranges = p2p_core::PublicRanges::new(args.public_ranges.clone());
    args.limits.apply(&mut config);
    config.dht.mode = match args.dht_mode {
        DhtModeArg::Client => DhtModeSetting::Client,
        DhtModeArg::Server => DhtModeSetting::Server,
        DhtModeArg::Auto => DhtModeSetting::Auto,
    };
    config
}

/// The default listen addresses: IPv4 (required) and IPv6 (where the host
/// has it).
fn default_listen(tcp: u16, ws: u16) -> Result<(Vec<Multiaddr>, Vec<Multiaddr>)> {
    Ok((
        vec![
            format!("/ip4/0.0.0.0/tcp/{tcp}").parse()?,
            format!("/ip4/0.0.0.0/tcp/{ws}/ws").parse()?,
        ],
        vec![
            format!("/ip6/::/tcp/{tcp}").parse()?,
            format!("/ip6/::/tcp/{ws}/ws").parse()?,
        ],
    ))
}

/// Refuses a listen address whose TCP port another socket holds. libp2p
/// listens with `SO_REUSEPORT`, so a second node on the same explicit port
/// would start too and the kernel would split incoming connections between
/// the two; a plain bind (without it) fails when any socket holds the port.
fn check_port_free(address: &Multiaddr) -> Result<()> {
    use p2p_core::libp2p::multiaddr::Protocol;
    let mut parts = address.iter();
    // IPv4 only: a std socket on an IPv6 address is dual-stack where
    // libp2p's is IPv6-only, so it would see IPv4 holders as conflicts.
    let ip: std::net::IpAddr = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        _ => return Ok(()),
    };
    let Some(Protocol::Tcp(port)) = parts.next() else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {address}: TCP port {port} is taken (another lotus-p2p, or kubo, \
             which also uses 4001); choose free ports with --listen"
        ),
        // Anything else (no such address here, no permission) is the
        // node's own listen error to report.
        Err(_) => Ok(()),
    }
}

/// Starts the node on the listen addresses given (or the defaults); a port
/// that is taken is an error that says so.
async fn start(
    args: &RunArgs,
    metrics: Option<SwarmMetrics>,
) -> Result<(Node, broadcast::Receiver<Event>)> {
    let listen = if args.listen.is_empty() {
        default_listen(DEFAULT_TCP_PORT, DEFAULT_TCP_PORT + 1)?
    } else {
        (args.listen.clone(), Vec::new())
    };
    for address in &listen.0 {
        check_port_free(address)?;
    }
    // Subscribed before the node starts, so no event of the start is lost
    // (bootstrap connections, relay reservations): they print after the
    // `listening` line.
    let node = p2p_core::NodeBuilder::from_config(config(args, listen, metrics)).build()?;
    let events = node.subscribe();
    match node.start().await {
        Ok(()) => Ok((node, events)),
        Err(NodeError::Listen { address, source }) => Err(anyhow::anyhow!(
            "cannot listen on {address}: {source}; choose addresses with --listen"
        )),
        Err(e) => Err(e).context("starting the node"),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    for relay in &args.relay {
        if !matches!(
            relay.iter().last(),
            Some(p2p_core::libp2p::multiaddr::Protocol::P2p(_))
        ) {
            bail!("--relay {relay}: the address must end in /p2p/<relay peer id>");
        }
    }
    let out = Output::new(args.json);
    let registry = metrics::Metrics::new();
    let (node, events) = start(&args, Some(registry.swarm())).await?;
    let exporter = metrics::Exporter::new(node.clone(), registry);
    let addrs = node.listen_addrs().await?;
    let data_dir = data_dir(&args);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let signer = std::sync::Arc::new(signer::Signer::new(
        node.clone(),
        args.signer_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("signer.key")),
    ));
    signer.resume().await?;
    let api = if args.no_api {
        None
    } else {
        Some(
            api::serve(
                args.api,
                &data_dir,
                args.api_token.clone(),
                node.clone(),
                std::sync::Arc::clone(&signer),
                exporter.clone(),
            )
            .await?,
        )
    };
    out.listening(&node, &addrs, api.as_ref().map(|a| a.addr));
    let metrics = match args.metrics {
        Some(addr) => Some(metrics::serve(addr, exporter).await?),
        None => None,
    };
    let events = tokio::spawn(output::print_events(events, out.clone()));
    let outcome = tokio::select! {
        r = control::run(node.clone(), &signer, out.clone()) => r,
        _ = shutdown_signal() => Ok(()),
    };
    node.stop().await?;
    events.abort();
    if let Some(api) = api {
        api.task.abort();
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    out.stopped();
    outcome
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The contract scripts rely on: every flag `--some-flag` of `run` has
    /// the variable `LOTUS_P2P_SOME_FLAG` (and so a config-file key).
    #[test]
    fn every_run_flag_has_its_environment_variable() {
        let cli = super::Cli::command();
        let run = cli
            .get_subcommands()
            .find(|c| c.get_name() == "run")
            .expect("a run subcommand");
        let mut flags = 0;
        for arg in run.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version"].contains(&long) {
                continue;
            }
            let expected = format!("LOTUS_P2P_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(expected.as_str()),
                "--{long}"
            );
            flags += 1;
        }
        assert!(flags > 80, "only {flags} flags found");
    }
}
