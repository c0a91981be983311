#!/usr/bin/env python3
"""Compares kao's detections and speed with the reference MTCNN's on the
same frames. Standard library only.

Usage: compare.py REFERENCE.json KAO_DETECTIONS.json KAO_REPORT.json

REFERENCE.json comes from mtcnn_bench.py, KAO_DETECTIONS.json from
`kao bench --detections`, KAO_REPORT.json from `kao bench --json`. A
reference face is matched when a kao face on the same frame overlaps it with
IoU >= 0.9 and every keypoint is within 2 px (the parity test's bounds).
Exits 0 when every frame agrees (same count, every face matched), 1 when
not, 2 on bad input.
"""
import json
import sys

MIN_IOU = 0.9
MAX_KEYPOINT_PX = 2.0
# Looser bound for "the same face, placed differently" (a faster mode).
FOUND_IOU = 0.5


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def keypoint_distance(a, b):
    return max(((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2) ** 0.5 for p, q in zip(a, b))


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"compare: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(2)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    ref, kao, report = (load(p) for p in sys.argv[1:])
    ref_frames = ref["frames"]
    kao_frames = kao["frames"]
    if len(ref_frames) != len(kao_frames):
        print(f"compare: the reference ran {len(ref_frames)} frames, kao {len(kao_frames)}", file=sys.stderr)
        sys.exit(2)

    ref_faces = matched = found = extra = frames_differing = 0
    worst_iou, worst_px = 1.0, 0.0
    first_difference = None
    for r, k in zip(ref_frames, kao_frames):
        used = set()
        frame_ok = len(r["faces"]) == len(k["faces"])
        for face in r["faces"]:
            ref_faces += 1
            if any(iou(face["box"], c["box"]) >= FOUND_IOU for c in k["faces"]):
                found += 1
            best = None
            for j, cand in enumerate(k["faces"]):
                if j in used:
                    continue
                o = iou(face["box"], cand["box"])
                if best is None or o > best[1]:
                    best = (j, o)
            if best is not None and best[1] >= MIN_IOU:
                d = keypoint_distance(face["keypoints"], k["faces"][best[0]]["keypoints"])
                if d <= MAX_KEYPOINT_PX:
                    used.add(best[0])
                    matched += 1
                    worst_iou = min(worst_iou, best[1])
                    worst_px = max(worst_px, d)
                    continue
            frame_ok = False
        extra += len(k["faces"]) - len(used)
        if not frame_ok:
            frames_differing += 1
            if first_difference is None:
                first_difference = (r["index"], len(r["faces"]), len(k["faces"]))

    ratio = report["fps"] / ref["fps"]
    print(f"frames compared:      {len(ref_frames)} of {ref.get('video', report.get('source'))}")
    print(f"reference faces:      {ref_faces}, matched by kao: {matched} "
          f"(recall {100.0 * matched / max(ref_faces, 1):.1f} %), kao extra faces: {extra}")
    print(f"found at IoU >= {FOUND_IOU}: {found} of {ref_faces} reference faces "
          f"({100.0 * found / max(ref_faces, 1):.1f} %)")
    if matched:
        print(f"worst matched IoU:    {worst_iou:.4f}, worst keypoint distance {worst_px:.3f} px")
    print(f"frames that differ:   {frames_differing}")
    if first_difference:
        i, nr, nk = first_difference
        print(f"  first: frame {i}, reference {nr} faces, kao {nk}")
    print(f"reference:            {ref['fps']:.2f} frames/s")
    print(f"kao:                  {report['fps']:.2f} frames/s "
          f"({report['ort_percent']:.1f} % inside ONNX Runtime, "
          f"processing p99/mean {report['p99_over_mean']:.2f})")
    print(f"ratio kao/reference:  {ratio:.2f}x frames/s")
    if ref.get("cpu_ms_per_frame") and report.get("cpu_ms_per_frame"):
        rc, kc = ref["cpu_ms_per_frame"], report["cpu_ms_per_frame"]
        print(f"CPU time per frame:   reference {rc:.1f} ms, kao {kc:.1f} ms "
              f"(kao needs {kc / rc:.2f}x the reference's CPU time; {rc / kc:.2f}x less)")
    agree = frames_differing == 0
    print("detections agree" if agree else "DETECTIONS DIFFER")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
