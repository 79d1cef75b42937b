//! Events to containerd, in the order they are queued: one queue, one sender
//! task, so a TaskExit can never overtake the TaskStart queued before it.
//! Publishing only queues; it never blocks the RPC path.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{CodedOutputStream, MessageDyn, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::topics;
use tokio::sync::{mpsc, oneshot};

/// Where lifecycle events go; tests implement it on a Vec.
pub trait EventSink: Send + Sync {
    fn publish(&self, topic: &'static str, event: &dyn MessageDyn);
}

/// containerd's typeurl registry knows events by their bare full name. It
/// is spelled out per topic: asking protobuf's reflection builds every
/// descriptor of the file on first use (~0.5 ms of each shim's CPU,
/// measured).
fn type_name(topic: &str) -> Option<&'static str> {
    Some(match topic {
        topics::TASK_CREATE_EVENT_TOPIC => "containerd.events.TaskCreate",
        topics::TASK_START_EVENT_TOPIC => "containerd.events.TaskStart",
        topics::TASK_OOM_EVENT_TOPIC => "containerd.events.TaskOOM",
        topics::TASK_EXIT_EVENT_TOPIC => "containerd.events.TaskExit",
        topics::TASK_DELETE_EVENT_TOPIC => "containerd.events.TaskDelete",
        topics::TASK_EXEC_ADDED_EVENT_TOPIC => "containerd.events.TaskExecAdded",
        topics::TASK_EXEC_STARTED_EVENT_TOPIC => "containerd.events.TaskExecStarted",
        topics::TASK_PAUSED_EVENT_TOPIC => "containerd.events.TaskPaused",
        topics::TASK_RESUMED_EVENT_TOPIC => "containerd.events.TaskResumed",
        topics::TASK_CHECKPOINTED_EVENT_TOPIC => "containerd.events.TaskCheckpointed",
        _ => return None,
    })
}

pub fn to_any(topic: &str, event: &dyn MessageDyn) -> Any {
    let type_url = type_name(topic).map_or_else(|| event.descriptor_dyn().full_name().to_string(), String::from);
    Any { type_url, value: encode(event), ..Default::default() }
}

/// What `write_to_bytes_dyn` writes, without the descriptor it fetches
/// only to name the message in an error it might report.
fn encode(event: &dyn MessageDyn) -> Vec<u8> {
    let mut v = Vec::with_capacity(event.compute_size_dyn() as usize);
    let mut os = CodedOutputStream::vec(&mut v);
    let written = event.write_to_with_cached_sizes_dyn(&mut os).and_then(|()| os.flush()).is_ok();
    drop(os);
    if written {
        v
    } else {
        Vec::new()
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
            event: MessageField::some(to_any(topic, event)),
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

    use containerd_shim_protos::events::task::*;

    #[test]
    fn any_uses_the_bare_type_name() {
        let ev = TaskStart { container_id: "c".into(), pid: 7, ..Default::default() };
        let any = to_any(topics::TASK_START_EVENT_TOPIC, &ev);
        assert_eq!(any.type_url, "containerd.events.TaskStart");
        assert_eq!(any.value, (&ev as &dyn MessageDyn).write_to_bytes_dyn().expect("bytes"));
        assert!(!any.value.is_empty());
    }

    #[test]
    fn each_topic_names_the_type_reflection_gives() {
        let events: [(&str, &dyn MessageDyn); 10] = [
            (topics::TASK_CREATE_EVENT_TOPIC, &TaskCreate::default()),
            (topics::TASK_START_EVENT_TOPIC, &TaskStart::default()),
            (topics::TASK_OOM_EVENT_TOPIC, &TaskOOM::default()),
            (topics::TASK_EXIT_EVENT_TOPIC, &TaskExit::default()),
            (topics::TASK_DELETE_EVENT_TOPIC, &TaskDelete::default()),
            (topics::TASK_EXEC_ADDED_EVENT_TOPIC, &TaskExecAdded::default()),
            (topics::TASK_EXEC_STARTED_EVENT_TOPIC, &TaskExecStarted::default()),
            (topics::TASK_PAUSED_EVENT_TOPIC, &TaskPaused::default()),
            (topics::TASK_RESUMED_EVENT_TOPIC, &TaskResumed::default()),
            (topics::TASK_CHECKPOINTED_EVENT_TOPIC, &TaskCheckpointed::default()),
        ];
        for (topic, ev) in events {
            assert_eq!(type_name(topic), Some(ev.descriptor_dyn().full_name()), "{topic}");
        }
        assert_eq!(to_any("/tasks/?", &TaskIO::default()).type_url, "containerd.events.TaskIO");
    }
}
