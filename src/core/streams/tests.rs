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
}

#[test]
fn a_generated_consumer_name_is_plain_and_unique_per_process() {
    let name = default_consumer();
    assert!(name.contains(&std::process::id().to_string()));
    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
}
