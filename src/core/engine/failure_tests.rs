//! Retries, dead letters and worker panics, driven the way the JavaScript
//! side drives them.

use super::tests::{ack_all, engine, recv, TRIPLE};
use super::*;
use crate::core::observe::metrics::Outcome;
use crate::core::schedule::dead_letters::AttemptError;
use crate::core::shm::ring::RingProducer;
use serde_json::json;

fn failure(slot: u32, delivery: u32, handler: u32, retryable: bool) -> Failure {
    Failure {
        slot,
        delivery,
        handler,
        handler_name: format!("handler{handler}"),
        error: AttemptError {
            message: format!("boom {slot}"),
            name: "Error".into(),
            stack: None,
            timed_out: false,
            at: 0,
        },
        retryable,
    }
}

/// Fails delivery `d` (`[slot, delivery, attempt]`) for `handler`.
fn fail(engine: &Engine, d: &[u32], handler: u32, retryable: bool) -> Completion {
    engine
        .complete(
            &[d[0], d[1], Outcome::Failed as u32],
            vec![failure(d[0], d[1], handler, retryable)],
        )
        .expect("delivery in flight")
}

#[test]
fn a_failing_handler_runs_1_plus_retry_attempts_with_backoff_then_is_dead_lettered() {
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 2, "retryAttempts": 2, "retryDelays": [100, 200] }));
    let mut p = RingProducer::new(engine.ring());
    p.push(2, 5, 0, 40);
    engine.wake();
    let first = recv(&mut js);
    assert_eq!(first, vec![5, 0, 0]);
    let mut seen = vec![];
    let mut last = Instant::now();
    let c = fail(&engine, &first, 9, true);
    assert_eq!(c.fates, vec![Fate::Retry]);
    for attempt in 1..=2 {
        let d = recv(&mut js);
        let waited = last.elapsed();
        assert_eq!(
            d,
            vec![5, 9, attempt],
            "a retry targets the failed handler only"
        );
        seen.push(waited);
        last = Instant::now();
        let c = fail(&engine, &d, 9, true);
        let expected = if attempt < 2 {
            Fate::Retry
        } else {
            Fate::DeadLetter
        };
        assert_eq!(c.fates, vec![expected]);
    }
    // Delays 100 then 200 ms, ±25 % and never under 100 ms.
    assert!(
        seen[0] >= Duration::from_millis(100) && seen[0] < Duration::from_millis(400),
        "{seen:?}"
    );
    assert!(
        seen[1] >= Duration::from_millis(150) && seen[1] < Duration::from_millis(500),
        "{seen:?}"
    );
    assert!(
        js.recv_timeout(Duration::from_millis(300)).is_err(),
        "no fourth run"
    );

    let letters = engine.dead_letters(0, usize::MAX);
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!((l.slot, l.handler_id, l.attempts, l.lane), (5, 9, 3, 2));
    assert_eq!(l.errors.len(), 3, "one error per attempt");
    let m = engine.metrics().snapshot();
    assert_eq!((m.retries, m.dead_lettered, m.failed), (2, 1, 3));
    assert_eq!(engine.queue_state().in_flight_permits, 0);
}

#[test]
fn non_retryable_errors_skip_the_retries() {
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 1, "retryAttempts": 3, "retryDelays": [100] }));
    RingProducer::new(engine.ring()).push(1, 3, 0, 0);
    engine.wake();
    let d = recv(&mut js);
    assert_eq!(fail(&engine, &d, 4, false).fates, vec![Fate::DeadLetter]);
    assert_eq!(engine.dead_letters(0, usize::MAX)[0].attempts, 1);
    assert_eq!(engine.metrics().snapshot().non_retryable, 1);
    assert_eq!(engine.queue_state().queued.scheduled_retries, 0);
}

#[test]
fn the_dead_letter_queue_evicts_its_oldest_entry_and_says_so() {
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 1, "retryAttempts": 0, "deadLetterQueueSize": 2 }));
    let mut p = RingProducer::new(engine.ring());
    for slot in 1..=3 {
        p.push(1, slot, 0, 0);
    }
    engine.wake();
    let mut deliveries = vec![];
    while deliveries.len() < 3 * TRIPLE {
        deliveries.extend(recv(&mut js));
    }
    let mut evicted = vec![];
    for d in deliveries.chunks_exact(TRIPLE) {
        evicted.extend(fail(&engine, d, 1, true).evicted);
    }
    assert_eq!(evicted, vec![1]);
    let slots: Vec<u32> = engine
        .dead_letters(0, usize::MAX)
        .iter()
        .map(|l| l.slot)
        .collect();
    assert_eq!(slots, vec![2, 3]);
    let page: Vec<u32> = engine.dead_letters(1, 5).iter().map(|l| l.slot).collect();
    assert_eq!(page, vec![3], "a page past the end is cut short");
    assert!(engine.dead_letters(7, 1).is_empty());
    assert_eq!(engine.queue_state().queued.dead_letters_evicted, 1);
}

