//! The queue, the catalog and the tokens, each test run on SQLite and on PostgreSQL.

use std::time::Duration;

use docbuild_store::queue::{
    BuildResult, BuildState, Job, JobStatus, MAX_ATTEMPTS, PRIORITY_NEW, PRIORITY_REBUILD,
};
use docbuild_store::testing::TestDatabase;
use docbuild_store::tokens::Scope;
use docbuild_store::{CrateId, Outcome, Queue, QueueError, Store};

const LEASE: Duration = Duration::from_secs(60);

/// Runs `test` once per engine, saying which one failed.
macro_rules! on_both {
    ($test:ident) => {
        for database in TestDatabase::both() {
            let store = Store::open(&database.store_location())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", database.engine()));
            eprintln!("on {}", database.engine());
            $test(store).await;
        }
    };
}

fn id(registry: &str, name: &str, version: &str) -> CrateId {
    CrateId::new(registry, name, version).unwrap()
}

fn result(outcome: Outcome) -> BuildResult {
    BuildResult {
        outcome,
        message: Some(outcome.to_string()),
        record: format!("{{\"outcome\":\"{outcome}\"}}"),
        stored: false,
    }
}

async fn settle(queue: &Queue, job: &Job, outcome: Outcome, retry_base: Duration) -> i64 {
    let build = queue.begin_build(job).await.unwrap();
    queue
        .finish(job, "w", build, result(outcome), retry_base)
        .await
        .unwrap();
    build
}

