//! Unit tests that need no server; the link against a real redis-server is
//! tested from JavaScript (`__test__/redis*.spec.ts`).

use super::*;

#[test]
fn keys_share_one_hash_tag_per_bus() {
    let k = Keys::new("orders");
    assert_eq!(
        k.stream(0, "order.created"),
        "{bootify:orders}:critical:order.created"
    );
    assert_eq!(k.stream(2, "x"), "{bootify:orders}:low:x");
    assert_eq!(k.depth(), "{bootify:orders}:depth");
    assert_eq!(k.types(), "{bootify:orders}:types");
    assert_eq!(k.retries(), "{bootify:orders}:retries");
}

#[test]
fn only_this_buses_work_streams_pass_as_streams() {
    let k = Keys::new("orders");
    assert!(k.is_stream("{bootify:orders}:low:order.created"));
    assert!(k.is_stream("{bootify:orders}:critical:a:b"));
    for other in [
        "{bootify:orders}:dead",
        "{bootify:orders}:retries",
        "{bootify:orders}:urgent:x",
        "{bootify:orders}:low:",
        "{bootify:other}:low:x",
        "plain",
    ] {
        assert!(!k.is_stream(other), "{other}");
    }
}

#[test]
fn a_generated_consumer_name_is_plain_and_unique_per_process() {
    let name = default_consumer();
    assert!(name.contains(&std::process::id().to_string()));
    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
}