#[test]
fn replayed_dead_letters_run_again_with_fresh_attempts() {
    let (engine, mut js, _) = engine(json!({ "workerCount": 1, "retryAttempts": 0 }));
    RingProducer::new(engine.ring()).push(0, 8, 0, 0);
    engine.wake();
    let d = recv(&mut js);
    fail(&engine, &d, 6, true);
    let id = engine.dead_letters(0, usize::MAX)[0].id;
    assert!(engine.replay_dead_letters(Some(id + 100)).is_empty());
    assert_eq!(engine.replay_dead_letters(Some(id)).len(), 1);
    assert!(engine.dead_letters(0, usize::MAX).is_empty());
    let again = recv(&mut js);
    assert_eq!(again, vec![8, 6, 0]);
    ack_all(&engine, &again, Outcome::Ok);
    assert_eq!(engine.metrics().snapshot().replayed, 1);
}

#[test]
fn a_worker_panic_requeues_its_batch_and_the_worker_carries_on() {
    let (engine, mut js, _) = engine(json!({
        "workerCount": 1,
        "reliabilityLimits": { "workerRestartDelay": 10 }
    }));
    engine.inject_worker_panic();
    let mut p = RingProducer::new(engine.ring());
    for slot in 0..20 {
        p.push((slot % 3) as usize, slot, 0, 0);
    }
    engine.wake();
    let mut seen = vec![0u8; 20];
    let mut got = 0;
    while got < 20 {
        let batch = recv(&mut js);
        for d in batch.chunks_exact(TRIPLE) {
            seen[d[0] as usize] += 1;
            got += 1;
        }
        ack_all(&engine, &batch, Outcome::Ok);
    }
    assert!(seen.iter().all(|&n| n == 1), "lost or duplicated: {seen:?}");
    let errors = engine.take_worker_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("injected"), "{errors:?}");
    // The worker may wake while the records are still being pushed, so the
    // batch it panics holding is some of them, all put back.
    let requeued = errors[0].requeued;
    assert!((1..=20).contains(&requeued), "{errors:?}");
    let m = engine.metrics().snapshot();
    assert_eq!(
        (m.worker_restarts, m.requeued, m.succeeded),
        (1, requeued as u64, 20)
    );
    assert_eq!(
        engine.worker_stats()[0].1.restarts.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn stop_returns_scheduled_retries_as_leftovers() {
    let (engine, mut js, _) = engine(json!({ "workerCount": 1, "retryDelays": [60000] }));
    RingProducer::new(engine.ring()).push(1, 4, 0, 0);
    engine.wake();
    let d = recv(&mut js);
    fail(&engine, &d, 2, true);
    assert_eq!(engine.queue_state().queued.scheduled_retries, 1);
    let left = engine.stop();
    assert!(left.records.is_empty());
    assert_eq!(left.redeliveries.len(), 1);
    assert_eq!(
        (
            left.redeliveries[0].record.slot,
            left.redeliveries[0].handler
        ),
        (4, 2)
    );
}

#[test]
fn no_worker_can_start_while_the_hook_is_set() {
    let config = Config::resolve(&json!({ "workerCount": 1 }), |_| None).expect("valid");
    let layout = Layout::new(config.max_queue_size, config.concurrency);
    let engine = Engine::new(&config, SharedWords::owned(layout.words));
    engine.fail_worker_starts(true);
    let (tx, _rx) = std::sync::mpsc::channel();
    let result = engine.start(Arc::new(super::tests::ChannelNotifier(Mutex::new(tx))), 1);
    assert_eq!(result.map_err(|e| e.code()), Err("WORKERS_UNAVAILABLE"));
    assert_eq!(engine.worker_count(), 0);
}

#[test]
fn the_books_report_each_event_once_its_work_ends() {
    use crate::core::schedule::books::{Finish, Report};
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 1, "retryAttempts": 1, "retryDelays": [100] }));
    engine.set_handler_count(0, 1);
    let mut p = RingProducer::new(engine.ring());
    p.push(1, 4, 0, 8);
    engine.wake();
    assert_eq!(recv(&mut js), vec![4, 0, 0]);
    // Fails: a retry is scheduled, so the event is still open.
    let c = engine
        .complete(&[4, 0, 1], vec![failure(4, 0, 3, true)])
        .expect("in flight");
    assert_eq!(c.fates, vec![Fate::Retry]);
    assert!(c.reports.is_empty(), "open while its retry waits");
    assert_eq!(recv(&mut js), vec![4, 3, 1], "the retry, to handler 3");
    // Fails again: dead-lettered; finished, but the letter holds the slot.
    let c = engine
        .complete(&[4, 3, 1], vec![failure(4, 3, 3, true)])
        .expect("in flight");
    assert_eq!(
        c.reports,
        vec![Report {
            slot: 4,
            finished: Some(Finish::DeadLettered),
            freed: false
        }]
    );
    engine.remove_dead_letters(None);
    assert_eq!(
        engine.take_reports(),
        vec![Report {
            slot: 4,
            finished: None,
            freed: true
        }]
    );
}
