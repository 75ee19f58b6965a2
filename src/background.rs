//! Tasks that live beside the server: registered with the application state when it is built,
//! started by `app::serve` once it listens, and stopped by it after the last request was
//! answered. Each task gets a [`Stop`] and returns soon after it fires; one that does not is
//! aborted after a grace period, so a shutdown never waits on it for long.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

type Task = dyn Fn(Stop) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// The background tasks of one application state. Clones share the count of running tasks.
#[derive(Clone, Default)]
pub struct Background {
    tasks: Vec<(&'static str, Arc<Task>)>,
    live: Arc<AtomicUsize>,
}

impl Background {
    /// Adds a task that every [`start`](Self::start) runs until its [`Stop`] fires.
    pub fn register<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: Fn(Stop) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push((name, Arc::new(move |stop| Box::pin(task(stop)))));
    }

    /// Spawns every registered task on the current runtime.
    pub fn start(&self) -> Running {
        let (signal, stop) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for &(name, ref task) in &self.tasks {
            let live = Live::new(&self.live);
            let run = task(Stop(stop.clone()));
            tasks.spawn(async move {
                // Counted from before its spawn until it is dropped, finished or aborted.
                let _live = live;
                run.await;
                name
            });
        }
        Running { tasks, signal }
    }

    /// How many started tasks have not ended yet.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// The started tasks. Dropping this aborts them (a `serve` future dropped before its end).
#[must_use = "dropping the running tasks aborts them"]
pub struct Running {
    tasks: JoinSet<&'static str>,
    signal: watch::Sender<bool>,
}

impl Running {
    /// Fires every task's [`Stop`] and waits up to `grace` for them to return, then aborts
    /// those still running and waits for them to be gone.
    pub async fn stop(mut self, grace: Duration) {
        self.signal.send_replace(true);
        let tasks = &mut self.tasks;
        let drained = tokio::time::timeout(grace, async {
            while let Some(ended) = tasks.join_next().await {
                match ended {
                    Ok(name) => tracing::debug!(task = name, "background task stopped"),
                    Err(error) => tracing::error!(%error, "background task failed"),
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                tasks = self.tasks.len(),
                grace_secs = grace.as_secs_f64(),
                "background tasks did not stop in time: aborted"
            );
            self.tasks.shutdown().await;
        }
    }
}

/// Handed to each background task: fires once, when the server stops.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once the task is asked to stop (or nothing is left that could ask).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn a_task_that_heeds_stop_ends_by_itself_and_one_that_does_not_is_aborted() {
        let heeded = Arc::new(AtomicBool::new(false));
        let mut background = Background::default();
        let flag = heeded.clone();
        background.register("heeds", move |mut stop| {
            let flag = flag.clone();
            async move {
                stop.requested().await;
                flag.store(true, Ordering::SeqCst);
            }
        });
        background.register("ignores", |_stop| std::future::pending::<()>());
        let running = background.start();
        assert_eq!(background.live(), 2);
        tokio::task::yield_now().await;
        assert!(!heeded.load(Ordering::SeqCst), "not asked to stop yet");
        running.stop(Duration::from_millis(50)).await;
        assert!(heeded.load(Ordering::SeqCst), "saw the stop signal");
        assert_eq!(background.live(), 0, "the ignoring one was aborted");
    }

    #[tokio::test]
    async fn dropping_the_running_set_aborts_its_tasks() {
        let mut background = Background::default();
        background.register("forever", |_stop| std::future::pending::<()>());
        let running = background.start();
        assert_eq!(background.live(), 1);
        drop(running);
        // An aborted task is dropped on the runtime's next turn.
        for _ in 0..10 {
            if background.live() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(background.live(), 0);
    }
}
