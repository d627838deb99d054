"""Measure how much of vLLM's KV cache ShareGPT chat traffic shares.

The data's journey, one module a step:

- ``conversations``: stream ShareGPT records into conversations.
- ``traces``: turn conversations into single-turn or multi-turn requests.
- ``tokenizer`` and ``token_store``: tokenize prompts, store the token ids.
- ``vllm_v0_adapter``: the only module that touches vLLM internals.
- ``replay`` and ``metrics``: drive the block manager, sum up what it did.
- ``check``: compare the figures with the published study.
- ``cli``: the command line that ties the steps together.
"""

__version__ = "1.0.0"
