use super::*;
use crate::core::observe::metrics::Outcome;
use crate::core::shm::handoff::HandoffReader;

/// `HandoffReader::drain` returns `[slot, handler, attempt]` triples.
pub(super) const TRIPLE: usize = 3;
use crate::core::shm::ring::RingProducer;
use serde_json::json;
use std::sync::mpsc;

pub(super) struct ChannelNotifier(pub(super) Mutex<mpsc::Sender<()>>);

impl Notifier for ChannelNotifier {
    fn notify(&self) -> bool {
        self.0.lock().send(()).is_ok()
    }
}

/// Plays the JavaScript thread: waits for notifications, drains deliveries.
pub(super) struct Js {
    rx: mpsc::Receiver<()>,
    reader: HandoffReader,
}

impl Js {
    /// Deliveries published within `timeout`, or an error if none came.
    pub(super) fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u32>, ()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            self.rx.recv_timeout(left).map_err(|_| ())?;
            let batch = self.reader.drain();
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }
}

pub(super) fn engine(config: serde_json::Value) -> (Engine, Js, Config) {
    let config = Config::resolve(&config, |_| None).expect("valid test config");
    let layout = Layout::new(config.max_queue_size, config.concurrency);
    let engine = Engine::new(&config, SharedWords::owned(layout.words));
    let (tx, rx) = mpsc::channel();
    let reader = HandoffReader::new(engine.memory().clone(), engine.layout().handoff_region());
    engine
        .start(
            Arc::new(ChannelNotifier(Mutex::new(tx))),
            config.worker_count,
        )
        .expect("start");
    (engine, Js { rx, reader }, config)
}

fn slots(batch: &[u32]) -> Vec<u32> {
    batch.chunks_exact(TRIPLE).map(|d| d[0]).collect()
}

/// Acknowledgement words for every delivery of `batch`.
fn acks_for(batch: &[u32], outcome: Outcome) -> Vec<u32> {
    batch
        .chunks_exact(TRIPLE)
        .flat_map(|d| [d[0], d[1], outcome as u32])
        .collect()
}

pub(super) fn ack_all(engine: &Engine, batch: &[u32], outcome: Outcome) {
    engine
        .complete(&acks_for(batch, outcome), vec![])
        .expect("acks match deliveries");
}

/// A started engine whose worker threads could not start: every delivery
/// it makes comes from a refill, read with the returned reader.
fn workerless(config: serde_json::Value) -> (Engine, HandoffReader) {
    let config = Config::resolve(&config, |_| None).expect("valid test config");
    let layout = Layout::new(config.max_queue_size, config.concurrency);
    let engine = Engine::new(&config, SharedWords::owned(layout.words));
    let reader = HandoffReader::new(engine.memory().clone(), engine.layout().handoff_region());
    engine.fail_worker_starts(true);
    let (tx, _rx) = mpsc::channel();
    assert!(engine
        .start(Arc::new(ChannelNotifier(Mutex::new(tx))), 1)
        .is_err());
    (engine, reader)
}

pub(super) fn recv(js: &mut Js) -> Vec<u32> {
    js.recv_timeout(Duration::from_secs(10))
        .expect("a batch within 10 s")
}

/// Streams `n` records (lanes round robin) through a running engine, the
/// way the JavaScript thread would; `ack` acknowledges a delivered batch
/// and returns the batch to handle next (empty: wait for a notification).
/// Asserts every record was delivered exactly once and acknowledged.
fn stream_every_record_once(
    engine: &Engine,
    js: &mut Js,
    n: u32,
    mut ack: impl FnMut(&Engine, &mut Js, &[u32]) -> Vec<u32>,
) {
    let ring = engine.ring();
    let mut producer = RingProducer::new(ring);
    let mut seen = vec![0u8; n as usize];
    let (mut got, mut next) = (0, 0);
    let mut batch = Vec::new();
    while got < n {
        while next < n && producer.push((next % 3) as usize, next, 0, 8) {
            next += 1;
        }
        if ring.park_word().claim() {
            engine.wake();
        }
        if batch.is_empty() {
            batch = js
                .recv_timeout(Duration::from_millis(1))
                .unwrap_or_default();
        }
        for s in slots(&batch) {
            seen[s as usize] += 1;
            got += 1;
        }
        batch = ack(engine, js, &batch);
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "a record was lost or duplicated"
    );
    let m = engine.metrics().snapshot();
    assert_eq!(m.succeeded, u64::from(n));
    assert_eq!(m.dispatched.iter().sum::<u64>(), u64::from(n));
}

#[test]
fn every_record_is_delivered_once_across_workers() {
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 4, "concurrency": 64, "maxQueueSize": 1024 }));
    stream_every_record_once(&engine, &mut js, 200_000, |engine, _, batch| {
        ack_all(engine, batch, Outcome::Ok);
        Vec::new()
    });
}

