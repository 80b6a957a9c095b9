"""A tiny byte-level BPE tokenizer that splits text exactly the way Qwen2/Qwen3's tokenizer does.

The real Qwen tokenizer is a byte-level BPE behind a pre-tokenizer regex that isolates every digit
and keeps words whole; this one uses the same normalizer, regex, byte-level step and decoder (the
pipeline transformers' ``Qwen2Tokenizer`` builds) with a vocabulary trained on a small built-in
corpus. So the *splits* agree with the real tokenizer (``<12.5 seconds>`` is ``<``, ``1``, ``2``,
``.``, ``5``, `` seconds``, ``>``), while rarer words fall apart into bytes instead of being whole.
Every byte is in the vocabulary, so any text encodes without an unknown token.

The special tokens are the Qwen2/Qwen3 ones, in the real order, placed after the BPE vocabulary.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Qwen's special tokens (ids 151643-151656 in the real vocabulary), in order."""

EXTRA_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
"""Added but not special in the real tokenizer (the last four arrived with Qwen3)."""

_WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this from or
had by hot word but what some we can out other were all there when up use your how said an each she
which do their time if will way about many then them write would like so these her long make thing see
him two has look more day could go come did number sound no most people my over know water than call
first who may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form sentence
great think say help low line differ turn cause much mean before move right boy old too same tell does
set three want air well also play small end put home read hand port large spell add even land here must
big high such follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four between state keep eye never last let thought city tree
cross farm hard start might story saw far sea draw left late run while press close night real life few
north open seem together next white children begin got walk example ease paper group always music those
both mark often letter until mile river car feet care second seconds minute minutes hour hours frame
frames video videos image images picture describe happens what where who when why how many color red
green blue black person people dog cat ball moving moves scene camera shot clip shows showing shown
assistant user system helpful You are a helpful assistant Picture Video Describe this video Summarize
The the A An In On At It This That There What Where When Why How Is Are Do Does Can Yes No OK Hello Hi
"""


def _corpus() -> list[str]:
    words = _WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    # Leading-space variants, sentence forms and the Qwen3-VL timestamp text.
    lines += [f"<{t / 2:.1f} seconds> {w}." for t, w in enumerate(words)]
    lines += ["Hello, world! How are you? I'm fine; it's 12:30 (UTC)...", "user\nassistant\nsystem\n\n"]
    return lines * 3


def build_tokenizer(vocab_size: int) -> Tokenizer:
    """Train the tokenizer: at most ``vocab_size`` BPE entries, then the added tokens.

    BPE training on a fixed corpus is deterministic; the caller checks the splits it relies on.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in EXTRA_TOKENS])
    return tokenizer
