"""tokengov's integrations with other tools, each an optional extra.

``tokengov.integrations.litellm`` (``pip install 'tokengov[litellm]'``): the LiteLLM
callback and gateway guard (docs/litellm.md). Importing this package imports none of them.
"""

__all__: list[str] = []
