//! Types handled in worker isolates: routing to isolate sinks, their
//! completions in the books, and what happens when an isolate goes away.

use super::tests::{engine, recv, ChannelNotifier};
use super::*;
use crate::core::schedule::books::{Finish, Report};
use crate::core::shm::handoff::HandoffReader;
use crate::core::shm::layout::HandoffRegion;
use crate::core::shm::ring::RingProducer;
use serde_json::json;
use std::sync::mpsc;

struct Isolate {
    id: u32,
    rx: mpsc::Receiver<()>,
    reader: HandoffReader,
}

fn attach(engine: &Engine) -> Isolate {
    let region = HandoffRegion::standalone(engine.concurrency());
    let mem = Arc::new(SharedWords::owned(region.words()));
    let (tx, rx) = mpsc::channel();
    let id = engine
        .attach_sink(
            mem.clone(),
            region,
            Arc::new(ChannelNotifier(Mutex::new(tx))),
        )
        .expect("attach");
    Isolate {
        id,
        rx,
        reader: HandoffReader::new(mem, region),
    }
}

impl Isolate {
    /// Waits for a notification, then drains and pulls from the backlog
    /// until nothing more comes, as `js/isolates/worker.ts` does.
    fn recv(&mut self, engine: &Engine) -> Vec<crate::core::shm::handoff::Delivery> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.rx
                .recv_timeout(left)
                .expect("an isolate delivery within 10 s");
            let mut got = self.reader.drain_full();
            while engine.pull(self.id) > 0 {
                got.extend(self.reader.drain_full());
            }
            if !got.is_empty() {
                return got;
            }
        }
    }
}

/// Pushes a record of an event serialised for isolates (`len` bytes).
fn serialised(p: &mut RingProducer, lane: u8, slot: u32, type_id: u32, len: u32) {
    assert!(p.push_record(crate::core::shm::ring::Record {
        slot,
        type_id,
        size: len,
        enqueued_us: 0,
        arena: 64 * (slot + 1),
        lane,
    }));
}

/// An isolate that has been handed slots 0..3 (type 0, lane 0).
fn attach_with_three(engine: &Engine) -> Isolate {
    let mut isolate = attach(engine);
    let mut p = RingProducer::new(engine.ring());
    for slot in 0..3 {
        serialised(&mut p, 0, slot, 0, 10);
    }
    engine.wake();
    let mut got = vec![];
    while got.len() < 3 {
        got.extend(isolate.recv(engine));
    }
    isolate
}

fn failure(slot: u32, delivery: u32, handler: u32, message: &str) -> Failure {
    Failure {
        slot,
        delivery,
        handler,
        handler_name: "burn".into(),
        error: crate::core::schedule::dead_letters::AttemptError {
            message: message.into(),
            name: "Error".into(),
            stack: None,
            timed_out: false,
            at: 0,
        },
        retryable: true,
    }
}

#[test]
fn isolated_types_go_to_isolates_and_settle_there() {
    let (engine, mut main, _) =
        engine(json!({ "workerCount": 1, "concurrency": 4, "retryAttempts": 0 }));
    engine.set_type_isolated(1, true);
    engine.set_handler_count(1, 1);
    let mut p = RingProducer::new(engine.ring());
    // An isolated record waits at its lane's head until an isolate is up.
    serialised(&mut p, 1, 7, 1, 40);
    engine.wake();
    assert!(
        main.recv_timeout(Duration::from_millis(100)).is_err(),
        "not for the main thread"
    );
    let mut iso = attach(&engine);
    let got = iso.recv(&engine);
    assert_eq!((got[0].slot, got[0].handler, got[0].len), (7, 0, 40));
    assert_eq!(engine.queue_state().in_flight_permits, 1);

    iso.reader.write_acks(&[7, 0, 1]);
    let done = engine
        .complete_remote(iso.id, 1, vec![failure(7, 0, 3, "no")])
        .expect("in flight");
    assert_eq!(done.fates, vec![Fate::DeadLetter]);
    assert_eq!(
        engine.queue_state().in_flight_permits,
        0,
        "released at once"
    );
    assert_eq!(engine.metrics().snapshot().failed, 1);
    // The main thread is told the books have news, and takes it.
    let reports_seen =
        engine.memory().words()[crate::core::shm::layout::REPORTS].load(Ordering::SeqCst);
    assert_eq!(reports_seen, 1);
    assert_eq!(
        engine.take_reports(),
        vec![Report {
            slot: 7,
            finished: Some(Finish::DeadLettered),
            freed: false
        }]
    );
    assert_eq!(engine.dead_letters(0, usize::MAX).len(), 1);
}

