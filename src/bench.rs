//! `kao bench`: the pipeline's work on a real source, without clients,
//! timed stage by stage.
//!
//! Frames are read, detected and published one after the other on one
//! thread, so every stage's time is its own (in the daemon, decoding runs on
//! the capture thread beside inference). The figures that matter:
//! frames/s of the inference thread (detect and publish, what limits the
//! daemon's rate), the share of that time spent inside ONNX Runtime, and the
//! spread of the per-frame time (p99 against the mean).

use std::time::Instant;

use opencv::prelude::*;
use serde::Serialize;

use crate::capture::{self, CaptureError};
use crate::config::SourceConfig;
use crate::frame::unix_ms;
use crate::inference::{DetectError, Detector, Face};
use crate::publish::protocol::{FaceMsg, FrameMsg, Timings};
use crate::publish::{Hub, Published, ServerInfo};
use crate::stats::percentile;

/// Stages whose time is spent inside ONNX Runtime (a model run, including
/// reading its outputs): MTCNN's three networks, the blazeface family's
/// landmark and iris models, and its `detector` stage, which also holds
/// BlazeFace's own small resize and decoding (so for that family the share
/// is slightly high).
const MODEL_STAGES: [&str; 6] = ["pnet", "rnet", "onet", "detector", "landmarks", "iris"];

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("detecting faces in frame {frame}: {source}")]
    Detect {
        frame: usize,
        #[source]
        source: DetectError,
    },
    #[error("{uri} gave no frames to measure")]
    NoFrames { uri: String },
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Frames measured, after the warm-up.
    pub frames: usize,
    /// Runs on the first frame before measuring (session warm-up, first
    /// allocations); the measured frames still start with the first.
    pub warmup: usize,
    /// Keep every frame's faces in the report (for comparing detections).
    pub keep_faces: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            frames: 100,
            warmup: 3,
            keep_faces: false,
        }
    }
}

/// One stage's time over the measured frames, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageStats {
    pub stage: String,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl StageStats {
    fn of(stage: &str, values: &[f64]) -> StageStats {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        StageStats {
            stage: stage.into(),
            mean: round3(mean),
            p50: round3(percentile(&v, 50.0)),
            p90: round3(percentile(&v, 90.0)),
            p99: round3(percentile(&v, 99.0)),
        }
    }
}

/// The result of a run, as printed (`--json` prints this structure).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub source: String,
    pub width: i32,
    pub height: i32,
    pub frames: usize,
    pub warmup: usize,
    /// `model -> provider` as really registered.
    pub providers: Vec<(String, String)>,
    /// Frames per second of the inference thread: detection and publishing.
    pub fps: f64,
    /// Frames per second when decoding is done on the same thread too.
    pub fps_with_decode: f64,
    /// Per stage, in pipeline order; `processing` is detection plus
    /// publishing of one frame.
    pub stages: Vec<StageStats>,
    /// Share of the processing time spent inside ONNX Runtime, in percent.
    pub ort_percent: f64,
    /// p99 of the processing time over its mean.
    pub p99_over_mean: f64,
    pub faces_per_frame: f64,
    /// CPU time (all threads, user and system) per measured frame, in
    /// milliseconds; unlike frames/s it barely moves when other work
    /// shares the machine. `None` where /proc is not there.
    pub cpu_ms_per_frame: Option<f64>,
    /// Peak resident memory of the process, in MiB (VmHWM); `None` where
    /// /proc is not there.
    pub peak_rss_mib: Option<f64>,
    /// Every measured frame's faces, when asked for.
    #[serde(skip)]
    pub faces: Vec<Vec<Face>>,
}

