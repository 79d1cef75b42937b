//! Events to containerd, in the order they are queued: one queue, one sender
//! task, so a TaskExit can never overtake the TaskStart queued before it.
//! Publishing only queues; it never blocks the RPC path.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{MessageDyn, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use tokio::sync::{mpsc, oneshot};

/// Where lifecycle events go; tests implement it on a Vec.
pub trait EventSink: Send + Sync {
    fn publish(&self, topic: &'static str, event: &dyn MessageDyn);
}

pub fn to_any(event: &dyn MessageDyn) -> Any {
    // containerd's typeurl registry knows events by their bare full name.
    Any {
        type_url: event.descriptor_dyn().full_name().to_string(),
        value: event.write_to_bytes_dyn().unwrap_or_default(),
        ..Default::default()
    }
}

enum Item {
    Event(Box<Envelope>),
    /// Answered once everything queued before it was sent (or given up on).
    Flush(oneshot::Sender<()>),
}

pub struct Publisher {
    tx: mpsc::UnboundedSender<Item>,
    namespace: String,
}

impl Publisher {
    /// Starts the sender task; `address` is containerd's ttrpc socket.
    pub fn start(address: String, namespace: String) -> Arc<Publisher> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_loop(address, rx));
        Arc::new(Publisher { tx, namespace })
    }

    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Item::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl EventSink for Publisher {
    fn publish(&self, topic: &'static str, event: &dyn MessageDyn) {
        let env = Envelope {
            timestamp: MessageField::some(Timestamp::now()),
            namespace: self.namespace.clone(),
            topic: topic.to_string(),
            event: MessageField::some(to_any(event)),
            ..Default::default()
        };
        if self.tx.send(Item::Event(Box::new(env))).is_err() {
            log::error!("event {topic} dropped: publisher stopped");
        }
    }
}

async fn send_loop(address: String, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut client: Option<EventsClient> = None;
    while let Some(item) = rx.recv().await {
        let env = match item {
            Item::Event(env) => *env,
            Item::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let topic = env.topic.clone();
        let req = ForwardRequest { envelope: MessageField::some(env), ..Default::default() };
        // A restarting containerd comes back within seconds; keep the order by
        // retrying this event before taking the next.
        let mut delay = Duration::from_millis(10);
        for attempt in 0.. {
            if client.is_none() {
                client = Client::connect(&address).await.ok().map(EventsClient::new);
            }
            if let Some(c) = &client {
                let ctx =
                    containerd_shim_protos::ttrpc::context::with_timeout(Duration::from_secs(5).as_nanos() as i64);
                match c.forward(ctx, &req).await {
                    Ok(_) => break,
                    Err(e) => {
                        log::warn!("publish {topic} (attempt {attempt}): {e}");
                        client = None;
                    }
                }
            }
            if attempt >= 50 {
                log::error!("event {topic} dropped: containerd at {address} unreachable");
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_uses_the_bare_type_name() {
        let ev =
            containerd_shim_protos::events::task::TaskStart { container_id: "c".into(), pid: 7, ..Default::default() };
        let any = to_any(&ev);
        assert_eq!(any.type_url, "containerd.events.TaskStart");
        assert!(!any.value.is_empty());
    }
}
