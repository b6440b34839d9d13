//! What JavaScript reads of the engine without stopping it: the shared
//! buffer's layout, and counters, depths and worker states.

use std::sync::atomic::Ordering;

use napi_derive::napi;
use serde_json::{json, Value};

use super::bus::NativeBus;
use crate::core::observe::metrics::Percentiles;
use crate::core::shm::layout;
use crate::core::shm::ring::LANE_NAMES;

/// Word offsets of the shared buffer's header, so the JavaScript side and
/// the native side agree on one layout. Region offsets are in the header.
#[napi]
pub fn ring_layout() -> Value {
    json!({
        "magic": layout::MAGIC,
        "magicValue": layout::MAGIC_VALUE,
        "laneCapacity": layout::LANE_CAPACITY,
        "handoffCapacity": layout::HANDOFF_CAPACITY,
        "lanesBase": layout::LANES_BASE,
        "deliveriesBase": layout::DELIVERIES_BASE,
        "acksBase": layout::ACKS_BASE,
        "tail": layout::TAIL,
        "head": layout::HEAD,
        "line": layout::LINE,
        "park": layout::PARK,
        "bytesOut": layout::BYTES_OUT,
        "deliveryTail": layout::DELIVERY_TAIL,
        "deliveryHead": layout::DELIVERY_HEAD,
        "deliveryPending": layout::DELIVERY_PENDING,
        "workerErrors": layout::WORKER_ERRORS,
        "reports": layout::REPORTS,
        "recordWords": layout::RECORD_WORDS,
        "record": {
            "seq": layout::record::SEQ,
            "slot": layout::record::SLOT,
            "typeId": layout::record::TYPE_ID,
            "size": layout::record::SIZE,
            "enqueuedUs": layout::record::ENQUEUED_US,
            "arena": layout::record::ARENA,
        },
        "deliveryWords": layout::DELIVERY_WORDS,
        "ackWords": layout::ACK_WORDS,
    })
}

#[napi]
impl NativeBus {
    /// Counters, depths, histograms and worker states as a JSON string,
    /// read without stopping anything. A string because JSON.parse builds
    /// the object several times faster than setting its properties one by
    /// one through Node-API.
    /// Per-type counters only `with_types`: health checks and worker
    /// statistics do not need them, and they are the part that grows.
    #[napi]
    pub fn stats(&self, with_types: Option<bool>) -> String {
        self.stats_value(with_types.unwrap_or(false)).to_string()
    }

    fn stats_value(&self, with_types: bool) -> Value {
        let q = self.engine.queue_state();
        let m = self.engine.metrics().snapshot();
        let workers: Vec<Value> = self
            .engine
            .worker_stats()
            .into_iter()
            .map(|(id, s)| {
                json!({
                    "id": id,
                    "busy": s.busy.load(Ordering::Relaxed),
                    "deliveries": s.deliveries.load(Ordering::Relaxed),
                    "batches": s.batches.load(Ordering::Relaxed),
                    "restarts": s.restarts.load(Ordering::Relaxed),
                    "lastActiveMs": s.last_active_ms.load(Ordering::Relaxed),
                })
            })
            .collect();
        let depth: serde_json::Map<String, Value> = LANE_NAMES
            .iter()
            .zip(q.queued.depth)
            .map(|(name, d)| (name.to_string(), json!(d)))
            .collect();
        let rates = self.engine.rates();
        json!({
            "depth": depth,
            "rates": { "input": rates.input, "processing": rates.processing, "windowSeconds": rates.window },
            "types": if with_types { self.engine.type_stats() } else { Vec::new() },
            "sinks": self.engine.sink_stats().iter().map(|(id, n)| json!({ "id": id, "deliveries": n })).collect::<Vec<_>>(),
            "readyRetries": q.queued.ready_retries,
            "scheduledRetries": q.queued.scheduled_retries,
            "deadLetters": q.queued.dead_letters,
            "deadLettersEvicted": q.queued.dead_letters_evicted,
            "inFlight": q.in_flight_deliveries,
            "inFlightInvocations": q.in_flight_permits,
            "concurrency": self.engine.concurrency(),
            "counters": m,
            "workers": workers,
            "refillDispatched": self.engine.refill_dispatched(),
            "pulled": self.engine.pulled(),
            "uptimeMs": self.engine.uptime().as_millis() as u64,
            "journal": self.engine.journal().map(|j| {
                let s = j.stats();
                json!({
                    "diskBytes": s.disk_bytes,
                    "maxDiskBytes": s.max_disk_bytes,
                    "room": j.room(),
                    "segments": s.segments,
                    "recordsWritten": s.records_written,
                    "bytesWritten": s.bytes_written,
                    "fsyncs": Percentiles::from(s.syncs),
                    "copiedForward": s.copied_forward,
                    "segmentsDeleted": s.segments_deleted,
                    "failure": s.failure,
                })
            }),
        })
    }
}