/// Runs the detector over `options.frames` frames of a source.
pub fn run(
    source_config: &SourceConfig,
    detector: &mut dyn Detector,
    options: &BenchOptions,
) -> Result<BenchReport, BenchError> {
    let mut source = capture::open(source_config)?;
    let hub = Hub::new(ServerInfo::default());
    let mut per_stage: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |stage: &str, ms: f64| match per_stage.iter_mut().find(|(s, _)| s == stage) {
        Some((_, v)) => v.push(ms),
        None => per_stage.push((stage.to_string(), vec![ms])),
    };
    let (mut width, mut height) = (0, 0);
    let (mut measured, mut faces_total) = (0usize, 0usize);
    let (mut processing_s, mut decode_s) = (0.0f64, 0.0f64);
    let mut kept = Vec::new();
    let mut cpu_s = 0.0f64;

    while measured < options.frames {
        let start = Instant::now();
        let image = match source.read()? {
            Some(image) => image,
            None if measured > 0 && source.rewind() => continue,
            None => break,
        };
        let decode_ms = ms_since(start);
        if measured == 0 {
            for _ in 0..options.warmup {
                detector
                    .detect(&image)
                    .map_err(|source| BenchError::Detect { frame: 0, source })?;
            }
        }
        let captured_at = std::time::SystemTime::now();

        let cpu_before = cpu_seconds();
        let start = Instant::now();
        let (faces, stages) = detector
            .detect(&image)
            .map_err(|source| BenchError::Detect {
                frame: measured,
                source,
            })?;
        let detect_ms = ms_since(start);

        // Publishing as the daemon does: the message, its JSON line, the
        // hand-over to the (here empty) hub.
        let publish_start = Instant::now();
        let (w, h) = (image.cols(), image.rows());
        let n_faces = faces.len();
        if options.keep_faces {
            kept.push(faces.clone());
        }
        let message = FrameMsg {
            seq: measured as u64,
            captured_at_ms: unix_ms(captured_at),
            width: w,
            height: h,
            dropped: 0,
            missed: 0,
            timings_ms: Timings::new(decode_ms, 0.0, &stages, detect_ms),
            faces: faces.iter().map(|f| FaceMsg::new(f, w, h)).collect(),
            jpeg: None,
        };
        hub.publish(Published::new(message, image, faces, 80));
        let publish_ms = ms_since(publish_start);
        let processing_ms = ms_since(start);
        if let (Some(a), Some(b)) = (cpu_before, cpu_seconds()) {
            cpu_s += b - a;
        }

        (width, height) = (w, h);
        add("decode", decode_ms);
        for (stage, ms) in stages.iter() {
            add(stage, ms);
        }
        add("publish", publish_ms);
        add("processing", processing_ms);
        processing_s += processing_ms / 1000.0;
        decode_s += decode_ms / 1000.0;
        faces_total += n_faces;
        measured += 1;
    }
    if measured == 0 {
        return Err(BenchError::NoFrames {
            uri: source.describe(),
        });
    }

    let total_of = |stage: &str| -> f64 {
        per_stage
            .iter()
            .find(|(s, _)| s == stage)
            .map_or(0.0, |(_, v)| v.iter().sum())
    };
    let inside_ort: f64 = MODEL_STAGES.iter().map(|s| total_of(s)).sum();
    let stages: Vec<StageStats> = per_stage
        .iter()
        .map(|(s, v)| StageStats::of(s, v))
        .collect();
    let processing = stages
        .iter()
        .find(|s| s.stage == "processing")
        .cloned()
        .unwrap_or_else(|| StageStats::of("processing", &[]));
    Ok(BenchReport {
        source: source.describe(),
        width,
        height,
        frames: measured,
        warmup: options.warmup,
        providers: detector.providers(),
        fps: round3(measured as f64 / processing_s.max(1e-9)),
        fps_with_decode: round3(measured as f64 / (processing_s + decode_s).max(1e-9)),
        ort_percent: round3(100.0 * inside_ort / total_of("processing").max(1e-9)),
        p99_over_mean: round3(processing.p99 / processing.mean.max(1e-9)),
        stages,
        faces_per_frame: round3(faces_total as f64 / measured as f64),
        cpu_ms_per_frame: cpu_seconds().map(|_| round3(1000.0 * cpu_s / measured as f64)),
        peak_rss_mib: peak_rss_mib(),
        faces: kept,
    })
}

impl BenchReport {
    /// The kept faces in the reference scripts' format: `{"frames":
    /// [{"index": i, "faces": [{"box", "score", "keypoints"}]}]}`, boxes
    /// `[x1, y1, x2, y2]` in MTCNN's convention.
    pub fn detections_json(&self) -> serde_json::Value {
        let frames: Vec<serde_json::Value> = self
            .faces
            .iter()
            .enumerate()
            .map(|(index, faces)| {
                let faces: Vec<serde_json::Value> = faces
                    .iter()
                    .map(|f| {
                        serde_json::json!({
                            "box": f.bbox,
                            "score": f.score,
                            "keypoints": f.keypoints,
                        })
                    })
                    .collect();
                serde_json::json!({ "index": index, "faces": faces })
            })
            .collect();
        serde_json::json!({
            "source": self.source,
            "fps": self.fps,
            "frames": frames,
        })
    }

