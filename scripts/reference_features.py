#!/usr/bin/env python3
"""The original notebook's feature pipeline, for any folder: the reference cbir must reproduce.

PIL open -> convert('RGB') -> torchvision Resize((224, 224)) -> ToTensor -> Normalize(ImageNet)
-> the same TorchScript model. Writes a TSV (relative path, then the features) and prints the
throughput on stderr. Needs Debian's python3-torch, python3-torchvision and python3-pil
(scripts/install-deps.sh --python); cbir itself never runs Python.

    /usr/bin/python3 scripts/reference_features.py FOLDER --model models/resnet18-untrained-features.pt \
        --out reference.tsv [--batch 1] [--threads N] [--optimize]

--batch 1 without --optimize is the notebook's way; larger batches and --optimize
(torch.jit.optimize_for_inference) are the best a Python user can do with the same stack.
"""
import argparse
import json
import os
import sys
import time

import torch
from PIL import Image
from torchvision import transforms

EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def image_files(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return sorted(found)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", help="TSV to write (default: none, timing only)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--optimize", action="store_true", help="torch.jit.optimize_for_inference")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    # A quantized (int8) model's weights are packed for the engine chosen when it is loaded; cbir
    # chooses onednn, the engine scripts/export_resnet18.py --int8 quantizes for.
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    started = time.perf_counter()
    model = torch.jit.load(args.model).eval()
    if args.optimize:
        model = torch.jit.optimize_for_inference(model)
    preprocess = transforms.Compose([
        transforms.Resize((224, 224)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    files = image_files(args.folder)
    rows = []
    with torch.no_grad():
        for start in range(0, len(files), args.batch):
            chunk = files[start:start + args.batch]
            batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in chunk])
            for path, features in zip(chunk, model(batch)):
                rows.append((os.path.relpath(path, args.folder), features.tolist()))
    seconds = time.perf_counter() - started
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write("# path\tfeatures (reference pipeline: PIL Resize((224,224)) bilinear, ToTensor, Normalize)\n")
            for name, values in rows:
                f.write(name + "\t" + "\t".join("%.9g" % v for v in values) + "\n")
        os.replace(args.out + ".tmp", args.out)
    print(json.dumps({"bench": "python-reference", "images": len(rows), "batch": args.batch, "threads": args.threads,
                      "optimized": args.optimize, "seconds": seconds, "images_per_second": len(rows) / seconds}),
          file=sys.stderr)


if __name__ == "__main__":
    main()
