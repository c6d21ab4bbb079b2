from pathlib import Path

from setuptools import find_packages, setup

version = {}
exec(Path(__file__).with_name('mmvit_plugin').joinpath('version.py').read_text(), version)

setup(
    name='mmvit_plugin',
    version=version['__version__'],
    description='CSWin, CvT, Swin and MPViT backbones for OpenMMLab 2.0 dense prediction',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmvit_plugin', 'mmvit_plugin.*']),
    python_requires='>=3.8',
    # torch 2.4: torch.serialization.add_safe_globals (weights-only loading of mmengine's
    # checkpoints); 2.1: scaled_dot_product_attention(scale=...). timm: DropPath and Mlp;
    # safetensors: .safetensors files; tqdm: the download progress bar.
    install_requires=['torch>=2.4', 'mmengine>=0.10.0', 'mmcv>=2.0.0,<2.2.0', 'timm>=0.9',
                      'safetensors', 'tqdm'],
    extras_require={
        'seg': ['mmsegmentation>=1.2.0'],
        'det': ['mmdet>=3.3.0', 'pycocotools>=2.0.8'],
        'tests': ['pytest'],
    },
    license='Apache-2.0',
)