#[test]
fn refills_and_workers_together_deliver_every_record_once() {
    let (engine, mut js, _) =
        engine(json!({ "workerCount": 3, "concurrency": 64, "maxQueueSize": 1024 }));
    stream_every_record_once(&engine, &mut js, 200_000, |engine, js, batch| {
        // As the JavaScript thread does: acknowledge with a refill, then
        // run at once whatever the refill published.
        engine
            .complete_with(&acks_for(batch, Outcome::Ok), vec![], true)
            .expect("acks match deliveries");
        js.reader.drain()
    });
    assert!(engine.refill_dispatched() > 0, "refills took part");
}

#[test]
fn window_bounds_in_flight_and_critical_overtakes_queued_low() {
    let (engine, mut rx, _) = engine(json!({ "workerCount": 2, "concurrency": 2 }));
    let mut p = RingProducer::new(engine.ring());
    for slot in 0..50 {
        p.push(2, slot, 0, 0);
    }
    engine.wake();
    let mut outstanding: Vec<u32> = Vec::new();
    while outstanding.len() < 2 * TRIPLE {
        outstanding.extend(recv(&mut rx));
    }
    assert_eq!(slots(&outstanding), vec![0, 1], "the window holds two");
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing beyond the window"
    );

    for slot in 100..103 {
        p.push(0, slot, 0, 0);
    }
    engine.wake();
    let mut order = Vec::new();
    let mut pending = outstanding;
    while order.len() < 51 {
        ack_all(&engine, &pending, Outcome::Ok);
        pending = recv(&mut rx);
        order.extend(slots(&pending));
    }
    // Records that do not fit stay in the ring, so the critical ones
    // overtake every queued low one.
    assert_eq!(&order[..3], &[100, 101, 102], "{order:?}");
    assert_eq!(order[3..].to_vec(), (2..50).collect::<Vec<u32>>());
}

#[test]
fn fan_out_takes_one_permit_per_handler() {
    let (engine, mut rx, _) = engine(json!({ "workerCount": 1, "concurrency": 4 }));
    engine.set_handler_count(7, 3);
    let mut p = RingProducer::new(engine.ring());
    p.push(1, 1, 7, 0);
    p.push(1, 2, 7, 0);
    engine.wake();
    let first = recv(&mut rx);
    assert_eq!(slots(&first), vec![1]);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "3 + 3 > 4 permits"
    );
    assert_eq!(engine.queue_state().in_flight_permits, 3);
    ack_all(&engine, &first, Outcome::Failed);
    assert_eq!(slots(&recv(&mut rx)), vec![2]);
    assert_eq!(engine.metrics().snapshot().failed, 1);
}

#[test]
fn unknown_acknowledgements_are_errors() {
    let (engine, _js, _) = engine(json!({ "workerCount": 1 }));
    let err = engine
        .complete(&[9, 0, 0], vec![])
        .expect_err("nothing in flight");
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(engine.complete(&[1, 2], vec![]).is_err(), "partial record");
    let too_many = engine.layout().handoff_capacity + 1;
    assert_eq!(
        engine
            .complete_shared(too_many, vec![], false)
            .map(|_| ())
            .map_err(|e| e.code()),
        Err("INVALID_ARGUMENT")
    );
}

#[test]
fn acks_are_read_from_the_shared_area() {
    let (engine, mut js, _) = engine(json!({ "workerCount": 1, "concurrency": 8 }));
    let mut p = RingProducer::new(engine.ring());
    p.push(1, 4, 0, 0);
    p.push(1, 5, 0, 0);
    engine.wake();
    let mut got = Vec::new();
    while got.len() < 2 * TRIPLE {
        got.extend(recv(&mut js));
    }
    js.reader.write_acks(&[4, 0, 0, 5, 0, 1]);
    engine
        .complete_shared(2, vec![], false)
        .expect("both in flight");
    let m = engine.metrics().snapshot();
    assert_eq!((m.succeeded, m.failed), (1, 1));
    assert_eq!(engine.queue_state().in_flight_permits, 0);
}

#[test]
fn scaling_under_load_keeps_every_record() {
    let (engine, mut rx, _) =
        engine(json!({ "workerCount": 1, "concurrency": 32, "maxQueueSize": 256 }));
    const N: u32 = 50_000;
    let mut p = RingProducer::new(engine.ring());
    let (mut next, mut got) = (0, 0);
    let mut seen = vec![false; N as usize];
    let sizes = [4, 1, 8, 2, 20, 1];
    let mut step = 0;
    while got < N {
        while next < N && p.push((next % 3) as usize, next, 0, 0) {
            next += 1;
        }
        engine.wake();
        if step < sizes.len() && got >= (step as u32 + 1) * N / 8 {
            engine.scale(sizes[step]).expect("scale");
            step += 1;
        }
        while let Ok(batch) = rx.recv_timeout(Duration::from_millis(1)) {
            for s in slots(&batch) {
                assert!(!seen[s as usize], "duplicate {s}");
                seen[s as usize] = true;
                got += 1;
            }
            ack_all(&engine, &batch, Outcome::Ok);
        }
    }
    assert_eq!(step, sizes.len());
    assert!(engine.scale(0).is_err() && engine.scale(21).is_err());
}

