//! Model checks of the protocols native threads and JavaScript share, run
//! by `npm run test:loom` (`RUSTFLAGS="--cfg bootify_loom" cargo test --lib loom`):
//! loom runs each model under every interleaving (and every outcome the
//! memory orderings allow) up to its preemption bound. The code under test
//! is the real ring, hand-off queue and park word, built on loom's atomics
//! (`sync.rs`). JavaScript's halves are their Rust twins (`RingProducer`,
//! `HandoffReader`, `ParkWord::claim`), which follow `js/ring.ts` and
//! `js/handoff.ts` step by step. Threads sleep on loom's mutex and condition
//! variable where the engine uses parking_lot's, in the same pattern as
//! `engine/park.rs`: a missed wake-up shows up as a deadlock.

use std::sync::Arc;
use std::time::Duration;

use loom::sync::{Condvar, Mutex};
use loom::thread;

use super::handoff::{Delivery, Handoff, HandoffReader};
use super::layout::Layout;
use super::ring::{PriorityRing, RingProducer};
use super::words::SharedWords;

/// A ring with two cells per lane, so three records wrap around.
fn ring() -> PriorityRing {
    let layout = Layout::new(2, 2);
    let mem = Arc::new(SharedWords::owned(layout.words));
    layout.format_header(&mem);
    PriorityRing::new(mem, &layout, [0, 1, 2], Duration::from_secs(60))
}

fn bounded(preemptions: usize) -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder
}

#[test]
fn loom_a_lane_hands_each_record_to_one_consumer_whole_and_in_order() {
    bounded(2).check(|| {
        let ring = Arc::new(ring());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        match ring.pop_lane(1) {
                            Some(rec) => got.push(rec),
                            None => thread::yield_now(),
                        }
                    }
                    got
                })
            })
            .collect();
        let mut producer = RingProducer::new(&ring);
        let mut sent = 0;
        for _ in 0..3 {
            if producer.push(1, sent, 100 + sent, 10 + sent) {
                sent += 1;
            } else {
                thread::yield_now();
            }
        }
        let mut taken: Vec<_> = consumers
            .into_iter()
            .flat_map(|c| {
                let got = c.join().expect("consumer");
                let slots: Vec<u32> = got.iter().map(|r| r.slot).collect();
                assert!(
                    slots.windows(2).all(|w| w[0] < w[1]),
                    "out of order: {slots:?}"
                );
                got
            })
            .collect();
        // What the consumers left (and what did not fit before) comes out now.
        while sent < 3 || !ring.is_empty() {
            if sent < 3 && producer.push(1, sent, 100 + sent, 10 + sent) {
                sent += 1;
            }
            taken.extend(ring.pop_lane(1));
        }
        taken.sort_by_key(|r| r.slot);
        let slots: Vec<u32> = taken.iter().map(|r| r.slot).collect();
        assert_eq!(slots, vec![0, 1, 2], "each record exactly once");
        for rec in taken {
            assert_eq!(
                (rec.type_id, rec.size),
                (100 + rec.slot, 10 + rec.slot),
                "torn record"
            );
        }
    });
}

#[test]
fn loom_a_published_delivery_is_drained_or_announced() {
    loom::model(|| {
        let layout = Layout::new(2, 4);
        let mem = Arc::new(SharedWords::owned(layout.words));
        layout.format_header(&mem);
        let handoff = Arc::new(Handoff::new(mem.clone(), layout.handoff_region()));
        let mut reader = HandoffReader::new(mem.clone(), layout.handoff_region());
        let delivery = |slot| Delivery {
            slot,
            handler: 1,
            attempt: 0,
            arena: 0,
            len: 0,
        };
        let producer = {
            let handoff = handoff.clone();
            thread::spawn(move || {
                let mut notified = 0;
                for slot in 0..2 {
                    assert!(handoff.push(delivery(slot)));
                    notified += usize::from(handoff.publish());
                }
                notified
            })
        };
        let first = reader.drain_full();
        let notified = producer.join().expect("producer");
        assert!(notified >= 1, "the first publish always notifies");
        // Whatever the drain missed, a notification is still pending for it:
        // the JavaScript thread comes back and drains again.
        let pending = reader.pending();
        let rest = reader.drain_full();
        assert!(
            rest.is_empty() || pending,
            "{rest:?} published with no notification pending"
        );
        let slots: Vec<u32> = first.iter().chain(&rest).map(|d| d.slot).collect();
        assert_eq!(slots, vec![0, 1]);
    });
}

#[test]
fn loom_a_parking_consumer_never_sleeps_through_a_record() {
    // Two rounds of push-then-claim: the second claim can find the request
    // bit still set by the first while the consumer, woken, has not yet
    // parked again, and must then leave the record to the consumer's last
    // look before it sleeps.
    loom::model(|| {
        let ring = Arc::new(ring());
        let park = Arc::new((Mutex::new(()), Condvar::new()));
        let consumer = {
            let (ring, park) = (ring.clone(), park.clone());
            thread::spawn(move || {
                let mut taken = Vec::new();
                while taken.len() < 2 {
                    if let Some(rec) = ring.pop_next() {
                        taken.push(rec.slot);
                        continue;
                    }
                    // As `Inner::park_until_records`: a missed wake-up
                    // leaves this thread asleep beside a record, which
                    // loom reports as a deadlock.
                    let (lock, records) = &*park;
                    let mut guard = lock.lock().expect("park lock");
                    let word = ring.park_word();
                    word.enter();
                    if ring.is_empty() {
                        guard = records.wait(guard).expect("park lock");
                    }
                    word.leave();
                    drop(guard);
                }
                taken
            })
        };
        // As `Intake.#endRun` then `Engine::wake`, once per record.
        let mut producer = RingProducer::new(&ring);
        for slot in 0..2 {
            assert!(producer.push(1, slot, 0, 0));
            if ring.park_word().claim() {
                let (lock, records) = &*park;
                let _guard = lock.lock().expect("park lock");
                records.notify_one();
            }
        }
        assert_eq!(consumer.join().expect("consumer"), vec![0, 1]);
    });
}
