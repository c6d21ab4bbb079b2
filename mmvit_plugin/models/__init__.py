from .backbones import *  # noqa: F401,F403  (registers every backbone)
from .backbones import __all__ as _backbones
from .channels import ChannelMismatchError, check_feature_channels

__all__ = [*_backbones, 'ChannelMismatchError', 'check_feature_channels']
