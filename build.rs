//! Build facts for `urna_build_info` (docs/OPERATIONS.md, "Reading the metrics"): which
//! commit, compiler and target a running server was built from, so an operator can tell
//! which build each node runs during a rolling upgrade.
//!
//! Nothing here may fail the build: outside a git checkout (a source tarball, `cargo
//! package`), or without git installed, the revision is `unknown`. A packager may set
//! `URNA_GIT_REVISION` to name it. Every value is lowercased: label values are lowercase
//! throughout the server's metrics.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=URNA_GIT_REVISION");

    let revision = match std::env::var("URNA_GIT_REVISION") {
        Ok(r) if !r.trim().is_empty() => r.trim().to_owned(),
        _ => git_revision(&manifest).unwrap_or_else(|| "unknown".to_owned()),
    };
    let rustc = std::env::var_os("RUSTC")
        .and_then(|rustc| Command::new(rustc).arg("--version").output().ok())
        .filter(|o| o.status.success())
        .and_then(|o| {
            // "rustc 1.89.0 (29483883e 2025-08-04)": the version alone.
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace().nth(1).map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "unknown".to_owned());

    for (key, value) in [
        ("URNA_BUILD_VERSION", version),
        ("URNA_BUILD_REVISION", revision),
        ("URNA_BUILD_RUSTC", rustc),
        ("URNA_BUILD_TARGET", target),
    ] {
        println!("cargo:rustc-env={key}={}", value.to_lowercase());
    }
}

/// The checked-out commit, and `rerun-if-changed` on the files that move when it changes
/// (HEAD, the branch's ref, packed-refs). Only files that exist are named: cargo reruns a
/// build script on every build when a named file is missing.
fn git_revision(manifest: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(manifest)
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let revision = git(&["rev-parse", "--verify", "-q", "HEAD"])?;
    if revision.len() != 40 || !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        let path = manifest.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(revision)
}
