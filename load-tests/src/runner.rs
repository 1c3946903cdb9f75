//! Running a whole scenario: load the voters, plan every task (signing, encoding — all
//! before the clock), open the keep-alive connections of the kinds that want them, then run
//! the tasks side by side and report on each.
//!
//! Every task ends at the scenario's deadline (plus a short grace for answers in flight,
//! or an arriving voter's own deadline) or sooner when its work runs out: the simulator
//! always stops by itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::audit::Opening;
use crate::ballots::load_voters;
use crate::kinds::{Plan, PlanContext, Window};
use crate::live::{LiveTask, TAIL_S};
use crate::net::{preflight, verifier_key, Target};
use crate::report::{Report, RunMeta, ServerProcess, Stats, TaskReport, Verdict};
use crate::scenario::Scenario;
use crate::server::{sample, scrape, ServerMetrics};

/// What a run is given besides its scenario (the command line's).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The scenario file, for the report.
    pub scenario_path: Option<PathBuf>,
    /// The server's pid on this machine: its RSS and CPU are sampled each second.
    pub server_pid: Option<u32>,
    /// Show live progress (only where stdout is a terminal).
    pub progress: bool,
}

/// File descriptors the process needs besides the tasks' sockets (stdio, the runtime's
/// own, files read at start).
const SPARE_FDS: u64 = 64;

/// Runs every task of `s` side by side and reports on each.
pub async fn run(s: &Scenario) -> anyhow::Result<Report> {
    run_with(s, &RunOptions::default()).await
}

