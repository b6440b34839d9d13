//! Types handled in worker isolates: routing to isolate sinks, completion
//! notices to the main thread, and requeueing when an isolate goes away.

use super::completion::{NOTICE, REMOTE_OUTCOME};
use super::tests::{engine, recv, ChannelNotifier};
use super::*;
use crate::core::handoff::HandoffReader;
use crate::core::ring::RingProducer;
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
    fn recv(&mut self) -> Vec<crate::core::handoff::Delivery> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.rx
                .recv_timeout(left)
                .expect("an isolate delivery within 10 s");
            let got = self.reader.drain_full();
            if !got.is_empty() {
                return got;
            }
        }
    }
}

#[test]
fn isolated_types_go_to_isolates_and_come_back_as_notices() {
    let (engine, mut main, _) =
        engine(json!({ "workerCount": 1, "concurrency": 4, "retryAttempts": 0 }));
    engine.set_type_isolated(1, true);
    engine.set_handler_count(1, 1);
    let mut p = RingProducer::new(engine.ring());
    // An isolated record waits at its lane's head until an isolate is up.
    p.push_at(1, 7, 1, 40, 0);
    engine.wake();
    assert!(
        main.recv_timeout(Duration::from_millis(100)).is_err(),
        "not for the main thread"
    );
    let mut iso = attach(&engine);
    let got = iso.recv();
    assert_eq!((got[0].slot, got[0].handler, got[0].len), (7, 0, 40));
    assert_eq!(engine.queue_state().in_flight_permits, 1);

    iso.reader.write_acks(&[7, 0, 1]);
    let failure = Failure {
        slot: 7,
        delivery: 0,
        handler: 3,
        handler_name: "burn".into(),
        error: crate::core::dead_letter::AttemptError {
            message: "no".into(),
            name: "Error".into(),
            stack: None,
            timed_out: false,
            at: 0,
        },
        retryable: true,
    };
    let done = engine
        .complete_remote(iso.id, 1, vec![failure])
        .expect("in flight");
    assert_eq!(done.fates, vec![Fate::DeadLetter]);
    // The main thread gets a notice with the outcome and the dead letter.
    let notice = recv(&mut main);
    assert_eq!(notice, vec![7, NOTICE, 1]);
    assert_eq!(
        engine.queue_state().in_flight_permits,
        1,
        "held until the main thread accounts"
    );
    engine
        .complete(&[7, 0, REMOTE_OUTCOME], vec![])
        .expect("notice acknowledged");
    assert_eq!(engine.queue_state().in_flight_permits, 0);
    assert_eq!(engine.metrics().snapshot().failed, 1);
    assert_eq!(engine.dead_letters().len(), 1);
}

#[test]
fn an_isolate_that_goes_away_gives_back_its_deliveries() {
    let (engine, _main, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    engine.set_type_isolated(0, true);
    let mut first = attach(&engine);
    let mut p = RingProducer::new(engine.ring());
    for slot in 0..3 {
        p.push_at(0, slot, 0, 10, 0);
    }
    engine.wake();
    let mut got = vec![];
    while got.len() < 3 {
        got.extend(first.recv());
    }
    assert_eq!(engine.detach_sink(first.id), 3);
    assert_eq!(engine.queue_state().in_flight_permits, 0);
    let mut second = attach(&engine);
    let mut again = vec![];
    while again.len() < 3 {
        again.extend(second.recv());
    }
    let mut slots: Vec<u32> = again.iter().map(|d| d.slot).collect();
    slots.sort();
    assert_eq!(slots, vec![0, 1, 2]);
    assert_eq!(engine.metrics().snapshot().requeued, 3);
    assert_eq!(engine.detach_sink(0), 0, "the main thread's sink stays");
}
