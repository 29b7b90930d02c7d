"""The ``gpt-sovits`` engine: community GPT-SoVITS checkpoints (v2, v2Pro, v2ProPlus), unchanged.

Modules: :mod:`.settings` (environment configuration), :mod:`.model_files` (finding and vetting
a voice's GPT/SoVITS pair), :mod:`.model_pool` (LRU of loaded models shared between voices),
:mod:`.prompt` (the per-voice prompt, computed once), :mod:`.streaming` (token-level decoding
with cross-faded re-decoding), :mod:`.engine` (the ``Engine``) and :mod:`.plugin` (the hook).
The networks themselves live in ``voiceseal_models.gpt_sovits``.
"""
