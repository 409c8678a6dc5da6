"""Write examples/llm/tiny-chat.gguf: a few-KiB GGUF with llama metadata, a benign chat
template and two small tensors, for the demo's llama.cpp Deployment (rerun after
changing this script; needs the `gguf` package from the test extra)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "examples" / "llm" / "tiny-chat.gguf"
TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(OUT), "llama")
    writer.add_name("tiny-chat (modelsec example)")
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_chat_template(TEMPLATE)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.standard_normal((16, 8)).astype(np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
