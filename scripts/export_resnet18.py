#!/usr/bin/env python3
"""Exports torchvision's ResNet18 as the TorchScript feature extractor cbir loads.

The module's forward takes float32 [N,3,224,224] (ImageNet-normalised) and returns [N,512], the
flattened global-average-pooled features (the fc layer is kept as an extra `logits` method). Needs
Debian's python3-torch and python3-torchvision; cbir itself never runs Python.

    /usr/bin/python3 scripts/export_resnet18.py --weights models/resnet18-f37072fd.pth \
        --out models --name resnet18-imagenet-features.pt

--int8 --calibrate DIR writes the int8 variant instead: post-training static quantization (FX graph
mode, the onednn engine and its default qconfig mapping), calibrated on every --every-th image of
DIR, traced and frozen to TorchScript (which cbir runs on LibTorch's onednn engine), with a
provenance note OUT.provenance.json beside it. The float source is --weights FILE.pth or --model
FILE.pt, any TorchScript model whose parameters are torchvision's resnet18 (fc may be absent: the
project's exports); other architectures are refused, as FX quantization needs the eager network.

    /usr/bin/python3 scripts/export_resnet18.py --int8 --calibrate ../shared/assets/datasets/corel1k/images \
        --model models/resnet18-untrained-features.pt --out models --name resnet18-untrained-int8.pt
"""
import argparse
import copy
import datetime
import hashlib
import json
import os
import sys
import time

import torch
import torchvision

# Calibration walks a folder as the Python reference pipeline does (this script's own folder).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_features import image_files  # noqa: E402


class AvgPoolFeatures(torch.nn.Module):
    """ResNet18 up to and including the global average pool."""

    def __init__(self, net):
        super().__init__()
        self.stem = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = torch.nn.Sequential(net.layer1, net.layer2, net.layer3, net.layer4)
        self.pool = net.avgpool
        self.fc = net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    @torch.jit.export
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward(x))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()



def float_feature_net(args):
    """torchvision's resnet18 with fc = Identity (forward -> the 512 avgpool features), eval mode."""
    net = torchvision.models.resnet18()
    if args.weights:
        state = torch.load(args.weights, map_location="cpu")
    else:
        state = torch.jit.load(args.model, map_location="cpu").state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        sys.exit(f"export_resnet18: {args.weights or args.model} is not a resnet18 (FX quantization needs the eager "
                 f"network; missing {len(missing)} and unexpected {len(unexpected)} parameters)")
    net.fc = torch.nn.Identity()
    return net.eval()


