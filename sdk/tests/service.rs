//! Services under `gateway_sdk::testing::ServiceTest`: start and
//! configuration, timer, callouts, queues, stop, and what a host that asks
//! a service for an HTTP context gets.

use gateway_sdk::queue::Queue;
use gateway_sdk::service::{self, CalloutId};
use gateway_sdk::testing::{ServiceTest, TestResponse};
use gateway_sdk::{shared, CalloutRequest, CalloutResponse, Service};
use std::time::Duration;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    every_ms: u64,
    #[serde(default)]
    cluster: Option<String>,
}

/// Counts ticks and queue messages into shared data; asks `cluster` on
/// each tick when it has one.
struct Recorder {
    every: Duration,
    cluster: Option<String>,
    ticks: u32,
    queue: Queue,
    answers: Vec<(CalloutId, Option<u16>)>,
}

fn publish(key: &str, value: impl ToString) {
    shared::set(key, value.to_string().as_bytes(), None).expect("shared data");
}

impl Service for Recorder {
    type Config = Config;

    fn validate_config(config: &Config) -> Result<(), String> {
        if config.every_ms == 0 {
            return Err("every_ms must be above zero".into());
        }
        Ok(())
    }

    fn start(config: &Config) -> Result<Self, String> {
        Ok(Recorder {
            every: Duration::from_millis(config.every_ms),
            cluster: config.cluster.clone(),
            ticks: 0,
            queue: Queue::register("events").map_err(|code| format!("queue: {code}"))?,
            answers: Vec::new(),
        })
    }

    fn configure(&mut self, config: &Config) -> Result<(), String> {
        self.every = Duration::from_millis(config.every_ms);
        Ok(())
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(self.every)
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        publish("ticks", self.ticks);
        if let Some(cluster) = &self.cluster {
            service::send_callout(&CalloutRequest::get(cluster, "/x")).expect("sent");
        }
    }

    fn on_callout(&mut self, id: CalloutId, answer: CalloutResponse) {
        self.answers.push((id, answer.status()));
        publish(
            "answers",
            format!("{:?}", self.answers.iter().map(|a| a.1).collect::<Vec<_>>()),
        );
    }

    fn on_queue_ready(&mut self, queue: Queue) {
        assert_eq!(queue, self.queue);
        let mut got = Vec::new();
        while let Some(message) = queue.dequeue() {
            got.push(String::from_utf8_lossy(&message).into_owned());
        }
        publish("events", got.join(","));
    }

    fn on_stop(&mut self) {
        publish("stopped", "yes");
    }
}

gateway_sdk::export_service!(Recorder);

#[test]
fn starts_from_its_typed_configuration_and_ticks_on_its_period() {
    let mut test = ServiceTest::<Recorder>::new(r#"{"every_ms": 250}"#).expect("started");
    assert_eq!(test.tick_period(), Some(Duration::from_millis(250)));
    test.tick();
    test.tick();
    assert_eq!(test.shared_data("ticks").as_deref(), Some(&b"2"[..]));
    test.configure(r#"{"every_ms": 1000}"#)
        .expect("reconfigured");
    assert_eq!(test.tick_period(), Some(Duration::from_secs(1)));
}

#[test]
fn a_bad_configuration_rejects_the_start_with_its_reason() {
    let err = ServiceTest::<Recorder>::new(r#"{"every_ms": 0}"#)
        .err()
        .expect("rejected");
    assert!(err.contains("every_ms must be above zero"), "{err}");
    let err = ServiceTest::<Recorder>::new(r#"{"every": 5}"#)
        .err()
        .expect("rejected");
    assert!(err.contains("configuration rejected"), "{err}");
}

#[test]
fn callout_answers_and_failures_reach_the_service_in_order() {
    let mut test =
        ServiceTest::<Recorder>::new(r#"{"every_ms": 10, "cluster": "upstream"}"#).expect("ok");
    test.tick();
    test.tick();
    assert_eq!(test.pending_callouts().len(), 2);
    assert_eq!(test.pending_callouts()[0].cluster, "upstream");
    test.answer_callout(TestResponse::new(204));
    test.fail_callout();
    assert!(test.pending_callouts().is_empty());
    assert_eq!(
        test.shared_data("answers").as_deref(),
        Some(&b"[Some(204), None]"[..])
    );
}

#[test]
fn messages_in_its_queue_are_handed_over_and_stop_is_told() {
    let mut test = ServiceTest::<Recorder>::new(r#"{"every_ms": 10}"#).expect("ok");
    test.enqueue("events", b"a").enqueue("events", b"b");
    assert_eq!(test.shared_data("events").as_deref(), Some(&b"b"[..]));
    test.stop();
    assert_eq!(test.shared_data("stopped").as_deref(), Some(&b"yes"[..]));
}

#[test]
fn asked_for_an_http_context_a_service_says_it_is_one() {
    let mut test = ServiceTest::<Recorder>::new(r#"{"every_ms": 10}"#).expect("ok");
    let said = test.create_http_context().expect_err("no HTTP context");
    assert!(
        said.starts_with("no HTTP context: this module is a service"),
        "{said}"
    );
    assert!(test.logged("no HTTP context"));
}
