//! The mistakes an operator makes before an election, against the real binary: a past or
//! implausible window is refused; `urna serve --check` finds each broken piece (log key,
//! roll, roll against the log, certificate, window) and writes nothing; a start that cannot
//! bind its port generates nothing; a changed setting is named with both values; secret
//! files are readable by their owner only.

mod e2e;
mod net;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use e2e::Server;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn urna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_urna"))
}

/// RFC 3339 to the second, as the server prints times.
fn at(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

/// `dir/urna.toml`: a demo election (the roll at `dir/roll.txt`, generated only when
/// `demo` is set), storage in `dir/data`, `election` extra lines, and `tail` appended (whole
/// sections, e.g. `[tls]`).
fn config(dir: &Path, listen: &str, demo: bool, election: &str, tail: &str) -> PathBuf {
    config_as("urna.toml", dir, listen, demo, election, tail)
}

/// [`config`] under another file name in `dir`.
fn config_as(
    name: &str,
    dir: &Path,
    listen: &str,
    demo: bool,
    election: &str,
    tail: &str,
) -> PathBuf {
    let path = dir.join(name);
    let demo = if demo { "demo_voters = 3" } else { "" };
    let text = format!(
        "[server]\nlisten = \"{listen}\"\nshutdown_grace_ms = 1000\n\n[election]\n\
         id = \"e2e-2026\"\nroll = \"{d}/roll.txt\"\n{demo}\n{election}\n\n\
         [storage]\ndir = \"{d}/data\"\n{tail}\n",
        d = dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run(args: &[&str], config: &Path) -> Output {
    urna()
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `error ` lines of a `--check`, which must exit 1 with at least one.
fn check_errors(config: &Path) -> Vec<String> {
    let out = run(&["serve", "--check"], config);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("check failed"), "{stderr}");
    assert!(!stderr.contains("Caused by") && !stderr.contains("backtrace"));
    stderr
        .lines()
        .filter(|l| l.starts_with("error "))
        .map(str::to_owned)
        .collect()
}

/// Every file under `dir`: size, modification time, mode. What "writes nothing" compares.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    // Bounded by the tree: each directory is read once.
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.insert(e.path(), (m.len(), m.modified().unwrap(), m.mode()));
        }
    }
    out
}

/// Starts the server once on `config` (so the storage holds a log, a key and a generated
/// certificate), then stops it.
async fn make_election(config: &Path) {
    Server::start(config).await.terminate();
}

#[test]
fn a_past_window_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let closed = at(OffsetDateTime::now_utc() - Duration::from_secs(3600));
    let config = config(
        dir.path(),
        "127.0.0.1:0",
        true,
        &format!("closes_at = \"{closed}\""),
        "",
    );
    let out = run(&["serve"], &config);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("election.closes_at {closed} is in the past")),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-closed-window"), "{stderr}");
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(out.stdout.is_empty(), "no banner: {}", text(&out.stdout));
    assert!(!dir.path().join("data").exists(), "nothing generated");
    assert!(!dir.path().join("roll.txt").exists(), "no demo roll");
}

