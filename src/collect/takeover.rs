//! The collect loop's side of [`super::custody`]: deciding about a
//! generation met for the first time in a session, running the read-back
//! passes between polls, and at each sync recording custody in the index
//! and telling the other members through the [`super::registry`].

use std::collections::HashSet;

use rdkafka::message::{BorrowedMessage, Message};

use super::custody::{self, Decision};
use super::index::{GenKey, IndexError, Lineage, Store};
use super::record::line_of;
use super::registry::Placement;
use super::writer::{At, Gap, Origin, Writer};
use super::State;
use crate::wire::{is_generation_partition_key, RecordSourceRef};

/// Where a record met: topic, partition, offset.
pub(super) type Met<'a> = (&'a str, i32, i64);

/// The first line of `key` in this session was just written: decide its
/// custody (and queue a read-back when this OUT lacks its start).
/// `pkey` is the record's partitioning key: only generations their agent
/// keeps in one partition are tracked.
pub(super) fn meet(
    st: &mut State,
    store: &Store,
    key: &GenKey,
    (topic, partition, offset): Met<'_>,
    pkey: &[u8],
) -> Result<(), IndexError> {
    let Some(registry) = st.registry.as_mut() else {
        return Ok(());
    };
    let Lineage::Generation(generation) = key.lineage else {
        return Ok(());
    };
    if st.tracker.knows(key) || !is_generation_partition_key(pkey, &key.host, generation) {
        return Ok(());
    }
    let id = key.id();
    let start = st.tracker.stint_start(topic, partition).unwrap_or(offset);
    let decision = {
        let placement = registry.lookup(&id);
        if placement.is_some() {
            // Only then does what OUT holds matter.
            let locked = store.locked()?;
            let coverage = locked
                .index
                .coverage
                .get(&custody::partition_key(topic, partition));
            let held = locked
                .index
                .generations
                .get(&id)
                .and_then(|e| e.custody.as_ref());
            custody::decide(
                &st.me,
                (topic, partition, offset),
                start,
                placement,
                coverage,
                held,
            )
        } else {
            custody::decide(&st.me, (topic, partition, offset), start, None, None, None)
        }
    };
    st.tracker
        .record(key, (topic, partition, offset), &decision);
    match decision {
        Decision::First(p) => registry.publish(&id, p),
        Decision::Rebuild { ranges, .. } => {
            st.rebuilds.enqueue(topic, partition, ranges, key.clone())
        }
        Decision::Whole { .. } | Decision::Untracked => {}
    }
    Ok(())
}

/// Run a step of the read-back passes, if any wait.
pub(super) fn step(
    st: &mut State,
    store: &Store,
    meta: Option<&[u8]>,
    now: u64,
) -> Result<(), IndexError> {
    if st.rebuilds.is_idle() {
        return Ok(());
    }
    let State {
        writer,
        rebuilds,
        tracker,
        ..
    } = st;
    let mut write = |w: &mut Writer,
                     s: &Store,
                     m: &BorrowedMessage<'_>,
                     wanted: &HashSet<GenKey>|
     -> Result<bool, IndexError> { write_back(w, s, m, wanted, meta, now) };
    if let Some(done) = rebuilds.step(writer, store, &mut write)? {
        tracing::info!(
            topic = %done.topic,
            partition = done.partition,
            generations = done.gens.len(),
            "read back: the generations are whole here once synced"
        );
        tracker.rebuilt(&done.topic, done.partition, &done.gens, &done.ranges);
    }
    Ok(())
}

