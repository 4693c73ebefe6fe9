"""Tiny random models of the families added after the first four: Qwen2-VL, Qwen2.5-VL, Qwen3-VL, InternVL,
LLaVA-OneVision, and LLaVA-NeXT (a model type with no family file, served by the generic family).

Same contract as `models/tiny.py` (real transformers classes, a BPE tokenizer trained on the spot, chat
templates following the real checkpoints', nothing downloaded). Two things differ:

- Image processors are the PIL variants, and the saved directory is laid out like a real checkpoint: the
  processor config also names the video processor those checkpoints ship. Transformers' video processors
  need torchvision; `quadrant.loading` serves such a checkpoint without it (Quadrant never scores video),
  and these directories are how the tests prove that.
- Tiling (InternVL, LLaVA-OneVision, LLaVA-NeXT) and dynamic resolution (Qwen) are kept on, so the number
  of image tokens depends on the image, as in the real models.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .tiny import TinySpec, _llama_text_config, _make_tokenizer, _save, language_model, vision_tower

NEW_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "internvl", "llava_onevision")
GENERIC_FAMILIES = ("llava_next", "vipllava")  # no family file: served by the generic family

QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
QWEN_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

#: Qwen/Qwen2-VL-7B-Instruct and Qwen2.5-VL: a default system turn, the image as
#: "<|vision_start|><|image_pad|><|vision_end|>", the answer after "assistant\n" with no space ("Yes").
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen/Qwen3-VL-*-Instruct: as Qwen2-VL without the default system turn.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: OpenGVLab/InternVL3-*-hf: "<IMG_CONTEXT>\n" for the image (expanded to "<img><IMG_CONTEXT>*N</img>").
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are InternVL, a multimodal "
    "large language model.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif content['type'] == 'video' %}<video>\n"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: llava-hf/llava-onevision-qwen2-*-ov-hf: images first, then "\n" + text, in ChatML.
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% endif %}{{ '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\n{text} [/INST]".
LLAVA_NEXT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ ' [/INST]' }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)

#: llava-hf/vip-llava-7b-hf: "###Human: <image>\n{text}###Assistant:".
VIPLLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '###Human: ' }}{% else %}{{ '###Assistant: ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '###Assistant:' }}{% endif %}"
)


def _qwen_tokenizer(spec: TinySpec):
    """Qwen2 layout: no BOS (the template starts with <|im_start|>), <|endoftext|> pads, vision tokens added."""
    return _make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        base_specials=QWEN_SPECIALS, added_specials=QWEN_VISION_TOKENS,
        named={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
               "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
        add_bos_token=False, extra_words=spec.extra_words,
    )


def image_only_processor(processor_class, **parts):
    """The processor class without its video processor, for building and saving without torchvision."""
    from quadrant.loading import image_only

    return image_only(processor_class)(video_processor=None, **parts)


def _save_like_checkpoint(model, processor, out_dir: Path, processor_class: str, video: dict | None,
                          eos_token_ids=None, dtype: torch.dtype = torch.float32) -> Path:
    """Save, then name the real processor class and (like the real checkpoints) its video processor."""
    _save(model, processor, out_dir, eos_token_ids=eos_token_ids, dtype=dtype)
    for name in ("processor_config.json", "tokenizer_config.json"):
        path = out_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            data["processor_class"] = processor_class
            if name == "processor_config.json" and video is not None:
                data["video_processor"] = video
            path.write_text(json.dumps(data, indent=2))
    return out_dir


def _qwen_image_processor(spec: TinySpec, merge: int):
    from transformers import Qwen2VLImageProcessorPil

    factor = spec.patch_size * merge
    return Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size, merge_size=merge, temporal_patch_size=2,
        min_pixels=(2 * factor) ** 2, max_pixels=(spec.image_size * 2) ** 2,
    )


def _qwen_video(spec: TinySpec, merge: int, kind: str) -> dict:
    return {"video_processor_type": kind, "patch_size": spec.patch_size, "merge_size": merge,
            "temporal_patch_size": 2, "size": {"shortest_edge": 64, "longest_edge": (spec.image_size * 2) ** 2}}


def _build_qwen_vl(spec: TinySpec, out_dir: Path, version: str) -> Path:
    """Qwen2-VL / Qwen2.5-VL / Qwen3-VL: a ViT over patch_size patches merged 2 x 2, a Qwen decoder with
    multimodal rotary positions (mrope_section splits each head's rotary half into t, h, w streams).
    Dynamic resolution: the image is resized to a multiple of patch x merge between min_pixels and
    max_pixels, so the number of <|image_pad|> tokens follows the image's size."""
    import transformers as tf

    merge = 2
    tok = _qwen_tokenizer(spec)
    template = QWEN3_VL_CHAT_TEMPLATE if version == "qwen3_vl" else QWEN2_VL_CHAT_TEMPLATE
    tok.chat_template = template
    names = {
        "qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLVideoProcessor"),
        "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration",
                       "Qwen2VLVideoProcessor"),
        "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLConfig", "Qwen3VLForConditionalGeneration", "Qwen3VLVideoProcessor"),
    }[version]
    processor = image_only_processor(getattr(tf, names[0]), image_processor=_qwen_image_processor(spec, merge),
                                     tokenizer=tok, chat_template=template)
    head_dim = spec.hidden // spec.heads
    quarter = head_dim // 2 // 4
    text = dict(
        language_model(spec, tok),
        max_position_embeddings=2048, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": [head_dim // 2 - 2 * quarter, quarter, quarter]},
    )
    vision = dict(depth=spec.vision_layers, hidden_size=spec.vision_hidden, num_heads=spec.vision_heads,
                  patch_size=spec.patch_size, spatial_merge_size=merge, temporal_patch_size=2)
    if version == "qwen2_vl":
        vision.update(embed_dim=spec.vision_hidden, hidden_size=spec.hidden, mlp_ratio=2)
    elif version == "qwen2_5_vl":
        vision.update(intermediate_size=spec.vision_hidden * 2, out_hidden_size=spec.hidden, window_size=16,
                      fullatt_block_indexes=[spec.vision_layers - 1])
    else:
        text["head_dim"] = head_dim
        text["rope_parameters"]["mrope_interleaved"] = True
        vision.update(intermediate_size=spec.vision_hidden * 2, out_hidden_size=spec.hidden,
                      num_position_embeddings=16 * 16, deepstack_visual_indexes=[0])
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    config = getattr(tf, names[1])(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids)
    torch.manual_seed(spec.seed)
    model = getattr(tf, names[2])(config)
    return _save_like_checkpoint(model, processor, out_dir, names[0], _qwen_video(spec, merge, names[3]))


