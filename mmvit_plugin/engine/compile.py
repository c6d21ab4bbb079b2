"""``torch.compile`` arguments under which this package's backbones train with changing sizes."""
from typing import Any, Dict, Optional, Union

# Inductor options every compile of ours adds (torch 2.14). ``strict_output_strides``: a compiled
# training step saves views for the backward (the tokens seen as a channels-last map before a
# convolution, the heads before attention); with dynamic sizes (``dynamic=True``, or the
# automatic dynamic recompile that a second input size triggers) inductor sorts their symbolic
# strides and fails when a side might be 1 (``cannot determine truth value of Relational`` in
# ``get_stride_order``, pytorch#185510): CvT and MPViT at the first dynamic compile. With the
# option it keeps such views at their eager strides, which needs no sorting.
INDUCTOR_OPTIONS: Dict[str, Any] = {'strict_output_strides': True}


def compile_kwargs(compile_cfg: Union[bool, dict, None]) -> Optional[dict]:
    """``torch.compile``'s keyword arguments for ``compile_cfg`` (mmengine's ``compile`` entry:
    ``True`` or a dict of those arguments; ``None`` / ``False``: no compile, returned as
    ``None``), with :data:`INDUCTOR_OPTIONS` in ``options`` when the backend is inductor. An
    option the caller sets wins. torch.compile takes a ``mode`` or ``options``, not both, so a
    ``mode`` becomes the options it stands for (``torch._inductor.list_mode_options``)."""
    if compile_cfg is None or compile_cfg is False:
        return None
    kwargs = {} if compile_cfg is True else dict(compile_cfg)
    if kwargs.get('backend', 'inductor') != 'inductor':
        return kwargs
    from torch._inductor import list_mode_options
    mode = kwargs.pop('mode', None)
    kwargs['options'] = {**INDUCTOR_OPTIONS,
                         **(list_mode_options(mode, kwargs.get('dynamic')) if mode else {}),
                         **(kwargs.get('options') or {})}
    return kwargs
