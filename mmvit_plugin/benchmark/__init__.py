"""Measuring the backbones and the model zoo: FLOPs (:mod:`.flops`, whole models
:mod:`.model_flops`), speed and memory (:mod:`.speed`), multi-scale training (:mod:`.multiscale`),
the model zoo's metafile, benchmark and docs (:mod:`.zoo`, :mod:`.zoo_benchmark`,
:mod:`.zoo_docs`) and the GPU check (:mod:`.gpu_check`).

Not imported by ``mmvit_plugin`` itself. The zoo and the GPU check run the repository's own
configs and tools (an editable install of this checkout): :data:`REPO_ROOT`.
"""
from pathlib import Path

#: The checkout this package is installed from (configs/, docs/, tools/).
REPO_ROOT = Path(__file__).resolve().parents[2]