#[test]
fn an_isolate_that_goes_away_gives_back_its_deliveries() {
    let (engine, _main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    engine.set_type_isolated(0, true);
    let first = attach_with_three(&engine);
    let done = engine.detach_sink(first.id, vec![], &[]);
    assert_eq!(
        done,
        Detached {
            requeued: 3,
            ..Detached::default()
        }
    );
    assert_eq!(engine.queue_state().in_flight_permits, 0);
    let mut second = attach(&engine);
    let mut again = vec![];
    while again.len() < 3 {
        again.extend(second.recv(&engine));
    }
    let mut slots: Vec<u32> = again.iter().map(|d| d.slot).collect();
    slots.sort();
    assert_eq!(slots, vec![0, 1, 2]);
    assert_eq!(engine.metrics().snapshot().requeued, 3);
    assert_eq!(
        engine.detach_sink(0, vec![], &[]),
        Detached::default(),
        "the main thread's sink stays"
    );
}

#[test]
fn an_isolate_that_dies_is_charged_only_for_what_killed_it() {
    let (engine, _main, _) = engine(json!({
        "workerCount": 1,
        "concurrency": 8,
        "retryAttempts": 1,
        "retryDelays": [100],
    }));
    engine.set_type_isolated(0, true);
    engine.set_handler_count(0, 1);
    let first = attach_with_three(&engine);
    // Slot 1 killed it; slot 2 had finished, unacknowledged; slot 9 was
    // never in flight there.
    let culprits = vec![
        failure(1, 0, 0, "exited"),
        failure(1, 0, 0, "twice"),
        failure(9, 0, 0, "x"),
    ];
    let done = engine.detach_sink(first.id, culprits, &[(2, 0), (9, 0)]);
    assert_eq!(
        done,
        Detached {
            charged: 1,
            succeeded: 1,
            requeued: 1
        }
    );
    let mut finished: Vec<(u32, Option<Finish>)> = engine
        .take_reports()
        .iter()
        .map(|r| (r.slot, r.finished))
        .collect();
    finished.sort_by_key(|f| f.0);
    assert_eq!(
        finished,
        vec![(2, Some(Finish::Succeeded))],
        "slot 2 finished; slot 1 waits for its retry"
    );
    let mut second = attach(&engine);
    let mut again = vec![];
    while again.len() < 2 {
        again.extend(second.recv(&engine));
    }
    let mut runs: Vec<(u32, u32)> = again.iter().map(|d| (d.slot, d.attempt)).collect();
    runs.sort();
    assert_eq!(
        runs,
        vec![(0, 0), (1, 1)],
        "slot 1 used an attempt; slot 2 is done"
    );
    let m = engine.metrics().snapshot();
    assert_eq!((m.retries, m.requeued, m.failed, m.succeeded), (1, 1, 1, 1));
}

#[test]
fn an_event_emitted_before_its_type_went_to_isolates_is_rerouted() {
    let (engine, mut main, _) = engine(json!({ "workerCount": 1, "concurrency": 4 }));
    let mut iso = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    assert!(p.push(1, 5, 2, 30), "no serialised bytes");
    engine.set_type_isolated(2, true);
    engine.set_handler_count(2, 1);
    engine.wake();
    assert_eq!(
        recv(&mut main),
        vec![5, 0, 0],
        "the main thread gets it to serialise"
    );
    assert!(
        engine.reroute(5, 0, 0, 30).is_err(),
        "offset 0 holds nothing"
    );
    engine
        .reroute(5, 0, 128, 31)
        .expect("in flight on the main thread");
    assert!(engine.reroute(5, 0, 128, 31).is_err(), "only once");
    let got = iso.recv(&engine);
    assert_eq!((got[0].slot, got[0].arena, got[0].len), (5, 128, 31));
    assert_eq!(engine.queue_state().in_flight_permits, 1);
}

/// Polls `done` until it holds; fails with `what` after 10 s.
fn within_10s(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{} within 10 s", what());
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the engine has handed out `in_flight` deliveries and holds
/// `waiting` more for a free isolate (lane 0).
fn until_backlogged(engine: &Engine, in_flight: u32, waiting: u32) {
    let state = || {
        let q = engine.queue_state();
        (q.in_flight_deliveries, q.queued.depth[0])
    };
    within_10s(
        || state() == (in_flight, waiting),
        || {
            format!(
                "{in_flight} in flight and {waiting} waiting, got {:?}",
                state()
            )
        },
    );
}

#[test]
fn a_busy_isolate_gets_nothing_more_until_it_has_drained() {
    let (engine, _main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    engine.set_type_isolated(0, true);
    engine.set_handler_count(0, 1);
    let mut first = attach(&engine);
    let mut second = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    for slot in 0..4 {
        serialised(&mut p, 0, slot, 0, 10);
    }
    engine.wake();
    // One each; the other two wait, counted as queued, for a free isolate,
    // their permits not counted in flight.
    until_backlogged(&engine, 2, 2);
    assert_eq!(engine.queue_state().in_flight_permits, 2);
    // `first` is stuck in a synchronous handler: it never drains. `second`
    // drains, runs and acknowledges each delivery, and pulls the next.
    let mut ran = second.recv(&engine);
    while ran.len() < 3 && engine.pull(second.id) > 0 {
        ran.extend(second.reader.drain_full());
    }
    let mut slots: Vec<u32> = ran.iter().map(|d| d.slot).collect();
    slots.sort();
    assert_eq!(
        slots.len(),
        3,
        "the free isolate took both backlogged deliveries: {slots:?}"
    );
    assert_eq!(engine.pulled(), 2, "both pulls are counted");
    assert_eq!(engine.queue_state().queued.depth[0], 0);
    assert_eq!(engine.pull(first.id), 0, "nothing left");
    // A new event goes straight to the free isolate, not the busy one.
    serialised(&mut p, 0, 4, 0, 10);
    engine.wake();
    let got = second.recv(&engine);
    assert_eq!(got.iter().map(|d| d.slot).collect::<Vec<_>>(), vec![4]);
    first
        .rx
        .recv_timeout(Duration::from_secs(10))
        .expect("notified of its first delivery");
    assert_eq!(
        first.reader.drain_full().len(),
        1,
        "the busy isolate holds only what it had"
    );
}

#[test]
fn backlogged_deliveries_leave_in_priority_order() {
    let (engine, _main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    engine.set_type_isolated(0, true);
    engine.set_handler_count(0, 1);
    let mut iso = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    // The isolate is busy with slot 0 while 1 (low) and 2 (critical) wait.
    serialised(&mut p, 2, 0, 0, 10);
    engine.wake();
    iso.rx
        .recv_timeout(Duration::from_secs(10))
        .expect("notified");
    serialised(&mut p, 2, 1, 0, 10);
    engine.wake();
    until_lane_depth(&engine, 2, 1);
    serialised(&mut p, 0, 2, 0, 10);
    engine.wake();
    until_lane_depth(&engine, 0, 1);
    let mut order = vec![];
    order.extend(iso.reader.drain_full().iter().map(|d| d.slot));
    while engine.pull(iso.id) > 0 {
        order.extend(iso.reader.drain_full().iter().map(|d| d.slot));
    }
    assert_eq!(order, vec![0, 2, 1], "the critical one first");
}

#[test]
fn a_type_taken_back_from_isolates_leaves_the_backlog_for_the_main_thread() {
    let (engine, mut main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    for type_id in [0, 3] {
        engine.set_type_isolated(type_id, true);
        engine.set_handler_count(type_id, 1);
    }
    let _busy = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    serialised(&mut p, 0, 0, 0, 10);
    serialised(&mut p, 0, 1, 0, 10);
    serialised(&mut p, 0, 2, 3, 10);
    engine.wake();
    until_backlogged(&engine, 1, 2);
    // Type 3 goes back to the main thread; slot 1, in front of it, still
    // waits for the isolate.
    engine.set_type_isolated(3, false);
    assert_eq!(recv(&mut main), vec![2, 0, 0], "no isolate pull needed");
    let q = engine.queue_state();
    assert_eq!((q.queued.depth[0], q.in_flight_permits), (1, 2));
}

/// Waits until `n` deliveries of `lane` wait in the backlog.
fn until_lane_depth(engine: &Engine, lane: usize, n: u32) {
    within_10s(
        || engine.inner.backlog.held().0[lane] == n,
        || format!("{n} of lane {lane} backlogged"),
    );
}

#[test]
fn backlogged_deliveries_do_not_hold_up_the_main_thread_and_come_back_at_stop() {
    let (engine, mut main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    engine.set_type_isolated(0, true);
    engine.set_handler_count(0, 1);
    engine.set_handler_count(1, 1);
    let _busy = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    serialised(&mut p, 0, 0, 0, 10);
    serialised(&mut p, 0, 1, 0, 10);
    // A main-thread event behind them in the same lane.
    assert!(p.push(0, 2, 1, 10));
    engine.wake();
    assert_eq!(recv(&mut main), vec![2, 0, 0]);
    assert_eq!(
        engine.queue_state().queued.depth[0],
        1,
        "slot 1 waits for the isolate"
    );
    let left = engine.stop();
    let slots: Vec<u32> = left.redeliveries.iter().map(|d| d.record.slot).collect();
    assert_eq!(slots, vec![1], "never started: reported by stop");
    assert_eq!(
        engine.inner.permits.in_use(),
        2,
        "the backlogged one's permit is released; the two running keep theirs"
    );
}
