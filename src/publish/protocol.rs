//! Messages between the daemon and its clients, version 1.
//!
//! Newline-delimited JSON over a Unix socket, one object per line, each with
//! a `type`. Documented for people in `docs/PROTOCOL.md`; a change that is
//! not backwards compatible bumps [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

use crate::inference::{Face, StageTimings, KEYPOINT_NAMES};

pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line a client may send; longer ones are refused.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// A face as clients see it: rounded to 1/100 pixel, box clipped to the frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaceMsg {
    #[serde(rename = "box")]
    pub bbox: BoxMsg,
    pub score: f64,
    pub keypoints: Keypoints,
    /// Dense keypoints (the blazeface family's 468-point face mesh), absent
    /// for families without them. Each is `[x, y, z]` in source pixels,
    /// rounded to 0.1 px (the models agree with their reference to about
    /// 0.5 px, so more digits would be noise); z is depth along the camera
    /// axis relative to the face's centre, negative toward the camera, in
    /// the same scale as x. The order is MediaPipe's face mesh topology
    /// (e.g. 1 nose tip, 33/133 and 362/263 the eye corners, 61/291 the
    /// mouth corners). About 8 KB of JSON per face.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mesh: Vec<[f64; 3]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BoxMsg {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Keypoints {
    pub left_eye: [f64; 2],
    pub right_eye: [f64; 2],
    pub nose: [f64; 2],
    pub mouth_left: [f64; 2],
    pub mouth_right: [f64; 2],
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl FaceMsg {
    /// From a detection in a `width`×`height` frame.
    pub fn new(face: &Face, width: i32, height: i32) -> FaceMsg {
        let (w, h) = (f64::from(width), f64::from(height));
        let x1 = face.bbox[0].clamp(0.0, w);
        let y1 = face.bbox[1].clamp(0.0, h);
        let x2 = face.bbox[2].clamp(0.0, w);
        let y2 = face.bbox[3].clamp(0.0, h);
        let p = |i: usize| [round2(face.keypoints[i][0]), round2(face.keypoints[i][1])];
        debug_assert_eq!(KEYPOINT_NAMES[4], "mouth_right");
        FaceMsg {
            mesh: face
                .mesh
                .iter()
                .map(|p| p.map(|v| (f64::from(v) * 10.0).round() / 10.0))
                .collect(),
            bbox: BoxMsg {
                x: round2(x1),
                y: round2(y1),
                w: round2(x2 - x1),
                h: round2(y2 - y1),
            },
            score: (face.score * 10000.0).round() / 10000.0,
            keypoints: Keypoints {
                left_eye: p(0),
                right_eye: p(1),
                nose: p(2),
                mouth_left: p(3),
                mouth_right: p(4),
            },
        }
    }
}

/// Time per stage of one frame, in milliseconds, in pipeline order:
/// `decode` (at the source), `queue` (waiting for inference), the
/// detector's own stages (for MTCNN `preprocess`, `pnet`, `rnet`, `onet`,
/// `postprocess`) and `total` (capture to message).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings(pub Vec<(String, f64)>);

impl Timings {
    pub fn new(decode: f64, queue: f64, stages: &StageTimings, total: f64) -> Timings {
        let r = |v: f64| (v * 1000.0).round() / 1000.0;
        let mut t = vec![
            ("decode".to_string(), r(decode)),
            ("queue".to_string(), r(queue)),
        ];
        t.extend(stages.iter().map(|(k, v)| (k.to_string(), r(v))));
        t.push(("total".to_string(), r(total)));
        Timings(t)
    }

    /// One stage's time; 0 when it is not there.
    pub fn get(&self, stage: &str) -> f64 {
        self.0
            .iter()
            .find(|(s, _)| s == stage)
            .map_or(0.0, |(_, t)| *t)
    }
}

impl Serialize for Timings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Timings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Timings;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of stage names to milliseconds")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Timings, A::Error> {
                let mut t = Vec::new();
                while let Some(entry) = access.next_entry::<String, f64>()? {
                    t.push(entry);
                }
                Ok(Timings(t))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// Everything the server sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First message on every connection.
    Hello {
        protocol: u32,
        server: String,
        source: String,
        model: String,
        /// Provider per network, e.g. `{"pnet": "cpu", …}`.
        providers: std::collections::BTreeMap<String, String>,
    },
    /// One processed frame.
    Frame(FrameMsg),
    /// The source changed state: `up` (delivering frames, again), `lost`
    /// (failed, vanished or stalled; kao retries with backoff and keeps
    /// serving), `ended` (a file finished and is not looped). `detail` says
    /// which source and why.
    Source {
        state: String,
        detail: String,
    },
    Pong,
    /// The answer to a `status` request.
    Status(Box<StatusReport>),
    /// Something the client did was refused (a bad request, too many
    /// clients); the server closes the connection after it.
    Error {
        message: String,
    },
    /// The server is shutting down.
    Bye {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrameMsg {
    pub seq: u64,
    /// Capture time, milliseconds since the Unix epoch.
    pub captured_at_ms: f64,
    pub width: i32,
    pub height: i32,
    /// Frames dropped by the pipeline since start (inference was busy).
    pub dropped: u64,
    /// Messages this client missed since it connected (it was reading too slowly).
    #[serde(default)]
    pub missed: u64,
    pub timings_ms: Timings,
    pub faces: Vec<FaceMsg>,
    /// The annotated frame, JPEG, base64; only for clients that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg: Option<String>,
}

/// The daemon's running figures, as `kao status` prints them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub source: crate::status::SourceStatus,
    /// Processed frames per second over the last summary window.
    pub fps: f64,
    pub frames_captured: u64,
    pub frames_processed: u64,
    /// Frames dropped because inference was busy (newest frame wins).
    pub frames_dropped: u64,
    /// Frames inference failed on (logged and skipped).
    pub frames_failed: u64,
    pub clients: usize,
    pub model: String,
    /// Provider per network.
    pub providers: std::collections::BTreeMap<String, String>,
    pub uptime_s: f64,
}

