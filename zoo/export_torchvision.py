"""Exports torchvision architectures with seeded random weights to ONNX.

Each model is built with torch.manual_seed(0), its BatchNorm statistics are
estimated on one seeded batch of random images (so activations keep trained-like
scales instead of the identity statistics of a fresh model), and it is exported
in eval mode at 224x224 with a dynamic batch dimension, once per opset.
These files test op coverage, memory and speed, not accuracy.

    /usr/bin/python3 zoo/export_torchvision.py --out DIR [--opsets 13,17] [name ...]

Writes DIR/<name>_op<opset>.onnx; prints one line per file. Exit status 3 when
torch or torchvision is missing (nothing written).
"""

import argparse
import os
import sys
import warnings

# ImageNet normalisation, the torchvision models' input convention.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def vit_b16_reduced(models):
    # ViT-B/16's patching and token layout at a fraction of its width and depth.
    return models.VisionTransformer(
        image_size=224, patch_size=16, num_layers=4, num_heads=3, hidden_dim=192, mlp_dim=768
    )


ARCHITECTURES = {
    "resnet50": lambda m: m.resnet50(),
    "mobilenet_v3_large": lambda m: m.mobilenet_v3_large(),
    "efficientnet_b0": lambda m: m.efficientnet_b0(),
    "convnext_tiny": lambda m: m.convnext_tiny(),
    "regnet_y_400mf": lambda m: m.regnet_y_400mf(),
    "shufflenet_v2_x1_0": lambda m: m.shufflenet_v2_x1_0(),
    "vit_b16_reduced": vit_b16_reduced,
}


def seeded_images(torch, n, seed):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, 3, 224, 224, generator=g)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def build(torch, models, name):
    torch.manual_seed(0)
    model = ARCHITECTURES[name](models)
    with torch.no_grad():
        for module in model.modules():
            # A zero-initialised layer (the ViT head) would make every output 0.
            if isinstance(module, torch.nn.Linear) and not module.weight.any():
                torch.nn.init.normal_(module.weight, std=0.02)
            # ConvNeXt's layer scale starts at 1e-6, which makes each block an identity.
            if hasattr(module, "layer_scale") and isinstance(module.layer_scale, torch.nn.Parameter):
                module.layer_scale.fill_(1.0)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if norms:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a plain average over the batches seen
            model.train()
            model(seeded_images(torch, 8, 1))
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--opsets", default="13,17")
    parser.add_argument("names", nargs="*", help="architectures (default: all)")
    args = parser.parse_args()
    try:
        import torch
        import torch.onnx  # noqa: F401
        import torchvision.models as models
    except ImportError as e:
        print(f"skipped: Python module {e.name} is missing (apt-get install python3-torch python3-torchvision)")
        return 3

    names = args.names or list(ARCHITECTURES)
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        print(f"unknown architecture(s): {', '.join(unknown)} (known: {', '.join(ARCHITECTURES)})")
        return 2
    opsets = [int(o) for o in args.opsets.split(",")]
    torch.set_num_threads(1)  # same reduction order on every run: reproducible files
    # The trace turns shape checks into constants, which is what we want at a fixed 224x224.
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    os.makedirs(args.out, exist_ok=True)
    example = seeded_images(torch, 1, 0)
    for name in names:
        try:
            model = build(torch, models, name)
        except AttributeError as e:
            print(f"skipped {name}: this torchvision lacks it ({e})")
            continue
        for opset in opsets:
            path = os.path.join(args.out, f"{name}_op{opset}.onnx")
            partial = path + ".partial"
            with torch.no_grad():
                torch.onnx.export(
                    model,
                    example,
                    partial,
                    opset_version=opset,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    do_constant_folding=True,
                )
            os.replace(partial, path)
            print(f"wrote {path} ({os.path.getsize(path):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
