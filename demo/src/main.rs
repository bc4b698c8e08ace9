//! `vigil-demo-platform`: what the demo uses as the central platform. It subscribes to everything Vigil
//! publishes on the MQTT broker at 127.0.0.1:`--port` (mosquitto, started by scripts/demo), printing
//! each message as an integrator would receive it. Ends after `--seconds` (default 60) or on SIGINT.
//!
//!     vigil-demo-platform [--port 18830] [--seconds 60] [--brief]
//!
//! `--brief` prints one line per message (an event's kind, camera and details) instead of the JSON.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let port = arg("--port", 18830) as u16;
    let seconds = arg("--seconds", 60);
    let brief = std::env::args().any(|a| a == "--brief");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut options = MqttOptions::new("demo-platform", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(10));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let deadline = tokio::time::sleep(Duration::from_secs(seconds));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = tokio::signal::ctrl_c() => break,
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe("vigil/#", QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        println!("[platform] subscribed to vigil/# on the MQTT broker at 127.0.0.1:{port}");
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let json = serde_json::from_slice::<serde_json::Value>(&p.payload).ok();
                        let retained = if p.retain { " (retained)" } else { "" };
                        if brief {
                            println!("[platform] {}", summary(&p.topic, json.as_ref(), &p.payload));
                        } else {
                            let body = match &json {
                                Some(json) => serde_json::to_string_pretty(json).unwrap_or_default(),
                                None => String::from_utf8_lossy(&p.payload).into_owned(),
                            };
                            println!("[platform] {}{retained}\n{}", p.topic, indent(&body));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                },
            }
        }
    });
    println!("[platform] done");
}

/// One line per message: what an integrator's dashboard would show.
fn summary(topic: &str, json: Option<&serde_json::Value>, payload: &[u8]) -> String {
    let leaf = topic.rsplit('/').next().unwrap_or(topic);
    let mut line = match json {
        _ if topic.contains("/cmd/") => format!("sent command {leaf} (signed)"),
        Some(json) if topic.contains("/events/") => format!(
            "event {} (camera {}): {}",
            json["kind"].as_str().unwrap_or(leaf),
            json["camera"].as_str().unwrap_or("-"),
            json["details"]
        ),
        Some(json) if topic.contains("/cmd-result/") => format!("result of {leaf}: {json}"),
        Some(json) if topic.ends_with("/evidence/head") => {
            format!(
                "evidence chain head (retained): sequence {}, manifest {}",
                json["sequence"], json["manifest_sha256"]
            )
        }
        Some(json) => format!("{leaf}: {json}"),
        None => format!("{leaf}: {}", String::from_utf8_lossy(payload)),
    };
    if line.chars().count() > 300 {
        line = line.chars().take(297).collect::<String>() + "...";
    }
    line
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
