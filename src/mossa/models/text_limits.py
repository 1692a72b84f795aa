"""Cut a text to what a token budget can use before tokenising it.

Prompts and targets are truncated to a token budget, but tokenising a whole field first
costs time and memory in proportion to its length (one 50 MB example once took training
331 s and 20 GB). Keeping only the characters the budget can hold bounds that cost and
leaves the kept tokens as they were: a prompt loses its start, so its end is kept; a
target loses its end, so its start is kept.
"""

from __future__ import annotations

# Characters kept per token of budget. Words and sub-words are far shorter; the longest
# entries of common vocabularies (runs of spaces, dashes or "=" in code-heavy BPEs) are
# around this size. Text averaging more characters per token than this just yields fewer
# tokens than the budget (less context), never different ones.
CHARS_PER_TOKEN_BOUND = 32


def max_chars(max_tokens: int) -> int:
    """Characters that hold ``max_tokens`` tokens, plus one token's worth for the token
    cut in two at the edge (re-tokenised differently, then dropped by truncation)."""
    return (max_tokens + 1) * CHARS_PER_TOKEN_BOUND


def clip_prompt(text: str, max_tokens: int) -> str:
    """The end of ``text`` that holds its last ``max_tokens`` tokens (prompts are
    truncated from the left)."""
    n = max_chars(max_tokens)
    return text[-n:] if len(text) > n else text


def clip_target(text: str, max_tokens: int) -> str:
    """The start of ``text`` that holds its first ``max_tokens`` tokens (targets are
    truncated from the right)."""
    return text[: max_chars(max_tokens)]