/// [`run`], with the command line's options.
pub async fn run_with(s: &Scenario, opts: &RunOptions) -> anyhow::Result<Report> {
    // The plans below rely on the bounds (e.g. one lane per HTTP/1.1 connection).
    s.check()?;
    // Every draw of the run comes from its seed: one is drawn, said and recorded when the
    // scenario names none, so the run can be replayed.
    let seeded;
    let s = match s.seed {
        Some(_) => s,
        None => {
            let mut c = s.clone();
            let seed = crate::seed::random();
            c.seed = Some(seed);
            eprintln!("urna-sim: seed {seed} (replay this run with --seed {seed})");
            seeded = c;
            &seeded
        }
    };
    let started_at = time::OffsetDateTime::now_utc();
    let sockets: usize = s.tasks.iter().map(|t| t.spec().max_sockets()).sum();
    let open_files = raise_open_files(sockets as u64 + SPARE_FDS);
    let target = Arc::new(Target::new(
        s.target,
        &s.server_name,
        if s.plain { None } else { s.ca.as_deref() },
    )?);
    // Nothing is signed or opened against a target that is not there.
    let first = preflight(&target).await?;
    // The closing audit needs the roll (the rules) and a TLS target (the auditor's client).
    let audits = s.audit && s.roll.is_some() && !s.plain && s.ca.is_some();
    let checks_receipts = s.verify_receipts && s.voters.is_some();
    let log_key: Option<Arc<str>> = if checks_receipts || audits {
        Some(verifier_key(&target, first).await?.into())
    } else {
        None
    };
    let verifier_key = log_key.clone().filter(|_| checks_receipts);
    // The log as it is before anything is sent: the audit proves the end extends it.
    let opening = match (&log_key, &s.ca) {
        (Some(key), Some(ca)) if audits => Some(Opening::fetch(s.target, ca, key).await),
        _ => None,
    };
    let metrics_before = if s.metrics {
        Some(scrape(&target).await)
    } else {
        None
    };
    let wants: Vec<(usize, bool)> = s
        .tasks
        .iter()
        .map(|t| (t.spec().voters_wanted(s), t.spec().shares_voters()))
        .collect();
    let voters = match &s.voters {
        Some(path) => {
            // Each task takes its own slice of the file: load what they want together.
            let need = wants.iter().map(|w| w.0).sum::<usize>().max(1);
            let path = path.clone();
            tokio::task::spawn_blocking(move || load_voters(&path, need)).await??
        }
        None => Vec::new(),
    };
    let allotted = allot(&wants, voters.len());
    // Everything costly (signing) happens before the clock starts.
    let mut plans = Vec::new();
    let mut cx = PlanContext {
        scenario: s,
        voters: &voters,
        voter_offset: 0,
        voters_allotted: 0,
        verifier_key,
        host: target.host(),
        target: &target,
    };
    for (task, n) in s.tasks.iter().zip(&allotted) {
        cx.voters_allotted = *n;
        plans.push(task.spec().plan(&mut cx)?);
    }
    drop(voters);
    for plan in &mut plans {
        plan.connect(&target, Instant::now() + Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(s.settle_ms)).await;
    // HTTP lanes send from `launch`; what they see is counted from `start`, after the
    // warm-up. The other tasks begin at `start`.
    let launch = Instant::now();
    let start = launch + Duration::from_secs(s.warmup_s);
    let deadline = start + Duration::from_secs(s.duration_s);
    let window = Window {
        launch,
        start,
        deadline,
    };
    // One live table per task, second 0 at `start`, long enough for the tail of answers.
    let live: Vec<Arc<LiveTask>> = s
        .tasks
        .iter()
        .map(|t| {
            Arc::new(LiveTask::new(
                t.name(),
                start,
                s.duration_s + TAIL_S,
                t.spec().voters_wanted(s) > 0,
            ))
        })
        .collect();
    let progress = opts
        .progress
        .then(|| crate::progress::spawn(live.clone(), start, deadline));
    let sampling = opts.server_pid.map(|pid| {
        let until = deadline + Duration::from_secs(TAIL_S);
        let max = (s.duration_s + TAIL_S) as usize;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = tokio::spawn(sample(pid, start, until, max, stop.clone()));
        (pid, stop, h)
    });
    let mut running = JoinSet::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let target = target.clone();
        let table = Some(live[i].clone());
        if plan.isolated() {
            let done = run_isolated(format!("task-{i}"), plan, target, window, table)?;
            running.spawn(async move { (i, done.await.unwrap_or_default()) });
        } else {
            running.spawn(crate::live::within(table, async move {
                (i, plan.run(target, window).await)
            }));
        }
    }
    let mut reports: Vec<Option<TaskReport>> = vec![None; s.tasks.len()];
    let mut logged = Vec::new();
    let mut logged_not_kept = 0u64;
    while let Some(done) = running.join_next().await {
        let (i, mut stats) = done?;
        let t = &s.tasks[i];
        if let Some(a) = stats.arrivals.as_mut() {
            logged.append(&mut a.logged);
            logged_not_kept += a.logged_not_kept;
        }
        reports[i] = Some(TaskReport::new(
            t.name(),
            t.kind(),
            start.elapsed().min(Duration::from_secs(s.duration_s)),
            &stats,
        ));
    }
    let ran_s = start.elapsed().as_secs_f64().ceil() as u64;
    if let Some(p) = progress {
        p.finish().await;
    }
    let ended_at = time::OffsetDateTime::now_utc();
    let series = live.iter().map(|l| l.series(ran_s)).collect();
    let server_process = match sampling {
        Some((pid, stop, h)) => {
            // The sampler sees the flag at its next tick (within a second).
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            Some(ServerProcess {
                pid,
                samples: h.await.unwrap_or_default(),
            })
        }
        None => None,
    };
    let server_metrics = match metrics_before {
        Some(before) => Some(ServerMetrics::of(before, scrape(&target).await)),
        None => None,
    };
    let audit = match opening {
        Some(Ok(o)) => {
            let roll = s.roll.as_deref().expect("audits only with a roll");
            Some(
                o.close(roll, &logged, logged_not_kept, s.audit_max_entries)
                    .await,
            )
        }
        Some(Err(e)) => Some(crate::audit::AuditReport {
            failures: vec![e],
            ..Default::default()
        }),
        None => None,
    };
    let tasks: Vec<TaskReport> = reports.into_iter().flatten().collect();
    Ok(Report {
        meta: RunMeta {
            scenario_path: opts.scenario_path.as_ref().map(|p| p.display().to_string()),
            scenario_name: opts
                .scenario_path
                .as_ref()
                .and_then(|p| p.file_stem())
                .map(|n| n.to_string_lossy().into_owned()),
            seed: s.run_seed(),
            target: s.target.to_string(),
            started_at: rfc3339(started_at),
            ended_at: rfc3339(ended_at),
            duration_s: s.duration_s,
        },
        open_files,
        verdict: Verdict::of(&tasks, &s.expect),
        tasks,
        series,
        server_metrics,
        server_process,
        audit,
    })
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// How many voter keys each task takes from the `available` loaded, given what each wants
/// and whether it can share (`(wanted, shares)` per task, in order). When the file has
/// enough, each gets what it wants. Else tasks that need a key per voter (`arrivals`) get
/// theirs first, and tasks that can revote (`voters`, whose ballots cycle over their keys
/// with rising seqs) share the rest: one key each, then the remainder in proportion to what
/// they want — so two `voters` tasks no longer find the file used up by the first.
pub fn allot(wants: &[(usize, bool)], available: usize) -> Vec<usize> {
    let total: usize = wants.iter().map(|w| w.0).sum();
    if total <= available {
        return wants.iter().map(|w| w.0).collect();
    }
    let fixed: usize = wants.iter().filter(|w| !w.1).map(|w| w.0).sum();
    let sharing: Vec<usize> = wants
        .iter()
        .filter(|w| w.1 && w.0 > 0)
        .map(|w| w.0)
        .collect();
    // Not even one key for each voters task after the fixed ones: they get none, and their
    // plan says so ("no voters left"); an `arrivals` task short of keys says so in its own
    // words ("... unused voter keys ...").
    if fixed + sharing.len() > available {
        return wants
            .iter()
            .map(|&(want, shares)| if shares { 0 } else { want })
            .collect();
    }
    let rest = available - fixed - sharing.len();
    let shared_want: usize = sharing.iter().sum();
    wants
        .iter()
        .map(|&(want, shares)| match (shares, want) {
            (false, _) | (true, 0) => want,
            // Floors: together at most `rest`.
            (true, _) => (1 + rest * want / shared_want.max(1)).min(want),
        })
        .collect()
}

/// Runs `plan` on a single-threaded runtime in an OS thread of its own (see
/// [`Plan::isolated`]); its stats arrive on the returned channel. The OS shares the cores
/// between this thread and the attack's; only the run queue is not shared.
fn run_isolated(
    name: String,
    plan: Box<dyn Plan>,
    target: Arc<Target>,
    window: Window,
    live: Option<Arc<LiveTask>>,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<Stats>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new().name(name).spawn(move || {
        let _ = tx.send(rt.block_on(crate::live::within(live, plan.run(target, window))));
    })?;
    Ok(rx)
}

/// What the process may hold open, against what the scenario needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenFiles {
    /// The soft `RLIMIT_NOFILE` after raising it to the hard limit.
    pub limit: u64,
    /// Sockets the tasks may hold at once, plus a few spare.
    pub needed: u64,
}

