//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Names follow Prometheus conventions: `_total` counters, base units
//! (seconds), one `# HELP` and `# TYPE` per family. The list is in
//! `docs/HTTP.md`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::HttpState;
use crate::status::{SourceState, LATENCY_BUCKETS_MS};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn handler(State(state): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state))
}

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render(state: &HttpState) -> String {
    let s = &state.status;
    let mut out = String::with_capacity(8192);
    let counters = [
        (
            "kao_frames_captured_total",
            "Frames read from the source.",
            &s.frames_captured,
        ),
        (
            "kao_frames_processed_total",
            "Frames that went through detection.",
            &s.frames_processed,
        ),
        (
            "kao_frames_dropped_total",
            "Frames dropped because inference was busy (the newest frame wins).",
            &s.frames_dropped,
        ),
        (
            "kao_frames_failed_total",
            "Frames on which inference failed (logged and skipped).",
            &s.frames_failed,
        ),
        (
            "kao_faces_detected_total",
            "Faces detected, summed over processed frames.",
            &s.faces_detected,
        ),
    ];
    for (name, help, counter) in counters {
        family(&mut out, name, help, "counter");
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }

    family(
        &mut out,
        "kao_stage_latency_seconds",
        "Time per pipeline stage of each processed frame; stage=\"total\" is capture to result.",
        "histogram",
    );
    for (stage, h) in s.latencies() {
        let stage = label(&stage);
        let mut cumulative = 0;
        for (i, bound_ms) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let le = bound_ms / 1000.0;
            let _ = writeln!(
                out,
                "kao_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "kao_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "kao_stage_latency_seconds_sum{{stage=\"{stage}\"}} {}",
            h.sum_ms / 1000.0
        );
        let _ = writeln!(
            out,
            "kao_stage_latency_seconds_count{{stage=\"{stage}\"}} {}",
            h.count
        );
    }

    family(
        &mut out,
        "kao_clients",
        "Clients connected now, by kind: socket (Unix socket) or web (browser viewers).",
        "gauge",
    );
    let _ = writeln!(
        out,
        "kao_clients{{kind=\"socket\"}} {}",
        state.hub.clients()
    );
    let _ = writeln!(
        out,
        "kao_clients{{kind=\"web\"}} {}",
        state.viewers.load(Ordering::Relaxed)
    );

    let source = s.source();
    family(
        &mut out,
        "kao_source_up",
        "1 while the source delivers frames, else 0.",
        "gauge",
    );
    let up = u8::from(source.state == SourceState::Up);
    let _ = writeln!(out, "kao_source_up {up}");
    family(
        &mut out,
        "kao_source_state",
        "1 for the state the source is in (starting, up, lost, ended), else 0.",
        "gauge",
    );
    for (name, st) in [
        ("starting", SourceState::Starting),
        ("up", SourceState::Up),
        ("lost", SourceState::Lost),
        ("ended", SourceState::Ended),
    ] {
        let _ = writeln!(
            out,
            "kao_source_state{{state=\"{name}\"}} {}",
            u8::from(source.state == st)
        );
    }

    family(
        &mut out,
        "kao_fps",
        "Frames processed per second over the last summary interval (log.summary_interval_s).",
        "gauge",
    );
    let _ = writeln!(out, "kao_fps {}", s.fps());
    family(
        &mut out,
        "kao_uptime_seconds",
        "Seconds since the daemon started.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "kao_uptime_seconds {}",
        s.started.elapsed().as_secs_f64()
    );

    family(
        &mut out,
        "kao_build_info",
        "Always 1; the labels say which kao this is.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "kao_build_info{{version=\"{}\"}} 1",
        label(env!("CARGO_PKG_VERSION"))
    );
    family(
        &mut out,
        "kao_model_info",
        "Always 1; one series per network with its model and execution provider.",
        "gauge",
    );
    for (network, provider) in &state.hub.info().providers {
        let _ = writeln!(
            out,
            "kao_model_info{{model=\"{}\",family=\"{}\",network=\"{}\",provider=\"{}\"}} 1",
            label(&state.model.name),
            label(&state.model.family),
            label(network),
            label(provider)
        );
    }
    out
}
