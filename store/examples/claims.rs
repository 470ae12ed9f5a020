//! Claim throughput of the build queue, PostgreSQL and SQLite side by side: a fresh
//! database of each engine gets `CLAIMS_JOBS` jobs (2000 by default), then
//! `CLAIMS_WORKERS` Tokio tasks (8) each claim a job, begin its build and finish it,
//! until the queue is empty. Prints claims per second and the latencies of a claim and
//! of a whole cycle (claim + begin_build + finish), and asserts that every job was
//! claimed exactly once, by the workers' own tally and by the database's.
//!
//! `cargo run --release -p docbuild-store --example claims` (bench/claims.sh wraps
//! it). PostgreSQL is the server `scripts/services.sh` starts, or
//! `DOCBUILD_TEST_POSTGRES`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use docbuild_store::queue::{BuildResult, JobStatus, PRIORITY_NEW};
use docbuild_store::testing::TestDatabase;
use docbuild_store::{CrateId, Outcome, Store};

const LEASE: Duration = Duration::from_secs(600);

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

struct Run {
    engine: &'static str,
    jobs: usize,
    enqueue: Duration,
    claim: Duration,
    /// Each claim's latency, and each whole cycle's.
    claim_latencies: Vec<Duration>,
    cycle_latencies: Vec<Duration>,
    /// Claims that found the queue empty (one per worker at the end).
    empty_claims: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

async fn run(database: TestDatabase, jobs: usize, workers: usize) -> Run {
    let engine = database.engine();
    let store = Store::open(&database.store_location())
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
    let queue = store.queue();

    let started = Instant::now();
    let mut enqueued = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let id = CrateId::new("crates-io", "claims-bench", &format!("1.0.{i}")).unwrap();
        let (job, new) = queue.enqueue(&id, PRIORITY_NEW).await.unwrap();
        assert!(new, "{engine}: job {i} was already queued");
        enqueued.push(job);
    }
    let enqueue = started.elapsed();

    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let queue = queue.clone();
            let worker = format!("bench-worker-{w}");
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                let mut claim_latencies = Vec::new();
                let mut cycle_latencies = Vec::new();
                let mut empty = 0;
                loop {
                    let cycle = Instant::now();
                    let job = queue.claim(&worker, LEASE).await.unwrap();
                    let claim_latency = cycle.elapsed();
                    let Some(job) = job else {
                        empty += 1;
                        break;
                    };
                    claim_latencies.push(claim_latency);
                    let build = queue.begin_build(&job).await.unwrap();
                    let result = BuildResult {
                        outcome: Outcome::Success,
                        message: None,
                        record: format!("{{\"job\":{},\"worker\":\"{worker}\"}}", job.id),
                        stored: false,
                    };
                    queue
                        .finish(&job, &worker, build, result, Duration::from_secs(1))
                        .await
                        .unwrap_or_else(|e| panic!("{worker} finishing job {}: {e}", job.id));
                    cycle_latencies.push(cycle.elapsed());
                    claimed.push(job.id);
                }
                (worker, claimed, claim_latencies, cycle_latencies, empty)
            })
        })
        .collect();
    let mut by_job: HashMap<i64, Vec<String>> = HashMap::new();
    let mut claim_latencies = Vec::new();
    let mut cycle_latencies = Vec::new();
    let mut empty_claims = 0;
    let mut per_worker = Vec::new();
    for task in tasks {
        let (worker, claimed, claims, cycles, empty) = task.await.unwrap();
        per_worker.push(claimed.len());
        for job in claimed {
            by_job.entry(job).or_default().push(worker.clone());
        }
        claim_latencies.extend(claims);
        cycle_latencies.extend(cycles);
        empty_claims += empty;
    }
    let claim = started.elapsed();

    // Exactly once, by the workers' tally…
    let twice: Vec<_> = by_job.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{engine}: claimed more than once: {twice:?}"
    );
    let mut seen: Vec<i64> = by_job.keys().copied().collect();
    seen.sort_unstable();
    enqueued.sort_unstable();
    assert_eq!(
        seen, enqueued,
        "{engine}: the jobs claimed are not the jobs queued"
    );
    assert_eq!(per_worker.iter().sum::<usize>(), jobs, "{engine}");
    // …and by the database's: every job done after one attempt, by the worker that
    // claimed it, with one build record each.
    let rows = queue.jobs().await.unwrap();
    assert_eq!(rows.len(), jobs, "{engine}");
    for row in &rows {
        assert_eq!(row.status, JobStatus::Done, "{engine}: job {}", row.id);
        assert_eq!(
            row.attempts, 1,
            "{engine}: job {} attempted {} times",
            row.id, row.attempts
        );
        assert_eq!(
            row.outcome,
            Some(Outcome::Success),
            "{engine}: job {}",
            row.id
        );
        assert_eq!(
            row.worker.as_deref(),
            Some(by_job[&row.id][0].as_str()),
            "{engine}: job {}",
            row.id
        );
    }
    let builds = queue.builds().await.unwrap();
    assert_eq!(builds.len(), jobs, "{engine}: one build per job");
    assert_eq!(queue.pending().await.unwrap(), 0, "{engine}");
    eprintln!("{engine}: {jobs} jobs, each claimed once; per worker {per_worker:?}");

    claim_latencies.sort_unstable();
    cycle_latencies.sort_unstable();
    drop(store);
    drop(database);
    Run {
        engine,
        jobs,
        enqueue,
        claim,
        claim_latencies,
        cycle_latencies,
        empty_claims,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let jobs = env_number("CLAIMS_JOBS", 2000);
    let workers = env_number("CLAIMS_WORKERS", 8);
    assert!(jobs > 0 && workers > 0);
    let postgres = run(TestDatabase::postgres(), jobs, workers).await;
    let sqlite = run(TestDatabase::sqlite(), jobs, workers).await;

    println!("{jobs} jobs, {workers} concurrent workers; a cycle is claim + begin_build + finish");
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "engine",
        "jobs",
        "enqueue/s",
        "claim_s",
        "claims/s",
        "claim_p50ms",
        "claim_p99ms",
        "cycle_p50ms",
        "cycle_p99ms",
        "claimed_2x"
    );
    for run in [&postgres, &sqlite] {
        println!(
            "{:<10} {:>6} {:>10.0} {:>10.2} {:>10.0} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>12}",
            run.engine,
            run.jobs,
            run.jobs as f64 / run.enqueue.as_secs_f64(),
            run.claim.as_secs_f64(),
            run.jobs as f64 / run.claim.as_secs_f64(),
            percentile(&run.claim_latencies, 50.0),
            percentile(&run.claim_latencies, 99.0),
            percentile(&run.cycle_latencies, 50.0),
            percentile(&run.cycle_latencies, 99.0),
            0,
        );
        assert_eq!(run.empty_claims, workers);
    }
}
