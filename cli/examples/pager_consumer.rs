//! A small pager bridge: consumes `fleet.alerts.v1`, drops repeats, prints each PagerDuty
//! Events v2 event as it would POST it and, with `--forward-url`, POSTs it.
//!
//! ```sh
//! eval "$(scripts/stack env)"
//! cargo run -p atlasmesh --example pager_consumer -- --from-beginning
//! PAGERDUTY_ROUTING_KEY=... cargo run -p atlasmesh --example pager_consumer -- \
//!     --forward-url https://events.pagerduty.com/v2/enqueue
//! ```
//!
//! Delivery: the alert topic is at-least-once; every message carries its `(dedup_key, seq)`
//! (key, header `seq`, and `payload.custom_details.seq`), and a key's messages are in order
//! on one partition. A message whose `seq` is not above the last one seen for its key is a
//! repeat and is dropped. (This example remembers seen seqs in memory; a production bridge
//! keeps them next to its committed offsets, or relies on PagerDuty/Alertmanager treating a
//! repeated trigger/resolve of the same dedup key as a no-op.)

use std::collections::HashMap;

use clap::Parser;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};

/// Consume AtlasMesh alert transitions and forward them as PagerDuty Events v2 events.
#[derive(Parser)]
#[command(name = "pager_consumer")]
struct Args {
    /// Kafka bootstrap servers (default: the `KAFKA_BROKERS` / config value).
    #[arg(long)]
    brokers: Option<String>,
    /// Alert topic (default: `topics.alerts` of the config, `fleet.alerts.v1`).
    #[arg(long)]
    topic: Option<String>,
    /// Consumer group; offsets are committed after each message is handled.
    #[arg(long, default_value = "atlasmesh.pager-bridge")]
    group: String,
    /// Start from the oldest message when the group has no committed offset.
    #[arg(long)]
    from_beginning: bool,
    /// POST each event here (e.g. https://events.pagerduty.com/v2/enqueue). The PagerDuty
    /// integration key is taken from the PAGERDUTY_ROUTING_KEY environment variable and added
    /// as `routing_key` (it is never on the topic).
    #[arg(long)]
    forward_url: Option<String>,
    /// Print the whole message (PagerDuty and Alertmanager fields), not just the PagerDuty event.
    #[arg(long)]
    full: bool,
    /// Stop after this many forwarded (non-repeat) events.
    #[arg(long)]
    max_events: Option<usize>,
}

/// The PagerDuty Events v2 body: the fields PagerDuty reads, plus `routing_key`.
fn pagerduty_event(msg: &serde_json::Value, routing_key: Option<&str>) -> serde_json::Value {
    let mut ev = serde_json::Map::new();
    for k in ["event_action", "dedup_key", "client", "payload", "links"] {
        if let Some(v) = msg.get(k) {
            ev.insert(k.into(), v.clone());
        }
    }
    if let Some(rk) = routing_key {
        ev.insert("routing_key".into(), rk.into());
    }
    serde_json::Value::Object(ev)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cfg = atlasmesh_core::config::Config::load(None)?;
    let mut kafka = cfg.kafka.clone();
    if let Some(b) = &args.brokers {
        kafka.brokers = b.clone();
    }
    let topic = args.topic.clone().unwrap_or(cfg.topics.alerts.clone());
    let mut cc = atlasmesh_sinks::kafka::client_config(&kafka);
    cc.set("group.id", &args.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        );
    let consumer: StreamConsumer = cc.create()?;
    consumer.subscribe(&[&topic])?;
    let routing_key = std::env::var("PAGERDUTY_ROUTING_KEY").ok();
    let http = reqwest::Client::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut forwarded = 0usize;
    eprintln!("pager_consumer: consuming {topic} as group {}", args.group);
    loop {
        let m = consumer.recv().await?;
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).to_string())
            .unwrap_or_default();
        let seq: Option<u64> = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "seq").and_then(|h| h.value))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        let Some(msg) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        else {
            eprintln!(
                "pager_consumer: skipping a message that is not JSON at {}/{}",
                m.partition(),
                m.offset()
            );
            consumer.store_offset_from_message(&m)?;
            continue;
        };
        let seq = seq
            .or_else(|| {
                msg.pointer("/payload/custom_details/seq")
                    .and_then(|v| v.as_u64())
            })
            .unwrap_or(0);
        if last_seq.get(&key).is_some_and(|&s| seq <= s) {
            eprintln!("pager_consumer: repeat {key} seq {seq} dropped");
            consumer.store_offset_from_message(&m)?;
            continue;
        }
        let event = pagerduty_event(&msg, routing_key.as_deref());
        let shown = if args.full { &msg } else { &event };
        println!(
            "POST {} seq={seq}\n{}",
            args.forward_url.as_deref().unwrap_or("(dry run)"),
            serde_json::to_string_pretty(shown)?
        );
        if let Some(url) = &args.forward_url {
            // Retry until accepted: dropping a page is worse than sending it late.
            let mut backoff = std::time::Duration::from_millis(200);
            loop {
                match http.post(url).json(&event).send().await {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        eprintln!(
                            "pager_consumer: {url} refused {key} seq {seq}: {}",
                            r.status()
                        );
                        break;
                    }
                    Ok(r) => eprintln!("pager_consumer: {url} answered {}; retrying", r.status()),
                    Err(e) => eprintln!("pager_consumer: POST failed ({e}); retrying"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
            }
        }
        last_seq.insert(key, seq);
        consumer.store_offset_from_message(&m)?;
        forwarded += 1;
        if args.max_events.is_some_and(|n| forwarded >= n) {
            consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
            return Ok(());
        }
    }
}
