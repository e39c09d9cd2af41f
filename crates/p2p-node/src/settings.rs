//! Where `run`'s settings come from: flags, then `LOTUS_P2P_<FLAG>`
//! environment variables, then the TOML file (`--config`, default
//! `<data dir>/config.toml` when it exists), then defaults.
//!
//! The file's top-level keys are the long flags (`listen = ["/ip4/…"]`,
//! `api = "127.0.0.1:4010"`, `relay-server = true`; `_` works for `-`).
//! A key set by a flag or the environment is left alone; the others become
//! flags, so one parser checks every value wherever it came from.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};
use serde_json::{Value, json};

/// Settings whose values `config` never prints.
const SECRETS: &[&str] = &["api_token"];

/// Where each setting of a resolved command line came from.
pub(crate) struct Resolved {
    /// The command line with the file's settings added.
    pub(crate) argv: Vec<OsString>,
    /// The file read, if any.
    pub(crate) file: Option<PathBuf>,
    /// Setting ids taken from the file.
    pub(crate) from_file: Vec<String>,
}

/// The platform's data directory for lotus-p2p (`$XDG_DATA_HOME/lotus-p2p`
/// or `~/.local/share/lotus-p2p` on Linux).
pub(crate) fn default_data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "lotus-p2p")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".lotus-p2p"))
}

/// Adds the config file's settings to `argv` for the subcommand `sub` (whose
/// matches are `sub_matches`, parsed from `argv` with flags and environment).
pub(crate) fn resolve(
    argv: Vec<OsString>,
    sub: &Command,
    sub_matches: &ArgMatches,
    global_data_dir: Option<&Path>,
) -> Result<Resolved> {
    let explicit = sub_matches.get_one::<PathBuf>("config").cloned();
    let data_dir = sub_matches
        .get_one::<PathBuf>("data_dir")
        .cloned()
        .or_else(|| global_data_dir.map(Path::to_path_buf))
        .unwrap_or_else(default_data_dir);
    let file = match explicit {
        Some(file) => Some(file),
        None => Some(data_dir.join("config.toml")).filter(|f| f.exists()),
    };
    let Some(path) = file else {
        return Ok(Resolved {
            argv,
            file: None,
            from_file: Vec::new(),
        });
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("the config file {} is not TOML", path.display()))?;
    let mut argv = argv;
    let mut from_file = Vec::new();
    for (key, value) in table {
        let id = key.replace('-', "_");
        let Some(arg) = sub
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && a.get_long().is_some())
        else {
            bail!("{}: unknown setting {key:?}", path.display());
        };
        let set_elsewhere = matches!(
            sub_matches.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if set_elsewhere || id == "config" {
            continue;
        }
        let flag = format!("--{}", arg.get_long().unwrap_or(&id));
        let mut add = |value: &toml::Value| -> Result<()> {
            match value {
                toml::Value::Boolean(true) => argv.push(flag.clone().into()),
                toml::Value::Boolean(false) => {}
                // One word, so a value starting with '-' is not a flag.
                toml::Value::String(s) => argv.push(format!("{flag}={s}").into()),
                toml::Value::Integer(n) => argv.push(format!("{flag}={n}").into()),
                toml::Value::Float(x) => argv.push(format!("{flag}={x}").into()),
                other => bail!(
                    "{}: {key} holds a {}, not a flag value",
                    path.display(),
                    other.type_str()
                ),
            }
            Ok(())
        };
        match &value {
            toml::Value::Array(items) => items.iter().try_for_each(&mut add)?,
            single => add(single)?,
        }
        from_file.push(id);
    }
    Ok(Resolved {
        argv,
        file: Some(path),
        from_file,
    })
}

/// `lotus-p2p config …`: the effective settings of `run` with the same
/// arguments, where each came from, secrets hidden.
pub(crate) fn describe(matches: &ArgMatches, resolved: &Resolved) -> Value {
    let mut settings = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for id in matches.ids() {
        let id = id.as_str();
        let values: Vec<String> = matches
            .get_raw(id)
            .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if SECRETS.contains(&id) {
            json!("(hidden)")
        } else if let [one] = values.as_slice() {
            json!(one)
        } else {
            json!(values)
        };
        let source = if resolved.from_file.iter().any(|f| f == id) {
            "file"
        } else {
            match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "env",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            }
        };
        if source == "unset" {
            continue;
        }
        settings.insert(id.replace('_', "-"), value);
        sources.insert(id.replace('_', "-"), source);
    }
    json!({
        "configFile": resolved.file.as_ref().map(|f| f.display().to_string()),
        "settings": settings,
        "sources": sources,
    })
}
