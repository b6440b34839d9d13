//! Reading Redis's replies. Redis is outside the process: a reply of an
//! unexpected shape (another program writing into our keys, a server of
//! another version) is skipped or reported, never trusted into a panic.

use redis::Value;

/// One stream entry: its id, and its envelope (`None` when the entry is
/// gone, or carries no `e` field: it is reported undecodable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub id: String,
    pub envelope: Option<Vec<u8>>,
    /// A retry's handler key (field `h`): it runs for that handler alone.
    pub handler: Option<String>,
    /// A retry's attempt (field `a`; 1 when unreadable).
    pub attempt: u32,
    /// A retry's earlier errors (field `m`, JSON).
    pub errors: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// An array's items, taken out of it (nothing for anything else).
fn into_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for an entry deleted while
/// pending. Takes the reply apart rather than copying out of it: the
/// envelopes are most of a read's bytes.
fn entry(v: Value) -> Option<RawEntry> {
    let mut parts = into_items(v).into_iter();
    let id = match parts.next()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        other => text(&other)?,
    };
    let mut fields = parts.next().map(into_items).unwrap_or_default();
    let mut field = |name: &[u8]| {
        fields.chunks_mut(2).find_map(|kv| match kv {
            [Value::BulkString(k), Value::BulkString(value)] if k == name => {
                Some(std::mem::take(value))
            }
            _ => None,
        })
    };
    let handler = field(b"h")
        .and_then(|h| String::from_utf8(h).ok())
        .filter(|h| !h.is_empty());
    let attempt = match &handler {
        Some(_) => field(b"a")
            .and_then(|a| std::str::from_utf8(&a).ok()?.parse::<u32>().ok())
            .map_or(1, |a| a.min(super::MAX_ATTEMPT)),
        None => 0,
    };
    Some(RawEntry {
        id,
        envelope: field(b"e"),
        handler,
        attempt,
        errors: field(b"m").and_then(|m| String::from_utf8(m).ok()),
    })
}

/// A stream entry id as `(ms, seq)`, for ordering; an id that is not one
/// sorts first.
pub fn entry_id(id: &str) -> (u64, u64) {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .unwrap_or_default()
}

/// `XREADGROUP`: entries per stream key. Nil (nothing arrived) is empty.
pub fn read(v: Value) -> Vec<(String, Vec<RawEntry>)> {
    let per_key = |key: &Value, entries: Value| {
        text(key).map(|k| {
            (
                k,
                into_items(entries).into_iter().filter_map(entry).collect(),
            )
        })
    };
    match v {
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(k, e)| per_key(&k, e))
            .collect(),
        other => into_items(other)
            .into_iter()
            .filter_map(|s| match <[Value; 2]>::try_from(into_items(s)) {
                Ok([k, e]) => per_key(&k, e),
                Err(_) => None,
            })
            .collect(),
    }
}

/// `XRANGE` of the dead-letter stream: entries `<n>-0` with fields `e`
/// (envelope), `m` (JSON) and `s` (work stream); others are skipped.
pub fn letters(v: &Value) -> Vec<super::GroupLetter> {
    items(v)
        .iter()
        .filter_map(|e| {
            let parts = items(e);
            let id = text(parts.first()?)?;
            let n: u64 = id.strip_suffix("-0")?.parse().ok()?;
            let fields = parts.get(1).map(items).unwrap_or(&[]);
            let field = |name: &[u8]| {
                fields.chunks(2).find_map(|kv| match kv {
                    [Value::BulkString(k), Value::BulkString(v)] if k == name => Some(v.clone()),
                    _ => None,
                })
            };
            Some(super::GroupLetter {
                id: n,
                stream: String::from_utf8(field(b"s")?).ok()?,
                envelope: field(b"e").filter(|e| !e.is_empty()),
                meta: String::from_utf8(field(b"m")?).ok()?,
            })
        })
        .collect()
}

