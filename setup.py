"""Installs the stage packages of the project: data, evaluation, zero123, zero123plus, reconstruction, elevation,
score_distillation (+ any listed below)."""
from pathlib import Path

from setuptools import find_packages, setup

# Unpinned names: the exact CPU pins live in requirements.txt (GPU users keep their own CUDA torch).
requirements = [
    line.split("#")[0].split("==")[0].strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip() and not line.startswith(("pytest", "pyrender", "embreex", "tensorboard", "matplotlib"))
]

PACKAGES = ("data", "evaluation", "zero123", "zero123plus", "reconstruction", "elevation", "score_distillation")

setup(
    name="one2345",
    version="0.1.0",
    description="A clean re-implementation of One-2-3-45: single image to textured 3D mesh",
    python_requires=">=3.10",
    packages=find_packages(include=[f"{p}{s}" for p in PACKAGES for s in ("", ".*")]),
    install_requires=requirements,
    extras_require={
        "render": ["pyrender", "embreex"],
        "rembg": ["rembg", "onnxruntime"],
        "sam": ["segment-anything"],  # GPU installs only: SAM needs torchvision (pulls a CUDA torch)
        "dev": ["pytest", "tensorboard", "matplotlib"],
        # LPIPS needs torchvision, which replaces the CPU torch with a CUDA build: GPU installs only.
        "lpips": ["lpips"],
        # the web demo (app.py); the resolver installs Pillow 12.x for it (gradio declares pillow<13): `make
        # demo-install` keeps the pinned Pillow 13 instead (requirements-demo.txt)
        "demo": ["gradio==6.31.0"],
    },
)
