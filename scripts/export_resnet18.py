#!/usr/bin/env python3
"""Exports torchvision's ResNet18 as the TorchScript feature extractor cbir loads.

The module's forward takes float32 [N,3,224,224] (ImageNet-normalised) and returns [N,512], the
flattened global-average-pooled features (the fc layer is kept as an extra `logits` method). Needs
Debian's python3-torch and python3-torchvision; cbir itself never runs Python.

    /usr/bin/python3 scripts/export_resnet18.py --weights models/resnet18-f37072fd.pth \
        --out models --name resnet18-imagenet-features.pt
"""
import argparse
import os
import sys

import torch
import torchvision


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="torchvision resnet18 state_dict (.pth)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--name", default="resnet18-imagenet-features.pt")
    args = parser.parse_args()

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