/// Write one record read back, when it belongs to a wanted generation.
fn write_back(
    writer: &mut Writer,
    store: &Store,
    m: &BorrowedMessage<'_>,
    wanted: &HashSet<GenKey>,
    meta: Option<&[u8]>,
    now: u64,
) -> Result<bool, IndexError> {
    let RecordSourceRef::Attributed(src) =
        RecordSourceRef::of_record(m.key(), || crate::consume::Consumed::lf_header(m))
    else {
        return Ok(false);
    };
    let Some(generation) = src.generation else {
        return Ok(false);
    };
    let key = GenKey {
        host: src.host.to_string(),
        lineage: Lineage::Generation(generation),
    };
    if !wanted.contains(&key) {
        return Ok(false);
    }
    let value = m.payload().unwrap_or_default();
    let line = line_of(value, &src, meta);
    let at = At {
        source_path: src.path,
        offset: src.offset,
        truncated: src.truncated,
    };
    let from = Origin {
        topic: m.topic(),
        partition: m.partition(),
        time_ms: m
            .timestamp()
            .to_millis()
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(now.saturating_mul(1000)),
        // Replayed lines are looked up by key: their keys are not numbered.
        run: None,
    };
    // A line its first reading kept out of its output (too far, or an
    // output that cannot be created) is in `_unattributed` already.
    writer.write_line(store, &key, at, from, &line, now)?;
    Ok(true)
}

/// Sync the outputs and record custody in the same index save; then say
/// which generations became whole here, and wait for the registry's
/// acknowledgements. `consumed`: per partition, the offset after the
/// last record handled. Returns the gaps to report and whether offsets
/// may be committed (not while the registry has not acknowledged).
pub(super) fn sync(
    st: &mut State,
    store: &Store,
    now: u64,
    gap_timeout_secs: u64,
) -> Result<(Vec<Gap>, bool), IndexError> {
    let Some(registry) = st.registry.as_mut() else {
        return Ok((st.writer.sync(store, now, gap_timeout_secs)?, true));
    };
    registry.poll();
    st.tracker.claimed(registry.take_claims());
    let gaps = if st.tracker.has_changes() {
        let State {
            writer,
            tracker,
            registry,
            me,
            ..
        } = st;
        let registry = registry.as_ref().expect("checked above");
        let holder_of = |id: &str| registry.lookup(id).map(|p| p.holder.clone());
        let mut apply = |index: &mut super::index::Index| {
            tracker.apply(index, me, &holder_of);
        };
        writer.sync_with(store, now, gap_timeout_secs, Some(&mut apply))?
    } else {
        st.writer.sync(store, now, gap_timeout_secs)?
    };
    let registry = st.registry.as_mut().expect("checked above");
    for (key, first) in st.tracker.take_published() {
        let id = key.id();
        let Some(p) = registry.lookup(&id).cloned() else {
            continue;
        };
        if p.holder != st.me {
            tracing::debug!(generation = %id, from = %p.holder, "generation whole here: taking it over");
            registry.publish(
                &id,
                Placement {
                    first,
                    holder: st.me.clone(),
                    ..p
                },
            );
        }
    }
    match registry.flush() {
        Ok(()) => Ok((gaps, true)),
        Err(e) => {
            tracing::warn!("{e}; offsets are not committed until it is acknowledged");
            Ok((gaps, false))
        }
    }
}

/// The partition is let go (after a sync): its read-backs stop, and its
/// generations are marked at the next sync.
pub(super) fn revoke(st: &mut State, topic: &str, partition: i32) {
    st.rebuilds.cancel(topic, partition);
    st.tracker.revoke(topic, partition);
    st.writer.forget_partition(topic, partition);
}

/// The offset that may be committed for `topic`/`partition` at most.
pub(super) fn cap(st: &State, topic: &str, partition: i32, offset: i64) -> i64 {
    st.tracker
        .commit_cap(topic, partition)
        .map_or(offset, |c| c.min(offset))
}

/// The record's partitioning key: in the key form, the one it carries;
/// otherwise (header form) the record key itself.
pub(super) fn partition_key_of<'a, M: crate::consume::Consumed>(
    m: &'a M,
    carried: &'a [u8],
) -> &'a [u8] {
    if carried.is_empty() {
        m.key().unwrap_or_default()
    } else {
        carried
    }
}
