"""Checkpoint conversion: the one mechanism every backbone's ``convert_checkpoint`` runs, the names
of the key layouts it tells apart, and each family's tables.

A family converts a state dict (``backbone.`` / ``module.`` already stripped) in three steps
(:class:`FamilyConversions`): it detects the layout; the layout's :class:`Conversion` strips a
wrapper prefix, renames the keys (regex → replacement, the first matching rule wins:
:func:`~mmvit_plugin.checkpoint.rename_keys`) and runs its few real transforms (Swin's ``nn.Unfold``
merge-channel order, Hugging Face's separate q/k/v, MPViT's repeated position encodings); then the
steps every layout takes, ours included (dropping derived buffers). Rules only match keys of the
layout they convert, so our own files pass through unchanged (conversion is idempotent).

Our layout is the same for the four families: ``stages.{i}`` holds stage ``i`` (its blocks, its
patch merging or embedding, its output norm); the stems keep their official names. Release 0.1
stored Swin's and CvT's stages under their official names (``layers.{i}`` + ``norm{i}``,
``stage{i}``) and MPViT's in two lists (``patch_embed_stages``, ``mhca_stages``): those files
are one of the official layouts here and load through the same rules.

Sources of the key names: the official repositories (microsoft/Swin-Transformer and its
-Semantic-Segmentation / -Object-Detection forks, microsoft/CSWin-Transformer,
microsoft/CvT, youngwanLEE/MPViT), timm, OpenMMLab (mmseg / mmdet / mmpretrain) and Hugging Face
``transformers`` (``Swin*``, ``Cvt*``).
"""
import re
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Sequence, Tuple, Union

import torch

from ...checkpoint import CheckpointError, KeyRule, StateDict, rename_keys

#: A state-dict transform run after the renames.
Transform = Callable[[StateDict], StateDict]


def compile_rules(*rules: Tuple[str, Union[str, Callable[['re.Match[str]'], str]]]) -> Tuple[KeyRule, ...]:
    """``(pattern, replacement)`` pairs as :data:`~mmvit_plugin.checkpoint.KeyRule` s."""
    return tuple((re.compile(pattern), repl) for pattern, repl in rules)


@dataclass(frozen=True)
class Conversion:
    """How one key layout becomes ours.

    Args:
        strip: a prefix removed from the keys that have it first (``'swin.'`` of a classifier).
        rules: the renames (first matching rule wins).
        transforms: run in order on the renamed state dict.
    """

    strip: str = ''
    rules: Sequence[KeyRule] = ()
    transforms: Sequence[Transform] = ()

    def __call__(self, state_dict: StateDict) -> StateDict:
        if self.strip:
            state_dict = {k[len(self.strip):] if k.startswith(self.strip) else k: v
                          for k, v in state_dict.items()}
        state_dict = rename_keys(state_dict, self.rules)
        for transform in self.transforms:
            state_dict = transform(state_dict)
        return state_dict


@dataclass(frozen=True)
class FamilyConversions:
    """A family's layouts: how to tell them apart and how each becomes ours.

    Args:
        detect: the layout name of a state dict.
        by_layout: the conversion of each foreign layout (others pass through).
        always: what every layout takes afterwards, ours included.
    """

    detect: Callable[[StateDict], str]
    by_layout: Mapping[str, Conversion]
    always: Conversion = Conversion()

    def __call__(self, state_dict: StateDict, *extra: Transform) -> StateDict:
        """``state_dict`` in our keys; ``extra`` transforms (model settings) run last."""
        conversion = self.by_layout.get(self.detect(state_dict))
        state_dict = self.always(conversion(state_dict) if conversion else dict(state_dict))
        for transform in extra:
            state_dict = transform(state_dict)
        return state_dict


# --- transforms ---------------------------------------------------------------------------------
def drop_keys(pattern: str) -> Transform:
    """Drop the keys ``pattern`` matches (``re.search``)."""
    regex = re.compile(pattern)
    return lambda state_dict: {k: v for k, v in state_dict.items() if not regex.search(k)}


