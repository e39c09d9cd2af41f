//! Puts the git commit the binary is built from into `LOTUS_P2P_COMMIT`
//! (for `--version`); "unknown" outside a git checkout.

use std::process::Command;

fn main() {
    // A build without the git history (a container build) passes it in.
    println!("cargo:rerun-if-env-changed=LOTUS_P2P_COMMIT");
    if let Some(commit) = std::env::var("LOTUS_P2P_COMMIT")
        .ok()
        .filter(|c| !c.is_empty() && c != "unknown")
    {
        println!("cargo:rustc-env=LOTUS_P2P_COMMIT={commit}");
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=LOTUS_P2P_COMMIT={commit}");
    // A new commit rebuilds the version string.
    if let Some(git_dir) = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
    {
        let git_dir = git_dir.trim();
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/refs/heads");
        println!("cargo:rerun-if-changed={git_dir}/packed-refs");
    }
}