/// Raises the open-files soft limit to the hard limit (a botnet scenario holds 15,000+
/// sockets; the usual soft limit is 1024) and says so on stderr when even that is short of
/// `needed`: connections past it fail as `connect` errors, which would read as the server's
/// doing.
fn raise_open_files(needed: u64) -> OpenFiles {
    let limit = match rlimit::Resource::NOFILE.get() {
        Ok((_, hard)) => rlimit::increase_nofile_limit(hard).unwrap_or(0),
        Err(_) => 0,
    };
    if limit < needed {
        eprintln!(
            "urna-sim: open-files limit is {limit}, the scenario may hold {needed}: \
             connections past the limit will fail as connect errors (raise the hard limit: \
             ulimit -Hn, or LimitNOFILE)"
        );
    }
    OpenFiles { limit, needed }
}

#[cfg(test)]
mod tests {
    use super::allot;

    #[test]
    fn two_voters_tasks_share_a_file_smaller_than_both_want() {
        // 64 keys, two voters tasks wanting 96 ballots each: 32 keys each, both run.
        assert_eq!(allot(&[(96, true), (96, true)], 64), [32, 32]);
        // Enough keys: each gets what it asked for.
        assert_eq!(allot(&[(10, true), (20, false)], 64), [10, 20]);
        // Arriving voters need a key each, first; voters tasks share what is left.
        assert_eq!(
            allot(&[(100, true), (40, false), (50, true)], 64),
            [15, 40, 8]
        );
        let a = allot(&[(100, true), (40, false), (50, true)], 64);
        assert!(a.iter().sum::<usize>() <= 64);
        // Not even one key for the voters task: it gets none (its plan then refuses the
        // run with its reason), the arriving voters what they need.
        assert_eq!(allot(&[(100, false), (10, true)], 100), [100, 0]);
    }
}
