//! Running a whole scenario: load the voters, plan every task (signing, encoding — all
//! before the clock), open the keep-alive connections of the kinds that want them, then run
//! the tasks side by side and report on each.
//!
//! Every task ends at the scenario's deadline (plus a short grace for answers in flight,
//! or an arriving voter's own deadline) or sooner when its work runs out: the simulator
//! always stops by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::ballots::load_voters;
use crate::kinds::{Plan, PlanContext, Window};
use crate::net::{preflight, verifier_key, Target};
use crate::report::{Report, Stats, TaskReport, Verdict};
use crate::scenario::Scenario;

/// File descriptors the process needs besides the tasks' sockets (stdio, the runtime's
/// own, files read at start).
const SPARE_FDS: u64 = 64;

/// Runs every task of `s` side by side and reports on each.
pub async fn run(s: &Scenario) -> anyhow::Result<Report> {
    // The plans below rely on the bounds (e.g. one lane per HTTP/1.1 connection).
    s.check()?;
    let sockets: usize = s.tasks.iter().map(|t| t.spec().max_sockets()).sum();
    let open_files = raise_open_files(sockets as u64 + SPARE_FDS);
    let target = Arc::new(Target::new(
        s.target,
        &s.server_name,
        if s.plain { None } else { s.ca.as_deref() },
    )?);
    // Nothing is signed or opened against a target that is not there.
    let first = preflight(&target).await?;
    let verifier_key: Option<Arc<str>> = if s.verify_receipts && s.voters.is_some() {
        Some(verifier_key(&target, first).await?.into())
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
    let mut running = JoinSet::new();
    for (i, plan) in plans.into_iter().enumerate() {
        let target = target.clone();
        if plan.isolated() {
            let done = run_isolated(format!("task-{i}"), plan, target, window)?;
            running.spawn(async move { (i, done.await.unwrap_or_default()) });
        } else {
            running.spawn(async move { (i, plan.run(target, window).await) });
        }
    }
    let mut reports: Vec<Option<TaskReport>> = vec![None; s.tasks.len()];
    while let Some(done) = running.join_next().await {
        let (i, stats) = done?;
        let t = &s.tasks[i];
        reports[i] = Some(TaskReport::new(
            t.name(),
            t.kind(),
            start.elapsed().min(Duration::from_secs(s.duration_s)),
            &stats,
        ));
    }
    let tasks: Vec<TaskReport> = reports.into_iter().flatten().collect();
    Ok(Report {
        open_files,
        verdict: Verdict::of(&tasks, &s.expect),
        tasks,
    })
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
) -> anyhow::Result<tokio::sync::oneshot::Receiver<Stats>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new().name(name).spawn(move || {
        let _ = tx.send(rt.block_on(plan.run(target, window)));
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