/// `scripts::DUE`: the ms until the next retry not yet due (`None`: none
/// waits), and the due ones' numbers and streams.
pub fn due(v: &[Value]) -> (Option<u64>, Vec<(String, String)>) {
    let next = v
        .first()
        .and_then(int)
        .and_then(|ms| u64::try_from(ms).ok());
    let found = v
        .get(1..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .filter_map(|pair| Some((text(&pair[0])?, text(&pair[1]).unwrap_or_default())))
        .collect();
    (next, found)
}

/// `XCLAIM` (without `JUSTID`): the entries claimed.
pub fn claimed(v: Value) -> Vec<RawEntry> {
    into_items(v).into_iter().filter_map(entry).collect()
}

/// One line of `XPENDING key group [IDLE ms] start end count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub consumer: String,
    pub idle_ms: u64,
    /// Times it was delivered (read or claimed).
    pub deliveries: u32,
}

pub fn pending(v: &Value) -> Vec<Pending> {
    items(v)
        .iter()
        .filter_map(|line| match items(line) {
            [id, consumer, idle, count] => Some(Pending {
                id: text(id)?,
                consumer: text(consumer)?,
                idle_ms: int(idle)?.max(0) as u64,
                deliveries: int(count)?.clamp(0, u32::MAX as i64) as u32,
            }),
            _ => None,
        })
        .collect()
}

/// An integer reply (`XLEN`, a script's count); 0 when it is not one.
pub fn count(v: &Value) -> u64 {
    int(v).unwrap_or(0).max(0) as u64
}

/// `XPENDING key group` (summary): how many entries are pending.
pub fn pending_count(v: &Value) -> u64 {
    items(v).first().map_or(0, count)
}

/// `XINFO GROUPS key`: the consumers of group `group`.
pub fn group_consumers(v: &Value, group: &str) -> u64 {
    items(v)
        .iter()
        .filter_map(|g| {
            let fields: Vec<(String, &Value)> = match g {
                Value::Map(pairs) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, v)))
                    .collect(),
                other => items(other)
                    .chunks(2)
                    .filter_map(|kv| Some((text(kv.first()?)?, kv.get(1)?)))
                    .collect(),
            };
            let name = fields
                .iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, v)| text(v))?;
            (name == group).then(|| {
                fields
                    .iter()
                    .find(|(k, _)| k == "consumers")
                    .map_or(0, |(_, v)| count(v))
            })
        })
        .max()
        .unwrap_or(0)
}