#[test]
fn stop_leaves_undelivered_records_in_priority_order() {
    let (engine, mut rx, _) = engine(json!({ "workerCount": 2, "concurrency": 1 }));
    let mut p = RingProducer::new(engine.ring());
    p.push(2, 1, 0, 0);
    engine.wake();
    let first = recv(&mut rx);
    p.push(2, 2, 0, 0);
    p.push(1, 3, 0, 0);
    p.push(0, 4, 0, 0);
    std::thread::sleep(Duration::from_millis(20));
    let left: Vec<u32> = engine.stop().records.iter().map(|r| r.slot).collect();
    assert_eq!(left, vec![4, 3, 2]);
    assert_eq!(engine.queue_state().in_flight_deliveries, 1);
    ack_all(&engine, &first, Outcome::Ok);
    assert_eq!(engine.queue_state().in_flight_deliveries, 0);
    assert!(
        engine.scale(2).is_err(),
        "a stopped engine does not restart"
    );
}

#[test]
fn a_refill_dispatches_what_fits_on_the_calling_thread_in_priority_order() {
    let (engine, mut reader) = workerless(json!({ "concurrency": 4, "maxQueueSize": 128 }));
    let refill = |acks: &[u32]| {
        engine
            .complete_with(acks, vec![], true)
            .expect("acks match deliveries");
    };
    let mut producer = RingProducer::new(engine.ring());
    for slot in 0..6 {
        assert!(producer.push(2, slot, 1, 10));
    }
    for slot in 6..9 {
        assert!(producer.push(0, slot, 1, 10));
    }
    refill(&[]);
    let first = reader.drain();
    assert_eq!(slots(&first), [6, 7, 8, 0], "one window, critical first");
    refill(&[]);
    assert!(reader.drain().is_empty(), "the window is full");
    refill(&acks_for(&first[..2 * TRIPLE], Outcome::Ok));
    assert_eq!(slots(&reader.drain()), [1, 2], "the room the acks freed");
    engine.stop();
    refill(&[]);
    assert!(
        reader.drain().is_empty(),
        "a stopped engine dispatches nothing"
    );
}

#[test]
fn dispatching_emissions_here_says_when_a_worker_is_still_needed() {
    let (engine, mut reader) = workerless(json!({ "concurrency": 2, "maxQueueSize": 128 }));
    let mut producer = RingProducer::new(engine.ring());
    assert_eq!(
        engine.dispatch_here(0, true),
        Refill::Drained,
        "nothing queued"
    );
    assert!(producer.push(1, 0, 1, 10));
    assert_eq!(engine.dispatch_here(0, true), Refill::Drained);
    assert_eq!(slots(&reader.drain()), [0], "published for this thread");
    for slot in 1..4 {
        assert!(producer.push(1, slot, 1, 10));
    }
    assert_eq!(
        engine.dispatch_here(0, true),
        Refill::Full,
        "records wait for room in the window: only a worker waits for permits"
    );
    assert_eq!(slots(&reader.drain()), [1]);
    let since = engine.elapsed_us() as u32;
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        engine.dispatch_here(since, false),
        Refill::Skipped,
        "told not to look"
    );
    assert!(
        engine.take_recent_maxima().1 >= 20_000,
        "how long the run waited for this thread counts as event-loop lag"
    );
    engine.stop();
    assert_eq!(engine.dispatch_here(0, true), Refill::Skipped, "stopped");
}

/// Native cost of one event's round trip on the JavaScript thread
/// (acknowledge, then refill): `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_ack_and_refill_cost() {
    let (engine, mut reader) = workerless(json!({ "concurrency": 1024, "maxQueueSize": 262144 }));
    engine.set_handler_count(1, 1);
    let mut producer = RingProducer::new(engine.ring());
    let mut acks = Vec::new();
    let (rounds, burst) = (400u32, 1000u32);
    let started = Instant::now();
    for round in 0..rounds {
        for i in 0..burst {
            assert!(producer.push((i % 3) as usize, (round * burst + i) % 4096, 1, 80));
        }
        loop {
            engine
                .complete_with(&acks, vec![], true)
                .expect("acks match deliveries");
            let batch = reader.drain();
            if batch.is_empty() {
                acks.clear();
                break;
            }
            acks = acks_for(&batch, Outcome::Ok);
        }
    }
    let per_event = started.elapsed().as_nanos() as f64 / f64::from(rounds * burst);
    println!("ack + refill: {per_event:.1} ns per event");
}
