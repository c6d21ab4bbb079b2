# What every config here shares (a base of upernet_ade20k_160k.py, coco_1x.py and their children):
# the plugin's import, and the hooks and parameter-wise rules of vit_rules.py (the file a recipe
# base inheriting an mm config with its own custom_imports takes instead).
_base_ = ['./vit_rules.py']

custom_imports = dict(imports=['mmvit_plugin'], allow_failed_imports=False)