def qwen25_vl_7b_parts(layers: int = 28) -> tuple:
    """The configuration and processor of a model of Qwen2.5-VL-7B-Instruct's shape, for the GPU check: a ViT
    of 1280 x 32 layers (16 heads, MLP 3420, patch 14, 2 x 2 merge, 112-pixel attention windows, full
    attention in layers 7, 15, 23, 31), and a Qwen2 decoder of 3584 x `layers` (28 in the real model), 28
    heads over 4 key/value heads, MLP 18944, vocabulary 152064, M-RoPE sections 16/24/24, rope theta 1e6;
    the real processor's pixel range. Only the tokenizer is small."""
    import transformers as tf

    tok = _qwen_tokenizer(TinySpec())
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    image_processor = tf.Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2,
                                                  min_pixels=3136, max_pixels=12845056)
    processor = image_only_processor(tf.Qwen2_5_VLProcessor, image_processor=image_processor, tokenizer=tok,
                                     chat_template=QWEN2_VL_CHAT_TEMPLATE)
    text = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers,
                num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=3584, window_size=112, fullatt_block_indexes=[7, 15, 23, 31])
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    return tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **ids), processor


def qwen25_vl_7b_shaped(out_dir: str | Path, *, layers: int = 28, device: str = "cpu",
                        dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """`qwen25_vl_7b_parts` with random weights, drawn on `device` and saved in `dtype`."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    config, processor = qwen25_vl_7b_parts(layers)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype)
    video = {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14, "merge_size": 2,
             "temporal_patch_size": 2, "size": {"shortest_edge": 3136, "longest_edge": 12845056}}
    return _save_like_checkpoint(model, processor, Path(out_dir), "Qwen2_5_VLProcessor", video, dtype=dtype)


def _build_internvl(spec: TinySpec, out_dir: Path) -> Path:
    """InternVL (the -hf layout): an InternViT tower, pixel shuffle (downsample_ratio 0.5), an MLP, a Qwen2
    decoder. Images are cut into up to 4 tiles plus a thumbnail (GotOcr2 cropping), each tile
    image_seq_length <IMG_CONTEXT> tokens between <img> and </img>."""
    from transformers import GotOcr2ImageProcessorPil, InternVLConfig, InternVLForConditionalGeneration, InternVLProcessor

    tok = _make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, base_specials=QWEN_SPECIALS,
        added_specials=("<img>", "</img>", "<IMG_CONTEXT>", "<video>"),
        named={"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
               "video_token": "<video>"},
        add_bos_token=False, extra_words=spec.extra_words,
    )
    tok.chat_template = INTERNVL_CHAT_TEMPLATE
    if spec.patches_per_side % 2:
        raise ValueError("internvl needs an even patch grid")
    seq = spec.patches_per_side**2 // 4
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size}, crop_to_patches=True, min_patches=1,
        max_patches=4, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    processor = image_only_processor(InternVLProcessor, image_processor=image_processor, tokenizer=tok,
                                     image_seq_length=seq, chat_template=INTERNVL_CHAT_TEMPLATE)
    text = _qwen2_text(spec, tok, max_positions=2048)
    vision = dict(hidden_size=spec.vision_hidden, num_hidden_layers=spec.vision_layers,
                  num_attention_heads=spec.vision_heads, intermediate_size=spec.vision_hidden * 4,
                  image_size=[spec.image_size, spec.image_size], patch_size=[spec.patch_size, spec.patch_size])
    config = InternVLConfig(text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=seq, downsample_ratio=0.5, tie_word_embeddings=False)
    torch.manual_seed(spec.seed)
    model = InternVLForConditionalGeneration(config)
    video = {"video_processor_type": "InternVLVideoProcessor", "size": {"height": spec.image_size, "width": spec.image_size}}
    return _save_like_checkpoint(model, processor, out_dir, "InternVLProcessor", video)


def _anyres_pinpoints(size: int) -> list[list[int]]:
    return [[size, size], [size, 2 * size], [2 * size, size], [2 * size, 2 * size]]


def _qwen2_text(spec: TinySpec, tok, max_positions: int) -> dict:
    """A Qwen2 decoder (InternVL3's and LLaVA-OneVision's language model), as a text_config dict."""
    return dict(language_model(spec, tok), max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, model_type="qwen2", tie_word_embeddings=False)


def _siglip(spec: TinySpec) -> dict:
    return dict(vision_tower(spec), vision_use_head=False, model_type="siglip_vision_model")


def _build_llava_onevision(spec: TinySpec, out_dir: Path) -> Path:
    """LLaVA-OneVision: SigLIP -> MLP -> Qwen2, "anyres_max_9" tiling: a base view plus tiles on the best of
    the grid pinpoints, an image-newline token per row, so the <image> count follows the aspect ratio."""
    from transformers import (
        LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    tok = _make_tokenizer(
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None, base_specials=QWEN_SPECIALS,
        added_specials=("<image>", "<video>"), named={"image_token": "<image>", "video_token": "<video>"},
        add_bos_token=False, extra_words=spec.extra_words,
    )
    tok.chat_template = LLAVA_ONEVISION_CHAT_TEMPLATE
    pinpoints = _anyres_pinpoints(spec.image_size)
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": spec.image_size, "width": spec.image_size}, image_grid_pinpoints=pinpoints,
        do_pad=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    processor = image_only_processor(
        LlavaOnevisionProcessor, image_processor=image_processor, tokenizer=tok,
        num_image_tokens=spec.patches_per_side**2, vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    text = _qwen2_text(spec, tok, max_positions=4096)
    config = LlavaOnevisionConfig(
        text_config=text, vision_config=_siglip(spec), image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"), vision_feature_select_strategy="full",
        vision_feature_layer=-1, image_grid_pinpoints=pinpoints, tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor",
             "size": {"height": spec.image_size, "width": spec.image_size}}
    return _save_like_checkpoint(model, processor, out_dir, "LlavaOnevisionProcessor", video)


def _build_llava_next(spec: TinySpec, out_dir: Path) -> Path:
    """LLaVA-NeXT (v1.6): CLIP -> MLP -> Llama with anyres tiling. No family file: the generic family
    serves it, which is what this model is for in the tests."""
    from transformers import (
        CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil, LlavaNextProcessor,
    )

    from .tiny import _llava_tokenizer

    tok = _llava_tokenizer(spec.extra_words)
    tok.chat_template = LLAVA_NEXT_CHAT_TEMPLATE
    pinpoints = _anyres_pinpoints(spec.image_size)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": spec.image_size}, crop_size={"height": spec.image_size, "width": spec.image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=spec.patch_size,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_NEXT_CHAT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**_llama_text_config(spec, tok, 4096)),
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default", vision_feature_layer=-2, tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlavaNextForConditionalGeneration(config)
    return _save(model, processor, out_dir)


def _build_vipllava(spec: TinySpec, out_dir: Path) -> Path:
    """VipLLaVA: CLIP (two layers' features side by side, CLS dropped) -> MLP -> Llama, a fixed image size. No
    family file: the generic family serves it, and its ONNX export is the generic path's, which LLaVA-NeXT's
    tiling refuses and this model's fixed geometry takes."""
    from transformers import (
        CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaProcessor, VipLlavaConfig,
        VipLlavaForConditionalGeneration,
    )

    from .tiny import _llava_tokenizer

    tok = _llava_tokenizer(spec.extra_words)
    tok.chat_template = VIPLLAVA_CHAT_TEMPLATE
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": spec.image_size},
                                           crop_size={"height": spec.image_size, "width": spec.image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=spec.patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=VIPLLAVA_CHAT_TEMPLATE)
    config = VipLlavaConfig(
        vision_config=CLIPVisionConfig(**vision_tower(spec), projection_dim=spec.vision_hidden),
        text_config=LlamaConfig(**_llama_text_config(spec, tok)), image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=spec.patches_per_side**2, vision_feature_layer=(-2, -1), tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = VipLlavaForConditionalGeneration(config)
    return _save(model, processor, out_dir)


BUILDERS = {
    "qwen2_vl": lambda spec, out: _build_qwen_vl(spec, out, "qwen2_vl"),
    "qwen2_5_vl": lambda spec, out: _build_qwen_vl(spec, out, "qwen2_5_vl"),
    "qwen3_vl": lambda spec, out: _build_qwen_vl(spec, out, "qwen3_vl"),
    "internvl": _build_internvl,
    "llava_onevision": _build_llava_onevision,
    "llava_next": _build_llava_next,
    "vipllava": _build_vipllava,
}