#[test]
fn an_implausible_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A year typo: a window of a year and a week.
    let opens = OffsetDateTime::now_utc() + Duration::from_secs(86_400);
    let closes = opens + time::Duration::days(372);
    let config = config(
        dir.path(),
        "127.0.0.1:0",
        true,
        &format!(
            "opens_at = \"{}\"\ncloses_at = \"{}\"",
            at(opens),
            at(closes)
        ),
        "",
    );
    let out = run(&["serve", "--allow-closed-window"], &config);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("372.0 days long (at most 92 allowed)"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_each_mistake_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = config(d, "127.0.0.1:0", true, "", "");
    make_election(&good).await;
    // From now on, a configured certificate: the pair the first start generated.
    std::fs::copy(d.join("data/tls/cert.pem"), d.join("cert.pem")).unwrap();
    std::fs::copy(d.join("data/tls/key.pem"), d.join("key.pem")).unwrap();
    let tls = |cert: &str| {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            d.join(cert).display(),
            d.join("key.pem").display()
        )
    };
    let good = config(d, "127.0.0.1:0", false, "", &tls("cert.pem"));
    let before = snapshot(d);

    let out = run(&["serve", "--check"], &good);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for line in [
        "ok    certificate: ",
        "ok    roll: ",
        "ok    log key: ",
        "ok    log: ",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    assert!(
        stdout.contains("2 entries") || stdout.contains("1 entry"),
        "{stdout}"
    );
    assert!(stdout.contains("check passed"), "{stdout}");

    // Each mistake alone is found, and said in one line naming what is wrong.
    let one = |config: &Path, wanted: &[&str]| {
        let errors = check_errors(config);
        assert_eq!(errors.len(), 1, "{errors:?}");
        for w in wanted {
            assert!(errors[0].contains(w), "{w:?} not in {errors:?}");
        }
    };
    // A bad log key.
    let key = d.join("data/log.key");
    let real_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, "PRIVATE+KEY+not a key\n").unwrap();
    one(&good, &["error log key: ", "malformed"]);
    std::fs::write(&key, &real_key).unwrap();
    // A key readable by everyone.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    one(&good, &["error log key: ", "mode 0644", "chmod 600"]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A missing roll.
    let roll = d.join("roll.txt");
    std::fs::rename(&roll, d.join("roll.bak")).unwrap();
    one(
        &good,
        &[
            "error roll: ",
            &roll.display().to_string(),
            "does not exist",
        ],
    );
    // A roll that is not the log's.
    let text_roll = std::fs::read_to_string(d.join("roll.bak")).unwrap();
    std::fs::write(
        &roll,
        text_roll.lines().take(2).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    one(
        &good,
        &[
            "error log: ",
            "election.roll (its SHA-256): the log's manifest has ",
        ],
    );
    std::fs::rename(d.join("roll.bak"), &roll).unwrap();
    // An unreadable certificate.
    std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
    let bad_cert = config_as("bad.toml", d, "127.0.0.1:0", false, "", &tls("garbage.pem"));
    one(&bad_cert, &["error certificate: ", "garbage.pem"]);
    let missing_cert = config_as("nope.toml", d, "127.0.0.1:0", false, "", &tls("nope.pem"));
    one(&missing_cert, &["error certificate: ", "nope.pem"]);
    for f in ["garbage.pem", "bad.toml", "nope.toml"] {
        std::fs::remove_file(d.join(f)).unwrap();
    }
    // A window in the past, on a fresh storage directory.
    let fresh = tempfile::tempdir().unwrap();
    let closed = at(OffsetDateTime::now_utc() - Duration::from_secs(60));
    let past = config(
        fresh.path(),
        "127.0.0.1:0",
        true,
        &format!("closes_at = \"{closed}\""),
        "",
    );
    one(&past, &["error window: ", &closed, "in the past"]);
    assert!(
        !fresh.path().join("data").exists(),
        "--check writes nothing"
    );
    let out = run(&["serve", "--check", "--allow-closed-window"], &past);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // The good config again (restored files), and nothing was written by any check.
    let out = run(&["serve", "--check"], &good);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let after = snapshot(d);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, b) in &before {
        // The test put these back: same bytes, new times.
        if path == &key || path == &roll {
            continue;
        }
        assert_eq!(Some(b), after.get(path), "{} changed", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_beside_a_live_server_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0", true, "", "");
    let server = Server::start(&config).await;
    let out = run(&["serve", "--check"], &config);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("a server is running on it"), "{stdout}");
    server.terminate();
}

#[test]
fn a_port_in_use_fails_the_start_before_any_state_is_generated() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &addr.to_string(), true, "", "");
    let out = run(&["serve"], &config);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("url:"), "no url printed");
    assert!(
        !dir.path().join("data").exists(),
        "no certificate, key or log"
    );
    assert!(!dir.path().join("roll.txt").exists(), "no demo electorate");
}

#[test]
fn a_missing_roll_fails_the_start_before_a_certificate_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0", false, "", "");
    let out = run(&["serve"], &config);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "no tls/ left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_setting_is_named_with_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (first, second) = (
        at(now + time::Duration::days(10)),
        at(now + time::Duration::days(40)),
    );
    let closes = |t: &str| format!("closes_at = \"{t}\"");
    let config_path = config(dir.path(), "127.0.0.1:0", true, &closes(&first), "");
    make_election(&config_path).await;

    // The date corrected after the log was made: the start names the setting and both dates.
    config(dir.path(), "127.0.0.1:0", true, &closes(&second), "");
    let out = run(&["serve"], &config_path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let wanted =
        format!("election.closes_at: the log's manifest has {first}, this server has {second}");
    assert!(stderr.contains(&wanted), "{stderr}");
    assert!(stderr.contains("hint: log: entry 0 pins these"), "{stderr}");
    let errors = check_errors(&config_path);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&wanted), "{errors:?}");

    // Another log key of the same name: the key is named too.
    config(dir.path(), "127.0.0.1:0", true, &closes(&first), "");
    let key = dir.path().join("data/log.key");
    std::fs::remove_file(&key).unwrap();
    let out = urna()
        .args(["keygen", "--name", "urna.localhost/e2e-2026", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let errors = check_errors(&config_path);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("log key (its verifier key): the log's manifest has ")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "127.0.0.1:0", true, "", "");
    make_election(&config).await;
    for secret in ["voters.jsonl", "data/log.key", "data/tls/key.pem"] {
        let mode = std::fs::metadata(dir.path().join(secret)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{secret}: {mode:o}");
    }
    // `urna roll generate` too, even over an existing world-readable file.
    let keys = dir.path().join("more.jsonl");
    std::fs::write(&keys, "").unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = urna()
        .args(["roll", "generate", "--count", "2", "--roll"])
        .arg(dir.path().join("more.txt"))
        .arg("--keys")
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&keys).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&keys).unwrap().lines().count(), 2);
}