    /// The report as the readable text `kao bench` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let providers: Vec<String> = self
            .providers
            .iter()
            .map(|(m, p)| format!("{m}={p}"))
            .collect();
        let _ = writeln!(
            s,
            "{} ({}x{}): {} frames after {} warm-up runs, providers {}",
            self.source,
            self.width,
            self.height,
            self.frames,
            self.warmup,
            providers.join(" ")
        );
        let _ = writeln!(
            s,
            "frames/s: {:.2} (detect + publish), {:.2} with decoding on the same thread",
            self.fps, self.fps_with_decode
        );
        let _ = writeln!(
            s,
            "{:<12} {:>8} {:>8} {:>8} {:>8}",
            "stage (ms)", "mean", "p50", "p90", "p99"
        );
        for st in &self.stages {
            let _ = writeln!(
                s,
                "{:<12} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                st.stage, st.mean, st.p50, st.p90, st.p99
            );
        }
        let _ = writeln!(
            s,
            "inside ONNX Runtime: {:.1} % of processing time",
            self.ort_percent
        );
        let _ = writeln!(s, "processing p99 / mean: {:.2}", self.p99_over_mean);
        let _ = writeln!(s, "faces per frame: {:.2}", self.faces_per_frame);
        if let Some(cpu) = self.cpu_ms_per_frame {
            let _ = writeln!(
                s,
                "CPU time per frame: {cpu:.1} ms (all threads; {:.2} cores busy while processing)",
                cpu / self
                    .stages
                    .iter()
                    .find(|s| s.stage == "processing")
                    .map_or(f64::NAN, |s| s.mean)
            );
        }
        match self.peak_rss_mib {
            Some(m) => {
                let _ = writeln!(s, "peak RSS: {m:.1} MiB");
            }
            None => {
                let _ = writeln!(s, "peak RSS: unknown (no /proc/self/status)");
            }
        }
        s
    }
}

/// Peak resident set size of this process in MiB, from `VmHWM`.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_kib(&status, "VmHWM:").map(|kib| kib / 1024.0)
}

/// Clock ticks per second of /proc's CPU times (`USER_HZ`): 100 on every
/// Linux architecture kao runs on.
const USER_HZ: f64 = 100.0;

/// CPU time this process has used so far (all threads, user and system),
/// in seconds, from /proc/self/stat; 10 ms resolution.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks / USER_HZ)
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line. The
/// command name (field 2) may hold spaces, so fields are counted after its
/// closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   1234 kB` line of /proc/<pid>/status, in KiB.
fn parse_vm_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut parts = line[key.len()..].split_whitespace();
    let value: f64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(value),
        _ => None,
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_lines_are_read_in_kib() {
        let status = "Name:\tkao\nVmPeak:\t  900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 10240 kB\n";
        assert_eq!(parse_vm_kib(status, "VmHWM:"), Some(20480.0));
        assert_eq!(parse_vm_kib(status, "VmRSS:"), Some(10240.0));
        assert_eq!(parse_vm_kib(status, "VmSwap:"), None);
        assert_eq!(parse_vm_kib("VmHWM: 12 MB\n", "VmHWM:"), None);
    }

    #[test]
    fn peak_rss_of_this_process_is_at_least_its_rss() {
        // One snapshot: the two figures are read at the same moment.
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux has /proc");
        let peak = parse_vm_kib(&status, "VmHWM:").expect("VmHWM line");
        let now = parse_vm_kib(&status, "VmRSS:").expect("VmRSS line");
        assert!(now > 0.0 && peak >= now, "peak {peak} KiB, now {now} KiB");
        assert!(peak_rss_mib().is_some_and(|m| m * 1024.0 >= peak));
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        // A command name with a space and a parenthesis, as /proc allows.
        let stat = "4242 (kao (x) y) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(287.0));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn stage_stats_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = StageStats::of("pnet", &v);
        assert_eq!((s.mean, s.p50, s.p90, s.p99), (5.5, 5.0, 9.0, 10.0));
    }
}
