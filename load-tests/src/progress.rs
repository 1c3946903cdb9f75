//! Live progress while a run runs: one line per task — requests in the last second,
//! answers by class, errors, and the legitimate ballots' p99 so far — redrawn twice a
//! second with `indicatif`. Quiet when stdout is not a terminal (a script, CI, a pipe to a
//! file): the report is what those read.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::live::LiveTask;

/// How often the lines are redrawn.
const EVERY: Duration = Duration::from_millis(500);

/// The running display; [`Running::finish`] clears it.
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the display for `tasks` (second 0 at `start`, the counted window ending at
/// `deadline`); draws nothing unless stdout is a terminal.
pub fn spawn(tasks: Vec<Arc<LiveTask>>, start: Instant, deadline: Instant) -> Running {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let target = if std::io::stdout().is_terminal() {
        ProgressDrawTarget::stdout_with_hz(4)
    } else {
        ProgressDrawTarget::hidden()
    };
    let multi = MultiProgress::with_draw_target(target);
    let style = ProgressStyle::with_template("{prefix:.bold} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let clock = multi.add(ProgressBar::new_spinner());
    let bars: Vec<ProgressBar> = tasks
        .iter()
        .map(|t| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(style.clone());
            b.set_prefix(t.name.clone());
            b
        })
        .collect();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        // Bounded: ends when the run says so (the runner always does, after its tasks).
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            let t = Instant::now().saturating_duration_since(start).as_secs();
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            clock.set_message(format!("t = {t} s, {left} s left"));
            for (task, bar) in tasks.iter().zip(&bars) {
                let p = task.progress();
                let p99 = p
                    .legit_p99_ms
                    .map(|v| format!(", legit p99 {v:.1} ms"))
                    .unwrap_or_default();
                bar.set_message(format!(
                    "{}/s | 2xx {} 4xx {} 429 {} 5xx {} | errors {}{p99}",
                    p.last_s, p.ok, p.c4xx, p.c429, p.c5xx, p.errors
                ));
            }
        }
        for b in &bars {
            b.finish_and_clear();
        }
        clock.finish_and_clear();
        let _ = multi.clear();
    });
    Running { stop, task }
}
