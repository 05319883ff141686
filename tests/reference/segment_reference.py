"""The reference for the segment step: the same IS-Net model run by Python's onnxruntime with
the published pre-processing of @imgly/background-removal (resize to the model's 1024x1024,
bilinear, stretched; (px - 128) / 256 per channel, CHW; the output, already 0..1, quantised to
8 bits and resized back bilinearly). Resampling is Pillow's (antialiased) bilinear.

    python segment_reference.py iou MODEL.onnx PHOTO MASK [PHOTO MASK ...]
        one JSON line per pair: IoU at 0.5 of Pixelflow's mask (an 8-bit PNG) against the reference
    python segment_reference.py bench MODEL.onnx THREADS PHOTO [PHOTO ...]
        one JSON line per photo: seconds end to end (decode, pre-processing, inference,
        post-processing, the mask PNG written) and for the inference alone
    python segment_reference.py tensor PHOTO OUT.f32
        writes the model input of PHOTO as raw float32 (for crates/segment/examples/ort_options.rs)
    python segment_reference.py infer MODEL.onnx INPUT.f32 THREADS ROUNDS [nospin]
        bare inference on that tensor, one warm-up then ROUNDS runs: one JSON line, median and
        min seconds per run and median CPU seconds per run (nospin: intra-op threads do not spin)

Needs numpy, Pillow and onnxruntime (tests/reference/requirements.txt).
"""

import io
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

SIZE = 1024


def session(model, threads=0, spin=True):
    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def load(photo):
    im = Image.open(photo)
    return ImageOps.exif_transpose(im).convert("RGB")


def prepare(rgb):
    x = np.asarray(rgb.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    return ((x - 128.0) / 256.0).transpose(2, 0, 1)[None].copy()


def postprocess(out, size):
    m8 = np.round(np.clip(out[0, 0], 0.0, 1.0) * 255.0).astype(np.uint8)
    return Image.fromarray(m8, "L").resize(size, Image.BILINEAR)


def mask_of(sess, photo):
    rgb = load(photo)
    out = sess.run(["output"], {"input": prepare(rgb)})[0]
    return postprocess(out, rgb.size)


def iou(model, pairs):
    sess = session(model)
    for photo, mask_path in pairs:
        ref = np.asarray(mask_of(sess, photo)) >= 128
        ours_img = Image.open(mask_path)
        ours = np.asarray(ours_img.convert("L")) >= 128
        if ours.shape != ref.shape:
            print(json.dumps({"photo": photo, "error": f"size {ours.shape} != reference {ref.shape}"}))
            continue
        union = np.logical_or(ref, ours).sum()
        inter = np.logical_and(ref, ours).sum()
        value = 1.0 if union == 0 else inter / union
        print(json.dumps({"photo": photo, "iou": float(value), "coverage": float(ours.mean()), "referenceCoverage": float(ref.mean())}), flush=True)


def bench(model, threads, photos):
    sess = session(model, threads)
    # One warm-up run: the first inference allocates the arena.
    sess.run(["output"], {"input": np.zeros((1, 3, SIZE, SIZE), np.float32)})
    for photo in photos:
        t0 = time.perf_counter()
        rgb = load(photo)
        x = prepare(rgb)
        t1 = time.perf_counter()
        out = sess.run(["output"], {"input": x})[0]
        t2 = time.perf_counter()
        buf = io.BytesIO()
        postprocess(out, rgb.size).save(buf, "PNG", compress_level=1)
        t3 = time.perf_counter()
        print(json.dumps({"photo": photo, "total": t3 - t0, "inference": t2 - t1, "width": rgb.size[0], "height": rgb.size[1]}), flush=True)


def infer(model, tensor, threads, rounds, spin=True):
    sess = session(model, threads, spin)
    x = np.fromfile(tensor, dtype="<f4").reshape(1, 3, SIZE, SIZE)
    sess.run(["output"], {"input": x})
    times, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        sess.run(["output"], {"input": x})
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    variant = "python" if spin else "python+nospin"
    print(json.dumps({"variant": variant, "median": round(times[len(times) // 2], 4), "min": round(times[0], 4), "cpu": round(cpu[len(cpu) // 2], 3), "runs": rounds}), flush=True)


if __name__ == "__main__":
    mode, model = sys.argv[1], sys.argv[2]
    if mode == "iou":
        rest = sys.argv[3:]
        iou(model, list(zip(rest[0::2], rest[1::2])))
    elif mode == "bench":
        bench(model, int(sys.argv[3]), sys.argv[4:])
    elif mode == "tensor":
        prepare(load(model)).astype("<f4").tofile(sys.argv[3])
    elif mode == "infer":
        infer(model, sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:7] != ["nospin"])
    else:
        sys.exit(__doc__)