/// A line `name:value` of an `INFO` reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == name).then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_read_reply_yields_entries_per_stream_and_skips_what_it_cannot_read() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("{bootify:a}:normal:job"),
                Value::Array(vec![
                    Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("e"), bulk("{}")])]),
                    Value::Array(vec![bulk("2-0"), Value::Nil]),
                    Value::Array(vec![bulk("3-0"), Value::Array(vec![bulk("x"), bulk("y")])]),
                    Value::Int(7),
                ]),
            ]),
            Value::Okay,
        ]);
        let got = read(reply);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "{bootify:a}:normal:job");
        let ids: Vec<(&str, bool)> = got[0]
            .1
            .iter()
            .map(|e| (e.id.as_str(), e.envelope.is_some()))
            .collect();
        assert_eq!(ids, vec![("1-0", true), ("2-0", false), ("3-0", false)]);
        assert!(read(Value::Nil).is_empty());
    }

    #[test]
    fn a_retry_entry_names_its_handler_attempt_and_errors_and_garbage_is_read_safely() {
        let entry = |fields: Vec<&str>| {
            Value::Array(vec![
                bulk("9-0"),
                Value::Array(fields.into_iter().map(bulk).collect()),
            ])
        };
        let reply = Value::Array(vec![
            entry(vec!["e", "{}", "h", "Mailer.send", "a", "2", "m", "[]"]),
            entry(vec!["e", "{}", "h", "Mailer.send", "a", "two"]),
            entry(vec!["e", "{}", "h", ""]),
            entry(vec!["e", "{}", "h", "Mailer.send", "a", "4294967295"]),
        ]);
        let got = claimed(reply);
        let seen: Vec<(Option<&str>, u32, Option<&str>)> = got
            .iter()
            .map(|e| (e.handler.as_deref(), e.attempt, e.errors.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (Some("Mailer.send"), 2, Some("[]")),
                (Some("Mailer.send"), 1, None),
                (None, 0, None),
                (Some("Mailer.send"), super::super::MAX_ATTEMPT, None),
            ],
            "an unreadable attempt is the first retry; an empty key is no key; \
             an absurd one is capped"
        );
    }

    #[test]
    fn entry_ids_order_by_time_then_sequence_not_as_text() {
        let mut ids = vec!["10-0", "9-12", "9-2", "garbage", "1700000000000-1"];
        ids.sort_by_key(|id| entry_id(id));
        assert_eq!(
            ids,
            vec!["garbage", "9-2", "9-12", "10-0", "1700000000000-1"]
        );
    }

    #[test]
    fn due_retries_and_the_wait_for_the_next_are_read_defensively() {
        let reply = vec![
            Value::Int(250),
            bulk("7"),
            bulk("{bootify:a}:normal:job"),
            bulk("8"),
            bulk(""),
            bulk("9"),
        ];
        let (next, found) = due(&reply);
        assert_eq!(next, Some(250));
        assert_eq!(
            found,
            vec![
                ("7".to_string(), "{bootify:a}:normal:job".to_string()),
                ("8".to_string(), String::new()),
            ],
            "a number without its stream is left out"
        );
        assert_eq!(due(&[Value::Int(-1)]), (None, Vec::new()));
        assert_eq!(due(&[]), (None, Vec::new()));
    }

    #[test]
    fn dead_letters_are_read_by_their_numbers_and_foreign_entries_skipped() {
        let letter = |id: &str, fields: Vec<&str>| {
            Value::Array(vec![
                bulk(id),
                Value::Array(fields.into_iter().map(bulk).collect()),
            ])
        };
        let reply = Value::Array(vec![
            letter(
                "3-0",
                vec![
                    "e",
                    "{}",
                    "m",
                    "{\"attempts\":3}",
                    "s",
                    "{bootify:a}:low:job",
                ],
            ),
            letter("4-1", vec!["e", "{}", "m", "{}", "s", "k"]),
            letter("5-0", vec!["e", "", "m", "{}"]),
            letter("6-0", vec!["e", "", "m", "{}", "s", "k"]),
        ]);
        let got = letters(&reply);
        assert_eq!(
            got.len(),
            2,
            "ids other than <n>-0 and letters without a stream are skipped"
        );
        assert_eq!(
            (got[0].id, got[0].stream.as_str()),
            (3, "{bootify:a}:low:job")
        );
        assert_eq!(got[1].envelope, None, "an empty envelope is none");
    }

    #[test]
    fn pending_lines_and_group_info_are_read_defensively() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("5-1"),
                bulk("c1"),
                Value::Int(40_000),
                Value::Int(3),
            ]),
            Value::Array(vec![bulk("bad")]),
        ]);
        assert_eq!(
            pending(&reply),
            vec![Pending {
                id: "5-1".into(),
                consumer: "c1".into(),
                idle_ms: 40_000,
                deliveries: 3
            }]
        );
        let groups = Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("bootify"),
            bulk("consumers"),
            Value::Int(3),
        ])]);
        assert_eq!(group_consumers(&groups, "bootify"), 3);
        assert_eq!(group_consumers(&groups, "other"), 0);
        assert_eq!(
            info_field("# Server\r\nredis_version:7.0.15\r\n", "redis_version").as_deref(),
            Some("7.0.15")
        );
    }
}
