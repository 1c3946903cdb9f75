//! `scripts/run.sh` starts the binary wherever cargo put it: with `CARGO_TARGET_DIR` set (or
//! a configured `build.target-dir`) the build succeeded and the old script failed with 127.
//! Cargo is replaced by a stand-in on `PATH` that builds nothing and reports a target
//! directory holding a stand-in `urna`, which records how it was called.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn run_sh_starts_the_binary_from_the_target_dir_cargo_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (bin, target) = (tmp.path().join("bin"), tmp.path().join("elsewhere/target"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(target.join("release")).unwrap();
    let calls = tmp.path().join("calls");
    script(
        &bin.join("cargo"),
        &format!(
            "echo \"cargo $*\" >> '{calls}'\n\
             if [ \"$1\" = metadata ]; then\n\
               printf '{{\"packages\":[],\"target_directory\":\"%s\",\"version\":1}}\\n' \"$CARGO_TARGET_DIR\"\n\
             fi",
            calls = calls.display()
        ),
    );
    script(
        &target.join("release/urna"),
        &format!("echo \"urna $* (in $PWD)\" >> '{}'", calls.display()),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/run.sh"))
        .arg("--check")
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}{calls}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines[0], "cargo build --release --workspace", "{calls}");
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "urna serve --config config/urna.toml --check (in {})",
            env!("CARGO_MANIFEST_DIR")
        ),
        "{calls}"
    );
}