def rename(rules: Sequence[KeyRule]) -> Transform:
    """The renames of ``rules`` as a transform, for a conversion whose other transforms must see
    the file's own names first (so that their errors name the keys the file holds)."""
    return lambda state_dict: rename_keys(state_dict, rules)


def map_values(pattern: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Transform:
    """Apply ``fn`` to the tensors whose keys ``pattern`` matches (``re.search``)."""
    regex = re.compile(pattern)
    return lambda state_dict: {k: fn(v) if regex.search(k) else v for k, v in state_dict.items()}


def fuse_qkv(family: str) -> Transform:
    """Fuse ``<block>.{query,key,value}.{weight,bias}`` into ``<block>.qkv.*`` (rows q, k, v).

    Raises:
        CheckpointError: a block with some of query/key/value missing (naming ``family``).
    """
    part = re.compile(r'^(.*\.)(query|key|value)\.(weight|bias)$')

    def transform(state_dict: StateDict) -> StateDict:
        out: StateDict = {}
        parts: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
        for key, value in state_dict.items():
            m = part.match(key)
            if m:
                parts.setdefault((m[1], m[3]), {})[m[2]] = value
            else:
                out[key] = value
        for (block, kind), qkv in parts.items():
            if len(qkv) != 3:
                raise CheckpointError(
                    f'{family} checkpoint: {block}{kind} has {sorted(qkv)} but not all of '
                    'query, key and value; the file is incomplete')
            out[f'{block}qkv.{kind}'] = torch.cat([qkv['query'], qkv['key'], qkv['value']])
        return out

    return transform


def merge_copies(pattern: str, family: str) -> Transform:
    """Keep one of the copies of a shared tensor: keys ``pattern`` matches become
    ``group(1) + group(2)``; all copies must be equal.

    Raises:
        CheckpointError: copies that disagree (naming the keys).
    """
    regex = re.compile(pattern)

    def transform(state_dict: StateDict) -> StateDict:
        out: StateDict = {}
        sources: Dict[str, str] = {}
        for key, value in state_dict.items():
            match = regex.match(key)
            target = match.group(1) + match.group(2) if match else key
            if target in out:
                first = out[target]
                if first.shape != value.shape or not torch.equal(first, value):
                    raise CheckpointError(
                        f'{family} checkpoint: {key!r} and {sources[target]!r} are copies of one '
                        f'shared tensor ({target!r}) but hold different values; the file is '
                        'inconsistent (edited or trained with unshared encodings)')
                continue
            out[target] = value
            sources[target] = key
        return out

    return transform


UNKNOWN = 'unknown'


# --- Swin ---------------------------------------------------------------------------------------
SWIN_OURS = 'mmvit_plugin Swin'
SWIN_OFFICIAL_CLS = 'official Swin (classification)'
SWIN_OFFICIAL_DENSE = 'official Swin (dense: mmseg 0.x / mmdet 2.x; mmvit_plugin 0.1)'
SWIN_OPENMMLAB = 'mmseg 1.x / mmdet 3.x / mmpretrain Swin'
SWIN_TIMM = 'timm Swin'
SWIN_HF_MODEL = 'Hugging Face SwinModel'
SWIN_HF_BACKBONE = 'Hugging Face SwinBackbone'
SWIN_HF_CLASSIFIER = 'Hugging Face SwinForImageClassification'

_SWIN_OUTPUT_NORM = re.compile(r'^norm\d\.')


def swin_checkpoint_layout(state_dict: StateDict) -> str:
    """Which library's key layout a Swin state dict (``backbone.``/``module.`` already stripped) has.

    Hugging Face: ``[swin.]embeddings.patch_embeddings.*`` / ``encoder.layers.*`` (a SwinBackbone
    adds ``hidden_states_norms.*``); OpenMMLab 2.x: ``stages.*`` with ``attn.w_msa`` / ``ffn.layers``
    / ``patch_embed.projection``; ours: ``stages.*`` with ``attn.qkv`` / ``mlp`` /
    ``patch_embed.proj``; timm ≥ 0.9: ``layers.*`` with the first merge under
    ``layers.1.downsample`` (none under ``layers.0``) or a ``head.fc``; official: ``layers.*`` with
    ``layers.0.downsample``, dense files adding the output norms ``norm0..3``.
    """
    keys = list(state_dict)

    def has(*prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in keys)

    if has('embeddings.patch_embeddings.', 'encoder.layers.', 'swin.embeddings.', 'swin.encoder.'):
        if has('hidden_states_norms.'):
            return SWIN_HF_BACKBONE
        return SWIN_HF_CLASSIFIER if has('swin.') else SWIN_HF_MODEL
    if has('patch_embed.projection.') or any('.attn.w_msa.' in k or '.ffn.layers.' in k
                                             for k in keys if k.startswith('stages.')):
        return SWIN_OPENMMLAB
    if has('stages.') and any(k.endswith('.attn.relative_position_bias_table') for k in keys):
        return SWIN_OURS
    if not has('layers.'):
        return UNKNOWN
    if not has('layers.0.downsample.') and (
            'head.fc.weight' in state_dict or any(re.match(r'layers\.\d+\.downsample\.', k) for k in keys)):
        return SWIN_TIMM
    return SWIN_OFFICIAL_DENSE if any(_SWIN_OUTPUT_NORM.match(k) for k in keys) else SWIN_OFFICIAL_CLS


def unfold_to_concat_order(x: torch.Tensor) -> torch.Tensor:
    """Patch-merging channels (last dim, ``4C``) from ``nn.Unfold``'s order to the official one.

    OpenMMLab merges 2×2 neighbourhoods with ``nn.Unfold``: channel ``c * 4 + kh * 2 + kw``. The
    official code concatenates ``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]``:
    channel ``(kw * 2 + kh) * C + c``. (mmseg's converter does the inverse with ``[0, 2, 1, 3]``.)
    """
    c = x.shape[-1] // 4
    return x.unflatten(-1, (c, 2, 2)).movedim(-3, -1).transpose(-3, -2).flatten(-3)


#: The output norms of the dense layouts (official, OpenMMLab): ``norm{i}`` → ``stages.{i}.out_norm``.
_SWIN_OUT_NORM_RULE = (r'^norm(\d)\.', r'stages.\1.out_norm.')
_SWIN_HF_BLOCK = r'^encoder\.layers\.(\d+)\.blocks\.(\d+)\.'
_SWIN_HF = Conversion(
    strip='swin.',
    rules=compile_rules(
        (r'^embeddings\.patch_embeddings\.projection\.', 'patch_embed.proj.'),
        (r'^embeddings\.norm\.', 'patch_embed.norm.'),
        (_SWIN_HF_BLOCK + r'layernorm_before\.', r'stages.\1.blocks.\2.norm1.'),
        (_SWIN_HF_BLOCK + r'layernorm_after\.', r'stages.\1.blocks.\2.norm2.'),
        (_SWIN_HF_BLOCK + r'attention\.self\.', r'stages.\1.blocks.\2.attn.'),
        (_SWIN_HF_BLOCK + r'attention\.output\.dense\.', r'stages.\1.blocks.\2.attn.proj.'),
        (_SWIN_HF_BLOCK + r'intermediate\.dense\.', r'stages.\1.blocks.\2.mlp.fc1.'),
        (_SWIN_HF_BLOCK + r'output\.dense\.', r'stages.\1.blocks.\2.mlp.fc2.'),
        (r'^encoder\.layers\.(\d+)\.downsample\.', r'stages.\1.downsample.'),
        (r'^hidden_states_norms\.stage(\d)\.', lambda m: f'stages.{int(m[1]) - 1}.out_norm.'),
        (r'^layernorm\.', 'norm.'),
        (r'^classifier\.', 'head.'),
    ),
    transforms=(fuse_qkv('Hugging Face Swin'), ))
_SWIN_OFFICIAL = Conversion(rules=compile_rules((r'^layers\.(\d+)\.', r'stages.\1.'),
                                                _SWIN_OUT_NORM_RULE))
SWIN = FamilyConversions(
    detect=swin_checkpoint_layout,
    by_layout={
        SWIN_OFFICIAL_CLS: _SWIN_OFFICIAL,
        SWIN_OFFICIAL_DENSE: _SWIN_OFFICIAL,
        SWIN_OPENMMLAB: Conversion(
            rules=compile_rules(
                (r'^patch_embed\.projection\.', 'patch_embed.proj.'),
                (r'^(stages\.\d+\.blocks\.\d+\.)attn\.w_msa\.', r'\1attn.'),
                (r'^(stages\.\d+\.blocks\.\d+\.)ffn\.layers\.0\.0\.', r'\1mlp.fc1.'),
                (r'^(stages\.\d+\.blocks\.\d+\.)ffn\.layers\.1\.', r'\1mlp.fc2.'),
                _SWIN_OUT_NORM_RULE,
            ),
            transforms=(map_values(r'^stages\.\d+\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)$',
                                   unfold_to_concat_order), )),
        SWIN_TIMM: Conversion(rules=compile_rules(
            # timm merges at the start of stage i + 1 what the official code merges at the end of i
            (r'^layers\.(\d+)\.downsample\.', lambda m: f'stages.{int(m[1]) - 1}.downsample.'),
            (r'^layers\.(\d+)\.', r'stages.\1.'),
            (r'^head\.fc\.', 'head.'),
        )),
        SWIN_HF_MODEL: _SWIN_HF,
        SWIN_HF_BACKBONE: _SWIN_HF,
        SWIN_HF_CLASSIFIER: _SWIN_HF,
    },
    # buffers that the modules rebuild themselves; some libraries save them
    always=Conversion(transforms=(
        drop_keys(r'(relative_position_index|attn_mask|relative_coords_table)$'), )))


# --- CSWin --------------------------------------------------------------------------------------
CSWIN_OFFICIAL_CLS = 'official CSWin (classification)'
CSWIN_OFFICIAL_DENSE = 'official CSWin (dense)'
CSWIN_OURS = 'mmvit_plugin CSWin'


def cswin_checkpoint_layout(state_dict: StateDict) -> str:
    """Which key layout a CSWin state dict has: official classification (``stage1_conv_embed``,
    ``norm``/``head``), official dense (the segmentation backbone, with ``norm1..4``; the
    v0.2.0 UperNet releases) or ours (``patch_embed``, ``stages``, LePE under ``attn.lepe``)."""
    keys = list(state_dict)
    if any(k.startswith('stage1_conv_embed.') for k in keys):
        dense = any(re.match(r'norm[1-4]\.', k) for k in keys)
        return CSWIN_OFFICIAL_DENSE if dense else CSWIN_OFFICIAL_CLS
    if any(k.startswith('stages.') and '.attn.lepe.' in k for k in keys):
        return CSWIN_OURS
    return UNKNOWN


# ``stage1_conv_embed.{0,2}`` → ``patch_embed.{proj,norm}``; ``stage{s}.{j}.`` →
# ``stages.{s-1}.blocks.{j}.`` (``qkv``/``proj`` under ``attn.``, ``attns.{b}.get_v`` as
# ``attn.lepe.{b}``); ``merge{m}.{conv,norm}`` → ``stages.{m-1}.downsample.{proj,norm}``; the dense
# output norms ``norm{k}`` → ``stages.{k-1}.out_norm``. The classifier's ``norm``/``head`` stay.
_CSWIN_OFFICIAL = Conversion(rules=compile_rules(
    (r'^stage1_conv_embed\.0\.', 'patch_embed.proj.'),
    (r'^stage1_conv_embed\.2\.', 'patch_embed.norm.'),
    (r'^stage([1-4])\.(\d+)\.attns\.(\d+)\.get_v\.',
     lambda m: f'stages.{int(m[1]) - 1}.blocks.{m[2]}.attn.lepe.{m[3]}.'),
    (r'^stage([1-4])\.(\d+)\.(qkv|proj)\.',
     lambda m: f'stages.{int(m[1]) - 1}.blocks.{m[2]}.attn.{m[3]}.'),
    (r'^stage([1-4])\.(\d+)\.', lambda m: f'stages.{int(m[1]) - 1}.blocks.{m[2]}.'),
    (r'^merge([1-3])\.conv\.', lambda m: f'stages.{int(m[1]) - 1}.downsample.proj.'),
    (r'^merge([1-3])\.norm\.', lambda m: f'stages.{int(m[1]) - 1}.downsample.norm.'),
    (r'^norm([1-4])\.', lambda m: f'stages.{int(m[1]) - 1}.out_norm.'),
))
CSWIN = FamilyConversions(
    detect=cswin_checkpoint_layout,
    by_layout={CSWIN_OFFICIAL_CLS: _CSWIN_OFFICIAL, CSWIN_OFFICIAL_DENSE: _CSWIN_OFFICIAL})


# --- CvT ----------------------------------------------------------------------------------------
# Our keys are the official ones under ``stages.{i}`` instead of ``stage{i}`` (plus our ``stages.3``).
CVT_OURS = 'mmvit_plugin CvT'
CVT_OFFICIAL = 'official CvT (mmvit_plugin 0.1)'
CVT_HF_MODEL = 'Hugging Face CvtModel'
CVT_HF_CLASSIFIER = 'Hugging Face CvtForImageClassification'


def cvt_checkpoint_layout(state_dict: StateDict) -> str:
    """Which key layout a CvT state dict has: the official one (``stage{i}.patch_embed``,
    ``stage{i}.blocks``), ours (``stages.{i}.…``) or Hugging Face's (``[cvt.]encoder.stages.{i}``)."""
    keys = list(state_dict)
    if any(k.startswith('cvt.encoder.stages.') for k in keys):
        return CVT_HF_CLASSIFIER
    if any(k.startswith('encoder.stages.') for k in keys):
        return CVT_HF_MODEL
    if any(re.match(r'stage\d\.(patch_embed|blocks)\.', k) for k in keys):
        return CVT_OFFICIAL
    if any(re.match(r'stages\.\d\.blocks\.\d+\.attn\.conv_proj_', k) for k in keys):
        return CVT_OURS
    return UNKNOWN


_CVT_HF_LAYER = r'^encoder\.stages\.(\d)\.layers\.(\d+)\.'
_CVT_HF_ATTN = _CVT_HF_LAYER + r'attention\.attention\.'
_QKV = {'query': 'q', 'key': 'k', 'value': 'v'}
_CVT_HF = Conversion(strip='cvt.', rules=compile_rules(
    (r'^encoder\.stages\.(\d)\.cls_token$', r'stages.\1.cls_token'),
    (r'^encoder\.stages\.(\d)\.embedding\.convolution_embeddings\.projection\.',
     r'stages.\1.patch_embed.proj.'),
    (r'^encoder\.stages\.(\d)\.embedding\.convolution_embeddings\.normalization\.',
     r'stages.\1.patch_embed.norm.'),
    (_CVT_HF_ATTN + r'convolution_projection_(query|key|value)\.convolution_projection\.convolution\.',
     lambda m: f'stages.{m[1]}.blocks.{m[2]}.attn.conv_proj_{_QKV[m[3]]}.conv.'),
    (_CVT_HF_ATTN + r'convolution_projection_(query|key|value)\.convolution_projection\.normalization\.',
     lambda m: f'stages.{m[1]}.blocks.{m[2]}.attn.conv_proj_{_QKV[m[3]]}.bn.'),
    (_CVT_HF_ATTN + r'projection_(query|key|value)\.',
     lambda m: f'stages.{m[1]}.blocks.{m[2]}.attn.proj_{_QKV[m[3]]}.'),
    (_CVT_HF_LAYER + r'attention\.output\.dense\.', r'stages.\1.blocks.\2.attn.proj.'),
    (_CVT_HF_LAYER + r'intermediate\.dense\.', r'stages.\1.blocks.\2.mlp.fc1.'),
    (_CVT_HF_LAYER + r'output\.dense\.', r'stages.\1.blocks.\2.mlp.fc2.'),
    (_CVT_HF_LAYER + r'layernorm_before\.', r'stages.\1.blocks.\2.norm1.'),
    (_CVT_HF_LAYER + r'layernorm_after\.', r'stages.\1.blocks.\2.norm2.'),
    (r'^layernorm\.', 'norm.'),
    (r'^classifier\.', 'head.'),
))
CVT = FamilyConversions(
    detect=cvt_checkpoint_layout,
    by_layout={CVT_OFFICIAL: Conversion(rules=compile_rules((r'^stage(\d)\.', r'stages.\1.'))),
               CVT_HF_MODEL: _CVT_HF, CVT_HF_CLASSIFIER: _CVT_HF})


# --- MPViT --------------------------------------------------------------------------------------
MPVIT_OFFICIAL_CLS = 'official MPViT (classification)'
MPVIT_OFFICIAL_DENSE = 'official MPViT (dense)'
MPVIT_OURS_0_1 = 'mmvit_plugin 0.1 MPViT'
MPVIT_OURS = 'mmvit_plugin MPViT'

#: Official keys of the shared position encodings repeated under each layer:
#: ``...mhca_blks.{p}.MHCA_layers.{l}.[factoratt_crpe.]{cpe,crpe}.*`` → ``...mhca_blks.{p}.{cpe,crpe}.*``.
_MPVIT_SHARED_KEY = r'^(.*mhca_blks\.\d+\.)MHCA_layers\.\d+\.(?:factoratt_crpe\.)?((?:cpe|crpe)\..*)$'


def mpvit_checkpoint_layout(state_dict: StateDict) -> str:
    """Which key layout an MPViT state dict has: official (``patch_embed_stages`` /
    ``mhca_stages``, the shared position encodings repeated under every layer; classification
    files add ``cls_head``), release 0.1 of ours (the official lists, each encoding stored once)
    or ours (``stages.{i}``)."""
    keys = list(state_dict)
    if any(re.match(_MPVIT_SHARED_KEY, k) for k in keys):
        classification = any(k.startswith('cls_head.') for k in keys)
        return MPVIT_OFFICIAL_CLS if classification else MPVIT_OFFICIAL_DENSE
    if any(k.startswith('mhca_stages.') for k in keys):
        return MPVIT_OURS_0_1
    if any(k.startswith('stages.') and '.mhca_blks.' in k for k in keys):
        return MPVIT_OURS
    return UNKNOWN


# Stage i's two official lists become one module: ``patch_embed_stages.{i}`` →
# ``stages.{i}.patch_embed``, ``mhca_stages.{i}`` → ``stages.{i}``. The official modules hold each
# encoder's shared ConvPosEnc / ConvRelPosEnc under ``mhca_blks.{p}.{cpe,crpe}`` and again under
# every layer; the copies are loaded once (checked under the file's own names, then renamed).
_MPVIT_STAGE_RULES = compile_rules((r'^patch_embed_stages\.(\d+)\.', r'stages.\1.patch_embed.'),
                                   (r'^mhca_stages\.(\d+)\.', r'stages.\1.'))
_MPVIT_OFFICIAL = Conversion(transforms=(drop_keys(r'^cls_head\.'),
                                         merge_copies(_MPVIT_SHARED_KEY, 'MPViT'),
                                         rename(_MPVIT_STAGE_RULES)))
MPVIT = FamilyConversions(
    detect=mpvit_checkpoint_layout,
    by_layout={MPVIT_OFFICIAL_CLS: _MPVIT_OFFICIAL, MPVIT_OFFICIAL_DENSE: _MPVIT_OFFICIAL,
               MPVIT_OURS_0_1: Conversion(rules=_MPVIT_STAGE_RULES)})