async fn build_state(queue: &Queue, build: i64) -> BuildState {
    queue.build(build).await.unwrap().unwrap().outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_is_queued_once() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (first, new) = queue
            .enqueue(&id("crates-io", "serde", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert!(new);
        let again = queue
            .enqueue(&id("crates-io", "serde", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert_eq!(again, (first, false));
        let (other, new) = queue
            .enqueue(&id("my-reg", "serde", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert!(new && other != first);
        assert_eq!(queue.pending().await.unwrap(), 2);
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_releases_go_before_rebuilds() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (rebuild, _) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_REBUILD)
            .await
            .unwrap();
        let (new, _) = queue
            .enqueue(&id("r", "b", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert_eq!(queue.claim("w", LEASE).await.unwrap().unwrap().id, new);
        assert_eq!(queue.claim("w", LEASE).await.unwrap().unwrap().id, rebuild);
        assert!(queue.claim("w", LEASE).await.unwrap().is_none());
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claimed_job_is_nobody_elses_until_its_lease_runs_out() {
    async fn test(store: Store) {
        let queue = store.queue();
        queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let job = queue.claim("one", Duration::ZERO).await.unwrap().unwrap();
        assert!(!job.taken_over);
        assert!(
            queue.claim("two", LEASE).await.unwrap().is_none(),
            "lease still holds this second"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let again = queue.claim("two", LEASE).await.unwrap().unwrap();
        assert_eq!(again.id, job.id);
        assert!(again.taken_over);
        assert_eq!(again.attempts, 2);
        assert!(
            !queue.renew(job.id, "one", LEASE).await.unwrap(),
            "the first worker lost it"
        );
        assert!(queue.renew(job.id, "two", LEASE).await.unwrap());
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_infrastructure_errors_are_retried_and_only_so_often() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (job_id, _) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let job = queue.claim("w", LEASE).await.unwrap().expect("claimable");
            assert_eq!(job.attempts, attempt);
            settle(&queue, &job, Outcome::InfrastructureError, Duration::ZERO).await;
        }
        let job = queue.job(job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.outcome, Some(Outcome::InfrastructureError));

        let (job_id, _) = queue
            .enqueue(&id("r", "b", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        settle(&queue, &job, Outcome::BuildFailed, Duration::ZERO).await;
        assert_eq!(queue.job(job_id).await.unwrap().status, JobStatus::Done);
        assert!(
            queue.claim("w", LEASE).await.unwrap().is_none(),
            "a crate's failure is final"
        );
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_wait() {
    async fn test(store: Store) {
        let queue = store.queue();
        queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        settle(
            &queue,
            &job,
            Outcome::InfrastructureError,
            Duration::from_secs(60),
        )
        .await;
        assert!(queue.claim("w", LEASE).await.unwrap().is_none());
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_built_before_is_queued_as_a_rebuild() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (first, _) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        settle(&queue, &job, Outcome::Success, Duration::ZERO).await;
        let (again, new) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert!(new && again != first);
        assert_eq!(queue.job(again).await.unwrap().priority, PRIORITY_REBUILD);
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_lost_its_lease_cannot_settle_the_job() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (job_id, _) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let first = queue.claim("one", Duration::ZERO).await.unwrap().unwrap();
        let first_build = queue.begin_build(&first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = queue.claim("two", LEASE).await.unwrap().unwrap();
        let second_build = queue.begin_build(&second).await.unwrap();
        assert_eq!(
            build_state(&queue, first_build).await,
            BuildState::Finished(Outcome::InfrastructureError),
            "the dead worker's build is marked aborted"
        );

        for outcome in [Outcome::Success, Outcome::InfrastructureError] {
            let refused = queue
                .finish(&first, "one", first_build, result(outcome), Duration::ZERO)
                .await;
            assert!(
                matches!(refused, Err(QueueError::LeaseLost(lost)) if lost == job_id),
                "{refused:?}"
            );
        }
        let job = queue.job(job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Running, "still the second worker's");
        assert_eq!(job.worker.as_deref(), Some("two"));
        assert_eq!(job.attempts, 2);

        queue
            .finish(
                &second,
                "two",
                second_build,
                result(Outcome::BuildFailed),
                Duration::ZERO,
            )
            .await
            .unwrap();
        let job = queue.job(job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.outcome, Some(Outcome::BuildFailed));
        assert_eq!(job.build, Some(second_build));

        let late = queue
            .finish(
                &first,
                "one",
                first_build,
                result(Outcome::Success),
                Duration::ZERO,
            )
            .await;
        assert!(matches!(late, Err(QueueError::LeaseLost(_))), "{late:?}");
        assert_eq!(
            queue.job(job_id).await.unwrap().outcome,
            Some(Outcome::BuildFailed)
        );
        assert!(
            queue
                .current_build(&id("r", "a", "1.0.0"))
                .await
                .unwrap()
                .is_none()
        );
        let twice = queue
            .finish(
                &second,
                "two",
                second_build,
                result(Outcome::Success),
                Duration::ZERO,
            )
            .await;
        assert!(matches!(twice, Err(QueueError::LeaseLost(_))), "{twice:?}");
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_job_is_anyones_at_once() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (job_id, _) = queue
            .enqueue(&id("r", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        let job = queue.claim("one", LEASE).await.unwrap().unwrap();
        let build = queue.begin_build(&job).await.unwrap();
        assert!(
            !queue.release(&job, "two", Some(build)).await.unwrap(),
            "not the second worker's"
        );
        assert!(queue.release(&job, "one", Some(build)).await.unwrap());
        let released = queue.job(job_id).await.unwrap();
        assert_eq!(released.status, JobStatus::Queued);
        assert_eq!(released.worker, None);
        assert_eq!(
            build_state(&queue, build).await,
            BuildState::Finished(Outcome::InfrastructureError)
        );
        let again = queue.claim("two", LEASE).await.unwrap().unwrap();
        assert_eq!(again.id, job_id);
        assert!(!again.taken_over);
        assert!(!queue.release(&job, "one", None).await.unwrap());
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_rebuild_keeps_the_docs_that_built() {
    async fn test(store: Store) {
        let queue = store.queue();
        let release = id("r", "a-b", "1.0.0");
        queue.enqueue(&release, PRIORITY_NEW).await.unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        let good = settle(&queue, &job, Outcome::Success, Duration::ZERO).await;
        queue.enqueue(&release, PRIORITY_REBUILD).await.unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        let bad = settle(&queue, &job, Outcome::BuildFailed, Duration::ZERO).await;
        assert_eq!(
            queue.current_build(&release).await.unwrap().unwrap().id,
            good
        );
        // The catalog serves the same build, found by either spelling of the name,
        // and lists both in the history.
        let catalog = store.catalog();
        let releases = catalog.releases("A_b").await.unwrap();
        assert_eq!(releases.len(), 1);
        assert_eq!(releases[0].build.id, good);
        let history: Vec<i64> = catalog
            .builds("a_b", "1.0.0")
            .await
            .unwrap()
            .iter()
            .map(|b| b.build.id)
            .collect();
        assert_eq!(history, [bad, good]);
        assert_eq!(catalog.crates().await.unwrap().len(), 1);
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_jobs_wait_for_their_sources() {
    async fn test(store: Store) {
        let queue = store.queue();
        let (job_id, _) = queue
            .enqueue(&id("local", "a", "1.0.0"), PRIORITY_NEW)
            .await
            .unwrap();
        assert!(queue.claim("w", LEASE).await.unwrap().is_none());
        queue
            .set_sources(job_id, "sources/1/a-1.0.0.crate")
            .await
            .unwrap();
        let job = queue.claim("w", LEASE).await.unwrap().unwrap();
        assert_eq!(job.sources.as_deref(), Some("sources/1/a-1.0.0.crate"));
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_workers_never_claim_a_job_twice() {
    async fn test(store: Store) {
        let queue = store.queue();
        for n in 0..80 {
            queue
                .enqueue(&id("r", &format!("c{n}"), "1.0.0"), PRIORITY_NEW)
                .await
                .unwrap();
        }
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let queue = queue.clone();
            workers.spawn(async move {
                let mut claimed = Vec::new();
                while let Some(job) = queue.claim(&format!("w{worker}"), LEASE).await.unwrap() {
                    claimed.push(job.id);
                }
                claimed
            });
        }
        let mut all: Vec<i64> = workers.join_all().await.into_iter().flatten().collect();
        all.sort();
        let total = all.len();
        all.dedup();
        assert_eq!(
            (total, all.len()),
            (80, 80),
            "every job claimed exactly once"
        );
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_stored_hashed_scoped_and_revocable() {
    async fn test(store: Store) {
        let tokens = store.tokens();
        let before = store.catalog().generation().await.unwrap();
        assert!(!tokens.any().await.unwrap());
        assert!(!tokens.any_issued().await.unwrap());
        assert!(!tokens.access().await.unwrap().issued);
        let new = tokens.create(Scope::Publish).await.unwrap();
        assert!(new.token.starts_with("dbt_") && new.token.len() == 68);
        assert_eq!(
            tokens.check(&new.token).await.unwrap(),
            Some(Scope::Publish)
        );
        assert_eq!(tokens.check("dbt_wrong").await.unwrap(), None);
        assert!(
            store.catalog().generation().await.unwrap() > before,
            "caches learn of it"
        );
        let active = tokens.active().await.unwrap();
        assert!(
            !active.contains_key(&new.token),
            "the secret itself is not stored"
        );
        assert_eq!(
            active.get(&docbuild_store::tokens::hash(&new.token)),
            Some(&Scope::Publish)
        );
        tokens.revoke(new.id).await.unwrap();
        assert_eq!(tokens.check(&new.token).await.unwrap(), None);
        assert!(!tokens.any().await.unwrap());
        // Revoked, a token still closes the site: one was made.
        assert!(tokens.any_issued().await.unwrap());
        let access = tokens.access().await.unwrap();
        assert!(access.issued && access.active.is_empty());
        assert!(matches!(
            tokens.revoke(new.id).await,
            Err(docbuild_store::tokens::TokenError::NoSuchToken(_))
        ));
        assert!(Scope::Admin > Scope::Publish && Scope::Publish > Scope::Read);
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_state_is_kept_per_registry() {
    async fn test(store: Store) {
        let queue = store.queue();
        assert_eq!(queue.watch_state("r", "head").await.unwrap(), None);
        queue.set_watch_state("r", "head", "abc").await.unwrap();
        queue.set_watch_state("r", "head", "def").await.unwrap();
        queue.set_watch_state("s", "head", "xyz").await.unwrap();
        assert_eq!(
            queue.watch_state("r", "head").await.unwrap().as_deref(),
            Some("def")
        );
    }
    on_both!(test);
}

#[tokio::test(flavor = "multi_thread")]
async fn opening_twice_migrates_once_and_a_newer_schema_is_refused() {
    for database in TestDatabase::both() {
        Store::open(&database.store_location()).await.unwrap();
        let store = Store::open(&database.store_location()).await.unwrap();
        let versions: i64 = store
            .db()
            .read(|conn| conn.value("SELECT COUNT(*) FROM schema_version", &[]))
            .await
            .unwrap();
        assert_eq!(
            versions,
            docbuild_store::schema::VERSION,
            "{}",
            database.engine()
        );
        store
            .db()
            .write(|conn| conn.execute("INSERT INTO schema_version VALUES (999, 0)", &[]))
            .await
            .unwrap();
        let error = Store::open(&database.store_location())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("999") && error.contains("upgrade docbuild"),
            "{error}"
        );
    }
}