/// Everything a client may send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Chooses what the client receives; `jpeg: true` adds the annotated frame.
    Subscribe {
        #[serde(default)]
        jpeg: bool,
    },
    Ping,
    /// Asks for a [`StatusReport`]; frames keep coming as before.
    Status,
}

impl ClientMsg {
    /// Parses one request line, with a message fit to send back on failure.
    pub fn parse(line: &str) -> Result<ClientMsg, String> {
        serde_json::from_str(line.trim()).map_err(|e| {
            format!(
                "bad request ({e}); send one JSON object per line, e.g. {{\"type\":\"subscribe\",\"jpeg\":false}}, {{\"type\":\"ping\"}} or {{\"type\":\"status\"}}"
            )
        })
    }
}

impl ServerMsg {
    /// One line of the wire format, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("server messages always serialise");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face() -> Face {
        Face {
            bbox: [-3.456, 10.0, 50.123456, 60.0],
            score: 0.999_876_5,
            keypoints: [
                [1.0, 2.0],
                [3.0, 4.0],
                [5.0, 6.0],
                [7.0, 8.0],
                [9.004, 10.006],
            ],
            mesh: Vec::new(),
        }
    }

    #[test]
    fn face_box_is_clipped_and_keypoints_named() {
        let f = FaceMsg::new(&face(), 40, 100);
        assert_eq!(
            f.bbox,
            BoxMsg {
                x: 0.0,
                y: 10.0,
                w: 40.0,
                h: 50.0
            }
        );
        assert_eq!(f.keypoints.mouth_right, [9.0, 10.01]);
        assert_eq!(f.score, 0.9999);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["box"]["w"], 40.0);
        assert_eq!(json["keypoints"]["left_eye"][1], 2.0);
        assert!(json.get("mesh").is_none());
    }

    #[test]
    fn mesh_is_a_list_of_xyz_rounded_to_a_tenth_of_a_pixel() {
        let mut with_mesh = face();
        with_mesh.mesh = vec![[222.709, 139.417, -10.359], [0.04, 1.0, 2.0]];
        let json = serde_json::to_value(FaceMsg::new(&with_mesh, 640, 480)).unwrap();
        assert_eq!(json["mesh"][0], serde_json::json!([222.7, 139.4, -10.4]));
        assert_eq!(json["mesh"][1], serde_json::json!([0.0, 1.0, 2.0]));
    }

    #[test]
    fn frame_message_round_trips_with_type_tag() {
        let msg = ServerMsg::Frame(FrameMsg {
            seq: 7,
            captured_at_ms: 1.5e12,
            width: 640,
            height: 480,
            dropped: 2,
            missed: 0,
            timings_ms: Timings::new(1.0, 2.0, &StageTimings::new(&["pnet"]), 9.0),
            faces: vec![FaceMsg::new(&face(), 640, 480)],
            jpeg: None,
        });
        let line = msg.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["type"], "frame");
        assert_eq!(v["seq"], 7);
        assert!(v.get("jpeg").is_none());
        // Stages appear in pipeline order on the wire.
        let at: Vec<usize> = ["\"decode\"", "\"queue\"", "\"pnet\"", "\"total\""]
            .iter()
            .map(|k| line.find(k).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert_eq!(serde_json::from_str::<ServerMsg>(&line).unwrap(), msg);
    }

    #[test]
    fn client_requests_parse_and_garbage_is_explained() {
        assert_eq!(
            ClientMsg::parse("{\"type\":\"subscribe\",\"jpeg\":true}\n").unwrap(),
            ClientMsg::Subscribe { jpeg: true }
        );
        assert_eq!(
            ClientMsg::parse("{\"type\":\"subscribe\"}").unwrap(),
            ClientMsg::Subscribe { jpeg: false }
        );
        assert_eq!(
            ClientMsg::parse("{\"type\":\"ping\"}").unwrap(),
            ClientMsg::Ping
        );
        for bad in [
            "hello",
            "{}",
            "{\"type\":\"shutdown\"}",
            "{\"type\":\"subscribe\",\"jpg\":1}",
            "[1,2]",
            "\u{0}\u{1}",
        ] {
            let err = ClientMsg::parse(bad).unwrap_err();
            assert!(err.contains("bad request"), "{bad}: {err}");
        }
    }
}