def export_int8(args):
    from PIL import Image
    from torchvision import transforms
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if "onednn" not in torch.backends.quantized.supported_engines:
        sys.exit("export_resnet18: this PyTorch has no onednn quantized engine")
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    net = float_feature_net(args)
    preprocess = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                     transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def batches(files, size=20):
        for i in range(0, len(files), size):
            yield torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files[i:i + size]])

    files = image_files(args.calibrate)
    calibration = files[::args.every]
    if not calibration:
        sys.exit(f"export_resnet18: no images in {args.calibrate}")
    example = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    if args.model:  # the eager network must compute what the TorchScript file does
        with torch.no_grad():
            difference = float((torch.jit.load(args.model)(example) - net(example)).abs().max())
        if difference > 1e-4:
            sys.exit(f"export_resnet18: {args.model} does not compute resnet18's avgpool features (differs by {difference})")

    torch.backends.quantized.engine = "onednn"
    qconfig = get_default_qconfig_mapping("onednn")
    prepared = prepare_fx(copy.deepcopy(net), qconfig, example_inputs=(example,))
    started = time.perf_counter()
    with torch.no_grad():
        for x in batches(calibration):
            prepared(x)
        quantized = torch.jit.freeze(torch.jit.trace(convert_fx(prepared), example).eval())
    calibration_seconds = time.perf_counter() - started

    # Held back from calibration: the images half-way between calibration images.
    held_back = files[args.every // 2::args.every][:64] or calibration[:64]
    with torch.no_grad():
        x = torch.cat(list(batches(held_back)))
        reference, got = net(x), quantized(x)
        relative = (reference - got).norm(dim=1) / reference.norm(dim=1)

    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, args.name)
    torch.jit.save(quantized, target + ".tmp")
    os.replace(target + ".tmp", target)
    source = args.weights or args.model
    note = {
        "file": args.name,
        "sha256": sha256_of(target),
        "what": "int8 post-training static quantization of resnet18 avgpool features, [N,3,224,224] -> [N,512]",
        "source_model": os.path.abspath(source),
        "source_sha256": sha256_of(source),
        "method": "torch.ao.quantization FX graph mode: prepare_fx, calibrate, convert_fx; torch.jit.trace + freeze",
        "engine": "onednn (torch.backends.quantized.engine); cbir selects it in LibTorch before loading",
        "qconfig": "get_default_qconfig_mapping('onednn')",
        "calibration_folder": os.path.abspath(args.calibrate),
        "calibration_images": len(calibration),
        "calibration_rule": f"every {args.every}th image of the sorted list (first: {os.path.relpath(calibration[0], args.calibrate)})",
        "calibration_preprocessing": "PIL convert('RGB'), Resize((224,224)), ToTensor, Normalize(ImageNet)",
        "held_back_images": len(held_back),
        "relative_l2_vs_float": {"median": round(float(relative.median()), 5), "max": round(float(relative.max()), 5)},
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "seconds": round(calibration_seconds, 1),
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    with open(target + ".provenance.json", "w") as f:
        json.dump(note, f, indent=1)
        f.write("\n")
    print(f"export_resnet18: wrote {target} and its provenance note; feature relative L2 vs float on "
          f"{len(held_back)} held-back images: median {relative.median():.4f}, max {relative.max():.4f}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="torchvision resnet18 state_dict (.pth)")
    source.add_argument("--model", help="with --int8: a float TorchScript resnet18 feature model to quantize")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--name", default=None, help="file name (default resnet18-imagenet-features.pt, or "
                                                     "resnet18-imagenet-int8.pt with --int8)")
    parser.add_argument("--int8", action="store_true", help="write the int8 (onednn) quantized variant")
    parser.add_argument("--calibrate", metavar="DIR", help="with --int8: calibration images (a folder, recursive)")
    parser.add_argument("--every", type=int, default=10, help="with --int8: calibrate on every N-th image")
    args = parser.parse_args()
    if args.int8:
        if not args.calibrate:
            parser.error("--int8 needs --calibrate DIR")
        args.name = args.name or "resnet18-imagenet-int8.pt"
        return export_int8(args)
    if args.model or args.calibrate:
        parser.error("--model and --calibrate go with --int8")
    args.name = args.name or "resnet18-imagenet-features.pt"

    net = torchvision.models.resnet18()
    net.load_state_dict(torch.load(args.weights, map_location="cpu"), strict=True)
    net.eval()
    module = torch.jit.script(AvgPoolFeatures(net).eval())

    # The scripted module must agree with the eager network's avgpool output.
    probe = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    captured = {}
    hook = net.avgpool.register_forward_hook(lambda m, i, o: captured.setdefault("f", o.flatten(1)))
    with torch.no_grad():
        net(probe)
        scripted = module(probe)
    hook.remove()
    difference = float((scripted - captured["f"]).abs().max())
    if difference > 1e-5:
        sys.exit(f"export_resnet18: scripted features differ from eager ones by {difference}")

    os.makedirs(args.out, exist_ok=True)
    target = os.path.join(args.out, args.name)
    module.save(target + ".tmp")
    os.replace(target + ".tmp", target)
    print(f"export_resnet18: wrote {target} (max difference to eager {difference:g})", file=sys.stderr)


if __name__ == "__main__":
    main()
