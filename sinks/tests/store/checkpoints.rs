//! Incremental checkpoints in PostgreSQL: a full state, deltas appended onto it in order, a
//! full save that drops them, and deltas refused onto another base or an older offset.

use atlasmesh_sinks::postgres::{Checkpoint, CheckpointStore};

use crate::common::setup;

fn delta(topic: &str, partition: i32, next_offset: i64, bytes: &[u8], base: i64) -> Checkpoint {
    Checkpoint::delta(topic, partition, next_offset, bytes.to_vec(), base)
}

#[tokio::test]
async fn deltas_append_onto_their_base_and_a_full_save_drops_them() {
    let t = setup("checkpoints").await;
    let store = CheckpointStore::new(t.pool.clone(), t.tag.clone());
    let topic = "fleet.telemetry.v1";
    assert!(store.load(topic, 0).await.unwrap().is_none());

    let full = Checkpoint::full(topic, 0, 10, b"base-1".to_vec(), 111, false);
    assert!(store.save(&[full]).await.unwrap().is_empty());
    let refused = store
        .save(&[
            delta(topic, 0, 12, b"d1", 111),
            delta(topic, 1, 5, b"x", 111),
        ])
        .await
        .unwrap();
    assert_eq!(
        refused,
        vec![1],
        "no row of partition 1: nothing to append to"
    );
    assert!(store
        .save(&[delta(topic, 0, 12, b"d2", 111)])
        .await
        .unwrap()
        .is_empty());
    let c = store.load(topic, 0).await.unwrap().unwrap();
    assert_eq!((c.next_offset, c.base_id), (12, 111));
    assert_eq!(c.state, b"base-1");
    assert_eq!(c.deltas, vec![b"d1".to_vec(), b"d2".to_vec()]);

    // Another base, or an offset behind the stored one: refused, nothing changes.
    let refused = store
        .save(&[delta(topic, 0, 20, b"other", 222)])
        .await
        .unwrap();
    assert_eq!(refused, vec![0]);
    let refused = store
        .save(&[delta(topic, 0, 11, b"old", 111)])
        .await
        .unwrap();
    assert_eq!(refused, vec![0]);
    assert_eq!(store.load(topic, 0).await.unwrap().unwrap().deltas.len(), 2);

    // A full save replaces the base and drops its deltas; new deltas build on it.
    let full = Checkpoint::full(topic, 0, 30, b"base-2".to_vec(), 333, false);
    assert!(store.save(&[full]).await.unwrap().is_empty());
    assert!(store
        .save(&[delta(topic, 0, 31, b"e1", 333)])
        .await
        .unwrap()
        .is_empty());
    let c = store.load(topic, 0).await.unwrap().unwrap();
    assert_eq!((c.next_offset, c.base_id), (31, 333));
    assert_eq!(c.state, b"base-2");
    assert_eq!(c.deltas, vec![b"e1".to_vec()]);
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stream_checkpoint_deltas WHERE pipeline = $1")
            .bind(&t.tag)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "the first base's deltas are gone");

    // A full save from behind (a worker that lost the partition) changes nothing.
    let stale = Checkpoint::full(topic, 0, 25, b"stale".to_vec(), 444, false);
    assert!(store.save(&[stale]).await.unwrap().is_empty());
    let c = store.load(topic, 0).await.unwrap().unwrap();
    assert_eq!((c.next_offset, c.base_id, c.deltas.len()), (31, 333, 1));

    // Deleting the checkpoint (reset) deletes its deltas.
    sqlx::query("DELETE FROM stream_checkpoints WHERE pipeline = $1")
        .bind(&t.tag)
        .execute(&t.pool)
        .await
        .unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM stream_checkpoint_deltas WHERE pipeline = $1")
            .bind(&t.tag)
            .fetch_one(&t.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}
